"""The config loader: typed schema < experiments/base.yaml < the model's paper defaults <
experiments/<exp>.yaml < ``key=value`` on the command line, each layer overriding the one before.

The model and data sections are typed by the chosen model and dataset (each declares a
``Config`` dataclass), so a key that the chosen parts do not have fails before anything runs,
with the closest valid names. An experiment file's ``model:`` keys belong to the model it names:
``model=OTHER`` on the command line drops them (they are printed) and brings OTHER's defaults.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import typing
from pathlib import Path
from typing import Any

import lightning
from omegaconf import Container, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from gan_lightning.data import DATAMODULES
from gan_lightning.distributed import process_count
from gan_lightning.metrics.evaluator import check_sample_size
from gan_lightning.models import MODELS
from gan_lightning.nets import DISCRIMINATORS, capability
from gan_lightning.optim import OPTIMIZERS
from gan_lightning.precision import DEFAULT_PRECISION, IF_NATIVE, resolve_precision
from gan_lightning.registry import ConfigError, close_matches, unknown_name_message
from gan_lightning.schema import to_container, to_yaml, typed_schema

__all__ = [
    "annotated_yaml",
    "config_origins",
    "experiments_dir",
    "from_container",
    "known_experiments",
    "load_config",
    "to_container",
    "to_yaml",
]

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
    """The experiment files: $GAN_LIGHTNING_EXPERIMENTS, else the package's own ``experiments/``
    (package data, so an installed wheel finds them from any directory; the repository's top-level
    ``experiments`` is a link to it)."""
    env = os.environ.get("GAN_LIGHTNING_EXPERIMENTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "experiments"


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
        raise ConfigError(f"bad value for '{e.full_key}' (from {source}): {type_error(e)}") from None


TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def type_error(e: ValidationError) -> str:
    """'expected an integer, got 'abc'': one line from OmegaConf's multi-line validation error."""
    node = e.child_node
    ref = getattr(getattr(node, "_metadata", None), "ref_type", None)
    if ref is None:
        return str(e.msg).splitlines()[0]
    origin = getattr(ref, "__origin__", None)
    if origin in (list, tuple):
        expected = "a list such as [a, b]"
    elif origin is dict:
        expected = "a mapping such as {key: value}"
    else:
        expected = TYPE_WORDS.get(ref, getattr(ref, "__name__", str(ref)))
    value = e.value
    if isinstance(value, Container):
        value = OmegaConf.to_container(value)
    shown = "null" if value is None else repr(value)
    optional = " or null" if node is not None and node._is_optional() else ""
    return f"expected {expected}{optional}, got {shown}"


def _select_name(layers: list[DictConfig], path: str, default: str) -> str:
    name = default
    for layer in layers:
        value = OmegaConf.select(layer, path, default=None)
        if value is not None:
            name = str(value)
    return name


def _drop_other_models_keys(exp_layer: DictConfig, exp_model: str, model: str, exp: str) -> DictConfig:
    """``model=OTHER`` on the command line: the experiment's ``model:`` keys belong to its own
    model, so they are dropped (and printed); OTHER's paper defaults apply instead."""
    if model == exp_model or "model" not in exp_layer:
        return exp_layer
    dropped = {k: v for k, v in OmegaConf.to_container(exp_layer.model).items() if k != "name"}  # type: ignore[union-attr]
    if dropped:
        listed = ", ".join(f"model.{k!s}={v}" for k, v in dropped.items())
        print(
            f"[config] model={model} replaces {exp}'s model '{exp_model}'; dropped its keys: {listed}", file=sys.stderr
        )
    layer = exp_layer.copy()
    del layer["model"]
    return layer


def config_layers(args: list[str] | None = None, exp: str | None = None) -> tuple[str, list[tuple[DictConfig, str]]]:
    """(experiment name, [(layer, its source)] from the lowest to the highest priority); the
    typed schema under them is built from the model and dataset the layers name."""
    cli_exp, dotlist = parse_overrides(list(args or []))
    exp = cli_exp or exp or "quickstart"
    exp_file = experiment_path(exp)
    base_file = experiments_dir() / "base.yaml"
    base = _load_yaml(base_file) if base_file.is_file() else OmegaConf.create({})
    exp_layer, cli = _load_yaml(exp_file), _dotlist(dotlist)
    exp_model = _select_name([base, exp_layer], "model.name", "gan")
    model_name = _select_name([base, exp_layer, cli], "model.name", "gan")
    model_cls = MODELS.get(model_name, "model.name")
    exp_layer = _drop_other_models_keys(exp_layer, exp_model, model_name, Path(exp).stem)
    paper = OmegaConf.merge(model_cls.defaults, {"model": {"name": model_name}})
    assert isinstance(paper, DictConfig)  # a merge of mappings
    layers = [
        (base, str(base_file)),
        (paper, f"the paper defaults of model '{model_name}' ({model_cls.__name__})"),
        (exp_layer, str(exp_file)),
        (cli, "the command line"),
    ]
    return exp, layers


def load_config(args: list[str] | None = None, exp: str | None = None) -> DictConfig:
    """The fully resolved, validated config for ``exp`` and CLI-style ``key=value`` overrides."""
    return _resolve(*config_layers(args, exp))


def _resolve(exp: str, layers: list[tuple[DictConfig, str]]) -> DictConfig:
    raw = [layer for layer, _ in layers]
    model_cls = MODELS.get(_select_name(raw, "model.name", "gan"), "model.name")
    data_cls = DATAMODULES.get(_select_name(raw, "data.name", "toy"), "data.name")
    cfg = typed_schema(model_cls.Config, data_cls.Config)
    for layer, source in layers:
        cfg = _merge_layer(cfg, layer, source)
    cfg.exp = Path(exp).stem if exp.endswith((".yaml", ".yml")) else exp
    resolve_precision(cfg.trainer)
    validate(cfg, model_cls, data_cls)
    OmegaConf.set_readonly(cfg, False)
    return cfg


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of a nested mapping; lists and scalars are leaves."""
    if not isinstance(node, dict) or not node:
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def short_source(source: str) -> str:
    """'experiments/wgan_gp.yaml' for a file under the experiments directory, else unchanged."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") and path.parent == experiments_dir():
        return f"experiments/{path.name}"
    return source


def config_origins(args: list[str] | None = None, exp: str | None = None) -> tuple[DictConfig, dict[str, str]]:
    """(the resolved config, {dotted key: the layer that set it}); 'schema' where no layer did."""
    exp, layers = config_layers(args, exp)
    cfg = _resolve(exp, layers)
    origins = dict.fromkeys(_leaves(to_container(cfg)), "schema")
    for layer, source in layers:
        for key in _leaves(OmegaConf.to_container(layer)):
            if key in origins:
                origins[key] = short_source(source)
            else:  # a layer set a whole mapping the schema types as one value (or a prefix of it)
                for full in origins:
                    if full.startswith(key + "."):
                        origins[full] = short_source(source)
    for key in origins:  # set by the loader itself
        if key == "exp":
            origins[key] = "the experiment's name"
    return cfg, origins


def annotated_yaml(cfg: DictConfig, origins: dict[str, str]) -> str:
    """The config as YAML with each key's origin layer as a trailing comment."""
    import yaml

    def flow(value: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        return text[: -len("...")].strip() if text.endswith("...") else text

    lines: list[str] = []

    def walk(node: dict[str, Any], prefix: str, indent: int) -> None:
        for key, value in node.items():
            full = f"{prefix}.{key}" if prefix else str(key)
            pad = "  " * indent
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{key}:")
                walk(value, full, indent + 1)
            else:
                lines.append(f"{pad}{key}: {flow(value)}  # {origins.get(full, 'schema')}")

    walk(to_container(cfg), "", 0)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- validation
def _check(cond: bool, field_name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"bad value for '{field_name}': {msg}")


MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed_everything's largest seed


def validate(cfg: DictConfig, model_cls: Any, data_cls: Any) -> None:
    """Range and name checks of the generic sections; the model and data check their own."""
    _check(cfg.steps >= 1, "steps", f"must be >= 1 generator iterations, got {cfg.steps}")
    _check(0 <= cfg.seed <= MAX_SEED, "seed", f"in [0, 2**32 - 1] (the seeders' range), got {cfg.seed}")
    if cfg.resume is not None and cfg.resume != "auto":
        _check(bool(cfg.resume), "resume", "give a checkpoint path, 'auto' or null")
    o = cfg.optim
    OPTIMIZERS.get(o.name, "optim.name")
    for key in ("lr_g", "lr_d"):
        _check(
            math.isfinite(o[key]) and o[key] > 0, f"optim.{key}", f"learning rates must be finite and > 0, got {o[key]}"
        )
    _check(0 <= o.alpha < 1, "optim.alpha", f"RMSprop's squared-gradient decay, in [0, 1), got {o.alpha}")
    weight = OmegaConf.select(cfg, "model.penalty.weight")
    if weight is not None:
        _check(math.isfinite(weight) and weight >= 0, "model.penalty.weight", f"finite and >= 0, got {weight}")
    _check(
        len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
        "optim.betas",
        f"two values in [0, 1), got {list(o.betas)}",
    )
    _check(
        o.schedule in ("constant", "linear_decay"), "optim.schedule", f"constant or linear_decay, got '{o.schedule}'"
    )
    _check(0 <= o.decay_start <= 1, "optim.decay_start", f"a fraction of steps in [0, 1], got {o.decay_start}")
    inits = ("dcgan", "orthogonal", "default")
    _check(cfg.nets.init in inits, "nets.init", f"one of {', '.join(inits)}, got '{cfg.nets.init}'")
    for key in ("g_width", "d_width", "mlp_hidden", "mlp_layers"):
        _check(cfg.nets[key] >= 1, f"nets.{key}", f"must be >= 1, got {cfg.nets[key]}")
    for key in ("mlp_d_hidden", "mlp_d_layers"):
        _check(
            cfg.nets[key] >= 0, f"nets.{key}", f"must be >= 1 (0: as nets.{key.replace('_d', '')}), got {cfg.nets[key]}"
        )
    maxout = cfg.nets.mlp_maxout
    _check(maxout == 0 or maxout >= 2, "nets.mlp_maxout", f"0 (LeakyReLU units) or >= 2 pieces per unit, got {maxout}")
    _check(
        maxout == 0 or (cfg.nets.d in DISCRIMINATORS and capability(DISCRIMINATORS[cfg.nets.d], "maxout_units")),
        "nets.mlp_maxout",
        f"maxout units exist in the MLP critic only, and nets.d={cfg.nets.d}; use nets.d=mlp or nets.mlp_maxout=0",
    )
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
    check_sample_size(list(mc.names), int(mc.n), "metrics.n", "metrics.names")  # and every name is known
    check_sample_size(list(mc.names), int(mc.n_ref), "metrics.n_ref", "metrics.names")  # prdc reads both
    for name in cfg.logger:
        _check(name in ("csv", "tensorboard", "wandb"), "logger", f"csv, tensorboard or wandb, got '{name}'")
    _validate_trainer(cfg.trainer)
    processes = process_count(cfg.trainer)
    _check(
        not mc.names or mc.n >= processes,
        "metrics.n",
        f"{mc.n} samples for {processes} processes: each evaluates its share, and one with none would leave the "
        f"others waiting in their gathers; use metrics.n >= {processes}",
    )
    model_cls.validate(cfg)
    data_cls.validate(cfg)


def lightning_precisions() -> list[Any]:
    """The values of ``lightning.Trainer(precision=...)`` that this Lightning accepts."""
    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # a Lightning without the list: let it check
        return []
    return [v for literal in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(literal)]


def _validate_trainer(trainer: DictConfig) -> None:
    params = [p for p in inspect.signature(lightning.Trainer.__init__).parameters if p != "self"]
    for key in trainer:
        if key in RESERVED_TRAINER_KEYS:
            raise ConfigError(f"'trainer.{key}' is set by gan_lightning: {RESERVED_TRAINER_KEYS[key]}")
        if key not in params:
            raise ConfigError(unknown_name_message("lightning.Trainer argument", str(key), params, f"trainer.{key!s}"))
    precision = trainer.get("precision")
    allowed = lightning_precisions()
    if precision is not None and allowed and precision not in allowed:
        names = sorted((v for v in allowed if isinstance(v, str) and "-" in v), key=lambda v: "transformer" in v)
        near = close_matches(str(precision), [*names, IF_NATIVE])
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise ConfigError(
            f"bad value for 'trainer.precision': '{precision}' is not a precision of Lightning.{hint} "
            f"Use one of {', '.join(names)} ({DEFAULT_PRECISION} is the default), or {IF_NATIVE} (bf16-mixed "
            f"where the device computes bf16 natively, else {DEFAULT_PRECISION})"
        )


def from_container(data: dict[str, Any]) -> DictConfig:
    """Rebuild the typed config stored in a checkpoint (names are looked up again)."""
    try:
        return MODELS.get(data["model"]["name"], "model.name").typed_config(data)
    except OmegaConfBaseException as e:
        raise ConfigError(f"the checkpoint's config does not fit this version of the code: {e}") from None
