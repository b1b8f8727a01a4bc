"""The segmenter's input: pure numpy on ``(4, X, Y, Z)`` arrays in MODALITIES order (t1c, t1n, t2f, t2w).

- :func:`zscore`: each modality z-scored over its own nonzero voxels (:func:`nonzero_stats`), clipped to
  ``[-clip, clip]``, background 0 (the scheme of the embedded segmenter; a third-party one declares its own in its
  manifest).
- :func:`brain_box`: the bounding box of the brain (any modality nonzero), grown to a multiple of ``multiple``
  in X and Y, so a U-Net of that many poolings sees whole tokens; Z is kept whole.
- :func:`axial_stack`: the slices of a ``(4, x, y, Z)`` box as a batch of 2.5D inputs ``(Z, 4 (2k+1), x, y)``:
  each slice with its ``k`` neighbours on either side along Z (clamped at the ends), channels neighbour-major.
- :func:`with_availability`: a missing-sequence segmenter's input: the missing modalities' channels zeroed and one
  constant plane per modality appended (1 present, 0 missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: z-scores are clipped to this many standard deviations
CLIP = 5.0


def zscore(x4: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """``(4, X, Y, Z)`` float32: each channel minus the mean of its nonzero voxels, over their standard deviation,
    clipped to ``[-clip, clip]``; voxels that were 0 (background) stay 0. A channel with no nonzero voxel is 0."""
    out = np.zeros(x4.shape, dtype=np.float32)
    for c in range(x4.shape[0]):
        channel = np.asarray(x4[c], dtype=np.float32)
        inside = channel != 0
        if not inside.any():
            continue
        mean, std = nonzero_stats(channel)
        out[c][inside] = np.clip((channel[inside] - mean) / std, -clip, clip)
    return out


def nonzero_stats(channel: np.ndarray) -> tuple[float, float]:
    """The mean and standard deviation (at least 1e-6) of one volume's nonzero voxels, in its own units: what
    :func:`zscore` subtracts and divides by. ``(0.0, 1.0)`` for a volume with no nonzero voxel."""
    values = np.asarray(channel)[np.asarray(channel) != 0].astype(np.float64)
    if not values.size:
        return 0.0, 1.0
    return float(values.mean()), max(float(values.std()), 1e-6)


@dataclass(frozen=True)
class Box:
    """An ``(X, Y)`` window ``[x0, x1) x [y0, y1)`` of the volume (Z whole); it may reach past the volume's edge,
    where the input is padded with 0."""

    x0: int
    x1: int
    y0: int
    y1: int


def brain_box(x4: np.ndarray, multiple: int = 16, margin: int = 4) -> Box:
    """The brain's ``(X, Y)`` bounding box in ``x4`` ``(4, X, Y, Z)`` (any channel nonzero), ``margin`` voxels wider
    and grown about its centre to a multiple of ``multiple``. An empty volume gives the whole plane."""
    brain = (np.asarray(x4) != 0).any(axis=(0, 3))
    if not brain.any():
        xs, ys = (0, brain.shape[0] - 1), (0, brain.shape[1] - 1)
    else:
        rows, cols = np.flatnonzero(brain.any(1)), np.flatnonzero(brain.any(0))
        xs, ys = (rows[0], rows[-1]), (cols[0], cols[-1])

    def grow(lo: int, hi: int) -> tuple[int, int]:
        lo, hi = lo - margin, hi + margin + 1
        size = -(-(hi - lo) // multiple) * multiple
        start = lo - (size - (hi - lo)) // 2
        return int(start), int(start + size)

    (x0, x1), (y0, y1) = grow(*xs), grow(*ys)
    return Box(x0, x1, y0, y1)


def crop(volume: np.ndarray, box: Box) -> np.ndarray:
    """``volume[..., x0:x1, y0:y1, :]`` of a ``(..., X, Y, Z)`` array, zero-padded where the box leaves it."""
    X, Y = volume.shape[-3], volume.shape[-2]
    out = np.zeros((*volume.shape[:-3], box.x1 - box.x0, box.y1 - box.y0, volume.shape[-1]), dtype=volume.dtype)
    sx, sy = slice(max(box.x0, 0), min(box.x1, X)), slice(max(box.y0, 0), min(box.y1, Y))
    out[..., sx.start - box.x0:sx.stop - box.x0, sy.start - box.y0:sy.stop - box.y0, :] = volume[..., sx, sy, :]
    return out


def uncrop(cropped: np.ndarray, box: Box, shape: tuple[int, int, int]) -> np.ndarray:
    """The inverse of :func:`crop` for an ``(x, y, Z)`` array: placed into zeros of ``shape`` ``(X, Y, Z)``."""
    out = np.zeros(shape, dtype=cropped.dtype)
    sx, sy = slice(max(box.x0, 0), min(box.x1, shape[0])), slice(max(box.y0, 0), min(box.y1, shape[1]))
    out[sx, sy, :] = cropped[sx.start - box.x0:sx.stop - box.x0, sy.start - box.y0:sy.stop - box.y0, :]
    return out


def neighbours(z: int, depth: int, context: int) -> list[int]:
    """The slice indices of slice ``z``'s 2.5D input, ``z - context .. z + context``, clamped to ``[0, depth)``."""
    return [min(max(z + d, 0), depth - 1) for d in range(-context, context + 1)]


def axial_stack(x4: np.ndarray, slices: np.ndarray, context: int) -> np.ndarray:
    """``(len(slices), 4 (2 context + 1), x, y)`` float32: for each axial slice index of ``x4`` ``(4, x, y, Z)``, its
    neighbours' four channels, neighbour-major (``[z-k: t1c t1n t2f t2w, ..., z+k: ...]``)."""
    depth = x4.shape[-1]
    out = np.empty((len(slices), x4.shape[0] * (2 * context + 1), x4.shape[1], x4.shape[2]), dtype=np.float32)
    for i, z in enumerate(slices):
        for j, n in enumerate(neighbours(int(z), depth, context)):
            out[i, j * x4.shape[0]:(j + 1) * x4.shape[0]] = x4[..., n]
    return out


def with_availability(stack: np.ndarray, available: Sequence[bool]) -> np.ndarray:
    """``(B, 4 (2k+1) + 4, H, W)`` float32: a :func:`axial_stack` batch ``(B, 4 (2k+1), H, W)`` with the channels of
    each modality that ``available`` (four flags, in the stack's modality order) marks missing set to 0 in every
    neighbour block, and the four flags appended as constant planes (1.0 present, 0.0 missing), in the same order."""
    flags = np.asarray(available, dtype=np.float32)
    if flags.shape != (4,):
        raise ValueError(f"available: four flags, got {flags.shape}")
    blocks = stack.shape[1] // 4
    out = np.empty((stack.shape[0], stack.shape[1] + 4, *stack.shape[2:]), dtype=np.float32)
    out[:, :stack.shape[1]] = stack * np.tile(flags, blocks)[None, :, None, None]
    out[:, stack.shape[1]:] = flags[None, :, None, None]
    return out
