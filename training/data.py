"""Training data: whole cases normalized with the product's own code, served as 2D slices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, View
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import read_inputs
from brasyn_infer.synthesis.normalize import foreground_percentile, normalize_percentile
from brasyn_infer.synthesis.views import SliceGeometry


@dataclass
class CaseVolume:
    case_id: str
    x4: np.ndarray  # (4, X, Y, Z) normalized, all four modalities
    scales: dict[str, float]


def load_complete_case(folder: Path, percentile: float) -> CaseVolume:
    """Read a complete 4-modality case and normalize each volume by its own foreground percentile."""
    case = complete_case(folder)
    volumes = read_inputs(case.modalities)
    x4 = np.empty((4, *volumes[MODALITIES[0]].data.shape), dtype=np.float32)
    scales = {}
    for mod in MODALITIES:
        scales[mod.value] = foreground_percentile(volumes[mod].data, percentile)
        x4[mod.index] = normalize_percentile(volumes[mod].data, scales[mod.value])
    return CaseVolume(case.case_id, x4, scales)


class SliceSampler:
    """Random (case, view, slice, missing modality) samples from slices that hold brain."""

    def __init__(self, cases: list[CaseVolume], views: list[View], seed: int) -> None:
        self.cases = cases
        self.rng = np.random.default_rng(seed)
        self.items: list[tuple[int, View, int]] = []
        for ci, case in enumerate(cases):
            for view in views:
                geometry = SliceGeometry(view, case.x4.shape[1:])
                for s in np.flatnonzero(geometry.occupied(case.x4, [0, 1, 2, 3])):
                    self.items.append((ci, view, int(s)))

    def batch(self, size: int, augment: bool = True) -> dict[str, np.ndarray]:
        picks = self.rng.integers(0, len(self.items), size)
        xs, targets, missing, views = [], [], [], []
        for p in picks:
            ci, view, s = self.items[p]
            geometry = SliceGeometry(view, self.cases[ci].x4.shape[1:])
            plane = geometry.take(self.cases[ci].x4, np.array([s]))[0]  # (4, 240, 240)
            if augment:
                if self.rng.random() < 0.5:
                    plane = plane[:, :, ::-1]
                gain = self.rng.uniform(0.9, 1.1, size=(4, 1, 1)).astype(np.float32)
                bg = plane == -1
                plane = np.where(bg, -1, np.clip((plane + 1) * gain - 1, -1, 1))
            m = int(self.rng.integers(0, 4))
            targets.append(plane[m : m + 1].copy())
            x = plane.copy()
            x[m] = -1
            xs.append(x)
            missing.append(m)
            views.append(view.id)
        n = len(picks)
        mask = np.ones((n, 4), dtype=np.float32)
        mask[np.arange(n), missing] = 0
        return {
            "x": np.stack(xs).astype(np.float32),
            "target": np.stack(targets).astype(np.float32),
            "mask": mask,
            "missing": np.asarray(missing, dtype=np.float32),
            "view": np.asarray(views, dtype=np.float32),
        }
