"""Downstream segmentation scores for dry runs: Dice and HD95 of tumor regions (BraTS conventions).

The segmentation itself comes from the ``brats`` package's BraTS 2023 adult-glioma segmenter (Docker
and an NVIDIA GPU needed); the scoring is pure numpy/scipy on label volumes ``(X, Y, Z)``.
Regions: WT (any tumor label), TC (necrosis + enhancing: labels 1 and ET), ET (label 3 in the 2023
convention, 4 in the 2020 one). As in BraTS: both empty gives Dice 1 and HD95 0; one empty gives
Dice 0 and HD95 373.13 mm.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np

from brasyn_infer.constants import Modality

EMPTY_HD95 = 373.13
REGIONS = ("wt", "tc", "et")


def regions(labels: np.ndarray) -> dict[str, np.ndarray]:
    et = (labels == 3) | (labels == 4)
    return {"wt": labels > 0, "tc": (labels == 1) | et, "et": et}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask)


def hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> float:
    """95th percentile of the symmetric surface distances between two masks, in mm."""
    from scipy.ndimage import distance_transform_edt

    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return EMPTY_HD95
    sa, sb = _surface(a), _surface(b)
    to_b = distance_transform_edt(~sb, sampling=spacing)
    to_a = distance_transform_edt(~sa, sampling=spacing)
    return float(np.percentile(np.concatenate([to_b[sa], to_a[sb]]), 95))


def score_segmentation(pred: np.ndarray, reference: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> dict[str, float]:
    p, r = regions(np.rint(pred).astype(np.int16)), regions(np.rint(reference).astype(np.int16))
    out = {f"dice_{k}": dice(p[k], r[k]) for k in REGIONS}
    out.update({f"hd95_{k}": hd95(p[k], r[k], spacing) for k in REGIONS})
    return out


def segmentation_unavailable() -> str | None:
    """Why downstream segmentation cannot run here (None when ``brats``, Docker and a GPU are present)."""
    if importlib.util.find_spec("brats") is None:
        return "the brats package is not installed (pip install brats)"
    if shutil.which("docker") is None:
        return "no docker command"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU (nvidia-smi not found)"
    return None


def segment(inputs: dict[Modality, Path], output_file: Path, cuda_devices: str = "0") -> Path:
    """Segment one case with the BraTS 2023 adult-glioma winner through the ``brats`` package."""
    from brats import AdultGliomaPreTreatmentSegmenter
    from brats.constants import AdultGliomaPreTreatmentAlgorithms

    segmenter = AdultGliomaPreTreatmentSegmenter(algorithm=AdultGliomaPreTreatmentAlgorithms.BraTS23_1,
                                                 cuda_devices=cuda_devices)
    segmenter.infer_single(t1c=str(inputs[Modality.T1C]), t1n=str(inputs[Modality.T1N]),
                           t2f=str(inputs[Modality.T2F]), t2w=str(inputs[Modality.T2W]), output_file=str(output_file))
    return output_file
