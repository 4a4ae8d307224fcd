"""The generic VAE and latent-diffusion stages on a toy problem (no images, no motion)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ramos.diffusion import DecoderTuning, GuidanceDistillation, LatentDiffusionModule, NoiseConfig, make_scheduler
from ramos.diffusion.module import LATENT_KEY
from ramos.diffusion.nets import ResidualMLPDenoiser
from ramos.motion.losses import MaskedMotionLoss
from ramos.utils.checkpoint import CheckpointError
from ramos.utils.training import NonFiniteLossError
from ramos.vae import VAEModule, gaussian_kl
from ramos.vae.nets import MLPDecoder, MLPEncoder

SHAPE = [2, 1, 3]


class Blobs(Dataset):
    """Two labelled Gaussian blobs in 6-D: class 0 around -2, class 1 around +2. Shaped as tiny
    motions (2 frames of 1 joint, x y z), so that the motion loss scores them (:func:`_vae`)."""

    def __init__(self, n: int = 512, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 2
        self.x = ((self.y[:, None].float() * 4 - 2) + 0.3 * torch.randn(n, 6, generator=g)).view(n, *SHAPE)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "label": self.y[i]}


def _trainer(tmp_path, steps: int) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert torch.allclose(gaussian_kl(mu, logvar), expected, atol=1e-5)
    assert gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).item() == 0.0


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver++"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_schedule_round_trip_with_oracle_denoiser(sampler, prediction):
    """An oracle that knows x0 makes every sampler land exactly on x0, at 10, 20 and 50 steps."""
    noise_cfg = NoiseConfig(prediction_type=prediction)
    x0 = torch.randn(4, 8)
    alphas = make_scheduler("ddpm", noise_cfg).alphas_cumprod
    for steps in (10, 20, 50):
        sched = make_scheduler(sampler, noise_cfg)
        sched.set_timesteps(steps)
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
        for t in sched.timesteps:
            a = alphas[int(t)]
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            out = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction]
            x = sched.step(out, t, x, generator=torch.Generator().manual_seed(2)).prev_sample
        assert torch.allclose(x, x0, atol=1e-3), (sampler, prediction, steps, (x - x0).abs().max())


def test_unknown_sampler_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("euler-ish", NoiseConfig())


def _vae(latent: int = 2) -> VAEModule:
    # On one joint without velocity weight, the motion loss is the summed squared error.
    return VAEModule(MLPEncoder(SHAPE, latent, [32]), MLPDecoder(SHAPE, latent, [32]),
                     MaskedMotionLoss(velocity_weight=0.0, key="x"),
                     kl_weight=1e-3, lr=3e-3)


def test_vae_trains_and_reloads_from_checkpoint_alone(tmp_path):
    torch.manual_seed(0)
    data = DataLoader(Blobs(), batch_size=64, shuffle=True)
    vae = _vae()
    before = vae.eval().compute_losses(next(iter(data)))["loss"].item()
    trainer = _trainer(tmp_path, 150)
    trainer.fit(vae, data)
    after = vae.eval().compute_losses(next(iter(data)))["loss"].item()
    assert after < 0.5 * before
    path = tmp_path / "vae.ckpt"
    trainer.save_checkpoint(path)
    loaded = VAEModule.load(path)
    x = Blobs(8, seed=3).x
    assert torch.allclose(loaded.encode(x)[0], vae.encode(x)[0])
    assert not any(p.requires_grad for p in loaded.parameters())


def test_non_finite_loss_stops_without_checkpoint(tmp_path):
    vae = _vae()
    data = Blobs()
    data.x[300] = float("nan")  # the fifth batch of 64 carries a NaN
    ckpt_dir = tmp_path / "ckpt"
    trainer = L.Trainer(max_steps=20, accelerator="cpu", logger=False, enable_progress_bar=False,
                        callbacks=[L.pytorch.callbacks.ModelCheckpoint(ckpt_dir, save_last=True, every_n_train_steps=1)])
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 4"):
        trainer.fit(vae, DataLoader(data, batch_size=64))
    assert sorted(p.name for p in ckpt_dir.glob("*.ckpt"))[-1] == "last.ckpt"
    for ckpt in ckpt_dir.glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values())


@pytest.fixture(scope="module")
def trained_diffusion(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diff")
    torch.manual_seed(0)
    data = DataLoader(Blobs(), batch_size=64, shuffle=True)
    vae = _vae(4)
    _trainer(tmp, 200).fit(vae, data)
    denoiser = ResidualMLPDenoiser(dim=4, width=64, depth=2, num_classes=2)
    model = LatentDiffusionModule(denoiser, vae, num_classes=2, cond_drop_prob=0.2, lr=3e-3, ema_decay=0.9)
    trainer = _trainer(tmp, 400)
    trainer.fit(model, data)
    path = tmp / "diffusion.ckpt"
    trainer.save_checkpoint(path)
    return model, path


def test_conditional_samples_land_on_their_class(trained_diffusion):
    model, _ = trained_diffusion
    for label, sign in ((0, -1), (1, 1)):
        x = model.sample(64, torch.full((64,), label), steps=20, guidance=2.0,
                         generator=torch.Generator().manual_seed(0))
        assert (torch.sign(x.mean(1)) == sign).float().mean() > 0.9


def test_sampling_is_deterministic_and_guidance_matters(trained_diffusion):
    model, _ = trained_diffusion
    y = torch.tensor([0, 1, 0, 1])
    for sampler in ("ddim", "dpmsolver++", "ddpm"):
        a = model.sample(4, y, steps=10, sampler=sampler, guidance=3.0, generator=torch.Generator().manual_seed(5))
        b = model.sample(4, y, steps=10, sampler=sampler, guidance=3.0, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        c = model.sample(4, y, steps=10, sampler=sampler, guidance=1.0, generator=torch.Generator().manual_seed(5))
        assert not torch.allclose(a, c)
    unconditional = model.sample(200, None, steps=20, generator=torch.Generator().manual_seed(1))
    share_positive = (unconditional.mean(1) > 0).float().mean().item()
    assert 0.2 < share_positive < 0.8  # both modes appear without a label


def test_diffusion_reloads_from_checkpoint_alone(trained_diffusion):
    model, path = trained_diffusion
    loaded = LatentDiffusionModule.load(path)
    kwargs = dict(condition=torch.tensor([1, 0]), steps=20, guidance=2.0)
    a = model.sample(2, generator=torch.Generator().manual_seed(9), **kwargs)
    b = loaded.sample(2, generator=torch.Generator().manual_seed(9), **kwargs)
    assert torch.allclose(a, b, atol=1e-5)


def test_loading_a_foreign_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="not a RaMoS checkpoint"):
        LatentDiffusionModule.load(bad)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a loadable checkpoint"):
        VAEModule.load(tmp_path / "junk.ckpt")


def test_loss_works_outside_a_trainer():
    model = LatentDiffusionModule(ResidualMLPDenoiser(dim=6, width=16, depth=1, num_classes=2), None, num_classes=2)
    batch = {"x": Blobs(32).x, "label": Blobs(32).y}
    assert torch.isfinite(model.diffusion_loss(batch))
    assert model.is_initialised and model.latent_shape.tolist() == SHAPE


@pytest.mark.parametrize("kind", ["ddpm", "ddim", "dpmsolver++"])
def test_scheduler_copies_do_not_share_state(kind: str) -> None:
    """make_scheduler copies a cached prototype shallowly: two loops run interleaved must give what
    one loop gives alone (a shared step index or solver history would change the result)."""
    from ramos.diffusion.schedule import NoiseConfig, make_scheduler

    def run(sched, steps, x, i):
        return sched.step(x * 0.1, sched.timesteps[i], x, generator=torch.Generator().manual_seed(i)).prev_sample

    alone = make_scheduler(kind, NoiseConfig())
    alone.set_timesteps(10)
    x_alone = torch.ones(2, 3)
    for i in range(7):
        x_alone = run(alone, 10, x_alone, i)
    a, b = make_scheduler(kind, NoiseConfig()), make_scheduler(kind, NoiseConfig())
    a.set_timesteps(10)
    b.set_timesteps(7)
    xa, xb = torch.ones(2, 3), torch.ones(2, 3)
    for i in range(7):
        xa, xb = run(a, 10, xa, i), run(b, 7, xb, i)
    assert torch.equal(xa, x_alone)


def test_denoiser_embeds_repeated_conditions_once_with_the_same_result() -> None:
    """A batch's conditions (timestep, label, length) are embedded once per distinct row and gathered
    back per item: the result is what each item gives alone (where no deduplication happens)."""
    from ramos.diffusion.nets import _DEDUP_MIN_BATCH, ResidualMLPDenoiser

    torch.manual_seed(0)
    net = ResidualMLPDenoiser(8, width=32, depth=2, num_classes=3, cond_scalars=["length"]).eval()
    for block in net.blocks:  # the blocks' last layers start at zero: make the conditioning count
        torch.nn.init.normal_(block.mlp[-1].weight, std=0.1)
    t = torch.tensor([5, 900, 5, 40, 900, 5] * 2)
    y = torch.tensor([0, 1, 2, 3, 0, 1] * 2)
    length = torch.tensor([2.0, 2.0, 9.5, 2.0, 1.0, 9.5] * 2)
    x = torch.randn(len(t), 8)
    assert len(t) > _DEDUP_MIN_BATCH
    with torch.no_grad():
        together = net(x, t, y, length=length)
        alone = torch.cat([net(x[i:i + 1], t[i:i + 1], y[i:i + 1], length=length[i:i + 1]) for i in range(len(t))])
        other_label = net(x, t, (y + 1) % 4, length=length)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(together, other_label)


@pytest.mark.parametrize("kind,prediction", [("ddim", "sample"), ("ddim", "v_prediction"), ("ddim", "epsilon"),
                                             ("dpmsolver++", "sample")])
@pytest.mark.parametrize("steps", [1, 5, 12])
def test_affine_steps_reproduce_diffusers_step(kind: str, prediction: str, steps: int) -> None:
    """The coefficient tables give diffusers' trajectory for outputs that depend on the sample (as a
    network's do)."""
    from ramos.diffusion.schedule import affine_steps, has_affine_steps

    noise = NoiseConfig(prediction_type=prediction)
    assert has_affine_steps(kind, noise)
    table = affine_steps(kind, steps, noise)
    torch.manual_seed(0)
    x0 = torch.randn(3, 5, dtype=torch.float64)
    w = torch.randn(5, 5, dtype=torch.float64) * 0.3

    def net(x: torch.Tensor, i: int) -> torch.Tensor:
        return torch.tanh(x @ w) + 0.1 * i

    sched = make_scheduler(kind, noise)
    sched.set_timesteps(steps)
    assert [int(t) for t in sched.timesteps] == list(table.timesteps)
    x = x0.clone()
    for i, t in enumerate(sched.timesteps):
        x = sched.step(net(x, i), t, x).prev_sample
    y, previous = x0.clone(), None
    for i in range(len(table.timesteps)):
        out = net(y, i)
        y = table.a[i] * y + table.b[i] * out + (table.c[i] * previous if previous is not None else 0.0)
        previous = out
    torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-6 * float(x.abs().max()))


def test_samplers_without_affine_steps_are_refused() -> None:
    from ramos.diffusion.schedule import affine_steps, has_affine_steps

    for kind, prediction in [("ddpm", "sample"), ("dpmsolver++", "v_prediction"), ("dpmsolver++", "epsilon")]:
        assert not has_affine_steps(kind, NoiseConfig(prediction_type=prediction))
        with pytest.raises(ValueError, match="not an affine map"):
            affine_steps(kind, 10, NoiseConfig(prediction_type=prediction))


def test_guided_student_learns_the_guided_prediction_in_one_pass(trained_diffusion, tmp_path):
    """Guidance distillation: the loss is the student's error against the teacher's guided
    prediction (by hand), training lowers it, sampling at the distilled scale runs the student once
    per step (not twice), any other scale still runs the guided EMA denoiser, and the student
    survives a checkpoint round trip."""
    model, path = trained_diffusion
    module = LatentDiffusionModule.load(path)
    with pytest.raises(ValueError, match="needs a conditional model"):
        GuidanceDistillation(LatentDiffusionModule(ResidualMLPDenoiser(dim=4, width=8, depth=1), _vae(4)))
    module.hparams.sampling["guidance"] = 3.0  # the model's default guidance is what the student learns
    distill = GuidanceDistillation(module, lr=3e-3)
    assert module.student is not None and module.hparams.student_guidance == 3.0
    # The loss by hand, from the same random draws.
    z = torch.randn(32, 4)
    batch = {LATENT_KEY: z, "label": torch.arange(32) % 2}
    torch.manual_seed(1)
    loss = distill.loss(batch)
    torch.manual_seed(1)
    zn = (z - module.latent_shift) / module.latent_scale
    t = torch.randint(0, module.noise_cfg.num_train_timesteps, (32,))
    x_t = module.train_scheduler.add_noise(zn, torch.randn_like(zn), t)
    y = module.condition(batch, drop=True)
    with torch.no_grad():
        teacher = module.ema.module
        c, u = teacher(x_t, t, y), teacher(x_t, t, torch.full_like(y, 2))
        target = torch.where((y == 2)[:, None], u, u + 3.0 * (c - u))
        assert bool((y == 2).any()) and bool((y != 2).any())  # both cases are exercised
        expected = torch.nn.functional.mse_loss(module.student(x_t, t, y), target)
    torch.testing.assert_close(loss, expected)

    trainer = _trainer(tmp_path, 150)
    before = {k: v.clone() for k, v in module.ema.module.state_dict().items()}
    trainer.fit(distill, DataLoader(Blobs(), batch_size=64, shuffle=True))
    assert all(torch.equal(v, module.ema.module.state_dict()[k]) for k, v in before.items())  # teacher untouched
    torch.manual_seed(2)
    after = distill.loss(batch)
    assert after < 0.5 * loss

    calls: list[int] = []
    hook = module.student.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    y = torch.tensor([0, 1, 0, 1])
    a = module.sample(4, y, steps=10, generator=torch.Generator().manual_seed(5))  # the default guidance, 3
    assert calls == [4] * 10  # one pass of the batch per step
    calls.clear()
    guided = model.sample(4, y, steps=10, guidance=3.0, generator=torch.Generator().manual_seed(5))
    b = module.sample(4, y, steps=10, guidance=2.0, generator=torch.Generator().manual_seed(5))
    assert calls == []  # another scale: the EMA denoiser with guidance
    hook.remove()
    assert (a - guided).abs().mean() < 0.25 * guided.abs().mean()  # the student samples what guidance gives
    path2 = tmp_path / "student.ckpt"
    module.save(path2)
    loaded = LatentDiffusionModule.load(path2)
    assert loaded.hparams.student_guidance == 3.0
    torch.testing.assert_close(loaded.sample(4, y, steps=10, guidance=3.0, generator=torch.Generator().manual_seed(5)), a)
    torch.testing.assert_close(loaded.sample(4, y, steps=10, guidance=2.0, generator=torch.Generator().manual_seed(5)), b)


@pytest.mark.parametrize("prediction", ["sample", "epsilon", "v_prediction"])
def test_x0_of_a_prediction_recovers_the_clean_latent(prediction: str) -> None:
    """The oracle prediction of each type (the noise, v, or x0 itself) converts back to x0."""
    module = LatentDiffusionModule(ResidualMLPDenoiser(dim=4, width=8, depth=1), noise=NoiseConfig(prediction_type=prediction))
    sched = module.train_scheduler
    x0, noise = torch.randn(6, 4), torch.randn(6, 4)
    t = torch.tensor([0, 10, 200, 500, 800, 999])
    x_t = sched.add_noise(x0, noise, t)
    oracle = {"sample": x0, "epsilon": noise, "v_prediction": sched.get_velocity(x0, noise, t)}[prediction]
    torch.testing.assert_close(module.x0(oracle, x_t, t), x0, atol=2e-3, rtol=1e-3)


def test_decoder_tuning_fits_only_the_decoder_to_the_samplers_latents(trained_diffusion, tmp_path):
    """Decoder tuning: the loss is the autoencoder's own reconstruction loss of the data decoded from
    the sampling network's clean-latent prediction (share ``mix``) or from the encoder's latent (by
    hand, both); a fit changes the chosen decoder parameters and nothing else; the tuned decoder
    survives a checkpoint round trip."""
    model, path = trained_diffusion
    untrained = LatentDiffusionModule(ResidualMLPDenoiser(dim=4, width=8, depth=1), _vae(4))
    with pytest.raises(RuntimeError, match="train the diffusion model"):
        DecoderTuning(untrained, 1e-3)
    with pytest.raises(ValueError, match="needs an autoencoder"):
        DecoderTuning(LatentDiffusionModule(ResidualMLPDenoiser(dim=4, width=8, depth=1)), 1e-3)
    module = LatentDiffusionModule.load(path)
    with pytest.raises(ValueError, match="0 <= mix <= 1"):
        DecoderTuning(module, 1e-3, mix=1.5)
    ae = module.autoencoder
    last_layer = list(ae.decoder.parameters())[-2:]  # tune only the decoder's output layer
    tuning = DecoderTuning(module, 3e-3, mix=1.0, max_timestep=200, parameters=last_layer)
    data = Blobs(32, seed=4)
    batch = {"x": data.x, "label": data.y}
    torch.manual_seed(1)
    loss = tuning.loss(batch)
    torch.manual_seed(1)
    with torch.no_grad():
        z = module.to_latent(data.x)
        zn = (z - module.latent_shift) / module.latent_scale
        t = torch.randint(0, 201, (32,))
        x_t = module.train_scheduler.add_noise(zn, torch.randn_like(zn), t)
        y = module.condition(batch, drop=True)
        v = module.ema.module(x_t, t, y)  # the fixture predicts v (the default): x0 = a x_t - s v
        alpha_bar = module.train_scheduler.alphas_cumprod[t][:, None]
        z_pred = (alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * v) * module.latent_scale + module.latent_shift
    expected = (ae.decode(z_pred) - data.x).pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    tuning.mix = 0.0  # every item from the encoder's latent: the plain reconstruction loss
    torch.testing.assert_close(tuning.loss(batch), (ae.decode(z) - data.x).pow(2).flatten(1).sum(1).mean())
    tuning.mix = 1.0

    frozen = {name: p.detach().clone() for name, p in module.named_parameters()
              if not any(p is q for q in last_layer)}
    tuned_before = [p.detach().clone() for p in last_layer]
    trainer = _trainer(tmp_path, 100)
    trainer.fit(tuning, DataLoader(Blobs(), batch_size=64, shuffle=True))
    changed = [name for name, p in module.named_parameters() if name in frozen and not torch.equal(p, frozen[name])]
    assert changed == []  # denoiser, EMA, encoder and the rest of the decoder untouched
    assert all(not torch.equal(a, b) for a, b in zip(tuned_before, last_layer))
    torch.manual_seed(3)
    after = tuning.loss(batch)
    assert after < loss

    path2 = tmp_path / "tuned.ckpt"
    module.save(path2)
    loaded = LatentDiffusionModule.load(path2)
    zq = torch.randn(5, 4)
    torch.testing.assert_close(loaded.from_latent(zq), module.from_latent(zq))
    assert not torch.allclose(loaded.from_latent(zq), model.from_latent(zq))
