"""Intensity normalization and its inverse, as the weights' manifest declares (docs/design.md §2).

Volumes are ``(X, Y, Z)`` arrays as nibabel loads them; the stacked model input is
``(4, X, Y, Z)`` float32 in the channel order of :data:`~brasyn_infer.constants.MODALITIES`.
Background is the scheme's ``fill`` in normalized units (-1 unless the manifest says otherwise).

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
``zscore``
    Per volume, over its voxels > 0: ``z = (x - mean) / std``. The missing modality's mean and std are
    estimated like the percentile scale: its reference (default: the BraSyn25 dataset statistics)
    times the geometric mean of the available modalities' ``mean / reference mean``.
``minmax``
    Per volume: ``z = lo + (hi - lo) * (x - min) / (max - min)`` with ``range: [lo, hi]`` (``[-1, 1]`` or
    ``[0, 1]``), min and max over the voxels > 0 (min taken as 0 for a skull-stripped volume). The missing
    modality's max is estimated from ``reference_max`` (default: the BraSyn25 ``max_val``), min is 0.

Every scheme puts ``fill`` (default -1; ``zscore``: 0; ``minmax``: ``lo``) in the background (voxels <= 0)
and in the missing channel; the pipeline's background (two of the three inputs background) is exactly 0 after
the inverse, whatever the fill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brasyn_infer.constants import BACKGROUND, BRASYN25_STATS, MODALITIES, Modality
from brasyn_infer.errors import WeightsError


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
    return float(reference[target.value] * geometric_ratio(scales, reference))


def background_mask(x4: np.ndarray, missing: Modality, fill: float = BACKGROUND,
                    absent: Sequence[Modality] = ()) -> np.ndarray:
    """``(X, Y, Z)`` bool: voxels where at least half of the available channels are ``fill`` (background): two of
    three, one of two, or the only one. ``absent``: modalities missing besides ``missing``."""
    available = [mod for mod in MODALITIES if mod is not missing and mod not in absent]
    count = np.zeros(x4.shape[1:], dtype=np.uint8)
    for mod in available:
        count += x4[mod.index] == np.float32(fill)
    return 2 * count.astype(np.int32) >= len(available)


def foreground_stats(x: np.ndarray) -> tuple[float, float]:
    """Mean and std (>= 1e-6) of the voxels > 0 (0, 1 for an all-background volume)."""
    fg = x[x > 0].astype(np.float64)
    return (float(fg.mean()), max(float(fg.std()), 1e-6)) if fg.size else (0.0, 1.0)


def geometric_ratio(values: Mapping[Modality, float], reference: Mapping[str, float]) -> float:
    """``geomean(values[m] / reference[m])`` over the positive values; 1.0 when there is none."""
    ratios = [values[m] / reference[m.value] for m in values if values[m] > 0]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0


#: schemes and their default fill value (background and missing channel)
SCHEMES = ("brasyn25", "percentile", "zscore", "minmax")


@dataclass(frozen=True)
class Normalizer:
    """The manifest's ``normalization`` block, applied to whole cases."""

    scheme: str
    params: Mapping[str, Any]
    #: value of the background and of the missing channel in normalized units
    fill: float = BACKGROUND

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any]) -> Normalizer:
        scheme = block.get("scheme")
        fill = block.get("fill")
        if scheme == "brasyn25":
            stats = block.get("stats", BRASYN25_STATS)
            if set(stats) != {m.value for m in MODALITIES}:
                raise WeightsError("brasyn25 normalization needs stats for t1c, t1n, t2f, t2w")
            return cls(scheme, {"stats": stats}, BACKGROUND if fill is None else float(fill))
        if scheme == "percentile":
            reference = block.get("reference_scale")
            if not reference or set(reference) != {m.value for m in MODALITIES}:
                raise WeightsError("percentile normalization needs reference_scale for t1c, t1n, t2f, t2w")
            return cls(scheme, {"percentile": float(block.get("percentile", 99.5)), "reference_scale": reference},
                       BACKGROUND if fill is None else float(fill))
        if scheme == "zscore":
            reference = block.get("reference", {m: {"mean": s["mean"], "std": s["std"]} for m, s in BRASYN25_STATS.items()})
            if set(reference) != {m.value for m in MODALITIES}:
                raise WeightsError("zscore normalization's reference needs mean and std for t1c, t1n, t2f, t2w")
            return cls(scheme, {"reference": reference}, 0.0 if fill is None else float(fill))
        if scheme == "minmax":
            lo, hi = (float(v) for v in block.get("range", (-1.0, 1.0)))
            if not hi > lo:
                raise WeightsError(f"minmax range {[lo, hi]} is empty", fix="use [-1, 1] or [0, 1]")
            reference = block.get("reference_max", {m: s["max_val"] for m, s in BRASYN25_STATS.items()})
            if set(reference) != {m.value for m in MODALITIES}:
                raise WeightsError("minmax normalization's reference_max needs t1c, t1n, t2f, t2w")
            return cls(scheme, {"range": (lo, hi), "reference_max": reference}, lo if fill is None else float(fill))
        raise WeightsError(f"unknown normalization scheme {scheme!r}", fix=f"use one of {', '.join(SCHEMES)}")

    def stack(self, volumes: Mapping[Modality, np.ndarray], missing: Modality | None) -> tuple[np.ndarray, dict[Modality, Any]]:
        """Normalize the available volumes into a ``(4, X, Y, Z)`` float32 input, missing channel ``fill``.

        With ``missing=None`` every given volume is normalized (complete cases, for dry runs).
        Returns the input and the per-modality statistics (empty for ``brasyn25``) for :meth:`restore`.
        """
        shape = next(iter(volumes.values())).shape
        fill = np.float32(self.fill)
        x4 = np.full((len(MODALITIES), *shape), fill, dtype=np.float32)
        scales: dict[Modality, Any] = {}
        for mod, vol in volumes.items():
            if mod is missing:
                continue
            if self.scheme == "brasyn25":
                s = self.params["stats"][mod.value]
                z = normalize_fixed(vol, s["mean"], s["std"], s["max_val"])
                if fill != np.float32(BACKGROUND):
                    z[z == np.float32(BACKGROUND)] = fill
                x4[mod.index] = z
                continue
            if self.scheme == "percentile":
                scales[mod] = foreground_percentile(vol, self.params["percentile"])
                z = normalize_percentile(vol, scales[mod])
                if fill != np.float32(BACKGROUND):
                    z[np.asarray(vol) <= 0] = fill
                x4[mod.index] = z
                continue
            vol32 = np.asarray(vol, dtype=np.float32)
            foreground = vol32 > 0
            if self.scheme == "zscore":
                scales[mod] = foreground_stats(vol32)
                mean, std = scales[mod]
                z = (vol32 - np.float32(mean)) / np.float32(std)
            else:
                lo, hi = self.params["range"]
                top = float(vol32.max()) if foreground.any() else 0.0
                scales[mod] = top
                z = np.float32(lo) + np.float32(hi - lo) * vol32 / np.float32(top or 1.0)
            z[~foreground] = fill
            x4[mod.index] = z
        return x4, scales

    def slope(self, missing: Modality, scales: Mapping[Modality, Any]) -> float:
        """Output intensity units per normalized unit of the missing modality (the inverse's slope, before the
        clip at 0): turns a spread in normalized units (an uncertainty) into the output's units."""
        if self.scheme == "brasyn25":
            return float(self.params["stats"][missing.value]["std"])
        if self.scheme == "percentile":
            return estimate_scale(scales, self.params["reference_scale"], missing) / 2
        if self.scheme == "zscore":
            reference = self.params["reference"]
            ratio = geometric_ratio({m: v[0] for m, v in scales.items()}, {k: r["mean"] for k, r in reference.items()})
            return float(reference[missing.value]["std"] * ratio)
        lo, hi = self.params["range"]
        return estimate_scale(scales, self.params["reference_max"], missing) / (hi - lo)

    def restore(self, y: np.ndarray, background: np.ndarray, missing: Modality, scales: Mapping[Modality, Any]) -> np.ndarray:
        """De-normalize the synthesized ``(X, Y, Z)`` volume: the scheme's inverse, then >= 0, background 0."""
        y[background] = self.fill
        if self.scheme == "brasyn25":
            s = self.params["stats"][missing.value]
            out = denormalize_fixed(y, s["mean"], s["std"])
        elif self.scheme == "percentile":
            scale = estimate_scale(scales, self.params["reference_scale"], missing)
            out = denormalize_percentile(y, scale)
        elif self.scheme == "zscore":
            reference = self.params["reference"]
            ratio = geometric_ratio({m: v[0] for m, v in scales.items()}, {k: r["mean"] for k, r in reference.items()})
            mean, std = reference[missing.value]["mean"] * ratio, reference[missing.value]["std"] * ratio
            out = y * np.float32(std) + np.float32(mean)
        else:
            lo, hi = self.params["range"]
            top = estimate_scale(scales, self.params["reference_max"], missing)
            out = (y - np.float32(lo)) * np.float32(top / (hi - lo))
        np.maximum(out, 0, out=out)
        out[background] = 0  # whatever the fill maps to (brasyn25 with fill 0 would give its mean): exactly 0
        return out
