"""``evaluate --segmenter brats``: the ``brats`` package's BraTS 2023 adult-glioma segmenter (Docker and an NVIDIA GPU
needed), and why it cannot run here. The scores come from the official metrics package (:mod:`.seg_metrics`)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from brasyn_infer.constants import Modality


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
