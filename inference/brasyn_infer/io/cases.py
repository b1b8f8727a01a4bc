"""Finding cases: which files a case folder holds (either naming convention, :mod:`brasyn_infer.io.naming`) and
which modality is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brasyn_infer.constants import MODALITIES, NIFTI_SUFFIXES, Convention, Modality
from brasyn_infer.errors import BrasynError, CaseError
from brasyn_infer.io.naming import modality_file, parse_name, uncertainty_file

#: what a case folder must look like, for error messages
NAMING_HELP = ("name the inputs <ID>-t1c/t1n/t2f/t2w.nii.gz (BraSyn) or <ID>_t1ce/t1/flair/t2.nii.gz "
               "(BraTS 2018-2021)")


@dataclass(frozen=True)
class Case:
    """One case folder: its ID, its input files (one to three), the missing modality (the first, in MODALITIES
    order, of ``absent``: every one the case lacks), an optional seg, and the naming convention of its files (the
    outputs follow it)."""

    case_id: str
    folder: Path
    inputs: dict[Modality, Path]
    missing: Modality
    seg: Path | None = None
    ignored: tuple[Path, ...] = field(default_factory=tuple)
    convention: Convention = Convention.BRASYN
    #: every modality the case lacks (MODALITIES order); () means ``(missing,)``
    others_absent: tuple[Modality, ...] = ()
    #: the inputs' separator between ID and suffix (None: the convention's); the outputs use it too
    separator: str | None = None

    @property
    def absent(self) -> tuple[Modality, ...]:
        """Every modality to synthesize, ``missing`` first (MODALITIES order)."""
        return (self.missing, *self.others_absent)

    def output_names(self) -> list[str]:
        """One prediction per absent modality, in the inputs' convention."""
        return [modality_file(self.case_id, m, self.convention, self.separator) for m in self.absent]

    def uncertainty_names(self) -> list[str]:
        return [uncertainty_file(self.case_id, m, self.convention, self.separator) for m in self.absent]

    def output_name(self) -> str:
        """The prediction's file name in the inputs' convention: ``<ID>-t1c.nii.gz`` (the organizers' layout) or
        ``<ID>_t1ce.nii.gz``."""
        return modality_file(self.case_id, self.missing, self.convention, self.separator)

    def uncertainty_name(self) -> str:
        """``--uncertainty``'s file name: ``<ID>-<missing>-uncertainty.nii.gz`` (or with ``_``)."""
        return uncertainty_file(self.case_id, self.missing, self.convention, self.separator)


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
    convention: Convention = Convention.BRASYN
    #: the modality files' separator between ID and suffix (None: the convention's)
    separator: str | None = None

    @property
    def absent(self) -> list[Modality]:
        return [m for m in MODALITIES if m not in self.modalities]


def scan_folder(folder: Path) -> CaseFiles:
    """Classify a folder's NIfTI files as t1c/t1n/t2f/t2w/seg by their suffix (either convention); other files are
    ignored. A folder that mixes the two conventions, or names one modality twice, is an error; of several
    segmentation files the one named for the case ID is taken, else the folder is an error."""
    files = sorted(p for p in folder.iterdir() if is_nifti(p))
    if not files:
        raise CaseError("no NIfTI files (.nii.gz or .nii) in this case folder", folder, NAMING_HELP)
    found: dict[Modality, Path] = {}
    conventions: dict[Convention, Path] = {}
    separators: set[str] = set()
    segs: list[tuple[str, Path]] = []
    ignored: list[Path] = []
    prefixes: set[str] = set()
    for path in files:
        named = parse_name(path.name)
        if named is None:
            ignored.append(path)
            continue
        if named.is_seg:
            segs.append((named.case_id, path))
            continue
        prefixes.add(named.case_id)
        assert named.modality is not None and named.convention is not None
        conventions.setdefault(named.convention, path)
        separators.add(named.separator)
        if named.modality in found:
            raise CaseError(f"two files for {named.modality.value}: {found[named.modality].name} and {path.name}",
                            folder, "keep one file per modality")
        found[named.modality] = path
    if len(conventions) > 1:
        brasyn, legacy = conventions[Convention.BRASYN], conventions[Convention.LEGACY]
        raise CaseError(f"mixes BraSyn names ({brasyn.name}) with BraTS 2018-2021 names ({legacy.name})", folder,
                        "rename the files to one convention: " + NAMING_HELP.removeprefix("name the inputs "))
    if not found:
        raise CaseError("no file named like a modality", folder, NAMING_HELP)
    case_id = prefixes.pop() if len(prefixes) == 1 and next(iter(prefixes), "") else folder.name
    convention = next(iter(conventions))
    separator = separators.pop() if len(separators) == 1 else None
    seg = _pick_seg(segs, case_id, folder)
    return CaseFiles(case_id, folder, found, seg, tuple(ignored), convention,
                     None if separator == convention.separator else separator)


def _pick_seg(segs: list[tuple[str, Path]], case_id: str, folder: Path) -> Path | None:
    """The case's segmentation among the folder's ``(prefix, path)`` seg files: the only one, or the one whose
    prefix is the case ID; CaseError when several are there and not exactly one matches."""
    if len(segs) <= 1:
        return segs[0][1] if segs else None
    matching = [path for prefix, path in segs if prefix == case_id]
    if len(matching) == 1:
        return matching[0]
    raise CaseError(f"{len(segs)} segmentation files ({', '.join(p.name for _, p in segs)}) and "
                    f"{'none' if not matching else 'several'} named for case {case_id}", folder,
                    f"keep one segmentation file, named {case_id}-seg.nii.gz (or _seg for BraTS 2018-2021 names)")


def parse_case(folder: Path) -> Case:
    """A case folder to complete: one to three of the four modalities absent (BraSyn: exactly one; whether the
    weights complete more is the synthesizer's to say)."""
    files = scan_folder(folder)
    absent = files.absent
    if not absent:
        raise CaseError("no modality is missing (all of t1c, t1n, t2f, t2w are present)", folder,
                        "remove the modality to synthesize, or use `brasyn-infer evaluate` for dry runs")
    return Case(files.case_id, folder, dict(files.modalities), absent[0], files.seg, files.ignored, files.convention,
                tuple(absent[1:]), files.separator)


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
                          "pass a case folder (<ID>-<mod>.nii.gz or <ID>_<mod>.nii.gz files) or a folder of them")
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
    return refuse_duplicates(entries)


def duplicate_ids(found: Sequence[tuple[Path, str]], clash: str = "their outputs would overwrite each other",
                  fix: str = "rename one case's files (e.g. add the time point to the ID), or run them separately",
                  ) -> dict[Path, CaseError]:
    """For ``(folder, case ID)`` pairs, the error of every folder whose case ID another folder also holds, naming
    the others (``clash``: what sharing the ID would do); folders with a unique ID are not in the result."""
    folders: dict[str, list[Path]] = {}
    for folder, case_id in found:
        folders.setdefault(case_id, []).append(folder)
    errors = {}
    for folder, case_id in found:
        if len(folders[case_id]) > 1:
            others = ", ".join(str(f) for f in folders[case_id] if f != folder)
            errors[folder] = CaseError(f"case ID {case_id} is also the ID of {others}: {clash}", folder, fix)
    return errors


def refuse_duplicates(entries: list[CaseEntry]) -> list[CaseEntry]:
    """Entries whose case ID another folder also holds become errors naming both folders (:func:`duplicate_ids`);
    the rest are kept as they are, in order."""
    errors = duplicate_ids([(e.folder, e.case_id) for e in entries if e.case is not None])
    return [CaseEntry(e.case_id, e.folder, error=errors[e.folder]) if e.folder in errors else e for e in entries]
