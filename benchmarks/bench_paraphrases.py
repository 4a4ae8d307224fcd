"""Free text never seen in training: is the generated motion the action the prompt asks for?

    python benchmarks/bench_paraphrases.py --pipeline runs/pipeline [--per-prompt 4]

Reads the held-out paraphrases of the embedded set (tests/data/paraphrases.json: each a prompt a
user might type and the label it means; none is a training caption, tests/test_io_builtin.py checks),
generates ``--per-prompt`` motions for each with the pipeline's diffusion checkpoint (its default
sampling, lengths drawn from the training lengths of the intended label), and classifies them with the
pipeline's label evaluator (reports/evaluator.ckpt). Beside it, the same for each label asked as a
label (the single-window rate the paraphrases are compared with). Target: >= 80 % recognised.
Prints one line and writes benchmarks/results/paraphrases.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
from collections import Counter
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
PARAPHRASES = HERE.parent / "tests" / "data" / "paraphrases.json"
RESULTS = HERE / "results" / "paraphrases.json"


def recognised(gen, net, names: list[str], asks: list[tuple[str | None, str | None, str]], per: int,
               seed: int) -> tuple[float, dict[str, list[int]]]:
    """Share of motions classified as intended; ``asks``: (text, label, intended label) triples."""
    from ramos.stages.evaluation.evaluator import classify

    texts = [t for t, _, _ in asks for _ in range(per)]
    labels = [lab for _, lab, _ in asks for _ in range(per)]
    intended = [want for _, _, want in asks for _ in range(per)]
    rng = np.random.default_rng(seed)
    frames = [gen.draw_frames(want, rng) for want in intended]
    if all(t is not None for t in texts):
        result = gen.sample(texts=texts, frames=frames, seed=seed)
    else:
        result = gen.sample(labels, frames=frames, seed=seed)
    predicted = [names[int(i)] for i in classify(net, result.motions)]
    per_ask: dict[str, list[int]] = {}
    for k, (text, lab, want) in enumerate(asks):
        hits = [int(predicted[k * per + j] == want) for j in range(per)]
        per_ask[text or lab or "?"] = hits
    return float(np.mean([p == w for p, w in zip(predicted, intended)])), per_ask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="a finished `ramos pipeline` output folder")
    parser.add_argument("--per-prompt", type=int, default=4, help="motions generated per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from ramos.motion.generate import MotionGenerator
    from ramos.stages.evaluation.evaluator import load_evaluator

    gen = MotionGenerator.load(args.pipeline / "diffusion" / "last.ckpt")
    net, names, _ = load_evaluator(args.pipeline / "reports" / "evaluator.ckpt")
    prompts = json.loads(PARAPHRASES.read_text(encoding="utf-8"))["prompts"]
    asks = [(p["text"], None, p["label"]) for p in prompts if p["label"] in names]
    rate, per_prompt = recognised(gen, net, names, asks, args.per_prompt, args.seed)
    label_asks = [(None, lab, lab) for lab in names]
    label_rate, per_label = recognised(gen, net, names, label_asks, args.per_prompt, args.seed)
    missed = Counter({text: len(h) - sum(h) for text, h in per_prompt.items() if sum(h) < len(h)})
    result = {
        "paraphrases": len(asks), "per_prompt": args.per_prompt,
        "recognised_paraphrases": round(rate, 4), "recognised_labels": round(label_rate, 4),
        "ratio_to_labels": round(rate / label_rate, 4) if label_rate else None,
        "missed": dict(missed.most_common()), "per_label": {k: sum(v) / len(v) for k, v in per_label.items()},
        "target": 0.8, "checkpoint": str(args.pipeline / "diffusion" / "last.ckpt"),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"paraphrases: {rate:.3f} of {len(asks)} x {args.per_prompt} motions recognised as the intended action "
          f"(labels asked as labels: {label_rate:.3f}; target >= 0.8); most missed: "
          + ", ".join(f"{t!r} ({n})" for t, n in missed.most_common(5)))
    from ramos.utils.atomic import write_json

    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
