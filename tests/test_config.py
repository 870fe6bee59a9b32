"""Config loading: layering, shorthands, and errors that name the field and the fix."""

from __future__ import annotations

import pytest

from gan_lightning.config import known_experiments, load_config
from gan_lightning.registry import ConfigError


def error_of(*args: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(list(args))
    return str(info.value)


def test_layers_apply_in_order() -> None:
    cfg = load_config(["exp=wgan_gp", "steps=7", "optim.lr_d=3e-4"])
    assert cfg.exp == "wgan_gp" and cfg.steps == 7
    assert cfg.model.name == "wgan_gp" and cfg.model.n_critic == 5 and cfg.model.penalty.name == "gp"
    assert cfg.optim.lr_d == 3e-4 and cfg.optim.lr_g == 1e-4  # CLI beats the experiment file
    assert list(cfg.optim.betas) == [0.0, 0.9]


def test_each_layer_overrides_the_one_before(tmp_path, monkeypatch, capsys) -> None:
    """typed schema < base.yaml < the model's paper defaults < the experiment file < the command line."""
    (tmp_path / "base.yaml").write_text(
        "log: {every: 7}\nmodel: {z_dim: 16}\noptim: {lr_g: 1.0e-3, lr_d: 1.0e-3, weight_decay: 0.1}\n"
    )
    (tmp_path / "e.yaml").write_text("model: {name: wgan, n_critic: 3}\noptim: {lr_d: 2.0e-5}\n")
    monkeypatch.setenv("GAN_LIGHTNING_EXPERIMENTS", str(tmp_path))
    cfg = load_config(["exp=e"])
    assert cfg.log.every == 7 and cfg.model.z_dim == 16 and cfg.optim.weight_decay == 0.1  # base.yaml > schema
    assert cfg.optim.lr_g == 5e-5 and cfg.optim.name == "rmsprop" and cfg.model.clip == 0.01  # paper > base.yaml
    assert cfg.model.n_critic == 3 and cfg.optim.lr_d == 2e-5  # experiment file > paper
    assert load_config(["exp=e", "optim.lr_d=3e-5", "model.n_critic=2"]).optim.lr_d == 3e-5  # command line > file
    # model=OTHER: the file's model keys belong to wgan and are dropped (and printed); OTHER's defaults apply
    swapped = load_config(["exp=e", "model=wgan_gp"])
    assert swapped.model.name == "wgan_gp" and swapped.model.n_critic == 5 and swapped.model.penalty.name == "gp"
    assert swapped.optim.lr_d == 2e-5 and swapped.optim.lr_g == 1e-4  # the file's other sections stay
    assert "model.n_critic=3" in capsys.readouterr().err


def test_config_command_names_each_keys_layer(tmp_path, monkeypatch, capsys) -> None:
    """`gan-lightning config`: the resolved config as YAML, each key's origin as a comment; the
    comments name the highest layer that set the key (same layers as the test above)."""
    import yaml

    from gan_lightning.cli import main
    from gan_lightning.config import to_container

    (tmp_path / "base.yaml").write_text("log: {every: 7}\nmodel: {z_dim: 16}\noptim: {lr_g: 1.0e-3, lr_d: 1.0e-3}\n")
    (tmp_path / "e.yaml").write_text("model: {name: wgan, n_critic: 3}\noptim: {lr_d: 2.0e-5}\n")
    monkeypatch.setenv("GAN_LIGHTNING_EXPERIMENTS", str(tmp_path))
    assert main(["config", "exp=e", "seed=4"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == to_container(load_config(["exp=e", "seed=4"]))  # the same config, valid YAML
    origin = {}
    path: list[str] = []
    for line in out.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":")[0]
        path = [*path[:depth], key]
        if "  # " in line:
            origin[".".join(path)] = line.split("  # ", 1)[1]
    assert origin["seed"] == "the command line"
    assert origin["optim.lr_d"] == "experiments/e.yaml" and origin["model.n_critic"] == "experiments/e.yaml"
    assert origin["optim.lr_g"].startswith("the paper defaults of model 'wgan'")  # paper beats base.yaml
    assert origin["model.clip"].startswith("the paper defaults of model 'wgan'")
    assert origin["log.every"] == "experiments/base.yaml" and origin["model.z_dim"] == "experiments/base.yaml"
    assert origin["optim.weight_decay"] == "schema"
    assert set(origin) == set(_flat(to_container(load_config(["exp=e"]))))  # every key has its layer


def _flat(node: dict, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for k, v in node.items():
        full = f"{prefix}.{k}" if prefix else k
        keys += _flat(v, full) if isinstance(v, dict) and v else [full]
    return keys


def test_readme_example_of_orthogonal_axes_trains_wgan_gp() -> None:
    """`exp=gmm_ring model=wgan_gp`: WGAN-GP's gradient penalty, not gmm_ring's R1."""
    cfg = load_config(["exp=gmm_ring", "model=wgan_gp"])
    assert cfg.model.penalty.name == "gp" and cfg.model.penalty.weight == 10 and cfg.model.loss == "wasserstein"
    assert cfg.data.name == "toy" and cfg.nets.g == "mlp"  # the experiment's data and nets stay


def test_variant_defaults_follow_the_papers() -> None:
    wgan = load_config(["exp=wgan"])
    assert wgan.model.clip == 0.01 and wgan.model.n_critic == 5
    assert wgan.optim.name == "rmsprop" and wgan.optim.lr_d == 5e-5
    # switching the model by name brings that variant's optimizer defaults along
    cfg = load_config(["exp=gmm_ring", "model=sngan", "optim.betas=[0.5,0.999]"])
    assert cfg.model.loss == "hinge" and cfg.model.sn_d


def test_data_shorthand_switches_dataset() -> None:
    cfg = load_config(["exp=wgan_gp", "data=fashion_mnist"])
    assert cfg.data.name == "fashion_mnist" and cfg.data.image_size == 32


def test_typo_names_the_key_and_close_matches() -> None:
    msg = error_of("exp=wgan_gp", "model.n_critc=3")
    assert "model.n_critc" in msg and "model.n_critic" in msg


def test_top_level_typo() -> None:
    msg = error_of("exp=gmm_ring", "stesp=10")
    assert "'stesp'" in msg and "steps" in msg


def test_typo_in_experiment_file_names_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: gan}\ndata: {name: toy, mixtrue: ring}\n")
    msg = error_of(f"exp={bad}")
    assert "data.mixtrue" in msg and "data.mixture" in msg and str(bad) in msg


def test_unknown_experiment_lists_known_ones() -> None:
    msg = error_of("exp=wgan_pg")
    assert "wgan_pg" in msg and "wgan_gp" in msg
    for name in known_experiments():
        assert name in msg


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("optim.lr_g=-1e-4", "optim.lr_g"),
        ("model.n_critic=0", "model.n_critic"),
        ("model.loss=hinje", "model.loss"),
        ("model.penalty.name=gpp", "model.penalty.name"),
        ("nets.g=resnot", "nets.g"),
        ("optim.name=adamw2", "optim.name"),
        ("steps=0", "steps"),
        ("data.batch_size=0", "data.batch_size"),
        ("model.n_critic=five", "model.n_critic"),
        ("optim.betas=[0.5,1.5]", "optim.betas"),
    ],
)
def test_bad_values_name_the_field(override: str, field: str) -> None:
    assert field in error_of("exp=wgan_gp", override)


def test_unknown_names_suggest_close_ones() -> None:
    assert "hinge" in error_of("exp=wgan_gp", "model.loss=hinje")


def test_unknown_model_and_dataset() -> None:
    assert "wgan_gp" in error_of("exp=dcgan", "model=wgan-gp")
    assert "fashion_mnist" in error_of("exp=dcgan", "data=fashion")


def test_batchnorm_in_a_gradient_penalty_critic_is_refused() -> None:
    msg = error_of("exp=wgan_gp", "nets.d_norm=batch")
    assert "nets.d_norm" in msg and "BatchNorm" in msg


def test_smoothing_needs_a_loss_with_labels() -> None:
    assert "model.label_smoothing" in error_of("exp=wgan_gp", "model.label_smoothing=0.1")
    assert load_config(["exp=dcgan", "model.label_smoothing=0.1"]).model.label_smoothing == 0.1


def test_trainer_keys_are_checked_against_lightning() -> None:
    assert load_config(["exp=gmm_ring", "trainer.gradient_clip_val=1.0"]).trainer.gradient_clip_val == 1.0
    msg = error_of("exp=gmm_ring", "trainer.acelerator=cpu")
    assert "trainer.acelerator" in msg and "accelerator" in msg
    assert "steps=N" in error_of("exp=gmm_ring", "trainer.max_steps=10")


def test_penalty_with_fp16_is_refused() -> None:
    assert "bf16-mixed" in error_of("exp=wgan_gp", "trainer.precision=16-mixed")


def test_not_key_value() -> None:
    assert "key=value" in error_of("exp=gmm_ring", "steps")


@pytest.mark.parametrize("exp", known_experiments())
def test_every_experiment_loads(exp: str) -> None:
    if exp == "cyclegan_folder":  # the user's own folders: nothing to train on until data.root is given
        assert "data.root=DIR" in error_of(f"exp={exp}")
        cfg = load_config([f"exp={exp}", "data.root=/somewhere"])
    else:
        cfg = load_config([f"exp={exp}"])
    assert cfg.exp == exp and cfg.steps >= 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["exp=dcgan", "model.ema.decay=1.5"], r"model\.ema\.decay.*\[0, 1\)"),
        (["exp=dcgan", "model.ema.decay=-0.1"], r"model\.ema\.decay.*\[0, 1\)"),
        (["exp=dcgan", "model.ema.start=-1"], r"model\.ema\.start.*>= 0"),
        (["exp=infogan_mnist", "model.categories=0"], r"model\.categories.*>= 1"),
        (["exp=infogan_mnist", "model.continuous=-1"], r"model\.continuous.*>= 0"),
        (["exp=infogan_mnist", "model.info_weight=-1"], r"model\.info_weight.*>= 0"),
    ],
)
def test_model_values_are_checked_when_the_config_is_loaded(args: list[str], match: str) -> None:
    """These were accepted by `config` and failed later: the EMA's decay when the model was built, InfoGAN's codes
    inside the first training step."""
    with pytest.raises(ConfigError, match=match):
        load_config(args)


def test_metrics_n_below_the_process_count_is_refused() -> None:
    """Under DDP each process evaluates its share of metrics.n; a process with none skipped the gathers the
    others made, and the run hung until the DDP timeout."""
    base = ["exp=gmm_ring", "trainer.accelerator=cpu", "trainer.strategy=ddp", "metrics.names=[modes]"]
    with pytest.raises(ConfigError, match=r"metrics\.n.*3 .*4 processes"):
        load_config([*base, "trainer.devices=4", "metrics.n=3"])
    with pytest.raises(ConfigError, match=r"metrics\.n.*3 .*4 processes"):
        load_config([*base, "trainer.devices=2", "trainer.num_nodes=2", "metrics.n=3"])
    load_config([*base, "trainer.devices=4", "metrics.n=4"])
    load_config([*base, "trainer.devices=4", "metrics.n=3", "metrics.names=[]"])  # no metrics, nothing to share
