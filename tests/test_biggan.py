"""BigGAN (Brock et al. 2019): its nets' parts against their definitions re-written in float64,
the orthogonal regulariser and the truncated normal against closed forms, and both ways to train
them (model.name=biggan, and cgan with nets.g/d=biggan) on the shared loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy import stats
from torch import Tensor, nn

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model
from gan_lightning.models.biggan import BigGAN, orthogonal_regularizer, redraw_outside
from gan_lightning.models.conditional import LabelledCritic, LabelledGenerator
from gan_lightning.nets.biggan import BigGANDiscriminator, BigGANGenerator, ClassEmbedding
from gan_lightning.registry import ConfigError
from gan_lightning.schema import NetsConfig
from tests.helpers import run

SHAPE = (1, 32, 32)  # 3 blocks each way: resolutions 8, 16, 32 in G and 16, 8, 4 in D


def nets(attention_res: int = 16) -> object:
    return OmegaConf.structured(NetsConfig(g="biggan", d="biggan", g_width=8, d_width=8, attention_res=attention_res))


def generator(z_dim: int = 13, classes: int = 5, embed: int = 6) -> BigGANGenerator:
    torch.manual_seed(0)
    return BigGANGenerator(nets(), SHAPE, z_dim, classes, embed).double()


def capture(module: nn.Module, store: list) -> torch.utils.hooks.RemovableHandle:
    return module.register_forward_hook(lambda m, args, out: store.append((args, out)))


def batchnorm(x: Tensor, eps: float) -> Tensor:
    """Training-mode BatchNorm without affine: per channel over (N, H, W), biased variance."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


# ----------------------------------------------------------------------------- generator
def test_conditional_batchnorm_is_bn_times_one_plus_gain_plus_bias_from_embedding_and_z_chunk() -> None:
    g = generator()
    z, y = torch.randn(6, 13, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 2])
    seen: list = []
    bn = g.blocks[1].bn2  # block 1 reads chunk 2 (chunk 0 goes to the first linear layer)
    capture(bn, seen)
    g(z, y)
    (x, c), out = seen[0]
    offset = sum(g.chunks[:2])
    cond = torch.cat([g.embed.weight[y], z[:, offset : offset + g.chunks[2]]], dim=1)
    assert torch.equal(c, cond)  # [shared embedding of y, the block's own z chunk]
    w_gain, w_bias = bn.to_gain.weight, bn.to_bias.weight
    gain = (cond @ w_gain.T)[:, :, None, None]
    bias = (cond @ w_bias.T)[:, :, None, None]
    expected = batchnorm(x, bn.bn.eps) * (1 + gain) + bias
    assert torch.allclose(out, expected, atol=1e-10, rtol=0)
    assert gain.abs().max() > 0.05 and bias.abs().max() > 0.05  # the condition really moves them


def test_hierarchical_z_each_block_reads_its_own_chunk() -> None:
    g = generator()
    assert len(g.chunks) == len(g.blocks) + 1 and sum(g.chunks) == 13 and min(g.chunks) >= 3
    z, y = torch.randn(4, 13, dtype=torch.float64), torch.tensor([0, 1, 2, 3])

    def activations(zz: Tensor) -> list[Tensor]:
        seen: list = []
        handles = [capture(m, seen) for m in (g.linear, *g.blocks)]
        g(zz, y)
        for h in handles:
            h.remove()
        return [out for _, out in seen]

    base = activations(z)
    bounds = np.cumsum([0, *g.chunks])
    for k in range(len(g.chunks)):
        z2 = z.clone()
        z2[:, bounds[k] : bounds[k + 1]] += 1.0  # only chunk k changes
        changed = [not torch.equal(a, b) for a, b in zip(base, activations(z2))]
        # activation 0 is the linear layer (reads chunk 0), activation j >= 1 is block j-1 (reads chunk j)
        assert changed == [j >= k for j in range(len(g.chunks))], (k, changed)
    # each block's conditional BatchNorms take [embed(y), chunk j+1]: the z part is that slice
    seen: list = []
    handles = [capture(b.bn1, seen) for b in g.blocks]
    g(z, y)
    for j, ((_, c), _) in enumerate(seen):
        assert torch.equal(c[:, 6:], z[:, bounds[j + 1] : bounds[j + 2]])
    for h in handles:
        h.remove()


def sagan_reference(x: Tensor, attn: nn.Module) -> Tensor:
    """Zhang et al. 2019, Sec. 3, position by position: s_ij = f(x_i)^T g(x_j),
    beta_{j,i} = exp(s_ij) / sum_i exp(s_ij), o_j = v(sum_i beta_{j,i} h(x_i)), y_j = x_j + gamma o_j."""
    wf, wg, wh, wv = (m.weight[:, :, 0, 0] for m in (attn.f, attn.g, attn.h, attn.v))
    b, c, hh, ww = x.shape
    out = torch.empty_like(x)
    for n in range(b):
        xs = x[n].reshape(c, -1).T  # (N, C): x_i as rows
        f, g, h = xs @ wf.T, xs @ wg.T, xs @ wh.T
        for j in range(hh * ww):
            s = torch.stack([f[i] @ g[j] for i in range(hh * ww)])
            beta = torch.exp(s - s.max()) / torch.exp(s - s.max()).sum()
            o = wv @ sum(beta[i] * h[i] for i in range(hh * ww))
            out[n, :, j // ww, j % ww] = xs[j] + attn.gamma * o
    return out


def test_self_attention_is_the_sagan_formula_at_the_configured_resolution() -> None:
    g = generator()
    with torch.no_grad():
        g.attention.gamma.fill_(0.7)  # starts at 0 (identity): make the attention count
    seen: list = []
    capture(g.attention, seen)
    g(torch.randn(2, 13, dtype=torch.float64), torch.tensor([1, 4]))
    (x,), out = seen[0]
    assert x.shape[2:] == (16, 16)  # nets.attention_res=16
    small = x[:, :, 4:8, 4:8].contiguous()  # a 4x4 map keeps the position loop short
    assert torch.allclose(g.attention(small), sagan_reference(small, g.attention), atol=1e-10, rtol=0)
    assert not torch.allclose(out, x)
    d = BigGANDiscriminator(nets(), SHAPE, "none", 5)
    seen = []
    capture(d.attention, seen)
    d(torch.randn(2, *SHAPE), torch.tensor([0, 1]))
    assert seen[0][0][0].shape[2:] == (16, 16)
    off = BigGANGenerator(nets(attention_res=0), SHAPE, 13, 5, 6)
    assert off.attention is None and not any(isinstance(m, type(g.attention)) for m in off.modules())


# ----------------------------------------------------------------------------- discriminator
def test_projection_head_is_linear_of_phi_plus_embedding_inner_product() -> None:
    torch.manual_seed(1)
    d = BigGANDiscriminator(nets(), SHAPE, "none", 5).double()
    with torch.no_grad():
        d.attention.gamma.fill_(0.5)
    x, y = torch.randn(4, *SHAPE, dtype=torch.float64), torch.tensor([0, 3, 3, 4])
    seen: list = []
    capture(d.blocks[-1], seen)
    out = d(x, y)
    phi = torch.relu(seen[0][1]).sum(dim=(2, 3))  # sum pooling of the last maps
    assert phi.shape == (4, d.feature_dim) and torch.allclose(d.features(x), phi, atol=1e-12, rtol=0)
    linear = phi @ d.head.weight[0] + d.head.bias[0]
    inner = (d.embed.weight[y] * phi).sum(1)
    assert torch.allclose(out, linear + inner, atol=1e-10, rtol=0)
    assert inner.abs().min() > 1e-3  # the class term is really there


# ----------------------------------------------------------------------------- regulariser, truncation
def test_orthogonal_regulariser_closed_form_and_zero_for_orthogonal_rows() -> None:
    net = nn.Module()
    net.linear = nn.Linear(2, 2)
    net.table = nn.Embedding(3, 2)  # skipped: embeddings
    net.shared = ClassEmbedding(3, 2)
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    # W W^T = [[5, 11], [11, 25]]: off-diagonal squares 2 * 11^2 = 242
    assert float(orthogonal_regularizer(net).detach()) == pytest.approx(242.0, rel=1e-6)
    conv = nn.Conv2d(1, 2, (1, 2), bias=False)  # the same matrix as 2 filters of 1x1x2
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 1, 1, 2))
    assert float(orthogonal_regularizer(conv).detach()) == pytest.approx(242.0, rel=1e-6)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    lin = nn.Linear(6, 4).double()
    with torch.no_grad():
        lin.weight.copy_(3.0 * q[:4])  # orthogonal rows of any norm: the diagonal is not penalised
    assert float(orthogonal_regularizer(lin).detach()) < 1e-20
    with torch.no_grad():
        lin.weight[1] += 0.1 * lin.weight[0]
    assert float(orthogonal_regularizer(lin).detach()) > 1e-3


@pytest.mark.parametrize("psi", [0.5, 2.0])
def test_truncated_normal_stays_within_psi_with_the_conditional_normal_moments(psi: float) -> None:
    def truncated_normal(n: int, dim: int, psi: float, g: torch.Generator | None = None) -> Tensor:
        """N(0, I) draws through the sampling hook's redrawing of the values beyond psi."""
        return redraw_outside(torch.randn(n, dim, generator=g), psi, g)

    z = truncated_normal(20_000, 4, psi, torch.Generator().manual_seed(0)).double().flatten()
    assert z.abs().max() <= psi
    # N(0, 1) conditioned on |z| <= a: mean 0, variance 1 - 2 a phi(a) / (2 Phi(a) - 1)
    phi = math.exp(-(psi**2) / 2) / math.sqrt(2 * math.pi)
    var = 1 - 2 * psi * phi / math.erf(psi / math.sqrt(2))
    n = len(z)
    assert abs(float(z.mean())) < 4 * math.sqrt(var / n)
    assert abs(float(z.var()) - var) < 4 * var * math.sqrt(2 / n) + 1e-3 * var
    assert stats.kstest(z.numpy(), stats.truncnorm(-psi, psi).cdf).pvalue > 1e-3  # the whole distribution
    again = truncated_normal(20_000, 4, psi, torch.Generator().manual_seed(0)).double().flatten()
    assert torch.equal(z, again)  # seeded: the same z again
    with pytest.raises(ConfigError, match=r"'--truncation'.*psi must be >= 0.01"):
        truncated_normal(2, 2, 0.0)


# ----------------------------------------------------------------------------- models
def data_args(root) -> list[str]:
    return ["data=fashion_mnist", f"data.data_dir={root}", "data.download=false", "data.image_size=32"]


TINY_BIGGAN = ["nets.g_width=8", "nets.d_width=8", "model.z_dim=16", "model.embed_dim=8"]


def test_biggan_model_has_spectral_norm_on_every_g_and_d_layer_and_its_paper_defaults(mnist_root) -> None:
    from torch.nn.utils.parametrize import is_parametrized

    cfg = load_config(["exp=biggan_fashion", *data_args(mnist_root), *TINY_BIGGAN])
    m, o = cfg.model, cfg.optim
    assert (m.loss, m.sn_g, m.sn_d, m.n_critic, m.ortho, m.ema.decay) == ("hinge", True, True, 2, 1e-4, 0.999)
    assert (o.lr_g, o.lr_d, list(o.betas), cfg.nets.init) == (5e-5, 2e-4, [0.0, 0.999], "orthogonal")
    assert BigGAN.defaults["model"]["ema"]["decay"] == 0.9999  # the paper's; the experiment shortens it
    model = build_model(cfg, build_datamodule(cfg).info)
    assert isinstance(model.G, BigGANGenerator) and isinstance(model.D, BigGANDiscriminator)
    for net in (model.G, model.D):
        layers = [x for x in net.modules() if isinstance(x, (nn.Conv2d, nn.Linear, nn.Embedding))]
        assert len(layers) > 10 and all(is_parametrized(x, "weight") for x in layers)
    assert is_parametrized(model.D.embed, "weight")  # the projection embedding too
    assert not is_parametrized(model.G.embed)  # G's shared class table is not a layer (as in the paper)
    # the sampling hook, the one truncation entry point: values of z beyond psi are redrawn, the
    # others kept; a psi above every |z| changes nothing, a small one changes the samples
    assert not hasattr(model, "truncated_z")
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    t, net = model.truncated(z, model.G, 0.5, torch.Generator().manual_seed(3))
    inside = z.abs() <= 0.5
    assert net is model.G and t.abs().max() <= 0.5 and torch.equal(t[inside], z[inside]) and not inside.all()

    def sample(psi: float | None) -> Tensor:
        return model.sample(6, generator=torch.Generator().manual_seed(4), truncation=psi)

    assert torch.equal(sample(None), sample(1e9)) and not torch.allclose(sample(None), sample(0.5))


def test_cgan_takes_biggan_nets_directly_and_wraps_plain_ones(mnist_root) -> None:
    base = ["exp=cgan_fashion", *data_args(mnist_root), *TINY_BIGGAN]
    model = build_model(cfg := load_config([*base, "nets.g=biggan", "nets.d=biggan"]), build_datamodule(cfg).info)
    assert isinstance(model.G, BigGANGenerator) and isinstance(model.D, BigGANDiscriminator)
    model = build_model(cfg := load_config(base), build_datamodule(cfg).info)
    assert isinstance(model.G, LabelledGenerator) and isinstance(model.D, LabelledCritic)


@pytest.mark.parametrize("model", ["biggan", "cgan"])
def test_a_few_training_steps(mnist_root, model: str) -> None:
    quiet = ["metrics.names=[]", "log.interpolate=false", "log.neighbours=false", "log.grid=10"]
    args = ["exp=biggan_fashion", *data_args(mnist_root), *TINY_BIGGAN, *quiet, "steps=2", "out=r"]
    result = run(*args, *([] if model == "biggan" else ["model=cgan", "nets.g=biggan", "nets.d=biggan"]))
    assert result.status == "completed" and result.summary["steps_done"] == 2
    rows = np.genfromtxt(result.run_dir / "metrics.csv", delimiter=",", names=True)
    if model == "biggan":  # the g_terms hook: G's loss = hinge + beta * ||W W^T (1 - I)||^2
        assert np.all(rows["gortho"] > 0)
        assert np.allclose(rows["lossg"] - rows["gadv"], 1e-4 * rows["gortho"], rtol=1e-3, atol=1e-6)
    else:
        assert "gortho" not in rows.dtype.names and np.allclose(rows["lossg"], rows["gadv"])


@pytest.mark.parametrize(
    ("args", "key", "words"),
    [
        (["exp=dcgan", "nets.g=biggan"], "nets.g", "class-conditional"),
        (["exp=wgan_gp", "nets.d=biggan"], "nets.d", "class-conditional"),
        (["exp=acgan_fashion", "nets.g=biggan"], "nets.g", "model.name=cgan or biggan"),
        (["exp=cgan_fashion", "nets.d=biggan", "model.conditioning=concat"], "model.conditioning", "projection"),
        (["exp=biggan_fashion", "model.ortho=-1"], "model.ortho", ">= 0"),
        (["exp=biggan_fashion", "nets.d_minibatch=stddev"], "nets.d_minibatch", "projection"),
        (["exp=biggan_fashion", "nets.attention_res=12"], "nets.attention_res", "8, 16"),
        (["exp=biggan_fashion", "model.z_dim=3"], "model.z_dim", ">= 4"),
        (["exp=biggan_fashion", "nets.g_norm=layer"], "nets.g_norm", "conditional"),
        (["exp=dcgan", "nets.attention_res=16"], "nets.attention_res", "self-attention"),  # no net reads it
        (["exp=cgan_fashion", "nets.attention_res=16"], "nets.attention_res", "ignored"),
    ],
)
def test_bad_configs_are_refused_with_the_key_and_the_fix(mnist_root, args: list[str], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg = load_config([*args, *data_args(mnist_root), "nets.g_width=4", "nets.d_width=4"])
        build_model(cfg, build_datamodule(cfg).info)  # net-shape checks happen when the nets are built
    assert f"bad value for '{key}'" in str(err.value) and words in str(err.value)


class PixelProbe(nn.Module):
    """A stand-in for the domain classifier: features are 4x4 pooled pixels, class probabilities a fixed
    projection of them (no training, so the test stays seconds long)."""

    key = "pixel-probe"
    meta = {"dataset": "probe", "fingerprint": "probe", "test_accuracy": 1.0}

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 10, generator=torch.Generator().manual_seed(0)), requires_grad=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 4).flatten(1)
        return f, (f @ self.w).softmax(1)

    def smooth_features(self, x: Tensor) -> Tensor:
        return self(x)[0]


def test_the_truncation_sweep_scores_conditional_metrics_against_the_labels_it_asked_for(
    mnist_root, tmp_path, monkeypatch
) -> None:
    """`truncate` generated with labels_for(n) and then dropped them: `cond` (and `cas`) failed, saying the model
    was not conditional. Truth: the share of samples whose probe class is the class they were asked for."""
    from gan_lightning.checkpoint import load_model
    from gan_lightning.metrics.evaluator import Evaluator
    from gan_lightning.truncation import truncated_samples, truncation_sweep

    probe = PixelProbe()
    monkeypatch.setattr(Evaluator, "extractor", lambda self, role: probe)
    quiet = ["metrics.names=[]", "log.interpolate=false", "log.neighbours=false", "log.grid=10"]
    args = ["exp=biggan_fashion", *data_args(mnist_root), *TINY_BIGGAN, *quiet, "steps=2", f"out={tmp_path / 'run'}"]
    ckpt = run(*args).run_dir / "checkpoints" / "last.ckpt"
    result = truncation_sweep(ckpt, [1.0, 0.5], n=40, metrics=["cond"], out=tmp_path / "sweep", seed=7)
    model = load_model(ckpt)
    net = model.generator_for_sampling()
    for row in result["rows"]:
        x, _ = truncated_samples(model, net, row["psi"], 40, seed=7)
        expected = (probe(x.add(1).div(2).clamp(0, 1))[1].argmax(1) == model.labels_for(40)).double().mean()
        assert row["cond/accuracy"] == pytest.approx(float(expected)), row
