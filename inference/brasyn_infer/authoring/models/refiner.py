"""The 3D Refiner of the BraSyn 2024 winner (docs/design.md §6), written from the paper.

Input ``x`` ``(B, 4, D, H, W)``: channel ``m`` (the missing modality's index) holds the generator's
synthesized volume, the other three the available modalities, each z-scored over its nonzero voxels.
Four modality-specific 3D U-Net encoders map each channel to ``C`` features. The synthesized
modality's features are refined by element-wise cross-attention with each available modality in
turn (fixed order t1c, t1n, t2f, t2w, skipping ``m``):
``Attn = exp(-|Q - K|) * V``, ``F' = F + Attn``, ``F'' = F' + FF(F')`` (1x1x1 convs, per voxel).
A decoder of 3x3x3 convs and a final 1x1x1 conv produces a residual added to the synthesized input.
The selection by ``m`` is done with one-hot masks, so one traced graph serves every missing modality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

NUM_MODALITIES = 4


@dataclass(frozen=True)
class RefinerConfig:
    width: int = 64  #: C: encoder channels, query/key/value channels (64 in the paper)
    levels: int = 2  #: U-Net resolution levels per encoder (each halves the size)
    decoder_convs: int = 2  #: 3x3x3 convs before the final 1x1x1

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1)
        self.norm2 = _norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(x)))


class UNet3D(nn.Module):
    """One channel in, ``width`` feature channels out at full resolution (sizes divisible by 2**levels)."""

    def __init__(self, width: int, levels: int) -> None:
        super().__init__()
        self.down = nn.ModuleList([ConvBlock(1 if i == 0 else width, width) for i in range(levels)])
        self.bottom = ConvBlock(width, width)
        self.up = nn.ModuleList([ConvBlock(2 * width, width) for _ in range(levels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool3d(x, 2)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], dim=1))
        return x


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, D, H, W)``: each voxel's C-vector normalized."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
        shape = (1, -1, 1, 1, 1)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


class ElementwiseCrossAttention(nn.Module):
    """``F'' = F' + FF(F')`` with ``F' = F + exp(-|Q - K|) * V``; Q from F, K and V from the source."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm_q = ChannelLayerNorm(width)
        self.norm_kv = ChannelLayerNorm(width)
        self.query = nn.Conv3d(width, width, 1)
        self.key = nn.Conv3d(width, width, 1)
        self.value = nn.Conv3d(width, width, 1)
        self.ff = nn.Sequential(nn.Conv3d(width, width, 1), nn.SiLU(), nn.Conv3d(width, width, 1))

    def forward(self, f: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        q = self.query(self.norm_q(f))
        kv = self.norm_kv(source)
        f = f + torch.exp(-(q - self.key(kv)).abs()) * self.value(kv)
        return f + self.ff(f)


class Refiner(nn.Module):
    """``forward(x, missing) -> refined`` with ``x`` ``(B, 4, D, H, W)`` and ``missing`` ``(B,)`` float index."""

    def __init__(self, cfg: RefinerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or RefinerConfig()
        width = self.cfg.width
        self.encoders = nn.ModuleList([UNet3D(width, self.cfg.levels) for _ in range(NUM_MODALITIES)])
        self.attention = nn.ModuleList([ElementwiseCrossAttention(width) for _ in range(NUM_MODALITIES)])
        layers: list[nn.Module] = []
        for _ in range(self.cfg.decoder_convs):
            layers += [nn.Conv3d(width, width, 3, padding=1), _norm(width), nn.SiLU()]
        final = nn.Conv3d(width, 1, 1)
        nn.init.zeros_(final.weight)  # starts as the identity: refining never begins by doing harm
        nn.init.zeros_(final.bias)
        layers.append(final)
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(missing.long(), NUM_MODALITIES).to(x.dtype)  # (B, 4)
        sel = [onehot[:, i].view(-1, 1, 1, 1, 1) for i in range(NUM_MODALITIES)]
        feats = [enc(x[:, i : i + 1]) for i, enc in enumerate(self.encoders)]
        f = sum(s * feat for s, feat in zip(sel, feats, strict=True))
        synthesized = sum(s * x[:, i : i + 1] for i, s in enumerate(sel))
        for j in range(NUM_MODALITIES):  # fixed order; the synthesized modality itself is skipped
            f = sel[j] * f + (1 - sel[j]) * self.attention[j](f, feats[j])
        return synthesized + self.decoder(f)
