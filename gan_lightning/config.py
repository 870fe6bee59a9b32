"""Configuration: typed schema <- experiments/base.yaml <- variant defaults <- experiments/<exp>.yaml <- CLI.

The model and data sections are typed by the chosen model and dataset (each declares a
``Config`` dataclass), so a key that the chosen parts do not have fails before anything runs,
with the closest valid names.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from gan_lightning.registry import ConfigError, close_matches, unknown_name_message


# ----------------------------------------------------------------------------- schema
@dataclass
class PenaltyConfig:
    name: str = "none"  # none | gp | dragan | r1
    weight: float = 10.0


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
    g_norm: str = "batch"  # batch | instance | layer | none
    d_norm: str = "auto"  # auto: none with a per-sample penalty or spectral norm, else batch
    mlp_hidden: int = 256
    mlp_layers: int = 3
    init: str = "dcgan"  # dcgan (N(0, 0.02)) | default (PyTorch's)
    resnet_blocks: int = 9  # image-to-image ResNet generator: 6 or 9 residual blocks
    patch_layers: int = 3  # PatchGAN: 3 stride-2 layers = a 70x70 receptive field


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | rmsprop | sgd
    lr_g: float = 2.0e-4
    lr_d: float = 2.0e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    eps: float = 1.0e-8
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | linear_decay
    decay_start: float = 0.5  # linear_decay: fraction of `steps` after which lr falls linearly to 0


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
    names: list[str] = field(default_factory=list)  # fid | kid | prdc | is | classes | modes
    every: int = 0  # every N generator steps (0: only at the end)
    n: int = 2500  # generated samples per evaluation
    primary: str = ""  # key that picks best.ckpt ('' = fid if computed, else the first metric's own)
    features: str = "classifier"  # feature space of fid/kid/prdc: classifier | inception
    ref_split: str = "train"  # dataset split of the reference statistics: train | test
    n_ref: int = 10000  # reference images (the whole split if larger)
    resize: str = "tf1_bilinear"  # resize to 299 for inception: tf1_bilinear | bilinear | bicubic | nearest
    is_weights: str = ""  # torch-fidelity's Inception weights (path) for IS on ImageNet logits
    raw_too: bool = True  # with an EMA of G, also evaluate the raw generator (keys raw/...)


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
    logger: list[str] = field(default_factory=lambda: ["csv"])  # csv | tensorboard | wandb
    model: ModelConfig = field(default_factory=ModelConfig)
    nets: NetsConfig = field(default_factory=NetsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    trainer: dict[str, Any] = field(default_factory=dict)  # passed to lightning.Trainer


# keys of lightning.Trainer that the framework sets itself
RESERVED_TRAINER_KEYS = {
    "callbacks": "the framework adds its own callbacks",
    "logger": "use the top-level key logger=csv,tensorboard,wandb",
    "max_steps": "use steps=N (generator iterations)",
    "max_epochs": "use steps=N (generator iterations)",
    "enable_checkpointing": "checkpoints are written to <run>/checkpoints by the framework",
    "default_root_dir": "use out=DIR",
}

SHORTHANDS = {"model": "model.name", "data": "data.name"}


# ----------------------------------------------------------------------------- files
def experiments_dir() -> Path:
    """experiments/: $GAN_LIGHTNING_EXPERIMENTS, else next to the package (editable install), else ./"""
    env = os.environ.get("GAN_LIGHTNING_EXPERIMENTS")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parent.parent / "experiments"
    return beside if beside.is_dir() else Path.cwd() / "experiments"


def known_experiments() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.yaml") if p.stem != "base")


def experiment_path(exp: str) -> Path:
    if exp.endswith((".yaml", ".yml")):
        path = Path(exp)
        if not path.is_file():
            raise ConfigError(f"experiment file '{exp}' does not exist")
        return path
    path = experiments_dir() / f"{exp}.yaml"
    if not path.is_file():
        raise ConfigError(unknown_name_message("experiment", exp, known_experiments(), "exp"))
    return path


# ----------------------------------------------------------------------------- loading
def parse_overrides(args: list[str]) -> tuple[str | None, list[str]]:
    """Split CLI ``key=value`` args into the experiment name and an OmegaConf dotlist."""
    exp, dotlist = None, []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"'{arg}' is not a key=value override (e.g. steps=1000, model.n_critic=5)")
        key, value = arg.split("=", 1)
        key = key.lstrip("-").strip()
        if key == "exp":
            exp = value
            continue
        if key in SHORTHANDS:
            key = SHORTHANDS[key]
        if key == "logger" and not value.startswith("["):
            value = "[" + value + "]"
        dotlist.append(f"{key}={value}")
    return exp, dotlist


def _load_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml syntax
        raise ConfigError(f"cannot parse {path}: {e}") from e
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return cfg


def _dotlist(dotlist: list[str]) -> DictConfig:
    try:
        return OmegaConf.from_dotlist(dotlist)
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot parse the overrides {dotlist}: {e}") from e


def _valid_keys(node: Any) -> list[str]:
    return [str(k) for k in node] if isinstance(node, DictConfig) else []


def _merge_layer(schema: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    """Merge one layer into the typed config, turning OmegaConf errors into named ones."""
    try:
        return OmegaConf.merge(schema, layer)  # type: ignore[return-value]
    except ConfigKeyError as e:
        full = str(e.full_key or e.key)
        parent_path, _, key = full.rpartition(".")
        parent = OmegaConf.select(schema, parent_path) if parent_path else schema
        valid = _valid_keys(parent)
        where = f"'{parent_path}'" if parent_path else "the top level"
        msg = f"unknown config key '{full}' (from {source})."
        near = close_matches(key, valid)
        if near:
            msg += (
                " Did you mean " + ", ".join(f"'{(parent_path + '.') if parent_path else ''}{m}'" for m in near) + "?"
            )
        msg += f" Valid keys in {where}: {', '.join(valid)}."
        raise ConfigError(msg) from None
    except ValidationError as e:
        raise ConfigError(f"bad value for '{e.full_key}' (from {source}): {e.msg}") from None


def _select_name(layers: list[DictConfig], path: str, default: str) -> str:
    name = default
    for layer in layers:
        value = OmegaConf.select(layer, path, default=None)
        if value is not None:
            name = str(value)
    return name


def load_config(args: list[str] | None = None, exp: str | None = None) -> DictConfig:
    """The fully resolved, validated config for ``exp`` and CLI-style ``key=value`` overrides."""
    from gan_lightning.data import DATAMODULES
    from gan_lightning.models import MODELS

    cli_exp, dotlist = parse_overrides(list(args or []))
    exp = cli_exp or exp or "quickstart"
    exp_file = experiment_path(exp)
    base_file = experiments_dir() / "base.yaml"
    layers = [(_load_yaml(base_file), str(base_file))] if base_file.is_file() else []
    layers.append((_load_yaml(exp_file), str(exp_file)))
    layers.append((_dotlist(dotlist), "the command line"))
    raw = [layer for layer, _ in layers]

    model_cls = MODELS.get(_select_name(raw, "model.name", "gan"), "model.name")
    data_cls = DATAMODULES.get(_select_name(raw, "data.name", "toy"), "data.name")
    schema = OmegaConf.structured(RootConfig(model=model_cls.Config(), data=data_cls.Config()))
    schema = _merge_layer(schema, OmegaConf.create(model_cls.defaults), f"the defaults of model '{model_cls.__name__}'")
    for layer, source in layers:
        schema = _merge_layer(schema, layer, source)
    schema.exp = Path(exp).stem if exp.endswith((".yaml", ".yml")) else exp
    validate(schema, model_cls, data_cls)
    OmegaConf.set_readonly(schema, False)
    return schema


# ----------------------------------------------------------------------------- validation
def _check(cond: bool, field_name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"bad value for '{field_name}': {msg}")


def validate(cfg: DictConfig, model_cls: Any, data_cls: Any) -> None:
    """Range and name checks of the generic sections; the model and data check their own."""
    from gan_lightning.optim import OPTIMIZERS

    _check(cfg.steps >= 1, "steps", f"must be >= 1 generator iterations, got {cfg.steps}")
    _check(cfg.seed >= 0, "seed", f"must be >= 0, got {cfg.seed}")
    if cfg.resume is not None and cfg.resume != "auto":
        _check(bool(cfg.resume), "resume", "give a checkpoint path, 'auto' or null")
    o = cfg.optim
    OPTIMIZERS.get(o.name, "optim.name")
    for key in ("lr_g", "lr_d"):
        _check(o[key] > 0, f"optim.{key}", f"learning rates must be > 0, got {o[key]}")
    _check(
        len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
        "optim.betas",
        f"two values in [0, 1), got {list(o.betas)}",
    )
    _check(
        o.schedule in ("constant", "linear_decay"), "optim.schedule", f"constant or linear_decay, got '{o.schedule}'"
    )
    _check(0 <= o.decay_start <= 1, "optim.decay_start", f"a fraction of steps in [0, 1], got {o.decay_start}")
    _check(cfg.nets.init in ("dcgan", "default"), "nets.init", f"dcgan or default, got '{cfg.nets.init}'")
    for key in ("g_width", "d_width", "mlp_hidden", "mlp_layers"):
        _check(cfg.nets[key] >= 1, f"nets.{key}", f"must be >= 1, got {cfg.nets[key]}")
    _check(cfg.data.batch_size >= 1, "data.batch_size", f"must be >= 1, got {cfg.data.batch_size}")
    _check(cfg.data.resident in ("auto", "cpu"), "data.resident", f"auto or cpu, got '{cfg.data.resident}'")
    for key in ("every", "sample_every", "ckpt_every", "keep_every", "grid"):
        _check(cfg.log[key] >= 0, f"log.{key}", f"must be >= 0, got {cfg.log[key]}")
    mc = cfg.metrics
    _check(mc.every >= 0, "metrics.every", f"must be >= 0, got {mc.every}")
    _check(mc.n >= 2 and mc.n_ref >= 2, "metrics.n", f"n and n_ref must be >= 2, got {mc.n} and {mc.n_ref}")
    _check(
        mc.features in ("classifier", "inception"), "metrics.features", f"classifier or inception, got '{mc.features}'"
    )
    _check(mc.ref_split in ("train", "test"), "metrics.ref_split", f"train or test, got '{mc.ref_split}'")
    from gan_lightning.metrics.evaluator import METRICS

    for name in mc.names:
        METRICS.get(name, "metrics.names")
    for name in cfg.logger:
        _check(name in ("csv", "tensorboard", "wandb"), "logger", f"csv, tensorboard or wandb, got '{name}'")
    _validate_trainer(cfg.trainer)
    model_cls.validate(cfg)
    data_cls.validate(cfg)


def _validate_trainer(trainer: DictConfig) -> None:
    import lightning

    params = [p for p in inspect.signature(lightning.Trainer.__init__).parameters if p != "self"]
    for key in trainer:
        if key in RESERVED_TRAINER_KEYS:
            raise ConfigError(f"'trainer.{key}' is set by gan_lightning: {RESERVED_TRAINER_KEYS[key]}")
        if key not in params:
            raise ConfigError(unknown_name_message("lightning.Trainer argument", str(key), params, f"trainer.{key}"))


def to_yaml(cfg: DictConfig | ListConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def from_container(data: dict[str, Any]) -> DictConfig:
    """Rebuild the typed config stored in a checkpoint (names are looked up again)."""
    from gan_lightning.data import DATAMODULES
    from gan_lightning.models import MODELS

    model_cls = MODELS.get(data["model"]["name"], "model.name")
    data_cls = DATAMODULES.get(data["data"]["name"], "data.name")
    schema = OmegaConf.structured(RootConfig(model=model_cls.Config(), data=data_cls.Config()))
    return _merge_layer(schema, OmegaConf.create(data), "the checkpoint's config")
