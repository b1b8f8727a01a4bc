"""Running the 2D generator over a volume, slice batch by slice batch (spec section 5)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .constants import BACKGROUND, MODALITIES, Modality, View
from .errors import DeviceOutOfMemory
from .views import SliceGeometry

log = logging.getLogger(__name__)


class SliceModel(Protocol):
    def __call__(self, x: np.ndarray, mask: np.ndarray, missing: np.ndarray, view: np.ndarray) -> np.ndarray: ...


def generate_volume(
    model: SliceModel,
    x4: np.ndarray,
    missing: Modality,
    view: View,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Synthesize the missing channel of ``x4`` ``(4, X, Y, Z)``; returns ``(X, Y, Z)`` normalized.

    Slices in which every available channel is background skip the model and stay -1: the
    background re-mask would set them to -1 anyway, so the result is exact. ``on_batch`` gets
    the number of slices done after each batch (skipped ones included). When the model raises
    :class:`DeviceOutOfMemory`, the batch size is halved (down to 1) and the batch retried.
    """
    geometry = SliceGeometry(view, x4.shape[1:])  # type: ignore[arg-type]
    available = [m.index for m in MODALITIES if m is not missing]
    out = np.full(x4.shape[1:], BACKGROUND, dtype=np.float32)
    todo = np.flatnonzero(geometry.occupied(x4, available))
    if on_batch:
        on_batch(geometry.count - len(todo))
    mask_row = np.ones(len(MODALITIES), dtype=np.float32)
    mask_row[missing.index] = 0
    start = 0
    while start < len(todo):
        index = todo[start : start + batch_size]
        n = len(index)
        try:
            y = model(
                geometry.take(x4, index),
                np.tile(mask_row, (n, 1)),
                np.full(n, missing.index, dtype=np.float32),
                np.full(n, view.id, dtype=np.float32),
            )
        except DeviceOutOfMemory:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            log.warning("out of device memory: retrying with batch size %d", batch_size)
            continue
        geometry.put(out, index, y[:, 0])
        start += n
        if on_batch:
            on_batch(n)
    return out
