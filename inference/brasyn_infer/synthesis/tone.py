"""The output's tone: the intensity distortion a generator makes, undone by a map fitted on held-out cases.

A generator trained on L1 and SSIM draws a smoother volume than a scan: fewer of the brightest voxels (vessels,
enhancement, CSF in T2). On the [0, 1] images the organizers' metrics compare, each volume over its own 0.5 and
99.5 percentiles (:func:`percentile_range`), its brain then sits higher than the real modality's: a shift of the
whole brain's tone that no uncertainty map can point at, and that dominates the errors the map is scored on.

The correction is empirical quantile mapping, as model output statistics do it: per missing modality, the mean
quantile function of the validation model's outputs' brains on their [0, 1] images (``output``) and that of the
same cases' real brains (``real``), both from held-out cases (``training/studies/fit_tone.py``, :func:`brain_quantiles`);
:func:`correct_tone` sends an output voxel at level ``u`` on its own [0, 1] image to ``real(output^-1(u))``. A
level-to-level map, not a rank-to-rank one: a case whose output is darker or brighter than most stays so, only the
distortion all outputs share is taken off::

    "tone": {"t1c": {"output": [o_0, ..., o_K], "real": [r_0, ..., r_K]}, ...}  # quantiles at 0, 1/K, ..., 1

It is monotone: no voxel passes another, so the structure is kept. Pure functions on ``(X, Y, Z)`` arrays
(nibabel's axis order) in scanner units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.errors import WeightsError

#: the percentiles each volume is clipped to and scaled over for the organizers' metrics (docs/design.md §8)
P_LOW, P_HIGH = 0.5, 99.5
#: the quantiles a curve holds: 0, 1/POINTS, ..., 1
POINTS = 200


def percentile_range(x: np.ndarray, p_low: float = P_LOW, p_high: float = P_HIGH) -> tuple[float, float]:
    """The volume's own ``(P_low, P_high)`` over all its voxels, the lower bound at least 0."""
    lo, hi = np.percentile(x, [p_low, p_high])
    return max(float(lo), 0.0), float(hi)


def brain_quantiles(volume: np.ndarray, points: int = POINTS) -> np.ndarray:
    """The ``points + 1`` quantiles (at 0, 1/points, ..., 1) of ``volume``'s brain (``> 0``) on its [0, 1] image
    (scaled over :func:`percentile_range` and clipped below it, not above: the brightest few percent of the brain,
    which the metrics clip to 1, keep their contrast), float64; all zeros for an empty brain."""
    brain = volume[volume > 0]
    if not brain.size:
        return np.zeros(points + 1)
    lo, hi = percentile_range(volume)
    unit = (np.maximum(brain.astype(np.float64), lo) - lo) / max(hi - lo, 1e-12)
    return np.quantile(unit, np.linspace(0, 1, points + 1))


def template(quantiles: Iterable[np.ndarray]) -> np.ndarray:
    """The mean of several volumes' :func:`brain_quantiles` (each ``(points + 1,)``): their typical tone."""
    stacked = np.stack(list(quantiles))
    if stacked.ndim != 2 or len(stacked) == 0:
        raise ValueError("template() needs one or more quantile functions of equal length")
    return stacked.mean(axis=0)


def tone_curve(levels: np.ndarray, output: np.ndarray, real: np.ndarray) -> np.ndarray:
    """The quantile map: ``levels`` (any shape, on the [0, 1] image, >= 0) -> ``real(output^-1(level))``, with
    ``output`` and ``real`` ``(K + 1,)`` increasing quantile functions. Above ``output``'s last quantile (and
    below its first) the levels are scaled by the end quantiles' ratio, so the brightest voxels keep their
    contrast; flat stretches of ``output`` are taken at their middle."""
    levels = np.asarray(levels, dtype=np.float64)
    # strictly increasing knots for np.interp: a flat run of output quantiles maps to the mean of its real ones
    knots, start = np.unique(output, return_index=True)
    counts = np.diff(np.append(start, len(output)))
    values = np.add.reduceat(real, start) / counts
    mapped = np.interp(levels, knots, values)
    if knots[-1] > 0:
        mapped = np.where(levels > knots[-1], levels * (values[-1] / knots[-1]), mapped)
    if knots[0] > 0:
        mapped = np.where(levels < knots[0], levels * (values[0] / knots[0]), mapped)
    return mapped


def correct_tone(volume: np.ndarray, output: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``volume`` ``(X, Y, Z)`` (scanner units, background 0) with each brain voxel (``> 0``) taken through
    :func:`tone_curve` on the volume's own [0, 1] image (over :func:`percentile_range`, all its voxels, as the
    metrics take it) and back to its units. The background stays 0, the brain > 0. float32, a new array."""
    out = np.zeros(volume.shape, dtype=np.float32)
    inside = volume > 0
    if not inside.any():
        return out
    lo, hi = percentile_range(volume)
    span = max(hi - lo, 1e-12)
    levels = (np.maximum(volume[inside].astype(np.float64), lo) - lo) / span
    corrected = lo + tone_curve(levels, output, real) * span
    out[inside] = np.maximum(corrected, np.finfo(np.float32).tiny)  # the brain stays brain
    return out


@dataclass(frozen=True)
class Tone:
    """The manifest's ``tone`` block: per missing modality, the ``(output, real)`` quantile functions
    :func:`correct_tone` maps between; a modality without them is left as the network made it."""

    curves: dict[Modality, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any] | None, path: Path | None = None) -> Tone:
        """The block as the manifest at ``path`` (named in errors) holds it; no block: no correction."""
        if not block:
            return cls()
        fix = 'write "tone": {"t1c": {"output": [...], "real": [...]}, ...} (training/studies/fit_tone.py)'
        curves = {}
        for name, entry in block.items():
            try:
                modality = Modality(name)
                output = np.asarray(entry["output"], dtype=np.float64)
                real = np.asarray(entry["real"], dtype=np.float64)
            except (TypeError, ValueError, KeyError) as error:
                raise WeightsError(f"unreadable tone block entry {name!r} ({error})", path, fix) from error
            for q in (output, real):
                if q.ndim != 1 or len(q) < 2 or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0) or q[0] < 0:
                    raise WeightsError(f"tone.{name}: each curve must be 2 or more increasing quantiles >= 0", path,
                                       "refit it with training/studies/fit_tone.py")
            if output.shape != real.shape or output[-1] <= 0:
                raise WeightsError(f"tone.{name}: output and real must have the same length and a bright end > 0",
                                   path, "refit it with training/studies/fit_tone.py")
            curves[modality] = (output, real)
        return cls(curves)

    def to_json(self) -> dict[str, dict[str, list[float]]]:
        return {m.value: {"output": [round(float(v), 6) for v in o], "real": [round(float(v), 6) for v in r]}
                for m, (o, r) in self.curves.items()}

    def apply(self, volume: np.ndarray, missing: Modality) -> np.ndarray:
        """``volume`` corrected for ``missing``'s curve, or ``volume`` itself when there is none."""
        curve = self.curves.get(missing)
        return volume if curve is None else correct_tone(volume, *curve)
