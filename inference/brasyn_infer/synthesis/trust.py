"""Trust in a synthesis: the linear prior it is blended with, and its voxel-wise uncertainty.

Pure functions on ``(X, Y, Z)`` arrays (nibabel's axis order) in the model's normalized units, driven by the
manifest's ``trust`` block, which ``training/studies/fit_trust.py`` fits on out-of-fold outputs (each case synthesized by
a generator that never saw it), for a model that has neither a prior nor a scale of its own (docs/design.md §5)::

    "trust": {
      "linear":      {"t1c": [w1, w2, w3, b], ...},  # per missing modality: the available channels in MODALITIES
                                                      # order, then the intercept (a per-voxel linear regression)
      "blend":       {"t1c": alpha, ...},            # output = prior + alpha * (generated - prior); 1: generator alone
      "features":    ["views", "prior", ...],        # FEATURES used by the uncertainty model, in this order
      "uncertainty": {"t1c": [w0, w1, ...], ...},    # log b = w0 + sum_i w_i * log(f_i + EPS): a Laplace scale
      "smooth": 2                                     # features box-filtered over (2 * smooth + 1)^3 voxels
    }

The uncertainty is the scale ``b`` of a Laplace distribution of the error (``E|error| = b``), fitted by maximum
likelihood, so it is in the output's units once multiplied by the normalizer's slope
(:meth:`brasyn_infer.synthesis.normalize.Normalizer.slope`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.errors import WeightsError
from brasyn_infer.synthesis.linear import predict

#: Voxel-wise features of the uncertainty model, each ``(X, Y, Z)`` float32 >= 0, normalized units:
#: ``views``: standard deviation of the single-view volumes (0 with one view);
#: ``prior``: |generated - linear prior| (where the network departs from the regression);
#: ``edge``: gradient magnitude of the output (errors gather at tissue boundaries);
#: ``level``: the output's height above the background value;
#: ``boundary``: fraction of background voxels around the voxel (the brain's rim).
FEATURES = ("views", "prior", "edge", "level", "boundary")
EPS = 1e-3


@dataclass(frozen=True)
class Trust:
    """The manifest's ``trust`` block, checked."""

    linear: dict[Modality, np.ndarray] = field(default_factory=dict)
    blend: dict[Modality, float] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    uncertainty: dict[Modality, np.ndarray] = field(default_factory=dict)
    smooth: int = 2

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any] | None) -> Trust:
        if not block:
            return cls()
        try:
            linear = {Modality(m): np.asarray(c, dtype=np.float64) for m, c in block.get("linear", {}).items()}
            blend = {Modality(m): float(a) for m, a in block.get("blend", {}).items()}
            features = tuple(block.get("features", ()))
            uncertainty = {Modality(m): np.asarray(w, dtype=np.float64) for m, w in block.get("uncertainty", {}).items()}
            smooth = int(block.get("smooth", 2))
        except (ValueError, TypeError) as error:
            raise WeightsError(f"unreadable trust block ({error})", fix="refit it with training/studies/fit_trust.py") from error
        if any(c.shape != (len(MODALITIES),) for c in linear.values()):
            raise WeightsError("trust.linear needs 4 numbers per modality (3 weights, then the intercept)")
        if set(blend) - set(linear):
            raise WeightsError("trust.blend names a modality without trust.linear coefficients")
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise WeightsError(f"unknown uncertainty features {unknown}", fix=f"use {', '.join(FEATURES)}")
        if any(w.shape != (len(features) + 1,) for w in uncertainty.values()):
            raise WeightsError("trust.uncertainty needs 1 + len(features) weights per modality")
        if ("prior" in features) and set(uncertainty) - set(linear):
            raise WeightsError("the 'prior' feature needs trust.linear for every modality of trust.uncertainty")
        return cls(linear, blend, features, uncertainty, smooth)

    def to_json(self) -> dict[str, Any]:
        return {"linear": {m.value: [round(float(v), 7) for v in c] for m, c in self.linear.items()},
                "blend": {m.value: round(a, 4) for m, a in self.blend.items()},
                "features": list(self.features),
                "uncertainty": {m.value: [round(float(v), 5) for v in w] for m, w in self.uncertainty.items()},
                "smooth": self.smooth}

    def calibrated(self, missing: Modality) -> bool:
        """Whether a fitted uncertainty model exists for ``missing``."""
        return missing in self.uncertainty


def linear_prior(x4: np.ndarray, missing: Modality, coef: np.ndarray) -> np.ndarray:
    """The regression ``sum_i w_i * x_i + b`` over the three available channels of ``x4`` ``(4, X, Y, Z)``:
    ``(X, Y, Z)`` float32, normalized units (the caller masks the background); :func:`~brasyn_infer.synthesis.linear.predict`."""
    return predict(x4, missing, coef)


def blend(generated: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """``prior + alpha * (generated - prior)``, float32 (``alpha`` 1: exactly the generator, 0: the prior)."""
    a = np.float32(alpha)
    return (np.float32(1) - a) * prior + a * generated


def box_mean(volume: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the ``(2r+1)^3`` box around each voxel (the box clipped at the borders), float32."""
    out = np.asarray(volume, dtype=np.float32)
    if radius <= 0:
        return out.copy()
    for axis in range(out.ndim):
        n = out.shape[axis]
        c = np.cumsum(out, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        hi = np.minimum(np.arange(n) + radius + 1, n)
        lo = np.maximum(np.arange(n) - radius, 0)
        shape = [1] * out.ndim
        shape[axis] = n
        out = ((np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / (hi - lo).reshape(shape)).astype(np.float32)
    return out


def features(members: Sequence[np.ndarray], output: np.ndarray, prior: np.ndarray | None, background: np.ndarray,
             fill: float, names: Sequence[str], smooth: int) -> np.ndarray:
    """``(len(names), X, Y, Z)`` float32 features (:data:`FEATURES`) of one synthesis, normalized units.

    ``members``: the single-view volumes whose mean the generator gave; ``output``: the final (blended)
    volume; ``prior``: the linear prior (needed for ``prior``); ``background``: ``(X, Y, Z)`` bool.
    Each feature is box-filtered over ``(2 * smooth + 1)^3`` voxels.
    """
    out = np.empty((len(names), *output.shape), dtype=np.float32)
    for i, name in enumerate(names):
        if name == "views":
            f = np.std(np.stack(members), axis=0) if len(members) > 1 else np.zeros(output.shape, np.float32)
        elif name == "prior":
            if prior is None:
                raise ValueError("the 'prior' feature needs the linear prior")
            f = np.abs(np.mean(members, axis=0) - prior)
        elif name == "edge":
            f = np.sqrt(sum(g * g for g in np.gradient(output)))
        elif name == "level":
            f = np.maximum(output - np.float32(fill), 0)
        elif name == "boundary":
            f = background.astype(np.float32)
        else:
            raise ValueError(f"unknown feature {name!r}")
        out[i] = box_mean(f, smooth)
    return out


def laplace_scale(feats: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The Laplace scale ``b = exp(w0 + sum_i w_i log(f_i + EPS))`` of ``(k, X, Y, Z)`` features, float32."""
    log_b = np.full(feats.shape[1:], weights[0], dtype=np.float64)
    for w, f in zip(weights[1:], feats, strict=True):
        log_b += w * np.log(f.astype(np.float64) + EPS)
    return np.exp(log_b).astype(np.float32)
