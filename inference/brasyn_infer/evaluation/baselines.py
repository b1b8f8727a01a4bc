"""Simple synthesis baselines, in the model's normalized space, for side-by-side reports.

``linear``: a per-voxel linear regression (with intercept) from the three available normalized channels to the
missing one, fitted on brain voxels of *other* cases (leave-one-case-out) or of a given set of cases, through the
sufficient statistics of :mod:`brasyn_infer.synthesis.linear`. ``mean``: the mean of the three available normalized
channels. Both are de-normalized by the same :class:`~brasyn_infer.synthesis.normalize.Normalizer` as the model's
output, background included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.synthesis.linear import predict as predict_linear
from brasyn_infer.synthesis.normalize import Normalizer, background_mask

BASELINES = ("linear", "mean", "copy")
__all__ = ["BASELINES", "baseline_output", "predict_linear", "predict_mean"]


def predict_mean(x4: np.ndarray, missing: Modality, absent: Sequence[Modality] = ()) -> np.ndarray:
    """``(X, Y, Z)`` float32: the mean of the available channels of ``x4`` ``(4, X, Y, Z)`` (all but ``missing`` and
    ``absent``)."""
    available = [m.index for m in MODALITIES if m is not missing and m not in absent]
    return x4[available].mean(axis=0)


def baseline_output(normalizer: Normalizer, inputs: Mapping[Modality, np.ndarray], missing: Modality,
                    predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A baseline's synthesis of ``missing`` from the ``inputs`` (one to three, scanner units, ``(X, Y, Z)``) as the
    model's output would come out: normalized by ``normalizer``, ``predict`` ``(4, X, Y, Z) -> (X, Y, Z)`` in the
    normalized space, then de-normalized with the inputs' background at 0."""
    x4, scales = normalizer.stack(inputs, missing)
    absent = [m for m in MODALITIES if m is not missing and m not in inputs]
    background = background_mask(x4, missing, normalizer.fill, absent)
    return normalizer.restore(predict(x4), background, missing, scales)
