"""Sliding windows over a volume with blended overlaps (nnU-Net's step placement, TorchIO's aggregator).

Windows are placed evenly along each axis so that the first starts at 0 and the last ends at the edge
(:func:`compute_starts`). Each window's prediction is multiplied by blending weights (constant, Hann
or Gaussian; computed once per window shape and cached; zeros replaced by the smallest positive weight
so the final division is always defined) and accumulated in float64; :meth:`Aggregator.finalize`
divides by the accumulated weights and refuses non-finite results. A window larger than the volume
along an axis is handled by padding the volume to the window and cropping the result.

Arrays are ``(C, X, Y, Z)`` with channels first; windows and starts are ``(X, Y, Z)`` tuples.
This is the only windowing engine: the 3D Refiner uses it with cubic windows, the 2D generator
(:mod:`brasyn_infer.synthesis.generate`) with windows one voxel thick along the view axis (MONAI's
``SliceInferer`` idea), constant weights and no overlap, and several views fuse into one
:class:`Aggregator`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from enum import Enum
from functools import lru_cache

import numpy as np

from brasyn_infer.errors import BrasynError, DeviceOutOfMemory

log = logging.getLogger(__name__)


class BlendMode(str, Enum):
    """How overlapping window predictions are weighted."""

    CONSTANT = "constant"  #: plain average
    HANN = "hann"  #: separable Hann window (often used for overlapping synthesis windows)
    GAUSSIAN = "gaussian"  #: separable Gaussian, sigma = window / 8 (nnU-Net's choice)


def compute_starts(size: int, window: int, overlap: float) -> list[int]:
    """Window starts along one axis: evenly spaced, first at 0, last at ``size - window``.

    ``overlap`` in [0, 1) is the fraction of a window shared with its neighbour (at least).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if window >= size:
        return [0]
    step = window * (1 - overlap)
    count = math.ceil((size - window) / step) + 1
    span = size - window
    return [round(i * span / (count - 1)) for i in range(count)]


@lru_cache(maxsize=16)
def blend_weights(window: tuple[int, ...], mode: BlendMode) -> np.ndarray:
    """Blending weights of one window (float64, > 0 everywhere); cached per shape and mode."""
    axes = []
    for n in window:
        if mode is BlendMode.CONSTANT or n == 1:
            w = np.ones(n)
        elif mode is BlendMode.HANN:
            w = np.hanning(n + 2)[1:-1]  # strictly positive inside the window
        else:
            x = np.arange(n) - (n - 1) / 2
            w = np.exp(-(x**2) / (2 * (n / 8) ** 2))
        axes.append(w)
    weights = axes[0]
    for w in axes[1:]:
        weights = np.multiply.outer(weights, w)
    positive = weights[weights > 0]
    weights = np.where(weights > 0, weights, positive.min() if positive.size else 1.0)
    weights.setflags(write=False)
    return weights


class Aggregator:
    """Accumulates weighted window predictions into a ``(C, X, Y, Z)`` volume (TorchIO's GridAggregator).

    Windows may differ in shape from one :meth:`add` to the next (the slice windows of several
    views fused into one volume); each shape gets its own cached blending kernel.
    """

    def __init__(self, shape: tuple[int, ...], mode: BlendMode, dtype: type = np.float64) -> None:
        """``dtype``: of the sums; float32 halves the memory traffic where few windows meet at a voxel (the
        slice windows of at most three views), float64 where many overlapping 3D windows are weighted."""
        self.values = np.zeros(shape, dtype=dtype)
        self.weights = np.zeros(shape[1:], dtype=dtype)
        self.mode = mode

    def add(self, prediction: np.ndarray, start: tuple[int, ...]) -> None:
        """``prediction`` is ``(C, *window)`` for the window that starts at ``start``."""
        window = prediction.shape[1:]
        region = tuple(slice(s, s + w) for s, w in zip(start, window, strict=True))
        kernel = blend_weights(tuple(window), self.mode)
        if self.mode is BlendMode.CONSTANT:  # all ones: skip the multiplications
            self.values[(slice(None), *region)] += prediction
            self.weights[region] += 1.0
        else:
            self.values[(slice(None), *region)] += prediction * kernel
            self.weights[region] += kernel

    def finalize(self) -> np.ndarray:
        """The weighted mean ``(C, X, Y, Z)`` float32. Divides the sums in place when they are float32 (no copy of a
        volume that may hold several channels): call it once, after the last :meth:`add`."""
        if (self.weights == 0).any():
            raise BrasynError("sliding window left voxels uncovered (a bug: please report it)")
        if self.values.dtype == np.float32:
            out = np.divide(self.values, self.weights, out=self.values)
        else:
            out = (self.values / self.weights).astype(np.float32)
        if not np.isfinite(out).all():
            raise BrasynError("non-finite values after blending windows", fix="check the model's outputs")
        return out


def window_starts(shape: tuple[int, int, int], window: tuple[int, int, int], overlap: float) -> list[tuple[int, int, int]]:
    per_axis = [compute_starts(n, w, overlap) for n, w in zip(shape, window, strict=True)]
    return list(itertools.product(*per_axis))  # type: ignore[arg-type]


def iter_windows(volume: np.ndarray, window: tuple[int, int, int], overlap: float) -> Iterator[tuple[tuple[int, int, int], np.ndarray]]:
    for start in window_starts(volume.shape[1:], window, overlap):  # type: ignore[arg-type]
        region = tuple(slice(s, s + w) for s, w in zip(start, window, strict=True))
        yield start, volume[(slice(None), *region)]


def accumulate(
    aggregator: Aggregator,
    volume: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    window: tuple[int, int, int],
    overlap: float,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Feed every window of ``volume`` ``(C, X, Y, Z)`` through ``predict`` into ``aggregator``.

    ``predict`` maps a ``(B, C, *window)`` batch to ``(B, C_out, *window)``; ``on_batch`` gets the
    number of windows done after each batch. ``volume`` must be at least ``window`` along each axis.
    """
    batch: list[tuple[tuple[int, int, int], np.ndarray]] = []

    def flush() -> None:
        predictions = predict(np.stack([w for _, w in batch]))
        for (start, _), prediction in zip(batch, predictions, strict=True):
            aggregator.add(prediction, start)
        if on_batch:
            on_batch(len(batch))
        batch.clear()

    for start, patch in iter_windows(volume, window, overlap):
        batch.append((start, patch))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()


def sliding_window(
    volume: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    window: tuple[int, int, int],
    overlap: float = 0.5,
    mode: BlendMode = BlendMode.HANN,
    batch_size: int = 1,
    pad_value: float = 0.0,
    out_channels: int = 1,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run ``predict`` (``(B, C, *window) -> (B, out_channels, *window)``) over ``volume`` ``(C, X, Y, Z)``.

    Returns the blended ``(out_channels, X, Y, Z)`` float32 volume. Axes shorter than the window
    are padded with ``pad_value`` and cropped back.
    """
    shape = volume.shape[1:]
    padded_shape = tuple(max(n, w) for n, w in zip(shape, window, strict=True))
    if padded_shape != shape:
        padded = np.full((volume.shape[0], *padded_shape), pad_value, dtype=volume.dtype)
        padded[(slice(None), *(slice(0, n) for n in shape))] = volume
        volume = padded
    aggregator = Aggregator((out_channels, *padded_shape), mode)
    accumulate(aggregator, volume, predict, window, overlap, batch_size, on_batch)
    out = aggregator.finalize()
    return out[(slice(None), *(slice(0, n) for n in shape))]


#: Voxels of context kept around the brain's bounding box.
MARGIN = 8


def brain_box(brain: np.ndarray, margin: int = MARGIN) -> tuple[slice, slice, slice]:
    """Bounding box of the ``True`` voxels of ``(X, Y, Z)`` ``brain``, grown by ``margin``, clipped."""
    if not brain.any():
        return tuple(slice(0, n) for n in brain.shape)  # type: ignore[return-value]
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(brain.any(axis=other))
        box.append(slice(max(0, hits[0] - margin), min(brain.shape[axis], hits[-1] + 1 + margin)))
    return tuple(box)  # type: ignore[return-value]


def count_windows(region: tuple[slice, ...], window: tuple[int, ...], overlap: float) -> int:
    """How many windows :func:`sliding_window` places over ``region`` (padded to the window where smaller)."""
    count = 1
    for s, w in zip(region, window, strict=True):
        count *= len(compute_starts(max(s.stop - s.start, w), w, overlap))
    return count


def with_oom_retry(run: Callable[[np.ndarray], None], todo: np.ndarray, batch_size: int) -> int:
    """Call ``run`` on consecutive batches of the items ``todo``; when the device runs out of memory for a batch
    (:class:`DeviceOutOfMemory`), halve the batch (down to 1) and retry it. Returns the batch size that worked,
    for the caller to keep. The one retry policy for every model the pipeline runs."""
    start = 0
    while start < len(todo):
        index = todo[start:start + batch_size]
        try:
            run(index)
        except DeviceOutOfMemory:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            log.warning("out of device memory: retrying with batch size %d", batch_size)
            continue
        start += len(index)
    return batch_size


class RetryingPredict:
    """A window predictor ``(B, C, *window) -> (B, C_out, *window)`` run under :func:`with_oom_retry`: a batch the
    device cannot hold is split into halves (down to single windows); ``batch_size`` keeps the size that worked."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], batch_size: int) -> None:
        self.predict = predict
        self.batch_size = batch_size

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        parts: list[np.ndarray] = []
        self.batch_size = with_oom_retry(lambda index: parts.append(self.predict(batch[index])), np.arange(len(batch)),
                                         self.batch_size)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
