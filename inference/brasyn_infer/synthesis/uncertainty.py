"""The uncertainty map of a generator that gives its own: a ``log_scale`` output (docs/model-contract.md).

Each view's slices give ``y`` and the scale ``b = exp(log_scale)`` of a Laplace distribution of their error (its
expected absolute value), in normalized units. Fused over the views (:func:`brasyn_infer.synthesis.generate.
generate_volume` with ``with_scale``), the map is the mean scale, optionally widened by the views' disagreement and
multiplied by a per-modality calibration factor, both chosen on held-out cases and written into the manifest's
``uncertainty`` block::

    "uncertainty": {"view_spread": true, "calibration": {"t1c": 1.3, ...}}

Pure functions on ``(X, Y, Z)`` arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.errors import WeightsError


@dataclass(frozen=True)
class ScaleMap:
    """The manifest's ``uncertainty`` block: how the graph's scale becomes the map."""

    #: widen the mean scale by the views' standard deviation: ``sqrt(b**2 + var)``
    view_spread: bool = False
    #: per missing modality, the factor that makes the map the expected |error| on held-out cases (default 1)
    calibration: dict[Modality, float] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any] | None) -> ScaleMap:
        if not block:
            return cls()
        try:
            calibration = {Modality(m): float(c) for m, c in block.get("calibration", {}).items()}
            view_spread = bool(block.get("view_spread", False))
        except (TypeError, ValueError) as error:
            raise WeightsError(f"unreadable uncertainty block ({error})",
                               fix='write "uncertainty": {"view_spread": BOOL, "calibration": {"t1c": FACTOR, ...}}') from error
        if any(not c > 0 for c in calibration.values()):
            raise WeightsError("uncertainty.calibration factors must be > 0")
        return cls(view_spread, calibration)

    def to_json(self) -> dict[str, Any]:
        return {"view_spread": self.view_spread,
                "calibration": {m.value: round(c, 4) for m, c in self.calibration.items()}}


def scale_map(moments: np.ndarray, missing: Modality, model: ScaleMap) -> tuple[np.ndarray, np.ndarray]:
    """``moments`` ``(3, X, Y, Z)``: the views' means of ``y``, ``y**2`` and ``b`` -> the output ``y`` and the map
    ``(X, Y, Z)`` float32 (normalized units; the caller converts it to the output's and zeroes the background).
    The output is ``moments[0]`` itself; the second and third channels may be overwritten (one volume-sized array
    at most is made): pass a copy to keep them."""
    y, second, scale = moments[0], moments[1], moments[2]
    if model.view_spread:  # sqrt(b**2 + max(second - y**2, 0)), in place in the moments' own channels
        square = np.multiply(y, y, dtype=np.float32)
        np.subtract(second, square, out=second)
        np.maximum(second, 0, out=second)
        np.multiply(scale, scale, out=square)
        np.add(square, second, out=square)
        scale = np.sqrt(square, out=square)
    scale = scale.astype(np.float32, copy=False)
    scale *= np.float32(model.calibration.get(missing, 1.0))
    return y, scale
