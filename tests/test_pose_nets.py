"""Pose networks: the graph layer follows the skeleton, shapes, matched budgets, the pose loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ramos.motion.losses import PoseReconstruction
from ramos.motion.nets.pose import (
    GraphPoseDecoder,
    GraphPoseEncoder,
    SkeletonGraphConv,
    build_pose_nets,
    count_parameters,
    skeleton_partitions,
)
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.spec import build, spec_of

SK = HUMANML3D


def test_partitions_split_the_normalised_adjacency():
    parts = skeleton_partitions(SK)
    assert parts.shape == (3, SK.num_joints, SK.num_joints)
    np.testing.assert_allclose(parts.sum(0).numpy(), SK.normalized_adjacency(), atol=1e-6)
    lw, le = SK.index("left_wrist"), SK.index("left_elbow")
    assert parts[1, lw, le] > 0 and parts[2, lw, le] == 0  # the elbow is the wrist's parent
    assert parts[2, le, lw] > 0 and parts[1, le, lw] == 0  # the wrist is the elbow's child


def test_graph_layer_output_depends_only_on_the_neighbourhood():
    torch.manual_seed(0)
    conv = SkeletonGraphConv(skeleton_partitions(SK), 4, 5)
    with torch.no_grad():  # learned edge weights must not open edges that the skeleton lacks
        conv.edge_weight.normal_()
    x = torch.randn(1, SK.num_joints, 4)
    jac = torch.autograd.functional.jacobian(lambda v: conv(v), x)  # (1, J, 5, 1, J, 4)
    depends = jac[0, :, :, 0].abs().sum((1, 3)) > 0  # (J out, J in)
    np.testing.assert_array_equal(depends.numpy(), SK.adjacency(self_loops=True) > 0)


def test_two_graph_layers_reach_two_hops_only():
    """Stacking widens the receptive field one bone per layer (wrist sees the collar after 2, not 3 hops)."""
    torch.manual_seed(0)
    parts = skeleton_partitions(SK)
    net = torch.nn.Sequential(SkeletonGraphConv(parts, 3, 3), SkeletonGraphConv(parts, 3, 3))
    x = torch.randn(1, SK.num_joints, 3, requires_grad=True)
    net(x)[0, SK.index("left_wrist")].sum().backward()
    touched = set(np.flatnonzero(x.grad[0].abs().sum(-1).numpy() > 0))
    names = {SK.names[i] for i in touched}
    assert names == {"left_wrist", "left_elbow", "left_shoulder"}


@pytest.mark.parametrize("family", ["graph", "mlp"])
@pytest.mark.parametrize("latent", [4, 32])
def test_shapes_and_rebuild_from_spec(family, latent):
    enc, dec = build_pose_nets(family, SK, latent)
    x = torch.randn(5, SK.num_joints, 3)
    mu, logvar = enc(x)
    assert mu.shape == logvar.shape == (5, latent)
    assert dec(mu).shape == (5, SK.num_joints, 3)
    for net in (enc, dec):
        twin = build(spec_of(net))
        twin.load_state_dict(net.state_dict())
        assert type(twin) is type(net)
    assert torch.allclose(build(spec_of(enc))(x)[0].shape[0] * torch.ones(1), torch.tensor([5.0]))


@pytest.mark.parametrize("latent", [4, 8, 16, 32])
@pytest.mark.parametrize("channels,depth", [(32, 2), (48, 3)])
def test_mlp_budget_matches_graph_within_ten_percent(latent, channels, depth):
    graph = build_pose_nets("graph", SK, latent, channels, depth)
    mlp = build_pose_nets("mlp", SK, latent, channels, depth)
    g, m = count_parameters(*graph), count_parameters(*mlp)
    assert abs(m - g) / g < 0.10
    assert isinstance(graph[0], GraphPoseEncoder) and isinstance(graph[1], GraphPoseDecoder)


def test_graph_nets_work_on_another_skeleton():
    """Nothing hard-codes 22 joints: a 4-joint chain works end to end."""
    sk = Skeleton.from_chains(["root", "left_hip", "right_hip", "left_shoulder", "right_shoulder"][:5],
                              [[0, 1], [0, 2], [0, 3], [0, 4]])
    enc, dec = build_pose_nets("graph", sk, 3, channels=8, depth=1, readout_channels=2)
    assert dec(enc(torch.randn(2, 5, 3))[0]).shape == (2, 5, 3)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pose network family"):
        build_pose_nets("transformer", SK, 4)  # type: ignore[arg-type]


def test_pose_loss_terms():
    loss = PoseReconstruction(SK.to_dict(), sigma_m=0.01, bone_weight=1.0)
    x = torch.randn(3, SK.num_joints, 3) * 0.3
    same = loss(x.clone(), {"pose": x})
    assert same["recon"].item() == 0.0 and same["mpjpe_mm"].item() == 0.0
    shifted = loss(x + torch.tensor([0.01, 0.0, 0.0]), {"pose": x})
    # A rigid 1 cm shift: 1 sigma per joint, bones untouched.
    assert shifted["recon"].item() == pytest.approx(SK.num_joints, rel=1e-4)
    assert shifted["mpjpe_mm"].item() == pytest.approx(10.0, rel=1e-4)
    assert shifted["bone_err_mm"].item() == pytest.approx(0.0, abs=1e-3)
    stretched = loss(x * 1.1, {"pose": x})
    bone_free = PoseReconstruction(SK.to_dict(), sigma_m=0.01, bone_weight=0.0)(x * 1.1, {"pose": x})
    assert stretched["bone_err_mm"].item() > 0 and stretched["recon"] > bone_free["recon"]


def test_fk_head_keeps_bone_lengths_and_reproduces_a_pose():
    from ramos.motion.io import READERS
    from ramos.motion.nets.pose import SkeletonFK, canonical_poses

    pose = canonical_poses(READERS["builtin"].read_all(None)[4].positions[10], SK)
    lengths = SK.bone_lengths(pose)
    fk = SkeletonFK(SK, [float(v) for v in lengths])
    # Any vectors: the bones come out at the given lengths, the root at the origin.
    out = fk(torch.randn(6, SK.num_joints, 3) * 5).detach().numpy()
    np.testing.assert_allclose(SK.bone_lengths(out), np.broadcast_to(lengths, (6, len(lengths))), rtol=1e-4)
    np.testing.assert_allclose(out[:, SK.root], 0.0, atol=1e-7)
    # The pose's own bone vectors (any positive scale) give the pose back.
    vec = np.zeros_like(pose)
    vec[SK.bones[:, 1]] = (pose[SK.bones[:, 1]] - pose[SK.bones[:, 0]]) * 3.0
    np.testing.assert_allclose(fk(torch.from_numpy(vec)[None])[0].numpy(), pose, atol=1e-5)


@pytest.mark.parametrize("family", ["graph", "mlp"])
def test_bone_output_decoders_cannot_stretch_bones(family):
    lengths = [0.1 + 0.01 * i for i in range(len(SK.bones))]
    enc, dec = build_pose_nets(family, SK, 8, channels=16, depth=1, bone_lengths=lengths)
    free = build_pose_nets(family, SK, 8, channels=16, depth=1)
    assert count_parameters(*free) == count_parameters(enc, dec)  # the head adds no parameters
    out = dec(torch.randn(5, 8) * 3).detach().numpy()
    np.testing.assert_allclose(SK.bone_lengths(out), np.broadcast_to(lengths, (5, len(lengths))), rtol=1e-4)
    twin = build(spec_of(dec))
    twin.load_state_dict(dec.state_dict())
    z = torch.randn(2, 8)
    torch.testing.assert_close(twin(z), dec(z))
