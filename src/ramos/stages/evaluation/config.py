"""The configuration of ``ramos evaluate`` (see docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ramos.stages.evaluation.evaluator import EvaluatorTrainConfig


@dataclass
class EvaluationConfig:
    """One ``ramos evaluate`` run (definitions: docs/evaluation.md).

    Attributes:
        n_per_label: generated motions per label (also the size of each real half A and B).
        steps, sampler, guidance: sampling settings passed to every model; ``None``: each
            checkpoint's own (what ``ramos generate`` uses).
        reference: split of the real reference windows; "auto" takes "test" when it has, for
            every label, two windows of at least ``min_reference_seconds`` median length, and
            "train" otherwise (the report says which and why).
        min_reference_seconds: see ``reference``.
        sheet_labels: labels shown in the contact sheet (None: all evaluated labels).
        seed: seed of the reference draw and of sampling.
        threads: torch CPU threads (None: torch's default).
        classifier: the feature extractor, trained when no checkpoint is given.
    """

    n_per_label: int = 16
    steps: int | None = None
    sampler: Literal["ddpm", "ddim", "dpmsolver++"] | None = None
    guidance: float | None = None
    reference: Literal["auto", "train", "val", "test"] = "auto"
    min_reference_seconds: float = 2.0
    sheet_labels: list[str] | None = None
    seed: int = 0
    threads: int | None = None
    classifier: EvaluatorTrainConfig = field(default_factory=EvaluatorTrainConfig)
