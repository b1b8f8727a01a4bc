"""Simple synthesis baselines, in the model's normalized space, for side-by-side reports.

``linear``: a per-voxel linear regression (with intercept) from the three available normalized
channels to the missing one, fitted on brain voxels of *other* cases (leave-one-case-out).
``mean``: the mean of the three available normalized channels. Both are de-normalized by the same
:class:`~brasyn_infer.synthesis.normalize.Normalizer` as the model's output, background included.
"""

from __future__ import annotations

import numpy as np

from brasyn_infer.constants import BACKGROUND, MODALITIES, Modality

MAX_VOXELS_PER_CASE = 400_000


def brain_voxels(x4: np.ndarray, missing: Modality, rng: np.random.Generator,
                 fill: float = BACKGROUND) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 3)`` available channels and ``(n,)`` target at brain voxels of a complete normalized case
    (``fill``: the normalization's background value)."""
    available = [m.index for m in MODALITIES if m is not missing]
    fill = np.float32(fill)
    brain = (x4[available] != fill).all(0) & (x4[missing.index] != fill)
    idx = np.flatnonzero(brain)
    if len(idx) > MAX_VOXELS_PER_CASE:
        idx = rng.choice(idx, MAX_VOXELS_PER_CASE, replace=False)
    features = np.stack([x4[c].reshape(-1)[idx] for c in available], axis=1)
    return features, x4[missing.index].reshape(-1)[idx]


def fit_linear(samples: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Least-squares coefficients ``(4,)`` (three weights, then intercept) from :func:`brain_voxels` samples."""
    features = np.concatenate([f for f, _ in samples])
    target = np.concatenate([t for _, t in samples])
    design = np.hstack([features, np.ones((len(features), 1), dtype=features.dtype)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, target.astype(np.float64), rcond=None)
    return coef


def predict_linear(x4: np.ndarray, missing: Modality, coef: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` normalized prediction; the caller applies the background mask."""
    available = [m.index for m in MODALITIES if m is not missing]
    out = np.full(x4.shape[1:], coef[-1], dtype=np.float64)
    for weight, channel in zip(coef[:-1], available, strict=True):
        out += weight * x4[channel]
    return out.astype(np.float32)


def predict_mean(x4: np.ndarray, missing: Modality) -> np.ndarray:
    available = [m.index for m in MODALITIES if m is not missing]
    return x4[available].mean(axis=0)
