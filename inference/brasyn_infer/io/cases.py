"""Finding cases: which files a case folder holds and which modality is missing (spec section 1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from brasyn_infer.constants import MODALITIES, NIFTI_SUFFIXES, SEG_SUFFIX, UNCERTAINTY_SUFFIX, Modality
from brasyn_infer.errors import BrasynError, CaseError

_ROLE = re.compile(r"^(?P<prefix>.*?)[-_.]?(?P<role>t1c|t1n|t2f|t2w|seg)\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """One case folder: its ID, its three input files, the missing modality, an optional seg."""

    case_id: str
    folder: Path
    inputs: dict[Modality, Path]
    missing: Modality
    seg: Path | None = None
    ignored: tuple[Path, ...] = field(default_factory=tuple)

    def output_name(self) -> str:
        """The organizers' file name: ``<ID>-<missing>.nii.gz``."""
        return f"{self.case_id}-{self.missing.value}.nii.gz"

    def uncertainty_name(self) -> str:
        """``--uncertainty``'s file name: ``<ID>-<missing>-uncertainty.nii.gz``."""
        return f"{self.case_id}-{self.missing.value}-{UNCERTAINTY_SUFFIX}.nii.gz"


@dataclass(frozen=True)
class CaseEntry:
    """A discovered case folder: a :class:`Case`, or the error that makes it unusable."""

    case_id: str
    folder: Path
    case: Case | None = None
    error: CaseError | None = None


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES) and not path.name.startswith(".")


@dataclass(frozen=True)
class CaseFiles:
    """What a case folder holds, by role, before any check on which modalities are there."""

    case_id: str
    folder: Path
    modalities: dict[Modality, Path]
    seg: Path | None
    ignored: tuple[Path, ...]

    @property
    def absent(self) -> list[Modality]:
        return [m for m in MODALITIES if m not in self.modalities]


def scan_folder(folder: Path) -> CaseFiles:
    """Classify a folder's NIfTI files as t1c/t1n/t2f/t2w/seg by their suffix; others are ignored."""
    files = sorted(p for p in folder.iterdir() if is_nifti(p))
    if not files:
        raise CaseError("no NIfTI files (.nii.gz or .nii) in this case folder", folder,
                        "put the case's <ID>-t1c/t1n/t2f/t2w.nii.gz files in it")
    found: dict[Modality, Path] = {}
    seg: Path | None = None
    ignored: list[Path] = []
    prefixes: set[str] = set()
    for path in files:
        match = _ROLE.match(path.name)
        if not match:
            ignored.append(path)
            continue
        role = match["role"].lower()
        prefixes.add(match["prefix"])
        if role == SEG_SUFFIX:
            seg = path
            continue
        mod = Modality(role)
        if mod in found:
            raise CaseError(f"two files for {mod.value}: {found[mod].name} and {path.name}", folder,
                            "keep one file per modality")
        found[mod] = path
    if not found:
        raise CaseError("no file named like <ID>-t1c/t1n/t2f/t2w.nii.gz", folder,
                        "name the inputs <ID>-<modality>.nii.gz")
    case_id = prefixes.pop() if len(prefixes) == 1 and next(iter(prefixes), "") else folder.name
    return CaseFiles(case_id, folder, found, seg, tuple(ignored))


def parse_case(folder: Path) -> Case:
    """A BraSyn case folder: exactly one of the four modalities must be absent."""
    files = scan_folder(folder)
    absent = files.absent
    if len(absent) > 1:
        raise CaseError(f"{len(absent)} modalities missing ({', '.join(m.value for m in absent)}); "
                        "BraSyn needs exactly one missing", folder, "provide three of the four modalities")
    if not absent:
        raise CaseError("no modality is missing (all of t1c, t1n, t2f, t2w are present)", folder,
                        "remove the modality to synthesize, or use `brasyn-infer evaluate` for dry runs")
    return Case(files.case_id, folder, dict(files.modalities), absent[0], files.seg, files.ignored)


def complete_case(folder: Path) -> CaseFiles:
    """A dry-run case folder: all four modalities must be present."""
    files = scan_folder(folder)
    if files.absent:
        raise CaseError(f"not complete: {', '.join(m.value for m in files.absent)} missing", folder,
                        "dry runs need all four modalities (t1c, t1n, t2f, t2w)")
    return files


def list_case_folders(root: Path) -> list[Path]:
    """INPUT is one case folder (it holds NIfTI files) or a folder of case folders (sorted by name)."""
    if not root.exists():
        raise BrasynError("input does not exist", root, "pass a case folder or a folder of case folders")
    if not root.is_dir():
        raise BrasynError("input is a file, not a folder", root, "pass the folder that holds the case's files")
    try:
        children = sorted(root.iterdir())
    except PermissionError as error:
        raise BrasynError("input folder cannot be read", root, "make it readable") from error
    if any(is_nifti(p) for p in children):
        folders = [root]
    else:
        folders = [p for p in children if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise BrasynError("no NIfTI files and no case folders in the input", root,
                          "pass a case folder (<ID>-<mod>.nii.gz files) or a folder of them")
    return folders


def discover(root: Path) -> list[CaseEntry]:
    """The cases of INPUT (see :func:`list_case_folders`).

    Raises :class:`BrasynError` when INPUT itself is unusable; a bad case folder becomes an entry
    with its error so that the others still run.
    """
    entries = []
    for folder in list_case_folders(root):
        try:
            case = parse_case(folder)
            entries.append(CaseEntry(case.case_id, folder, case=case))
        except CaseError as error:
            entries.append(CaseEntry(folder.name, folder, error=error))
        except OSError as error:
            entries.append(CaseEntry(folder.name, folder, error=CaseError(f"cannot list folder ({error})", folder, "make it readable")))
    return entries
