"""m-IS, MODE score and AM score against numpy references written from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_lightning.metrics.label_measures import am_score, mode_score, modified_inception_score


def softmax_probs(rng: np.random.Generator, n: int, c: int, scale: float = 3.0) -> np.ndarray:
    z = rng.normal(0, scale, (n, c))
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def m_is_reference(p: np.ndarray, labels: np.ndarray | None = None) -> float:
    """exp(sum_c n_c/N * 1/n_c^2 sum_{i,j in class c} KL(p_i || p_j)) by an explicit double loop."""
    labels = p.argmax(1) if labels is None else labels
    total = 0.0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        s = sum(kl(p[i], p[j]) for i in members for j in members)
        total += len(members) / len(p) * s / len(members) ** 2
    return math.exp(total)


def test_m_is_matches_double_loop() -> None:
    rng = np.random.default_rng(0)
    p = softmax_probs(rng, 60, 5)
    assert modified_inception_score(torch.from_numpy(p)) == pytest.approx(m_is_reference(p), rel=1e-12)
    labels = rng.integers(0, 3, 60)  # given labels (a conditional generator's) instead of argmax
    assert modified_inception_score(p, labels) == pytest.approx(m_is_reference(p, labels), rel=1e-12)


def test_m_is_is_one_without_within_class_variation_and_grows_with_it() -> None:
    rng = np.random.default_rng(1)
    protos = softmax_probs(rng, 4, 6)
    protos[np.arange(4), np.arange(4)] += 5  # make the argmax of prototype c be class c
    protos /= protos.sum(1, keepdims=True)
    same = protos[rng.integers(0, 4, 200)]
    assert modified_inception_score(same) == pytest.approx(1.0, abs=1e-12)
    # the same classes, predictions now varying within each class
    varied = same + rng.uniform(0, 0.1, same.shape)
    varied /= varied.sum(1, keepdims=True)
    assert (varied.argmax(1) == same.argmax(1)).all()
    more = same + rng.uniform(0, 0.3, same.shape)
    more /= more.sum(1, keepdims=True)
    assert 1.0 < modified_inception_score(varied) < modified_inception_score(more)


def test_m_is_of_one_hot_classes_and_zeros_is_finite() -> None:
    one_hot = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    assert modified_inception_score(one_hot) == 1.0
    p = np.array([[0.9, 0.1, 0.0], [1.0, 0.0, 0.0]])  # same class; KL(p_0 || p_1) meets a zero
    assert math.isfinite(modified_inception_score(p)) and modified_inception_score(p) > 1


def mode_reference(p: np.ndarray, ref: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y))), explicit per-sample sum."""
    py = p.mean(0)
    ref = ref / ref.sum()
    return math.exp(np.mean([kl(row, py) for row in p]) - kl(py, ref))


def am_reference(p: np.ndarray, ref: np.ndarray) -> float:
    """KL(p*(y) || p(y)) + E_x H(p(y|x))."""
    ref = ref.mean(0) if ref.ndim == 2 else ref / ref.sum()
    entropy = np.mean([-np.sum(row[row > 0] * np.log(row[row > 0])) for row in p])
    return kl(ref, p.mean(0)) + float(entropy)


def test_mode_and_am_match_numpy() -> None:
    rng = np.random.default_rng(2)
    p = softmax_probs(rng, 300, 7)
    hist = rng.integers(5, 50, 7).astype(float)
    assert mode_score(p, hist) == pytest.approx(mode_reference(p, hist), rel=1e-12)
    assert am_score(p, hist) == pytest.approx(am_reference(p, hist), rel=1e-12)
    train_probs = softmax_probs(rng, 500, 7)  # the classifier on training data: its mean is p*
    assert am_score(p, train_probs) == pytest.approx(am_reference(p, train_probs), rel=1e-12)
    assert mode_score(p, train_probs) == pytest.approx(mode_reference(p, train_probs.mean(0)), rel=1e-12)


def test_confident_balanced_samples_matching_reference() -> None:
    c = 10
    p = np.eye(c)[np.arange(500) % c]
    uniform = np.full(c, 1.0 / c)
    assert mode_score(p, uniform) == pytest.approx(math.exp(math.log(c)), rel=1e-12)
    assert am_score(p, uniform) == pytest.approx(0.0, abs=1e-12)
    assert am_score(p, np.full(c, 37)) == pytest.approx(0.0, abs=1e-12)  # counts are normalised


def test_mode_score_penalises_class_mismatch_am_rises() -> None:
    c = 5
    collapsed = np.eye(c)[np.arange(400) % 2]  # confident, but only two of five classes
    uniform = np.ones(c)
    assert mode_score(collapsed, uniform) == pytest.approx(2 * math.exp(-math.log(2.5)), rel=1e-12)
    assert mode_score(collapsed, uniform) < mode_score(np.eye(c)[np.arange(400) % c], uniform)
    assert am_score(collapsed, uniform) > 1.0  # KL(uniform || two classes) is large (clamped, finite)
    assert math.isfinite(am_score(collapsed, uniform))


def test_literal_mode_form_would_reduce_to_inception_score() -> None:
    """Why mode_score keeps p(y) in the first term: with p* there the expression is log IS for any p*."""
    rng = np.random.default_rng(3)
    p = softmax_probs(rng, 200, 6)
    py = p.mean(0)
    for ref in (np.full(6, 1 / 6), rng.dirichlet(np.ones(6))):
        literal = np.mean([kl(row, ref) for row in p]) - kl(py, ref)
        assert literal == pytest.approx(np.mean([kl(row, py) for row in p]), rel=1e-10)


def is_reference(p: np.ndarray, splits: int) -> tuple[float, float]:
    """Salimans et al. 2016's Inception Score: split k holds rows [k N / s, (k + 1) N / s); per split
    exp(mean_i KL(p_i || mean of the split)); mean and (population) std over the s splits."""
    n = len(p)
    scores = []
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]
        py = part.mean(0)
        scores.append(math.exp(np.mean([kl(row, py) for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


@pytest.mark.parametrize("n", [100, 91, 23])
def test_inception_score_uses_equal_splits_as_salimans_et_al(n: int) -> None:
    """N not a multiple of the splits: chunking into ceil(N / s) rows gave fewer, uneven splits (at N = 91 nine of
    ten rows and one of one row; at N = 23 eight splits, not ten)."""
    from gan_lightning.metrics.modes import inception_score

    p = softmax_probs(np.random.default_rng(n), n, 10)
    mean, std = inception_score(torch.from_numpy(p), splits=10)
    ref_mean, ref_std = is_reference(p, 10)
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-10)
