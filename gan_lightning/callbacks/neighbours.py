"""Generated samples beside their nearest training images (feature space) and the memorisation
signal of ``metrics.neighbours``, at the end of training."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from gan_lightning.callbacks.run import RunState
from gan_lightning.callbacks.samples import log_image, save_grid, to_unit
from gan_lightning.data import MissingDataError
from gan_lightning.metrics.evaluator import Evaluator
from gan_lightning.metrics.neighbours import closer_than_data_share, nearest
from gan_lightning.metrics.precision_recall import kth_neighbour_radii
from gan_lightning.metrics.reference import choose


def neighbour_report(
    evaluator: Evaluator, model: Any, n: int = 2000, rows: int = 8, k: int = 3, seed: int = 99
) -> tuple[dict[str, float], torch.Tensor]:
    """({'nn/share': generated, 'nn/share_test': held-out real, where there is a test split}, grid images in
    [0, 1]). The training images are those the model trained on (``training_split``: a ``data.subset``
    included), the held-out ones the test split, whatever ``metrics.ref_split`` the other metrics compare with."""
    train_images, train_feats = training_images_and_features(evaluator)
    radii = kth_neighbour_radii(train_feats.double(), 1)
    samples = model.sample(n, generator=torch.Generator().manual_seed(seed))
    fake_feats = evaluator.extract(samples)["feats"]
    values = {"nn/share": closer_than_data_share(fake_feats, train_feats, radii)}
    try:
        test_images, _ = evaluator.datamodule.split(train=False)
    except MissingDataError as e:  # e.g. a CelebA folder without its partition file: all of it is training data
        print(f"[neighbours] no held-out share (nn/share_test): {e}", file=sys.stderr)
    else:
        test_feats = evaluator.extract(test_images[:n].float() / 127.5 - 1)["feats"]
        values["nn/share_test"] = closer_than_data_share(test_feats, train_feats, radii)
    _, idx = nearest(fake_feats[:rows], train_feats, k=k)
    tiles = []
    for r in range(rows):
        tiles.append(to_unit(samples[r : r + 1].cpu().float()))
        tiles.append(train_images[idx[r]].float() / 255)
    return values, torch.cat(tiles)


def training_images_and_features(evaluator: Evaluator) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images, features) of up to ``n_ref`` images the model trained on (a seeded subset): the reference's
    own when it is those images (the training split, no ``data.subset``), else extracted here."""
    dm = evaluator.datamodule
    if evaluator.ref_split == "train" and not getattr(dm.dcfg, "subset", 0):
        return evaluator.reference_images(), evaluator.reference.feats
    images, _ = dm.training_split() if hasattr(dm, "training_split") else dm.split(train=True)
    images = images[choose(len(images), evaluator.n_ref)]
    return images, evaluator.extract(images.float() / 127.5 - 1)["feats"]


class NearestNeighbours(L.Callback):
    def __init__(self, evaluator: Evaluator, run_dir: Path, steps: int, state: RunState, n: int = 2000):
        self.evaluator, self.dir, self.steps, self.state, self.n = evaluator, Path(run_dir) / "samples", steps, state, n

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.evaluator.to(pl_module.device)  # prepared before the fit: follow the model's device

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if int(pl_module.g_step) < self.steps or not trainer.is_global_zero or pl_module.info.kind != "image":
            return
        t0 = time.perf_counter()
        step = int(pl_module.g_step)
        values, tiles = neighbour_report(self.evaluator, pl_module, self.n)
        grid = save_grid(tiles, self.dir / f"neighbours_step_{step:07d}.png", nrow=4)
        log_image(trainer, "neighbours", grid, step)
        self.state.record(step, values, {}, None)
        self.state.eval_s += time.perf_counter() - t0
        pl_module.publish_metrics(values)
