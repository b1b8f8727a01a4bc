"""The one source of truth for names, geometry and the BraSyn25 normalization constants."""

from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    """The four BraTS MRI modalities, in the generator's channel order (t1c, t1n, t2f, t2w)."""

    T1C = "t1c"  #: T1 contrast-enhanced, channel 0
    T1N = "t1n"  #: T1 native, channel 1
    T2F = "t2f"  #: T2-FLAIR, channel 2
    T2W = "t2w"  #: T2-weighted, channel 3

    @property
    def index(self) -> int:
        return MODALITIES.index(self)


MODALITIES: tuple[Modality, ...] = (Modality.T1C, Modality.T1N, Modality.T2F, Modality.T2W)

#: the stand-in for a missing sequence (the copy baseline, the clinical stopgap and paper 004's comparison; the
#: companion's blend toward it, ``synthesis.stand_in``): the first of this order that the case has, the most
#: correlated contrast first (t1c <-> t1n, t2w <-> t2f), then the other pair's T2-weighted or T1-weighted one
COPY_ORDER: dict[Modality, tuple[Modality, ...]] = {
    Modality.T1C: (Modality.T1N, Modality.T2W, Modality.T2F),
    Modality.T1N: (Modality.T1C, Modality.T2W, Modality.T2F),
    Modality.T2W: (Modality.T2F, Modality.T1N, Modality.T1C),
    Modality.T2F: (Modality.T2W, Modality.T1N, Modality.T1C),
}


class Convention(str, Enum):
    """How a case's files are named (both use ``<ID>`` then a separator and a suffix, ``.nii.gz`` or ``.nii``)."""

    BRASYN = "brasyn"  #: BraTS 2023-2025 and BraSyn: ``<ID>-t1c.nii.gz``, ``-t1n``, ``-t2f``, ``-t2w``, ``-seg``
    LEGACY = "legacy"  #: BraTS 2018-2021: ``<ID>_t1ce.nii.gz``, ``_t1``, ``_flair``, ``_t2``, ``_seg``

    @property
    def separator(self) -> str:
        return "-" if self is Convention.BRASYN else "_"

    def suffix(self, modality: Modality) -> str:
        """The file-name suffix of ``modality`` in this convention (``t1c`` or ``t1ce``, ...)."""
        return MODALITY_SUFFIXES[self][modality]


#: file-name suffix of each modality, per naming convention
MODALITY_SUFFIXES: dict[Convention, dict[Modality, str]] = {
    Convention.BRASYN: {Modality.T1C: "t1c", Modality.T1N: "t1n", Modality.T2F: "t2f", Modality.T2W: "t2w"},
    Convention.LEGACY: {Modality.T1C: "t1ce", Modality.T1N: "t1", Modality.T2F: "flair", Modality.T2W: "t2"},
}
#: the segmentation's suffix, the same in both conventions (labels: 1 necrosis, 2 edema, enhancing tumor 3 from
#: BraTS 2023 on, 4 in 2018-2022; every label > 0 is tumor)
SEG_SUFFIX = "seg"
#: ``--uncertainty DIR`` files: ``<ID>-<missing>-uncertainty.nii.gz`` (``<ID>_<missing>_uncertainty.nii.gz``)
UNCERTAINTY_SUFFIX = "uncertainty"
NIFTI_SUFFIXES = (".nii.gz", ".nii")


class View(str, Enum):
    """Slicing direction of the 2D generator; ``id`` is the model's view input."""

    AXIAL = "axial"  #: slices x[:, :, k] (along Z), 240x240
    SAGITTAL = "sagittal"  #: slices x[i, :, :] (along X), 240x155 padded to 240x240
    CORONAL = "coronal"  #: slices x[:, j, :] (along Y), 240x155 padded to 240x240

    @property
    def id(self) -> int:
        return {View.AXIAL: 0, View.SAGITTAL: 1, View.CORONAL: 2}[self]

    @property
    def axis(self) -> int:
        """The volume axis (X=0, Y=1, Z=2) that the slices are taken along."""
        return {View.AXIAL: 2, View.SAGITTAL: 0, View.CORONAL: 1}[self]


class Device(str, Enum):
    AUTO = "auto"  #: TensorRT, then CUDA, then CPU, whichever this onnxruntime has
    CPU = "cpu"  #: ONNX Runtime's CPU provider only
    CUDA = "cuda"  #: the CUDA provider (no TensorRT), CPU as fallback


#: The generator's in-plane size; slices are padded to it.
PLANE = 240
#: The BraTS volume shape (X, Y, Z) as nibabel loads it.
BRATS_SHAPE = (240, 240, 155)
#: Value of background (and of the missing channel) in normalized units.
BACKGROUND = -1.0

#: BraSyn25 published checkpoints: clamp to [0, max_val], z-score, <=0 -> -1 (docs/design.md §2).
BRASYN25_STATS: dict[str, dict[str, float]] = {
    "t1c": {"mean": 1066.3375, "std": 1301.7006, "max_val": 8664.0},
    "t1n": {"mean": 781.2247, "std": 944.3418, "max_val": 7315.0},
    "t2f": {"mean": 510.9852, "std": 769.4159, "max_val": 8842.0},
    "t2w": {"mean": 673.4393, "std": 804.3864, "max_val": 8233.0},
}

#: Environment variable naming an extra folder of weights (searched before the bundled ones).
WEIGHTS_ENV = "BRASYN_WEIGHTS_DIR"
DEFAULT_WEIGHTS = "default"
#: Environment variable naming the weights used when --weights is not given (NAME or a manifest path):
#: how an image built FROM ours, or a run with no arguments, picks an imported model.
DEFAULT_WEIGHTS_ENV = "BRASYN_WEIGHTS"
