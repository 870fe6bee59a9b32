"""Image files to uint8 tensors: listing, centre crop and resize (shared by the folder datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gan_lightning.registry import ConfigError, first_line

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def crop_resize(im: PILImage, size: int, crop: int = 0) -> np.ndarray:
    """PIL image -> (C, size, size) uint8: the centred square of side ``crop`` pixels (0: the
    largest one), resized to ``size`` (bicubic, antialiased when shrinking)."""
    from PIL import Image

    w, h = im.size
    c = min(w, h) if crop <= 0 else min(crop, w, h)
    left, top = (w - c) // 2, (h - c) // 2
    im = im.crop((left, top, left + c, top + c))
    if c != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    a = np.asarray(im)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


class BadImageError(ConfigError):
    """An image file that cannot be decoded (corrupt, truncated, not an image)."""


def read_image(path: Path) -> PILImage:
    """The decoded PIL image of ``path``, or BadImageError naming the file."""
    from PIL import Image

    try:
        im = Image.open(path)
        im.load()  # decode now (and close the file): a truncated file fails here, not in a resize
        return im
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(
            f"{path} is not a readable image ({first_line(e)}): replace it with a whole copy or delete it"
        ) from None


def eight_bit(im: PILImage) -> PILImage:
    """A 16-bit grey image (PIL modes I;16*, or I as 16-bit PNGs open) scaled to 8 bits (v / 257,
    rounded); PIL's own convert clips values above 255 to white. Other images as they are."""
    if not (im.mode.startswith("I;16") or im.mode == "I"):
        return im
    from PIL import Image

    a = np.asarray(im).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8), mode="L")


def open_image(path: Path, channels: int) -> PILImage:
    """``path`` decoded as grey (channels 1) or RGB (16-bit images scaled to 8 bits); BadImageError
    when it cannot be read."""
    return eight_bit(read_image(path)).convert("L" if channels == 1 else "RGB")


def load_images(files: list[Path], size: int, channels: int, crop: int = 0) -> Tensor:
    """uint8 (N, C, size, size) from image files."""
    return torch.from_numpy(np.stack([crop_resize(open_image(f, channels), size, crop) for f in files]))
