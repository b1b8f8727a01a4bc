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

A file is read strictly (:func:`check_labels`): a label the chosen convention does not define (label 4 read as 2023,
label 3 read as 2018) or a value that is not a whole number (a probability or a resampled map) is a
:class:`~brasyn_infer.errors.CaseError` naming the labels found and the ``--labels`` that fits, never a silent 0.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np

from brasyn_infer.constants import Convention
from brasyn_infer.errors import CaseError


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
    def defined(self) -> frozenset[int]:
        """Every label a file in this convention may hold, background 0 included (2024's 4 is the cavity)."""
        return frozenset({0, *self.labels}) | ({4} if self is LabelConvention.BRATS2024 else set())

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


def fitting_conventions(found: set[int]) -> list[LabelConvention]:
    """The conventions that define every label in ``found``."""
    return [c for c in LabelConvention if found <= c.defined]


def fitting_convention(seg: np.ndarray, preferred: LabelConvention) -> LabelConvention:
    """``preferred`` when it defines every label of ``seg``, else the first convention that does (2018 before
    2024 for labels 1, 2, 4); CaseError when none does. For training data, whose files carry their release's
    numbering whatever their names (the product reads strictly: :func:`check_labels`)."""
    found = {int(v) for v in np.unique(np.rint(np.asarray(seg)))}
    if found <= preferred.defined:
        return preferred
    fits = fitting_conventions(found)
    if not fits:
        raise CaseError(f"labels {', '.join(map(str, sorted(found)))} fit no BraTS convention", None,
                        "relabel the file as BraTS 2023 (1 NCR, 2 ED, 3 ET) or 2018 (1, 2, 4 ET)")
    return fits[0]


def check_labels(seg: np.ndarray, convention: LabelConvention, path: Path | None = None) -> np.ndarray:
    """``seg`` as int64 labels, or CaseError naming ``path``: a value that is not a whole number, or a label that
    ``convention`` does not define (the message lists the labels found and the ``--labels`` values that fit)."""
    values = np.asarray(seg)
    whole = np.rint(values)
    if not np.array_equal(whole, values):
        odd = values[whole != values]
        raise CaseError(f"the segmentation holds values that are not whole numbers (e.g. {float(odd.flat[0]):g}): not "
                        "a label map", path, "give the label map itself (resample labels with nearest neighbour, "
                        "never as a soft or interpolated map)")
    labels = whole.astype(np.int64)
    found = {int(v) for v in np.unique(labels)}
    unknown = sorted(found - convention.defined)
    if unknown:
        fits = [c for c in fitting_conventions(found) if c is not convention]
        shown = ", ".join(str(v) for v in sorted(found - {0}))
        fix = (" or ".join(f"--labels {c.value}" for c in fits) + " if the file follows that numbering"
               if fits else "relabel the file as BraTS 2023 (1 NCR, 2 ED, 3 ET) or 2018 (1, 2, 4 ET)")
        raise CaseError(f"labels {shown} found; the {convention.value} convention defines "
                        f"{', '.join(str(v) for v in sorted(convention.defined - {0}))} (label "
                        f"{', '.join(map(str, unknown))} would be lost)", path, fix)
    return labels


def classes_from_labels(seg: np.ndarray, convention: LabelConvention, path: Path | None = None) -> np.ndarray:
    """``(X, Y, Z)`` uint8 classes of a label map ``seg`` in ``convention`` (checked by :func:`check_labels`:
    CaseError naming ``path`` for a label the convention does not define; 2024's cavity, 4, is background)."""
    labels = check_labels(seg, convention, path)
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


def tumor_mask(seg: np.ndarray, convention: LabelConvention, path: Path | None = None) -> np.ndarray:
    """``(X, Y, Z)`` bool: the whole tumor (WT) of a label map (checked by :func:`check_labels`); a 2024 resection
    cavity is not tumor."""
    return np.isin(check_labels(seg, convention, path), convention.regions["WT"])
