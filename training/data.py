"""Training data: whole cases read and normalized with the product's own code, served as 2D slices or crops.

Cases are found by the product's case discovery (BraSyn and BraTS 2018-2021 names), normalized per volume by
the ``percentile`` scheme (each modality divided by its own foreground 99.5th percentile, to [-1, 1]) and held
as float16 ``(4, X, Y, Z)`` arrays, with the tumor mask where the case has a segmentation. Each batch is drawn
from its own random stream (seeded by the run's seed and the step), so a resumed run draws the same batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brasyn_infer.constants import BACKGROUND, MODALITIES, PLANE, Convention, Modality, View
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.naming import modality_file, uncertainty_file
from brasyn_infer.io.nifti import load_volume, read_inputs
from brasyn_infer.segmentation.labels import classes_from_labels, convention_for_files, fitting_convention
from brasyn_infer.segmentation.preprocess import axial_stack, nonzero_stats, zscore
from brasyn_infer.synthesis.linear import LinearStats, case_stats
from brasyn_infer.synthesis.normalize import foreground_percentile, normalize_percentile
from brasyn_infer.synthesis.views import SliceGeometry

#: the token grid of the generator: crops start at multiples of this many pixels (240 / 15)
TOKEN = 16


@dataclass
class CaseVolume:
    case_id: str
    x4: np.ndarray  #: (4, X, Y, Z) float16, normalized, all four modalities
    scales: dict[str, float]  #: each modality's foreground percentile (raw units)
    tumor: np.ndarray | None = None  #: (X, Y, Z) bool, seg > 0 (either label convention), or None
    #: (X, Y, Z) uint8 classes (0 background, 1 NCR, 2 ED, 3 ET) of the segmentation, or None
    classes: np.ndarray | None = None
    stats: dict[Modality, LinearStats] = field(default_factory=dict)  #: the linear fit's sufficient statistics
    #: (4, X, Y, Z) float16, the segmenter's input (``segmentation.preprocess.zscore`` of the raw volumes), or None
    zs: np.ndarray | None = None
    #: (4, 2) float32: per modality, ``(a, b)`` with ``a * x + b`` the z-score of a voxel ``x`` in this case's
    #: normalized units (where the percentile clip did not act), or None
    z_affine: np.ndarray | None = None


def load_complete_case(folder: Path, percentile: float, seg_inputs: bool = False) -> CaseVolume:
    """Read a complete 4-modality case, normalize each volume by its own foreground percentile, and gather
    the linear baseline's statistics of each dropped modality. ``seg_inputs``: also the segmenter's z-scored
    volumes and the map from normalized units to z-scores (:attr:`CaseVolume.zs`, :attr:`CaseVolume.z_affine`),
    which the segmentation-consistency term reads."""
    case = complete_case(folder)
    volumes = read_inputs(case.modalities)
    x4 = np.empty((4, *volumes[MODALITIES[0]].data.shape), dtype=np.float32)
    scales = {}
    for mod in MODALITIES:
        scales[mod.value] = foreground_percentile(volumes[mod].data, percentile)
        x4[mod.index] = normalize_percentile(volumes[mod].data, scales[mod.value])
    stats = {m: case_stats(x4, m) for m in MODALITIES}
    tumor = classes = None
    if case.seg is not None:
        seg = load_volume(case.seg, allow_empty=True).data
        tumor = seg > 0
        classes = classes_from_labels(seg, fitting_convention(seg, convention_for_files(case.convention)), case.seg)
    zs = z_affine = None
    if seg_inputs:
        raw = np.stack([volumes[m].data.astype(np.float32) for m in MODALITIES])
        zs = zscore(raw).astype(np.float16)
        z_affine = np.asarray([to_zscore(scales[m.value], *nonzero_stats(raw[m.index])) for m in MODALITIES],
                              dtype=np.float32)
    return CaseVolume(case.case_id, x4.astype(np.float16), scales, tumor, stats=stats, classes=classes, zs=zs,
                      z_affine=z_affine)


def to_zscore(scale: float, mean: float, std: float) -> tuple[float, float]:
    """``(a, b)`` such that ``a * x + b`` is the z-score ``(v - mean) / std`` of a raw value ``v`` whose normalized
    value is ``x = 2 v / scale - 1`` (``synthesis.normalize.normalize_percentile`` below its clip)."""
    return scale / (2 * std), (scale / 2 - mean) / std


def majority_background(available: np.ndarray) -> np.ndarray:
    """``(S, S)`` bool of ``available`` ``(n, S, S)``: at least half of the available channels are background (two of
    three, one of two, the one of one), as the pipeline masks it (``synthesis.normalize.background_mask``)."""
    return 2 * (available == np.float32(BACKGROUND)).sum(0) >= len(available)


def input_gamma(x: np.ndarray, missing: int, log_gamma: np.ndarray) -> np.ndarray:
    """``x`` ``(4, S, S)`` on [-1, 1] with BACKGROUND outside the brain: every channel but ``missing`` raised to
    the power ``exp(log_gamma[c])`` on [0, 1] (``(x + 1) / 2``), its background kept. Returns a new array."""
    out = x.astype(np.float32)  # a copy
    for c in range(len(x)):
        if c == missing:
            continue
        bg = x[c] == np.float32(BACKGROUND)
        unit = np.clip((x[c] + 1) / 2, 0, 1) ** np.float32(np.exp(log_gamma[c]))
        out[c] = np.where(bg, np.float32(BACKGROUND), unit * 2 - 1)
    return out


def find_case_folders(roots: list[Path]) -> list[Path]:
    """The case folders under each root (a folder of case folders), sorted by name."""
    folders = []
    for root in roots:
        folders += [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: p.name)


def saved_path(volumes: Path, case_id: str, missing: Modality) -> Path:
    """Where ``brasyn-infer evaluate --save-volumes VOLUMES`` keeps the output for ``missing`` of a case:
    ``VOLUMES/<case>/<case>-<mod>.nii.gz`` (BraSyn names, whatever the inputs' convention)."""
    return volumes / case_id / modality_file(case_id, missing, Convention.BRASYN)


@dataclass(frozen=True)
class SavedOutput:
    """A generator output that ``evaluate --save-volumes`` kept (:func:`saved_path`), with the complete case folder
    it was synthesized from."""

    case_id: str
    folder: Path
    missing: Modality
    path: Path

    @property
    def uncertainty(self) -> Path:
        """Its map, where evaluate scored one: ``<case>-<mod>-uncertainty.nii.gz`` beside it."""
        return self.path.with_name(uncertainty_file(self.case_id, self.missing, Convention.BRASYN))


def saved_outputs(volumes: Path, folders: Mapping[str, Path]) -> list[SavedOutput]:
    """Every output under ``volumes``, by case then modality, each with its case folder from ``folders`` (case ID
    -> folder, e.g. from :func:`find_case_folders`). Exits naming the folder when a case has none, or when
    ``volumes`` holds no output."""
    outputs = []
    for case_dir in sorted(d for d in volumes.iterdir() if d.is_dir()):
        if case_dir.name not in folders:
            raise SystemExit(f"{case_dir}: no case folder {case_dir.name} under --cases")
        for m in MODALITIES:
            path = saved_path(volumes, case_dir.name, m)
            if path.is_file():
                outputs.append(SavedOutput(case_dir.name, folders[case_dir.name], m, path))
    if not outputs:
        raise SystemExit(f"{volumes}: no <case>/<case>-<modality>.nii.gz outputs (evaluate --save-volumes DIR)")
    return outputs


class SliceSampler:
    """Random (case, view, slice, missing modality) samples from slices that hold brain.

    ``crop``: a side in pixels (a multiple of 16): each sample is a ``crop x crop`` window of the 240x240 plane
    around a random brain pixel (a tumor pixel with probability ``tumor``, where the case has a segmentation),
    its corner on the 16-pixel token grid; None: whole planes. ``missing_p``: the probability of each modality
    being the dropped one (MODALITIES order), the target. ``missing_counts``: the probabilities of 1, 2 and 3
    modalities missing; the others missing besides the target are drawn uniformly, set to the fill and masked out
    (the default, ``(1, 0, 0)``, draws exactly what the one-missing recipe drew). ``gamma``: with augmentation, each of the three inputs' brain
    intensities (on [0, 1]) is raised to its own power ``exp(U(-gamma, gamma))``, a contrast the target keeps:
    the scanner-to-scanner differences of an input's contrast that the output should not depend on (0: none).
    ``context``: also the segmenter's 2.5D input of each axial sample (its real z-scored slices, ``context``
    neighbours on each side; the cases must be loaded with ``seg_inputs``), for the segmentation-consistency term.
    """

    def __init__(self, cases: list[CaseVolume], views: list[View], seed: int, crop: int | None = None,
                 tumor: float = 0.0, missing_p: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25),
                 gamma: float = 0.0, missing_counts: tuple[float, ...] = (1.0, 0.0, 0.0),
                 context: int | None = None) -> None:
        if crop is not None and (crop % TOKEN or not 0 < crop <= PLANE):
            raise ValueError(f"crop {crop} must be a multiple of {TOKEN} up to {PLANE}")
        self.cases, self.seed, self.crop, self.tumor, self.gamma = cases, seed, crop, tumor, gamma
        self.context = context
        if context is not None and any(c.zs is None for c in cases):
            raise ValueError("context: the cases must be loaded with seg_inputs=True")
        self.missing_p = np.asarray(missing_p, dtype=np.float64) / np.sum(missing_p)
        if len(missing_counts) != 3 or min(missing_counts) < 0 or sum(missing_counts) <= 0:
            raise ValueError(f"missing_counts: three probabilities of 1, 2 and 3 missing, got {missing_counts}")
        self.missing_counts = np.asarray(missing_counts, dtype=np.float64) / np.sum(missing_counts)
        self.items: list[tuple[int, View, int]] = []
        self.tumor_items: list[tuple[int, View, int]] = []
        for ci, case in enumerate(cases):
            for view in views:
                geometry = SliceGeometry(view, case.x4.shape[1:])
                for s in np.flatnonzero(geometry.occupied(case.x4, [0, 1, 2, 3])):
                    self.items.append((ci, view, int(s)))
                if case.tumor is not None:
                    axes = tuple(a for a in range(3) if a != view.axis)
                    for s in np.flatnonzero(case.tumor.any(axis=axes)):
                        self.tumor_items.append((ci, view, int(s)))

    def _plane(self, ci: int, view: View, s: int) -> np.ndarray:
        geometry = SliceGeometry(view, self.cases[ci].x4.shape[1:])
        return geometry.take(self.cases[ci].x4, np.array([s]))[0].astype(np.float32)  # (4, 240, 240)

    def _class_plane(self, ci: int, view: View, s: int) -> np.ndarray:
        """``(240, 240)`` uint8 classes of a slice (zeros where the case has no segmentation)."""
        classes = self.cases[ci].classes
        if classes is None:
            return np.zeros((PLANE, PLANE), dtype=np.uint8)
        geometry = SliceGeometry(view, classes.shape, fill=0.0)
        return geometry.take(classes[None].astype(np.float32), np.array([s]))[0, 0].astype(np.uint8)

    def _seg_plane(self, ci: int, view: View, s: int) -> np.ndarray | None:
        """The segmenter's ``(4 (2 context + 1), 240, 240)`` input of axial slice ``s`` (None: no ``context``, or
        another view, whose planes the axial segmenter does not read)."""
        if self.context is None or view is not View.AXIAL:
            return None
        return axial_stack(self.cases[ci].zs, np.array([s]), self.context)[0]

    def _tumor_plane(self, ci: int, view: View, s: int) -> np.ndarray:
        tumor = self.cases[ci].tumor
        geometry = SliceGeometry(view, tumor.shape, fill=0.0)
        return geometry.take(tumor[None].astype(np.float32), np.array([s]))[0, 0] > 0

    def batch(self, step: int, size: int, augment: bool = True, whole: bool = False) -> dict[str, np.ndarray]:
        """Batch number ``step`` (the same for the same seed and step): ``x`` ``(B, 4, S, S)`` with the dropped
        channel at -1, ``target`` ``(B, 1, S, S)``, ``background`` ``(B, 1, S, S)`` bool (two of the three inputs
        background, as the pipeline masks it), ``mask`` ``(B, 4)``, ``missing`` and ``view`` ``(B,)``, ``origin``
        ``(B, 2)`` int64 (the crop's corner in tokens), ``lesion`` ``(B, 1, S, S)`` uint8 classes (0 background,
        1 NCR, 2 ED, 3 ET; 0 without a segmentation). ``whole``: 240x240 planes whatever the crop. With ``context``
        also ``seg_x`` ``(B, 4 (2 context + 1), S, S)`` (the segmenter's real input of the same crop, neighbour-major
        as ``segmentation.preprocess.axial_stack``; 0 for a sample of another view), ``seg_affine`` ``(B, 2)`` (the
        target's normalized-units-to-z-score map, :func:`to_zscore`) and ``seg_ok`` ``(B,)`` (1.0 for an axial
        sample of a case with a segmentation: the term applies)."""
        rng = np.random.default_rng([self.seed, step])
        side = PLANE if (whole or self.crop is None) else self.crop
        xs, targets, backgrounds, missing, views, origins, masks, lesions = [], [], [], [], [], [], [], []
        seg_xs, seg_affines, seg_ok = [], [], []
        for _ in range(size):
            from_tumor = self.tumor_items and rng.random() < self.tumor
            ci, view, s = (self.tumor_items if from_tumor else self.items)[rng.integers(len(self.tumor_items if from_tumor else self.items))]
            plane = self._plane(ci, view, s)
            pick = self._tumor_plane(ci, view, s) if from_tumor else (plane != np.float32(BACKGROUND)).any(0)
            lesion = self._class_plane(ci, view, s)
            seg_plane = self._seg_plane(ci, view, s)
            if augment and rng.random() < 0.5:  # along the plane's columns (never left-right for sagittal slices)
                plane, pick, lesion = plane[:, :, ::-1], pick[:, ::-1], lesion[:, ::-1]
                seg_plane = None if seg_plane is None else seg_plane[:, :, ::-1]
            r0 = c0 = 0
            if side < PLANE:
                rows, cols = np.nonzero(pick)
                k = rng.integers(len(rows)) if len(rows) else None
                center = (rows[k], cols[k]) if k is not None else (PLANE // 2, PLANE // 2)
                r0, c0 = (int(np.clip(round((c - side / 2) / TOKEN) * TOKEN, 0, PLANE - side)) for c in center)
            plane = np.ascontiguousarray(plane[:, r0:r0 + side, c0:c0 + side])
            lesions.append(np.ascontiguousarray(lesion[r0:r0 + side, c0:c0 + side])[None])
            if self.context is not None:
                ok = seg_plane is not None and self.cases[ci].classes is not None
                seg_xs.append(np.ascontiguousarray(seg_plane[:, r0:r0 + side, c0:c0 + side]) if seg_plane is not None
                              else np.zeros((len(MODALITIES) * (2 * self.context + 1), side, side), np.float32))
                seg_ok.append(1.0 if ok else 0.0)
            if augment:
                gain = rng.uniform(0.9, 1.1, size=(4, 1, 1)).astype(np.float32)
                bg = plane == np.float32(BACKGROUND)
                plane = np.where(bg, np.float32(BACKGROUND), np.clip((plane + 1) * gain - 1, -1, 1)).astype(np.float32)
            m = int(rng.choice(len(MODALITIES), p=self.missing_p))
            absent = [m]
            if self.missing_counts[0] < 1.0:
                count = 1 + int(rng.choice(3, p=self.missing_counts))
                others = [c for c in range(len(MODALITIES)) if c != m]
                absent += [int(c) for c in rng.choice(others, size=count - 1, replace=False)]
            targets.append(plane[m:m + 1].copy())
            x = plane.copy()
            x[absent] = BACKGROUND
            if augment and self.gamma > 0:
                x = input_gamma(x, m, rng.uniform(-self.gamma, self.gamma, size=len(MODALITIES)))
            available = [c for c in range(len(MODALITIES)) if c not in absent]
            backgrounds.append(majority_background(x[available])[None])
            xs.append(x)
            masks.append([0.0 if c in absent else 1.0 for c in range(len(MODALITIES))])
            missing.append(m)
            if self.context is not None:
                seg_affines.append(self.cases[ci].z_affine[m])
            views.append(view.id)
            origins.append((r0 // TOKEN, c0 // TOKEN))
        mask = np.asarray(masks, dtype=np.float32)
        seg = ({"seg_x": np.stack(seg_xs), "seg_affine": np.stack(seg_affines).astype(np.float32),
                "seg_ok": np.asarray(seg_ok, dtype=np.float32)} if self.context is not None else {})
        return {**seg,
            "x": np.stack(xs), "target": np.stack(targets), "background": np.stack(backgrounds), "mask": mask,
            "missing": np.asarray(missing, dtype=np.float32), "view": np.asarray(views, dtype=np.float32),
            "origin": np.asarray(origins, dtype=np.int64), "lesion": np.stack(lesions),
        }
