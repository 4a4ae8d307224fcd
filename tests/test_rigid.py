"""The rigid skeleton layer: constant bones, rigid clusters, exact FK (a BVH reproduces it), identity on
captured motion, gradients for training through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ramos.motion.export import to_bvh
from ramos.motion.io import builtin
from ramos.motion.io.bvh import parse_bvh
from ramos.motion.rigid import RigidSkeleton, make_rigid, rest_skeleton
from ramos.motion.skeleton import HUMANML3D


def _clip(name: str) -> np.ndarray:
    clip = next(c for c in builtin.load_all() if c.labels[0] == name)
    return clip.positions.astype(np.float32)


def _children_distances(pos: np.ndarray) -> np.ndarray:
    """Distances between the children of every joint that has several (rigid in a real skeleton)."""
    out = []
    for p in range(HUMANML3D.num_joints):
        cs = [c for c, q in enumerate(HUMANML3D.parents) if q == p]
        for i in range(len(cs)):
            for j in range(i + 1, len(cs)):
                out.append(np.linalg.norm(pos[:, cs[i]] - pos[:, cs[j]], axis=-1))
    return np.stack(out, -1)


def _stretched(pos: np.ndarray, seed: int = 0) -> np.ndarray:
    """A motion whose bones stretch and whose hips/shoulders wobble, like a free decoder's output."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=0.03, size=pos.shape).astype(np.float32)
    noise[:, HUMANML3D.root] = 0.0
    return pos + noise


@pytest.mark.parametrize("name", ["walk", "cartwheel", "backflip"])
def test_captured_motion_passes_through_unchanged(name: str) -> None:
    pos = _clip(name)
    out = make_rigid(pos, HUMANML3D)
    assert np.abs(out - pos).max() < 1e-4  # metres: the captured clips are rigid already


def test_output_is_a_rigid_skeleton_and_bvh_reproduces_it() -> None:
    pos = _clip("cartwheel")
    rest = rest_skeleton(pos, HUMANML3D)
    free = _stretched(pos)
    assert HUMANML3D.bone_lengths(free).std(0).max() > 0.02  # the input really stretches
    out = make_rigid(free, HUMANML3D, rest)
    lengths = HUMANML3D.bone_lengths(out)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(rest[HUMANML3D.bones[:, 1]], axis=-1),
                                                        lengths.shape), atol=1e-5)
    assert _children_distances(out).std(0).max() < 1e-5  # hips-spine and neck-collars move as one body
    # Forward kinematics of one rest pose: the BVH writer's rotation solve gives it back exactly.
    bvh = parse_bvh(to_bvh(out, HUMANML3D, 20.0))
    back = bvh.positions()[:, [bvh.names.index(n) for n in HUMANML3D.names]]
    assert np.abs(back - out).max() < 1e-4
    # Near the input: every joint lands as near its decoded place as its bone allows, so with
    # independent noise on every joint the output stays within 1.5x the noise's own size (aiming along
    # each decoded bone instead let the misses add up down the chains: 1.7x).
    assert np.linalg.norm(out - free, axis=-1).mean() < 1.5 * np.linalg.norm(free - pos, axis=-1).mean()


def test_chain_ends_land_where_they_were_decoded_and_the_root_stays() -> None:
    """Feet and hands are where the decoder put them whenever the chain reaches (FABRIK), so a
    planted foot stays planted; the joints between take up the bones' lengths."""
    pos = _clip("walk")
    rest = rest_skeleton(pos, HUMANML3D)
    shrunk = pos.copy()
    shrunk[:, 1:] = pos[:, :1] + (pos[:, 1:] - pos[:, :1]) * 0.95  # a chord-like shrink towards the root
    layer = RigidSkeleton(HUMANML3D.to_dict(), rest.tolist())
    out = layer(torch.from_numpy(shrunk)).numpy()
    np.testing.assert_allclose(out[:, 0], shrunk[:, 0], atol=1e-7)
    ends = [HUMANML3D.index(n) for n in ("left_foot", "right_foot", "left_wrist", "right_wrist")]
    assert np.linalg.norm(out[:, ends] - shrunk[:, ends], axis=-1).mean() < 0.003  # metres
    # Aiming each bone from its placed parent alone (no backward pass) misses the feet by centimetres.
    assert np.linalg.norm(shrunk[:, ends] - pos[:, ends], axis=-1).mean() > 0.02


def test_gradients_flow_through_the_layer() -> None:
    pos = torch.from_numpy(_stretched(_clip("jump")[:20])).requires_grad_(True)
    rest = rest_skeleton(_clip("jump"), HUMANML3D)
    out = RigidSkeleton(HUMANML3D.to_dict(), rest.tolist())(pos)
    out.square().sum().backward()
    assert pos.grad is not None and torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0


def _hip_yaw_steps(x: np.ndarray) -> np.ndarray:
    v = x[:, HUMANML3D.index("right_hip")] - x[:, HUMANML3D.index("left_hip")]
    a = np.arctan2(v[:, 0], v[:, 2])
    return np.degrees(np.abs((np.diff(a) + np.pi) % (2 * np.pi) - np.pi))


def _turn_hips(x: np.ndarray, frame: int, degrees: float, scale: float) -> None:
    """The hips of one frame turned about the pelvis by ``degrees`` and scaled towards it (in place)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
    for name in ("left_hip", "right_hip"):
        j = HUMANML3D.index(name)
        x[frame, j] = x[frame, 0] + scale * (x[frame, j] - x[frame, 0]) @ rot.T


def test_a_decoder_flip_of_the_hips_becomes_a_turn_and_a_spike_is_ignored() -> None:
    """Decoders take quick half turns by shrinking the hips to a point and growing them back mirrored,
    and now and then write one frame pointing elsewhere at full width: the pelvis would flip in one
    frame (real motion turns it by at most 45 degrees); the steady layer turns it instead."""
    pos = _clip("jump")[:60]
    layer = RigidSkeleton(HUMANML3D.to_dict(), rest_skeleton(pos, HUMANML3D).tolist())
    flip = pos.copy()
    for f, (deg, scale) in zip(range(20, 25), [(10, 0.6), (40, 0.3), (150, 0.05), (170, 0.3), (180, 0.6)]):
        _turn_hips(flip, f, deg, scale)  # shrinking, collapsed pointing anywhere, growing back mirrored
    flip[25:] = pos[25:]
    for f in range(25, 60):
        _turn_hips(flip, f, 180, 1.0)
    _turn_hips(flip, 40, 120, 1.0)  # one frame elsewhere, at full width
    steady = layer(torch.from_numpy(flip)).numpy()
    raw = layer(torch.from_numpy(flip), steady=False).numpy()
    assert _hip_yaw_steps(raw[15:30]).max() > 90 and _hip_yaw_steps(raw[35:45]).max() > 90
    assert _hip_yaw_steps(steady[15:30]).max() < 60  # the half turn spread over the collapsed frames
    assert _hip_yaw_steps(steady[35:45]).max() < 10  # the spike gone: the clip's own turning
    assert np.allclose(steady[:19], raw[:19], atol=1e-6) and np.allclose(steady[26:39], raw[26:39], atol=1e-6)


@pytest.mark.parametrize("name", ["walk", "spinkick", "cartwheel", "backflip"])
def test_captured_motion_is_left_alone_by_the_steady_layer(name: str) -> None:
    pos = _clip(name)
    layer = RigidSkeleton(HUMANML3D.to_dict(), rest_skeleton(pos, HUMANML3D).tolist())
    with torch.no_grad():
        assert torch.equal(layer(torch.from_numpy(pos)), layer(torch.from_numpy(pos), steady=False))


def test_bad_rest_skeletons_are_one_clear_line() -> None:
    rest = rest_skeleton(_clip("walk"), HUMANML3D)
    with pytest.raises(ValueError, match=r"offsets must be \(22, 3\)"):
        RigidSkeleton(HUMANML3D.to_dict(), rest[:5].tolist())
    rest[HUMANML3D.index("left_knee")] = 0.0
    with pytest.raises(ValueError, match="zero-length bones in the rest skeleton: left_knee"):
        RigidSkeleton(HUMANML3D.to_dict(), rest.tolist())
