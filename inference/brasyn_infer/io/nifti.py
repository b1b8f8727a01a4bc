"""NIfTI reading with validation, and atomic writing with the inputs' geometry (docs/design.md §1)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from brasyn_infer.constants import PLANE, Modality
from brasyn_infer.errors import CaseError
from brasyn_infer.io.atomic import atomic_path

AFFINE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Volume:
    """A loaded volume: ``data`` float32 ``(X, Y, Z)`` as nibabel loads it, and its image header."""

    path: Path
    data: np.ndarray
    image: nib.Nifti1Image


def load_volume(path: Path, allow_empty: bool = False) -> Volume:
    """Read one NIfTI as float32 (scl_slope applied) and check it is 3D and finite, and (unless ``allow_empty``)
    not all 0."""
    try:
        image = nib.load(str(path))
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise CaseError("not a NIfTI image", path, "convert it to NIfTI (.nii.gz)")
        shape = image.shape
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            raise CaseError(f"volume is {len(image.shape)}D {tuple(image.shape)}, expected 3D (X, Y, Z)", path,
                            "give one 3D volume per modality")
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except CaseError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise CaseError(f"file is truncated or not valid gzip ({error})", path, "copy the file again") from error
    except (nib.filebasedimages.ImageFileError, ValueError, OSError) as error:
        raise CaseError(f"cannot read NIfTI ({error})", path, "check the file is a valid .nii.gz") from error
    if max(shape) > PLANE:
        raise CaseError(f"shape {shape} exceeds {PLANE} voxels on an axis", path, "crop to the BraTS 240x240x155 grid")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise CaseError(f"{bad} voxels are NaN or inf", path, "replace non-finite voxels (e.g. with 0)")
    if not allow_empty and not data.any():
        raise CaseError("every voxel is 0", path, "if this is the modality to synthesize, delete the file")
    return Volume(path, data, image)


def check_same_grid(volumes: Mapping[Modality, Volume]) -> None:
    """All inputs must share shape and affine (within 1e-3), as BraTS volumes are co-registered."""
    items = list(volumes.values())
    first = items[0]
    for other in items[1:]:
        if other.data.shape != first.data.shape:
            raise CaseError(f"shape {other.data.shape} differs from {first.path.name}'s {first.data.shape}",
                            other.path, "give co-registered volumes on the same grid")
        if not np.allclose(other.image.affine, first.image.affine, atol=AFFINE_TOLERANCE):
            raise CaseError(f"affine differs from {first.path.name}'s", other.path,
                            "give co-registered volumes with the same header geometry")


def load_labels(path: Path, like: Volume | None = None) -> Volume:
    """A segmentation file: read like a modality (3D, finite), an empty one allowed (a case without tumor); with
    ``like`` (one of the case's volumes), CaseError unless it has that volume's shape and affine. Its values are
    checked against a label convention later (:func:`brasyn_infer.segmentation.labels.check_labels`)."""
    seg = load_volume(path, allow_empty=True)
    if like is not None:
        if seg.data.shape != like.data.shape:
            raise CaseError(f"the segmentation's shape {seg.data.shape} differs from {like.path.name}'s "
                            f"{like.data.shape}", path, "give the segmentation on the case's own grid")
        if not np.allclose(seg.image.affine, like.image.affine, atol=AFFINE_TOLERANCE):
            raise CaseError(f"the segmentation's affine differs from {like.path.name}'s", path,
                            "give the segmentation on the case's own grid (same header geometry)")
    return seg


def voxel_spacing(image) -> tuple[float, float, float]:
    """The ``(X, Y, Z)`` voxel size in mm of a NIfTI image's header."""
    return tuple(float(z) for z in image.header.get_zooms()[:3])  # type: ignore[return-value]


def read_inputs(paths: Mapping[Modality, Path]) -> dict[Modality, Volume]:
    volumes = {mod: load_volume(path) for mod, path in paths.items()}
    check_same_grid(volumes)
    return volumes


def output_image(data: np.ndarray, like: nib.Nifti1Image, dtype: type = np.float32) -> nib.Nifti1Image:
    """An image of ``dtype`` (float32; uint8 for label maps) with ``like``'s affine, qform/sform (and codes), pixdim
    and units."""
    header = like.header.copy()
    header.set_data_dtype(dtype)
    header.set_slope_inter(1.0, 0.0)
    header.set_data_shape(data.shape)
    image = nib.Nifti1Image(data.astype(dtype, copy=False), like.affine, header)
    image.set_qform(like.get_qform(), code=int(like.header["qform_code"]))
    image.set_sform(like.get_sform(), code=int(like.header["sform_code"]))
    return image


def write_atomic(image: nib.Nifti1Image, target: Path) -> None:
    """Save through a hidden temp file beside ``target`` and a rename (:mod:`brasyn_infer.io.atomic`)."""
    with atomic_path(target) as tmp:
        nib.save(image, str(tmp))
