"""AMASS reader against an independent SMPL-H joint computation on a small synthetic body model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ramos.motion.clip import ClipError
from ramos.motion.io import READERS, amass
from ramos.motion.preprocess import facing_direction
from ramos.motion.skeleton import HUMANML3D as S

BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]


def _smplh_parents() -> list[int]:
    parents = list(BODY_PARENTS)
    for wrist in (20, 21):  # 5 fingers x 3 joints per hand
        for _ in range(5):
            parents += [wrist, len(parents), len(parents) + 1]
    return parents


def _write_model(path: Path, seed: int = 0, shift: float = 0.0) -> dict[str, np.ndarray]:
    """A 60-vertex 'body' whose regressed rest joints sit near SMPL's (left at +x, y up, facing +z)."""
    rng = np.random.default_rng(seed)
    parents = _smplh_parents()
    # Target rest joints: a rough SMPL layout for the body, hands near the wrists.
    body = np.array([[0, 0, 0], [.06, -.09, 0], [-.06, -.09, 0], [0, .11, 0], [.1, -.47, 0], [-.1, -.47, 0],
                     [0, .24, 0], [.09, -.87, -.03], [-.09, -.87, -.03], [0, .3, .02], [.11, -.93, .1],
                     [-.11, -.93, .1], [0, .51, 0], [.08, .42, 0], [-.08, .42, 0], [0, .6, .05], [.17, .43, 0],
                     [-.17, .43, 0], [.43, .43, 0], [-.43, .43, 0], [.68, .43, 0], [-.68, .43, 0]], float)
    hands = np.concatenate([np.tile(body[w], (15, 1)) + rng.normal(scale=0.03, size=(15, 3)) for w in (20, 21)])
    joints = np.concatenate([body, hands]) + [0, shift, 0]
    v = np.concatenate([joints, rng.normal(scale=0.2, size=(60 - 52, 3))])
    # A regressor that picks each joint's own vertex mostly, mixed with the spare vertices a little.
    jr = np.zeros((52, 60))
    jr[np.arange(52), np.arange(52)] = 0.9
    jr[:, 52:] = 0.1 / 8
    v[:52] = (joints - jr[:, 52:] @ v[52:]) / 0.9
    model = {"v_template": v, "shapedirs": rng.normal(scale=0.002, size=(60, 3, 10)), "J_regressor": jr,
             "kintree_table": np.array([[2**32 - 1] + parents[1:], list(range(52))], dtype=np.int64),
             "weights": np.full((60, 52), 1 / 52), "posedirs": np.zeros((60, 3, 459)),
             "f": np.zeros((10, 3), dtype=np.int64)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **model)
    return model


def _reference(poses, trans, betas, model) -> np.ndarray:
    """Independent FK with scipy rotations, then (x, y, z) -> (-x, z, y)."""
    rest = model["J_regressor"] @ (model["v_template"] + model["shapedirs"][..., :10] @ betas[:10])
    parents = _smplh_parents()
    t = len(poses)
    pos = np.zeros((t, 22, 3))
    glob = np.zeros((t, 22, 3, 3))
    for i in range(22):
        r = Rotation.from_rotvec(poses[:, 3 * i:3 * i + 3]).as_matrix()
        if i == 0:
            glob[:, 0], pos[:, 0] = r, rest[0] + trans
        else:
            p = parents[i]
            glob[:, i] = glob[:, p] @ r
            pos[:, i] = pos[:, p] + np.einsum("tab,b->ta", glob[:, p], rest[i] - rest[p])
    return np.stack([-pos[..., 0], pos[..., 2], pos[..., 1]], axis=-1)


def _sequence(path: Path, t: int = 8, seed: int = 1, **override) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = rng.normal(scale=0.4, size=(t, 156))
    poses[:, :3] = Rotation.from_euler("x", 90, degrees=True).as_rotvec()  # AMASS: stand up in z-up
    seq = {"poses": poses, "trans": np.cumsum(rng.normal(scale=0.01, size=(t, 3)), 0) + [0, 0, 0.9],
           "betas": rng.normal(size=16), "gender": np.array("female"), "mocap_framerate": np.array(120.0),
           "dmpls": np.zeros((t, 8))}
    seq.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v for k, v in seq.items() if v is not None})
    return seq


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    _write_model(tmp_path / "smplh" / "female" / "model.npz", seed=0)
    _write_model(tmp_path / "smplh" / "male" / "model.npz", seed=5, shift=0.3)
    return tmp_path / "smplh"


def test_joints_match_independent_fk(tmp_path: Path, models: Path) -> None:
    seq = _sequence(tmp_path / "amass" / "CMU" / "01" / "01_01_poses.npz")
    (tmp_path / "amass" / "CMU" / "01" / "shape.npz").write_bytes(b"")
    items = READERS["amass"].list_items(tmp_path / "amass")
    assert [i.source_id for i in items] == ["CMU/01/01_01_poses"]
    (clip,) = READERS["amass"].read_item(items[0], model_dir=models)
    model = dict(np.load(models / "female" / "model.npz"))
    expected = _reference(seq["poses"], seq["trans"], seq["betas"], model)
    np.testing.assert_allclose(clip.positions, expected, atol=1e-5)
    assert clip.fps == 120.0 and clip.meta["gender"] == "female" and clip.labels == []
    assert clip.meta["dataset"] == "CMU"
    # Gender forcing picks the other model (its joints are 0.3 m higher in model y = our z... differ).
    (male,) = amass.read_item(items[0], model_dir=models, gender="male")
    assert np.abs(male.positions - clip.positions).max() > 0.05


def test_upright_and_not_mirrored(tmp_path: Path, models: Path) -> None:
    t = 4
    poses = np.zeros((t, 156))
    poses[:, :3] = Rotation.from_euler("x", 90, degrees=True).as_rotvec()
    path = tmp_path / "stand.npz"
    _sequence(path, t=t, poses=poses, trans=np.tile([0, 0, 0.95], (t, 1)))
    (clip,) = amass.read_item(amass.list_items(path)[0], model_dir=models)
    p = clip.positions[0]
    assert p[S.index("head"), 1] > p[0, 1] > p[S.index("left_foot"), 1]  # y is up
    # Handedness, independently of the hips: the toes point forward (feet ahead of ankles in the
    # model), and a subject's left is up x forward. A reflection would put the left hip on the right.
    toes = p[S.index("left_foot")] - p[S.index("left_ankle")]
    toes[1] = 0.0
    left = np.cross([0.0, 1.0, 0.0], toes / np.linalg.norm(toes))
    assert (p[S.index("left_hip")] - p[S.index("right_hip")]) @ left > 0.05
    (canon,) = amass.read_item(amass.list_items(path)[0], model_dir=models, canonicalize=True)
    c = canon.positions[0]
    assert c[S.index("left_hip"), 0] > c[S.index("right_hip"), 0] + 0.05
    assert facing_direction(c, S) @ [0.0, 0.0, 1.0] > 0.99


def test_model_without_gender_folders_and_sidecar(tmp_path: Path) -> None:
    _write_model(tmp_path / "model" / "model.npz")
    path = tmp_path / "seq.npz"
    _sequence(path, gender=np.array(b"male"))
    path.with_suffix(".json").write_text('{"labels": ["walk"]}')
    (clip,) = amass.read_item(amass.AmassItem(str(path), "seq"), model_dir=tmp_path / "model")
    assert clip.meta["gender"] == "male" and clip.labels == ["walk"]


@pytest.mark.parametrize("override, reason", [
    ({"poses": None}, "missing keys \\['poses'\\]"),
    ({"mocap_framerate": None}, "mocap_framerate"),
    ({"poses": np.zeros((8, 50))}, "poses shape"),
    ({"trans": np.zeros((7, 3))}, "trans shape"),
    ({"poses": np.zeros((1, 156)), "trans": np.zeros((1, 3))}, "1 frame"),
    ({"poses": np.full((8, 156), np.inf)}, "NaN/inf"),
    ({"poses": np.full((8, 156), "a")}, "non-numeric"),
    ({"mocap_framerate": np.array(0.0)}, "invalid frame rate"),
    ({"gender": np.array([None], dtype=object)}, "without unpickling"),
])
def test_bad_sequences(tmp_path: Path, models: Path, override: dict, reason: str) -> None:
    path = tmp_path / "bad.npz"
    rng_seq = _sequence(path, **{k: v for k, v in override.items() if not (isinstance(v, np.ndarray)
                                                                           and v.dtype == object)})
    if any(isinstance(v, np.ndarray) and v.dtype == object for v in override.values()):
        np.savez(path, **{**rng_seq, **override}, allow_pickle=True)
    with pytest.raises(ClipError, match=reason) as err:
        amass.read_item(amass.AmassItem(str(path), "bad"), model_dir=models)
    assert str(path) in str(err.value)


def test_truncated_file_and_bad_models(tmp_path: Path, models: Path) -> None:
    path = tmp_path / "seq.npz"
    _sequence(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipError, match="seq.npz"):
        amass.read_item(amass.AmassItem(str(path), "seq"), model_dir=models)
    _sequence(path)
    broken = tmp_path / "broken" / "model.npz"
    model = _write_model(broken)
    np.savez(broken, **{k: v for k, v in model.items() if k != "J_regressor"})
    amass.load_body_model.cache_clear()
    with pytest.raises(ClipError, match="lacks \\['J_regressor'\\]"):
        amass.read_item(amass.AmassItem(str(path), "seq"), model_dir=broken.parent)
    with pytest.raises(FileNotFoundError, match="model.npz"):
        amass.read_item(amass.AmassItem(str(path), "seq"), model_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="model_dir"):
        amass.read_item(amass.AmassItem(str(path), "seq"))


def _zip_of_zeros(path: Path, frames: int, width: int = 156, fps: float = 120.0) -> None:
    """A small .npz whose 'poses' are ``frames`` x ``width`` float64 zeros: deflate shrinks them ~200x."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("poses.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (frames, width)})
            left, chunk = frames * width * 8, bytes(8 << 20)
            while left:
                f.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        for key, value in {"trans": np.zeros((frames, 3)), "mocap_framerate": np.array(fps)}.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, value)


def test_inflation_is_bounded_before_decompressing(tmp_path: Path, models: Path) -> None:
    """A ~5 MB file holding 862,000 frames (1 GB once inflated) is rejected from its headers alone."""
    import tracemalloc

    path = tmp_path / "bomb.npz"
    _zip_of_zeros(path, 862_000)
    assert path.stat().st_size < 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ClipError, match="'poses': 862,000 frames, more than the limit of 500,000") as err:
            amass.read_item(amass.AmassItem(str(path), "bomb"), model_dir=models)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20 and "\n" not in str(err.value) and str(err.value).startswith(str(path))
    # The bound is a reader option; the byte bound of load_npz holds whatever the frame count.
    small = tmp_path / "small.npz"
    _zip_of_zeros(small, 300)
    with pytest.raises(ClipError, match="300 frames, more than the limit of 100"):
        amass.read_item(amass.AmassItem(str(small), "small"), model_dir=models, max_frames=100)
    from ramos.motion.io._common import load_npz

    with pytest.raises(ClipError, match=r"arrays would take 3\d\d KiB in memory, more than the limit of 1 KiB"):
        load_npz(small, max_bytes=1024)


def test_member_header_larger_than_member(tmp_path: Path) -> None:
    """An .npy member whose header promises more data than the zip directory says it holds."""
    import zipfile

    from ramos.motion.io._common import load_npz

    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("poses.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 156)})
        f.write(bytes(1000))
    expected = r"'poses': header says shape \(1000000000, 156\) float64 .* but the member holds 1000 bytes"
    with pytest.raises(ClipError, match=expected):
        load_npz(path)


@pytest.mark.parametrize("content, reason", [
    (b"poses,trans\n0,0\n", r"not a \.npz file \(not a zip archive; looks like text"),
    (np.lib.format.MAGIC_PREFIX + b"\x01\x00", r"not a \.npz file \(not a zip archive; looks like a \.npy array\)"),
])
def test_not_a_zip_says_so(tmp_path: Path, models: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "seq.npz"
    path.write_bytes(content)
    with pytest.raises(ClipError, match=reason) as err:
        amass.read_item(amass.AmassItem(str(path), "seq"), model_dir=models)
    assert "pickl" not in str(err.value)


def test_zero_frame_rate_is_one_clear_line(tmp_path: Path, models: Path) -> None:
    path = tmp_path / "still.npz"
    _sequence(path, mocap_framerate=np.array(0.0))
    with pytest.raises(ClipError) as err:
        amass.read_item(amass.AmassItem(str(path), "still"), model_dir=models)
    assert str(err.value) == f"{path}: invalid frame rate 0 (mocap_framerate); it must be positive"


def test_body_models_under_the_root_are_not_motions(tmp_path: Path, models: Path) -> None:
    """model.npz files (by their keys, or as the --body-model path) are skipped as not_motion, not failed."""
    import json

    from ramos.stages.data.prepare import load_prepare_config, prepare_dataset

    root = tmp_path / "amass"
    for i in range(3):
        _sequence(root / "CMU" / f"0{i}_poses.npz", t=40, seed=i)
    _write_model(root / "CMU" / "stray_model.npz")  # a body model by its keys
    _write_model(root / "body" / "female" / "model.npz")  # the --body-model folder
    np.savez(root / "body" / "extra.npz", poses=np.zeros((4, 156)))  # under --body-model, whatever it holds
    items = amass.list_items(root, model_dir=root / "body")
    assert [i.source_id for i in items] == ["CMU/00_poses", "CMU/01_poses", "CMU/02_poses"]
    assert {n["code"] for n in items.notes} == {"not_motion"} and len(items.notes) == 3
    reasons = {Path(n["item"]).name: n["reason"] for n in items.notes}
    assert reasons["stray_model.npz"].endswith("an SMPL body model (v_template, shapedirs, J_regressor, "
                                               "kintree_table), not a motion; skipped")
    assert "the body model given as model_dir (--body-model)" in reasons["extra.npz"]

    cfg = load_prepare_config("amass", overrides={"min_frames": 2, "window": 10, "filters.max_speed_mps": None,
                                                  "split.val_ratio": 0.0, "split.test_ratio": 0.0})
    out = tmp_path / "ds"
    summary = prepare_dataset("amass", out, cfg, root=root, workers=1, progress=False,
                              reader_opts={"model_dir": str(root / "body")})
    man = json.loads((out / "manifest.json").read_text())
    assert summary.clips == 3 and man["rejections"] == []
    assert man["counts"]["warnings_by_code"] == {"not_motion": 3}
    # Previewing raw clips by id reads every item: the body models are not among them.
    from ramos.cli import main

    assert main(["data", "preview", "--source", "amass", "--root", str(root), "--body-model", str(root / "body"),
                 "--ids", "CMU/02_poses", "--max-seconds", "0.05", "--out", str(tmp_path / "gifs")]) == 0
    assert [p.name for p in (tmp_path / "gifs").iterdir()] == ["CMU_02_poses.gif"]
