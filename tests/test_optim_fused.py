"""Adam on the CPU is torch's fused kernel, and it steps as the reference loop does."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf
from torch import nn

from gan_lightning.optim import build_optimizer

ADAM = OmegaConf.create({"name": "adam", "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.0})


def test_adam_on_cpu_float32_is_fused_and_matches_the_reference_loop() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    ref = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    ref.load_state_dict(net.state_dict())
    ours = build_optimizer(net.parameters(), 1e-2, ADAM)
    theirs = torch.optim.Adam(ref.parameters(), lr=1e-2, betas=(0.5, 0.999), foreach=False)
    assert ours.defaults["fused"] is True
    x = torch.randn(32, 5)
    start = net[0].weight.detach().clone()
    for _ in range(20):
        for m, opt in ((net, ours), (ref, theirs)):
            opt.zero_grad()
            m(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(net[0].weight, start)  # both stepped: the agreement is not two untouched nets


def test_adam_keeps_the_callers_implementation_and_other_dtypes() -> None:
    p64 = [nn.Parameter(torch.zeros(3, dtype=torch.float64))]
    assert not build_optimizer(p64, 1e-2, ADAM).defaults.get("fused")
    p32 = [nn.Parameter(torch.zeros(3))]
    assert not build_optimizer(p32, 1e-2, ADAM, foreach=True).defaults.get("fused")
