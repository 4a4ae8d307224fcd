"""The report of ``ramos evaluate``: ``generation.md``, ``generation.json`` and its figures.

Three shapes, by what the data set holds: labels (the label protocol's tables, and the text
metrics beside them when there are captions), captions only (the text metrics with the physics of
each set), neither (the physics of unconditional samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.dataset import MotionDataset
from ramos.stages.evaluation.config import EvaluationConfig
from ramos.stages.evaluation.scoring import PLANTED, REAL, TARGETS, check_targets, root_speeds
from ramos.stages.evaluation.text_protocol import TEXT_METRICS, TextSets


@dataclass
class LabelSets:
    """The motions the label protocol scored: real half A and each model's (``motions``), the label id
    of each (``labels_a``), and real half B with its label ids."""

    motions: dict[str, list[np.ndarray]]
    labels_a: np.ndarray
    real_b: list[np.ndarray]
    labels_b: np.ndarray


@dataclass
class PhysicsSets:
    """The motions of the physics-only protocol (no labels, no captions): real half A and each model's
    unconditional motions (``motions``), and real half B."""

    motions: dict[str, list[np.ndarray]]
    real_b: list[np.ndarray]


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


_PHYSICS = (("n", "motions"), ("foot_skating", "foot skating"), ("jitter", "jitter (m/s^3)"),
            ("bone_std", "bone-length std (m)"), ("floor_penetration", "floor penetration (m)"),
            ("root_speed_mean", "root speed mean (m/s)"), ("root_speed_p90", "root speed p90 (m/s)"),
            ("root_speed_w1", "root speed W1 (m/s)"))
"""The physics columns of the text and physics-only tables (definitions: docs/evaluation.md)."""


_PER_LABEL = (("n", "n"), ("accuracy", "acc."), ("multimodality", "MModality"), ("foot_skating", "skating"),
              ("jitter", "jitter"), ("bone_std", "bone std"), ("root_speed_mean", "root speed"),
              ("root_speed_w1", "speed W1"))


def render_markdown(results: dict[str, Any], figures: dict[str, str]) -> str:
    """The text of ``generation.md`` from the results dictionary and the figure file names."""
    s = results["settings"]
    sampling = {name: m["sampling"] for name, m in results.get("models", {}).items() if m.get("sampling")}
    for section in (results.get("text") or {}, results.get("physics") or {}):
        sampling.update({n: v for n, v in (section.get("sampling") or {}).items() if v and n not in sampling})
    parts = [
        "# Generated motions: evaluation",
        "",
        f"Data set: `{results['dataset']}`. "
        + ("Sampling: " + "; ".join(f"{name}: {v['sampler']}, {v['steps']} steps, guidance {v['guidance']}"
                                    for name, v in sampling.items()) + "; " if sampling else "")
        + f"{'s' if sampling else 'S'}eed {s['seed']}. Definitions: docs/evaluation.md.",
        "",
    ]
    if "models" in results:
        parts += _label_head(results)
    else:
        parts += _skipped_section(results)
    if "text" in results:
        parts += _text_section(results["text"])
    if "models" in results:
        parts += _label_tail(results)
    if "physics" in results:
        parts += _physics_section(results["physics"])
    parts += ["## Figures", ""]
    for title, fname in figures.items():
        parts += [f"**{title}**", "", f"![{title}]({fname})", ""]
    return "\n".join(parts)


def _label_head(results: dict[str, Any]) -> list[str]:
    """The label protocol: sample sizes and the table of all metrics."""
    models = results["models"]
    ref, held, ev = results["reference"], results["heldout"], results["evaluator"]
    return [
        "## Sample sizes (read before the numbers)",
        "",
        f"- Real reference: **{ref['split']}** split. {ref['why'].rstrip('.')}.",
        (f"- Real half A: {ref['windows_a']} windows ({ref['seconds_a']:.1f} s); real half B (FID reference): "
         f"{ref['windows_b']} windows ({ref['seconds_b']:.1f} s). Every model generated one motion per window of A "
         "(same label, same length)."),
        f"- Held-out (val + test) windows: {held.get('windows', 0)} "
        + (f"({held['seconds']:.1f} s, median {held['median_frames']:.0f} frames each)." if held.get("windows") else "."),
        f"- Labels evaluated: {len(results['labels'])}"
        + (f"; skipped: {', '.join(f'{k} ({v})' for k, v in ref['skipped_labels'].items())}." if ref["skipped_labels"] else "."),
        (f"- Feature extractor: trained in this project (no pretrained evaluator exists for this data), "
         f"{ev.get('feature_dim', (ev.get('config') or {}).get('feature_dim', '?'))}-d features; accuracy on held-out "
         f"windows {_fmt(ev.get('heldout_accuracy'))} ({ev.get('heldout_windows', 0)} windows). FID on "
         f"{ref['windows_a']} motions in that feature space is a noisy estimate: compare models with each other "
         "and with the real floor, not with published HumanML3D figures."),
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


def _label_tail(results: dict[str, Any]) -> list[str]:
    """The label protocol: targets, held-out windows and per-label tables."""
    models, held = results["models"], results["heldout"]
    parts: list[str] = []
    gen_models = [n for n in models if n != REAL]
    if gen_models:
        parts += ["## Targets", "", _table(["model", *(t for _, t in TARGETS)],
                                           [[n, *("pass" if v else "FAIL" for v in check_targets(results, n).values())]
                                            for n in gen_models]), ""]
        real = models[REAL]["overall"]
        draws = results.get("fid_draws") or {}
        many = len(draws.get("seeds", [])) > 1

        def fid_ratio(n: str) -> str:
            if many:
                return f"{_fmt(draws['ratio'][n])}x (mean FID / mean floor over {len(draws['seeds'])} draws)"
            return f"{_fmt(models[n]['overall']['fid'] / real['fid'] if real['fid'] else float('nan'))}x"

        parts += ["Ratios to real: " + "; ".join(
            f"{n}: FID {fid_ratio(n)}, "
            f"skating {_fmt(models[n]['overall']['foot_skating'] / max(real['foot_skating'], 1e-3))}x, "
            f"jitter {_fmt(models[n]['overall']['jitter'] / real['jitter'])}x" for n in gen_models), ""]
        if many:
            def interval(n: str) -> str:
                return f"{_fmt(draws['mean'][n])} ± {_fmt(draws['ci95'][n], 2)}"

            parts += ["## FID over draws of the reference", "",
                      f"FID of a few hundred motions moves with the draw of halves A and B. Each of "
                      f"{len(draws['seeds'])} draws (seeds {draws['seeds'][0]}-{draws['seeds'][-1]}) is a new A / B split for "
                      "which every model generated anew; mean ± 95% interval over the draws, as the field reports "
                      "repeated draws. The FID target is checked on the ratio of the means (a ratio per draw divides by "
                      "that draw's noisy floor); the tables above are the first draw's.", "",
                      _table(["row", "FID mean ± 95%", "lowest", "highest", "ratio of means", "median ratio per draw"],
                             [[REAL, interval(REAL), min(draws["fid"][REAL]), max(draws["fid"][REAL]), 1.0, 1.0],
                              *([n, interval(n), min(draws["fid"][n]), max(draws["fid"][n]), draws["ratio"][n],
                                 draws["median_per_draw_ratio"][n]] for n in gen_models)]), ""]
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
    return parts


def _skipped_section(results: dict[str, Any]) -> list[str]:
    """What was not measured and why (data without labels, perhaps without captions)."""
    skipped = results["skipped"]
    parts = ["## What is measured", "", f"- Label metrics: **not computed**: {skipped['labels']}."]
    if "text" in results:
        parts.append("- Text-to-motion metrics: below (the data set has captions), with the physics of real and "
                     "generated motions.")
    if "text" in skipped:
        parts.append(f"- Text-to-motion metrics: **not computed**: {skipped['text']}.")
    if "physics" in results:
        rest = ", ".join(f"`{n}`" for n in results["physics"]["models"] if n != REAL)
        parts.append("- Physics of unconditional samples: below. "
                     + ("Without labels or captions no feature-based metric exists (FID, diversity, recognition "
                        "accuracy and R-precision all need a feature space learned from labels or captions): only "
                        "the evaluator-free physics compare the models with real motion."
                        if "text" not in results else f"For the models the text metrics do not score ({rest})."))
    return [*parts, ""]


def _physics_rows(scored: dict[str, dict[str, Any]], timing: bool) -> str:
    """The physics table of ``scored`` (name -> physics), with the sampling time per motion when ``timing``."""
    cols = (*_PHYSICS, ("seconds_per_motion", "s / motion (batched)")) if timing else _PHYSICS
    return _table(["model", *(t for _, t in cols)], [[name, *(m.get(k) for k, _ in cols)] for name, m in scored.items()])


def _ratios(scored: dict[str, dict[str, Any]]) -> list[str]:
    """Foot skating and jitter of each model over real's (the physics targets: <= 1.5x)."""
    real, gen = scored.get(REAL), [n for n in scored if n != REAL]
    if not real or not gen:
        return []
    return ["Ratios to real (targets: <= 1.5x): " + "; ".join(
        f"{n}: skating {_fmt(scored[n]['foot_skating'] / max(real['foot_skating'], 1e-3))}x, "
        f"jitter {_fmt(scored[n]['jitter'] / real['jitter'] if real['jitter'] else float('nan'))}x" for n in gen), ""]


def _physics_section(phys: dict[str, Any]) -> list[str]:
    """The physics-only protocol: reference, sample sizes, the table."""
    ref, models = phys["reference"], phys["models"]
    return [
        "## Physics of unconditional samples",
        "",
        f"- Real reference: **{ref['split']}** split. {ref['why'].rstrip('.')}.",
        (f"- Real half A: {ref['windows_a']} windows ({ref['seconds_a']:.1f} s); real half B (root speed reference): "
         f"{ref['windows_b']} windows ({ref['seconds_b']:.1f} s). Every model generated one unconditional motion per "
         "window of A, with its length."),
        "- The `real` row is half A: the physics of real motion (its root speed W1 against half B is the floor)."
        + (f" `{PLANTED}` is the `latent` row's motions after the foot clean-up of `ramos generate`."
           if PLANTED in models else ""),
        "",
        _physics_rows(models, timing=True),
        "",
        *_ratios(models),
    ]


def _pm(v: dict[str, float] | None) -> str:
    """``mean +- ci95`` of one text metric."""
    if not v:
        return "n/a"
    if not math.isfinite(v["mean"]):
        return "n/a"
    # A metric that does not change between draws (e.g. FID when the motions are generated once) has a
    # confidence interval of rounding noise (3e-17): shown as 0.
    ci = v["ci95"] if abs(v["ci95"]) > 1e-9 * max(1.0, abs(v["mean"])) else 0.0
    return f"{_fmt(v['mean'])} ± {_fmt(ci, 2)}"


def _text_section(text: dict[str, Any]) -> list[str]:
    """The text-to-motion metrics: the reference, the retrieval model, the table (mean +- 95% interval)."""
    ref, ret, s = text["reference"], text["retrieval"], text["settings"]
    held = ret.get("heldout") or {}
    pool = ref["pool"]
    return [
        "## Text-to-motion metrics",
        "",
        (f"- Reference: **{ref['split']}** split, captioned windows. {ref['why'].rstrip('.')}. Half A: "
         f"{ref['windows_a']} windows ({ref['seconds_a']:.1f} s, {ref['distinct_captions_a']} distinct captions); "
         f"half B (FID reference): {ref['windows_b']}. Every model generated one motion per window of A from one of "
         "its captions (drawn at random), with its length; the `real` row is half A against its own captions."),
        _feature_space_line(ret, held),
        f"- R-precision: own caption among {pool} (chance: {1 / pool:.3f} / {2 / pool:.3f} / {3 / pool:.3f}); "
        + ("distances are Euclidean between the evaluator's embeddings. " if ret.get("kind") == "t2m" else
           "distances are Euclidean between unit embeddings (0 to 2). ") + "Multimodality: "
        f"{ref['mm_prompts']} prompts x {s['mm_per_prompt']} motions (real: windows sharing the caption). "
        f"Each value is the mean ± 95% interval over {s['repeats']} draws ({s['rounds']} generation round(s)"
        + (": the interval leaves out the sampling noise, and FID has none)." if s["rounds"] == 1 else ")."),
        "",
        _table(["model", *(t for _, t in TEXT_METRICS)],
               [[name, *(_pm(m.get(k)) for k, _ in TEXT_METRICS)] for name, m in text["models"].items()]),
        "",
        *_text_physics(text),
    ]


def _feature_space_line(ret: dict[str, Any], held: dict[str, Any]) -> str:
    """Which embedding the text metrics are measured in, and whether they compare with published numbers."""
    if ret.get("kind") == "t2m":
        guessed = ret.get("guessed_tokens", 0)
        return (f"- Feature space: Guo et al. (2022)'s pretrained text-motion evaluator ({ret['files']['weights']}), "
                "the one the papers' HumanML3D tables use. "
                + (f"{guessed} of {ret['captions']} captions came without HumanML3D's word/POS tokens and were "
                   "tagged by a guess: these numbers are not comparable with published ones. " if guessed else
                   "Every caption had its HumanML3D tokens. ")
                + "What else differs from the papers' protocol: docs/evaluation.md.")
    return (f"- Retrieval model (the feature space): trained in this project on this data set's captions "
            f"({ret.get('train_windows', '?')} windows, {ret.get('train_captions', '?')} captions, "
            f"{ret.get('steps', '?')} steps, {_fmt(ret.get('train_seconds'))} s), not Guo et al.'s pretrained "
            "evaluator (`--t2m-evaluator`): do not compare these numbers with published ones. "
            + (f"Real R-precision top-1/2/3 on held-out captioned windows ({held['windows']}, pool {held['pool']}): "
               f"{_fmt(held['top1'])} / {_fmt(held['top2'])} / {_fmt(held['top3'])}." if "top1" in held else ""))


def _text_physics(text: dict[str, Any]) -> list[str]:
    """The physics of the text protocol's sets (absent from results of earlier versions)."""
    scored = text.get("physics")
    if not scored:
        return []
    return ["### Physics of the text-to-motion sets", "",
            ("Evaluator-free physics (docs/evaluation.md) of real half A and of each model's motions generated for "
             "it (same lengths; pooled over the generation rounds); root speed W1 against half B."), "",
            _physics_rows(scored, timing=False), "", *_ratios(scored)]


def write_report(results: dict[str, Any], data: MotionDataset, out: Path, cfg: EvaluationConfig,
                 labels: LabelSets | None = None, text: TextSets | None = None,
                 physics: PhysicsSets | None = None) -> None:
    """Write the figures, ``generation.json`` and ``generation.md`` into ``out``; each protocol that ran
    passes the motions it scored (None: it did not run)."""
    from ramos.utils.atomic import write_json, write_text

    figures: dict[str, str] = {}
    if labels is not None:
        figures.update(_label_figures(results, labels, data, out, cfg))
    if text is not None and labels is None:
        # With labels, the label protocol's contact sheets already show the models' motions.
        titles = {name: [_short(p) for p in prompts] for name, prompts in text.prompts.items()}
        figures.update(_pooled_figures(text.motions, titles, text.real_b, data, out, "text_",
                                       "text-to-motion", "first motions of half A, titled with the caption asked"))
    if "text" in results:
        _r_precision_figure(results["text"], out / "text_r_precision.png")
        figures["Text-to-motion R-precision (mean and 95% interval; dashed: chance)"] = "text_r_precision.png"
    if physics is not None:
        titles = {name: [f"{len(m)} frames" for m in ms] for name, ms in physics.motions.items()}
        figures.update(_pooled_figures(physics.motions, titles, physics.real_b, data, out, "",
                                       "unconditional", "first motions, lengths of half A"))
    results["figures"] = figures
    write_json(out / "generation.json", results)
    write_text(out / "generation.md", render_markdown(results, figures))


def _label_figures(results: dict[str, Any], labels: LabelSets, data: MotionDataset, out: Path,
                   cfg: EvaluationConfig) -> dict[str, str]:
    """Contact sheets (one motion per label) and root speed histograms per label of the label protocol."""
    from ramos.motion.render import render_grid

    figures: dict[str, str] = {}
    sheet = cfg.sheet_labels or results["labels"]
    for name, motions in labels.motions.items():
        rows, titles = [], []
        for lab in sheet:
            where = np.flatnonzero(labels.labels_a == data.labels.index(lab)) if lab in data.labels else []
            if len(where):
                rows.append(motions[int(where[0])])
                titles.append(lab)
        if rows:
            fname = f"samples_{_slug(name)}.png"
            render_grid(rows, data.skeleton, out / fname, titles=titles, n_frames=6, panel_px=110)
            figures[f"Contact sheet: {name} (one motion per label, 6 frames over its length)"] = fname
    real_all = list(labels.motions[REAL]) + list(labels.real_b)
    lab_all = np.concatenate([labels.labels_a, labels.labels_b])
    _speed_figure(labels.motions, labels.labels_a, real_all, lab_all, data, out / "root_speed.png")
    figures["Root speed distribution per label (real = halves A and B)"] = "root_speed.png"
    return figures


SHEET_ROWS = 6
"""Motions per contact sheet when there are no labels to pick one of each."""


def _pooled_figures(sets: dict[str, list[np.ndarray]], titles: dict[str, list[str]], real_b: list[np.ndarray],
                    data: MotionDataset, out: Path, prefix: str, scope: str, what: str) -> dict[str, str]:
    """Contact sheets of the first motions of each set and one root speed histogram of all motions
    (data without labels: nothing to group them by); ``scope`` names the protocol in the figure titles,
    ``prefix`` in the file names."""
    from ramos.motion.render import render_grid

    figures: dict[str, str] = {}
    for name, motions in sets.items():
        if motions:
            fname = f"{prefix}samples_{_slug(name)}.png"
            render_grid(motions[:SHEET_ROWS], data.skeleton, out / fname, titles=titles[name][:SHEET_ROWS],
                        n_frames=6, panel_px=110)
            figures[f"Contact sheet, {scope}: {name} ({what})"] = fname
    ids = np.zeros(len(sets[REAL]), np.int64)
    real_all = list(sets[REAL]) + list(real_b)
    fname = f"{prefix}root_speed.png"
    _speed_figure(sets, ids, real_all, np.zeros(len(real_all), np.int64), data, out / fname, names=["all motions"])
    figures[f"Root speed distribution, {scope} (real = halves A and B)"] = fname
    return figures


def _short(text: str, n: int = 48) -> str:
    """``text`` cut to ``n`` characters for a figure title."""
    return text if len(text) <= n else text[: n - 3].rstrip() + "..."


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _speed_figure(sets: dict[str, list[np.ndarray]], labels_a: np.ndarray, real_all: list[np.ndarray],
                  labels_real: np.ndarray, data: MotionDataset, path: Path, names: Sequence[str] | None = None) -> None:
    """Histograms of horizontal root speed per label: real against every model; ``names`` titles the
    label ids (default: the data set's labels)."""
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
        ax.set_title((names or data.labels)[k], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.axes[0].legend(fontsize=7, loc="upper right")
    fig.supxlabel("horizontal root speed (m/s)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")


def _r_precision_figure(text: dict[str, Any], path: Path) -> None:
    """Bars of R-precision top-1/2/3 per model with their 95% intervals, and chance levels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ramos.utils.atomic import atomic_path

    models = text["models"]
    pool = text["reference"]["pool"]
    fig = Figure(figsize=(1.6 + 1.2 * len(models), 3.0), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / 3
    colours = ["#1f5fd6", "#d62728", "#2ca02c"]
    x = np.arange(len(models))
    for k in range(3):
        key = f"top{k + 1}"
        means = [m[key]["mean"] for m in models.values()]
        cis = [m[key]["ci95"] for m in models.values()]
        ax.bar(x + (k - 1) * width, means, width, yerr=cis, capsize=3, color=colours[k], label=f"top-{k + 1}")
        ax.axhline((k + 1) / pool, color=colours[k], ls="--", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(list(models), fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("R-precision", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
