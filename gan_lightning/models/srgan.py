"""SRGAN and its L2-only baseline SRResNet (Ledig et al. 2017, "Photo-realistic single image
super-resolution using a generative adversarial network").

One step: a D step on real HR images against G(LR), then a G step on
``content + adv_weight * adversarial`` with the paper's adv_weight = 1e-3 and the non-saturating
adversarial term -log D(G(LR)). ``model.adversarial=false`` is SRResNet: the same G trained on
the content loss alone (no D step; D's parameters never change).

The content loss (``model.content``):
- ``pixel``: the MSE between G(LR) and HR in model space ([-1, 1]), SRResNet's loss;
- ``vgg``: the MSE between feature maps phi_{i,j} of a VGG19 (the paper's VGG54: after the 4th
  conv's activation before the 5th max-pool), from the user's weight file (``model.vgg_weights``,
  torchvision's VGG19 state dict, read with ``weights_only=True``; never downloaded);
- ``classifier``: the same MSE on the feature maps of this project's Fashion-MNIST domain
  classifier after its ``model.classifier_layer``-th conv block's activation (2: 64 x 14 x 14).
  That classifier is a second one, trained with seed ``model.classifier_seed`` (default 1) and
  ``model.classifier_epochs`` epochs and cached beside the evaluation classifier (seed 0): the
  FID of the metrics is measured in the evaluation classifier's space, and a G trained to match
  that same network's features would be scored by the net it optimised against.

The feature net is frozen (no gradients), in eval mode (BatchNorm uses its running statistics),
held outside the module tree: it is in no optimizer, not in ``state_dict`` nor in checkpoints
(it is rebuilt from its cache or weight file when training starts or resumes), and Lightning's
``train()`` never reaches it.

``model.init_from=CKPT`` starts G from a checkpoint's G (the paper initialises SRGAN with the
trained SRResNet); D starts fresh. It applies to a new run only (a resume restores its own G).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from gan_lightning.data import DATAMODULES
from gan_lightning.data.base import PairBatch
from gan_lightning.data.superres import bicubic_upsample
from gan_lightning.losses import LOSSES
from gan_lightning.models.base import OptimizerGroup
from gan_lightning.models.translation import TranslationConfig, TranslationModule
from gan_lightning.nets.srgan import SRGANDiscriminator, SRResNet
from gan_lightning.registry import MODELS, ConfigError, first_line

CONTENTS = ("pixel", "classifier", "vgg")
CLASSIFIER_CUTS = {1: 3, 2: 7, 3: 11}  # DomainClassifier.trunk[:cut] ends at conv block k's ReLU
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VGG_RESCALE = 1 / 12.75  # Ledig et al. 2017: VGG feature maps rescaled by 1/12.75
VGG_FIX = (
    "pass model.vgg_weights=PATH to torchvision's VGG19 state dict (vgg19-dcbb9e9d.pth, which you download "
    "yourself; nothing is fetched here), or use model.content=classifier (offline) or model.content=pixel"
)


@dataclass
class SRGANConfig(TranslationConfig):
    name: str = "srgan"
    loss: str = "nonsaturating"  # D: sigmoid + BCE; G: -log D(G(LR)) (Ledig et al. 2017)
    adversarial: bool = True  # false: SRResNet, the same G trained on the content loss alone
    adv_weight: float = 1.0e-3  # G loss = content + 1e-3 x adversarial (the paper's weight)
    content: str = "classifier"  # pixel (MSE) | classifier (features of a Fashion classifier) | vgg (the paper's)
    content_weight: float = 1.0  # times the content MSE (content=vgg: of features rescaled by 1/12.75, the paper's)
    classifier_layer: int = 2  # content=classifier: after conv block 1 (32x28x28), 2 (64x14x14) or 3 (64x7x7)
    classifier_seed: int = 1  # content=classifier: its training seed; the evaluation classifier's is 0
    classifier_epochs: int = 1  # content=classifier: its training epochs (cached once per data, seed, epochs)
    vgg_weights: str = ""  # content=vgg: path to torchvision's VGG19 state dict (never downloaded)
    vgg_layer: str = "54"  # content=vgg: phi_{i,j}, the j-th conv's activation before the i-th max-pool
    init_from: str = ""  # a checkpoint whose G starts this run's G (SRGAN from a trained SRResNet)


# ----------------------------------------------------------------------------- feature nets
class FeatureContent(nn.Module):
    """A frozen feature net in eval mode; ``loss(fake, real)`` = MSE of the features times ``scale``,
    gradients flow to ``fake`` only."""

    def __init__(self, trunk: nn.Module, prepare: Callable[[Tensor], Tensor], scale: float = 1.0):
        super().__init__()
        self.trunk = trunk.requires_grad_(False)
        self.prepare, self.scale = prepare, scale
        self.eval()

    def train(self, mode: bool = True) -> FeatureContent:
        return super().train(False)  # always eval: BatchNorm keeps its running statistics

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(self.prepare(x)) * self.scale

    def loss(self, fake: Tensor, real: Tensor) -> Tensor:
        with torch.no_grad():
            target = self(real)
        return F.mse_loss(self(fake), target)


def content_classifier(view: Any, seed: int, epochs: int, verbose: bool = True) -> Any:
    """The domain classifier of ``view``'s data trained with ``seed`` for ``epochs`` (the project's
    recipe, ``train_classifier``), cached under the evaluation classifiers' folder; training it
    leaves the global RNG untouched."""
    from gan_lightning.metrics import classifier as clf

    train = view.split(train=True, size=28)
    fp = clf.fingerprint(*train)
    path = clf.cache_dir() / "evaluators" / f"content-{clf.classifier_key(fp)}-seed{seed}-e{epochs}.pt"
    with clf.training_lock(path):
        if not path.is_file():
            if verbose:
                print(f"[srgan] training the content classifier (seed {seed}, {epochs} epochs, once)", file=sys.stderr)
            test = view.split(train=False, size=28)
            with torch.random.fork_rng():
                net, meta = clf.train_classifier(
                    train, test, f"{view.info.name}-content", epochs=epochs, seed=seed, verbose=verbose
                )
            clf.save_classifier(net, {**meta, "seed": seed}, path)
    net, meta = clf.load_classifier(path)
    resize = str(getattr(view.dcfg, "resize", "pad"))
    return net, meta, resize


def classifier_content(cfg: DictConfig) -> FeatureContent:
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.classifier import to_classifier_input

    m = cfg.model
    views = build_datamodule(cfg).domain_views()  # type: ignore[attr-defined]  # a PairedDataModule (validate)
    net, _, resize = content_classifier(views["b"], int(m.classifier_seed), int(m.classifier_epochs))
    trunk = net.trunk[: CLASSIFIER_CUTS[int(m.classifier_layer)]]
    return FeatureContent(trunk, lambda x: to_classifier_input(x.add(1).div(2), resize))


def vgg_cut(layer: str) -> int:
    """The index in VGG19's ``features`` just past phi_{i,j}: the ReLU of the j-th conv of block i."""
    from torchvision.models.vgg import cfgs

    if len(layer) != 2 or not layer.isdigit():
        raise ConfigError(f"bad value for 'model.vgg_layer': two digits i j (phi_ij), got '{layer}'; use 54 or 22")
    index, block, conv = 0, 1, 0
    for v in cfgs["E"]:  # VGG19's features: a conv and a ReLU per number, a MaxPool per "M"
        if v == "M":
            index, block, conv = index + 1, block + 1, 0
            continue
        index, conv = index + 2, conv + 1
        if (block, conv) == (int(layer[0]), int(layer[1])):
            return index
    raise ConfigError(
        f"bad value for 'model.vgg_layer': VGG19 has no conv {layer[1]} in block {layer[0]}; use 54 or 22"
    )


def vgg_content(m: Any) -> FeatureContent:
    from torchvision.models import vgg19

    path = Path(str(m.vgg_weights))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"bad value for 'model.vgg_weights': {path} is unreadable ({first_line(e)}); {VGG_FIX}"
        ) from None
    features = vgg19(weights=None).features
    if any(k.startswith("features.") for k in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(
            f"bad value for 'model.vgg_weights': {path} is not a VGG19 ({first_line(e)}); {VGG_FIX}"
        ) from None
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def prepare(x: Tensor) -> Tensor:
        x01 = x.add(1).div(2)
        x01 = x01.expand(-1, 3, -1, -1) if x01.shape[1] == 1 else x01
        return (x01 - mean.to(x.device)) / std.to(x.device)

    # Ledig et al. 2017: the VGG feature maps rescaled by 1/12.75, the content loss ~0.006 x the plain MSE
    return FeatureContent(features[: vgg_cut(str(m.vgg_layer))], prepare, VGG_RESCALE)


# ----------------------------------------------------------------------------- the model
@MODELS.register("srgan")
class SRGAN(TranslationModule):
    """SRGAN (Ledig et al. 2017): SRResNet G (16 residual blocks, 64 channels, sub-pixel x2
    upsampling), a VGG-style D (8 convs, dense 1024, dense 1), G loss = content + 1e-3 x
    adversarial; Adam lr 1e-4, beta1 0.9."""

    Config = SRGANConfig
    defaults: ClassVar[dict[str, Any]] = {
        "nets": {
            "g": "srresnet",
            "d": "srgan",
            "g_width": 64,
            "d_width": 64,
            "resnet_blocks": 16,
            "g_norm": "batch",
            "init": "default",
        },
        "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.9, 0.999]},
    }

    def __init__(self, cfg: DictConfig | dict, info: Any):
        super().__init__(cfg, info)
        c_a, c_b = self.info.shape[0], self.info.shape_b[0]
        self.loss = LOSSES.get(self.mcfg.loss, "model.loss")
        self.G = self.translator(c_a, c_b)
        n = self.cfg.nets
        d_norm = "batch" if n.d_norm == "auto" else str(n.d_norm)
        self.D = self.initialised(SRGANDiscriminator(c_b, self.info.shape_b[-1], int(n.d_width), norm=d_norm))
        self._content: list[FeatureContent] = []  # a plain list: outside the module tree and the state_dict
        self.average("G")

    @classmethod
    def validate(cls, cfg: DictConfig) -> None:
        super(TranslationModule, cls).validate(cfg)  # the base's checks; TranslationModule's are its nets'
        cls.validate_loss(cfg)
        m, n = cfg.model, cfg.nets
        if n.g != "srresnet" or n.d != "srgan":
            raise ConfigError(f"bad value in 'nets': srgan uses nets.g=srresnet and nets.d=srgan, got {n.g}, {n.d}")
        if n.g_norm not in ("batch", "none") or n.d_norm not in ("auto", "batch", "none"):
            raise ConfigError("bad value in 'nets': srgan takes nets.g_norm=batch|none and nets.d_norm=auto|batch|none")
        if n.resnet_blocks < 1:
            raise ConfigError(f"bad value for 'nets.resnet_blocks': must be >= 1, got {n.resnet_blocks}")
        if not getattr(DATAMODULES.get(cfg.data.name, "data.name"), "resizes", False):
            raise ConfigError(
                f"bad value for 'data.name': srgan upsamples, '{cfg.data.name}' does not; use data=fashion_superres"
            )
        cls.validate_nets_read(cfg)
        if m.content not in CONTENTS:
            raise ConfigError(f"bad value for 'model.content': one of {', '.join(CONTENTS)}, got '{m.content}'")
        if m.content == "vgg" and not Path(str(m.vgg_weights)).is_file():
            what = "is empty" if not m.vgg_weights else f"{m.vgg_weights} is not a file"
            raise ConfigError(
                f"bad value for 'model.vgg_weights': content=vgg needs VGG19 weights and it {what}; {VGG_FIX}"
            )
        if m.content == "vgg":
            vgg_cut(str(m.vgg_layer))
        if m.classifier_layer not in CLASSIFIER_CUTS:
            raise ConfigError(f"bad value for 'model.classifier_layer': 1, 2 or 3, got {m.classifier_layer}")
        if m.content == "classifier" and m.classifier_seed == 0:
            raise ConfigError(
                "bad value for 'model.classifier_seed': 0 is the evaluation classifier's seed, so G would be trained "
                "on the features FID measures; use another seed (default 1)"
            )
        if m.classifier_epochs < 1 or m.adv_weight < 0 or m.content_weight <= 0:
            raise ConfigError("bad value in 'model': classifier_epochs >= 1, adv_weight >= 0, content_weight > 0")
        if m.init_from and not Path(str(m.init_from)).is_file():
            raise ConfigError(
                f"bad value for 'model.init_from': {m.init_from} is not a file; give a checkpoint (.ckpt)"
            )

    @classmethod
    def nets_read(cls, cfg: DictConfig) -> set[str]:
        """SRResNet reads resnet_blocks, g_width, g_norm; its D d_width and d_norm."""
        return {"g", "d", "init", "resnet_blocks", "g_width", "g_norm", "d_width", "d_norm"}

    def translator(self, c_in: int, c_out: int) -> nn.Module:
        n = self.cfg.nets
        scale = self.info.shape_b[-1] // self.info.shape[-1]
        return self.initialised(SRResNet(c_in, c_out, scale, int(n.resnet_blocks), int(n.g_width), str(n.g_norm)))

    def nets_for(self, direction: str) -> nn.Module:
        return self.generator("G")

    # ------------------------------------------------------------------ content loss
    def content_net(self) -> FeatureContent | None:
        """The frozen feature net of content=classifier|vgg (built on first use), None for pixel."""
        if self.mcfg.content == "pixel":
            return None
        if not self._content:
            net = classifier_content(self.cfg) if self.mcfg.content == "classifier" else vgg_content(self.mcfg)
            self._content.append(net)
        return self._content[0]

    def content_loss(self, fake: Tensor, real: Tensor) -> Tensor:
        """content_weight x the MSE between ``fake`` and ``real`` (model space) or their features."""
        net = self.content_net()
        if net is None:
            return float(self.mcfg.content_weight) * F.mse_loss(fake, real)
        return float(self.mcfg.content_weight) * net.to(fake.device).loss(fake, real)

    # ------------------------------------------------------------------ training
    def optimizer_groups(self) -> list[OptimizerGroup]:
        o = self.cfg.optim
        groups = [OptimizerGroup(self.G.parameters(), o.lr_g)]
        return [*groups, OptimizerGroup(self.D.parameters(), o.lr_d)] if self.mcfg.adversarial else groups

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.content_net()  # built (or its classifier trained) before the first step
        if self.mcfg.init_from and self.g_step == 0:  # a new run: a resume has restored its own G
            self.load_generator(str(self.mcfg.init_from))
            self.reset_averages()

    def load_generator(self, path: str) -> None:
        """G's weights from the checkpoint at ``path`` (its 'G.' entries)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            self.G.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("G.")})
        except Exception as e:
            raise ConfigError(
                f"bad value for 'model.init_from': {path} holds no G of this shape ({first_line(e)}); "
                "give a checkpoint of srgan/srresnet with the same nets.g_width and nets.resnet_blocks"
            ) from None

    def training_step(self, batch: PairBatch, batch_idx: int) -> dict[str, Tensor]:
        m = self.mcfg
        optimizers = self.optimizers()
        opt_g = optimizers[0] if isinstance(optimizers, list) else optimizers
        lr, hr = batch.a[0], batch.b[0]
        stats: dict[str, Tensor] = {}
        fake = self.G(lr)
        if m.adversarial:  # D step: real HR images against G(LR)
            assert isinstance(optimizers, list)
            d_loss = self.loss.d_loss(self.D(hr), self.D(fake.detach()))
            self.backward_step(optimizers[1], d_loss)
            stats["loss/d"] = d_loss.detach()
        with self.frozen(self.D):  # G step: content + adv_weight x -log D(G(LR))
            content = self.content_loss(fake, hr)
            g_loss = content
            if m.adversarial:
                adv = self.loss.g_loss(self.D(fake))
                g_loss = content + float(m.adv_weight) * adv
                stats["g/adv"] = adv.detach()
            self.backward_step(opt_g, g_loss)
        stats.update({"loss/g": g_loss.detach(), "g/content": content.detach()})
        self.finish_step(stats)
        return stats

    def translation_grid(self, a: Tensor, b: Tensor) -> tuple[Tensor, int]:
        """Rows of (input enlarged by pixel replication, bicubic, output, target), in model space."""
        scale = self.info.shape_b[-1] // self.info.shape[-1]
        a = a.cpu()
        nearest = F.interpolate(a, scale_factor=scale, mode="nearest")
        bicubic = bicubic_upsample(a.add(1).div(2), scale).mul(2).sub(1)
        return torch.stack([nearest, bicubic, self.translate(a).cpu(), b.cpu()], 1).flatten(0, 1), 4
