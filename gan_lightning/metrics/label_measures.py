"""Scores of generated samples read through a classifier's probabilities p(y|x), an (N, C) array.

All three are computed in float64. Logs of probabilities are taken of values clamped at 1e-30 (as
``modes.inception_score`` does), so 0 * log 0 = 0 and a zero where the other distribution has mass
gives a large finite penalty instead of inf/nan.

- ``modified_inception_score``: m-IS, within-class diversity (Gurumurthy et al. 2017, DeLiGAN).
- ``mode_score``: the MODE score (Che et al. 2017, "Mode regularized GANs").
- ``am_score``: the AM score (Zhou et al. 2018, "Activation maximization GAN"), lower is better.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

_TINY = 1e-30


def _probs(probs: Tensor | np.ndarray) -> Tensor:
    p = torch.as_tensor(probs).detach().double().cpu()
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected class probabilities of shape (N, C) with N > 0, got {tuple(p.shape)}")
    return p


def _distribution(hist_or_probs: Tensor | np.ndarray) -> Tensor:
    """A class distribution (C,): a histogram (C,) normalised, or the mean of probabilities (M, C)."""
    q = torch.as_tensor(hist_or_probs).detach().double().cpu()
    if q.ndim == 2:
        q = q.mean(0)
    if q.ndim != 1 or not bool((q >= 0).all()) or float(q.sum()) <= 0:
        raise ValueError("expected a non-negative class histogram (C,) or probabilities (M, C)")
    return q / q.sum()


def _log(p: Tensor) -> Tensor:
    return p.clamp_min(_TINY).log()


def _kl(p: Tensor, q: Tensor) -> float:
    return float((p * (_log(p) - _log(q))).sum())


def modified_inception_score(probs: Tensor | np.ndarray, labels: Tensor | np.ndarray | None = None) -> float:
    """m-IS (Gurumurthy et al. 2017, DeLiGAN): exp(E_{x_i} E_{x_j} KL(p(y|x_i) || p(y|x_j))) with
    x_j drawn from the samples of x_i's class, i.e. the classifier's prediction for x_i.

    Implemented exactly as, with S_c = {i : label_i = c} (label = argmax_y p(y|x_i) unless
    ``labels`` are given, e.g. a conditional generator's), n_c = |S_c| and N = sum_c n_c::

        D_c  = 1/n_c^2  sum_{i in S_c} sum_{j in S_c} KL(p(.|x_i) || p(.|x_j))    (ordered pairs, i = j included)
        m-IS = exp( sum_c (n_c / N) D_c )

    i.e. the expectations are the empirical ones over independent draws x_i, x_j of the class, and
    classes are weighted by their share of the samples (a class with one sample contributes 0).
    The double sum is evaluated in O(N C) through
    sum_{i,j} KL(p_i || p_j) = n_c sum_i <p_i, log p_i> - <sum_i p_i, sum_j log p_j>.
    1 when every class's samples share one probability vector; larger as they vary within a class.
    """
    p = _probs(probs)
    n = p.shape[0]
    lab = p.argmax(1) if labels is None else torch.as_tensor(labels).long().cpu().flatten()
    if lab.shape != (n,):
        raise ValueError(f"labels must be ({n},), got {tuple(lab.shape)}")
    logp = _log(p)
    neg_entropy = (p * logp).sum(1)  # <p_i, log p_i>
    total = 0.0
    for cls in lab.unique():
        m = lab == cls
        n_c = int(m.sum())
        # D_c * n_c = (n_c * sum_i <p_i, log p_i> - <sum_i p_i, sum_j log p_j>) / n_c
        s = n_c * neg_entropy[m].sum() - (p[m].sum(0) * logp[m].sum(0)).sum()
        total += float(s) / n_c
    # Rounding can leave -1e-16 where every KL is 0; KL >= 0 term by term.
    return math.exp(max(total / n, 0.0))


def mode_score(probs: Tensor | np.ndarray, ref_class_hist: Tensor | np.ndarray) -> float:
    """MODE score (Che et al. 2017) against p*(y), the training data's class distribution
    (``ref_class_hist``: a class histogram (C,), or the classifier's probabilities on training
    data (M, C), then averaged), with p(y) = E_x p(y|x) the generated marginal::

        MODE = exp( E_x KL(p(y|x) || p(y)) - KL(p(y) || p*(y)) )

    Higher is better: the first term is log IS (confident and diverse), the second penalises a
    generated class distribution unlike the data's. Note on the form: the definition is often
    quoted with p*(y) in the first term, exp(E_x KL(p(y|x) || p*(y)) - KL(p(y) || p*(y))); that
    expression is identically log IS, because E_x KL(p(y|x) || p*) = E_x KL(p(y|x) || p(y)) +
    KL(p(y) || p*), so p* would cancel. The form above, the one Xu et al. 2018 ("An empirical
    study on evaluation metrics of GANs") state, keeps the penalty; it equals C for one-hot,
    class-balanced samples when p* is uniform over C classes.
    """
    p = _probs(probs)
    ref = _distribution(ref_class_hist)
    if ref.shape[0] != p.shape[1]:
        raise ValueError(f"reference has {ref.shape[0]} classes, probabilities {p.shape[1]}")
    py = p.mean(0)
    log_is = float((p * (_log(p) - _log(py))).sum(1).mean())
    return math.exp(log_is - _kl(py, ref))


def am_score(probs: Tensor | np.ndarray, ref_probs_or_hist: Tensor | np.ndarray) -> float:
    """AM score (Zhou et al. 2018), lower is better::

        AM = KL(p*(y) || p(y)) + E_x H(p(y|x))

    with p(y) = E_x p(y|x) over the generated samples and p*(y) the training data's marginal of
    the same classifier, E_{x ~ data} p(y|x), as in the paper: pass the classifier's
    probabilities on training data (M, C). A class histogram (C,) is accepted instead (then p* is
    the label distribution, which is the same thing for a classifier that is accurate and
    confident on its training data). 0 for confident (one-hot) samples whose classes follow p*.
    """
    p = _probs(probs)
    ref = _distribution(ref_probs_or_hist)
    if ref.shape[0] != p.shape[1]:
        raise ValueError(f"reference has {ref.shape[0]} classes, probabilities {p.shape[1]}")
    entropy = float(-(p * _log(p)).sum(1).mean())
    return _kl(ref, p.mean(0)) + entropy
