"""Metrics of generated samples, by name (``metrics.names``): fid, kid, prdc, is, classes, cond,
modes, stacked, and the rest of the evaluation table in ``measures`` (mis, mode_score, am, mmd,
nn1, c2st, wcritic, birthday, ndb, cas, recon, spectrum, parzen; ssim and psnr for translation), and
``probe`` for models with an encoder (linear-probe accuracy of the codes, reconstruction error),
``ppl`` (perceptual path length, in W for generators with a mapping net, else in Z).

The math (float64) lives in ``frechet``, ``precision_recall`` and ``modes``; feature spaces in
``features`` (Inception) and ``classifier`` (the project's domain classifier); reference
statistics in ``reference``; the name -> metric registry and the two-stage evaluator in
``evaluator``.
"""

from gan_lightning.metrics import measures as _measures  # noqa: F401  (registers the table's measures)
from gan_lightning.metrics import ppl as _ppl  # noqa: F401  (registers 'ppl': perceptual path length)
from gan_lightning.metrics import probe as _probe  # noqa: F401  (registers 'probe': encoders' codes)
from gan_lightning.metrics.bins import ndb
from gan_lightning.metrics.evaluator import METRICS, Evaluator, MetricSpec
from gan_lightning.metrics.frechet import StreamingStats, fid_from_features, frechet_distance, kid
from gan_lightning.metrics.modes import class_statistics, inception_score, mode_statistics
from gan_lightning.metrics.precision_recall import prdc
from gan_lightning.metrics.two_sample import mmd, one_nn_accuracy

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
    "mmd",
    "mode_statistics",
    "ndb",
    "one_nn_accuracy",
    "prdc",
]
