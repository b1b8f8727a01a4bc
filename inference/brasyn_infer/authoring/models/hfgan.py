"""HFGAN, the BraSyn25 multi-encoder 2D generator, written from ``shared/spec/hfgan.md``.

The parameter names follow the published checkpoints exactly, so that their ``state_dict``
(with the leading ``module.`` stripped) loads with ``strict=True``. The per-sample fusion of the
reference is vectorized with an availability mask (spec section 3.1), so one traced graph serves
any missing modality and any batch size.

Tensors are ``(B, C, H, W)``; the generator's input is ``(B, 4, 240, 240)`` in the channel order
t1c, t1n, t2f, t2w, normalized, with the missing channel at -1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NUM_MODALITIES = 4
TOKENS_SIDE = 15  # 240 / 2**4
LN_EPS = 1e-6


@dataclass(frozen=True)
class HFGANConfig:
    """Architecture of one HFGAN; the published runs are config A (``infuse_view=False``) and B."""

    dim: int = 64
    num_inputs: int = 4
    num_outputs: int = 1
    dim_mults: tuple[int, ...] = (1, 2, 4, 8, 10)
    n_layers: int = 4
    skip: bool = True
    blocks: bool = False
    grouped_encoder: bool = True
    infuse_view: bool = False
    num_heads: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HFGANConfig:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "dim_mults" in kwargs:
            kwargs["dim_mults"] = tuple(kwargs["dim_mults"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        data["dim_mults"] = list(self.dim_mults)
        return data

    @property
    def width(self) -> int:
        """``E``: the bottleneck and transformer width."""
        return self.dim * self.dim_mults[-1]


def config_preset(name: str, dim: int = 64) -> HFGANConfig:
    """The two published layouts: ``A`` (run 24) and ``B`` (run 25, with view infusion)."""
    if name.upper() == "A":
        return HFGANConfig(dim=dim, infuse_view=False)
    if name.upper() == "B":
        return HFGANConfig(dim=dim, infuse_view=True)
    raise ValueError(f"unknown HFGAN config {name!r}: use A or B")


# ---------------------------------------------------------------------------------------------
# primitives (spec section 1)

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
# encoders and fusion (spec sections 2-3)


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


class HFEncoderGrouped(nn.Module):
    """Early (shared) encoder + grouped per-modality encoder, fused by channel attention."""

    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        width = cfg.width
        self.encoder_early = Encoder(cfg.dim, cfg.num_inputs, cfg.dim_mults, cfg.blocks, groups=1)
        self.encoder_middles = Encoder(cfg.dim, cfg.num_inputs, cfg.dim_mults, cfg.blocks, groups=NUM_MODALITIES)
        self.attn_blocks = nn.ModuleList([CHattnblock(width) for _ in range(NUM_MODALITIES + 1)])
        self.conv1 = nn.Conv2d(2 * width, width, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``mask`` is ``(B, 4)`` float in {0, 1}, at least one 1 per row (checked by the caller)."""
        batch = x.shape[0]
        x_early, h_early = self.encoder_early(x)
        x_mid, h_mid = self.encoder_middles(x)
        xs = torch.chunk(x_mid, NUM_MODALITIES, dim=1)
        attn = [self.attn_blocks[i](xs[i]) for i in range(NUM_MODALITIES)]
        attn_early = self.attn_blocks[NUM_MODALITIES](x_early)

        k = mask.sum(dim=1).view(-1, 1, 1, 1)
        gate = (k >= 2).to(x.dtype)
        many = gate > 0
        k = k.clamp(min=1.0)
        m = [mask[:, i].view(-1, 1, 1, 1) for i in range(NUM_MODALITIES)]

        # Bottleneck: channel-0 scalar weights when k >= 2, the full vector when k == 1 (quirk 1).
        s = torch.zeros_like(x_early)
        for i in range(NUM_MODALITIES):
            a_i = torch.where(many, attn[i][:, 0:1], attn[i])
            s = s + m[i] * a_i * xs[i]
        s = s + gate * attn_early * x_early

        logits = torch.stack([a[:, 0:1] for a in attn], dim=1)  # (B, 4, 1, 1, 1)
        logits = logits.masked_fill(mask.view(batch, NUM_MODALITIES, 1, 1, 1) == 0, float("-inf"))
        p = torch.softmax(logits, dim=1)
        hh = torch.zeros_like(x_early)
        for i in range(NUM_MODALITIES):
            hh = hh + p[:, i] * xs[i]
        hh = hh + gate * x_early
        features = self.conv1(torch.cat([s, hh], dim=1))

        skips: list[torch.Tensor] = []
        for level, early in enumerate(h_early):
            if level == 0:  # h[0] is never read by the decoder (spec section 6)
                skips.append(early)
                continue
            chunks = torch.chunk(h_mid[level], NUM_MODALITIES, dim=1)
            fused = torch.zeros_like(early)
            for i in range(NUM_MODALITIES):
                fused = fused + (m[i] * chunks[i]) / k
            skips.append(fused + gate * early)
        return features, skips


# ---------------------------------------------------------------------------------------------
# infusers (spec sections 4-5)


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


def _index_embedding(width: int) -> nn.Sequential:
    return nn.Sequential(SinusoidalEmbedding(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))


class Embeddings(nn.Module):
    """1x1 patch conv, flatten to 225 tokens (row-major), add learned positions."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.patch_embeddings = nn.Conv2d(width, width, 1)
        self.position_embeddings = nn.Parameter(torch.zeros(1, TOKENS_SIDE * TOKENS_SIDE, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embeddings(x).flatten(2).transpose(1, 2) + self.position_embeddings


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


def _tokens_to_map(h: torch.Tensor) -> torch.Tensor:
    return h.transpose(1, 2).reshape(-1, h.shape[-1], TOKENS_SIDE, TOKENS_SIDE)


class ModalityInfuser(nn.Module):
    """Config A: tokens + embedding of the missing-modality index, 4 transformer blocks."""

    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        width = cfg.width
        self.modality_embedding = _index_embedding(width)
        self.embedding = Embeddings(width)
        self.layers = nn.ModuleList([TransformerBlock(width, cfg.num_heads) for _ in range(cfg.n_layers)])
        self.encoder_norm = nn.LayerNorm(width, eps=LN_EPS)

    def forward(self, x: torch.Tensor, missing: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        h = self.modality_embedding(missing).unsqueeze(1) + self.embedding(x)
        for layer in self.layers:
            h = layer(h)
        return _tokens_to_map(self.encoder_norm(h))


class ModalityViewInfuser(nn.Module):
    """Config B: as A plus an embedding of the view id (0 axial, 1 sagittal, 2 coronal)."""

    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        width = cfg.width
        self.modality_embedding = _index_embedding(width)
        self.view_embedding = _index_embedding(width)
        self.embedding = Embeddings(width)
        self.transformer = nn.Sequential(*[FlashAttentionBlock(width, cfg.num_heads) for _ in range(cfg.n_layers)])
        self.encoder_norm = nn.LayerNorm(width, eps=LN_EPS)

    def forward(self, x: torch.Tensor, missing: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x)
        h = h + self.modality_embedding(missing).unsqueeze(1)
        h = h + self.view_embedding(view).unsqueeze(1)
        return _tokens_to_map(self.encoder_norm(self.transformer(h)))


# ---------------------------------------------------------------------------------------------
# decoder and the whole generator (spec sections 6-7)


class Decoder(nn.Module):
    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        d = cfg.dim
        chans = [d * m for m in cfg.dim_mults]  # d, 2d, 4d, 8d, 10d
        self.ups = nn.ModuleList()
        x_ch = cfg.width
        for stage in range(len(chans) - 1):
            skip_ch = chans[-1 - stage]
            out_ch = chans[-2 - stage]
            self.ups.append(
                nn.ModuleList([ResnetBlock(x_ch + skip_ch, out_ch, cfg.blocks), UpSample(out_ch)])
            )
            x_ch = out_ch
        self.conv_final = nn.Sequential(
            ResnetBlock(d, d, cfg.blocks), GroupNorm(8, d), nn.SiLU(), nn.Conv2d(d, cfg.num_outputs, 1)
        )

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = z
        for stage, (resblock, up) in enumerate(self.ups):  # type: ignore[misc]
            x = up(resblock(torch.cat([x, skips[-1 - stage]], dim=1)))
        return self.conv_final(x)


class HFGAN(nn.Module):
    """The generator. ``forward(x, mask, missing, view) -> y``.

    Args:
        x: ``(B, 4, 240, 240)`` float32, normalized, missing channel at -1.
        mask: ``(B, 4)`` float32, 1 for an available modality (the fusion's ``avail_modals``).
        missing: ``(B,)`` float32 index 0..3 of the modality to synthesize.
        view: ``(B,)`` float32 view id (0 axial, 1 sagittal, 2 coronal); used by config B only.

    Returns:
        ``(B, 1, 240, 240)`` float32 in normalized units (no final activation).
    """

    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        if not cfg.grouped_encoder:
            raise ValueError("only the grouped encoder (configs A and B) is implemented")
        if not cfg.skip:
            raise ValueError("only skip=True (configs A and B) is implemented")
        self.cfg = cfg
        self.encoder = HFEncoderGrouped(cfg)
        self.middle = ModalityViewInfuser(cfg) if cfg.infuse_view else ModalityInfuser(cfg)
        self.decoder = Decoder(cfg)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, missing: torch.Tensor, view: torch.Tensor
    ) -> torch.Tensor:
        features, skips = self.encoder(x, mask)
        z = self.middle(features, missing, view)
        return self.decoder(z, skips)


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the first ``module.`` of each key, as the published checkpoints carry it."""
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors; only safetensors are read (never pickle, which can run code)."""
    from safetensors.torch import load_file

    from brasyn_infer.errors import WeightsError

    try:
        return load_file(path)
    except Exception as error:  # SafetensorError, OSError: not a safetensors file
        raise WeightsError(f"not a readable safetensors file ({error})", path,
                           "convert the checkpoint to .safetensors; pickle (.pth/.pt) files are never loaded") from error


def load_checkpoint(path: str, cfg: HFGANConfig) -> HFGAN:
    """Build an HFGAN and load a safetensors checkpoint strictly."""
    net = HFGAN(cfg)
    net.load_state_dict(strip_module_prefix(read_safetensors(path)), strict=True)
    return net.eval()
