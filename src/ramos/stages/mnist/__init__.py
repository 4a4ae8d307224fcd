"""Stage 1, ``ramos mnist``: the template of the recipe on MNIST. Settings :mod:`.config`, trainings
:mod:`.training`, figures and report :mod:`.report`, the whole run :mod:`.pipeline`. Data, networks
and the FID evaluator: :mod:`ramos.mnist`."""
