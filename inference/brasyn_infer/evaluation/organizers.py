"""The BraSyn organizers' two SSIM figures, exactly as their scorer computes them, in numpy (no torch).

The organizers' ``ssim.py`` (github hongweilibran/BraSyn) clips each volume to its own 0.5-99.5 percentiles (lower
bound 0) and scales it to [0, 1] (:func:`~brasyn_infer.evaluation.metrics.percentile_scale`); with ``m`` the tumor
mask it reports

- ``SSIM_tumor = SSIM(pred * m, truth * m)`` and ``SSIM_non_tumor = SSIM(pred * (1 - m), truth * (1 - m))``: the
  images are **multiplied by the mask**, then the SSIM map of the whole volume is **averaged over the whole
  volume**, so every voxel the mask zeroes in both images (and whose window sees only zeros) scores exactly 1;

with torchmetrics' ``StructuralSimilarityIndexMeasure()`` defaults: a separable 3D Gaussian window of sigma 1.5 and
``2 * int(3.5 * 1.5 + 0.5) + 1 = 11`` taps (each axis's taps normalized to sum 1), the images reflect-padded by 5
voxels (mirrored about the edge voxel, which is not repeated), population (co)variances clamped at 0, ``data_range``
the larger of the two images' ``max - min``, ``k1 = 0.01``, ``k2 = 0.03``. torchmetrics up to 1.4.1 averaged the map
without its 5-voxel border (:data:`BORDER_CROPPED`); 1.4.2 and later average all of it (:data:`BORDER_FULL`). The
organizers pin no version. Compare these with a leaderboard; ``ssim_brain`` / ``ssim_tumor`` (the unmasked map's
mean inside a region, :mod:`~brasyn_infer.evaluation.metrics`) are this product's stricter figures.
"""

from __future__ import annotations

import math

import numpy as np

#: the map averaged over the whole volume (torchmetrics 1.4.2 and later)
BORDER_FULL = "full"
#: the map averaged without a 5-voxel border (torchmetrics 1.4.1 and earlier)
BORDER_CROPPED = "cropped"
BORDERS = (BORDER_FULL, BORDER_CROPPED)
SIGMA = 1.5
TAPS = 2 * int(3.5 * SIGMA + 0.5) + 1  # 11
PAD = (TAPS - 1) // 2  # 5
K1, K2 = 0.01, 0.03


def gaussian_taps(taps: int = TAPS, sigma: float = SIGMA) -> np.ndarray:
    """``(taps,)`` float64: ``exp(-(d / sigma)^2 / 2)`` at ``d = -(taps - 1)/2 .. (taps - 1)/2``, summing to 1."""
    d = np.arange(taps, dtype=np.float64) - (taps - 1) / 2
    g = np.exp(-((d / sigma) ** 2) / 2)
    return g / g.sum()


def _smooth(x: np.ndarray) -> np.ndarray:
    """The separable Gaussian of ``x`` ``(X, Y, Z)``, mirrored at the edges as torch's ``reflect`` pad; float32 like
    the organizers' torch run (scipy accumulates each tap sum in float64; 2.6 times faster than float64 here, and
    within 1e-6 of it on the averaged map)."""
    from scipy.ndimage import correlate1d

    taps = gaussian_taps().astype(np.float32)
    x = np.asarray(x, dtype=np.float32)
    for axis in range(x.ndim):
        x = correlate1d(x, taps, axis=axis, mode="mirror")
    return x


def truth_moments(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed truth and smoothed truth squared (float32): the part of the map that depends on the truth alone,
    shared by every method scored against it."""
    t = truth.astype(np.float32)
    return _smooth(t), _smooth(t * t)


def ssim_map_torchmetrics(pred: np.ndarray, truth: np.ndarray, data_range: float,
                          moments: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The SSIM map ``(X, Y, Z)`` float32 of two [0, 1] images, as torchmetrics computes it before averaging (in
    float32 like the organizers' run; the caller sums it in float64). ``moments``: :func:`truth_moments` of
    ``truth``, when already computed (not modified)."""
    c1, c2 = np.float32((K1 * data_range) ** 2), np.float32((K2 * data_range) ** 2)
    p, t = pred.astype(np.float32), truth.astype(np.float32)
    mu_t, var_t = moments if moments is not None else truth_moments(t)
    mu_p, var_p, cov = _smooth(p), _smooth(p * p), _smooth(p * t)
    mu_pt = mu_p * mu_t
    mu_p *= mu_p  # now mu_p ** 2
    mu_tt = mu_t * mu_t
    var_p -= mu_p
    np.maximum(var_p, 0, out=var_p)
    var_t = var_t - mu_tt
    np.maximum(var_t, 0, out=var_t)
    cov -= mu_pt
    # ((2 mu_pt + c1) (2 cov + c2)) / ((mu_p^2 + mu_t^2 + c1) (var_p + var_t + c2))
    numerator = mu_pt
    numerator *= 2
    numerator += c1
    cov *= 2
    cov += c2
    numerator *= cov
    denominator = mu_p
    denominator += mu_tt
    denominator += c1
    var_p += var_t
    var_p += c2
    denominator *= var_p
    numerator /= denominator
    return numerator


def _support(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...] | None:
    """The box around every nonzero voxel of ``a`` or ``b``, widened by ``PAD + 1`` (clipped to the volume): outside
    it both images are 0 and so is every window, so the map is exactly 1 there, and the map computed on the box
    equals the whole volume's inside it (the box's mirrored edge sees zeros, as the volume does). None when both
    are all 0."""
    support = (a != 0) | (b != 0)
    box = []
    for axis, n in enumerate(support.shape):
        hit = np.flatnonzero(support.any(axis=tuple(i for i in range(support.ndim) if i != axis)))
        if not hit.size:
            return None
        box.append(slice(max(0, int(hit[0]) - PAD - 1), min(n, int(hit[-1]) + 1 + PAD + 1)))
    return tuple(box)


def masked_ssim(pred: np.ndarray, truth: np.ndarray, keep: np.ndarray, border: str = BORDER_FULL,
                cache: dict | None = None) -> float:
    """``SSIM(pred * keep, truth * keep)`` averaged over the whole volume (``border`` full) or its interior 5 voxels
    in from every face (``cropped``); ``pred`` and ``truth`` ``(X, Y, Z)`` on [0, 1], ``keep`` bool. ``cache``: a
    dict kept with the truth and mask, where the truth's share of the work is kept for the next prediction."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    p = np.where(keep, pred, 0.0).astype(np.float32)
    t = np.where(keep, truth, 0.0).astype(np.float32)
    data_range = max(float(p.max() - p.min()), float(t.max() - t.min()))
    shape = p.shape
    region = tuple(slice(PAD, n - PAD) for n in shape) if border == BORDER_CROPPED else tuple(slice(0, n) for n in shape)
    total = math.prod(s.stop - s.start for s in region)
    box = _support(p, t)
    if box is None or data_range == 0:
        return math.nan  # both masked images constant (an empty mask): torchmetrics' 0 / 0, as the organizers get
    moments = None
    if cache is not None:
        key = (box, float(t.sum(dtype=np.float64)), int(np.count_nonzero(keep)))  # the masked truth's fingerprint
        if cache.get("key") != key:
            cache.clear()
            cache.update(key=key, moments=truth_moments(t[box]))
        moments = cache["moments"]
    smap = ssim_map_torchmetrics(p[box], t[box], data_range, moments)
    # the part of the box inside the averaged region, in the box's own coordinates
    inner = tuple(slice(max(r.start, b.start) - b.start, max(min(r.stop, b.stop), max(r.start, b.start)) - b.start)
                  for r, b in zip(region, box, strict=True))
    inside = smap[inner]
    return float((inside.sum(dtype=np.float64) + (total - inside.size)) / total)


def organizers_ssim(pred: np.ndarray, truth: np.ndarray, tumor: np.ndarray, border: str = BORDER_FULL,
                    cache: dict | None = None) -> tuple[float, float]:
    """``(SSIM_tumor, SSIM_non_tumor)`` of the organizers' scorer for ``pred`` and ``truth`` already scaled to [0, 1]
    (their percentile clip), ``tumor`` the ``(X, Y, Z)`` bool tumor mask. ``cache``: a dict that lives as long as
    this truth and mask do (the truth's smoothed moments are reused for the next prediction)."""
    if cache is None:
        return masked_ssim(pred, truth, tumor, border), masked_ssim(pred, truth, ~tumor, border)
    return (masked_ssim(pred, truth, tumor, border, cache.setdefault("tumor", {})),
            masked_ssim(pred, truth, ~tumor, border, cache.setdefault("non_tumor", {})))
