"""HFGAN's building blocks (docs/design.md, "The generator"): pre-activation conv blocks, the encoders and
their channel-attention fusion, the transformer blocks of the modality infusers. Tensors are ``(B, C, H, W)``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

NUM_MODALITIES = 4
TOKENS_SIDE = 15  # 240 / 2**4
LN_EPS = 1e-6


# ---------------------------------------------------------------------------------------------
# blocks (docs/design.md §4)

_TWO_PASS_NORM = False


@contextlib.contextmanager
def onnx_friendly() -> Iterator[None]:
    """While exporting: GroupNorm as an explicit two-pass mean/variance (see :class:`GroupNorm`)."""
    global _TWO_PASS_NORM
    previous, _TWO_PASS_NORM = _TWO_PASS_NORM, True
    try:
        yield
    finally:
        _TWO_PASS_NORM = previous


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters) that can trace as an explicit two-pass mean/variance.

    The opset-17 export (reshape + InstanceNormalization) loses precision in ONNX Runtime on MRI
    slices: 6e-4 off a float64 reference after one norm, where torch is 3e-6 off, because the
    statistics of 57,600 values per group are accumulated in float32. Reducing in two stages
    (rows, then the rest) with a centered variance keeps ONNX close to torch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _TWO_PASS_NORM:
            return super().forward(x)
        # (B, G, C/G * H, W): mean over W, then over the rest; a one-axis mean of C/G*H*W values
        # accumulates float32 rounding in ONNX Runtime's reduction.
        grouped = x.reshape(x.shape[0], self.num_groups, -1, x.shape[-1])
        centered = grouped - grouped.mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)
        var = (centered * centered).mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)
        y = (centered / torch.sqrt(var + self.eps)).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)



class Block(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv (pre-activation)."""

    def __init__(self, cin: int, cout: int, num_groups: int = 8, groups: int = 1) -> None:
        super().__init__()
        self.norm = GroupNorm(num_groups * groups, cin)
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.silu(self.norm(x)))


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, use_second_block: bool, groups: int = 1) -> None:
        super().__init__()
        self.block1 = Block(cin, cout, groups=groups)
        self.block2 = Block(cout, cout, groups=groups) if use_second_block else nn.Identity()
        self.res_conv = nn.Conv2d(cin, cout, 1, groups=groups) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)) + self.res_conv(x)


class DownSample(nn.Module):
    """Zero-pad one column right and one row bottom, then a 3x3 stride-2 conv: H -> H // 2."""

    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), value=0.0))


class UpSample(nn.Module):
    """Nearest x2, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class CHattnblock(nn.Module):
    """Channel attention map ``(B, C, 1, 1)`` in (0, 1); the caller multiplies."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attn = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels, 1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


# ---------------------------------------------------------------------------------------------
# encoders (docs/design.md §4)


class Encoder(nn.Module):
    """Five resolution levels; with ``groups=4`` it is four independent per-modality encoders."""

    def __init__(self, dim: int, num_inputs: int, dim_mults: tuple[int, ...], blocks: bool, groups: int):
        super().__init__()
        self.conv_initial = nn.Conv2d(num_inputs, dim * groups, 3, padding=1, groups=groups)
        chans = [dim * groups] + [dim * groups * m for m in dim_mults]
        self.downs = nn.ModuleList()
        for level in range(len(dim_mults)):
            last = level == len(dim_mults) - 1
            self.downs.append(
                nn.ModuleList(
                    [
                        ResnetBlock(chans[level], chans[level + 1], blocks, groups=groups),
                        nn.Identity() if last else DownSample(chans[level + 1], groups=groups),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.conv_initial(x)
        skips: list[torch.Tensor] = []
        for resblock, down in self.downs:  # type: ignore[misc]
            x = resblock(x)
            skips.append(x)
            x = down(x)
        return x, skips


# ---------------------------------------------------------------------------------------------
# embeddings and transformer blocks of the infusers (docs/design.md §4)


class SinusoidalEmbedding(nn.Module):
    """``concat(sin(t * f), cos(t * f))`` with ``f_j = exp(-j ln(10000) / (half - 1))``; no parameters."""

    def __init__(self, width: int) -> None:
        super().__init__()
        half = width // 2
        scale = math.log(10000) / (half - 1)
        freq = torch.exp(torch.arange(half, dtype=torch.float32) * -scale)
        self.register_buffer("freq", freq, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.to(torch.float32)[:, None] * self.freq[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


def index_embedding(width: int) -> nn.Sequential:
    return nn.Sequential(SinusoidalEmbedding(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))


class Embeddings(nn.Module):
    """1x1 patch conv, flatten to 225 tokens (row-major), add learned positions.

    Training on crops: ``origin`` ``(B, 2)`` long gives each crop's top-left corner in tokens (pixels / 16) in the
    full 15x15 grid, and each crop's tokens get the positions of that part of the grid; the crop's side must be a
    multiple of 16. ``origin=None`` (inference, export): the whole plane.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.patch_embeddings = nn.Conv2d(width, width, 1)
        self.position_embeddings = nn.Parameter(torch.zeros(1, TOKENS_SIDE * TOKENS_SIDE, width))

    def forward(self, x: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.patch_embeddings(x).flatten(2).transpose(1, 2)
        if origin is None:
            return tokens + self.position_embeddings
        rows = origin[:, 0, None, None] + torch.arange(x.shape[-2], device=x.device)[None, :, None]
        cols = origin[:, 1, None, None] + torch.arange(x.shape[-1], device=x.device)[None, None, :]
        index = (rows * TOKENS_SIDE + cols).reshape(x.shape[0], -1)  # (B, h * w)
        return tokens + self.position_embeddings[0][index]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention on ``(B, T, E)``, head-major channel split."""
    batch, tokens, width = q.shape
    dh = width // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, tokens, heads, dh).permute(0, 2, 1, 3)

    scores = torch.matmul(split(q), split(k).transpose(-1, -2)) / math.sqrt(dh)
    ctx = torch.matmul(torch.softmax(scores, dim=-1), split(v))
    return ctx.permute(0, 2, 1, 3).reshape(batch, tokens, width)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(_attention(self.query(x), self.key(x), self.value(x), self.heads))


class Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Config A's pre-norm block: SiLU MLP, separate q/k/v (dropout is the identity in eval)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(width, eps=LN_EPS)
        self.ffn_norm = nn.LayerNorm(width, eps=LN_EPS)
        self.ffn = Mlp(width)
        self.attn = Attention(width, heads)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.attention_norm(h))
        return h + self.ffn(self.ffn_norm(h))


class PackedMHA(nn.Module):
    """``nn.MultiheadAttention``'s parameters (q|k|v rows in ``in_proj``), with exportable math."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return self.out_proj(_attention(q, k, v, self.heads))


class FlashAttentionBlock(nn.Module):
    """Config B's pre-norm block: GELU (erf) MLP, packed MHA, no dropout."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(width, eps=LN_EPS)
        self.mha = PackedMHA(width, heads)
        self.ffn = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.mha(self.norm1(h))
        return h + self.ffn(self.norm2(h))


def tokens_to_map(h: torch.Tensor, side: tuple[int, int] = (TOKENS_SIDE, TOKENS_SIDE)) -> torch.Tensor:
    """``(B, T, E)`` tokens back to the ``(B, E, rows, cols)`` map (static 15x15 unless a crop's ``side``)."""
    return h.transpose(1, 2).reshape(-1, h.shape[-1], *side)
