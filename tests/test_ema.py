"""The EMA generator samples with BatchNorm statistics of its own weights, not the live G's."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model


def ema_model(mnist_root, *extra: str):
    cfg = load_config(
        [
            "exp=dcgan",
            "data=fashion_mnist",
            f"data.data_dir={mnist_root}",
            "data.download=false",
            "nets.g_width=8",
            "nets.d_width=8",
            "model.ema.decay=0.999",
            *extra,
        ]
    )
    return build_model(cfg, build_datamodule(cfg).info)


def drift_live_generator(model) -> None:
    """Move G's weights far from the EMA's and let G's running statistics follow them."""
    with torch.no_grad():
        for p in model.G.parameters():
            p.mul_(4.0).add_(0.1)
        model.G.train()
        for _ in range(30):
            model.G(torch.randn(64, model.z_dim))
    model.g_step = 10
    model.update_ema(model.G_ema, model.G, model.mcfg.ema)  # weights barely move, buffers were copied


def batch_norm_input_moments(net: nn.Module, z: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Float64 reference: per-channel mean and variance of what enters each BatchNorm, in train mode."""
    ref = copy.deepcopy(net).double().train()
    found: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_m, inputs):
        x = inputs[0].transpose(0, 1).flatten(1)
        found.append((x.mean(1), x.var(1)))

    handles = [m.register_forward_pre_hook(hook) for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        ref(z.double())
    for h in handles:
        h.remove()
    return found


@pytest.mark.parametrize("extra", [(), ("model=vaegan",)])
def test_ema_generator_batch_norm_statistics_are_its_own(mnist_root, extra: tuple[str, ...]) -> None:
    """Every model with an EMA of a BatchNorm generator; VAE-GAN's own sampling net once bypassed the pass."""
    model = ema_model(mnist_root, *extra)
    drift_live_generator(model)
    net = model.generator_for_sampling()
    truth = batch_norm_input_moments(net, torch.randn(8000, model.z_dim, generator=torch.Generator().manual_seed(5)))
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == len(truth) >= 1
    for bn, (mean, var) in zip(bns, truth):
        scale = var.sqrt().mean().item()
        assert (bn.running_mean.double() - mean).abs().max().item() < 0.05 * scale
        assert ((bn.running_var.double() / var) - 1).abs().max().item() < 0.1
        assert bn.momentum == 0.1  # restored after the statistics pass


def test_ema_statistics_pass_leaves_the_global_rng_and_the_live_generator_alone(mnist_root) -> None:
    model = ema_model(mnist_root)
    drift_live_generator(model)
    live = {k: v.clone() for k, v in model.G.state_dict().items()}
    torch.manual_seed(3)
    model.generator_for_sampling()
    after = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(3))
    for k, v in model.G.state_dict().items():
        assert torch.equal(v, live[k]), k
    # the statistics are a function of the EMA weights alone: another live G's buffers change nothing
    other = ema_model(mnist_root)
    other.G_ema.load_state_dict(model.G_ema.state_dict())
    other.g_step = model.g_step
    for a, b in zip(model.generator_for_sampling().buffers(), other.generator_for_sampling().buffers()):
        assert torch.equal(a, b)


def test_sampling_leaves_the_model_state_alone(mnist_root) -> None:
    """The statistics pass works on a copy: the stored EMA generator (checkpoints, DDP ranks, of
    which only rank 0 samples grids) is the same whether or not anything was sampled."""
    model = ema_model(mnist_root)
    drift_live_generator(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.sample(8, generator=torch.Generator().manual_seed(0))
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    # the sampling net is the EMA generator's weights with its own statistics, not a submodule
    net = model.generator_for_sampling()
    assert net is model.generator_for_sampling()  # one statistics pass per G step
    for (k, p), q in zip(model.G_ema.named_parameters(), net.parameters()):
        assert torch.equal(p, q), k
    model.g_step += 1
    assert model.generator_for_sampling() is not net  # a new G step: a new pass
    net = model.generator_for_sampling()
    model.G_ema.load_state_dict(model.G.state_dict())  # new weights at the same step: a new pass too
    assert model.generator_for_sampling() is not net


def test_without_ema_sampling_uses_the_live_generator_untouched(mnist_root) -> None:
    model = ema_model(mnist_root, "model.ema.decay=0.0")
    before = {k: v.clone() for k, v in model.G.state_dict().items()}
    assert model.generator_for_sampling() is model.G
    for k, v in model.G.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_the_sampling_copy_of_a_sync_batchnorm_generator_is_plain_batchnorm(mnist_root) -> None:
    """With trainer.sync_batchnorm=true Lightning turns G_ema's BatchNorms into SyncBatchNorm. Grids,
    interpolations and neighbours run on rank 0 alone, and the standing statistics pass runs the copy in train
    mode: a SyncBatchNorm there waits for the other ranks, which never come (a hang). The copy is plain
    BatchNorm, with the same statistics a plain generator gets."""
    torch.manual_seed(0)
    model = ema_model(mnist_root)
    drift_live_generator(model)
    plain = model.generator_for_sampling()
    torch.manual_seed(0)
    synced = ema_model(mnist_root)
    drift_live_generator(synced)
    synced.G_ema = nn.SyncBatchNorm.convert_sync_batchnorm(synced.G_ema)
    net = synced.generator_for_sampling()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in net.modules())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.G_ema.modules())  # the stored EMA is left alone
    z = torch.randn(16, model.z_dim, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net.eval()(z), plain.eval()(z))


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_an_ema_under_a_whole_low_precision_model_is_refused(precision: str) -> None:
    """Under *-true precision Lightning casts G_ema too, and a lerp of 1 - 0.999 in bfloat16 rounds to no change
    (review: 1,000 updates from 1.0 towards 1.2 left 1.0); such a run is refused before training, naming the fix."""
    from gan_lightning.registry import ConfigError

    e, p = [torch.ones(4, dtype=torch.bfloat16)], [torch.full((4,), 1.2, dtype=torch.bfloat16)]
    for _ in range(100):
        torch._foreach_lerp_(e, p, 1 - 0.999)
    assert float(e[0][0]) == 1.0  # the trap itself
    with pytest.raises(ConfigError, match="bf16-mixed"):
        load_config(["exp=dcgan", "model.ema.decay=0.999", f"trainer.precision={precision}"])
    load_config(["exp=dcgan", "model.ema.decay=0", f"trainer.precision={precision}"])  # no EMA: allowed
    load_config(["exp=dcgan", "model.ema.decay=0.999", "trainer.precision=bf16-mixed"])
