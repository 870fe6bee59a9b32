"""One D step and one G step for every adversarial model: each mechanism (clipping, penalties,
spectral norm, the fast path's eligibility) is applied once, whatever the variant."""

from __future__ import annotations

import ast
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.fast import NoiseTape, optimizer_tensors_to_
from gan_lightning.models import build_model
from gan_lightning.models.noise import NoiseSource
from gan_lightning.penalties import PENALTIES
from gan_lightning.registry import ConfigError
from tests.conftest import REPO
from tests.helpers import run, weights

PACKAGE = REPO / "gan_lightning"


def data_args(root: Path) -> list[str]:
    return [f"data.data_dir={root}", "data.download=false", "metrics.names=[]", "log.neighbours=false"]


@pytest.mark.parametrize("exp", ["acgan_fashion", "cgan_mnist", "infogan_mnist"])
def test_weight_clipping_holds_for_every_variant(exp: str, mnist_root: Path) -> None:
    """WGAN's clipping is part of the shared D step: ACGAN's auxiliary head and the projection
    critic's embedding stay in [-c, c] too."""
    largest: list[float] = []

    class Largest(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            largest.append(max(float(p.detach().abs().max()) for p in pl_module.D.parameters()))

    args = ["model.loss=wasserstein", "model.clip=0.01", "model.label_smoothing=0", "steps=2", "out=clip"]
    run(f"exp={exp}", *data_args(mnist_root), *args, extra_callbacks=[Largest()])
    assert len(largest) == 2 and max(largest) <= 0.01


def _parametrized_weights(net: nn.Module) -> tuple[list[str], list[str]]:
    """(names of conv/linear/embedding layers with spectral norm, names of those without)."""
    with_sn, without = [], []
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            (with_sn if parametrize.is_parametrized(m, "weight") else without).append(name)
    return with_sn, without


@pytest.mark.parametrize(
    "args",
    [
        ["exp=acgan_fashion"],  # the auxiliary classifier head
        ["exp=cgan_mnist", "model.conditioning=projection"],  # the projection's class embedding
        ["exp=infogan_mnist"],
        ["exp=quickstart", "model=sngan"],
        ["exp=bigan_fashion"],  # the joint critic's head is also its top MLP's: one normalisation, not two
    ],
)
def test_spectral_norm_covers_every_critic_layer(args: list[str], mnist_root: Path) -> None:
    cfg = load_config([*args, *data_args(mnist_root), "model.sn_d=true"])
    model = build_model(cfg, build_datamodule(cfg).info)
    with_sn, without = _parametrized_weights(model.D)
    assert with_sn and not without, f"D layers without spectral norm: {without}"
    assert not _parametrized_weights(model.G)[0]  # sn_g is off
    twice = [name for name, m in model.D.named_modules() if parametrize.is_parametrized(m, "weight")]
    assert all(len(model.D.get_submodule(n).parametrizations.weight) == 1 for n in twice)


def test_every_penalty_says_it_is_per_sample_and_batchnorm_follows() -> None:
    """All three penalties are sums of per-sample input gradients: BatchNorm goes (auto) or is refused."""
    for name in PENALTIES:
        assert PENALTIES[name].per_sample
        args = ["exp=quickstart", "data=synthetic", "data.image_size=16", f"model.penalty.name={name}"]
        cfg = load_config(args)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in build_model(cfg, build_datamodule(cfg).info).D.modules())
        with pytest.raises(ConfigError, match="per-sample"):
            load_config([*args, "nets.d_norm=batch"])


# ----------------------------------------------------------------------------- the fast path
def test_fast_path_eligibility_is_the_models_capability() -> None:
    from gan_lightning.models import MODELS

    shared_step = MODELS["gan"].training_step
    for name in MODELS:
        cls = MODELS[name]
        # the fast path replays the shared D and G steps: a model with a step of its own cannot claim it
        assert not cls.fast_path or cls.training_step is shared_step, name
    assert {"gan", "wgan_gp", "cgan", "acgan", "infogan", "bigan", "ali"} <= {n for n in MODELS if MODELS[n].fast_path}
    for exp, model in [("cyclegan_edges", "cyclegan"), ("stylegan_fashion", "stylegan"), ("aae_fashion", "aae")]:
        with pytest.raises(ConfigError, match=f"does not cover model '{model}'"):
            load_config([f"exp={exp}", "perf.fast=true"])


def test_fast_path_refuses_16_bit_loss_scaling() -> None:
    with pytest.raises(ConfigError, match="16-bit mixed precision"):
        load_config(["exp=gmm_ring", "perf.fast=true", "trainer.precision=16-mixed"])


def test_noise_tape_offers_every_draw_of_the_live_source() -> None:
    public = {n for n in dir(NoiseSource) if not n.startswith("_") and callable(getattr(NoiseSource, n))}
    assert public - {"state_dict", "load_state_dict"} == set(NoiseSource.DRAWS)
    reference, tape = NoiseSource(3), NoiseTape(NoiseSource(3))
    tape.start_recording()
    assert torch.equal(tape.randint(10, 6), reference.randint(10, 6))
    tape.refill()
    assert torch.equal(tape.randint(10, 6), reference.randint(10, 6))
    with pytest.raises(AttributeError, match="no draw"):
        tape.state_dict_of_nothing  # noqa: B018


@pytest.mark.parametrize("exp", ["acgan_fashion", "infogan_mnist", "ali_fashion", "biggan_fashion"])
def test_fast_path_trains_the_variants_bitwise_like_the_default_path(exp: str, mnist_root: Path) -> None:
    from gan_lightning.fast import WARMUP_STEPS

    common = [f"exp={exp}", *data_args(mnist_root), f"steps={WARMUP_STEPS + 2}", "log.interpolate=false"]
    eager, fast = run(*common, "out=eager"), run(*common, "perf.fast=true", "out=fast")
    assert eager.status == fast.status == "completed"
    a, b = weights(eager.run_dir), weights(fast.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_fast_path_builds_capturable_optimizers_with_a_tensor_lr(optimizer: str, monkeypatch) -> None:
    """On a GPU the fast path asks for capturable optimizers with the lr as a device tensor; a CPU
    has none, so the GPU's answer is stood in for (this once raised "multiple values for 'lr'")."""
    import gan_lightning.fast as fast

    def as_on_a_gpu(name: str, lr: float, device: torch.device) -> dict:
        return {"capturable": True, "lr": torch.tensor(float(lr))}

    monkeypatch.setattr(fast, "capturable_optimizer_kwargs", as_on_a_gpu)
    args = ["exp=gmm_ring", "model=wgan_gp", "perf.fast=true", f"optim.name={optimizer}", "optim.lr_d=3e-4"]
    cfg = load_config(args)
    model = build_model(cfg, build_datamodule(cfg).info)
    optimizers, _ = model.configure_optimizers()
    lrs = [opt.param_groups[0]["lr"] for opt in optimizers]
    assert all(isinstance(lr, torch.Tensor) for lr in lrs)
    assert [opt.param_groups[0]["capturable"] for opt in optimizers] == [True, True]
    assert sorted(float(lr) for lr in lrs) == pytest.approx(sorted([cfg.optim.lr_g, 3e-4]))


def test_optimizer_tensors_follow_the_model_after_a_resume() -> None:
    """Lightning restores optimizer state with CPU storages: a tensor lr (and initial_lr) must be
    moved to the model's device, and the scheduler then updates the tensor the step reads."""

    def adam_with_tensor_lr() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        opt = torch.optim.Adam([nn.Parameter(torch.zeros(3))], lr=torch.tensor(0.1), foreach=False)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)

    opt, _ = adam_with_tensor_lr()
    target = torch.device("meta")  # a device other than the CPU shows the move (no GPU here)
    optimizer_tensors_to_(opt, target)
    assert opt.param_groups[0]["lr"].device == target and opt.param_groups[0]["initial_lr"].device == target
    opt, sched = adam_with_tensor_lr()
    optimizer_tensors_to_(opt, torch.device("cpu"))  # already there: the same tensor stays
    lr = opt.param_groups[0]["lr"]
    sched.step()
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.05)  # updated in place


def test_a_resume_that_turns_the_fast_path_on_makes_the_restored_optimizers_capturable() -> None:
    """A checkpoint of the default path restores plain optimizer groups (a float lr, capturable off,
    the step counts on the CPU) over the fast path's capturable ones; capture would then fail. The
    groups are made capturable again, on the model's device (meta stands in for the GPU here)."""
    param = nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([param], lr=0.1, foreach=False)
    param.grad = torch.ones(3)
    opt.step()  # state: exp_avg, exp_avg_sq, step (a CPU tensor)
    target = torch.device("meta")
    optimizer_tensors_to_(opt, target, capturable=True)
    group = opt.param_groups[0]
    assert group["capturable"] is True
    assert isinstance(group["lr"], torch.Tensor) and group["lr"].device == target
    assert opt.state[param]["step"].device == target
    on_cpu = torch.optim.Adam([nn.Parameter(torch.zeros(3))], lr=0.1, foreach=False)
    optimizer_tensors_to_(on_cpu, torch.device("cpu"), capturable=True)  # the value survives the change
    assert float(on_cpu.param_groups[0]["lr"]) == pytest.approx(0.1)


# ----------------------------------------------------------------------------- pix2pix
def test_pix2pix_runs_its_generator_once_per_step(mnist_root: Path) -> None:
    calls = []

    class Count(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            pl_module.G.register_forward_hook(lambda m, i, o: calls.append(1) if m.training else None)

    run("exp=pix2pix_edges", *data_args(mnist_root), "steps=3", "log.interpolate=false", extra_callbacks=[Count()])
    assert len(calls) == 3


# ----------------------------------------------------------------------------- imports
def _package_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports at run time, at any depth of the file (imports
    under ``if TYPE_CHECKING:`` are for the type checker only)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gan_lightning"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gan_lightning")}
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_schema_is_a_leaf_and_config_data_models_import_no_circle() -> None:
    assert _package_imports(PACKAGE / "schema.py") == set()
    graph = {_module_name(p): _package_imports(p) for p in PACKAGE.rglob("*.py")}

    def reaches(src: str, dst: str) -> bool:
        seen, todo = set(), [src]
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if nxt == dst or nxt.startswith(dst + "."):
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    assert reaches("gan_lightning.config", "gan_lightning.models")
    for low in ("gan_lightning.models", "gan_lightning.data"):
        assert not reaches(low, "gan_lightning.config"), f"{low} imports the config loader"
    assert not reaches("gan_lightning.data", "gan_lightning.models")


@pytest.mark.parametrize("args", [["exp=gmm_ring"], ["exp=acgan_fashion"], ["exp=cyclegan_edges"]])
def test_every_model_loads_from_its_checkpoint_with_lightning(args: list[str], mnist_root: Path) -> None:
    """Hyperparameters are saved: ``Model.load_from_checkpoint(path)`` rebuilds the model with
    the checkpoint's weights (a library user's entry point), through a weights-only load."""
    from gan_lightning.registry import MODELS

    data = [] if args == ["exp=gmm_ring"] else data_args(mnist_root)
    result = run(*args, *data, "steps=2", "metrics.names=[]", "log.interpolate=false", "out=lib")
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    name = load_config(args).model.name
    model = MODELS[name].load_from_checkpoint(ckpt, weights_only=True)
    stored = weights(result.run_dir)
    assert type(model).__name__ == MODELS[name].__name__ and model.cfg.model.name == name
    loaded = model.state_dict()
    assert stored.keys() == loaded.keys() and all(torch.equal(stored[k], loaded[k]) for k in stored)
