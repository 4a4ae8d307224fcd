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


def test_bad_rest_skeletons_are_one_clear_line() -> None:
    rest = rest_skeleton(_clip("walk"), HUMANML3D)
    with pytest.raises(ValueError, match=r"offsets must be \(22, 3\)"):
        RigidSkeleton(HUMANML3D.to_dict(), rest[:5].tolist())
    rest[HUMANML3D.index("left_knee")] = 0.0
    with pytest.raises(ValueError, match="zero-length bones in the rest skeleton: left_knee"):
        RigidSkeleton(HUMANML3D.to_dict(), rest.tolist())
