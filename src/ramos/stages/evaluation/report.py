"""The report of ``ramos evaluate``: ``generation.md``, ``generation.json`` and its figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.dataset import MotionDataset
from ramos.stages.evaluation.config import EvaluationConfig
from ramos.stages.evaluation.scoring import PLANTED, REAL, TARGETS, check_targets, root_speeds


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


_OVERALL = (("n", "motions"), ("fid", "FID"), ("diversity", "diversity"), ("multimodality", "multimodality"),
            ("accuracy", "recognition acc."), ("foot_skating", "foot skating"), ("jitter", "jitter (m/s^3)"),
            ("bone_std", "bone-length std (m)"), ("floor_penetration", "floor penetration (m)"),
            ("root_speed_mean", "root speed mean (m/s)"), ("root_speed_w1", "root speed W1 (m/s)"),
            ("seconds_per_motion", "s / motion (batched)"))


_PER_LABEL = (("n", "n"), ("accuracy", "acc."), ("multimodality", "MModality"), ("foot_skating", "skating"),
              ("jitter", "jitter"), ("bone_std", "bone std"), ("root_speed_mean", "root speed"),
              ("root_speed_w1", "speed W1"))


def render_markdown(results: dict[str, Any], figures: dict[str, str]) -> str:
    """The text of ``generation.md`` from the results dictionary and the figure file names."""
    models = results["models"]
    ref, held, ev = results["reference"], results["heldout"], results["evaluator"]
    s = results["settings"]
    parts = [
        "# Generated motions: evaluation",
        "",
        f"Data set: `{results['dataset']}`. Sampling: "
        + "; ".join(f"{name}: {m['sampling']['sampler']}, {m['sampling']['steps']} steps, guidance "
                    f"{m['sampling']['guidance']}" for name, m in models.items() if m.get("sampling"))
        + f"; seed {s['seed']}. Definitions: docs/evaluation.md.",
        "",
        "## Sample sizes (read before the numbers)",
        "",
        f"- Real reference: **{ref['split']}** split. {ref['why'].rstrip('.')}.",
        f"- Real half A: {ref['windows_a']} windows ({ref['seconds_a']:.1f} s); real half B (FID reference): "
        f"{ref['windows_b']} windows ({ref['seconds_b']:.1f} s). Every model generated one motion per window of A "
        "(same label, same length).",
        f"- Held-out (val + test) windows: {held.get('windows', 0)} "
        + (f"({held['seconds']:.1f} s, median {held['median_frames']:.0f} frames each)." if held.get("windows") else "."),
        f"- Labels evaluated: {len(results['labels'])}"
        + (f"; skipped: {', '.join(f'{k} ({v})' for k, v in ref['skipped_labels'].items())}." if ref["skipped_labels"] else "."),
        f"- Feature extractor: trained in this project (no pretrained evaluator exists for this data), "
        f"{ev.get('feature_dim', (ev.get('config') or {}).get('feature_dim', '?'))}-d features; accuracy on held-out "
        f"windows {_fmt(ev.get('heldout_accuracy'))} ({ev.get('heldout_windows', 0)} windows). FID on "
        f"{ref['windows_a']} motions in that feature space is a noisy estimate: compare models with each other "
        "and with the real floor, not with published HumanML3D figures.",
        "",
        "## All metrics",
        "",
        "The `real` row is real half A scored exactly like a model: its FID against half B is the floor."
        + (f" `{PLANTED}` is the `latent` row's motions (same seeds) after the foot clean-up that `ramos generate`"
           " applies by default (the body shifted so the stance foot does not slide; pose untouched,"
           " docs/evaluation.md); `latent` is the decoder's output as it is." if PLANTED in models else ""),
        "",
        _table(["model", *(t for _, t in _OVERALL)],
               [[name, *(m["overall"].get(k) for k, _ in _OVERALL)] for name, m in models.items()]),
        "",
    ]
    gen_models = [n for n in models if n != REAL]
    if gen_models:
        parts += ["## Targets", "", _table(["model", *(t for _, t in TARGETS)],
                                           [[n, *("pass" if v else "FAIL" for v in check_targets(results, n).values())]
                                            for n in gen_models]), ""]
        real = models[REAL]["overall"]
        parts += ["Ratios to real: " + "; ".join(
            f"{n}: FID {_fmt(models[n]['overall']['fid'] / real['fid'] if real['fid'] else float('nan'))}x, "
            f"skating {_fmt(models[n]['overall']['foot_skating'] / max(real['foot_skating'], 1e-3))}x, "
            f"jitter {_fmt(models[n]['overall']['jitter'] / real['jitter'])}x" for n in gen_models), ""]
    if held.get("windows"):
        parts += ["## Held-out real windows (physics floor on unseen data)", "",
                  _table(["windows", "seconds", "evaluator acc.", "foot skating", "jitter (m/s^3)", "bone std (m)",
                          "floor pen. (m)", "root speed (m/s)"],
                         [[held["windows"], held["seconds"], held["accuracy"], held["foot_skating"], held["jitter"],
                           held["bone_std"], held["floor_penetration"], held["root_speed_mean"]]]), ""]
    parts += ["## Per label", ""]
    for name, m in models.items():
        parts += [f"### {name}", "", _table(["label", *(t for _, t in _PER_LABEL)],
                                          [[lab, *(v.get(k) for k, _ in _PER_LABEL)] for lab, v in m["per_label"].items()]), ""]
    parts += ["## Figures", ""]
    for title, fname in figures.items():
        parts += [f"**{title}**", "", f"![{title}]({fname})", ""]
    return "\n".join(parts)


def write_report(results: dict[str, Any], sets: dict[str, list[np.ndarray]], labels_a: np.ndarray,
                 real_b: list[np.ndarray], labels_b: np.ndarray, data: MotionDataset, out: Path,
                 cfg: EvaluationConfig) -> None:
    """Write the figures, ``generation.json`` and ``generation.md`` into ``out``."""
    from ramos.motion.render import render_grid
    from ramos.utils.atomic import write_json, write_text

    figures: dict[str, str] = {}
    sheet = cfg.sheet_labels or results["labels"]
    for name, motions in sets.items():
        rows, titles = [], []
        for lab in sheet:
            where = np.flatnonzero(labels_a == data.labels.index(lab)) if lab in data.labels else []
            if len(where):
                rows.append(motions[int(where[0])])
                titles.append(lab)
        if rows:
            fname = f"samples_{_slug(name)}.png"
            render_grid(rows, data.skeleton, out / fname, titles=titles, n_frames=6, panel_px=110)
            figures[f"Contact sheet: {name} (one motion per label, 6 frames over its length)"] = fname
    real_all = list(sets[REAL]) + list(real_b)
    lab_all = np.concatenate([labels_a, labels_b])
    _speed_figure(sets, labels_a, real_all, lab_all, data, out / "root_speed.png")
    figures["Root speed distribution per label (real = halves A and B)"] = "root_speed.png"
    results["figures"] = figures
    write_json(out / "generation.json", results)
    write_text(out / "generation.md", render_markdown(results, figures))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _speed_figure(sets: dict[str, list[np.ndarray]], labels_a: np.ndarray, real_all: list[np.ndarray],
                  labels_real: np.ndarray, data: MotionDataset, path: Path) -> None:
    """Histograms of horizontal root speed per label: real against every model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ramos.utils.atomic import atomic_path

    ids = sorted(set(labels_a.tolist()))
    cols = min(6, len(ids))
    rows = math.ceil(len(ids) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.1 * rows + 0.4), dpi=80)
    FigureCanvasAgg(fig)
    colours = ["#555555", "#1f5fd6", "#d62728", "#2ca02c", "#9467bd"]
    for p, k in enumerate(ids):
        ax = fig.add_subplot(rows, cols, p + 1)
        real = root_speeds([m for m, lab in zip(real_all, labels_real) if lab == k], data.skeleton, data.fps)
        series = {REAL: real, **{n: root_speeds([m for m, lab in zip(ms, labels_a) if lab == k], data.skeleton, data.fps)
                                 for n, ms in sets.items() if n != REAL}}
        top = max(0.5, max((np.percentile(v, 99) for v in series.values() if v.size), default=0.5))
        bins = np.linspace(0, top, 25)
        for c, (name, v) in enumerate(series.items()):
            if v.size:
                ax.hist(np.clip(v, 0, top), bins=bins, density=True, histtype="step" if name != REAL else "stepfilled",
                        alpha=0.35 if name == REAL else 1.0, color=colours[c % len(colours)], label=name, lw=1.4)
        ax.set_title(data.labels[k], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.axes[0].legend(fontsize=7, loc="upper right")
    fig.supxlabel("horizontal root speed (m/s)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
