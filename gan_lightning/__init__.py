"""gan_lightning: GAN experiments on PyTorch Lightning."""

__version__ = "0.1.0"
