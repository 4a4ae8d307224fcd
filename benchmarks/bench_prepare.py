"""Throughput and peak memory of ``ramos data prepare`` on a generated AMASS-like set, or on the
HumanML3D-sized stand-in.

    python benchmarks/bench_prepare.py [--data DIR] [--sizes 500 2000] [--workers 2]
    python benchmarks/bench_prepare.py --format humanml3d --data /tmp/standin --sizes 1000 14616

``--format humanml3d``: the folder written by ``benchmarks/standin_humanml3d.py`` (built there
first when absent, with max(sizes) motions). A size counts motions as HumanML3D does: n motions
are 2n files to prepare (each with its ``M`` mirror), read with the ``humanml3d`` data config.
The rest of this note is the AMASS-like set:

Generates (once, into ``--data``) 2,000 AMASS-style ``.npz`` sequences of 10 s at 60 fps
(SMPL-H ``poses`` (T, 156), ``trans``, ``betas``, ``gender``, ``mocap_framerate``) and a small
synthetic SMPL-H-format body model (52 vertices on the joints, identity joint regressor), then
prepares the first 500 and all 2,000 with the amass reader on ``--workers`` worker processes.
Every run happens in a fresh child process that samples the proportional set size (PSS: shared
pages split between the processes that share them) and RSS of itself plus its workers every
50 ms. About 1 % of the files are truncated and 2 % carry a capture glitch, so the skip and cut
paths are part of the measurement. Also records the CPU time per sequence (parent + workers), which does not depend on other load:
``seq_per_s_if_cores_free`` = workers / CPU seconds per sequence. Prints one result line;
updates benchmarks/results/bench_prepare.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SECONDS, FPS = 10.0, 60.0


# --- a synthetic AMASS-like set -------------------------------------------------------------------------
def _smplh_parents() -> np.ndarray:
    from ramos.motion.skeleton import HUMANML3D

    parents = list(HUMANML3D.parents)
    for wrist in (20, 21):  # 15 hand joints per hand: 5 fingers x 3 joints
        for _ in range(5):
            base = len(parents)
            parents += [wrist, base, base + 1]
    return np.array(parents, dtype=np.int64)


def write_body_model(path: Path) -> None:
    """An SMPL-H-format model whose 52 vertices are its joints (a y-up rest pose turned to z up)."""
    from ramos.motion.io import READERS

    # Real proportions: the first pose of the embedded walk, pelvis at the origin.
    walk = next(c for c in READERS["builtin"].read_all(None) if c.labels == ["walk"])
    body = walk.positions[0].astype(np.float64) - walk.positions[0, 0]
    hands = []
    for wrist, side in ((20, 1.0), (21, -1.0)):
        for f in range(5):
            for k in range(3):
                hands.append(body[wrist] + [side * (0.03 + 0.025 * k), -0.02 * f, 0.01 * (f - 2)])
    rest_y_up = np.concatenate([body, np.array(hands)])
    rest_z_up = np.stack([-rest_y_up[:, 0], rest_y_up[:, 2], rest_y_up[:, 1]], axis=1)  # inverse of (-x, z, y)
    n = len(rest_z_up)
    parents = _smplh_parents()
    kintree = np.stack([np.where(parents < 0, 2**32 - 1, parents), np.arange(n)]).astype(np.int64)
    rng = np.random.default_rng(0)
    np.savez(path, v_template=rest_z_up, shapedirs=rng.normal(0, 0.003, (n, 3, 10)),
             J_regressor=np.eye(n), kintree_table=kintree)


def write_sequence(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * FPS)) / FPS
    poses = np.zeros((len(t), 156), np.float64)
    freq = rng.uniform(0.6, 1.4)
    for j in range(1, 22):
        amp = rng.uniform(0.05, 0.35, 3)
        poses[:, 3 * j:3 * j + 3] = amp * np.sin(2 * math.pi * freq * t[:, None] + rng.uniform(0, 6.3, 3))
    heading = rng.uniform(-math.pi, math.pi) + rng.uniform(-0.15, 0.15) * t
    poses[:, 2] = heading  # root orientation: a turn about the model's z (up) axis
    speed = rng.uniform(0.3, 1.6)
    trans = np.zeros((len(t), 3))
    trans[:, 0] = np.cumsum(-np.sin(heading)) * speed / FPS
    trans[:, 1] = np.cumsum(np.cos(heading)) * speed / FPS
    trans[:, 2] = 0.95 + 0.02 * np.sin(4 * math.pi * freq * t)
    if seed % 50 == 7:  # a marker swap: the body teleports 0.8 m for 3 frames
        trans[300:303, 0] += 0.8
    data = {"poses": poses, "trans": trans, "betas": rng.normal(0, 0.5, 16), "gender": np.array("neutral"),
            "mocap_framerate": np.array(FPS), "dmpls": np.zeros((len(t), 8))}
    np.savez(path, **data)
    if seed % 100 == 13:  # a truncated download
        path.write_bytes(path.read_bytes()[:5000])


def generate(root: Path, n: int) -> Path:
    """``root/seqs/<group>/seq_<i>_poses.npz`` and ``root/body_model/model.npz`` (kept between runs)."""
    marker = root / f".generated-{n}"
    if marker.is_file():
        return root
    (root / "body_model").mkdir(parents=True, exist_ok=True)
    write_body_model(root / "body_model" / "model.npz")
    from tqdm import tqdm

    for i in tqdm(range(n), desc="generate", unit="seq", disable=not sys.stderr.isatty()):
        folder = root / "seqs" / f"S{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        write_sequence(folder / f"seq_{i:05d}_poses.npz", i)
    marker.write_text("ok\n")
    return root


# --- one measured run (in a fresh process) ------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def _memory_kib(pids: list[int]) -> tuple[int, int]:
    pss = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


def measure(root: Path, n: int, workers: int, fmt: str = "amass") -> dict[str, float]:
    from ramos.motion.io import READERS
    from ramos.stages.data.prepare import load_prepare_config, prepare_dataset

    if fmt == "humanml3d":
        # the first n motions and their mirrors (ids are 000000.. and M000000..)
        items = [i for i in READERS["humanml3d"].list_items(root) if int(i.source_id.lstrip("M")) < n]
        source_root, reader_opts = root, {}
    else:
        items = READERS["amass"].list_items(root / "seqs")[:n]
        source_root, reader_opts = root / "seqs", {"model_dir": str(root / "body_model")}
    peak = {"pss": 0, "rss": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pss, rss = _memory_kib(_descendants(os.getpid()))
            peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cfg = load_prepare_config(fmt)
    import resource

    def cpu_s() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    with tempfile.TemporaryDirectory(dir=root) as tmp:
        cpu0 = cpu_s()
        t0 = time.perf_counter()
        summary = prepare_dataset(fmt, Path(tmp) / "ds", cfg, root=source_root, workers=workers, items=items,
                                  reader_opts=reader_opts, progress=False)
        seconds = time.perf_counter() - t0
        cpu = cpu_s() - cpu0  # the workers have exited (and been reaped) by now
        size_mb = (Path(tmp) / "ds" / "windows.npy").stat().st_size / 2**20
    stop.set()
    sampler.join()
    # CPU time does not depend on what else runs on the machine: seq/s if each worker had a core.
    n = len(items)  # files prepared (humanml3d: motions and their mirrors)
    return {"sequences": n, "workers": workers, "seconds": round(seconds, 2), "seq_per_s": round(n / seconds, 1),
            "cpu_ms_per_seq": round(1000 * cpu / n, 1), "seq_per_s_if_cores_free": round(workers * n / cpu, 1),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "windows": sum(summary.windows.values()), "rejected": sum(summary.rejections.values()),
            "windows_mb": round(size_mb, 1),
            "peak_pss_mb": round(peak["pss"] / 1024, 1), "peak_rss_sum_mb": round(peak["rss"] / 1024, 1),
            "parent_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "largest_child_maxrss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["amass", "humanml3d"], default="amass",
                        help="amass: the generated AMASS-like set; humanml3d: the HumanML3D-sized stand-in")
    parser.add_argument("--data", type=Path, help="where the generated set is (made there when absent)")
    parser.add_argument("--sizes", type=int, nargs="+", help="sequences (amass) or motions (humanml3d)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # internal: one run in this process
    args = parser.parse_args()
    humanml3d = args.format == "humanml3d"
    args.data = args.data or Path(tempfile.gettempdir()) / ("ramos-standin" if humanml3d else "ramos-bench-amass")
    args.sizes = args.sizes or ([1000, 14616] if humanml3d else [500, 2000])
    if args.measure:
        print(json.dumps(measure(args.data, args.measure, args.workers, args.format)))
        return
    if humanml3d:
        sys.path.insert(0, str(Path(__file__).parent))
        import standin_humanml3d

        marker = args.data / standin_humanml3d.MARKER
        if not marker.is_file() or json.loads(marker.read_text())["motions"] < max(args.sizes):
            standin_humanml3d.build(args.data, max(args.sizes), overwrite=True)
    else:
        generate(args.data, max(args.sizes))
    runs = []
    for n in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--format", args.format, "--data", str(args.data),
                               "--workers", str(args.workers), "--measure", str(n)],
                              check=True, capture_output=True, text=True)
        runs.append({"motions": n, **json.loads(done.stdout.strip().splitlines()[-1])} if humanml3d
                    else json.loads(done.stdout.strip().splitlines()[-1]))
    unit = "clips" if humanml3d else "seq"
    line = "; ".join(f"{r['sequences']} {unit}: {r['seq_per_s']} {unit}/s ({r['cpu_ms_per_seq']} CPU ms/{unit}, "
                     f"load {r['load_average_1min']}), peak PSS {r['peak_pss_mb']} MB "
                     f"(RSS sum {r['peak_rss_sum_mb']} MB)" for r in runs)
    what = ("HumanML3D-sized stand-in, 2-10 s at 20 fps, with M mirrors" if humanml3d
            else f"AMASS-like, {SECONDS:g} s at {FPS:g} fps")
    print(f"bench_prepare ({what}, {args.workers} workers): {line}")
    from ramos.utils.atomic import write_json

    about = ({"format": "HumanML3D layout (benchmarks/standin_humanml3d.py); sizes count motions, files = 2x"}
             if humanml3d else {"sequence_seconds": SECONDS, "sequence_fps": FPS,
                                "format": "AMASS npz + synthetic SMPL-H model"})
    name = "bench_prepare_humanml3d.json" if humanml3d else "bench_prepare.json"
    write_json(Path(__file__).parent / "results" / name, {
        "runs": runs, **about, "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})


if __name__ == "__main__":
    main()
