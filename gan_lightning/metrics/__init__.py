"""Metrics of generated samples, by name (``metrics.names``): fid, kid, prdc, is, classes, modes.

The math (float64) lives in ``frechet``, ``precision_recall`` and ``modes``; feature spaces in
``features`` (Inception) and ``classifier`` (the project's domain classifier); reference
statistics in ``reference``; the name -> metric registry and the two-stage evaluator in
``evaluator``.
"""

from gan_lightning.metrics.evaluator import METRICS, Evaluator, MetricSpec
from gan_lightning.metrics.frechet import StreamingStats, fid_from_features, frechet_distance, kid
from gan_lightning.metrics.modes import class_statistics, inception_score, mode_statistics
from gan_lightning.metrics.precision_recall import prdc

__all__ = [
    "METRICS",
    "Evaluator",
    "MetricSpec",
    "StreamingStats",
    "class_statistics",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kid",
    "mode_statistics",
    "prdc",
]
