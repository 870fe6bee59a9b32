"""SRGAN / SRResNet (Ledig et al. 2017) and the fashion_superres task: nets, losses, wiring, data, resume."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.data.superres import bicubic_upsample, downsample
from gan_lightning.metrics.translation import baseline_metrics
from gan_lightning.models import build_model
from gan_lightning.nets.srgan import SRGANDiscriminator, SRResNet, SubPixelUpsample
from gan_lightning.registry import ConfigError
from tests.helpers import assert_bitwise_equal, run, weights

SMALL = ["nets.resnet_blocks=2", "data.batch_size=4", "nets.g_width=8", "nets.d_width=8"]


@pytest.fixture
def small_root(tmp_path):
    """Synthetic Fashion-MNIST files with 300 training images: the classifiers (content, FID) train in a moment."""
    from tests.conftest import make_mnist_tree

    return make_mnist_tree(tmp_path / "data", "FashionMNIST", n_train=300, n_test=100)


def args(root, exp: str = "srgan_fashion", *extra: str) -> list[str]:
    return [f"exp={exp}", f"data.data_dir={root}", "data.download=false", *SMALL, *extra]


# ----------------------------------------------------------------------------- nets
def test_srresnet_upsamples_by_the_scale_with_subpixel_blocks() -> None:
    for scale, size in ((4, 7), (2, 7), (4, 8)):
        g = SRResNet(1, 1, scale=scale, blocks=2, width=8)
        assert g(torch.randn(2, 1, size, size)).shape == (2, 1, scale * size, scale * size)
        assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g.modules()) == int(np.log2(scale))
    with pytest.raises(ValueError):
        SRResNet(1, 1, scale=3)
    d = SRGANDiscriminator(1, 28, width=8)
    assert d(torch.randn(3, 1, 28, 28)).shape == (3,)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]  # the paper's 8 convs
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 64, 64]


def test_subpixel_block_places_channel_groups_in_2x2_blocks() -> None:
    """Shi et al. 2016: output pixel (c, 2i + di, 2j + dj) is conv channel 4c + 2di + dj at (i, j)."""
    block = SubPixelUpsample(2)
    t = torch.randn(1, 8, 3, 3)

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return t

    block.conv = Fixed()  # type: ignore[assignment]
    block.act = torch.nn.Identity()
    out = block(torch.zeros(1, 2, 3, 3))
    for c in range(2):
        for i in range(3):
            for j in range(3):
                for di in range(2):
                    for dj in range(2):
                        assert out[0, c, 2 * i + di, 2 * j + dj] == t[0, 4 * c + 2 * di + dj, i, j]


# ----------------------------------------------------------------------------- data
def keys_weights(n_in: int, n_out: int, a: float = -0.5) -> np.ndarray:
    """(n_out, n_in) float64 resampling matrix of Keys' cubic kernel, stretched by the scale when
    shrinking (antialiasing), renormalised at the borders."""

    def k(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        return np.where(
            x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0)
        )

    ratio = n_in / n_out
    stretch = max(ratio, 1.0)
    w = np.stack([k((np.arange(n_in) + 0.5 - (i + 0.5) * ratio) / stretch) for i in range(n_out)])
    return w / w.sum(1, keepdims=True)


def test_downsampling_and_bicubic_baseline_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (3, 1, 28, 28)).astype(np.uint8)
    area = downsample(torch.from_numpy(hr), 4, "area").numpy().astype(np.float64)
    blocks = hr.astype(np.float64).reshape(3, 1, 7, 4, 7, 4).mean((3, 5))
    np.testing.assert_array_equal(area, np.round(blocks))
    w = keys_weights(28, 7)
    bicubic = np.einsum("ih,nchw,jw->ncij", w, hr.astype(np.float64), w)
    got = downsample(torch.from_numpy(hr), 4, "bicubic").numpy().astype(np.float64)
    expect = np.clip(np.round(bicubic), 0, 255)
    assert np.abs(got - expect).max() <= 1 and (got == expect).mean() > 0.97  # float32 ties may round apart
    lr01 = got / 255
    up = np.clip(np.einsum("ih,nchw,jw->ncij", keys_weights(7, 28), lr01, keys_weights(7, 28)), 0, 1)
    np.testing.assert_allclose(bicubic_upsample(torch.from_numpy(lr01).float(), 4).numpy(), up, atol=1e-5)


def test_superres_pairs_and_bicubic_baseline_metrics(small_root) -> None:
    dm = build_datamodule(load_config(args(small_root)))
    dm.prepare()
    assert dm.info.shape == (1, 7, 7) and dm.info.shape_b == (1, 28, 28)
    batch = dm.global_batch(3, 5)  # the same garment on both sides
    hr = ((batch.b + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(((batch.a + 1) * 127.5).round().to(torch.uint8), downsample(hr, 4))
    a, b, labels = dm.test_pairs()
    assert torch.equal(a, downsample(b, 4)) and len(labels) == len(b)
    values = baseline_metrics(dm, n=40)
    pred = np.clip(
        np.einsum("ih,nchw,jw->ncij", keys_weights(7, 28), a[:40].double().numpy() / 255, keys_weights(7, 28)), 0, 1
    )
    mse = ((pred - b[:40].double().numpy() / 255) ** 2).reshape(40, -1).mean(1)
    assert values["bicubic/psnr"] == pytest.approx(float(np.mean(10 * np.log10(1 / mse))), rel=1e-5)
    assert {"bicubic/ssim", "bicubic/l1"} <= set(values) and not any(k.startswith("ab/") for k in values)


# ----------------------------------------------------------------------------- losses and wiring
def test_pixel_content_is_the_mse(small_root) -> None:
    cfg = load_config(args(small_root, "srresnet_fashion"))
    model = build_model(cfg, build_datamodule(cfg).info)
    fake, real = torch.rand(3, 1, 28, 28) * 2 - 1, torch.rand(3, 1, 28, 28) * 2 - 1
    expected = ((fake.double().numpy() - real.double().numpy()) ** 2).mean()
    assert float(model.content_loss(fake, real)) == pytest.approx(expected, rel=1e-6)


def test_classifier_content_is_frozen_and_trains_g_only(small_root) -> None:
    cfg = load_config(args(small_root))
    model = build_model(cfg, build_datamodule(cfg).info)
    net = model.content_net()
    assert net is not None and not any(p.requires_grad for p in net.parameters())
    model.train()
    assert not net.training and all(not m.training for m in net.modules())  # BatchNorm on running statistics
    own = {id(p) for p in model.parameters()}
    assert not any(id(p) in own for p in net.parameters())  # in no optimizer
    assert not any(k.startswith("_content") or "trunk" in k for k in model.state_dict())  # not in checkpoints
    before = [p.clone() for p in net.parameters()]
    lr, hr = torch.rand(4, 1, 7, 7) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    loss = model.content_loss(model.G(lr), hr)
    loss.backward()
    assert float(loss.detach()) > 0 and all(p.grad is not None for p in model.G.parameters())
    assert all(p.grad is None for p in net.parameters()) and all(p.grad is None for p in model.D.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with pytest.raises(ConfigError, match="classifier_seed"):  # the evaluation classifier's seed is refused
        load_config(args(small_root, "srgan_fashion", "model.classifier_seed=0"))


class Record(L.Callback):
    """Which nets hold gradients after each optimizer step, and the step outputs."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, bool]] = []
        self.outputs: list[dict] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        original = pl_module.backward_step

        def recorded(opt, loss) -> None:
            for p in pl_module.parameters():  # each step's own gradients only (the other net's are unused)
                p.grad = None
            original(opt, loss)
            has = [any(p.grad is not None for p in net.parameters()) for net in (pl_module.G, pl_module.D)]
            feature_net = pl_module.content_net()  # None for pixel content
            assert feature_net is None or all(p.grad is None for p in feature_net.parameters())
            self.calls.append((has[0], has[1]))

        pl_module.backward_step = recorded

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outputs.append(outputs)


def test_g_loss_wiring_and_the_l2_only_switch(small_root) -> None:
    rec = Record()
    result = run(*args(small_root), "steps=2", "out=gan", "metrics.names=[]", extra_callbacks=[rec])
    assert rec.calls == [(False, True), (True, False)] * 2  # D step: D's gradients; G step: G's
    for s in rec.outputs:
        torch.testing.assert_close(s["loss/g"], s["g/content"] + 1e-3 * s["g/adv"])
    rec = Record()
    l2 = run(*args(small_root, "srresnet_fashion"), "steps=2", "out=l2", "metrics.names=[]", extra_callbacks=[rec])
    assert rec.calls == [(True, False)] * 2 and all("loss/d" not in s and "g/adv" not in s for s in rec.outputs)
    for s in rec.outputs:
        torch.testing.assert_close(s["loss/g"], s["g/content"])
    w = weights(l2.run_dir)
    # SRGAN started from the SRResNet checkpoint (the paper's initialisation) takes its G
    cfg = load_config(args(small_root, "srgan_fashion", f"model.init_from={l2.run_dir / 'checkpoints' / 'last.ckpt'}"))
    model = build_model(cfg, build_datamodule(cfg).info)
    model.load_generator(str(cfg.model.init_from))
    assert all(torch.equal(v, w[f"G.{k}"]) for k, v in model.G.state_dict().items())
    assert result.summary["steps_done"] == 2
    # with an EMA of G the average starts from the loaded G too: after one step, 0.999 W_loaded + 0.001 G_1
    init = f"model.init_from={l2.run_dir / 'checkpoints' / 'last.ckpt'}"
    one = run(*args(small_root), init, "model.ema.decay=0.999", "steps=1", "out=ema", "metrics.names=[]")
    w1 = weights(one.run_dir)
    for k in (k for k in w1 if k.startswith("G_ema.") and w1[k].is_floating_point() and "running" not in k):
        g = k[len("G_ema.") :]
        torch.testing.assert_close(w1[k], 0.999 * w[f"G.{g}"] + 0.001 * w1[f"G.{g}"])


def test_srgan_trains_with_metrics_and_resumes_exactly(small_root) -> None:
    from tests.test_resume import SignalAt

    base = [*args(small_root), "steps=3", "metrics.n=60", "log.sample_every=3"]  # metrics and grids at the end
    full = run(*base, "out=full")
    run(*base, "out=part", extra_callbacks=[SignalAt(1)])
    resumed = run(*base, "out=part", "resume=auto")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    final = full.summary["final"]
    assert {"ab/psnr", "ab/ssim", "ab/fid", "ab/agreement", "bicubic/psnr", "bicubic/ssim", "bicubic/fid"} <= set(final)
    assert final["bicubic/psnr"] == resumed.summary["final"]["bicubic/psnr"]  # measured once, the same each run
    assert (full.run_dir / "samples" / "step_0000003.png").is_file()
    from gan_lightning.sample import sample_data_space

    x, _ = sample_data_space(full.run_dir / "checkpoints" / "last.ckpt", 5)  # super-resolved test inputs
    assert x.shape == (5, 1, 28, 28) and x.min() >= 0 and x.max() <= 1


def test_bad_configs_name_the_fix(small_root) -> None:
    with pytest.raises(ConfigError, match=r"model\.vgg_weights.*model\.content=classifier"):
        load_config(args(small_root, "srgan_fashion", "model.content=vgg", "model.vgg_weights=/nowhere/vgg19.pth"))
    with pytest.raises(ConfigError, match="model=srgan"):
        load_config(args(small_root, "srresnet_fashion", "model=pix2pix", "nets.g=unet", "nets.d=patchgan"))
    with pytest.raises(ConfigError, match="fashion_superres"):
        load_config(args(small_root, "pix2pix_edges", "model=srgan", "nets.g=srresnet", "nets.d=srgan"))
    with pytest.raises(ConfigError, match=r"data\.scale"):
        load_config(args(small_root, "srgan_fashion", "data.scale=3"))


def test_vgg_layers_are_the_papers() -> None:
    from torchvision.models.vgg import cfgs, make_layers

    from gan_lightning.models.srgan import vgg_cut

    features = make_layers(cfgs["E"])  # VGG19's features, as torchvision's vgg19 builds them
    convs = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    pools = [i for i, m in enumerate(features) if isinstance(m, torch.nn.MaxPool2d)]
    assert vgg_cut("54") == convs[-1] + 2 == pools[-1]  # after conv5_4's ReLU, before the 5th max-pool
    assert vgg_cut("22") == convs[3] + 2 == pools[1]
    with pytest.raises(ConfigError, match="vgg_layer"):
        vgg_cut("57")


def test_vgg_content_rescales_the_features_by_1_over_12_75(tmp_path) -> None:
    """Ledig et al. 2017 rescale the VGG feature maps by 1/12.75 ("equivalent to multiplying Eq. 5 by about
    0.006"), which sets the content loss against the adversarial weight 1e-3; it was left out (163x off)."""
    from types import SimpleNamespace

    from torchvision.models import vgg19

    from gan_lightning.models.srgan import vgg_content, vgg_cut

    torch.manual_seed(0)
    features = vgg19(weights=None).features
    path = tmp_path / "vgg19.pth"
    torch.save(features.state_dict(), path)
    content = vgg_content(SimpleNamespace(vgg_weights=str(path), vgg_layer="22"))
    fake, real = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    trunk = features[: vgg_cut("22")].eval()
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )

    def phi(x: torch.Tensor) -> torch.Tensor:
        return trunk((x.add(1).div(2).expand(-1, 3, -1, -1) - mean) / std)

    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(phi(fake) / 12.75, phi(real) / 12.75)
        torch.testing.assert_close(content.loss(fake, real), expected)
