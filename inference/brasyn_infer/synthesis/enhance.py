"""The enhancement stage: a synthesized t1c given real t1c's tumor contrast where a missing-sequence segmenter
finds the tumor (issue 41).

The generators here draw t1c without the enhancing rim (docs/research-log.md): the rim's contrast is in no other
sequence. The missing-sequence segmenter, reading t1n + t2f + t2w, finds the enhancing tumor better than any
segmenter finds it in the synthesized t1c. This stage puts the two together. Where the segmenter (the *guide*)
calls enhancing tumor, the synthesized t1c is scaled so that its median there is ``ratio`` times its median in the
brain outside the guide's tumor (:func:`healthy_median`); where it calls necrosis, optionally, scaled down to
``necrosis`` times it. ``ratio`` and ``necrosis`` are real t1c's contrasts, measured on training cases with expert
labels (:func:`contrast_ratio`, median over cases). ``feather`` smooths the change (a Gaussian of that sigma in
voxels) so that the painted region has no hard edge.

It trades the image for the segmentation: a segmenter reads the painted t1c's tumor far better, but the painted
voxels are the guide's, not the expert's, and SSIM in the tumor falls (the model card has the numbers). So the
stage is an option, off by default.

A generator's manifest holds the stage's settings (:class:`Enhancement`)::

    "enhance": {"enabled": false, "guide": "segmenter-any", "ratio": 1.487, "necrosis": null, "feather": 1.0}

Pure functions on ``(X, Y, Z)`` arrays (nibabel's axis order): t1c in scanner units (background 0), classes uint8
(0 background, 1 NCR, 2 ED, 3 ET: :mod:`brasyn_infer.segmentation.labels`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brasyn_infer.errors import WeightsError
from brasyn_infer.segmentation.labels import CLASS_REGIONS

#: the guide's classes that are scaled up (the enhancing tumor) and, optionally, down (the necrotic core)
ENHANCING = tuple(CLASS_REGIONS["ET"])
NECROTIC = tuple(c for c in CLASS_REGIONS["TC"] if c not in CLASS_REGIONS["ET"])


def healthy_median(t1c: np.ndarray, classes: np.ndarray) -> float | None:
    """Median t1c in the brain (``t1c > 0``) outside the tumor of ``classes``; None without such a voxel."""
    healthy = (t1c > 0) & (classes == 0)
    return float(np.median(t1c[healthy])) if healthy.any() else None


def contrast_ratio(t1c: np.ndarray, classes: np.ndarray, labels: Iterable[int] = ENHANCING) -> float | None:
    """Median t1c in the voxels of ``classes`` whose class is in ``labels`` over :func:`healthy_median`; None
    without such voxels or without healthy brain. On a real t1c with the expert's classes: its enhancement
    (``labels=ENHANCING``, about 1.5) or necrosis (``NECROTIC``) contrast."""
    region, reference = np.isin(classes, tuple(labels)) & (t1c > 0), healthy_median(t1c, classes)
    if not region.any() or not reference:
        return None
    return float(np.median(t1c[region])) / reference


def gaussian_blur(volume: np.ndarray, sigma: float) -> np.ndarray:
    """``volume`` (any number of axes) smoothed by a Gaussian of ``sigma`` voxels along each axis, float32; the
    edges are extended (nearest). ``sigma <= 0``: a float32 copy."""
    out = np.asarray(volume, dtype=np.float32).copy()
    if sigma <= 0:
        return out
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    for axis in range(out.ndim):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(out.ndim)], mode="edge")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for k, w in zip(offsets, kernel, strict=True):
            acc += w * np.take(padded, np.arange(radius + k, radius + k + n), axis=axis)
        out = acc
    return out


def _scale(t1c: np.ndarray, region: np.ndarray, level: float, up: bool) -> float:
    """The factor that brings the median of ``t1c`` in ``region`` to ``level``: never below 1 when ``up``, never
    above 1 otherwise (the stage only strengthens a contrast the synthesis lacks)."""
    median = float(np.median(t1c[region]))
    if median <= 0:
        return 1.0
    factor = level / median
    return max(1.0, factor) if up else min(1.0, factor)


def enhance(t1c: np.ndarray, classes: np.ndarray, ratio: float, necrosis: float | None = None,
            feather: float = 0.0) -> np.ndarray:
    """``t1c`` ``(X, Y, Z)`` with the guide's enhancing tumor (``classes``) scaled up so that its median is ``ratio``
    times the :func:`healthy_median`, and (``necrosis`` given) the guide's necrotic core scaled down to ``necrosis``
    times it; the change smoothed by :func:`gaussian_blur` of ``feather`` voxels. float32, a new array; the
    background (``t1c <= 0``) stays 0, and a case where the guide finds no tumor, or no healthy brain, is returned
    unchanged."""
    out = np.asarray(t1c, dtype=np.float32).copy()
    brain = out > 0
    reference = healthy_median(out, classes)
    if not reference:
        return out
    factors = np.ones_like(out)
    for labels, contrast, up in ((ENHANCING, ratio, True), (NECROTIC, necrosis, False)):
        region = np.isin(classes, labels) & brain
        if contrast is not None and region.any():
            factors[region] = _scale(out, region, contrast * reference, up)
    if feather > 0:  # the change blurred, not the factors: away from the regions it stays exactly 0
        factors = 1 + gaussian_blur(factors - 1, feather)
    out *= factors
    out[~brain] = 0
    return out


@dataclass(frozen=True)
class Enhancement:
    """A manifest's ``enhance`` block: whether the stage runs by default, the guide (a missing-sequence segmenter's
    NAME or manifest) and :func:`enhance`'s settings. ``ratio`` None: the weights have no such stage."""

    enabled: bool = False
    guide: str | None = None
    ratio: float | None = None
    necrosis: float | None = None
    feather: float = 0.0

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any], path: Path | None = None) -> Enhancement:
        """The block as a generator's manifest holds it (``{}``: no stage); WeightsError naming ``path`` and the field
        when a value is out of range."""
        if not block:
            return cls()
        fix = 'write "enhance": {"enabled": false, "guide": NAME, "ratio": R, "necrosis": N, "feather": S}'
        ratio, necrosis, feather = block.get("ratio"), block.get("necrosis"), block.get("feather", 0.0)
        if not isinstance(ratio, (int, float)) or ratio <= 1:
            raise WeightsError(f"enhance.ratio must be a number above 1 (enhancing tumor over healthy brain), not "
                               f"{ratio!r}", path, fix)
        if necrosis is not None and (not isinstance(necrosis, (int, float)) or not 0 < necrosis <= 1):
            raise WeightsError(f"enhance.necrosis must be in (0, 1] or null, not {necrosis!r}", path, fix)
        if not isinstance(feather, (int, float)) or feather < 0:
            raise WeightsError(f"enhance.feather must be a sigma in voxels >= 0, not {feather!r}", path, fix)
        guide = block.get("guide")
        if guide is not None and not isinstance(guide, str):
            raise WeightsError(f"enhance.guide must be a segmenter NAME or manifest path, not {guide!r}", path, fix)
        return cls(bool(block.get("enabled", False)), guide, float(ratio),
                   None if necrosis is None else float(necrosis), float(feather))

    def __bool__(self) -> bool:
        return self.ratio is not None

    def __call__(self, t1c: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """:func:`enhance` with these settings."""
        if self.ratio is None:
            raise ValueError("no enhancement stage: the manifest has no enhance block")
        return enhance(t1c, classes, self.ratio, self.necrosis, self.feather)
