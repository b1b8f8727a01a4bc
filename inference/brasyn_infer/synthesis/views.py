"""Slices of a volume as thin windows: one engine for the three views (docs/design.md §3).

A view takes 2D slices along one axis of a ``(C, X, Y, Z)`` volume, keeping the other two axes in
order as (rows, columns): axial ``x[:, :, :, k]`` -> ``(X, Y)``; sagittal ``x[:, i]`` -> ``(Y, Z)``;
coronal ``x[:, :, j]`` -> ``(X, Z)``. In-plane axes shorter than 240 are padded to 240 with the normalization's fill (``fill``, -1 by default),
``(240 - n) // 2`` before (42 for 155) and the rest after (43), and cropped back after the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brasyn_infer.constants import BACKGROUND, PLANE, View


@dataclass(frozen=True)
class SliceGeometry:
    """Where a volume's slices sit in the model's 240x240 plane for one view."""

    view: View
    shape: tuple[int, int, int]  # (X, Y, Z)
    fill: float = BACKGROUND  #: the padding (the normalization's background value)

    @property
    def count(self) -> int:
        return self.shape[self.view.axis]

    @property
    def plane_axes(self) -> tuple[int, int]:
        return tuple(a for a in range(3) if a != self.view.axis)  # type: ignore[return-value]

    @property
    def pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        out = []
        for axis in self.plane_axes:
            n = self.shape[axis]
            if n > PLANE:
                raise ValueError(f"axis of length {n} exceeds the model's {PLANE}")
            before = (PLANE - n) // 2
            out.append((before, PLANE - n - before))
        return out[0], out[1]

    def take(self, volume: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Slices ``index`` of a ``(C, X, Y, Z)`` volume as a ``(b, C, 240, 240)`` float32 batch."""
        slabs = np.take(volume, index, axis=1 + self.view.axis)  # (C, ..., b, ...)
        return self._pad(np.moveaxis(slabs, 1 + self.view.axis, 0))  # (b, C, rows, cols)

    def _pad(self, slabs: np.ndarray) -> np.ndarray:
        """``(b, C, rows, cols)`` -> ``(b, C, 240, 240)`` float32, padded with ``fill``."""
        (r0, r1), (c0, c1) = self.pads
        if r0 or r1 or c0 or c1:
            padded = np.full((*slabs.shape[:2], PLANE, PLANE), self.fill, dtype=np.float32)
            padded[:, :, r0 : PLANE - r1, c0 : PLANE - c1] = slabs
            return padded
        return np.ascontiguousarray(slabs, dtype=np.float32)

    @property
    def window(self) -> tuple[int, int, int]:
        """The slice as a window of the volume: one voxel thick along the view axis."""
        return tuple(1 if a == self.view.axis else n for a, n in enumerate(self.shape))  # type: ignore[return-value]

    def to_planes(self, windows: np.ndarray) -> np.ndarray:
        """``(b, C, *window)`` slice windows -> ``(b, C, 240, 240)`` float32 model planes, padded with ``fill``."""
        return self._pad(windows.squeeze(axis=2 + self.view.axis))

    def from_planes(self, planes: np.ndarray) -> np.ndarray:
        """``(b, C, 240, 240)`` model planes -> ``(b, C, *window)`` slice windows, cropped."""
        (r0, r1), (c0, c1) = self.pads
        cropped = planes[:, :, r0 : PLANE - r1, c0 : PLANE - c1]
        return np.expand_dims(cropped, axis=2 + self.view.axis)

    def put(self, out: np.ndarray, index: np.ndarray, planes: np.ndarray) -> None:
        """Write ``(b, 240, 240)`` model planes into slices ``index`` of ``out`` ``(X, Y, Z)``, cropped."""
        (r0, r1), (c0, c1) = self.pads
        cropped = planes[:, r0 : PLANE - r1, c0 : PLANE - c1]
        target = np.moveaxis(out, self.view.axis, 0)  # a view of out: (n, rows, cols)
        target[index] = cropped

    def occupied(self, volume: np.ndarray, channels: list[int]) -> np.ndarray:
        """Bool per slice: does any of ``channels`` of ``(C, X, Y, Z)`` hold a non-background voxel?"""
        axes = tuple(a for a in range(3) if a != self.view.axis)
        flags = np.zeros(self.count, dtype=bool)
        for c in channels:
            flags |= (volume[c] != np.float32(self.fill)).any(axis=axes)
        return flags
