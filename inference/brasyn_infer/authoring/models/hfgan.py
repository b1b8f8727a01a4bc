"""HFGAN, the BraSyn25 multi-encoder 2D generator, described in docs/design.md §4.

The parameter names follow the published checkpoints exactly, so that their ``state_dict``
(with the leading ``module.`` stripped) loads with ``strict=True``. The per-sample fusion of the
reference is vectorized with an availability mask (docs/design.md §4, fusion), so one traced graph serves
any missing modality and any batch size.

Tensors are ``(B, C, H, W)``; the generator's input is ``(B, 4, 240, 240)`` in the channel order
t1c, t1n, t2f, t2w, normalized, with the missing channel at the normalization's fill (-1 for the published checkpoints and ours).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from brasyn_infer.authoring.models.hfgan_layers import (
    LN_EPS,
    NUM_MODALITIES,
    TOKENS_SIDE,
    CHattnblock,
    Embeddings,
    Encoder,
    FlashAttentionBlock,
    GroupNorm,
    ResnetBlock,
    TransformerBlock,
    UpSample,
    index_embedding,
    tokens_to_map,
)


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
# encoder fusion and infusers (docs/design.md)


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
            if level == 0:  # h[0] is never read by the decoder (docs/design.md §4, decoder)
                skips.append(early)
                continue
            chunks = torch.chunk(h_mid[level], NUM_MODALITIES, dim=1)
            fused = torch.zeros_like(early)
            for i in range(NUM_MODALITIES):
                fused = fused + (m[i] * chunks[i]) / k
            skips.append(fused + gate * early)
        return features, skips


class ModalityInfuser(nn.Module):
    """Config A: tokens + embedding of the missing-modality index, 4 transformer blocks."""

    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        width = cfg.width
        self.modality_embedding = index_embedding(width)
        self.embedding = Embeddings(width)
        self.layers = nn.ModuleList([TransformerBlock(width, cfg.num_heads) for _ in range(cfg.n_layers)])
        self.encoder_norm = nn.LayerNorm(width, eps=LN_EPS)

    def forward(self, x: torch.Tensor, missing: torch.Tensor, view: torch.Tensor,
                origin: torch.Tensor | None = None) -> torch.Tensor:
        h = self.modality_embedding(missing).unsqueeze(1) + self.embedding(x, origin)
        for layer in self.layers:
            h = layer(h)
        return tokens_to_map(self.encoder_norm(h), _side(x, origin))


class ModalityViewInfuser(nn.Module):
    """Config B: as A plus an embedding of the view id (0 axial, 1 sagittal, 2 coronal)."""

    def __init__(self, cfg: HFGANConfig) -> None:
        super().__init__()
        width = cfg.width
        self.modality_embedding = index_embedding(width)
        self.view_embedding = index_embedding(width)
        self.embedding = Embeddings(width)
        self.transformer = nn.Sequential(*[FlashAttentionBlock(width, cfg.num_heads) for _ in range(cfg.n_layers)])
        self.encoder_norm = nn.LayerNorm(width, eps=LN_EPS)

    def forward(self, x: torch.Tensor, missing: torch.Tensor, view: torch.Tensor,
                origin: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embedding(x, origin)
        h = h + self.modality_embedding(missing).unsqueeze(1)
        h = h + self.view_embedding(view).unsqueeze(1)
        return tokens_to_map(self.encoder_norm(self.transformer(h)), _side(x, origin))


def _side(x: torch.Tensor, origin: torch.Tensor | None) -> tuple[int, int]:
    """The token grid: 15x15 (static, for export) for whole planes, the feature map's own size for crops."""
    return (TOKENS_SIDE, TOKENS_SIDE) if origin is None else (int(x.shape[-2]), int(x.shape[-1]))


# ---------------------------------------------------------------------------------------------
# decoder and the whole generator (docs/design.md §4)


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
        x: ``(B, 4, 240, 240)`` float32, normalized, missing channel at the fill value (-1 for the published ones).
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
        self, x: torch.Tensor, mask: torch.Tensor, missing: torch.Tensor, view: torch.Tensor,
        origin: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``origin``: training on crops only (see :class:`~.hfgan_layers.Embeddings`)."""
        features, skips = self.encoder(x, mask)
        z = self.middle(features, missing, view, origin)
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
