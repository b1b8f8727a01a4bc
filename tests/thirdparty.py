"""Third-party generator architectures, rebuilt from what their public code does (not copied), in torch.

Used to hold the "bring your own model" contract (docs/model-contract.md) against real designs:

- :class:`SIT3D`: the organizers' BraSyn 3D baseline generator (WinstonHuTiger/BraSyn_tutorial, its printed
  architecture): three stride-2 4x4x4 convolutions down (instance norm, ReLU), then three up stages, each
  a 1x1x1 convolution over the skip concatenation (none at the deepest), "dense shortcut" blocks of three
  3x3x3 convolution + instance norm + ReLU, and a stride-2 transposed convolution; the head is instance norm,
  ReLU, a 3x3x3 convolution to one channel and a sigmoid (so its normalization is min-max to [0, 1]). The
  block's output is its input plus the three convolutions' outputs (our reading of "dense shortcut").
  Our contract gives four channels (the missing one filled); the baseline took the three available ones, so
  this one zeroes the missing channel with the contract's ``missing`` input before its first layer.
- :class:`UNet2D`: the pix2pix U-Net generator that MM-GAN and ResViT build on: 4x4 stride-2
  convolutions down (LeakyReLU 0.2, instance norm), transposed convolutions up (ReLU, instance norm),
  skip concatenations, tanh output (min-max to [-1, 1]).

Both take the contract's inputs: ``x``, and for :class:`SIT3D` also ``missing``.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm3d(channels: int) -> nn.Module:
    return nn.InstanceNorm3d(channels, affine=False, track_running_stats=False)


class DenseShortcut3D(nn.Module):
    """Three 3x3x3 convolution + instance norm + ReLU; output: the input plus each convolution's output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv3d(channels, channels, 3, padding=1), _norm3d(channels), nn.ReLU()) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, y = x, x
        for block in self.blocks:
            y = block(y)
            out = out + y
        return out


class SIT3D(nn.Module):
    """The BraSyn tutorial's 3D generator shape (``ngf`` = 64 there; smaller here for CPU tests)."""

    def __init__(self, in_channels: int = 4, ngf: int = 8, head: int = 4) -> None:
        super().__init__()
        self.down = nn.ModuleList([
            nn.Sequential(nn.Conv3d(in_channels, ngf, 4, stride=2, padding=1), _norm3d(ngf), nn.ReLU()),
            nn.Sequential(nn.Conv3d(ngf, ngf, 4, stride=2, padding=1), _norm3d(ngf), nn.ReLU()),
            nn.Sequential(nn.Conv3d(ngf, ngf, 4, stride=2, padding=1), _norm3d(ngf), nn.ReLU()),
        ])

        def up(out_channels: int) -> nn.Sequential:
            return nn.Sequential(nn.ConvTranspose3d(ngf, out_channels, 3, stride=2, padding=1, output_padding=1),
                                 _norm3d(out_channels), nn.ReLU())

        self.deepest = nn.Sequential(DenseShortcut3D(ngf), _norm3d(ngf), nn.ReLU(), up(ngf))
        self.middle = nn.Sequential(nn.Conv3d(2 * ngf, ngf, 1), DenseShortcut3D(ngf), _norm3d(ngf), nn.ReLU(), up(ngf))
        self.last = nn.Sequential(nn.Conv3d(2 * ngf, ngf, 1), DenseShortcut3D(ngf), _norm3d(ngf), nn.ReLU(),
                                  DenseShortcut3D(ngf), _norm3d(ngf), nn.ReLU(), up(head))
        self.out = nn.Sequential(_norm3d(head), nn.ReLU(), nn.Conv3d(head, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        keep = 1 - nn.functional.one_hot(missing.long(), x.shape[1]).to(x.dtype)
        d1 = self.down[0](x * keep[:, :, None, None, None])
        d2 = self.down[1](d1)
        d3 = self.down[2](d2)
        u = self.deepest(d3)
        u = self.middle(torch.cat([u, d2], 1))
        u = self.last(torch.cat([u, d1], 1))
        return self.out(u)


class UNet2D(nn.Module):
    """pix2pix's U-Net generator (4 levels: 240 -> 15), instance norm, tanh output."""

    def __init__(self, in_channels: int = 4, ngf: int = 8, levels: int = 4) -> None:
        super().__init__()
        widths = [ngf * min(2**i, 8) for i in range(levels)]
        self.down = nn.ModuleList()
        previous = in_channels
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(previous, width, 4, stride=2, padding=1))
            if 0 < i < levels - 1:
                layers.append(nn.InstanceNorm2d(width))
            self.down.append(nn.Sequential(*layers))
            previous = width
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            source = widths[i] if i == levels - 1 else 2 * widths[i]
            target = 1 if i == 0 else widths[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(source, target, 4, stride=2, padding=1)]
            layers.append(nn.Tanh() if i == 0 else nn.InstanceNorm2d(target))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[0](skips[-1])
        for block, skip in zip(self.up[1:], reversed(skips[:-1]), strict=True):
            x = block(torch.cat([x, skip], 1))
        return x


def export_onnx(model: nn.Module, path, example: tuple[torch.Tensor, ...], names: list[str], dynamic_batch: bool = True,
                outputs: list[str] | None = None) -> None:
    """``torch.onnx.export`` as a participant would: named inputs, outputs (``y``), a dynamic batch axis."""
    model.eval()
    outputs = outputs or ["y"]
    axes = {name: {0: "batch"} for name in [*names, *outputs]} if dynamic_batch else None
    torch.onnx.export(model, example, str(path), input_names=names, output_names=outputs, dynamic_axes=axes,
                      opset_version=17, dynamo=False)
