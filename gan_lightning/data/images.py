"""Image files to uint8 tensors: listing, centre crop and resize (shared by the folder datasets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def crop_resize(im, size: int, crop: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """PIL image -> (C, size, size) uint8: the centred square of side ``crop`` pixels (0: the
    largest one), resized to ``size`` (bicubic, antialiased when shrinking)."""
    from PIL import Image

    w, h = im.size
    c = min(w, h) if crop <= 0 else min(crop, w, h)
    left, top = (w - c) // 2, (h - c) // 2
    im = im.crop((left, top, left + c, top + c))
    if c != size:
        im = im.resize((size, size), Image.BICUBIC)
    a = np.asarray(im)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def open_image(path: Path, channels: int):  # type: ignore[no-untyped-def]
    from PIL import Image

    return Image.open(path).convert("L" if channels == 1 else "RGB")


def load_images(files: list[Path], size: int, channels: int, crop: int = 0) -> Tensor:
    """uint8 (N, C, size, size) from image files."""
    return torch.from_numpy(np.stack([crop_resize(open_image(f, channels), size, crop) for f in files]))
