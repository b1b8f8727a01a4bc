"""Intensity normalization and its inverse, as the weights' manifest declares (spec sections 4-5).

Volumes are ``(X, Y, Z)`` arrays as nibabel loads them; the stacked model input is
``(4, X, Y, Z)`` float32 in the channel order of :data:`~inference.constants.MODALITIES`.
Background is exactly ``-1`` in normalized units, in every scheme.

Schemes:

``brasyn25``
    The published checkpoints: clamp to ``[0, max_val]``, ``z = (x - mean) / std``, voxels whose
    clamped value is 0 become -1. De-normalization ``y * std + mean`` with the missing modality's
    constants.
``percentile``
    Our own models: per volume, ``s = P_q`` of the voxels > 0, ``z = 2 * clip(x / s, 0, 1) - 1``.
    The missing modality's scale is unknown; it is estimated as its reference scale times the
    geometric mean of the available modalities' ``s / reference``, so a scanner whose intensities
    are 10x lower gets an output 10x lower too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import BACKGROUND, BRASYN25_STATS, MODALITIES, Modality
from .errors import WeightsError


def normalize_fixed(x: np.ndarray, mean: float, std: float, max_val: float) -> np.ndarray:
    """BraSyn25: clamp to ``[0, max_val]``, z-score in float32, voxels <= 0 become -1."""
    mean32, std32 = np.float32(mean), np.float32(std)
    z = (np.clip(x, 0, max_val, dtype=np.float32) - mean32) / std32
    floor = (np.float32(0) - mean32) / std32
    z[z <= floor] = BACKGROUND
    return z


def denormalize_fixed(y: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Inverse z-score ``y * std + mean`` in float32, negatives to 0."""
    out = y * np.float32(std) + np.float32(mean)
    np.maximum(out, 0, out=out)
    return out


def foreground_percentile(x: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of the voxels > 0; 0.0 for an all-background volume."""
    fg = x[x > 0]
    return float(np.percentile(fg, q)) if fg.size else 0.0


def normalize_percentile(x: np.ndarray, scale: float) -> np.ndarray:
    """``2 * clip(x / scale, 0, 1) - 1``; voxels <= 0 are exactly -1."""
    if scale <= 0:
        return np.full(x.shape, BACKGROUND, dtype=np.float32)
    z = np.clip(np.asarray(x, dtype=np.float32) / np.float32(scale), 0, 1)
    z *= 2
    z -= 1
    return z


def denormalize_percentile(y: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of :func:`normalize_percentile` (without the clip), negatives to 0."""
    out = (y + np.float32(1)) * np.float32(scale / 2)
    np.maximum(out, 0, out=out)
    return out


def estimate_scale(scales: Mapping[Modality, float], reference: Mapping[str, float], target: Modality) -> float:
    """Target modality's scale: ``reference[target] * geomean(scales[m] / reference[m])``."""
    ratios = [scales[m] / reference[m.value] for m in scales if scales[m] > 0]
    if not ratios:
        return float(reference[target.value])
    return float(reference[target.value] * np.exp(np.mean(np.log(ratios))))


def background_mask(x4: np.ndarray, missing: Modality) -> np.ndarray:
    """``(X, Y, Z)`` bool: voxels where at least two of the three available channels are -1."""
    count = np.zeros(x4.shape[1:], dtype=np.uint8)
    for mod in MODALITIES:
        if mod is not missing:
            count += x4[mod.index] == BACKGROUND
    return count >= 2


@dataclass(frozen=True)
class Normalizer:
    """The manifest's ``normalization`` block, applied to whole cases."""

    scheme: str
    params: Mapping[str, Any]

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any]) -> Normalizer:
        scheme = block.get("scheme")
        if scheme == "brasyn25":
            stats = block.get("stats", BRASYN25_STATS)
            if set(stats) != {m.value for m in MODALITIES}:
                raise WeightsError("brasyn25 normalization needs stats for t1c, t1n, t2f, t2w")
            return cls(scheme, {"stats": stats})
        if scheme == "percentile":
            reference = block.get("reference_scale")
            if not reference or set(reference) != {m.value for m in MODALITIES}:
                raise WeightsError("percentile normalization needs reference_scale for t1c, t1n, t2f, t2w")
            return cls(scheme, {"percentile": float(block.get("percentile", 99.5)), "reference_scale": reference})
        raise WeightsError(f"unknown normalization scheme {scheme!r}", fix="use brasyn25 or percentile")

    def stack(self, volumes: Mapping[Modality, np.ndarray], missing: Modality | None) -> tuple[np.ndarray, dict[Modality, float]]:
        """Normalize the available volumes into a ``(4, X, Y, Z)`` float32 input, missing channel -1.

        With ``missing=None`` every given volume is normalized (complete cases, for dry runs).
        Returns the input and the per-modality scales (empty for ``brasyn25``) for :meth:`restore`.
        """
        shape = next(iter(volumes.values())).shape
        x4 = np.full((len(MODALITIES), *shape), BACKGROUND, dtype=np.float32)
        scales: dict[Modality, float] = {}
        for mod, vol in volumes.items():
            if mod is missing:
                continue
            if self.scheme == "brasyn25":
                s = self.params["stats"][mod.value]
                x4[mod.index] = normalize_fixed(vol, s["mean"], s["std"], s["max_val"])
            else:
                scales[mod] = foreground_percentile(vol, self.params["percentile"])
                x4[mod.index] = normalize_percentile(vol, scales[mod])
        return x4, scales

    def restore(self, y: np.ndarray, background: np.ndarray, missing: Modality, scales: Mapping[Modality, float]) -> np.ndarray:
        """De-normalize the synthesized ``(X, Y, Z)`` volume in place: background -1, then the inverse, then >= 0."""
        y[background] = BACKGROUND
        if self.scheme == "brasyn25":
            s = self.params["stats"][missing.value]
            return denormalize_fixed(y, s["mean"], s["std"])
        scale = estimate_scale(scales, self.params["reference_scale"], missing)
        return denormalize_percentile(y, scale)
