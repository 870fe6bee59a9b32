"""A domain classifier for MNIST and Fashion-MNIST, trained by this project.

It gives a feature space (its 128-d penultimate layer) for FID/KID/PR on small grayscale
images, where ImageNet features say little, and class probabilities for an Inception-style
score, class coverage and, for conditional models, the accuracy on requested classes.

``gan-lightning train-evaluator data=fashion_mnist`` trains it once; it is cached under
``$GAN_LIGHTNING_CACHE`` (default ``~/.cache/gan_lightning``), keyed by what makes the network:
the fingerprint of its training images and labels and ``CLASSIFIER_FORMAT`` (architecture and
training recipe), not by the dataset's name, so datasets with the same training images (e.g.
fashion_edges' clothes side and fashion_mnist) share one. Its metadata records its test accuracy.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.checkpoint import state_dict_sha1
from gan_lightning.files import sibling_tmp
from gan_lightning.metrics.features import full_float32, quantize
from gan_lightning.progress import progress
from gan_lightning.registry import ConfigError, first_line

CLASSIFIER_FORMAT = 1  # raise when DomainClassifier or train_classifier change: a new cache key


def cache_dir() -> Path:
    return Path(os.environ.get("GAN_LIGHTNING_CACHE", Path.home() / ".cache" / "gan_lightning"))


def fingerprint(images: Tensor, labels: Tensor) -> str:
    """A short hash of a dataset split's bytes: a classifier is reused only for the same data."""
    h = hashlib.sha1(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


class DomainClassifier(nn.Module):
    """28x28 grayscale in [-1, 1] -> 10 logits; ``features`` is the 128-d penultimate layer."""

    feature_dim = 128

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.trunk = nn.Sequential(
            *block(1, 32), nn.MaxPool2d(2),  # 14x14
            *block(32, 64), nn.MaxPool2d(2),  # 7x7
            *block(64, 64), nn.Flatten(),
            nn.Linear(64 * 7 * 7, self.feature_dim, bias=False),
            nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))


def to_classifier_input(images01: Tensor, resize_mode: str = "pad") -> Tensor:
    """[0, 1] images at 28 or 32 -> the classifier's 28x28 input in [-1, 1] (a 32x32 image made
    by padding is cropped back; one made by resizing is resized back)."""
    x = images01.float()
    if x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    size = x.shape[-1]
    if size == 32 and resize_mode == "pad":
        x = x[..., 2:30, 2:30]
    elif size != 28:
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    return x * 2 - 1


class ClassifierFeatures(nn.Module):
    """[0, 1] images -> (128-d features, class probabilities) of a trained DomainClassifier."""

    name = "classifier"
    has_probs = True

    def __init__(self, net: DomainClassifier, meta: dict[str, Any], resize_mode: str = "pad"):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.meta = meta
        self.resize_mode = resize_mode
        self.dim = net.feature_dim
        self.weights_digest = state_dict_sha1(net.state_dict())[:12]

    @property
    def key(self) -> str:
        """The features' identity, as reference statistics are cached under: the training data and recipe
        (``classifier_key``) and the weights (a classifier retrained on the same data is another network)."""
        recipe = classifier_key(self.meta["fingerprint"], self.meta.get("format", CLASSIFIER_FORMAT))
        return f"{recipe}-w{self.weights_digest}"

    @torch.no_grad()
    def forward(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        """Features and class probabilities of images as 8-bit files hold them (the reference images' levels),
        in full float32, as the Inception features."""
        with full_float32():
            feats = self.net.features(to_classifier_input(quantize(images01) / 255.0, self.resize_mode))
            return feats.float(), self.net.head(feats).softmax(dim=1).float()

    @torch.no_grad()
    def smooth_features(self, images01: Tensor) -> Tensor:
        """The features without the 8-bit rounding, for PPL (its eps-sized steps are far below one level)."""
        with full_float32():
            return self.net.features(to_classifier_input(images01, self.resize_mode)).float()


class PerChannelClassifier(nn.Module):
    """Each channel of [0, 1] images read by a one-channel domain classifier (stacked data):
    (no features, probabilities (N, channels, classes))."""

    def __init__(self, inner: ClassifierFeatures):
        super().__init__()
        self.inner, self.meta = inner, inner.meta

    @torch.no_grad()
    def forward(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        probs = [self.inner(images01[:, c : c + 1])[1] for c in range(images01.shape[1])]
        return images01.new_zeros(len(images01), 0), torch.stack(probs, dim=1)


def classifier_key(fp: str, fmt: int = CLASSIFIER_FORMAT) -> str:
    """The classifier trained (by this format's recipe) on the data with fingerprint ``fp``."""
    return f"classifier-v{fmt}-{fp}"


def classifier_path(*key: str) -> Path:
    """The cache file of the classifier of training data fingerprint ``key[-1]``: call it as
    ``classifier_path(fp)``; a dataset name before it (older callers) is ignored."""
    return cache_dir() / "evaluators" / f"{classifier_key(key[-1])}.pt"


def legacy_classifier(fp: str) -> Path | None:
    """A classifier of the same data cached under its dataset's name by older versions, if any."""
    for path in sorted((cache_dir() / "evaluators").glob(f"classifier-*-{fp}.pt")):
        try:
            if torch.load(path, map_location="cpu", weights_only=True)["meta"].get("format") == CLASSIFIER_FORMAT:
                return path
        except Exception:
            continue
    return None


def train_classifier(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    dataset: str,
    epochs: int = 6,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    verbose: bool = True,
) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train on uint8 (N, 1, 28, 28) images with random +-2 pixel shifts; returns the net and its
    metadata (test accuracy included)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x_train, y_train = train
    net = DomainClassifier(int(max(y_train.max(), test[1].max())) + 1).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * (len(x_train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps))
    t0 = time.time()
    bar = progress(total=steps, desc=f"classifier {dataset}", unit="batch", verbose=verbose)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(len(x_train) // batch_size):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            x = F.pad(x_train[idx].float() / 127.5 - 1, (2, 2, 2, 2), value=-1.0)
            dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
            x = x[..., dy : dy + 28, dx : dx + 28].to(device)
            loss = F.cross_entropy(net(x), y_train[idx].to(device), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
        acc = accuracy(net, *test, device=device)
        bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", test_acc=f"{acc:.4f}")
        if verbose:  # six lines: above the bar on a terminal, alone in a log file
            bar.write(
                f"[classifier] epoch {epoch + 1}/{epochs} test accuracy {acc:.4f} ({time.time() - t0:.0f} s)",
                file=sys.stderr,
            )
    bar.close()
    meta = {
        "format": CLASSIFIER_FORMAT,
        "dataset": dataset,
        "fingerprint": fingerprint(*train),
        "test_accuracy": accuracy(net, *test, device=device),
        "epochs": epochs,
        "train_size": len(x_train),
        "test_size": len(test[0]),
        "seconds": round(time.time() - t0, 1),
    }
    return net.cpu().eval(), meta


@torch.no_grad()
def accuracy(net: DomainClassifier, images: Tensor, labels: Tensor, device: str | torch.device = "cpu") -> float:
    net.eval()
    correct = 0
    for i in range(0, len(images), 1000):
        x = images[i : i + 1000].float().to(device) / 127.5 - 1
        correct += int((net(x).argmax(1).cpu() == labels[i : i + 1000]).sum())
    return correct / max(1, len(images))


def save_classifier(net: DomainClassifier, meta: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_tmp(path)
    torch.save({"meta": meta, "state_dict": net.state_dict()}, tmp)
    tmp.replace(path)
    return path


def load_classifier(path: Path) -> tuple[DomainClassifier, dict[str, Any]]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = blob["meta"]
        net = DomainClassifier(blob["state_dict"]["head.weight"].shape[0])
        net.load_state_dict(blob["state_dict"])
    except Exception as e:
        raise ConfigError(
            f"domain classifier {path} is unreadable ({type(e).__name__}: {first_line(e)}); delete it and run "
            "`gan-lightning train-evaluator` again"
        ) from None
    return net.eval(), meta


@contextmanager
def training_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``.lock (POSIX flock; a no-op where there is none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def require_domain_classifier(datamodule: Any) -> None:
    """Raise ConfigError unless the DataModule's data can have a domain classifier (labelled images)."""
    if not getattr(datamodule, "domain_classifier", False):
        raise ConfigError(
            f"there is no domain classifier for '{datamodule.info.name}' data: "
            "use metrics.features=inception (and no 'classes'/'cond' metrics)"
        )


def get_classifier(
    datamodule: Any, train_if_missing: bool = True, device: str | torch.device = "cpu", verbose: bool = True
) -> ClassifierFeatures:
    """The cached classifier for a DataModule's dataset (training it once if allowed)."""
    require_domain_classifier(datamodule)
    train = datamodule.split(train=True, size=28)
    fp = fingerprint(*train)
    dataset = datamodule.info.name
    path = classifier_path(fp)
    if not path.is_file():
        path = legacy_classifier(fp) or path
    if not path.is_file() and not train_if_missing:
        raise ConfigError(
            f"no domain classifier for {dataset} (data fingerprint {fp}) in {path.parent}; "
            f"run `gan-lightning train-evaluator data={dataset}` first"
        )
    # training seeds itself (torch.manual_seed reseeds every CUDA generator too) and building a net draws its
    # initial weights: the caller's random streams, CPU and CUDA, are left alone
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        with training_lock(path):  # concurrent runs (study jobs, notebooks) train it once, the others wait
            if not path.is_file():
                if verbose:
                    print(f"[classifier] none cached for {dataset} ({fp}); training one (once)", file=sys.stderr)
                test = datamodule.split(train=False, size=28)
                net, meta = train_classifier(train, test, dataset, device=device, verbose=verbose)
                save_classifier(net, meta, path)
        net, meta = load_classifier(path)
    return ClassifierFeatures(net, meta, getattr(datamodule.dcfg, "resize", "pad"))
