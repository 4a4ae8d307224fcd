"""Evaluation of generated motions against real ones (``ramos evaluate``; definitions: docs/evaluation.md).

- :mod:`~ramos.stages.evaluation.evaluator`: the feature extractor, trained on the data set.
- :mod:`~ramos.stages.evaluation.scoring`: the scores of one set of motions, and the targets.
- :mod:`~ramos.stages.evaluation.protocol`: the reference draw, the models, :func:`evaluate`.
- :mod:`~ramos.stages.evaluation.retrieval`: the text-motion retrieval model and the text metrics.
- :mod:`~ramos.stages.evaluation.text_protocol`: the text-to-motion protocol (data sets with captions).
- :mod:`~ramos.stages.evaluation.report`: ``generation.md``, ``generation.json`` and figures.
"""

from ramos.stages.evaluation.config import EvaluationConfig, TextProtocolConfig
from ramos.stages.evaluation.evaluator import (
                                               EvaluatorTrainConfig,
                                               classify,
                                               load_evaluator,
                                               motion_features,
                                               save_evaluator,
                                               train_evaluator,
)
from ramos.stages.evaluation.protocol import (
                                               NO_LABEL,
                                               Generator,
                                               Reference,
                                               checkpoint_generator,
                                               choose_reference,
                                               choose_unlabelled_reference,
                                               draw_reference,
                                               draw_unlabelled_reference,
                                               evaluate,
                                               fid_draws_summary,
                                               latent_generators,
)
from ramos.stages.evaluation.retrieval import (
                                               RetrievalTrainConfig,
                                               diversity,
                                               embed_motions,
                                               embed_texts,
                                               fid,
                                               has_captions,
                                               load_retrieval,
                                               mm_dist,
                                               multimodality,
                                               r_precision,
                                               repeated,
                                               save_retrieval,
                                               train_retrieval,
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
from ramos.stages.evaluation.text_protocol import (
                                               TextGenerator,
                                               TextReference,
                                               TextSets,
                                               evaluate_text,
                                               latent_text_generators,
                                               run_text_protocol,
)

__all__ = [
    "NO_LABEL", "PLANTED", "REAL", "TARGETS", "EvaluationConfig", "EvaluatorTrainConfig", "Generator", "Reference",
    "RetrievalTrainConfig", "TextGenerator", "TextProtocolConfig", "TextReference", "TextSets", "check_targets",
    "checkpoint_generator", "choose_reference", "choose_unlabelled_reference", "classify", "diversity",
    "draw_reference", "draw_unlabelled_reference", "embed_motions", "embed_texts", "evaluate", "evaluate_text",
    "fid", "fid_draws_summary", "has_captions", "latent_generators", "latent_text_generators",
    "load_evaluator", "load_retrieval", "mm_dist", "motion_features", "multimodality", "physics", "r_precision",
    "repeated", "root_speed_distance", "root_speeds", "run_text_protocol", "save_evaluator", "save_retrieval", "score_set",
    "train_evaluator", "train_retrieval",
]
