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
