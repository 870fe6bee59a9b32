"""The maxout MLP critic of the PacGAN/VEEGAN 2-D protocol (Goodfellow et al. 2013 maxout units)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from gan_lightning.config import load_config
from gan_lightning.nets import build_discriminator
from gan_lightning.registry import ConfigError
from gan_lightning.schema import NetsConfig


def test_maxout_unit_is_the_max_over_its_pieces_of_affine_maps() -> None:
    from gan_lightning.nets.mlp import Maxout

    torch.manual_seed(0)
    unit = Maxout(3, 4, pieces=5).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    w, b = unit.linear.weight.view(4, 5, 3), unit.linear.bias.view(4, 5)
    reference = torch.stack([(x @ w[j].T + b[j]).max(1).values for j in range(4)], 1)  # unit j: max_k w_jk.x + b_jk
    torch.testing.assert_close(unit(x), reference, rtol=1e-12, atol=1e-12)


def test_mlp_critic_takes_its_own_width_depth_and_maxout_pieces() -> None:
    nets = OmegaConf.structured(
        NetsConfig(d="mlp", mlp_hidden=400, mlp_layers=4, mlp_d_hidden=200, mlp_d_layers=3, mlp_maxout=5)
    )
    d = build_discriminator(nets, (8,), "none")
    linears = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(1000, 8), (1000, 200), (1000, 200), (1, 200)]
    assert d(torch.randn(7, 8)).shape == (7,) and d.feature_dim == 200


def test_the_lab_protocol_uses_the_papers_critic_and_adam() -> None:
    """PacGAN's 2-D code: D of 3 maxout layers x 200 units x 5 pieces, N(0, 0.02) init, Adam with beta1 0.8
    (G at the code's 1e-4; D at 1e-3, our choice: see the experiment file)."""
    for mixture in ("grid", "ring"):
        cfg = load_config([f"exp=gmm_{mixture}_pacgan_protocol"])
        n = cfg.nets
        assert (n.mlp_d_layers, n.mlp_d_hidden, n.mlp_maxout, n.init) == (3, 200, 5, "dcgan")
        assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.betas[0]) == (1e-4, 1e-3, 0.8)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("nets.mlp_maxout=-1", "nets.mlp_maxout"),
        ("nets.mlp_maxout=1", "nets.mlp_maxout"),
        ("nets.mlp_d_layers=-2", "nets.mlp_d_layers"),
    ],
)
def test_bad_maxout_settings_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(["exp=gmm_grid", override])


def test_maxout_on_a_conv_critic_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"nets\.mlp_maxout"):
        load_config(["exp=dcgan", "nets.mlp_maxout=5"])
