"""Evaluators: generated samples -> per-sample quantities (features, probabilities, points) ->
metric values. The two stages are split so that under DDP every rank extracts its own shard
and the gathered quantities are reduced identically on every rank.

A metric is one function ``fn(ctx, data) -> {key: value}`` and one ``METRICS`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from gan_lightning.metrics.frechet import feature_stats, frechet_distance, kid
from gan_lightning.metrics.modes import class_statistics, inception_score, mode_statistics, stacked_mode_statistics
from gan_lightning.metrics.precision_recall import prdc
from gan_lightning.metrics.reference import Reference
from gan_lightning.progress import progress
from gan_lightning.registry import MODELS, ConfigError, Registry


@dataclass(frozen=True)
class MetricSpec:
    fn: Callable[[Any, dict[str, Tensor]], dict[str, float]]
    directions: dict[str, bool | None]  # key -> higher is better (None: no direction, e.g. a std)
    primary: str
    needs: tuple[str, ...]  # what it reads: feats, probs, is_probs, points, pixels, requested (asked-for labels)
    kinds: tuple[str, ...] = ("image",)
    min_n: int = 2  # the fewest samples it is defined for (a covariance needs 2)
    why_min_n: str = "a covariance"


METRICS: Registry[MetricSpec] = Registry("metric")


def check_sample_size(names: list[str], n: int, key: str, names_key: str) -> None:
    """Refuse ``n`` samples (the value of ``key``) where a metric of ``names`` (the value of ``names_key``) needs
    more."""
    for name in names:
        spec = METRICS.get(name, names_key)
        if n < spec.min_n:
            raise ConfigError(
                f"bad value for '{key}': metric {name} needs at least {spec.min_n} samples ({spec.why_min_n}), got {n}"
            )


def metric(
    name: str,
    directions: dict[str, bool | None],
    primary: str,
    needs: str | tuple[str, ...],
    kinds: tuple[str, ...] = ("image",),
    min_n: tuple[int, str] = (2, "a covariance"),
) -> Callable:
    """Register ``fn(ctx, data) -> {key: value}`` as metric ``name``; ``min_n``: (the fewest samples, why)."""

    def add(fn: Callable[[Any, dict[str, Tensor]], dict[str, float]]) -> Callable:
        needed = (needs,) if isinstance(needs, str) else tuple(needs)
        spec = MetricSpec(fn, directions, primary, needed, kinds, *min_n)
        METRICS.register(name)(spec)
        return fn

    return add


@metric("fid", {"fid": False}, "fid", "feats")
def _fid(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    mu, sigma = feature_stats(data["feats"])
    return {"fid": frechet_distance(mu, sigma, ctx.reference.mu, ctx.reference.sigma)}


@metric("kid", {"kid": False, "kid_std": None}, "kid", "feats")
def _kid(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    mean, std = kid(data["feats"], ctx.reference.feats, ctx.kid_subsets, ctx.kid_subset_size)
    return {"kid": mean, "kid_std": std}


@metric(
    "prdc",
    {"precision": True, "recall": True, "density": True, "coverage": True},
    "precision",
    "feats",
    min_n=(6, "the k = 5 nearest neighbours of density and coverage, itself excluded"),
)
def _prdc(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    real = ctx.reference.feats
    n = min(len(real), len(data["feats"]), ctx.prdc_n)
    return prdc(real[subset(len(real), n)], data["feats"][:n])  # not a prefix of a class-sorted reference


@metric("is", {"is": True, "is_std": None}, "is", "is_probs")
def _is(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    mean, std = inception_score(data["is_probs"], splits=10)
    return {"is": mean, "is_std": std}


@metric("classes", {"covered": True, "kl": False}, "covered", "probs")
def _classes(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    return class_statistics(data["probs"], ctx.reference_class_hist)


@metric(
    "cond",
    {"accuracy": True, "min_class_accuracy": True, "covered": True, "intra_fid": False},
    "accuracy",
    ("feats", "probs", "requested"),
)
def _cond(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Class-conditional generation: the domain classifier's accuracy on the class each sample
    was asked for (overall and the worst class), classes covered, and the mean over classes of
    the FID between class-c samples and class-c reference images (intra-class FID)."""
    if "requested" not in data:
        raise ConfigError("metric 'cond' needs a class-conditional model (cgan, acgan)")
    requested, predicted = data["requested"].long(), data["probs"].argmax(1)
    ref, ref_labels = ctx.reference, ctx.reference.labels
    per_class, fids = [], []
    for c in requested.unique().tolist():
        mask = requested == c
        per_class.append(float((predicted[mask] == c).double().mean()))
        ref_c = ref.feats[ref_labels == c] if ref_labels is not None else ref.feats[:0]
        if mask.sum() >= 2 and len(ref_c) >= 2:
            mu1, s1 = feature_stats(data["feats"][mask])
            mu2, s2 = feature_stats(ref_c)
            fids.append(frechet_distance(mu1, s1, mu2, s2))
    covered = class_statistics(data["probs"], ctx.reference_class_hist)["covered"]
    return {
        "accuracy": float((predicted == requested).double().mean()),
        "min_class_accuracy": min(per_class),
        "covered": covered,
        "intra_fid": sum(fids) / len(fids) if fids else float("nan"),
    }


@metric("translation", {}, "", (), kinds=("pair",))
def _translation(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Image-to-image models: computed by metrics.translation (L1, FID, label agreement)."""
    raise ConfigError("the 'translation' metric is computed by the TranslationMetrics callback")


@metric("modes", {"covered": True, "high_quality": True, "kl": False}, "covered", "points", kinds=("toy",))
def _modes(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    return mode_statistics(data["points"], torch.tensor(ctx.info.modes), ctx.info.mode_std)


@metric("stacked", {"modes": True, "kl": False}, "modes", "channel_probs")
def _stacked(ctx: Any, data: dict[str, Tensor]) -> dict[str, float]:
    """Stacked data: modes among the samples and KL to the mode distribution of the training data."""
    base = ctx.datamodule.channel_datamodule
    base.prepare()  # the training split, loaded once and kept (not read from the files each evaluation)
    labels = base._train[1].cpu()
    return stacked_mode_statistics(data["channel_probs"], torch.bincount(labels, minlength=10))


def require_encoder(model: Any, metric_name: str) -> None:
    """ConfigError unless the model has an encoder (``has_encoder``), naming the models that do."""
    if not getattr(model, "has_encoder", False):
        with_one = ", ".join(n for n in MODELS if getattr(MODELS[n], "has_encoder", False))
        raise ConfigError(
            f"metric '{metric_name}' reads the codes of an encoder E(x); model '{model.cfg.model.name}' has none "
            f"(models with one: {with_one})"
        )


def subset(total: int, n: int | None, seed: int = 0) -> Tensor:
    """Indices of a seeded random n of ``total`` rows, in their order (all when n is None or >= total):
    a subset of a reference stored in dataset order (class-sorted folders) is not a class-biased prefix."""
    if n is None or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def full_key(name: str, key: str) -> str:
    """Logged name: 'fid', 'kid', 'is' stand alone; others are 'metric/key'."""
    return key if key == name or key.startswith(name + "_") else f"{name}/{key}"


@dataclass
class Evaluator:
    """Metrics ``names`` of generated samples (model space) against a dataset."""

    names: list[str]
    info: Any
    datamodule: Any = None
    features: str = "classifier"  # feature space of fid/kid/prdc: classifier | inception
    n_ref: int = 10000
    ref_split: str = "train"
    resize: str = "tf1_bilinear"
    is_weights: str | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    prdc_n: int = 10000
    device: str | torch.device = "cpu"
    batch_size: int = 250
    use_cache: bool = True
    verbose: bool = False
    ndb_bins: int = 50
    recon_n: int = 100
    recon_steps: int = 200
    ppl_space: str = "w"  # 'ppl': w (generators with a mapping net; the others fall back to z) | z
    ppl_n: int = 2000  # 'ppl': pairs of latents
    artifacts_prefix: str | None = None  # path prefix of pictures some measures draw (birthday); None: none
    cas_test: tuple[Tensor, Tensor] | None = None  # CAS's real test set (default: the test split at 28x28)
    _extractors: dict[str, Any] = field(default_factory=dict)
    _reference: Reference | None = None
    _cache: dict[str, Any] = field(default_factory=dict)  # per-evaluator reference quantities
    notes: dict[str, Any] = field(default_factory=dict)  # what measures report about how they measured
    generator: Any = None  # during ``compute``: (model, net) of the generator being measured
    prefix: str = ""  # during ``compute``: that generator's key prefix

    def __post_init__(self) -> None:
        self.specs = {n: METRICS.get(n, "metrics.names") for n in self.names}
        for name, spec in self.specs.items():
            if self.info.kind not in spec.kinds:
                fitting = ", ".join(n for n in METRICS if self.info.kind in METRICS[n].kinds)
                raise ConfigError(
                    f"metric '{name}' needs {' or '.join(spec.kinds)} data, but '{self.info.name}' is "
                    f"{self.info.kind}; its data's metrics: {fitting}"
                )
        if self.features not in ("classifier", "inception"):
            raise ConfigError(f"bad value for 'metrics.features': classifier or inception, got '{self.features}'")
        if self.ppl_space not in ("w", "z"):
            raise ConfigError(f"bad value for 'metrics.ppl_space': w or z, got '{self.ppl_space}'")
        if self.ppl_n < 1:
            raise ConfigError(f"bad value for 'metrics.ppl_n': must be >= 1 pairs, got {self.ppl_n}")

    # ------------------------------------------------------------------ what is needed
    @property
    def needs(self) -> set[str]:
        """Per-sample quantities extracted from images ('requested' comes from the sampler,
        'generator' is the net itself, 'encoder' the model's E)."""
        needs = {n for s in self.specs.values() for n in s.needs} - {"requested", "generator", "encoder"}
        if self.artifacts_prefix and "birthday" in self.specs:
            needs.add("pixels")  # the picture of the closest pairs
        return needs

    @property
    def directions(self) -> dict[str, bool | None]:
        return {full_key(n, k): d for n, s in self.specs.items() for k, d in s.directions.items()}

    def default_primary(self) -> str | None:
        if "fid" in self.specs:
            return "fid"
        first = next(iter(self.specs.items()), None)
        return full_key(first[0], first[1].primary) if first else None

    def extractor(self, role: str) -> Any:
        """role: feats (the feature space), probs (the domain classifier), is_probs."""
        if role not in self._extractors:
            from gan_lightning.metrics.classifier import get_classifier
            from gan_lightning.metrics.features import InceptionFeatures, InceptionLogits

            ex: nn.Module
            if role == "channel_probs":
                from gan_lightning.metrics.classifier import PerChannelClassifier

                source = getattr(self.datamodule, "channel_datamodule", None)
                if source is None:
                    raise ConfigError(
                        f"metric 'stacked' reads stacked images; '{self.info.name}' is not stacked data "
                        "(use data=stacked_fashion or stacked_mnist)"
                    )
                ex = PerChannelClassifier(get_classifier(source, verbose=self.verbose))
            elif role == "feats" and self.features == "inception":
                ex = InceptionFeatures(self.resize)
            elif role == "is_probs" and self.is_weights:
                ex = InceptionLogits(self.is_weights)
            else:
                ex = self._extractors.get("classifier") or get_classifier(self.datamodule, verbose=self.verbose)
                self._extractors["classifier"] = ex
            self._extractors[role] = ex.to(self.device)
        return self._extractors[role]

    def prepare(self) -> Evaluator:
        """Load the extractors and the reference statistics now: a missing network fails early,
        and the domain classifier is trained (once) before any GPU or DDP work starts."""
        if self.info.kind != "toy":
            for role in sorted(self.needs - {"pixels"}):
                self.extractor(role)
            if "feats" in self.needs:
                _ = self.reference
        return self

    def check_model(self, model: Any) -> None:
        """Refuse, before training, metrics the model cannot give their inputs: labelled samples
        (``requested``) need a class-conditional model; inverting the generator needs G(z) or
        G(z, class); reading codes needs an encoder (``has_encoder``)."""
        conditional = bool(getattr(model, "class_conditional", False))
        for name, spec in self.specs.items():
            if "encoder" in spec.needs:
                require_encoder(model, name)
            if "requested" in spec.needs and not conditional:
                raise ConfigError(f"metric '{name}' needs a class-conditional model (cgan, acgan)")
            if "generator" in spec.needs and model.labels_for(1) is not None and not conditional:
                raise ConfigError(f"metric '{name}' inverts G(z) or G(z, class); this generator takes other codes")

    def to(self, device: str | torch.device) -> Evaluator:
        self.device = device
        for key, ex in self._extractors.items():
            self._extractors[key] = ex.to(device)
        return self

    # ------------------------------------------------------------------ stage 1: per sample
    def extract_generated(self, samples: Tensor, model: Any, labels: Tensor | None) -> dict[str, Tensor]:
        """``extract`` of a model's samples, with the labels a class-conditional model was asked for
        (``requested``: what `cond` and `cas` score against)."""
        data = self.extract(samples)
        if labels is not None and getattr(model, "class_conditional", False):
            data["requested"] = labels.cpu()
        return data

    @torch.no_grad()
    def extract(self, samples: Tensor) -> dict[str, Tensor]:
        """Model-space samples (this rank's shard) -> the per-sample quantities the metrics need."""
        if self.info.kind == "toy":
            return {"points": samples.detach().float().cpu()}
        images01 = samples.detach().float().add(1).div(2).clamp(0, 1)
        out: dict[str, list[Tensor]] = {}
        roles = sorted(self.needs - {"pixels"})
        if "pixels" in self.needs:  # the [0, 1] images themselves, for pixel-space measures
            out["pixels"] = [images01.cpu()]
        with progress(total=len(images01), desc="features of samples", unit="img", verbose=self.verbose) as bar:
            for i in range(0, len(images01), self.batch_size):
                batch = images01[i : i + self.batch_size].to(self.device)
                results: dict[int, tuple[Tensor, Tensor | None]] = {}  # one pass per distinct extractor
                for role in roles:
                    ex = self.extractor(role)
                    if id(ex) not in results:
                        results[id(ex)] = ex(batch)
                    feats, probs = results[id(ex)]
                    value = feats if role == "feats" else probs
                    assert value is not None  # probabilities come from the classifier or InceptionLogits
                    out.setdefault(role, []).append(value.float().cpu())
                bar.update(len(batch))
        return {k: torch.cat(v) for k, v in out.items()}

    # ------------------------------------------------------------------ stage 2: reduce
    @property
    def reference(self) -> Reference:
        if self._reference is None:
            from gan_lightning.metrics.reference import cached_reference

            images, labels = self.datamodule.split(train=self.ref_split == "train")
            ex = self.extractor("feats")
            self._reference = cached_reference(
                self.info.name,
                self.ref_split,
                images,
                labels,
                ex.key,
                lambda x: ex(x.to(self.device))[0],
                self.n_ref,
                self.use_cache,
                self.verbose,
            )
        return self._reference

    def reference_images(self) -> Tensor:
        """The uint8 training images behind ``reference.feats``, in the same order."""
        from gan_lightning.metrics.reference import choose, kept_rows

        images, _ = self.datamodule.split(train=self.ref_split == "train")
        idx = choose(len(images), self.n_ref)
        return images[idx[kept_rows(len(idx))]]

    @property
    def reference_class_hist(self) -> Tensor:
        """Counts of each class in the whole reference split (every class, absent ones 0): one source
        whatever other metrics are asked for, not the n-image subset behind the feature statistics."""
        if "class_hist" not in self._cache:
            _, labels = self.datamodule.split(train=self.ref_split == "train")
            labels = labels.long().cpu()
            self._cache["class_hist"] = torch.bincount(
                labels[labels >= 0], minlength=int(self.info.num_classes)
            ).double()
        return cast(Tensor, self._cache["class_hist"])

    def reference_pixels(self, n: int | None = None) -> Tensor:
        """[0, 1] float images of the reference split (the first ``n`` of ``reference_images``)."""
        from gan_lightning.metrics.reference import choose

        key = "reference_pixels"
        if key not in self._cache:
            images, labels = self.datamodule.split(train=self.ref_split == "train")
            idx = choose(len(images), self.n_ref)  # the images behind reference.feats' rows
            self._cache[key] = images[idx]
            self._cache["reference_labels"] = labels[idx]
        return self._cache[key][subset(len(self._cache[key]), n)].float() / 255.0

    def reference_labels(self, n: int | None = None) -> Tensor:
        """The labels of ``reference_pixels(n)`` (-1 where the data has none)."""
        self.reference_pixels(0)
        labels = self._cache["reference_labels"]
        return labels[subset(len(labels), n)]

    def reference_marginal(self, role: str = "is_probs") -> Tensor:
        """p*(y): the mean class probabilities of an extractor (the domain classifier, or the
        Inception logits' softmax) over the reference images, computed once per evaluator."""
        key = f"marginal:{role}"
        if key not in self._cache:
            ex, total, count = self.extractor(role), None, 0
            images = self.reference_pixels()
            with torch.no_grad():
                for i in range(0, len(images), self.batch_size):
                    probs = ex(images[i : i + self.batch_size].to(self.device))[1].double().cpu()
                    total = probs.sum(0) if total is None else total + probs.sum(0)
                    count += len(probs)
            assert total is not None
            self._cache[key] = total / count
        return self._cache[key]

    def compute(self, data: dict[str, Tensor], generator: Any = None, prefix: str = "") -> dict[str, float]:
        """Every metric's values from the gathered per-sample quantities; ``generator`` is
        (model, net) for measures that use the generator itself (reconstruction error), ``prefix``
        the key prefix of the generator ('' or 'raw/'), for the names of pictures."""
        values: dict[str, float] = {}
        if any(v.is_floating_point() and not bool(v.isfinite().all()) for v in data.values()):
            # a generator that has just diverged: NaN for every value (the run ends 'diverged')
            return {full_key(n, k): float("nan") for n, spec in self.specs.items() for k in spec.directions}
        self.generator, self.prefix = generator, prefix
        try:
            for name, spec in self.specs.items():
                for key, value in spec.fn(self, data).items():
                    values[full_key(name, key)] = float(value)
        finally:
            self.generator = None
        return values

    def describe(self) -> dict[str, Any]:
        """What the numbers mean: for summary.json."""
        if self.info.kind == "toy":
            return {"metrics": self.names, "protocol": "VEEGAN/PacGAN: 3 std of the nearest mode"}
        d: dict[str, Any] = {"metrics": self.names, "features": self.features}
        if self.needs & {"feats"}:
            d["reference"] = self.reference.key
        needs = self.needs
        if (
            "probs" in needs
            or ("is_probs" in needs and not self.is_weights)
            or ("feats" in needs and self.features == "classifier")
        ):
            meta = self.extractor("probs").meta
            d["classifier"] = {k: meta[k] for k in ("dataset", "fingerprint", "test_accuracy")}
        if "channel_probs" in needs:
            meta = self.extractor("channel_probs").meta
            d["channel_classifier"] = {k: meta[k] for k in ("dataset", "fingerprint", "test_accuracy")}
        return {**d, **self.notes}
