"""The mode-collapse remedies on the shared loop: PacGAN packing, unrolled D updates, feature
matching, minibatch discrimination / standard deviation and virtual batch norm. Each mechanism
is checked against a closed form or a float64 reference, and each trains and resumes bitwise."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model
from gan_lightning.models.gan import GAN, unrolled_state, unrolled_update
from gan_lightning.models.noise import NoiseSource
from gan_lightning.nets import build_generator
from gan_lightning.nets.layers import Critic
from gan_lightning.nets.minibatch import MinibatchDiscrimination, MinibatchStddev
from gan_lightning.nets.vbn import VirtualBatchNorm
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import assert_bitwise_equal, run, weights


def toy_model(*args: str) -> GAN:
    cfg = load_config([*TINY, "exp=gmm_ring", "model.penalty.name=none", *args])
    model = build_model(cfg, build_datamodule(cfg).info)
    assert isinstance(model, GAN)
    return model


class LinearCritic(Critic):
    """D(x) = w . flatten(x) + b, for hand-computed gradients."""

    def __init__(self, w: list[float], b: float = 0.0):
        super().__init__()
        self.feature_dim = len(w)
        self.head = nn.Linear(len(w), 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([w]))
            self.head.bias.fill_(b)

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)


# ---------------------------------------------------------------------- PacGAN
def test_pack_concatenates_consecutive_samples_and_unpack_inverts_it() -> None:
    model = toy_model("model.pack=3")
    x = torch.arange(12.0).view(6, 2)
    packed = model.pack(x)
    assert packed.shape == (2, 6)
    assert torch.equal(packed[1], torch.cat([x[3], x[4], x[5]]))
    assert torch.equal(model.unpack(packed), x)
    images = torch.randn(6, 1, 4, 4)
    packed_images = model.pack(images)
    assert packed_images.shape == (2, 3, 4, 4) and torch.equal(packed_images[1, 2], images[5, 0])
    assert model.D(model.pack(x)).shape == (2,)  # D's input is a pack: 6 coordinates


def test_packed_d_steps_take_pack_batches_each_and_n_critic_holds() -> None:
    seen: dict[str, list] = {"batch": [], "d": [], "g": []}

    class Spy(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            critic_step, generator_step = pl_module.critic_step, pl_module.generator_step

            def d(real, y, opt):
                seen["d"].append(real.clone())
                return critic_step(real, y, opt)

            def g(real, opt):
                seen["g"].append(real.shape[0])
                return generator_step(real, opt)

            pl_module.critic_step, pl_module.generator_step = d, g

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen["batch"].append(batch.x.shape)

    args = ["exp=gmm_ring", "steps=2", "model.pack=3", "model.n_critic=2", "data.batch_size=5", "out=r"]
    run(*args, extra_callbacks=[Spy()])
    assert seen["batch"] == [torch.Size([6, 5, 2])] * 2  # n_critic * pack batches per G step
    assert [r.shape[0] for r in seen["d"]] == [15] * 4  # 2 D steps per G step, 3 batches of 5 each
    assert seen["g"] == [15, 15]  # G makes as many samples as a D step judges
    flat = torch.cat(seen["d"])
    assert len(torch.unique(flat, dim=0)) == len(flat)  # no real sample is judged twice


def test_gradient_penalty_is_taken_per_pack() -> None:
    """With a linear critic on packs of 2, the input gradient of a pack is w (4 numbers): the
    penalty is (||w|| - 1)^2, not the per-sample (||w_1:2|| - 1)^2, (||w_3:4|| - 1)^2."""
    model = toy_model("model=wgan_gp", "nets.g=mlp", "nets.d=mlp", "model.pack=2", "model.penalty.name=gp")
    w = [0.5, 1.0, 2.0, -1.0]
    model.D = LinearCritic(w)
    model.noise = NoiseSource(0)
    model.backward_step = lambda opt, loss: None  # the value is what is checked
    real = torch.randn(8, 2)
    stats = model.critic_step(real, torch.zeros(8, dtype=torch.long), None)
    expected = (torch.tensor(w).norm() - 1.0) ** 2
    assert torch.allclose(stats["d/penalty"], expected, atol=1e-5)


# ---------------------------------------------------------------------- unrolled GAN
@pytest.mark.parametrize("k", [0, 1])
def test_unrolled_gradient_matches_the_hand_computed_case(k: int) -> None:
    """Wasserstein loss, linear D(x) = w.x + b, SGD with lr eta, fakes = c + z. One unrolled step
    gives w1 = w0 - eta (mean f - mean r), so G's loss -mean D1(f) has gradient
    d/dc = -w0 + eta (2 mean f - mean r); with k = 0 it is -w0."""
    eta = 0.3
    model = toy_model("model.loss=wasserstein", "optim.name=sgd", "optim.betas=[0.0,0.999]", f"model.unroll={k}")
    w0 = [0.7, -1.2]
    model.D = LinearCritic(w0, b=0.4)
    opt = torch.optim.SGD(model.D.parameters(), lr=eta, momentum=0.0)
    g = torch.Generator().manual_seed(1)
    real, z = torch.randn(16, 2, generator=g) + 2.0, torch.randn(16, 2, generator=g)
    c = torch.tensor([0.3, -0.5], dtype=torch.float32, requires_grad=True)
    fake = c + z
    d = model.unrolled_critic(real, fake, opt) if k else model.D
    (grad,) = torch.autograd.grad(-d(fake).mean(), c)
    expected = -torch.tensor(w0) + (eta * (2 * fake.mean(0) - real.mean(0)) if k else 0.0)
    assert torch.allclose(grad, expected.detach(), atol=1e-6)
    assert torch.equal(model.D.head.weight, torch.tensor([w0]))  # D itself is not changed


@pytest.mark.parametrize("name", ["adam", "sgd"])
@pytest.mark.parametrize(("history", "steps"), [(0, 1), (0, 3), (3, 1), (3, 2)])
def test_unrolled_updates_are_the_optimizers_own_steps(name: str, history: int, steps: int) -> None:
    """From a fresh state or one with history, k differentiable updates (state carried from one to
    the next) equal k steps of torch.optim, each on the gradient at the current parameters."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    if name == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=0.01)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.5, weight_decay=0.01)
    x = torch.randn(10, 3)

    def torch_step() -> None:
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()

    for _ in range(history):
        torch_step()
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in net.parameters()]
    state = unrolled_state(opt, list(net.parameters()))
    for _ in range(steps):
        loss = torch.func.functional_call(net, dict(zip(names, params)), (x,)).pow(2).mean()
        params, state = unrolled_update(opt, params, torch.autograd.grad(loss, params), state)
    for _ in range(steps):
        torch_step()
    for u, p in zip(params, net.parameters()):
        assert torch.allclose(u, p, atol=1e-6, rtol=1e-5)


def test_gradient_through_an_adam_unroll_matches_finite_differences() -> None:
    """float64: G's gradient through 3 unrolled Adam steps of a small MLP critic equals central
    differences of the same loss."""
    model = toy_model("model.unroll=3").double()
    torch.manual_seed(1)
    opt = torch.optim.Adam(model.D.parameters(), lr=0.05, betas=(0.5, 0.999))
    real, z = torch.randn(12, 2, dtype=torch.float64) + 1.0, torch.randn(12, 2, dtype=torch.float64)

    def loss(c: Tensor) -> Tensor:
        fake = c + z
        return model.loss.g_loss(model.unrolled_critic(real, fake, opt)(fake))

    c = torch.tensor([0.2, -0.4], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(c), c)
    h = 1e-6
    numeric = torch.stack(
        [(loss(c.detach() + h * e) - loss(c.detach() - h * e)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)]
    )
    assert torch.allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    k0 = toy_model().double()
    k0.D.load_state_dict(model.D.state_dict())
    (plain,) = torch.autograd.grad(k0.loss.g_loss(k0.D(c + z)), c)
    assert not torch.allclose(grad, plain, rtol=1e-3)  # unrolling changes G's gradient


# ---------------------------------------------------------------------- feature matching
def test_feature_matching_loss_is_the_distance_of_mean_features() -> None:
    model = toy_model("model.feature_matching=true", "model.pack=2")
    real, fake = torch.randn(8, 2), torch.randn(8, 2, requires_grad=True)
    loss = model.feature_matching_loss(real, fake)
    with torch.no_grad():
        f_real = model.D.features(real.reshape(4, 4)).double().mean(0)
        f_fake = model.D.features(fake.reshape(4, 4)).double().mean(0)
    assert torch.allclose(loss.double(), (f_real - f_fake).pow(2).sum(), rtol=1e-5)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


# ---------------------------------------------------------------------- minibatch layers
def test_minibatch_stddev_is_the_mean_feature_std() -> None:
    f = torch.randn(7, 5, dtype=torch.float64)
    out = MinibatchStddev()(f)
    expected = f.numpy().std(axis=0).mean()  # population std per feature, averaged
    assert out.shape == (7, 1) and torch.allclose(out, torch.full((7, 1), float(expected), dtype=torch.float64))


@pytest.mark.parametrize("init", ["dcgan", "orthogonal", "default"])
def test_minibatch_discrimination_keeps_its_own_init_under_any_nets_init(init: str) -> None:
    """T ~ N(0, 0.05) (the improved-GAN code's MinibatchLayer): nets.init=dcgan re-drew it at N(0, 0.02)."""
    from gan_lightning.nets import build_discriminator

    cfg = load_config(["exp=gmm_grid_pacgan_protocol", "nets.d_minibatch=discrimination", f"nets.init={init}"])
    d = build_discriminator(cfg.nets, (2,), "none")
    (layer,) = [m for m in d.modules() if isinstance(m, MinibatchDiscrimination)]
    w = layer.T.weight.detach().double()
    assert w.numel() >= 100_000 and abs(w.mean().item()) < 0.002 and abs(w.std().item() - 0.05) < 0.002
    assert abs(d.head.weight.std().item() - 0.02) < 0.01 if init == "dcgan" else True  # the rest keeps nets.init


def test_minibatch_discrimination_matches_its_definition() -> None:
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dim=2).double()
    f = torch.randn(5, 4, dtype=torch.float64)
    m = (f @ layer.T.weight.T).view(5, 3, 2)
    expected = torch.zeros(5, 3, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            if i != j:
                expected[i] += torch.exp(-(m[i] - m[j]).abs().sum(1))
    assert torch.allclose(layer(f), expected, atol=1e-12)
    # and its gradient is the derivative of that sum (finite differences, float64)
    assert torch.autograd.gradcheck(layer, (f.clone().requires_grad_(True),))


@pytest.mark.parametrize("penalty", ["gp", "r1", "dragan"])
def test_minibatch_discrimination_refuses_a_per_sample_penalty(penalty: str) -> None:
    """A per-sample penalty reads d D(x_i) / d x_i; minibatch discrimination makes every D(x_j) a learned function
    of x_i, so the norm is not per sample (as BatchNorm in D, refused the same way). The minibatch stddev, one
    batch-mean scalar, stays allowed: it is ProGAN's own partner of WGAN-GP (Karras et al. 2018)."""
    args = ["exp=gmm_grid_pacgan_protocol", f"model.penalty.name={penalty}", "model.penalty.weight=1"]
    with pytest.raises(ConfigError, match=r"nets\.d_minibatch.*couples.*per-sample.*nets\.d_minibatch=stddev"):
        toy_model(*args, "nets.d_minibatch=discrimination")
    assert isinstance(toy_model(*args, "nets.d_minibatch=stddev"), GAN)


@pytest.mark.parametrize(
    "args",
    [
        ["exp=wgan_gp"],  # gp, nets.d_norm=auto: the check sat after auto's early return
        ["exp=gmm_ring"],  # r1, d_norm auto
        ["exp=aae_fashion", "model.penalty.name=r1", "nets.d_norm=none"],  # a model with its own D step
        ["exp=vaegan_fashion", "model.penalty.name=r1"],
    ],
)
def test_every_model_refuses_minibatch_discrimination_beside_a_per_sample_penalty(args: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"nets\.d_minibatch.*couples.*per-sample"):
        load_config([*args, "nets.d_minibatch=discrimination"])
    load_config([*args, "nets.d_minibatch=stddev"])


@pytest.mark.parametrize("kind", ["discrimination", "stddev"])
def test_minibatch_layers_make_one_sample_depend_on_the_others(kind: str) -> None:
    model = toy_model(f"nets.d_minibatch={kind}")
    x = torch.randn(6, 2)
    other = x.clone()
    other[1:] += 1.0
    assert not torch.allclose(model.D(x)[0], model.D(other)[0])


# ---------------------------------------------------------------------- virtual batch norm
@pytest.mark.parametrize("net", ["mlp", "dcgan"])
def test_virtual_batch_norm_output_does_not_depend_on_the_rest_of_the_batch(net: str) -> None:
    cfg = load_config([*TINY, "exp=quickstart", f"nets.g={net}", "nets.g_norm=virtual_batch"])
    g = build_generator(cfg.nets, (1, 32, 32), 16)
    z = torch.randn(5, 16)
    alone = g(z[:1])
    with_others = g(z)[:1]
    z2 = z.clone()
    z2[1:] = torch.randn(4, 16) * 3
    assert torch.allclose(alone, with_others, atol=1e-6) and torch.allclose(alone, g(z2)[:1], atol=1e-6)
    bn = build_generator(load_config([*TINY, "exp=quickstart", f"nets.g={net}"]).nets, (1, 32, 32), 16)
    assert not torch.allclose(bn(z)[:2], bn(z[:2]), atol=1e-4)  # batch norm: it does


def test_virtual_batch_norm_matches_its_formula_in_float64() -> None:
    layer = VirtualBatchNorm(3, eps=1e-5).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
    ref, x = torch.randn(10, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    layer(ref)  # the reference pass
    out = layer(x)
    mean = (10 * ref.mean(0) + x) / 11
    meansq = (10 * (ref * ref).mean(0) + x * x) / 11
    expected = (x - mean) / (meansq - mean * mean + 1e-5).sqrt() * layer.weight + layer.bias
    assert torch.allclose(out, expected, atol=1e-12)


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["exp=cgan_fashion", "model.pack=2"], "model.pack"),
        (["exp=infogan_fashion", "model.feature_matching=true"], "model.feature_matching"),
        (["exp=gmm_ring", "model.unroll=3"], "model.penalty.name"),  # gmm_ring has R1
        (["exp=gmm_ring", "model=wgan", "nets.d=mlp", "nets.g=mlp", "model.unroll=1"], "model.clip"),
        (["exp=gmm_ring", "model.penalty.name=none", "model.unroll=1", "optim.name=rmsprop"], "optim.name"),
        (["exp=cyclegan_edges", "nets.g_norm=virtual_batch"], "virtual batch norm"),
        (["exp=gmm_ring", "nets.d_minibatch=many"], "nets.d_minibatch"),
        (["exp=gmm_ring", "nets.d_norm=virtual_batch"], "nets.d_norm"),  # VBN is a G option
        (["exp=cgan_fashion", "nets.g_norm=virtual_batch"], "nets.g_norm"),  # G(z, y): no z-only reference
        (["exp=gmm_ring", "model.penalty.name=none", "model.unroll=2", "trainer.precision=16-mixed"], "precision"),
        (["exp=gmm_ring", "model.unroll=2", "model.penalty.name=none", "trainer.devices=2"], "trainer.devices"),
        (["exp=gmm_ring", "model.feature_matching=true", "trainer.devices=2"], "trainer.devices"),
        (["exp=gmm_ring", "model.pack=0"], "model.pack"),
    ],
)
def test_combinations_that_do_not_hold_are_refused_with_the_key(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfg = load_config(args)
        build_model(cfg, build_datamodule(cfg).info)


# ---------------------------------------------------------------------- training and resume
RESUME_CASES = {
    "pack_gp_ncritic": ["model=wgan_gp", "nets.g=mlp", "nets.d=mlp", "model.pack=2"],
    "unroll": ["model.penalty.name=none", "model.unroll=2"],
    "feature_matching_mbd": [
        "model.feature_matching=true",
        "nets.d_minibatch=discrimination",
        "model.penalty.name=none",
    ],
    "vbn_stddev": ["nets.g_norm=virtual_batch", "nets.d_minibatch=stddev", "model.pack=2"],
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_remedies_train_and_resume_bitwise(case: str, tmp_path: Path) -> None:
    args = ["exp=gmm_ring", *RESUME_CASES[case], "log.every=2"]
    full = run(*args, "steps=6", f"out={tmp_path / 'full'}")
    part = run(*args, "steps=3", f"out={tmp_path / 'part'}")
    halfway = weights(part.run_dir)
    resumed = run(*args, "steps=6", f"out={tmp_path / 'part'}", "resume=auto")
    assert full.status == part.status == resumed.status == "completed"
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    assert any(not torch.equal(halfway[k], v) for k, v in weights(full.run_dir).items())  # it trained on
