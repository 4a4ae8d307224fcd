"""Scores of one set of motions against the real reference (definitions: docs/evaluation.md).

Evaluator-based (FID, diversity, multimodality, recognition accuracy) and evaluator-free physics
(:mod:`ramos.motion.metrics`: foot skating, jitter, bone-length std, floor penetration, root speed
distributions), overall and per label, and the quality targets they are checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ramos.motion import metrics as M
from ramos.motion.preprocess import pad_motions
from ramos.motion.skeleton import Skeleton

REAL = "real"


PLANTED = "latent, planted feet"
"""Row name of the latent model's motions after :func:`ramos.motion.postprocess.plant_feet`."""


def physics(motions: Sequence[np.ndarray], skeleton: Skeleton, fps: float) -> dict[str, float]:
    """Evaluator-free metrics pooled over the valid frames of ``motions`` (T_i, J, 3)."""
    x, mask = pad_motions(motions)
    speed = M.root_speed(x, skeleton, fps, mask)
    return {
        "foot_skating": M.foot_skating_ratio(x, skeleton, fps, mask),
        "jitter": M.jitter(x, fps, mask),
        "bone_std": M.bone_length_std(x, skeleton, mask),
        "floor_penetration": M.floor_penetration(x, skeleton, mask),
        "root_speed_mean": float(speed.mean()) if speed.size else float("nan"),
        "root_speed_p90": float(np.percentile(speed, 90)) if speed.size else float("nan"),
    }


def root_speeds(motions: Sequence[np.ndarray], skeleton: Skeleton, fps: float) -> np.ndarray:
    """Horizontal root speeds (m/s) of every valid frame pair of ``motions`` (T_i, J, 3)."""
    x, mask = pad_motions(motions)
    return M.root_speed(x, skeleton, fps, mask)


def root_speed_distance(motions: Sequence[np.ndarray], reference: Sequence[np.ndarray], skeleton: Skeleton,
                        fps: float) -> float:
    """Wasserstein-1 distance (m/s) between the root speed distributions of two motion sets."""
    from scipy.stats import wasserstein_distance

    a, b = root_speeds(motions, skeleton, fps), root_speeds(reference, skeleton, fps)
    return float(wasserstein_distance(a, b)) if a.size and b.size else float("nan")


def score_set(motions: Sequence[np.ndarray], labels: np.ndarray, feats: np.ndarray, predicted: np.ndarray,
              reference: Sequence[np.ndarray], reference_labels: np.ndarray, reference_feats: np.ndarray,
              class_names: Sequence[str], skeleton: Skeleton, fps: float) -> dict[str, Any]:
    """All metrics of one set of motions (generated, or real half A) against the real reference.

    ``labels`` are the labels asked (ids), ``feats`` the motions' evaluator features and
    ``predicted`` the evaluator's label ids for them; ``reference`` (real half B) with its labels
    and features is what FID and the root speed distances compare against.
    """
    overall: dict[str, Any] = {
        "n": len(motions),
        "fid": M.frechet_distance(feats, reference_feats),
        "diversity": M.diversity(feats),
        "multimodality": M.multimodality(feats, labels),
        "accuracy": float((predicted == labels).mean()),
        **physics(motions, skeleton, fps),
        "root_speed_w1": root_speed_distance(motions, reference, skeleton, fps),
    }
    per_label: dict[str, Any] = {}
    for k in np.unique(labels):
        sel = np.flatnonzero(labels == k)
        ms = [motions[i] for i in sel]
        ref = [reference[i] for i in np.flatnonzero(reference_labels == k)]
        per_label[class_names[int(k)]] = {
            "n": len(sel),
            "accuracy": float((predicted[sel] == k).mean()),
            "multimodality": M.multimodality(feats[sel], labels[sel]),
            **physics(ms, skeleton, fps),
            "root_speed_w1": root_speed_distance(ms, ref, skeleton, fps) if ref else float("nan"),
        }
    return {"overall": overall, "per_label": per_label}


# --- targets ---------------------------------------------------------------------------------------
# Targets of the issue: (metric, comparison, factor) against the real row; "acc" is absolute.
TARGETS: tuple[tuple[str, str], ...] = (
    ("accuracy", "recognition accuracy >= 0.90"),
    ("fid", "FID <= 2 x real floor (means over draws)"),
    ("foot_skating", "foot skating <= 1.5 x real"),
    ("jitter", "jitter <= 1.5 x real"),
)


def check_targets(results: dict[str, Any], model: str) -> dict[str, bool]:
    """Whether ``model`` meets each quality target of :data:`TARGETS` (against the real row; FID on the
    ratio of the mean FID to the mean floor over the draws of ``results["fid_draws"]`` when there are any)."""
    got, real = results["models"][model]["overall"], results["models"][REAL]["overall"]
    draws = results.get("fid_draws") or {}
    fid_ratio = (draws["ratio"][model] if model in draws.get("ratio", {})
                 else got["fid"] / max(real["fid"], 1e-12))
    return {
        "accuracy": got["accuracy"] >= 0.90,
        "fid": fid_ratio <= 2.0,
        # A real value of 0 (no skating at all) would make any skating fail: compare with a tiny floor.
        "foot_skating": got["foot_skating"] <= 1.5 * max(real["foot_skating"], 1e-3),
        "jitter": got["jitter"] <= 1.5 * real["jitter"],
    }
