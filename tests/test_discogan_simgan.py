"""DiscoGAN (Kim et al. 2017) and SimGAN (Shrivastava et al. 2017): which nets each step trains,
the losses against the papers' definitions in float64, the history buffer, the synthetic task's
degradation, training, resume and bad configs."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.data.base import PairBatch
from gan_lightning.models import build_model
from gan_lightning.models.noise import NoiseSource
from gan_lightning.models.simgan import RefinedHistory
from gan_lightning.registry import ConfigError
from tests.helpers import assert_bitwise_equal, run, weights

SMALL = ["nets.g_width=4", "nets.d_width=4", "nets.resnet_blocks=1"]  # the refiner's blocks
SMALL_DISCO = ["nets.g_width=4", "nets.d_width=4"]  # DiscoGAN's encoder-decoder has no residual blocks


def data_args(root) -> list[str]:
    return [f"data.data_dir={root}", "data.download=false"]


def recording_model(cfg: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The model of ``cfg`` in float64, its training_step runnable without a Trainer: each
    ``backward_step`` records the optimizer, the loss and the parameters that get a gradient,
    and steps nothing (the nets stay as they are, so a test can recompute every term)."""
    model = build_model(cfg, build_datamodule(cfg).info).double()
    opts, _ = model.configure_optimizers()
    names = {id(p): n for n, p in model.named_parameters()}
    calls: list[dict[str, Any]] = []

    def backward_step(opt: Any, loss: torch.Tensor) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        touched = {names[id(p)] for p, g in zip(params, grads) if g is not None and bool(g.abs().sum() > 0)}
        opt_params = {names[id(p)] for group in opt.param_groups for p in group["params"]}
        calls.append({"opt": opts.index(opt), "loss": loss.detach(), "touched": touched, "opt_params": opt_params})

    def finish_step(stats: dict[str, torch.Tensor]) -> None:
        model.g_step += 1

    model.optimizers = lambda: opts
    model.backward_step = backward_step
    model.finish_step = finish_step
    model.noise = NoiseSource(0)
    return model, calls


def prefixed(model: Any, *names: str) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.split(".")[0] in names}


def nll_real(logits: torch.Tensor) -> float:
    """Mean over every patch (or image) of -log sigmoid(logit), in numpy float64."""
    z = logits.detach().double().numpy()
    return float(np.mean(-np.log(1.0 / (1.0 + np.exp(-z)))))


def nll_fake(logits: torch.Tensor) -> float:
    """Mean of -log(1 - sigmoid(logit))."""
    z = logits.detach().double().numpy()
    return float(np.mean(-np.log(1.0 - 1.0 / (1.0 + np.exp(-z)))))


# ----------------------------------------------------------------------------- DiscoGAN
def test_discogan_steps_train_their_nets_on_the_papers_losses(mnist_root) -> None:
    """G step: only G_AB, G_BA get gradients, from L_GAN_B + L_GAN_A + MSE(G_BA(G_AB(a)), a) +
    MSE(G_AB(G_BA(b)), b); D step: only D_A, D_B, from the full BCE of each D (Kim et al. 2017)."""
    cfg = load_config(["exp=discogan_edges", *data_args(mnist_root), *SMALL_DISCO])
    assert (cfg.model.loss, cfg.model.identity_weight, cfg.model.pool_size) == ("nonsaturating", 0.0, 0)
    assert (cfg.optim.lr_g, cfg.optim.lr_d, list(cfg.optim.betas)) == (2e-4, 2e-4, [0.5, 0.999])
    model, calls = recording_model(cfg)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 6, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    stats = model.training_step(PairBatch(a, b, torch.zeros(1, 6, dtype=torch.long)), 0)
    g_call, d_call = calls
    assert g_call["touched"] == prefixed(model, "G_AB", "G_BA") == g_call["opt_params"]
    assert d_call["touched"] == prefixed(model, "D_A", "D_B") == d_call["opt_params"]
    a, b = a[0], b[0]
    fb, fa = model.G_AB(a), model.G_BA(b)
    rec = float(((model.G_BA(fb) - a) ** 2).mean().detach() + ((model.G_AB(fa) - b) ** 2).mean().detach())
    gan = nll_real(model.D_B(fb)) + nll_real(model.D_A(fa))
    assert float(stats["g/cycle"]) == pytest.approx(rec, rel=1e-12)
    assert float(g_call["loss"]) == pytest.approx(gan + rec, rel=1e-12)  # equal weights
    d_loss = nll_real(model.D_A(a)) + nll_fake(model.D_A(fa)) + nll_real(model.D_B(b)) + nll_fake(model.D_B(fb))
    assert float(d_call["loss"]) == pytest.approx(d_loss, rel=1e-12)


def test_discogan_nets_keep_the_size_and_judge_whole_images() -> None:
    from gan_lightning.nets.discogan import EncoderDecoder, GlobalDiscriminator

    for size, convs in ((28, 2), (32, 3), (64, 4)):  # halve down to a bottleneck of >= 4 pixels, at most 4 times
        g = EncoderDecoder(1, 3, size, width=4)
        assert g(torch.randn(2, 1, size, size)).shape == (2, 3, size, size)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in g.modules()) == convs
        assert not any(isinstance(m, torch.nn.Conv2d) and m.stride == (1, 1) for m in g.modules())  # all stride 2
        assert GlobalDiscriminator(3, size, width=4)(torch.randn(2, 3, size, size)).shape == (2, 1, 1, 1)


# ----------------------------------------------------------------------------- SimGAN
def test_simgan_phases_losses_and_gradients(mnist_root) -> None:
    """Steps 0-1: R on lambda * ||R(x) - x||_1 alone; step 2: D alone; then R on the mean
    per-patch cross-entropy -log D(R(x)) + lambda * L1 every step and D every 2nd step, each
    touching only its own net (Shrivastava et al. 2017)."""
    args = [*SMALL, "model.refiner_pretrain=2", "model.d_pretrain=1", "model.r_updates=2", "model.reg_weight=0.3"]
    cfg = load_config(["exp=simgan_fashion", *data_args(mnist_root), *args, "model.history_size=0"])
    model, calls = recording_model(cfg)
    g = torch.Generator().manual_seed(1)
    phases = []
    for step in range(6):
        x, real = (torch.rand(1, 4, 1, 28, 28, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
        before = len(calls)
        model.training_step(PairBatch(x, real, torch.zeros(1, 4, dtype=torch.long)), step)
        phases.append([c["opt"] for c in calls[before:]])
        x, real = x[0], real[0]
        refined = model.R(x)
        reg = float((refined - x).abs().mean().detach())  # the self-regularisation: L1 to the synthetic input
        for c in calls[before:]:
            if c["opt"] == 0:  # R's step
                assert c["touched"] == prefixed(model, "R") == c["opt_params"]
                adv = nll_real(model.D(refined)) if step >= 3 else 0.0  # mean per-patch -log D(R(x))
                assert float(c["loss"]) == pytest.approx(adv + 0.3 * reg, rel=1e-12)
            else:  # D's step (no history here: the buffer is tested on its own)
                assert c["touched"] == prefixed(model, "D") == c["opt_params"]
                d_loss = nll_real(model.D(real)) + nll_fake(model.D(refined))
                assert float(c["loss"]) == pytest.approx(d_loss, rel=1e-12)
    assert phases == [[0], [0], [1], [0], [0, 1], [0]]


def test_refined_history_is_half_current_half_buffer() -> None:
    """Of each D batch of b = 6, b - b/2 images are the current refiner's and b/2 come from the
    buffer; afterwards b/2 new images enter the buffer (appended, then at random slots)."""
    hist = RefinedHistory(5)
    gen = torch.Generator().manual_seed(0)

    def rand(n: int) -> torch.Tensor:
        return torch.rand(n, generator=gen)

    def batch(start: int) -> torch.Tensor:
        return torch.arange(start, start + 6, dtype=torch.float32).view(6, 1, 1, 1)

    assert torch.equal(hist.mix(batch(0), rand), batch(0)) and hist.count == 3  # fewer than b/2 stored before
    for step in range(1, 6):
        stored = set(hist.images[: hist.count].flatten().tolist())
        out = hist.mix(batch(10 * step), rand).flatten().tolist()
        assert out[:3] == [10 * step, 10 * step + 1, 10 * step + 2]  # b - b/2 from the current refiner
        assert set(out[3:]) <= stored  # b/2 from the buffer as it was
        now = hist.images[: hist.count].flatten().tolist()
        assert hist.count == 5 and sum(v >= 10 * step for v in now) == min(3, 5)  # b/2 new ones entered
    odd = RefinedHistory(4)
    odd.mix(batch(0)[:5], rand)
    assert len(odd.mix(batch(10)[:5], rand)) == 5 and odd.count == 4  # b = 5: 3 current + 2 old
    assert torch.equal(RefinedHistory(0).mix(batch(0), rand), batch(0))


def simulate_np(images: np.ndarray) -> np.ndarray:
    """fashion_synthetic's degradation written again in numpy float64: 2x2 block means, 0.2 +
    0.6 x + 0.05 x (checker of 2x2 blocks), clamp, 8 grey levels."""
    x = images.astype(np.float64) / 255
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5)).repeat(2, axis=2).repeat(2, axis=3)
    i, j = np.indices((h, w))
    checker = np.where(((i // 2) + (j // 2)) % 2 == 0, 1.0, -1.0)
    v = np.clip(0.2 + 0.6 * blocks + 0.05 * checker, 0, 1)
    return np.round(np.round(v * 7) / 7 * 255).astype(np.uint8)


def test_fashion_synthetic_task(mnist_root) -> None:
    from gan_lightning.data.synthetic import simulate

    flat = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 255.0)]).to(torch.uint8)
    # black: 0.2 +- 0.05 -> levels 2/7, 1/7 -> 73, 36; white: 0.8 +- 0.05 -> 6/7, 5/7 -> 219, 182
    out = simulate(flat)
    assert out[0, 0, 0].tolist() == [73, 73, 36, 36] and out[1, 0, 2].tolist() == [182, 182, 219, 219]
    dm = build_datamodule(load_config(["exp=simgan_fashion", *data_args(mnist_root)]))
    dm.prepare()
    images, labels = dm.fashion.split(train=True)
    half_a, half_b = set(dm.half_a.tolist()), set(dm.half_b.tolist())
    assert not half_a & half_b and len(half_a | half_b) == len(images)  # synthetic and real: disjoint halves
    assert np.array_equal(dm.train_a.numpy(), simulate_np(images[dm.half_a].numpy()))
    assert torch.equal(dm.train_b, images[dm.half_b]) and torch.equal(dm.train_y, labels[dm.half_a])
    a, b, _ = dm.test_pairs()
    assert np.array_equal(a.numpy(), simulate_np(b.numpy())) and torch.equal(b, dm.fashion.split(train=False)[0])
    assert torch.equal(dm.baseline_translation(a), a.float() / 255)


class Grab(L.Callback):
    def __init__(self) -> None:
        self.outs: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outs.append(outputs)


@pytest.mark.usefixtures("private_cache")
def test_simgan_and_discogan_train_and_measure(mnist_root, monkeypatch) -> None:
    """Through the public API, with an untrained stand-in for the domain classifier (private
    cache): the keys the metrics report and the raw synthetic baseline's L1 to the truth."""
    from gan_lightning.data.synthetic import simulate
    from gan_lightning.metrics import classifier as clf

    def untrained(train: Any, test: Any, dataset: str, **_: Any) -> tuple[Any, dict[str, Any]]:
        torch.manual_seed(0)
        meta = {"format": clf.CLASSIFIER_FORMAT, "dataset": dataset, "fingerprint": clf.fingerprint(*train)}
        return clf.DomainClassifier(10).eval(), {**meta, "test_accuracy": 0.0, "epochs": 0}

    monkeypatch.setattr(clf, "train_classifier", untrained)
    grab = Grab()
    args = ["model.refiner_pretrain=1", "model.d_pretrain=1", "metrics.n=64", "log.sample_every=4"]
    result = run(
        "exp=simgan_fashion", *data_args(mnist_root), *SMALL, *args, "steps=4", "out=s", extra_callbacks=[grab]
    )
    assert [sorted(k for k in o if k.startswith("loss/")) for o in grab.outs] == [
        ["loss/g"],
        ["loss/d"],
        ["loss/g"],
        ["loss/d", "loss/g"],
    ]
    final = result.summary["final"]
    # the classifier of real images on refined test images, and on the raw synthetic ones (the baseline)
    assert {"ab/agreement", "ab/l1", "ab/psnr", "synthetic/agreement", "synthetic/l1"} <= set(final)
    assert "ba/agreement" not in final  # one direction: synthetic -> real
    truth = build_datamodule(load_config(["exp=simgan_fashion", *data_args(mnist_root)])).split(False)[0][:64]
    raw_l1 = (simulate(truth).double() - truth.double()).abs().mean() / 255
    assert final["synthetic/l1"] == pytest.approx(float(raw_l1), rel=1e-5)
    assert (result.run_dir / "samples" / "step_0000004.png").is_file()
    result = run("exp=discogan_edges", *data_args(mnist_root), *SMALL_DISCO, "steps=2", "out=d", "metrics.names=[]")
    assert result.status == "completed" and result.summary["steps_done"] == 2


def test_simgan_resume_is_exact_with_the_history(mnist_root) -> None:
    from tests.test_resume import SignalAt

    args = ["exp=simgan_fashion", *data_args(mnist_root), *SMALL, "steps=7", "metrics.names=[]", "data.batch_size=4"]
    args += ["model.refiner_pretrain=1", "model.d_pretrain=1", "model.history_size=3", "model.r_updates=1"]
    full = run(*args, "out=full")
    run(*args, "out=part", extra_callbacks=[SignalAt(4)])
    resumed = run(*args, "out=part", "resume=auto")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    history = [torch.load(r.run_dir / "checkpoints" / "last.ckpt", weights_only=True) for r in (full, resumed)]
    h_full, h_resumed = (h["gan_lightning"]["rank_states"][0]["history"] for h in history)
    assert h_full["count"] == h_resumed["count"] == 3 and torch.equal(h_full["images"], h_resumed["images"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["exp=simgan_fashion", "model.reg_weight=-1"], "bad value for 'model.reg_weight'"),
        (["exp=simgan_fashion", "model.r_updates=0"], "bad value for 'model.r_updates'"),
        (["exp=simgan_fashion", "nets.d=dcgan"], "Known image-to-image discriminators: global, local, patchgan"),
        (["exp=simgan_fashion", "data=fashion_mnist"], "translates images: use data="),
        (["exp=discogan_edges", "nets.g=dcgan"], "Known image-to-image generators"),
        # the encoder-decoder halves twice down to a bottleneck of at least 4 pixels: 16 at the least
        (
            [
                "exp=cyclegan_folder",
                "model=discogan",
                "nets.g=encdec",
                "nets.d=global",
                "data.root=x",
                "data.image_size=8",
            ],
            "image_size >= 16",
        ),
        (
            [
                "exp=cyclegan_folder",
                "model=discogan",
                "nets.g=encdec",
                "nets.d=global",
                "data.root=x",
                "data.image_size=12",
            ],
            "image_size >= 16",
        ),
    ],
)
def test_bad_configs_name_the_fix(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(args)
