"""Run the benchmark scripts (``make bench``), each in its own process, and print their result lines.

    python benchmarks/run_all.py [--pipeline runs/pipeline] [--all] [--only NAME ...] [--list]

By default the speed benchmarks that need nothing trained (random weights, generated data; about
10 minutes on 2 CPU cores). ``--pipeline DIR`` (a finished ``ramos pipeline --out DIR``) adds the
generation benchmark on its checkpoint and the side-by-side run against the raw-space baseline
(about 20 minutes); ``--all`` adds the MNIST pipeline end to end (about 10 minutes). Each script
updates its own file under ``benchmarks/results/``; BENCHMARKS.md says what each figure means.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def plan(pipeline: Path | None, everything: bool) -> dict[str, list[str]]:
    """Benchmark name -> its script and arguments."""
    runs = {
        "generate": ["bench_generate.py", "--threads", "2"],
        "motion_vae": ["bench_motion_vae.py", "--threads", "2"],
        "render": ["render_speed.py"],
        "prepare": ["bench_prepare.py", "--sizes", "500", "2000", "--workers", "2"],
        "pose_study": ["bench_pose_study.py", "--quick"],
    }
    if pipeline is not None:
        runs["generate_trained"] = ["bench_generate.py", "--threads", "2", "--repeats", "5",
                                    "--checkpoint", str(pipeline / "diffusion" / "last.ckpt")]
        runs["paraphrases"] = ["bench_paraphrases.py", "--pipeline", str(pipeline)]
        runs["vs_raw"] = ["bench_vs_raw.py", "--threads", "2", "--vae", str(pipeline / "motion_vae" / "motion_vae.ckpt"),
                          "--latent", str(pipeline / "diffusion" / "last.ckpt"), "--dataset", str(pipeline / "data"),
                          "--evaluator", str(pipeline / "reports" / "evaluator.ckpt"),
                          "--out", str(pipeline.parent / f"{pipeline.name}_vs_raw")]
    if shutil.which("blender") is not None:  # Debian's blender: ../shared/reference/tools.md
        runs["blender_bvh"] = ["bench_blender_bvh.py"] + ([] if pipeline is None else ["--pipeline", str(pipeline)])
    if everything:
        runs["mnist"] = ["bench_mnist.py"]
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pipeline", type=Path, help="a finished `ramos pipeline` output folder")
    p.add_argument("--all", action="store_true", help="also the MNIST pipeline end to end")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    p.add_argument("--list", action="store_true", help="print the plan and stop")
    args = p.parse_args(argv)
    runs = plan(args.pipeline, args.all)
    if args.only:
        unknown = sorted(set(args.only) - set(runs))
        if unknown:
            p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(runs)}")
        runs = {k: v for k, v in runs.items() if k in args.only}
    if args.list:
        for name, cmd in runs.items():
            print(f"{name:<17} python benchmarks/{' '.join(cmd)}")
        return 0
    failed: list[str] = []
    for name, cmd in runs.items():
        print(f"== {name}: python benchmarks/{' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]])
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
