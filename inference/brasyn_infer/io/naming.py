"""File names of a case: which role a file plays (a modality or the segmentation) in which naming convention,
and the names the program writes in the same convention as the inputs.

Two conventions (:class:`~brasyn_infer.constants.Convention`): BraSyn (``<ID>-t1c.nii.gz``, BraTS 2023 on) and
BraTS 2018-2021 (``<ID>_t1ce.nii.gz``, ``_t1``, ``_t2``, ``_flair``). The suffix is matched at the end of the
name, before ``.nii.gz`` or ``.nii``, case-insensitively; ``seg`` belongs to both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from brasyn_infer.constants import MODALITY_SUFFIXES, SEG_SUFFIX, UNCERTAINTY_SUFFIX, Convention, Modality

_ROLES: dict[str, tuple[Modality | None, Convention | None]] = {
    suffix: (modality, convention)
    for convention, table in MODALITY_SUFFIXES.items() for modality, suffix in table.items()
} | {SEG_SUFFIX: (None, None)}
# Longest suffixes first, so that "t1ce" is never read as "t1" and "t2f" never as "t2". BraSyn suffixes may
# follow the ID with no separator (as the published code matches them); the short legacy ones need one.
_PATTERN = re.compile(
    r"^(?P<prefix>.*?)(?:(?P<sep>[-_.])(?P<legacy>t1ce|flair|t1|t2)|(?P<bsep>[-_.]?)(?P<brasyn>t1c|t1n|t2f|t2w|seg))"
    r"\.nii(?:\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class NamedFile:
    """What a file name says: the case ID before the suffix, the modality (None: the segmentation) and the
    convention (None for ``seg``, which both use)."""

    case_id: str
    modality: Modality | None
    convention: Convention | None
    #: the character between the ID and the suffix (``-``, ``_``, ``.`` or none)
    separator: str = "-"

    @property
    def is_seg(self) -> bool:
        return self.modality is None


def parse_name(name: str) -> NamedFile | None:
    """The role of a NIfTI file name; None when it is no modality and no segmentation (the file is ignored)."""
    match = _PATTERN.match(name)
    if not match:
        return None
    suffix = (match["legacy"] or match["brasyn"]).lower()
    modality, convention = _ROLES[suffix]
    separator = match["sep"] if match["legacy"] else match["bsep"]
    return NamedFile(match["prefix"], modality, convention, separator or "")


def modality_file(case_id: str, modality: Modality, convention: Convention, separator: str | None = None) -> str:
    """``<ID>-t1c.nii.gz`` (BraSyn) or ``<ID>_t1ce.nii.gz`` (BraTS 2018-2021); ``separator``: the inputs' own (e.g.
    ``_`` for ``<ID>_t1n.nii.gz``), default the convention's."""
    sep = convention.separator if separator is None else separator
    return f"{case_id}{sep}{convention.suffix(modality)}.nii.gz"


def uncertainty_file(case_id: str, modality: Modality, convention: Convention, separator: str | None = None) -> str:
    """``<ID>-t1c-uncertainty.nii.gz`` or ``<ID>_t1ce_uncertainty.nii.gz`` (with the inputs' ``separator``)."""
    sep = convention.separator if separator is None else separator
    between = sep or convention.separator
    return f"{case_id}{sep}{convention.suffix(modality)}{between}{UNCERTAINTY_SUFFIX}.nii.gz"


def seg_file(case_id: str, convention: Convention, separator: str | None = None) -> str:
    """``<ID>-seg.nii.gz`` (BraSyn) or ``<ID>_seg.nii.gz`` (BraTS 2018-2021), with the inputs' ``separator``."""
    return f"{case_id}{convention.separator if separator is None else separator}{SEG_SUFFIX}.nii.gz"
