"""``trainer.precision=bf16-mixed-if-native``: resolved once, when the config is loaded, by what the device computes."""

from __future__ import annotations

import pytest
import torch

from gan_lightning import precision
from gan_lightning.config import load_config
from gan_lightning.registry import ConfigError


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_if_native_resolves_by_what_the_cpu_computes(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: native)
    cfg = load_config(["exp=gmm_ring", "trainer.accelerator=cpu", "trainer.precision=bf16-mixed-if-native"])
    assert cfg.trainer.precision == expected  # what config.yaml keeps, so a resume runs at the same precision


def test_auto_without_a_gpu_asks_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    assert load_config(["exp=gmm_ring", "trainer.precision=bf16-mixed-if-native"]).trainer.precision == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    assert load_config(["exp=gmm_ring", "trainer.precision=bf16-mixed-if-native"]).trainer.precision == "32-true"


def test_a_gpu_is_asked_about_its_own_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)  # must not be what decides for a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert not precision.computes_bf16("gpu") and not precision.computes_bf16("auto")
    asked: list[bool] = []

    def native_only(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return True

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", native_only)
    assert precision.computes_bf16("gpu") and asked == [False]  # native bf16, not its emulation


def test_other_accelerators_stay_at_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    assert not precision.computes_bf16("mps")


def test_explicit_precisions_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    assert load_config(["exp=gmm_ring", "trainer.precision=bf16-mixed"]).trainer.precision == "bf16-mixed"
    assert load_config(["exp=gmm_ring"]).trainer.get("precision", "32-true") == "32-true"


def test_the_refusal_of_an_unknown_precision_names_the_project_value() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(["exp=gmm_ring", "trainer.precision=bf16-mixed-if-nativ"])
    assert "bf16-mixed-if-native" in str(e.value)


def test_the_resolved_precision_feeds_the_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks read the resolved value: an EMA under bf16-mixed is fine wherever it resolves."""
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    args = ["exp=dcgan", "model.ema.decay=0.999", "trainer.accelerator=cpu", f"trainer.precision={precision.IF_NATIVE}"]
    cfg = load_config(args)
    assert cfg.trainer.precision == "bf16-mixed" and precision.precision_of(cfg) == "bf16-mixed"


def test_the_cpu_check_matches_the_cpu_flags() -> None:
    """Independent truth: /proc/cpuinfo's flags (Linux x86)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags here")
    assert precision.cpu_computes_bf16() == ("avx512_bf16" in flags or "amx_tile" in flags)


def test_bf16_on_a_cpu_that_would_emulate_it_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config(["exp=gmm_ring", "trainer.precision=bf16-mixed"])
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    message = precision.emulated_bf16_warning(cfg)
    assert message is not None and "32-true" in message and "bf16-mixed-if-native" in message
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    assert precision.emulated_bf16_warning(cfg) is None
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: False)
    assert precision.emulated_bf16_warning(load_config(["exp=gmm_ring"])) is None  # float32: nothing to say
