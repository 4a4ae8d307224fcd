"""Evaluation of generated motions against real ones (``ramos evaluate``; definitions: docs/evaluation.md).

- :mod:`~ramos.stages.evaluation.evaluator`: the feature extractor, trained on the data set.
- :mod:`~ramos.stages.evaluation.scoring`: the scores of one set of motions, and the targets.
- :mod:`~ramos.stages.evaluation.protocol`: the reference draw, the models, :func:`evaluate`.
- :mod:`~ramos.stages.evaluation.report`: ``generation.md``, ``generation.json`` and figures.
"""

from ramos.stages.evaluation.config import EvaluationConfig
from ramos.stages.evaluation.evaluator import (
                                               EvaluatorTrainConfig,
                                               classify,
                                               load_evaluator,
                                               motion_features,
                                               save_evaluator,
                                               train_evaluator,
)
from ramos.stages.evaluation.protocol import (
                                               Generator,
                                               Reference,
                                               checkpoint_generator,
                                               choose_reference,
                                               draw_reference,
                                               evaluate,
                                               latent_generators,
)
from ramos.stages.evaluation.scoring import (
                                               PLANTED,
                                               REAL,
                                               TARGETS,
                                               check_targets,
                                               physics,
                                               root_speed_distance,
                                               root_speeds,
                                               score_set,
)

__all__ = [
    "PLANTED", "REAL", "TARGETS", "EvaluationConfig", "EvaluatorTrainConfig", "Generator", "Reference",
    "check_targets", "checkpoint_generator", "choose_reference", "classify", "draw_reference", "evaluate",
    "latent_generators", "load_evaluator", "motion_features", "physics", "root_speed_distance", "root_speeds",
    "save_evaluator", "score_set", "train_evaluator",
]
