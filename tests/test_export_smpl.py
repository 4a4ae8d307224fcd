"""SMPL-H export (AMASS .npz layout): fitted parameters read back through the AMASS reader.

SMPL's files are licensed, so a small synthetic body model stands in: 60 vertices whose regressed
rest joints form a T-pose of the 22 SMPL body joints, with shape directions that lengthen the whole
body, legs, arms, spine, hips and collars. The embedded clips share one skeleton (DeepMimic's
humanoid mapped to SMPL's joints: level hips, a longer chest than SMPL's), so the main model is
built on that skeleton's T-pose with *other* proportions in its template: only the fitted betas
give the clips' bone lengths back. A model on SMPL's own layout is measured too; there the
skeletons differ in ways no length scaling covers.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_io_amass import _smplh_parents

from ramos.motion.clip import Clip
from ramos.motion.export import SmplExportError, fit_smpl, rest_offsets, save_smpl_npz, solve_rotations
from ramos.motion.io import amass
from ramos.motion.io._common import forward_kinematics, to_y_up
from ramos.motion.io.builtin import load_all
from ramos.motion.preprocess import resample
from ramos.motion.skeleton import HUMANML3D

BODY_PARENTS = list(HUMANML3D.parents)
# SMPL's rest joints, roughly (model frame: y up, facing +z, left at +x; as in test_io_amass.py).
SMPL_BODY = np.array([[0, 0, 0], [.06, -.09, 0], [-.06, -.09, 0], [0, .11, 0], [.1, -.47, 0], [-.1, -.47, 0],
                      [0, .24, 0], [.09, -.87, -.03], [-.09, -.87, -.03], [0, .3, .02], [.11, -.93, .1],
                      [-.11, -.93, .1], [0, .51, 0], [.08, .42, 0], [-.08, .42, 0], [0, .6, .05], [.17, .43, 0],
                      [-.17, .43, 0], [.43, .43, 0], [-.43, .43, 0], [.68, .43, 0], [-.68, .43, 0]], float)
# Shape directions: each beta lengthens a group of bones by this fraction per unit (children follow).
SHAPE_GROUPS: list[tuple[tuple[int, ...], float]] = [
    (tuple(range(1, 52)), 0.05),  # whole body
    ((4, 5, 7, 8, 10, 11), 0.05),  # legs
    ((16, 17, 18, 19, 20, 21), 0.05),  # arms
    ((3, 6, 9, 12, 15), 0.05),  # spine, neck, head
    ((1, 2), 0.1),  # hips
    ((13, 14), 0.1),  # collars
]
# The main model's template is the clips' skeleton reshaped by minus these betas (shorter body and
# legs, longer arms and spine, narrower hips and collars than the clips): the fit has to find them.
TEMPLATE_OFFSET = np.array([0.8, -1.2, 1.0, -0.9, 0.7, 0.6, 0.0, 0.0, 0.0, 0.0])
NUM_BETAS = 10
FPS = 20.0


def _write_model(path: Path, body: np.ndarray, template_offset: np.ndarray | None = None, seed: int = 0,
                 body_joints: int = 22) -> dict[str, np.ndarray]:
    """A 60-vertex body model whose regressed rest joints at betas = ``template_offset`` are ``body``.

    ``body`` (22, 3) rest joints; the hands sit near the wrists. The regressor mixes each joint's own
    vertex with a few spare ones, and the joint vertices are solved so that the regressed joints
    (and their shape directions) are exact. ``body_joints`` < 22 truncates the kinematic tree.
    """
    rng = np.random.default_rng(seed)
    parents = _smplh_parents()
    hands = np.concatenate([np.tile(body[w], (15, 1)) + rng.normal(scale=0.03, size=(15, 3)) for w in (20, 21)])
    joints = np.concatenate([body, hands])
    dj = np.zeros((52, 3, NUM_BETAS))  # joint displacement per beta
    for k, (bones, fraction) in enumerate(SHAPE_GROUPS):
        for c in bones:
            for j in range(52):  # the bone's child joint and everything below it move
                a = j
                while a > c:
                    a = parents[a]
                if a == c:
                    dj[j, :, k] += fraction * (joints[c] - joints[parents[c]])
    dj[..., len(SHAPE_GROUPS):] = rng.normal(scale=0.002, size=(52, 3, NUM_BETAS - len(SHAPE_GROUPS)))
    if template_offset is not None:
        joints = joints - dj @ template_offset
    spare = rng.normal(scale=0.2, size=(8, 3))
    spare_dirs = rng.normal(scale=0.002, size=(8, 3, NUM_BETAS))
    jr = np.zeros((52, 60))
    jr[np.arange(52), np.arange(52)] = 0.9
    jr[:, 52:] = 0.1 / 8
    v = np.concatenate([(joints - jr[:, 52:] @ spare) / 0.9, spare])
    shapedirs = np.concatenate([(dj - np.einsum("jv,vcb->jcb", jr[:, 52:], spare_dirs)) / 0.9, spare_dirs])
    n = body_joints if body_joints < 22 else 52
    model = {"v_template": v, "shapedirs": shapedirs, "J_regressor": jr[:n],
             "kintree_table": np.array([[2**32 - 1] + parents[1:n], list(range(n))], dtype=np.int64),
             "weights": np.full((60, n), 1 / n), "posedirs": np.zeros((60, 3, 459)),
             "f": np.zeros((10, 3), dtype=np.int64)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **model)
    return model


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """The embedded clips at 20 fps, (T, 22, 3)."""
    return {c.source_id: resample(c.positions, c.fps, FPS) for c in load_all()}


def _t_pose(positions: np.ndarray) -> np.ndarray:
    """(22, 3) T-pose joints of a motion's skeleton (mean bone lengths, pelvis at the origin)."""
    offsets = rest_offsets(positions)
    joints = np.zeros_like(offsets)
    for j, p in enumerate(BODY_PARENTS):
        joints[j] = offsets[j] if p < 0 else joints[p] + offsets[j]
    return joints


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, clips) -> Path:
    root = tmp_path_factory.mktemp("smplh")
    _write_model(root / "neutral" / "model.npz", _t_pose(clips["humanoid3d_walk"]), TEMPLATE_OFFSET)
    return root


def _read_back(path: Path, model_dir: Path) -> Clip:
    (item,) = amass.list_items(path)
    (clip,) = amass.read_item(item, model_dir=model_dir)
    return clip


def _errors(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    err = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=-1)
    return float(err.mean()), float(err.max())


@pytest.fixture(scope="module")
def native() -> dict[str, tuple[np.ndarray, float]]:
    """The embedded clips at their own frame rates."""
    return {c.source_id: (c.positions, c.fps) for c in load_all()}


@pytest.mark.parametrize("clip_id", ["humanoid3d_cartwheel", "humanoid3d_backflip", "humanoid3d_walk",
                                     "humanoid3d_dance_a", "humanoid3d_roll", "walker_turn_left0"])
def test_round_trip_through_the_amass_reader(tmp_path, model_dir, clips, clip_id):
    positions = clips[clip_id]
    path = save_smpl_npz(positions, tmp_path / "motion.npz", model_dir, fps=FPS)
    clip = _read_back(path, model_dir)
    assert clip.positions.shape == positions.shape  # frame count exact
    assert clip.fps == FPS
    mean, worst = _errors(clip.positions, positions)
    print(f"{clip_id}: read-back error mean {mean * 100:.3f} cm, max {worst * 100:.3f} cm")
    assert mean <= 0.01


def test_round_trip_at_the_native_frame_rate(tmp_path, model_dir, native):
    """The 16 fps backflip as captured: resampling it to 20 fps (positions interpolated mid-flip)
    shortens bones by up to ~18%, which no rigid body reproduces; its own frames are rigid."""
    positions, fps = native["humanoid3d_backflip"]
    clip = _read_back(save_smpl_npz(positions, tmp_path / "flip.npz", model_dir, fps=fps), model_dir)
    assert clip.positions.shape == positions.shape and clip.fps == fps == 16.0
    mean, worst = _errors(clip.positions, positions)
    print(f"humanoid3d_backflip at {fps:g} fps: read-back error mean {mean * 100:.3f} cm, max {worst * 100:.3f} cm")
    assert worst <= 0.002


def _rest_lengths(path: Path, model_dir: Path) -> np.ndarray:
    """Bone lengths of the body model's rest joints at the betas stored in ``path``."""
    model = amass.load_body_model(str(amass.model_file(model_dir, "neutral")))
    rest = model.rest_joints(np.load(path, allow_pickle=False)["betas"])[:22]
    return np.linalg.norm(rest[1:] - rest[BODY_PARENTS[1:]], axis=-1)


def test_beta_fit_absorbs_longer_bones(tmp_path, model_dir, clips):
    positions = clips["humanoid3d_cartwheel"]
    scaled = (positions - positions[:1, :1]) * 1.1 + positions[:1, :1]
    path = save_smpl_npz(scaled, tmp_path / "big.npz", model_dir, fps=FPS)
    clip = _read_back(path, model_dir)
    mean, worst = _errors(clip.positions, scaled)
    print(f"cartwheel x1.1: read-back error mean {mean * 100:.3f} cm, max {worst * 100:.3f} cm")
    assert mean <= 0.01
    base = save_smpl_npz(positions, tmp_path / "base.npz", model_dir, fps=FPS)
    np.testing.assert_allclose(_rest_lengths(path, model_dir) / _rest_lengths(base, model_dir), 1.1, rtol=0.01)
    # The template alone (betas zero) is far off: the fitted shape is what brings the error down.
    template = amass.load_body_model(str(amass.model_file(model_dir, "neutral"))).rest_joints(np.zeros(NUM_BETAS))
    observed = np.linalg.norm(scaled[:, 1:] - scaled[:, BODY_PARENTS[1:]], axis=-1).mean(0)
    assert np.abs(np.linalg.norm(template[1:22] - template[BODY_PARENTS[1:]], axis=-1) - observed).max() > 0.05


def test_fit_exactly_inverts_the_model(model_dir):
    """Joints made by the reader's own FK from known parameters come back (to the ridge's pull)."""
    model = amass.load_body_model(str(amass.model_file(model_dir, "neutral")))
    rng = np.random.default_rng(3)
    t = 12
    poses = np.zeros((t, 156))
    poses[:, :66] = rng.normal(scale=0.5, size=(t, 66))
    betas = np.zeros(NUM_BETAS)
    betas[:6] = rng.normal(scale=1.0, size=6)
    trans = rng.normal(scale=0.3, size=(t, 3))
    joints = to_y_up(amass.joint_positions(poses, trans, betas, model), "z_up")
    fitted = fit_smpl(joints, model, num_betas=NUM_BETAS)
    # Betas are not all identifiable from 22 joints (the whole-body direction is a sum of the
    # others there), so the shape is checked through the rest joints it gives.
    np.testing.assert_allclose(model.rest_joints(fitted["betas"])[:22], model.rest_joints(betas)[:22], atol=5e-4)
    back = amass.joint_positions(fitted["poses"], fitted["trans"], fitted["betas"], model)
    np.testing.assert_allclose(to_y_up(back, "z_up"), joints, atol=1e-3)
    assert fitted["poses"].shape == (t, 156) and fitted["trans"].shape == (t, 3)
    assert fitted["betas"].shape == (NUM_BETAS,) and not fitted["poses"][:, 66:].any()


def test_smpl_layout_model_keeps_misses_from_adding_up(tmp_path, clips):
    """On SMPL's own joint layout the clips' skeleton cannot be matched; report what is left.

    The clips' hips are level with the pelvis and their chest is longer, SMPL's hips sit 9 cm
    below the pelvis: no length scaling covers that. Aiming each bone from its fitted parent
    keeps those misses from adding up down the chains, unlike aiming along the motion's bones.
    """
    root = tmp_path / "smpl_layout"
    _write_model(root / "model.npz", SMPL_BODY)
    model = amass.load_body_model(str(root / "model.npz"))
    for clip_id in ("humanoid3d_walk", "humanoid3d_cartwheel"):
        positions = clips[clip_id]
        path = save_smpl_npz(positions, tmp_path / f"{clip_id}.npz", root, fps=FPS)
        mean, worst = _errors(_read_back(path, root).positions, positions)
        # The same betas, rotations aimed along the motion's own bones (one solve_rotations pass).
        pos_z = to_y_up(positions.astype(np.float64), "z_up")  # the axis map is its own inverse
        rest = model.rest_joints(np.load(path, allow_pickle=False)["betas"])[:22]
        offsets = np.concatenate([np.zeros((1, 3)), rest[1:] - rest[BODY_PARENTS[1:]]])
        plain, _ = forward_kinematics(BODY_PARENTS, offsets, solve_rotations(pos_z, offsets), pos_z[:, 0])
        plain_mean, plain_worst = _errors(to_y_up(plain, "z_up"), positions)
        print(f"{clip_id} on SMPL's layout: mean {mean * 100:.2f} cm, max {worst * 100:.2f} cm "
              f"(aimed along the motion's bones: mean {plain_mean * 100:.2f} cm, max {plain_worst * 100:.2f} cm)")
        assert mean < plain_mean


def test_file_layout_without_pickle(tmp_path, model_dir, clips):
    positions = clips["humanoid3d_walk"]
    # 30 fps is only stored (the rate is metadata), and must come back exactly.
    path = save_smpl_npz(positions, tmp_path / "walk.npz", model_dir, fps=30.0, gender="female", num_betas=16)
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"poses", "trans", "betas", "gender", "mocap_framerate", "surface_model_type"}
        assert data["poses"].shape == (len(positions), 156) and data["trans"].shape == (len(positions), 3)
        assert data["betas"].shape == (16,) and not data["betas"][NUM_BETAS:].any()
        assert str(data["gender"]) == "female" and str(data["surface_model_type"]) == "smplh"
        assert float(data["mocap_framerate"]) == 30.0
        assert all(data[k].dtype != object for k in data.files)
    # The female model is missing: the neutral one was used, and the reader falls back the same way.
    clip = _read_back(path, model_dir)
    assert clip.fps == 30.0 and clip.meta["gender"] == "female"
    assert _errors(clip.positions, positions)[0] <= 0.01


def test_atomic_write(tmp_path, model_dir, clips, monkeypatch):
    positions = clips["humanoid3d_walk"]
    path = tmp_path / "out.npz"
    path.write_bytes(b"old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_smpl_npz(positions, path, model_dir)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.npz"]  # old file kept, no debris
    monkeypatch.undo()
    # A name without the .npz suffix is written under that exact name.
    plain = save_smpl_npz(positions, tmp_path / "motion.amass", model_dir)
    assert plain.name == "motion.amass" and zipfile.is_zipfile(plain)
    assert sorted(os.listdir(tmp_path)) == ["motion.amass", "out.npz"]


def _one_line(excinfo: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_errors_are_one_line_and_name_the_file(tmp_path, model_dir, clips):
    positions = clips["humanoid3d_walk"]
    out = tmp_path / "x.npz"
    with pytest.raises(SmplExportError) as exc:
        save_smpl_npz(positions, out, tmp_path / "nowhere")
    _one_line(exc, "nowhere", "model.npz")
    _write_model(tmp_path / "truncated" / "model.npz", SMPL_BODY, body_joints=15)
    with pytest.raises(SmplExportError) as exc:
        save_smpl_npz(positions, out, tmp_path / "truncated")
    _one_line(exc, str(tmp_path / "truncated" / "model.npz"), "15 joints")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.npz").write_bytes(b"not a zip")
    with pytest.raises(SmplExportError) as exc:
        save_smpl_npz(positions, out, tmp_path / "broken")
    _one_line(exc, "broken", "not a .npz")
    with pytest.raises(SmplExportError) as exc:
        save_smpl_npz(positions[:, :21], out, model_dir)
    _one_line(exc, str(out), "(T, 22, 3)")
    bad = positions.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(SmplExportError) as exc:
        save_smpl_npz(bad, out, model_dir)
    _one_line(exc, str(out), "NaN")
    for fps in (0.0, -5.0, float("nan")):
        with pytest.raises(SmplExportError) as exc:
            save_smpl_npz(positions, out, model_dir, fps=fps)
        _one_line(exc, str(out), "fps")
    with pytest.raises(SmplExportError) as exc:
        save_smpl_npz(positions, out, model_dir, gender="other")
    _one_line(exc, str(out), "gender")
    assert not out.exists()
