"""Class-conditional models sample labels at the training data's class mix, not uniformly: a
generator asked for classes in other proportions than the data's is measured (FID, class KL)
against a distribution it was never asked to produce (e.g. CelebA's Eyeglasses: 6.5 % of faces)."""

from __future__ import annotations

import pytest
import torch

from gan_lightning.checkpoint import load_model, read_checkpoint
from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.data.synthetic import SyntheticDataModule
from gan_lightning.models.conditional import ConditionalMixin, LabelledGenerator
from gan_lightning.models.gan import GAN
from gan_lightning.models.labels import draw_labels, proportional_labels
from gan_lightning.models.noise import NoiseSource
from tests.helpers import run


def test_proportional_labels_are_the_classes_in_turn_when_the_mix_is_uniform() -> None:
    for n in (1, 7, 10, 15, 25, 64, 1000):
        assert torch.equal(proportional_labels(n, [0.1] * 10), torch.arange(n) % 10)


def test_proportional_labels_meet_each_quota_and_interleave() -> None:
    freqs = [0.5, 0.3, 0.15, 0.05]
    for n in (3, 20, 101, 1000):
        labels = proportional_labels(n, freqs)
        counts = torch.bincount(labels, minlength=4).double()
        assert counts.sum() == n
        assert (counts - n * torch.tensor(freqs, dtype=torch.float64)).abs().max() < 1, (n, counts)
    # interleaved, not in blocks: every prefix of 20 holds each class within one of its share
    labels = proportional_labels(1000, freqs)
    for m in (20, 100, 500):
        counts = torch.bincount(labels[:m], minlength=4).double()
        assert (counts - m * torch.tensor(freqs, dtype=torch.float64)).abs().max() <= 1.5, (m, counts)


def test_drawn_labels_follow_the_frequencies_and_each_rank_takes_its_share() -> None:
    freqs = [0.7, 0.2, 0.1]
    drawn = draw_labels(NoiseSource(3), 20000, freqs)
    share = torch.bincount(drawn, minlength=3).double() / 20000
    sigma = (torch.tensor(freqs, dtype=torch.float64) * (1 - torch.tensor(freqs)) / 20000).sqrt()
    assert ((share - torch.tensor(freqs, dtype=torch.float64)).abs() < 4 * sigma).all(), share
    # two ranks draw the global batch of one process and keep their halves (the DDP property)
    whole = draw_labels(NoiseSource(5), 8, freqs)
    halves = [draw_labels(NoiseSource(5, rank=r, world=2), 4, freqs) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), whole)
    # a uniform mix keeps the uniform integer draw (runs on balanced data are unchanged)
    assert torch.equal(draw_labels(NoiseSource(7), 50, [0.25] * 4), NoiseSource(7).randint(4, 50))


@pytest.mark.parametrize("fast", [False, True])
def test_a_conditional_run_samples_its_data_class_mix(tmp_path, monkeypatch, fast: bool) -> None:
    """cGAN on data whose labels are 80 % class 0: training (eager and ``perf.fast``'s replayed step), the
    checkpoint and `sample` all use that mix."""
    original = SyntheticDataModule.__init__

    def skewed(self, cfg):  # type: ignore[no-untyped-def]
        original(self, cfg)
        g = torch.Generator().manual_seed(0)
        self.labels = torch.where(torch.rand(len(self.labels), generator=g) < 0.8, 0, self.labels)

    monkeypatch.setattr(SyntheticDataModule, "__init__", skewed)
    seen: list[torch.Tensor] = []
    make_fake = ConditionalMixin.make_fake

    def recording(self, n):  # type: ignore[no-untyped-def]
        fake = make_fake(self, n)
        seen.append(fake.y.detach().cpu())
        return fake

    monkeypatch.setattr(ConditionalMixin, "make_fake", recording)
    result = run(
        "model=cgan", "data=synthetic", "data.image_size=16", "data.n=400", "steps=30", "data.batch_size=16",
        f"out={tmp_path}", f"perf.fast={str(fast).lower()}",
    )  # fmt: skip
    assert result.status == "completed"
    ckpt_path = result.run_dir / "checkpoints" / "last.ckpt"
    freqs = read_checkpoint(ckpt_path)["gan_lightning"]["info"]["class_frequencies"]
    data = build_datamodule(load_config(["data=synthetic", "data.image_size=16", "data.n=400"]))
    data_labels = data.split(train=True)[1]
    expected = (torch.bincount(data_labels, minlength=10).double() / len(data_labels)).tolist()
    assert freqs == expected and expected[0] > 0.75
    drawn = torch.cat(seen)  # 30 G steps and their D steps: ~1,000 labels
    assert 0.7 < (drawn == 0).double().mean() < 0.9, torch.bincount(drawn)
    model = load_model(ckpt_path)
    sampled = torch.bincount(model.labels_for(1000), minlength=10).double()
    assert (sampled - 1000 * torch.tensor(expected, dtype=torch.float64)).abs().max() < 1


@pytest.mark.parametrize("model", ["cgan", "acgan"])
def test_the_critic_steps_fakes_carry_the_real_batchs_labels(tmp_path, monkeypatch, model: str) -> None:
    """A conditional D step drew its fakes' labels apart from the real batch's, so the gradient penalty's
    interpolate of real i (class a) and fake i (class b) was judged with label a. The D step's fakes now
    carry the real labels: per sample, the interpolate lies between two images of the class D is told."""
    calls: list[tuple[str, torch.Tensor]] = []
    forward = LabelledGenerator.forward

    def recording(self, z, y):  # type: ignore[no-untyped-def]
        calls.append(("G", y.detach().clone()))
        return forward(self, z, y)

    monkeypatch.setattr(LabelledGenerator, "forward", recording)
    real_labels: list[torch.Tensor] = []
    step = GAN.critic_step

    def recording_step(self, real, y_real, opt):  # type: ignore[no-untyped-def]
        real_labels.append(y_real.detach().clone())
        calls.append(("D", y_real.detach().clone()))
        return step(self, real, y_real, opt)

    monkeypatch.setattr(GAN, "critic_step", recording_step)
    args = [f"model={model}", "data=synthetic", "data.image_size=16", "data.n=200", "steps=3", "data.batch_size=8"]
    result = run(*args, "model.penalty.name=gp", "model.n_critic=2", f"out={tmp_path}")
    assert result.status == "completed" and len(real_labels) == 6
    d_steps = [i for i, (kind, _) in enumerate(calls) if kind == "D"]
    for i in d_steps:  # the next G call is the D step's make_fake
        kind, y_fake = calls[i + 1]
        assert kind == "G" and torch.equal(y_fake, calls[i][1])
