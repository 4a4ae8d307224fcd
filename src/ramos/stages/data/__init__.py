"""Stage 2, motion data: ``ramos data prepare`` (:mod:`.prepare`, per clip :mod:`.process`, settings
:mod:`.config`) and ``ramos data analyze`` (:mod:`.analysis`)."""
