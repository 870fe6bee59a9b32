"""The typed config schema: one dataclass per section, and the typed rebuild of a stored config.

A leaf module: it imports nothing of the package, so models, data and the loader
(``gan_lightning.config``) can all import it without a cycle. Models and DataModules extend
``ModelConfig`` and ``DataConfig`` with their own fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


@dataclass
class PenaltyConfig:
    name: str = "none"  # none | gp | dragan | r1
    weight: float = 10.0
    every: int = 1  # lazy regularisation: on every k-th D step only, with weight x k (Karras et al. 2020)


@dataclass
class EMAConfig:
    decay: float = 0.0  # 0 disables the EMA of G; e.g. 0.999
    start: int = 0  # G step at which averaging starts (a plain copy before)


@dataclass
class ModelConfig:
    """Fields every model has; each model class extends it with its own ``Config``."""

    name: str = "gan"
    z_dim: int = 64


@dataclass
class NetsConfig:
    g: str = "dcgan"
    d: str = "dcgan"
    g_width: int = 64  # base channels of conv nets
    d_width: int = 64
    g_norm: str = "batch"  # batch | instance | layer | virtual_batch | none
    d_norm: str = "auto"  # auto: none with a per-sample penalty or spectral norm, else batch
    d_minibatch: str = "none"  # none | discrimination (Salimans et al. 2016) | stddev (Karras et al. 2018)
    mlp_hidden: int = 256
    mlp_layers: int = 3
    mlp_d_hidden: int = 0  # the MLP critic's own width and depth (0: mlp_hidden, mlp_layers)
    mlp_d_layers: int = 0
    mlp_maxout: int = 0  # MLP critic: maxout units of this many pieces (Goodfellow et al. 2013; 0: LeakyReLU)
    init: str = "dcgan"  # dcgan (N(0, 0.02)) | orthogonal (Saxe et al. 2014) | default (PyTorch's)
    resnet_blocks: int = 9  # image-to-image ResNet generator: 6 or 9 residual blocks
    patch_layers: int = 3  # PatchGAN: 3 stride-2 layers = a 70x70 receptive field
    attention_res: int = 0  # biggan nets: self-attention (SAGAN) on the feature maps of this size (0: none)
    style_mapping_layers: int = 8  # style G: layers of the mapping MLP z -> w (Karras et al. 2019: 8)
    style_norm: str = "demod"  # style G: demod (modulated convs, StyleGAN2) | adain (StyleGAN)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | rmsprop | sgd
    lr_g: float = 2.0e-4
    lr_d: float = 2.0e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    eps: float = 1.0e-8
    alpha: float = 0.99  # rmsprop: decay of its squared-gradient average (torch's default; Adam's beta2)
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | linear_decay
    decay_start: float = 0.5  # linear_decay: fraction of `steps` after which lr falls linearly to 0
    # a net with a lazy regulariser (every k steps) gets lr x c, betas ^ c and alpha ^ c, c = k / (k + 1), the paper's
    # values (Karras et al. 2020, appendix B), though the lazy term joins the k-th step's loss here instead of
    # taking a step of its own (optim.lazy_adjusted); the model's paper defaults turn it on (stylegan)
    lazy_adjust: bool = False


@dataclass
class DataConfig:
    """Fields every dataset has; each DataModule extends it with its own ``Config``."""

    name: str = "toy"
    batch_size: int = 64
    data_dir: str = "data"
    resident: str = "auto"  # in-memory datasets: auto (on the accelerator when training on one) | cpu


@dataclass
class LogConfig:
    every: int = 50  # scalars every N generator steps
    sample_every: int = 500  # fixed-z grids / toy scatter plots (and at the end)
    ckpt_every: int = 500  # checkpoints/last.ckpt
    keep_every: int = 0  # also keep checkpoints/step=N.ckpt every N steps (0: none)
    grid: int = 64  # samples in a grid
    progress: bool = True
    interpolate: bool = True  # lerp/slerp grids at every sample_every (image data)
    interp_pairs: int = 8
    interp_points: int = 10
    neighbours: bool = True  # at the end: nearest training images and the memorisation share (image data)


@dataclass
class MetricsConfig:
    names: list[str] = field(default_factory=list)  # fid | kid | prdc | is | classes | modes | mmd | ... (README)
    every: int = 0  # every N generator steps (0: only at the end)
    n: int = 2500  # generated samples per evaluation
    primary: str = ""  # key that picks best.ckpt ('' = fid if computed, else the first metric's own)
    features: str = "classifier"  # feature space of fid/kid/prdc: classifier | inception
    ref_split: str = "train"  # dataset split of the reference statistics: train | test
    n_ref: int = 10000  # reference images (the whole split if larger)
    resize: str = "tf1_bilinear"  # resize to 299 for inception: tf1_bilinear | bilinear | bicubic | nearest
    is_weights: str = ""  # torch-fidelity's Inception weights (path) for IS on ImageNet logits
    raw_too: bool = True  # with an EMA of G, also evaluate the raw generator (keys raw/...)
    ndb_bins: int = 50  # k-means bins of the 'ndb' measure
    recon_n: int = 100  # reference images inverted by the 'recon' measure
    recon_steps: int = 200  # Adam steps per inversion of 'recon'
    ppl_space: str = "w"  # 'ppl': w (lerp of mapped w; generators without a mapping net use z) | z (slerp)
    ppl_n: int = 2000  # 'ppl': pairs of latents


@dataclass
class PerfConfig:
    tf32: bool = True  # allow TF32 matmuls/convs on Ampere+ GPUs
    deterministic: bool = False  # torch.use_deterministic_algorithms (CPU runs are bitwise repeatable anyway)
    fast: bool = (
        False  # D and G steps captured as CUDA graphs and replayed (one GPU, GAN family; gan_lightning/fast.py)
    )


@dataclass
class RootConfig:
    exp: str = "quickstart"
    seed: int = 0
    steps: int = 1000  # generator iterations
    out: str | None = None  # run directory (default runs/<exp>/<time>-s<seed>)
    resume: str | None = None  # PATH to a checkpoint, 'auto', or null
    resume_override: bool = False  # resume: apply changed keys beyond steps/log/metrics/logger (recorded)
    logger: list[str] = field(default_factory=lambda: ["csv"])  # csv | tensorboard | wandb
    model: ModelConfig = field(default_factory=ModelConfig)
    nets: NetsConfig = field(default_factory=NetsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    trainer: dict[str, Any] = field(default_factory=dict)  # passed to lightning.Trainer


def to_yaml(cfg: DictConfig | ListConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def typed_schema(model_config: type, data_config: type) -> DictConfig:
    """The root schema with the model's and the dataset's own sections."""
    return OmegaConf.structured(RootConfig(model=model_config(), data=data_config()))
