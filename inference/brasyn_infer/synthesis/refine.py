"""The optional 3D Refiner stage (the BraSyn 2024 winner's design, docs/design.md): sliding windows over the brain.

The refiner sees four channels, each z-scored over its own nonzero voxels (background 0): the
generator's synthesized volume in the missing modality's channel and the three real inputs in
theirs. It predicts the refined synthesized volume in the same z units (a residual on its input,
inside the graph); :func:`refine_volume` maps it back with the synthesized volume's mean and std.
Windows cover the brain's bounding box only (plus a margin): the background is zero anyway.
Pure functions on ``(X, Y, Z)`` arrays; the weights' manifest is :mod:`brasyn_infer.runtime.refiner_manifest`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.synthesis.windows import BlendMode, RetryingPredict, brain_box, count_windows, sliding_window


def zscore_nonzero(volume: np.ndarray, region: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """``(X, Y, Z)`` -> z-scores with the mean and std (>= 1e-6) of the voxels > 0, and those two.

    The z-scores are written where ``region`` is True (default: the voxels > 0) and 0 elsewhere; the
    synthesized volume passes its brain mask, so a brain voxel the generator made 0 keeps its value.
    """
    foreground = volume > 0
    values = volume[foreground].astype(np.float64)
    mean = float(values.mean()) if values.size else 0.0
    std = max(float(values.std()) if values.size else 1.0, 1e-6)
    region = foreground if region is None else region
    z = np.zeros(volume.shape, dtype=np.float32)
    z[region] = (volume[region] - mean) / std
    return z, mean, std


def refiner_input(inputs: Mapping[Modality, np.ndarray], synthesized: np.ndarray, background: np.ndarray,
                  missing: Modality) -> tuple[np.ndarray, float, float]:
    """The ``(4, X, Y, Z)`` float32 refiner input and the synthesized volume's (mean, std).

    ``background`` ``(X, Y, Z)`` bool is the pipeline's background mask (the synthesized volume is 0 there).
    """
    x4 = np.zeros((4, *synthesized.shape), dtype=np.float32)
    for mod, volume in inputs.items():
        if mod is not missing:
            x4[mod.index] = zscore_nonzero(volume)[0]
    x4[missing.index], mean, std = zscore_nonzero(synthesized, ~background)
    return x4, mean, std


RefinerModel = Callable[[np.ndarray, np.ndarray], np.ndarray]


def refine_volume(
    model: RefinerModel,
    inputs: Mapping[Modality, np.ndarray],
    synthesized: np.ndarray,
    background: np.ndarray,
    missing: Modality,
    window: tuple[int, int, int],
    overlap: float,
    blend: BlendMode,
    on_window: Callable[[int], None] | None = None,
    batch_size: int = 1,
) -> np.ndarray:
    """Refine ``synthesized`` ``(X, Y, Z)`` (scanner units) -> ``(X, Y, Z)`` float32, >= 0, ``background`` 0.

    ``model`` maps ``(B, 4, *window)`` and ``missing`` ``(B,)`` to ``(B, 1, *window)`` z units; ``batch_size`` windows
    go to it at once (halved when the device runs out of memory, :func:`~brasyn_infer.synthesis.windows.with_oom_retry`).
    """
    x4, mean, std = refiner_input(inputs, synthesized, background, missing)
    box = brain_box(~background)
    crop = x4[(slice(None), *box)]

    def predict(batch: np.ndarray) -> np.ndarray:
        return model(batch, np.full(len(batch), missing.index, dtype=np.float32))

    z = sliding_window(crop, RetryingPredict(predict, batch_size), window, overlap, blend, batch_size=batch_size,
                       pad_value=0.0, on_batch=on_window)[0]
    refined = np.array(synthesized, dtype=np.float32, copy=True)
    refined[box] = z * np.float32(std) + np.float32(mean)
    np.maximum(refined, 0, out=refined)
    refined[background] = 0
    return refined


def window_count(background: np.ndarray, window: tuple[int, int, int], overlap: float) -> int:
    """How many windows :func:`refine_volume` runs on a volume (the progress total)."""
    return count_windows(brain_box(~background), window, overlap)
