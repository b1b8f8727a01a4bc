"""Synthesis quality metrics (docs/design.md §8). Pure functions on ``(X, Y, Z)`` arrays.

Each volume is clipped to its own 0.5 and 99.5 percentiles (over the whole volume, lower bound at least 0) and
scaled to [0, 1], as the organizers do. This product's SSIM figures take the SSIM map of the two **unmasked**
images (a Gaussian window of sigma 1.5, 11 voxels wide, in 3D, population covariances: scikit-image) and average
it inside a region: ``ssim`` the whole volume, ``ssim_brain`` the brain (truth > 0), ``ssim_tumor`` the tumor,
``ssim_healthy`` the brain without the tumor. They are **not** the organizers' figures: those multiply both images
by the mask first and average over the whole volume (``ssim_tumor_organizers``, ``ssim_non_tumor_organizers``,
:mod:`brasyn_infer.evaluation.organizers`), which the zeroed background dominates. PSNR and MAE are computed over
the brain on the [0, 1] images, as the BraTS inpainting package's ``psnr_01`` and MAE on the same voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from brasyn_infer.evaluation.organizers import BORDER_FULL, organizers_ssim
from brasyn_infer.synthesis.tone import P_HIGH, P_LOW, percentile_range

SIGMA = 1.5
TRUNCATE = 3.5  # scikit-image's default: a window of 2 * round(3.5 * 1.5) + 1 = 11 voxels


def percentile_scale(x: np.ndarray, p_low: float = P_LOW, p_high: float = P_HIGH) -> np.ndarray:
    """Clip to the volume's own ``[P_low, P_high]`` (:func:`percentile_range`) and scale to [0, 1], float64."""
    return _unit(x, *percentile_range(x, p_low, p_high))


def _unit(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float64)
    return (np.clip(x.astype(np.float64), lo, hi) - lo) / (hi - lo)  # clipped in float64: max is exactly 1


@dataclass(frozen=True, eq=False)
class Scaled:
    """A volume ``(X, Y, Z)`` in scanner units (``raw``, not copied) and its image on [0, 1] as the metrics
    compare it (``unit``, float64: :func:`percentile_scale` over ``[lo, hi]``, :func:`percentile_range`).
    Scaling a 240 x 240 x 155 volume takes most of a second: an evaluation scales each volume once and passes
    this to :func:`score`, ``ranking.MapErrors`` and ``qc.qc_png``, which also take plain arrays."""

    raw: np.ndarray
    unit: np.ndarray
    lo: float
    hi: float
    #: work kept with a truth volume for the next prediction scored against it (the organizers' SSIM moments)
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, x: np.ndarray | Scaled) -> Scaled:
        """``x`` scaled, or ``x`` itself when it already is."""
        if isinstance(x, Scaled):
            return x
        lo, hi = percentile_range(x)
        return cls(x, _unit(x, lo, hi), lo, hi)


#: the SSIM window's reach in voxels on each side (scikit-image's: ``int(TRUNCATE * SIGMA + 0.5)``)
REACH = int(TRUNCATE * SIGMA + 0.5)


def support_box(*images: np.ndarray, margin: int = REACH + 1) -> tuple[slice, ...]:
    """The box ``(X, Y, Z)`` slices around every nonzero voxel of the [0, 1] ``images``, widened by ``margin``
    (clipped to the volume). With the default margin, the SSIM map computed on the box equals the whole volume's
    there, bit for bit: every window that reaches past the box, or reflects at its edge, sees only zeros, as in
    the whole volume. Outside the box both images are 0 and the SSIM map is exactly 1. The whole volume when
    all are 0."""
    support = np.zeros(images[0].shape, dtype=bool)
    for image in images:
        support |= image > 0
    if not support.any():
        return tuple(slice(0, n) for n in support.shape)
    idx = np.argwhere(support)
    lo, hi = idx.min(0), idx.max(0) + 1
    return tuple(slice(max(0, a - margin), min(n, b + margin)) for a, b, n in zip(lo, hi, support.shape, strict=True))


def ssim_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-voxel SSIM of two volumes already scaled to [0, 1]."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(truth, pred, data_range=1.0, gaussian_weights=True, sigma=SIGMA,
                                    use_sample_covariance=False, full=True, truncate=TRUNCATE)
    return full


def masked_mean(values: np.ndarray, mask: np.ndarray | None) -> float:
    if mask is None:
        return float(values.mean())
    return float(values[mask].mean()) if mask.any() else math.nan


def psnr(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB over ``mask``; ``inf`` for identical images."""
    mse = float(np.mean((pred[mask] - truth[mask]) ** 2)) if mask.any() else math.nan
    if mse == 0:
        return math.inf
    return 10 * math.log10(data_range**2 / mse)


def mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean(np.abs(pred[mask] - truth[mask]))) if mask.any() else math.nan


def ssim_brain(pred: np.ndarray | Scaled, truth: np.ndarray | Scaled) -> float:
    """:func:`score`'s ``ssim_brain`` alone (the SSIM map's mean over the brain, truth > 0): what the companion's
    blend toward the stand-in is fitted on (``training/fit_copy_blend.py``). Without a tumor mask :func:`score`
    computes the SSIM map once and only PSNR and MAE besides, a few percent of the map's time."""
    return score(pred, truth)["ssim_brain"]


def score(pred: np.ndarray | Scaled, truth: np.ndarray | Scaled, seg: np.ndarray | None = None,
          tumor: np.ndarray | None = None, border: str = BORDER_FULL) -> dict[str, float]:
    """All metrics for one synthesized volume against the real one: each in scanner units, or already
    :class:`Scaled` (the same figures, without scaling it again). ``tumor``: the tumor mask (default ``seg > 0``;
    a caller that knows the labels' convention passes the whole tumor without a 2024 resection cavity); with one,
    also the organizers' two figures (:mod:`brasyn_infer.evaluation.organizers`, ``border`` their torchmetrics
    variant); without, those and the tumor's columns are NaN."""
    pred, truth = Scaled.of(pred), Scaled.of(truth)
    p, t = pred.unit, truth.unit
    brain = truth.raw > 0
    box = support_box(p, t, brain)  # the SSIM map only where it can differ from 1
    smap = ssim_map(p[box], t[box])
    mask = tumor if tumor is not None else (seg > 0 if seg is not None else None)
    organizers = organizers_ssim(p, t, mask, border, truth.cache) if mask is not None else (math.nan, math.nan)
    tumor = mask & brain if mask is not None else None
    return {
        "ssim": float((smap.sum(dtype=np.float64) + (p.size - smap.size)) / p.size),
        "ssim_brain": masked_mean(smap, brain[box]),
        "ssim_tumor": masked_mean(smap, tumor[box]) if tumor is not None else math.nan,
        "ssim_healthy": masked_mean(smap, (brain & ~tumor)[box]) if tumor is not None else math.nan,
        "ssim_tumor_organizers": organizers[0],
        "ssim_non_tumor_organizers": organizers[1],
        "psnr": psnr(p, t, brain),
        "mae": mae(p, t, brain),
    }
