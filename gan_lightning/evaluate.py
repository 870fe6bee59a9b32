"""``gan-lightning evaluate CKPT`` and ``gan-lightning fid A B``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_lightning.callbacks.metrics import compute_metrics
from gan_lightning.checkpoint import load_model
from gan_lightning.cpu_memory import check_fits_in_memory
from gan_lightning.data.images import IMAGE_SUFFIXES, eight_bit, list_images, read_image
from gan_lightning.files import write_json
from gan_lightning.metrics.evaluator import Evaluator, check_sample_size
from gan_lightning.metrics.frechet import StreamingStats, frechet_distance
from gan_lightning.metrics.reference import cached_reference, choose
from gan_lightning.progress import progress
from gan_lightning.registry import ConfigError, first_line


def datamodule_for(cfg: Any, data_dir: str | None = None) -> Any:
    from gan_lightning.data import build_datamodule

    if data_dir:
        cfg.data.data_dir = data_dir
    return build_datamodule(cfg)


def evaluate_checkpoint(
    ckpt: str | Path,
    metrics: list[str] | None = None,
    n: int = 10000,
    features: str = "classifier",
    ref_split: str = "test",
    device: str = "cpu",
    seed: int = 4321,
    raw_too: bool = True,
    data_dir: str | None = None,
    resize: str = "tf1_bilinear",
    is_weights: str | None = None,
    out: str | Path | None = None,
    ppl_space: str = "w",
    ppl_n: int = 2000,
) -> dict[str, Any]:
    """Metrics of a checkpoint's generators; written as JSON beside the checkpoint (or ``out``)."""
    if n < 2:
        raise ConfigError(f"bad value for '--n': at least 2 samples (a covariance), got {n}")
    model = load_model(ckpt, device)
    check_fits_in_memory(n, model)
    kind = model.info.kind
    settings = {"features": features, "ref_split": ref_split, "n": n, "seed": seed, "resize": resize}
    settings |= {"ppl_space": ppl_space, "ppl_n": ppl_n, "is_weights": is_weights}
    path = Path(out) if out else evaluation_path(Path(ckpt), model.g_step, settings)
    if kind == "pair":  # image-to-image: the measures the run's TranslationMetrics callback takes, on the test split
        values, described = evaluate_translation(model, metrics, n, features, device, data_dir, raw_too)
    else:
        names = metrics or (["modes"] if kind == "toy" else ["fid", "kid", "prdc", "is", "classes"])
        check_sample_size(names, n, "--n", "--metrics")
        evaluator = checkpoint_evaluator(
            model, names, n, features, ref_split, device, data_dir, resize, is_weights, ppl_space=ppl_space, ppl_n=ppl_n
        )
        evaluator.artifacts_prefix = str(path.with_suffix(""))  # pictures some measures draw: <json stem>-*.png
        evaluator.prepare().check_model(model)
        values, described = compute_metrics(evaluator, model, n, None, raw_too, seed), evaluator.describe()
    result = {"checkpoint": str(ckpt), "g_step": model.g_step, "n": n, "seed": seed, **described, "values": values}
    result["settings"] = settings
    path.parent.mkdir(parents=True, exist_ok=True)
    # the file keeps an earlier evaluation's other metrics; this call returns (and prints) its own
    write_json(path, with_earlier_values(path, result))  # strict JSON: a non-finite value is null
    return {**result, "written_to": str(path)}


def evaluate_translation(
    model: Any,
    metrics: list[str] | None,
    n: int,
    features: str,
    device: str,
    data_dir: str | None,
    raw_too: bool = True,
) -> tuple[dict[str, float], dict[str, Any]]:
    """A translation model's measures on ``n`` test images (per direction or domain pair, and the task's
    model-free baseline), with the domain classifiers (or Inception features where the task has none); with an
    EMA and ``raw_too``, the trained generators' measures as well, under ``raw/``."""
    from gan_lightning.metrics.translation import (
        TargetMemo,
        baseline_metrics,
        describe_translation_measures,
        translation_features,
        translation_metrics,
    )

    if metrics and metrics != ["translation"]:
        raise ConfigError(
            f"bad value for '--metrics': an image-to-image model is measured by 'translation' (L1, SSIM, PSNR, FID, "
            f"label agreement, the hidden-code check), got {','.join(metrics)}; use --metrics translation"
        )
    dm = datamodule_for(model.cfg, data_dir)
    if hasattr(dm, "prepare"):
        dm.prepare()
    classifiers, inception = translation_features(dm, features, device, verbose=True)
    memo: TargetMemo = {}  # the targets' features, shared by the EMA's, the trained nets' and the baseline's scores
    values = translation_metrics(model, dm, n, classifiers, inception, memo)
    if raw_too and model.averaged:
        with model.raw_generators():
            raw = translation_metrics(model, dm, n, classifiers, inception, memo)
            values.update({f"raw/{k}": v for k, v in raw.items()})
    values.update(baseline_metrics(dm, n, classifiers, inception, memo))
    return values, describe_translation_measures(classifiers, dm)


# The settings an evaluation's file is named by when they differ from these (the command's defaults).
DEFAULT_SETTINGS: dict[str, Any] = {
    "features": "classifier",
    "ref_split": "test",
    "n": 10000,
    "seed": 4321,
    "resize": "tf1_bilinear",
    "ppl_space": "w",
    "ppl_n": 2000,
}
SETTING_LABELS = {"n": "n{}", "seed": "seed{}", "ppl_space": "ppl-{}", "ppl_n": "ppl{}"}


def evaluation_path(ckpt: Path, g_step: int, settings: dict[str, Any]) -> Path:
    """``<run>/evaluate-<ckpt stem>-step<G>[-<setting>...].json``: the G step and each setting that differs from
    the defaults name the file, so an evaluation at other settings, or of a later last.ckpt, keeps the earlier one."""
    parts = [f"step{g_step}"] + [
        SETTING_LABELS.get(key, "{}").format(settings[key])
        for key, default in DEFAULT_SETTINGS.items()
        if settings[key] != default
    ]
    return ckpt.parent.parent / f"evaluate-{ckpt.stem}-{'-'.join(parts)}.json"


def with_earlier_values(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the metrics an earlier evaluation of the same checkpoint, step and settings wrote to
    ``path`` (this one's values win where both measured a metric); else ``result`` as it is."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return result
    if not isinstance(earlier, dict) or any(earlier.get(k) != result[k] for k in ("checkpoint", "g_step", "settings")):
        return result
    if None not in (earlier.get("reference"), result.get("reference")) and earlier["reference"] != result["reference"]:
        return result  # another feature network or reference images (a retrained classifier): not comparable
    before, now = earlier.get("metrics"), result.get("metrics")
    names = [m for m in before if m not in now] + now if isinstance(before, list) and isinstance(now, list) else now
    return {**earlier, **result, "metrics": names, "values": {**earlier.get("values", {}), **result["values"]}}


def checkpoint_evaluator(
    model: Any,
    names: list[str],
    n: int,
    features: str = "classifier",
    ref_split: str = "test",
    device: str = "cpu",
    data_dir: str | None = None,
    resize: str = "tf1_bilinear",
    is_weights: str | None = None,
    **options: Any,
) -> Evaluator:
    """The evaluator of metrics ``names`` for a loaded model, against ``n`` reference images of its
    dataset (``options``: further Evaluator fields)."""
    dm = datamodule_for(model.cfg, data_dir)
    if hasattr(dm, "prepare"):
        dm.prepare()
    return Evaluator(
        names,
        model.info,
        dm,
        features=features,
        n_ref=max(n, 2),
        ref_split=ref_split,
        resize=resize,
        is_weights=is_weights,
        device=device,
        verbose=True,
        **options,
    )


# ----------------------------------------------------------------------------- fid A B
NUMERIC_NPY = "save the images as numbers: uint8 in [0, 255] or float in [0, 1], shape (N, C, H, W)"


def load_npy(path: Path) -> np.ndarray:
    """The numeric array of a .npy file; never unpickles (an object array could run code)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ConfigError(
                f"{path} holds Python objects (an array of dtype object, or a pickle), which are never "
                f"unpickled since that could run code: {NUMERIC_NPY}, e.g. np.asarray(images, dtype=np.float32)"
            ) from None
        raise ConfigError(f"{path} is not a readable .npy file ({first_line(e)}): {NUMERIC_NPY}") from None
    except (OSError, EOFError) as e:
        raise ConfigError(f"{path} is not a readable .npy file ({first_line(e)}): {NUMERIC_NPY}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "buif":
        what = f"dtype {arr.dtype}" if isinstance(arr, np.ndarray) else "an .npz archive"
        raise ConfigError(f"{path} holds {what}, not images: {NUMERIC_NPY}")
    return arr


def load_images(source: str, n: int | None, data_dir: str = "data", as_uint8: bool = True) -> tuple[Tensor, Any]:
    """uint8 images (N, C, H, W) from a .npy file, an image folder, or a split like 'fashion_mnist:test';
    also the DataModule for dataset sources (None otherwise). With ``as_uint8`` False a float .npy
    keeps its values (float32 in [0, 1]) instead of being rounded to 256 levels."""
    if ":" in source and not Path(source).exists():
        images, _, dm = load_split(source, n, data_dir)
        return images, dm
    path = Path(source)
    if path.suffix == ".npy":
        if not path.is_file():
            raise ConfigError(f"{path} does not exist")
        arr = load_npy(path)
        if arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise ConfigError(f"{path}: expected an array (N, C, H, W) with C = 1 or 3, got shape {arr.shape}")
        if len(arr) == 0:
            raise ConfigError(f"{path} holds no images (shape {arr.shape}); give at least one")
        x = torch.from_numpy(arr if arr.dtype == np.uint8 else arr.astype(np.float32))
        if x.dtype != torch.uint8:
            if not bool(torch.isfinite(x).all()):
                raise ConfigError(f"{path}: the images hold NaN or infinite values")
            if float(x.min()) < 0 or float(x.max()) > 1:
                raise ConfigError(f"{path}: float images must lie in [0, 1] (got [{x.min():.3g}, {x.max():.3g}])")
            x = x.float() if not as_uint8 else x.float().mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
        return (x[choose(len(x), n)] if n else x), None
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {path}")
        files = [files[i] for i in choose(len(files), n).tolist()] if n else files
        arrays = []
        for f in progress(files, desc=f"reading {path.name}", unit="img"):
            im = eight_bit(read_image(f))
            im = im.convert("L") if im.mode in ("L", "1") else im.convert("RGB")
            a = np.asarray(im)
            arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ConfigError(f"images under {path} differ in size or channels ({sorted(shapes)[:3]}...)")
        return torch.from_numpy(np.stack(arrays)), None
    raise ConfigError(f"'{source}' is not a .npy file, an image folder, or a dataset split such as fashion_mnist:test")


def load_split(
    source: str, n: int | None, data_dir: str | None = "data", cfg: Any = None
) -> tuple[Tensor, Tensor, Any]:
    """uint8 images (N, C, H, W), labels and the DataModule of a split 'NAME:train' or 'NAME:test' (a seeded
    subset of ``n``): at 28x28, or as the data section of ``cfg`` (e.g. a model's own) makes them."""
    name, split = source.split(":", 1)
    if split not in ("train", "test"):
        raise ConfigError(f"'{source}': a dataset split is NAME:train or NAME:test")
    if cfg is None:
        from gan_lightning.config import load_config

        cfg = load_config([f"data={name}", f"data.data_dir={data_dir}", "data.image_size=28"], exp="quickstart")
        data_dir = None
    dm = datamodule_for(cfg, data_dir)
    images, labels = dm.split(train=split == "train")
    if not n:
        return images, labels, dm
    idx = choose(len(images), n)
    return images[idx], labels[idx], dm


def fid_between(
    a: str,
    b: str,
    features: str = "inception",
    n: int | None = None,
    device: str = "cpu",
    resize: str = "tf1_bilinear",
    data_dir: str = "data",
    batch_size: int = 250,
    classifier_data: str | None = None,
) -> dict[str, Any]:
    """FID between two image sources, like pytorch-fid's command line (cached for dataset splits)."""
    sources = [load_images(s, n, data_dir) for s in (a, b)]
    for source, (images, _) in zip((a, b), sources):
        if len(images) < 2:  # before any feature net is built
            raise ConfigError(f"{source} holds {len(images)} image(s): FID needs at least 2 per source (a covariance)")
    dm = next((d for _, d in sources if d is not None), None)
    ex: torch.nn.Module
    if features == "classifier":
        if classifier_data:
            from gan_lightning.config import load_config

            dm = datamodule_for(load_config([f"data={classifier_data}", f"data.data_dir={data_dir}"], exp="quickstart"))
        if dm is None:
            raise ConfigError("classifier features need a dataset: give one source as NAME:split or --classifier-data")
        from gan_lightning.metrics.classifier import get_classifier

        ex = get_classifier(dm, device=device)
    else:
        from gan_lightning.metrics.features import InceptionFeatures

        ex = InceptionFeatures(resize)
    ex = ex.to(device)

    def extract(x01: Tensor) -> Tensor:
        return ex(x01.to(device))[0]

    stats = []
    for source, (images, source_dm) in zip((a, b), sources):
        if source_dm is not None:
            name, split = source.split(":", 1)
            full_images, full_labels = source_dm.split(train=split == "train")
            ref = cached_reference(name, split, full_images, full_labels, ex.key, extract, len(images), verbose=True)
            stats.append((ref.mu, ref.sigma, ref.n))
        else:
            s = StreamingStats()
            with progress(total=len(images), desc=f"features of {Path(source).name}", unit="img") as bar:
                for i in range(0, len(images), batch_size):
                    s.update(extract(images[i : i + batch_size].float() / 255).double().cpu())
                    bar.update(len(images[i : i + batch_size]))
            stats.append((s.mean, s.cov, s.n))
    value = frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1])
    return {"fid": value, "a": a, "b": b, "n_a": stats[0][2], "n_b": stats[1][2], "features": ex.key}
