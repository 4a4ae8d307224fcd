"""Rebuild the embedded motion asset (src/ramos/assets/deepmimic22.npz) from pybullet's DeepMimic clips.

    pip install "ramos[rebuild-asset]"          # pybullet==3.2.7, only for this script
    python scripts/build_builtin_asset.py [PYBULLET_DATA] [--out src/ramos/assets]

PYBULLET_DATA defaults to ``pybullet_data.getDataPath()``. The 15 humanoid clips and the 5 walker
clips are read with ``ramos.motion.io.deepmimic`` (FK + retargeting to 22 joints, facing +z), checked
(constant bone lengths, feet near the floor) and written with their zlib licence notice.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ramos.motion.io import builtin, deepmimic
from ramos.motion.skeleton import HUMANML3D
from ramos.utils.atomic import atomic_path, write_text

EXPECTED_CLIPS = 20
LICENSE_HEADER = """\
The motion clips in deepmimic22.npz are converted from the DeepMimic motion files shipped in
pybullet_data (pybullet==3.2.7, data/motions/humanoid3d_*.txt and data/motions/walker/*.txt,
with humanoid/humanoid.urdf), by Jason Peng et al. (DeepMimic) and the Bullet Physics authors.
They were altered: forward kinematics, retargeting onto a 22-joint skeleton, rotation to a
y-up / facing +z frame (scripts/build_builtin_asset.py). The original licence follows.

"""


def _default_data_path() -> Path:
    try:
        import pybullet_data
    except ImportError:
        sys.exit("pybullet is not installed: pass the pybullet_data folder or pip install 'ramos[rebuild-asset]'")
    return Path(pybullet_data.getDataPath())


def _licence_text(data_path: Path) -> str:
    """The pybullet package's licence file (zlib), found next to the data folder or via its metadata."""
    try:
        dist = importlib.metadata.distribution("pybullet")
        for f in dist.files or []:
            if f.name.upper().startswith("LICENSE"):
                return Path(str(dist.locate_file(f))).read_text(encoding="utf-8")
    except importlib.metadata.PackageNotFoundError:
        pass
    for candidate in sorted(data_path.parent.glob("pybullet-*.dist-info/LICENSE*")):
        return candidate.read_text(encoding="utf-8")
    sys.exit(f"cannot find pybullet's LICENSE file near {data_path}: is pybullet installed?")


def build(data_path: Path, out_dir: Path) -> Path:
    """Convert the clips and write the asset and licence notice into ``out_dir``; returns the asset path."""
    licence = LICENSE_HEADER + _licence_text(data_path.resolve())  # before writing anything
    items = deepmimic.list_items(data_path)
    if len(items) != EXPECTED_CLIPS:
        raise SystemExit(f"{data_path}: expected {EXPECTED_CLIPS} DeepMimic clips, found {len(items)}")
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for k, item in enumerate(tqdm(items, desc="converting", unit="clip")):
        (clip,) = deepmimic.read_item(item)
        bones = HUMANML3D.bone_lengths(clip.positions)
        spread = float(((bones.max(0) - bones.min(0)) / bones.mean(0)).max())
        if spread > 0.01:
            raise SystemExit(f"{item.path}: bone lengths vary by {spread:.1%} over time")
        key = f"clip_{k:03d}"
        arrays[key] = clip.positions.astype(np.float32)
        entries.append({"key": key, "id": clip.source_id, "label": clip.labels[0], "fps": clip.fps,
                        "loop": clip.meta["loop"], "file": str(Path(item.path).relative_to(data_path)),
                        "frames": clip.num_frames})
    meta = {"format_version": builtin.FORMAT_VERSION, "skeleton": HUMANML3D.to_dict(),
            "source": "pybullet==3.2.7 pybullet_data DeepMimic clips", "clips": entries}
    arrays["meta"] = np.array(json.dumps(meta))  # a plain unicode scalar array: no pickle needed
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / builtin.ASSET_NAME
    with atomic_path(target) as tmp:
        np.savez_compressed(tmp, **arrays)
    write_text(out_dir / "LICENSE-DeepMimic.txt", licence)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_path", nargs="?", type=Path, help="pybullet_data folder (default: autodetect)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "ramos" / "assets")
    args = parser.parse_args()
    target = build(args.data_path or _default_data_path(), args.out)
    clips = builtin.list_items(target)
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB, {len(clips)} clips)")


if __name__ == "__main__":
    main()
