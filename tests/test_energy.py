"""EBGAN and BEGAN: the autoencoder critic's losses against their definitions, BEGAN's k_t
control and M_global against the logged values, refusals, and exact resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model
from gan_lightning.models.energy import BEGAN, EBGAN, pulling_away
from gan_lightning.models.noise import NoiseSource
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import assert_bitwise_equal, run, weights

TOY = ["exp=gmm_ring", "model.z_dim=2"]


def energy_model(*args: str):
    cfg = load_config([*TINY, *TOY, *args])
    return build_model(cfg, build_datamodule(cfg).info)


def test_ebgan_d_loss_is_real_energy_plus_the_margin_hinge_on_fakes() -> None:
    model = energy_model("model=ebgan", "model.margin=0.8")
    assert isinstance(model, EBGAN)
    seen = {}
    model.backward_step = lambda opt, loss: seen.setdefault("loss", loss.detach())
    model.noise = NoiseSource(5)
    real = torch.randn(8, 2)
    model.critic_step(real, torch.zeros(8, dtype=torch.long), None)
    with torch.no_grad():
        fake = model.G(NoiseSource(5).normal(8, 2))
        e_real = (model.D.decoder(model.D.encode(real)) - real).pow(2).mean(1)
        e_fake = (model.D.decoder(model.D.encode(fake)) - fake).pow(2).mean(1)
    expected = e_real.mean() + F.relu(0.8 - e_fake).mean()
    assert torch.allclose(seen["loss"], expected, atol=1e-6)


def test_pulling_away_term_closed_forms() -> None:
    assert float(pulling_away(torch.eye(4))) == pytest.approx(0.0, abs=1e-12)  # orthogonal codes
    same = torch.tensor([[1.0, 2.0]]).repeat(3, 1) * torch.tensor([[1.0], [2.0], [0.5]])
    assert float(pulling_away(same)) == pytest.approx(1.0, abs=1e-6)  # one direction
    s = torch.randn(6, 3, dtype=torch.float64)
    total = sum(float(F.cosine_similarity(s[i], s[j], dim=0)) ** 2 for i in range(6) for j in range(6) if i != j)
    assert float(pulling_away(s)) == pytest.approx(total / 30, rel=1e-10)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get("began/k")]


def test_began_k_follows_its_proportional_control_and_m_global_its_formula(tmp_path: Path) -> None:
    gamma, lam = 0.7, 0.5  # a large gain, so k moves visibly in a few steps
    r = run(*TOY, "model=began", "steps=6", "log.every=1", f"model.gamma={gamma}", f"model.lambda_k={lam}", "out=b")
    rows = _rows(r.run_dir)
    assert [int(x["step"]) for x in rows] == list(range(1, 7))  # logged every step
    k = 0.0
    for row in rows:
        e_real, e_fake = float(row["began/real_energy"]), float(row["g/adv"])
        assert e_real == pytest.approx(float(row["d/real"]), rel=1e-6)  # e(x) of the D step, before its update
        k = min(1.0, max(0.0, k + lam * (gamma * e_real - e_fake)))
        assert float(row["began/k"]) == pytest.approx(k, abs=1e-5)
        assert float(row["began/m_global"]) == pytest.approx(e_real + abs(gamma * e_real - e_fake), rel=1e-5)
    state = torch.load(r.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert float(state["k"]) == pytest.approx(k, abs=1e-5)  # k_t is in the checkpoint


@pytest.mark.parametrize(
    "args",
    [
        [*TOY, "model=ebgan", "model.pull_away=0.1", "model.n_critic=2", "model.ema.decay=0.9"],
        [*TOY, "model=began", "model.lambda_k=0.1"],
        ["exp=quickstart", "model=began", "model.code_dim=8", "metrics.names=[]"],
    ],
    ids=["ebgan_pt_toy", "began_toy", "began_images"],
)
def test_energy_models_train_and_resume_bitwise(args: list[str], tmp_path: Path) -> None:
    full = run(*args, "steps=6", f"out={tmp_path / 'full'}")
    part = run(*args, "steps=3", f"out={tmp_path / 'part'}")
    resumed = run(*args, "steps=6", f"out={tmp_path / 'part'}", "resume=auto")
    assert full.status == part.status == resumed.status == "completed"
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["model=ebgan", "model.loss=hinge"], "model.loss"),
        (["model.loss=energy"], "model.loss"),  # a plain critic with the energy loss
        (["model=began", "model.clip=0.01"], "model.clip"),
        (["model=ebgan", "model.pack=2"], "model.pack"),
        (["model=began", "model.gamma=0"], "0 < gamma <= 1"),
        (["model=ebgan", "model.margin=-1"], "margin > 0"),
        (["model=ebgan", "nets.d_minibatch=stddev"], "nets.d_minibatch"),  # energy of one sample from others'
        (["model=began", "nets.d_norm=virtual_batch"], "nets.d_norm"),
    ],
)
def test_energy_combinations_that_do_not_hold_are_refused(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        energy_model(*args)


def test_began_is_the_registered_began() -> None:
    assert isinstance(energy_model("model=began"), BEGAN)


@pytest.mark.parametrize("model", ["ebgan", "began"])
def test_an_autoencoder_critic_refuses_a_decoder_that_draws_noise_inputs(model: str) -> None:
    """The autoencoder's decoder is the generator named like D: nets.d=style would make it the style generator,
    which draws per-layer noise that these models never feed (it crashed at the first D step)."""
    with pytest.raises(ConfigError, match=r"nets\.d.*noise inputs"):
        load_config([f"model={model}", "nets.d=style", "nets.g=dcgan", "data.image_size=32"], exp="dcgan")
