"""The configuration of ``ramos evaluate`` (see docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ramos.stages.evaluation.evaluator import EvaluatorTrainConfig
from ramos.stages.evaluation.retrieval import RetrievalTrainConfig

if TYPE_CHECKING:
    from ramos.diffusion.sampling import SamplingConfig


@dataclass
class TextProtocolConfig:
    """The text-to-motion metrics (run when the data set has captions; definitions: docs/evaluation.md).

    Attributes:
        n: real reference windows per half (A: matched by the generated set, B: the FID reference),
            at most half of the captioned windows of the reference split.
        pool: R-precision pool: each motion ranks its own caption among ``pool`` (the field: 32).
        repeats: repeated draws (captions, R-precision pools, pairs) for the mean and 95% confidence
            interval (the field: 20).
        rounds: generation rounds; repeat ``r`` scores round ``r % rounds``. The field generates anew
            in each of its 20 repeats (``rounds: 20``); 1 costs one motion per window of A, and then
            the interval covers the draws of captions, pools and pairs but not the sampling noise
            (FID, computed once per round, then has an interval of 0).
        diversity_pairs: random pairs per diversity draw (the field: 300).
        mm_prompts, mm_per_prompt, mm_pairs: multimodality: prompts (distinct captions of A), motions
            generated per prompt, random pairs per prompt and draw (the field: 100, 30, 10; smaller
            here because every motion is sampled on a CPU).
    """

    n: int = 256
    pool: int = 32
    repeats: int = 20
    rounds: int = 1
    diversity_pairs: int = 300
    mm_prompts: int = 16
    mm_per_prompt: int = 10
    mm_pairs: int = 10


@dataclass
class EvaluationConfig:
    """One ``ramos evaluate`` run (definitions: docs/evaluation.md).

    Attributes:
        n_per_label: generated motions per label (also the size of each real half A and B).
        n_unconditional: real windows per half A and B, and unconditional motions per model, when a
            data set without labels has models the text protocol does not score (physics only: nothing
            to condition on, no feature space to train). The reference is the test split when it
            holds ``2 n_unconditional`` windows of ``min_reference_seconds`` median length.
        steps, sampler, guidance: sampling settings passed to every model; ``None``: each
            checkpoint's own (what ``ramos generate`` uses).
        reference: split of the real reference windows; "auto" takes "test" when it has, for
            every label, two windows of at least ``min_reference_seconds`` median length, and
            "train" otherwise (the report says which and why).
        min_reference_seconds: see ``reference``.
        sheet_labels: labels shown in the contact sheet (None: all evaluated labels).
        seed: seed of the reference draw and of sampling.
        fid_draws: independent draws of halves A and B (seeds ``seed``, ``seed + 1``, ...) on each of
            which every model generates anew and FID and the real floor are computed (the field repeats
            its draws 20 times). With a few hundred motions one draw is noisy (on the embedded set the
            floor moved from 3.55 to 2.35 and the ratio from 1.31x to 2.65x between seeds 0 and 1), so
            the report gives mean and 95% interval over the draws and the FID target is checked on the
            ratio of the means. The other tables are the first draw's.
        threads: torch CPU threads (None: torch's default).
        classifier: the feature extractor, trained when no checkpoint is given.
        text: the text-to-motion protocol (data sets with captions).
        retrieval: the text-motion retrieval model behind the text metrics, trained when no
            checkpoint is given.
    """

    n_per_label: int = 16
    n_unconditional: int = 256
    steps: int | None = None
    sampler: Literal["ddpm", "ddim", "dpmsolver++"] | None = None
    guidance: float | None = None
    reference: Literal["auto", "train", "val", "test"] = "auto"
    min_reference_seconds: float = 2.0
    sheet_labels: list[str] | None = None
    seed: int = 0
    fid_draws: int = 20
    threads: int | None = None
    classifier: EvaluatorTrainConfig = field(default_factory=EvaluatorTrainConfig)
    text: TextProtocolConfig = field(default_factory=TextProtocolConfig)
    retrieval: RetrievalTrainConfig = field(default_factory=RetrievalTrainConfig)

    def sampling_for(self, default: SamplingConfig) -> dict[str, Any]:
        """The sampling settings a model is evaluated with: this config's, else the checkpoint's ``default``."""
        return {"steps": default.steps if self.steps is None else self.steps,
                "sampler": default.sampler if self.sampler is None else self.sampler,
                "guidance": default.guidance if self.guidance is None else self.guidance}
