"""Long motions (ramos.motion.compose): composition, continuation, in-betweening, streaming, the CLI,
given motions from files, and bad input.

One tiny model (2 s windows of the embedded set, an MLP VAE, a few diffusion steps, 10 known frames
at each end) is trained once for the module, as in test_generate; the tests check behaviour (lengths,
given frames kept, continuity at the joins, errors), not motion quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_generate import train_tiny

from ramos.cli import main
from ramos.motion.compose import Composer, Segment, context_features, parse_timeline, read_given_motion
from ramos.motion.dataset import MotionDataset
from ramos.motion.export import save_bvh
from ramos.motion.generate import GenerationError, MotionGenerator


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data set folder, diffusion checkpoint) of the tiny model of test_generate (10 known frames)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    data, _, ckpt, _ = train_tiny(tmp_path_factory.mktemp("compose"))
    yield data, ckpt
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen(trained):
    return MotionGenerator.load(trained[1])


@pytest.fixture(scope="module")
def real(trained):
    """A real 2 s window of the data set (world coordinates, floor at 0)."""
    data = MotionDataset(trained[0])
    i = int(np.flatnonzero(data.lengths == data.window)[0])
    return np.asarray(data.windows[i], dtype=np.float32)


def _root_steps(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(x[:, 0, [0, 2]], axis=0), axis=-1)


def test_context_features_are_the_first_and_last_valid_frames():
    x = np.arange(2 * 6 * 1 * 3, dtype=np.float32).reshape(2, 6, 1, 3)
    pre, suf = context_features(x, np.array([6, 3]), 2)
    assert np.array_equal(pre[0], x[0, :2].ravel()) and np.array_equal(suf[0], x[0, 4:6].ravel())
    assert np.array_equal(suf[1], x[1, 1:3].ravel())  # the last valid frames, not the padding
    short, _ = context_features(x, np.array([1, 1]), 2)
    assert np.array_equal(short[0], np.concatenate([x[0, 0], x[0, 0]]).ravel())  # repeats its one frame


def test_the_checkpoint_knows_its_known_frames(gen):
    assert gen.context_frames == 10
    assert set(gen.module.hparams.cond_drop) == {"prefix", "suffix"}


def test_known_frames_left_out_are_the_same_as_zeros(gen):
    """Generation without known frames leaves the keywords out (no cost); the denoiser reads that as
    the zero ("not given") condition it was trained with."""
    m, n = gen.module, 3
    zeros = torch.zeros(n, gen.context_frames * 22 * 3 + 1)
    x, t = torch.randn(n, *m.latent_shape.tolist()), torch.full((n,), 500)
    y = gen.condition([None] * n, ["a person walks"] * n)[0]
    net = m.ema.module.eval()
    with torch.no_grad():
        out = net(x, t, y, length=torch.full((n,), 2.0))
        assert torch.allclose(out, net(x, t, y, length=torch.full((n,), 2.0), prefix=zeros, suffix=zeros), atol=1e-5)
        given = torch.randn_like(zeros)
        assert not torch.allclose(out, net(x, t, y, length=torch.full((n,), 2.0), prefix=given), atol=1e-3)


def test_known_frames_are_given_only_from_cond_until_on(gen):
    """``cond_until`` below every timestep is sampling without the known frames, above every timestep
    sampling with them throughout; in between, the early steps run without them."""
    m = gen.module
    y = gen.condition([None], ["a person walks"])[0]
    noise = torch.randn(1, *m.latent_shape.tolist(), generator=torch.Generator().manual_seed(3))
    length = {"length": torch.tensor([4.0])}
    prefix = {**length, "prefix": torch.randn(1, gen.context_frames * 22 * 3 + 1, generator=torch.Generator().manual_seed(4))}

    def sample(cond, until=None):
        return m.sample_latents(1, y, cond=cond, noise=noise, cond_until=until)

    without, always = sample(length), sample(prefix)
    assert not torch.allclose(without, always, atol=1e-4)
    assert torch.allclose(sample(prefix, -1), without, atol=1e-5)
    assert torch.allclose(sample(prefix, m.noise_cfg.num_train_timesteps), always, atol=1e-5)
    late = sample(prefix, 500)
    assert not torch.allclose(late, without, atol=1e-4) and not torch.allclose(late, always, atol=1e-4)


def test_composition_has_the_asked_lengths_and_no_jump_at_the_joins(gen):
    segments = [Segment("walk", 3.0, is_label=True), Segment("run", 1.5, is_label=True), Segment("jump", 2.5, is_label=True)]
    out = Composer(gen).compose(segments, seed=3)
    assert out.positions.shape == (140, 22, 3) and np.isfinite(out.positions).all()
    assert [(s["start"], s["end"]) for s in out.segments] == [(0, 60), (60, 90), (90, 140)]
    assert out.joins and len(out.offsets_m) == len(out.joins)
    steps = _root_steps(out.positions)
    inside = np.delete(steps, [j - 1 for j in out.joins])
    # The decoder's offset from the known frames is blended away: the step into each new window is
    # one of the model's own steps, no jump.
    assert steps[[j - 1 for j in out.joins]].max() <= inside.max() + 1e-6


def test_the_stream_is_the_composition_in_bounded_blocks(gen):
    segments = [Segment("walk", 5.0, is_label=True), Segment("spin", 2.0, is_label=True)]
    composer = Composer(gen)
    blocks = list(composer.stream(segments, seed=1))
    assert all(len(b) <= gen.window for b in blocks)
    assert np.allclose(np.concatenate(blocks), composer.compose(segments, seed=1).positions)


def test_continuation_keeps_the_given_frames_and_moves_on_from_them(gen, real):
    out = Composer(gen).compose([Segment("walk", 2.0, is_label=True)], seed=0, prefix=real)
    assert out.positions.shape == (len(real) + 40, 22, 3)
    assert np.array_equal(out.positions[:len(real)], real)
    step = np.linalg.norm(out.positions[len(real), 0] - real[-1, 0])
    assert step <= _root_steps(out.positions[len(real):]).max() + 1e-6


def test_inbetweening_keeps_both_sides_exactly(gen, real):
    before, after = real[:10], real[30:]
    motion, offsets = Composer(gen).inbetween(before, after, 12, Segment("walk", 0.6, is_label=True), seed=2)
    assert motion.shape == (10 + 12 + 10, 22, 3) and len(offsets) == 2
    assert np.array_equal(motion[:10], before) and np.array_equal(motion[-10:], after)
    # Longer than one window: made window by window, continuing the frames so far, the last meeting ``after``.
    keys = [(5, real[20]), (47, real[25])]
    motion, offsets = Composer(gen).inbetween(before, after, 60, Segment("walk", 3.0, is_label=True), 2, keys)
    assert motion.shape == (10 + 60 + 10, 22, 3) and len(offsets) == 3 + 1 + 1 + 1  # 3 windows, 2 keyframes
    assert np.array_equal(motion[:10], before) and np.array_equal(motion[-10:], after)
    assert np.array_equal(motion[10 + 5], real[20]) and np.array_equal(motion[10 + 47], real[25])
    with pytest.raises(GenerationError, match="outside 1..30 .* a longer one needs frames before it"):
        Composer(gen).inbetween(None, after, 31)


def test_keyframes_are_met_exactly_with_or_without_sides(gen, real):
    keys = [(14, real[24]), (0, real[10]), (29, real[39])]  # any order: sorted by frame
    motion, offsets = Composer(gen).inbetween(None, None, 30, Segment("walk", 1.5, is_label=True), 1, keys)
    assert motion.shape == (30, 22, 3) and len(offsets) == 3
    for f, pose in keys:
        assert np.array_equal(motion[f], pose)
    before, after = real[:10], real[34:]
    motion, offsets = Composer(gen).inbetween(before, after, 20, Segment("walk", 1.0, is_label=True), 1,
                                              [(9, real[19])])
    assert motion.shape == (10 + 20 + 6, 22, 3) and len(offsets) == 3
    assert np.array_equal(motion[:10], before) and np.array_equal(motion[-6:], after)
    assert np.array_equal(motion[10 + 9], real[19])


@pytest.mark.parametrize("keys, message", [
    ([(30, None)], "keyframe 1 at frame 30 is outside the generated motion \\(frames 0 to 29"),
    ([(-1, None)], "outside the generated motion"),
    ([(3, None), (3, None)], "two keyframes at frame 3"),
    ([(3, "other")], "keyframe 1 has shape \\(1, 24, 3\\): another skeleton"),
    ([], "needs frames before or after the gap, or keyframes"),
])
def test_bad_keyframes_are_one_line_errors(gen, real, keys, message):
    keys = [(f, np.zeros((24, 3), np.float32) if p == "other" else real[0]) for f, p in keys]
    with pytest.raises(GenerationError, match=message) as err:
        Composer(gen).inbetween(None, None, 30, keyframes=keys)
    assert "\n" not in str(err.value)


def test_offsets_are_met_at_anchors_held_beyond_them_and_smooth_between():
    from ramos.motion.compose import _offset_field

    a, b = np.full((2, 3), 1.0, np.float32), np.full((2, 3), -2.0, np.float32)
    f = _offset_field([(3, a), (13, b)], 0, 20)
    assert np.allclose(f[:4], a) and np.allclose(f[13:], b)  # each anchor's offset at and beyond it
    assert np.allclose(f[8], (a + b) / 2)  # half way: the mean
    steps = np.diff(f[:, 0, 0])
    assert np.all(steps <= 1e-6) and abs(steps[3]) < abs(steps[7]) > abs(steps[12])  # monotone, flat at the anchors
    # A joint that travels takes the change as it travels: none while it stands (a planted foot stays planted).
    path = np.zeros((20, 2))
    path[8:, 1] = np.arange(1, 13) * 0.02  # joint 1 stands until frame 7, then moves 2 cm a frame
    g = _offset_field([(3, a), (13, b)], 0, 20, path)
    assert np.allclose(g[:, 0], f[:, 0]) and np.allclose(g[:8, 1], a[1]) and np.allclose(g[13:, 1], b[1])
    assert np.allclose(np.diff(g[7:14, 1, 0]), (b - a)[1, 0] / 6)  # evenly over its 6 moving frames


def test_generated_feet_stay_on_or_above_the_floor():
    from ramos.motion.compose import _feet_above_floor
    from ramos.motion.skeleton import HUMANML3D

    feet = [j for f in HUMANML3D.feet for j in (f, HUMANML3D.parents[f])]  # toes and ankles
    blended = np.zeros((3, 22, 3), np.float32)
    blended[..., 1] = 0.2
    blended[1, feet, 1] = -0.05  # pushed 5 cm below the floor
    blended[2, :, 1] = -0.1  # the whole body too low: only the feet are lifted
    out = _feet_above_floor(blended, HUMANML3D)
    assert np.allclose(out[0], blended[0])  # above the floor: as blended
    assert np.allclose(out[1:, feet, 1], 0.0)
    others = [j for j in range(22) if j not in feet]
    assert np.array_equal(out[:, others], blended[:, others])


def test_inertialize_baseline_joins_windows_without_known_frames(gen):
    out = Composer(gen, method="inertialize").compose([Segment("walk", 4.0, is_label=True)], seed=0)
    assert out.positions.shape == (80, 22, 3) and out.offsets_m == [0.0] * len(out.joins) and out.joins


@pytest.mark.parametrize("segments, message", [
    ([], "no segments"),
    ([Segment("walk", 0.0, is_label=True)], "positive"),
    ([Segment("walk", -2.0, is_label=True)], "positive"),
    ([Segment("walk", float("nan"), is_label=True)], "positive"),
    ([Segment("walk", 0.04, is_label=True)], "under two frames"),
    ([Segment("fly", 2.0, is_label=True)], "segment 1: unknown label 'fly'"),
])
def test_bad_timelines_are_one_line_errors(gen, segments, message):
    with pytest.raises(GenerationError, match=message) as err:
        list(Composer(gen).stream(segments))
    assert "\n" not in str(err.value)


def test_a_motion_of_another_skeleton_is_refused(gen):
    with pytest.raises(GenerationError, match="another skeleton"):
        Composer(gen).compose([Segment("walk", 2.0, is_label=True)], prefix=np.zeros((10, 24, 3), np.float32))


def test_a_model_without_known_frames_cannot_continue(gen, monkeypatch):
    monkeypatch.setattr(gen, "context_frames", 0)
    with pytest.raises(GenerationError, match="trained without known frames"):
        Composer(gen)
    assert Composer(gen, method="inertialize").method == "inertialize"


def test_timeline_files_parse_or_say_where_they_fail():
    segs = parse_timeline("- {text: a person walks, seconds: 4}\n- {label: turn_left, seconds: 2}\n- {seconds: 1}\n")
    assert segs == [Segment("a person walks", 4.0), Segment("turn_left", 2.0, is_label=True), Segment(None, 1.0)]
    assert parse_timeline('{"segments": [{"prompt": "run", "seconds": 3}]}') == [Segment("run", 3.0)]
    for text, message in [("- {text: a, seconds: [", "does not parse"), ("just text", "a list of segments"),
                          ("- {text: a}", "'seconds' must be a number"), ("- {text: a, seconds: 0}", "positive"),
                          ("- {text: a, label: b, seconds: 1}", "not text and label"),
                          ("- {txt: a, seconds: 1}", "unknown key")]:
        with pytest.raises(GenerationError, match=message):
            parse_timeline(text, "t.yaml")


def test_given_motions_are_read_from_npy_and_bvh_onto_the_model(gen, real, tmp_path):
    np.save(tmp_path / "m.npy", real)
    x = read_given_motion(tmp_path / "m.npy", gen)
    assert np.allclose(x, real - [0, real[..., 1].min(), 0], atol=1e-6)  # floor at 0; no rest skeleton: as given
    from ramos.motion import hml263

    np.save(tmp_path / "vecs.npy", hml263.features(real))  # HumanML3D's new_joint_vecs of the same motion
    v = read_given_motion(tmp_path / "vecs.npy", gen)
    bones = lambda y: np.linalg.norm(y[:, 1:] - y[:, gen.skeleton.parents[1:]], axis=-1)  # noqa: E731
    assert v.shape == (len(real) - 1, 22, 3) and np.allclose(bones(v), bones(real[:-1]), atol=1e-4)
    save_bvh(real, tmp_path / "m.bvh", gen.skeleton, 40.0)  # another frame rate: resampled to the model's
    b = read_given_motion(tmp_path / "m.bvh", gen)
    assert b.shape == (20, 22, 3) and abs(b[..., 1].min()) < 1e-6
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT")
    for path, message in [(tmp_path / "bad.bvh", "bad.bvh"), (tmp_path / "none.npy", "no such file"),
                          (tmp_path / "m.txt", "unknown motion format"), (tmp_path / "a.npz", "body model")]:
        if path.suffix in (".txt", ".npz"):
            path.write_bytes(b"x")
        with pytest.raises(GenerationError, match=message) as err:
            read_given_motion(path, gen)
        assert "\n" not in str(err.value)


def _cli(*args: str) -> int:
    return main(["generate", *args, "--video", "none", "--no-glb"])


def test_cli_composes_continues_and_inbetweens(trained, real, tmp_path):
    ckpt = str(trained[1])
    assert _cli("--checkpoint", ckpt, "--label", "walk", "--seconds", "3", "--then", "run", "2",
                "--out", str(tmp_path / "a")) == 0
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert len(index["motions"]) == 1 and index["motions"][0]["frames"] == 100
    assert [s["seconds"] for s in index["settings"]["timeline"]] == [3.0, 2.0]
    motion = np.load(tmp_path / "a" / index["motions"][0]["files"]["npy"])
    assert motion.shape == (100, 22, 3)
    np.save(tmp_path / "given.npy", real)
    assert _cli("--checkpoint", ckpt, "--label", "walk", "--seconds", "2", "--before", str(tmp_path / "given.npy"),
                "--out", str(tmp_path / "b")) == 0
    index = json.loads((tmp_path / "b" / "index.json").read_text())
    out = np.load(tmp_path / "b" / index["motions"][0]["files"]["npy"])
    assert out.shape == (80, 22, 3) and np.allclose(out[:40], real - [0, real[..., 1].min(), 0], atol=1e-5)
    np.save(tmp_path / "end.npy", real[20:])
    assert _cli("--checkpoint", ckpt, "--label", "walk", "--seconds", "1", "--before", str(tmp_path / "given.npy"),
                "--after", str(tmp_path / "end.npy"), "--out", str(tmp_path / "c")) == 0
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["motions"][0]["frames"] == 40 + 20 + 20
    # keyframes: a file's first frame, or its frame at a time (FILE@T), placed in the generated part
    assert _cli("--checkpoint", ckpt, "--label", "walk", "--seconds", "2", "--keyframe", str(tmp_path / "end.npy"), "0",
                "--keyframe", f"{tmp_path / 'given.npy'}@1.5", "1.95", "--out", str(tmp_path / "d")) == 0
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    out = np.load(tmp_path / "d" / index["motions"][0]["files"]["npy"])
    floor = real[..., 1].min()
    assert out.shape == (40, 22, 3) and np.allclose(out[39], real[30] - [0, floor, 0], atol=1e-5)
    assert np.allclose(out[0], real[20] - [0, real[20:, :, 1].min(), 0], atol=1e-5)
    assert [k["seconds"] for k in index["settings"]["keyframes"]] == [0.0, 1.95]


@pytest.mark.parametrize("extra, message", [
    (["--label", "walk", "--seconds", "2", "--then", "run", "0"], "positive"),
    (["--label", "walk", "--seconds", "2", "--then", "run", "soon"], "number of seconds"),
    (["--label", "walk", "--then", "run", "2"], "--seconds"),
    (["--timeline", "missing.yaml"], "cannot read"),
    (["--label", "walk", "--seconds", "2", "--keyframe", "given.npy", "2.5"], "--keyframe 1 at 2.5 s is outside"),
    (["--label", "walk", "--seconds", "2", "--keyframe", "given.npy@9", "1"], "no frame at 9 s"),
    (["--label", "walk", "--seconds", "2", "--keyframe", "given.npy@soon", "1"], "the time after @ must be seconds"),
    (["--label", "walk", "--seconds", "2", "--then", "run", "2", "--keyframe", "given.npy", "1"], "not a timeline"),
])
def test_cli_bad_long_motion_inputs_exit_non_zero_without_output(trained, real, tmp_path, capsys, extra, message):
    np.save(tmp_path / "given.npy", real)
    args = [str(tmp_path / a) if a.startswith(("missing.yaml", "given.npy")) else a for a in extra]
    assert _cli("--checkpoint", str(trained[1]), *args, "--out", str(tmp_path / "out")) != 0
    err = capsys.readouterr().err
    assert message in err and not (tmp_path / "out").exists()


def test_join_motions_continues_the_first_and_ends_as_the_second(real):
    from ramos.motion.compose import join_motions
    from ramos.motion.preprocess import facing_direction, rotate_yaw
    from ramos.motion.skeleton import HUMANML3D

    a = real[:20]
    b = rotate_yaw(real[20:], 120.0, HUMANML3D)
    b[..., [0, 2]] += 3.0  # far away and turned: the join must bring it to where `a` ends
    j = join_motions(a, b, 10)
    assert j.shape == (40, 22, 3) and np.array_equal(j[:20], a)
    steps = np.linalg.norm(np.diff(j[:, 0, [0, 2]], axis=0), axis=-1)
    assert steps[19] < 2 * steps[:19].max() + 1e-3  # no jump at the join
    fa, fj = facing_direction(a[-1], HUMANML3D), facing_direction(j[20], HUMANML3D)
    assert float(fa @ fj) > 0.9
    # after the blend, the pose is the second motion's own (distances between joints unchanged)
    dist = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert np.allclose(dist(j[-1]), dist(b[-1]), atol=1e-4)

