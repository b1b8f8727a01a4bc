"""BraTS tumor labels and regions: one source of truth for the conventions (docs/design.md §7).

A label map is an ``(X, Y, Z)`` integer array as nibabel loads it. The segmenter works in **classes**
``0 background, 1 necrotic / non-enhancing core, 2 edema, 3 enhancing tumor``; files hold **labels**, whose
numbering depends on the release:

| convention | 1 | 2 | 3 | 4 |
|---|---|---|---|---|
| ``2018`` (BraTS 2018-2022, legacy file names) | NCR/NET | ED | - | ET |
| ``2023`` (BraTS 2023-2025 glioma, BraSyn names) | NCR | ED | ET | - |
| ``2024`` (BraTS 2024 post-treatment glioma) | NETC | SNFH | ET | RC (resection cavity, not tumor) |

Regions, as the official ``brats-evaluation`` package's configs define them: WT (whole tumor) = NCR + ED + ET,
TC (tumor core) = NCR + ET, ET = ET. In the 2024 post-treatment convention the resection cavity (4) is in no
region, so it is not tumor.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from brasyn_infer.constants import Convention


class LabelConvention(str, Enum):
    """How a segmentation file numbers the tumor's parts (the module's table)."""

    BRATS2018 = "2018"  #: 1 NCR/NET, 2 ED, 4 ET
    BRATS2023 = "2023"  #: 1 NCR, 2 ED, 3 ET
    BRATS2024 = "2024"  #: 1 NETC, 2 SNFH, 3 ET, 4 resection cavity (not tumor)

    @property
    def labels(self) -> dict[int, int]:
        """Label in a file -> class (0 background, 1 NCR, 2 ED, 3 ET); labels absent here are background."""
        return {LabelConvention.BRATS2018: {1: 1, 2: 2, 4: 3},
                LabelConvention.BRATS2023: {1: 1, 2: 2, 3: 3},
                LabelConvention.BRATS2024: {1: 1, 2: 2, 3: 3}}[self]

    @property
    def regions(self) -> dict[str, tuple[int, ...]]:
        """Region name -> the labels (in this convention) that make it up, as ``brats-evaluation`` defines them."""
        et = 4 if self is LabelConvention.BRATS2018 else 3
        return {"WT": (1, 2, et), "TC": (1, et), "ET": (et,)}


#: class -> region membership (classes 1 NCR, 2 ED, 3 ET)
CLASS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
REGIONS: tuple[str, ...] = ("WT", "TC", "ET")
NUM_CLASSES = 4


def convention_for_files(convention: Convention) -> LabelConvention:
    """The label convention the file names imply: legacy names (``_seg``) are BraTS 2018-2022 (ET = 4), BraSyn names
    (``-seg``) BraTS 2023 and later (ET = 3; the 2024 post-treatment set cannot be told from its names)."""
    return LabelConvention.BRATS2018 if convention is Convention.LEGACY else LabelConvention.BRATS2023


def classes_from_labels(seg: np.ndarray, convention: LabelConvention) -> np.ndarray:
    """``(X, Y, Z)`` uint8 classes of a label map ``seg`` in ``convention`` (labels it does not know -> 0)."""
    labels = np.rint(np.asarray(seg)).astype(np.int64)
    out = np.zeros(labels.shape, dtype=np.uint8)
    for label, cls in convention.labels.items():
        out[labels == label] = cls
    return out


def labels_from_classes(classes: np.ndarray, convention: LabelConvention) -> np.ndarray:
    """``(X, Y, Z)`` uint8 labels in ``convention`` of a class map (the inverse of :func:`classes_from_labels`)."""
    lut = np.zeros(NUM_CLASSES, dtype=np.uint8)
    for label, cls in convention.labels.items():
        lut[cls] = label
    return lut[np.asarray(classes, dtype=np.int64)]


def region_masks(classes: np.ndarray) -> dict[str, np.ndarray]:
    """``{WT, TC, ET}`` -> ``(X, Y, Z)`` bool masks of a class map."""
    return {r: np.isin(classes, members) for r, members in CLASS_REGIONS.items()}


def tumor_mask(seg: np.ndarray, convention: LabelConvention) -> np.ndarray:
    """``(X, Y, Z)`` bool: the whole tumor (WT) of a label map; a 2024 resection cavity is not tumor."""
    return np.isin(np.rint(np.asarray(seg)).astype(np.int64), convention.regions["WT"])
