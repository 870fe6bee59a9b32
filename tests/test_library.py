"""The package as a library: its face, and the README's example run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

import gan_lightning

README = Path(__file__).resolve().parent.parent / "README.md"


def library_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- library-example -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its '<!-- library-example -->' python block"
    return match.group(1)


def test_every_exported_name_resolves_and_unknown_names_fail():
    for name in gan_lightning.__all__:
        assert getattr(gan_lightning, name) is not None, name
    assert issubclass(gan_lightning.WGANGP, gan_lightning.GANModule)
    assert gan_lightning.MODELS.get("cyclegan", "model.name") is gan_lightning.CycleGAN
    with pytest.raises(AttributeError, match="no attribute 'Banana'"):
        _ = gan_lightning.Banana


def test_every_registered_model_and_datamodule_is_exported_under_its_class_name() -> None:
    """A user reaches every ``model.name`` and ``data.name`` class from the top of the package."""
    from gan_lightning.data import DATAMODULES
    from gan_lightning.models import MODELS

    for registry in (MODELS, DATAMODULES):
        for name in registry.names():
            cls = registry.get(name, "name")
            assert getattr(gan_lightning, cls.__name__, None) is cls, f"{name}: {cls.__name__} is not exported"


def test_no_exported_name_hides_a_submodule() -> None:
    """``from gan_lightning import train`` must stay the module, whatever was imported before."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(gan_lightning.__path__)}
    assert submodules & set(gan_lightning.__all__) == set()
    from gan_lightning import train

    assert train.__name__ == "gan_lightning.train" and callable(train.train)


def test_readme_library_example_runs_and_metrics_reach_callback_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(library_example(), "README.md:library-example", "exec"), namespace)

    trainer, model, best = namespace["trainer"], namespace["model"], namespace["best"]
    assert model.g_step == 400  # the model stopped itself after cfg.steps G steps
    # the logged value is the metric of the final model: recompute it independently
    from gan_lightning.callbacks.metrics import GenerativeMetrics, compute_metrics

    callback = next(c for c in trainer.callbacks if isinstance(c, GenerativeMetrics))
    again = compute_metrics(callback.evaluator, model, callback.n, None, callback.raw_too, callback.seed)
    logged = float(trainer.callback_metrics["modes/covered"])
    assert logged == pytest.approx(again["modes/covered"])
    assert float(trainer.callback_metrics["raw/modes/covered"]) == pytest.approx(again["raw/modes/covered"])
    # ModelCheckpoint monitored it and kept a checkpoint that load_model rebuilds
    assert best.best_model_score is not None and float(best.best_model_score) == pytest.approx(logged)
    assert Path(best.best_model_path).is_file() and Path(best.best_model_path).parent.name == "library_example"
    points = namespace["points"]
    assert points.shape == (1000, 2) and bool(torch.isfinite(points).all())
    # the reloaded generator is the trained one: same samples from the same noise
    z = torch.randn(16, model.z_dim, generator=torch.Generator().manual_seed(3))
    reloaded = namespace["generator"]
    assert torch.equal(reloaded.generate_from(z), model.generate_from(z.to(model.device)).cpu())


def _fit(overrides: list[str], **trainer_kwargs: Any) -> Any:
    import lightning as L

    from gan_lightning import build_datamodule, build_model, load_config

    cfg = load_config(["exp=gmm_ring", "metrics.names=[]", *overrides])
    L.seed_everything(0, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule.info)
    kwargs = {"max_epochs": -1, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = L.Trainer(**{**kwargs, **trainer_kwargs})
    trainer.fit(model, datamodule=datamodule)
    return model, trainer


def test_epochs_of_a_user_trainer_continue_the_data_stream() -> None:
    """``limit_train_batches=K`` makes an epoch K G steps (so epoch-end callbacks act every K
    steps); the next epoch continues the stream where the last ended, so the weights equal those of
    one endless epoch."""
    endless, _ = _fit(["steps=30"])
    epochs, trainer = _fit(["steps=30"], limit_train_batches=10)
    assert epochs.g_step == endless.g_step == 30 and trainer.current_epoch >= 2
    for (name, a), b in zip(endless.state_dict().items(), epochs.state_dict().values()):
        assert torch.equal(a, b), name


def test_early_stopping_acts_on_a_logged_metric() -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    from gan_lightning import build_datamodule, load_config, metrics_callback

    overrides = ["steps=400", "metrics.names=[modes]", "metrics.every=10", "metrics.n=300"]
    cfg = load_config(["exp=gmm_ring", *overrides])
    metrics = metrics_callback(cfg, build_datamodule(cfg))
    # stop as soon as the monitored value reaches the threshold: at the first epoch end (step 10)
    stop = EarlyStopping(monitor="modes/covered", mode="max", stopping_threshold=-1.0, check_on_train_epoch_end=True)
    model, trainer = _fit(overrides, limit_train_batches=10, callbacks=[metrics, stop])
    assert model.g_step == 10 and stop.stopped_epoch == 0 and trainer.should_stop


def test_exported_models_registry_is_filled_in_a_fresh_interpreter() -> None:
    import subprocess
    import sys

    code = "from gan_lightning import MODELS; print(sorted(MODELS.names()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "cyclegan" in out and "wgan_gp" in out
