"""A 2.5D slice segmenter over a volume: pure numpy around a ``forward`` callable (ONNX Runtime or torch).

:func:`segment_volume` takes the four modalities ``(4, X, Y, Z)`` (MODALITIES order, scanner units, as nibabel
loads them), normalizes them (:func:`~brasyn_infer.segmentation.preprocess.zscore`), crops the brain's box, runs
``forward`` on batches of axial 2.5D slices and returns the ``(X, Y, Z)`` uint8 class map (0 background, 1 NCR,
2 ED, 3 ET), 0 outside the brain. Training scores its held-out cases with this same function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from brasyn_infer.segmentation.preprocess import axial_stack, brain_box, crop, uncrop, with_availability, zscore

#: ``(B, C, H, W)`` float32 -> ``(B, classes, H, W)`` logits or probabilities
Forward = Callable[[np.ndarray], np.ndarray]


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax along ``axis`` (float32, numerically stable)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted, dtype=np.float32)
    return e / e.sum(axis=axis, keepdims=True)


def segment_volume(x4: np.ndarray, forward: Forward, context: int, multiple: int, batch: int = 16,
                   flip: bool = False, normalized: bool = False, logits: bool = True,
                   available: Sequence[bool] | None = None) -> np.ndarray:
    """``(X, Y, Z)`` uint8 classes of a case ``x4`` ``(4, X, Y, Z)``.

    ``context``: neighbours on each side of a slice (2.5D input of ``4 (2 context + 1)`` channels); ``multiple``: the
    box's sides are rounded up to it; ``batch``: slices per ``forward`` call; ``flip``: also run the slices mirrored
    along X and average the probabilities (test-time augmentation, twice the work); ``normalized``: ``x4`` is
    already z-scored (or the segmenter takes scanner units); ``logits``: ``forward`` returns logits (else
    probabilities); ``available``: four flags (MODALITIES order) for a missing-sequence segmenter, whose input is
    :func:`~brasyn_infer.segmentation.preprocess.with_availability` of each batch (the missing channels 0)."""
    prob = softmax if logits else (lambda a: a)
    shape = tuple(int(n) for n in x4.shape[1:])
    z = x4.astype(np.float32) if normalized else zscore(x4)
    brain = (z != 0).any(axis=0)
    box = brain_box(z, multiple)
    boxed = crop(z, box)
    occupied = np.flatnonzero(crop(brain[None], box)[0].any(axis=(0, 1)))
    classes = np.zeros(boxed.shape[1:], dtype=np.uint8)
    for start in range(0, len(occupied), batch):
        idx = occupied[start:start + batch]
        stack = axial_stack(boxed, idx, context)
        if available is not None:
            stack = with_availability(stack, available)
        probs = prob(np.asarray(forward(stack), dtype=np.float32))
        if flip:
            probs = 0.5 * (probs + prob(np.asarray(forward(stack[:, :, ::-1].copy()), dtype=np.float32))[:, :, ::-1])
        classes[..., idx] = np.moveaxis(probs.argmax(axis=1).astype(np.uint8), 0, -1)
    out = uncrop(classes, box, shape)  # type: ignore[arg-type]
    out[~brain] = 0
    return out
