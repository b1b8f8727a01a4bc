"""The embedded tumor segmenter: a 2D U-Net as in GANET-SEG's segmentation module (paper 003; docs/design.md §7).

``UNet2D.forward(x) -> logits``: ``x`` ``(B, C_in, H, W)`` (2.5D slices, :mod:`brasyn_infer.segmentation.preprocess`),
``logits`` ``(B, 4, H, W)`` over the classes 0 background, 1 NCR, 2 ED, 3 ET. ``H`` and ``W`` must be multiples of
``2 ** (len(widths) - 1)``. Each stage is two 3x3 convolutions with instance norm and ReLU; the encoder halves by
max-pooling, the decoder doubles by a transposed 2x2 convolution and concatenates the skip connection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

ARCHITECTURE = "unet2d-seg"


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 12  #: 4 modalities x (2 context + 1) slices
    classes: int = 4
    widths: tuple[int, ...] = field(default=(16, 32, 64, 128, 192))

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        return cls(int(data["in_channels"]), int(data["classes"]), tuple(int(w) for w in data["widths"]))

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (len(self.widths) - 1)


def stage(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by instance norm (affine) and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.down = nn.ModuleList([stage(cfg.in_channels, w[0])] + [stage(w[i - 1], w[i]) for i in range(1, len(w))])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i], w[i - 1], 2, stride=2) for i in range(len(w) - 1, 0, -1)])
        self.merge = nn.ModuleList([stage(2 * w[i - 1], w[i - 1]) for i in range(len(w) - 1, 0, -1)])
        self.head = nn.Conv2d(w[0], cfg.classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
