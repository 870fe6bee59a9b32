"""SimGAN's nets (Shrivastava et al. 2017): a fully convolutional ResNet refiner that keeps the
image size, and a discriminator whose output is a probability map over local patches.

Refiner (the paper's eye-gaze net): a 3x3 conv to ``width`` (64) feature maps, ``blocks`` (4)
ResNet blocks of two 3x3 convs, a 1x1 conv to the image channels; tanh keeps the model's [-1, 1]
range (our addition). Discriminator (the paper's, widths 96-64-32-32 at ``width`` = 64):
3x3 stride-2 conv, 3x3 stride-2 conv, 3x3 stride-1 max-pool, 3x3 conv, 1x1 conv, 1x1 conv to the
patch map; the paper's 2-way softmax per patch is one logit per patch here (sigmoid in the loss).
Padding keeps the map at size / 4 (7x7 patches for 28x28 images); LeakyReLU (0.2) is our choice.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_lightning.nets.translation import ResidualBlock


class Refiner(nn.Module):
    """(N, C, H, W) -> (N, C_out, H, W), any H, W."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int = 4, width: int = 64, norm: str = "none"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1),
            nn.ReLU(True),
            *[ResidualBlock(width, norm) for _ in range(blocks)],
            nn.Conv2d(width, out_channels, 1),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LocalDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1, ceil(H/4), ceil(W/4)) patch logits."""

    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        w96, w64, w32 = width * 3 // 2, width, max(1, width // 2)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w96, 3, 2, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(w96, w64, 3, 2, 1),
            nn.LeakyReLU(0.2, True),
            nn.MaxPool2d(3, 1, 1),
            nn.Conv2d(w64, w32, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(w32, w32, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(w32, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
