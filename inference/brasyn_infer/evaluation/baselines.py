"""Simple synthesis baselines, in the model's normalized space, for side-by-side reports.

``linear``: a per-voxel linear regression (with intercept) from the three available normalized channels to the
missing one, fitted on brain voxels of *other* cases (leave-one-case-out) or of a given set of cases, through the
sufficient statistics of :mod:`brasyn_infer.synthesis.linear`. ``mean``: the mean of the three available normalized
channels. Both are de-normalized by the same :class:`~brasyn_infer.synthesis.normalize.Normalizer` as the model's
output, background included.
"""

from __future__ import annotations

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.synthesis.linear import predict as predict_linear

BASELINES = ("linear", "mean")
__all__ = ["BASELINES", "predict_linear", "predict_mean"]


def predict_mean(x4: np.ndarray, missing: Modality) -> np.ndarray:
    """``(X, Y, Z)`` float32: the mean of the three available channels of ``x4`` ``(4, X, Y, Z)``."""
    available = [m.index for m in MODALITIES if m is not missing]
    return x4[available].mean(axis=0)
