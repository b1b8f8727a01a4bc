"""Running the 2D generator over a volume (docs/design.md §3) on the windowing engine.

A slice is a window one voxel thick along the view axis (:attr:`SliceGeometry.window`), placed
without overlap and blended with constant weights, so :func:`brasyn_infer.synthesis.windows.accumulate` visits
every slice exactly once. Several views write into one :class:`~brasyn_infer.synthesis.windows.Aggregator`,
whose constant weights make the result the voxel-wise mean of the views (multi-view fusion).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from brasyn_infer.constants import BACKGROUND, MODALITIES, Modality, View
from brasyn_infer.synthesis.views import SliceGeometry
from brasyn_infer.synthesis.windows import (
    Aggregator,
    BlendMode,
    RetryingPredict,
    accumulate,
    brain_box,
    count_windows,
    sliding_window,
    with_oom_retry,
)

log = logging.getLogger(__name__)


class SliceModel(Protocol):
    def __call__(self, x: np.ndarray, mask: np.ndarray, missing: np.ndarray, view: np.ndarray) -> np.ndarray: ...


class WindowModel(Protocol):
    def __call__(self, x: np.ndarray, missing: np.ndarray) -> np.ndarray: ...


class SlicePredictor:
    """Adapts a :class:`SliceModel` to the engine: ``(b, 4, *window) -> (b, 1, *window)`` normalized.

    Windows in which every available channel is background skip the model and stay ``fill`` (the
    background re-mask would set them to ``fill`` anyway, so the result is exact). When the model
    raises :class:`DeviceOutOfMemory`, the model batch is halved (down to 1) and retried; the
    smaller size is kept for the rest of the volume (:func:`with_oom_retry`). ``tta``: each slice also goes
    through the model flipped along its columns (the flip the generator was trained with), and the two outputs
    are averaged. ``with_scale``: the model gives ``(y, log_scale)``; the windows then hold three channels,
    ``y``, ``y**2`` and the Laplace scale ``b = exp(log_scale)`` (:data:`SCALE_CHANNELS`), whose means over the
    views are the fused output, its second moment (the views' spread) and the mean scale. ``absent``: modalities
    missing besides ``missing`` (the case lacks two or three): their mask entries are 0 too (a pattern model).
    """

    def __init__(self, model: SliceModel, geometry: SliceGeometry, missing: Modality, batch_size: int,
                 tta: bool = False, with_scale: bool = False, absent: Sequence[Modality] = ()) -> None:
        self.model = model
        self.tta = tta
        self.with_scale = with_scale
        self.channels = len(SCALE_CHANNELS) if with_scale else 1
        self.fill = np.float32(geometry.fill)
        self.geometry = geometry
        self.missing = missing
        self.batch_size = batch_size
        absent = {missing, *absent}
        self.available = [m.index for m in MODALITIES if m not in absent]
        self.mask_row = np.ones(len(MODALITIES), dtype=np.float32)
        self.mask_row[[m.index for m in absent]] = 0

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = np.zeros((windows.shape[0], self.channels, *windows.shape[2:]), dtype=np.float32)
        out[:, 0] = self.fill
        if self.with_scale:
            out[:, 1] = self.fill * self.fill
        todo = np.flatnonzero((windows[:, self.available] != self.fill).reshape(len(windows), -1).any(axis=1))

        def run(index: np.ndarray) -> None:
            n = len(index)
            planes = self.geometry.to_planes(windows[index])
            extra = (np.tile(self.mask_row, (n, 1)), np.full(n, self.missing.index, dtype=np.float32),
                     np.full(n, self.geometry.view.id, dtype=np.float32))
            y = self._channels(self.model(planes, *extra))
            if self.tta:
                flipped = self._channels(self.model(np.ascontiguousarray(planes[..., ::-1]), *extra))[..., ::-1]
                y = (y + flipped) * np.float32(0.5)
            out[index] = self.geometry.from_planes(y)

        self.batch_size = with_oom_retry(run, todo, self.batch_size)
        return out

    def _channels(self, y: np.ndarray) -> np.ndarray:
        """The model's ``(b, k, 240, 240)`` output -> the windows' channels: ``y``, or ``y, y**2, b``."""
        if not self.with_scale:
            return y[:, :1]
        out = np.empty((len(y), len(SCALE_CHANNELS), *y.shape[2:]), dtype=np.float32)  # filled channel by channel
        out[:, 0] = y[:, 0]
        np.multiply(y[:, 0], y[:, 0], out=out[:, 1])
        np.clip(y[:, 1], *LOG_SCALE_RANGE, out=out[:, 2])
        np.exp(out[:, 2], out=out[:, 2])
        return out


#: channels of :class:`SlicePredictor` with ``with_scale``: the output, its square, the Laplace scale
SCALE_CHANNELS = ("y", "y2", "scale")
#: the log-scale output is clipped to this range before ``exp`` (a scale of 1e-4 to 20 normalized units)
LOG_SCALE_RANGE = (-9.0, 3.0)


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
    fill: float = BACKGROUND,
    tta: bool = False,
    with_scale: bool = False,
    absent: Sequence[Modality] = (),
) -> np.ndarray:
    """Synthesize the missing channel of ``x4`` ``(4, X, Y, Z)``; returns ``(X, Y, Z)`` normalized, or with
    ``with_scale`` the ``(3, X, Y, Z)`` view means of :data:`SCALE_CHANNELS` (a model with a ``log_scale`` output).

    With several ``views`` the result is their voxel-wise mean. ``on_batch`` gets the number of
    slices done after each batch (skipped ones included). ``fill``: the background value (padding, and
    slices whose inputs are all background skip the model). ``tta``: flip test-time augmentation
    (:class:`SlicePredictor`; twice the model's work). ``absent``: other modalities the case lacks (their channels are
    ``fill``, their mask entries 0).
    """
    views = [views] if isinstance(views, View) else list(views)
    shape = x4.shape[1:]
    channels = len(SCALE_CHANNELS) if with_scale else 1
    aggregator = Aggregator((channels, *shape), BlendMode.CONSTANT, np.float32)  # one window per voxel and view
    for view in views:
        geometry = SliceGeometry(view, shape, fill)  # type: ignore[arg-type]
        predictor = SlicePredictor(model, geometry, missing, batch_size, tta, with_scale, absent)
        accumulate(aggregator, x4, predictor, geometry.window, 0.0, batch_size, on_batch)
        batch_size = predictor.batch_size  # an OOM on one view holds for the next
    out = aggregator.finalize()
    return out if with_scale else out[0]


def flipped(model: SliceModel) -> SliceModel:
    """``model`` seen through the flip of :class:`SlicePredictor`'s ``tta``: the planes flipped along their
    columns on the way in, the output flipped back."""
    def run(x: np.ndarray, mask: np.ndarray, missing: np.ndarray, view: np.ndarray) -> np.ndarray:
        return model(np.ascontiguousarray(x[..., ::-1]), mask, missing, view)[..., ::-1]
    return run


def fuse(volumes: Sequence[np.ndarray]) -> np.ndarray:
    """The voxel-wise mean of ``(X, Y, Z)`` float32 volumes, summed in order in the same :class:`Aggregator` that
    :func:`generate_volume` fuses views in: bitwise the same output as with the views fused while generated."""
    aggregator = Aggregator((1, *volumes[0].shape), BlendMode.CONSTANT, np.float32)
    for volume in volumes:
        aggregator.add(volume[None], (0, 0, 0))
    return aggregator.finalize()[0]


def generate_views(
    model: SliceModel,
    x4: np.ndarray,
    missing: Modality,
    views: Sequence[View],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    fill: float = BACKGROUND,
    tta: bool = False,
    split_tta: bool = False,
    absent: Sequence[Modality] = (),
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Like :func:`generate_volume` (the same fused output, bit for bit), also keeping the members whose spread an
    uncalibrated map measures: each view's ``(X, Y, Z)`` volume, TTA-averaged with ``tta``; with ``split_tta`` too,
    the plain and the flipped pass of each view are two members (their mean is that view's TTA output)."""
    per_view, members = [], []
    for view in views:
        if tta and split_tta:
            plain, flip = (generate_volume(m, x4, missing, [view], batch_size, on_batch, fill, absent=absent)
                           for m in (model, flipped(model)))
            members += [plain, flip]
            per_view.append((plain + flip) * np.float32(0.5))  # as SlicePredictor averages the two passes
        else:
            per_view.append(generate_volume(model, x4, missing, [view], batch_size, on_batch, fill, tta, absent=absent))
            members.append(per_view[-1])
    return fuse(per_view), members


def window_region(shape: tuple[int, int, int], background: np.ndarray, placement: str,
                  crop: tuple[int, int, int] | None) -> tuple[slice, slice, slice]:
    """Where a 3D generator's windows go in a ``(X, Y, Z)`` volume: the brain's bounding box
    (``placement="brain"``), or a ``crop``-sized box centered on the volume (``"center"``, clipped to it;
    the windowing engine pads what the volume lacks)."""
    if placement == "brain":
        return brain_box(~background)
    size = crop or shape
    region = []
    for n, c in zip(shape, size, strict=True):
        start = max(0, (n - c) // 2)
        region.append(slice(start, min(n, start + c)))
    return tuple(region)  # type: ignore[return-value]


def generate_windows(
    model: WindowModel,
    x4: np.ndarray,
    missing: Modality,
    background: np.ndarray,
    window: tuple[int, int, int],
    overlap: float = 0.5,
    blend: BlendMode = BlendMode.GAUSSIAN,
    placement: str = "brain",
    crop: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    fill: float = BACKGROUND,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """A 3D generator over ``x4`` ``(4, X, Y, Z)``: ``(X, Y, Z)`` normalized, ``fill`` outside the windows' region.

    ``model`` maps ``x`` ``(B, 4, *window)`` and ``missing`` ``(B,)`` to ``(B, 1, *window)``. Windows of
    ``window`` voxels are placed over :func:`window_region` with ``overlap`` and blended with ``blend``;
    axes of the region shorter than the window are padded with ``fill``.
    """
    region = window_region(x4.shape[1:], background, placement, crop)

    def predict(batch: np.ndarray) -> np.ndarray:
        return model(np.ascontiguousarray(batch), np.full(len(batch), missing.index, dtype=np.float32))

    y = sliding_window(x4[(slice(None), *region)], RetryingPredict(predict, batch_size), window, overlap, blend,
                       batch_size, pad_value=fill, on_batch=on_batch)[0]
    out = np.full(x4.shape[1:], np.float32(fill), dtype=np.float32)
    out[region] = y
    return out


def window_total(shape: tuple[int, int, int], background: np.ndarray, window: tuple[int, int, int], overlap: float,
                 placement: str, crop: tuple[int, int, int] | None) -> int:
    """How many windows :func:`generate_windows` runs (the progress total)."""
    return count_windows(window_region(shape, background, placement, crop), window, overlap)
