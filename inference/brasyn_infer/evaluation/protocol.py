"""The downstream protocol of ``evaluate --segment`` (papers 003 and 004): segment each case completed by each
method (the synthesized sequences, a copy of an available one, the linear fit) and with its real sequences, and
score every segmentation against the expert one with the official BraTS metrics (:mod:`.seg_metrics`).

The ``direct`` rows: the missing-sequence segmenter (``weights/segmenter-any`` by default, ``--direct-segmenter``)
segments the case from the sequences the pattern leaves, without synthesis: is synthesis worth it for this pattern?

The segmenter is the embedded one by default, any imported one (``--segmenter NAME``), or ``brats`` (the BraTS
2023 glioma winner through the ``brats`` package: Docker and an NVIDIA GPU). Maps are class maps (0 background,
1 NCR, 2 ED, 3 ET); the expert file's labels are read in the convention its names decide (BraTS 2018-2021 names:
ET = 4) or, for BraSyn names, ``--labels`` (2023 by default; 2024 post-treatment: 4 is the resection cavity).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.errors import BrasynError
from brasyn_infer.evaluation.seg_metrics import brats_scores
from brasyn_infer.io.cases import CaseFiles
from brasyn_infer.io.nifti import load_labels, load_volume, output_image, voxel_spacing, write_atomic
from brasyn_infer.segmentation.labels import LabelConvention, classes_from_labels, convention_for_files

BRATS_DOCKER = "brats"


def label_convention(files: CaseFiles, labels: LabelConvention | None) -> LabelConvention:
    """How the case's ``-seg`` file numbers its labels: ``labels`` (``--labels``), else its names (BraTS 2018-2021
    names: 2018; BraSyn names: 2023)."""
    return labels or convention_for_files(files.convention)


def expert_classes(files: CaseFiles, labels: LabelConvention | None, seg: np.ndarray | None = None) -> np.ndarray | None:
    """The case's expert segmentation as classes, or None without one; ``seg``: its labels, when already read.
    CaseError naming the file for labels its convention does not define."""
    if files.seg is None:
        return None
    data = load_labels(files.seg).data if seg is None else seg
    return classes_from_labels(data, label_convention(files, labels), files.seg)


class DockerSegmenter:
    """The ``brats`` package's BraTS 2023 adult-glioma segmenter, through temporary files."""

    def __init__(self) -> None:
        from brasyn_infer.evaluation.downstream import segmentation_unavailable

        reason = segmentation_unavailable()
        if reason:
            raise BrasynError(f"--segmenter {BRATS_DOCKER}: {reason}", None,
                              "use the embedded segmenter (leave --segmenter out)")

    def describe(self) -> dict:
        return {"name": BRATS_DOCKER, "sha256": None}

    def segment(self, volumes: Mapping[Modality, np.ndarray], like=None) -> np.ndarray:
        from brasyn_infer.evaluation.downstream import segment

        with tempfile.TemporaryDirectory(prefix="brasyn-seg-") as tmp:
            paths = {}
            for m in MODALITIES:
                paths[m] = Path(tmp) / f"case-{m.value}.nii.gz"
                write_atomic(output_image(np.asarray(volumes[m], np.float32), like), paths[m])
            out = segment(paths, Path(tmp) / "seg.nii.gz")
            return classes_from_labels(load_volume(out).data, LabelConvention.BRATS2023)


class Protocol:
    """The segmenter, each case's reference and its real-sequence segmentation (one case at a time)."""

    def __init__(self, spec: str | None, device: Device = Device.AUTO, labels: LabelConvention | None = None,
                 direct: str | None = None) -> None:
        from brasyn_infer.runtime.segmenter import Segmenter, missing_sequence_segmenter

        self.segmenter = DockerSegmenter() if spec == BRATS_DOCKER else Segmenter(spec, device)
        self.direct = missing_sequence_segmenter(direct, device)
        self.labels = labels
        self.case_id: str | None = None
        self.reference: np.ndarray | None = None
        self.real: np.ndarray | None = None
        self.expert: np.ndarray | None = None
        self.spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
        self._like = None

    def describe(self) -> dict:
        d = self.segmenter.describe()
        direct = self.direct.describe() if self.direct is not None else None
        return {"name": d["name"], "sha256": d.get("sha256"), "labels": self.labels.value if self.labels else None,
                "direct": {"name": direct["name"], "sha256": direct["sha256"]} if direct else None}

    def _segment(self, volumes: Mapping[Modality, np.ndarray]) -> np.ndarray:
        if isinstance(self.segmenter, DockerSegmenter):
            return self.segmenter.segment(volumes, self._like)
        return self.segmenter.segment(volumes)

    def begin(self, files: CaseFiles, volumes: Mapping[Modality, np.ndarray], like=None, real: bool = True,
              seg: np.ndarray | None = None) -> None:
        """A new case: its reference is the expert segmentation (``seg``: its labels, when already read), else the
        segmentation of its four real sequences (made when there is no expert one, or when ``real`` asks for the
        real-sequence row)."""
        self._like = like
        self.spacing = voxel_spacing(like) if like is not None else (1.0, 1.0, 1.0)
        self.case_id = files.case_id
        self.expert = expert_classes(files, self.labels, seg)
        self.real = self._segment(volumes) if real or self.expert is None else None
        self.reference = self.expert if self.expert is not None else self.real

    def score(self, volumes: Mapping[Modality, np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
        """The completed case's class map and its scores against the reference."""
        classes = self._segment(volumes)
        return classes, brats_scores(classes, self.reference, self.spacing)

    def direct_scores(self, inputs: Mapping[Modality, np.ndarray]) -> dict[str, float]:
        """The missing-sequence segmenter's scores on the case reduced to ``inputs`` (``{}`` without one)."""
        if self.direct is None:
            return {}
        return brats_scores(self.direct.segment(inputs), self.reference, self.spacing)

    def real_scores(self) -> dict[str, float]:
        return brats_scores(self.real, self.reference, self.spacing)
