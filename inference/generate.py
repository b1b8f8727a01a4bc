"""Running the 2D generator over a volume (spec section 5) on the windowing engine.

A slice is a window one voxel thick along the view axis (:attr:`SliceGeometry.window`), placed
without overlap and blended with constant weights, so :func:`inference.windows.accumulate` visits
every slice exactly once. Several views write into one :class:`~inference.windows.Aggregator`,
whose constant weights make the result the voxel-wise mean of the views (multi-view fusion).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .constants import BACKGROUND, MODALITIES, Modality, View
from .errors import DeviceOutOfMemory
from .views import SliceGeometry
from .windows import Aggregator, BlendMode, accumulate

log = logging.getLogger(__name__)


class SliceModel(Protocol):
    def __call__(self, x: np.ndarray, mask: np.ndarray, missing: np.ndarray, view: np.ndarray) -> np.ndarray: ...


class SlicePredictor:
    """Adapts a :class:`SliceModel` to the engine: ``(b, 4, *window) -> (b, 1, *window)`` normalized.

    Windows in which every available channel is background skip the model and stay -1 (the
    background re-mask would set them to -1 anyway, so the result is exact). When the model
    raises :class:`DeviceOutOfMemory`, the model batch is halved (down to 1) and retried; the
    smaller size is kept for the rest of the volume.
    """

    def __init__(self, model: SliceModel, geometry: SliceGeometry, missing: Modality, batch_size: int) -> None:
        self.model = model
        self.geometry = geometry
        self.missing = missing
        self.batch_size = batch_size
        self.available = [m.index for m in MODALITIES if m is not missing]
        self.mask_row = np.ones(len(MODALITIES), dtype=np.float32)
        self.mask_row[missing.index] = 0

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = np.full((windows.shape[0], 1, *windows.shape[2:]), BACKGROUND, dtype=np.float32)
        todo = np.flatnonzero((windows[:, self.available] != BACKGROUND).reshape(len(windows), -1).any(axis=1))
        start = 0
        while start < len(todo):
            index = todo[start : start + self.batch_size]
            n = len(index)
            try:
                y = self.model(
                    self.geometry.to_planes(windows[index]),
                    np.tile(self.mask_row, (n, 1)),
                    np.full(n, self.missing.index, dtype=np.float32),
                    np.full(n, self.geometry.view.id, dtype=np.float32),
                )
            except DeviceOutOfMemory:
                if self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("out of device memory: retrying with batch size %d", self.batch_size)
                continue
            out[index] = self.geometry.from_planes(y[:, :1])
            start += n
        return out


def slice_count(shape: tuple[int, ...], views: Sequence[View]) -> int:
    """How many slices the views of a ``(X, Y, Z)`` volume hold together (the progress total)."""
    return sum(shape[v.axis] for v in views)


def generate_volume(
    model: SliceModel,
    x4: np.ndarray,
    missing: Modality,
    views: View | Sequence[View],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Synthesize the missing channel of ``x4`` ``(4, X, Y, Z)``; returns ``(X, Y, Z)`` normalized.

    With several ``views`` the result is their voxel-wise mean. ``on_batch`` gets the number of
    slices done after each batch (skipped ones included).
    """
    views = [views] if isinstance(views, View) else list(views)
    shape = x4.shape[1:]
    aggregator = Aggregator((1, *shape), BlendMode.CONSTANT)
    for view in views:
        geometry = SliceGeometry(view, shape)  # type: ignore[arg-type]
        predictor = SlicePredictor(model, geometry, missing, batch_size)
        accumulate(aggregator, x4, predictor, geometry.window, 0.0, batch_size, on_batch)
        batch_size = predictor.batch_size  # an OOM on one view holds for the next
    return aggregator.finalize()[0]
