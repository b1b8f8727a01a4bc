"""Shared fixtures: small synthetic cases written as NIfTI, tiny exported weights, ../shared paths."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "examples" / "BraTS-GLI-00001-000"
HAS_TORCH = importlib.util.find_spec("torch") is not None

needs_shared = pytest.mark.skipif(not (SHARED / "reference").is_dir(), reason="../shared (reference fixtures) is absent")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")

SMALL_SHAPE = (36, 40, 28)
LPS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])


def brain_volume(shape=SMALL_SHAPE, scale: float = 1000.0, seed: int = 0) -> np.ndarray:
    """An ellipsoid 'brain' with smooth texture, zero outside; int16-like values."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.7
    texture = 0.6 + 0.3 * np.sin(3 * grid[0]) * np.cos(2 * grid[1]) + 0.1 * rng.random(shape)
    return np.where(inside, texture * scale, 0).astype(np.float32)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = LPS_AFFINE, dtype=np.int16) -> Path:
    image = nib.Nifti1Image(data.astype(dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


def make_case(root: Path, case_id: str, missing: str = "t2f", shape=SMALL_SHAPE, seg: bool = False) -> Path:
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    for i, mod in enumerate(("t1c", "t1n", "t2f", "t2w")):
        if mod != missing:
            write_nifti(folder / f"{case_id}-{mod}.nii.gz", brain_volume(shape, 800 + 200 * i, seed=i))
    if seg:
        labels = (brain_volume(shape) > 800).astype(np.uint8)
        write_nifti(folder / f"{case_id}-seg.nii.gz", labels, dtype=np.uint8)
    return folder


@pytest.fixture
def case_factory(tmp_path):
    def factory(case_id: str = "BraTS-GLI-00042-000", missing: str = "t2f", root: Path | None = None, **kw) -> Path:
        return make_case(root or tmp_path / "input", case_id, missing, **kw)

    return factory


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A random-init dim-8 HFGAN exported with the percentile scheme: fast, real ONNX, not trained."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed (install the [torch] extra)")
    import torch

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
    from brasyn_infer.constants import View

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("weights")
    reference = {"t1c": 1000.0, "t1n": 1000.0, "t2f": 1000.0, "t2w": 1000.0}
    manifest = export(HFGAN(HFGANConfig(dim=8)), out, "tiny",
                      normalization={"scheme": "percentile", "percentile": 99.5, "reference_scale": reference},
                      default_view=View.AXIAL, provenance={"note": "random init, tests only"})
    return manifest.path


@pytest.fixture(scope="session")
def tiny_refiner(tmp_path_factory) -> Path:
    """A random-init width-4 Refiner exported with a 16^3 window; its last conv is zero: the identity."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed (install the [torch] extra)")
    import torch

    from brasyn_infer.authoring.models.export import export_refiner
    from brasyn_infer.authoring.models.refiner import Refiner, RefinerConfig

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("refiner")
    manifest = export_refiner(Refiner(RefinerConfig(width=4, levels=2, decoder_convs=1)), out, "tiny-refiner",
                              (16, 16, 16), overlap=0.5, blend="gaussian", provenance={"note": "random init, tests only"})
    return manifest.path


def weights_with(weights: Path, folder: Path, **blocks) -> Path:
    """A copy of the exported ``weights`` (manifest and graph) in ``folder``, its manifest given ``blocks``
    (``trust=...``, ``tone=...``)."""
    folder.mkdir(parents=True)
    shutil.copy(weights.with_suffix(".onnx"), folder)
    manifest = json.loads(weights.read_text())
    manifest.update(blocks)
    path = folder / weights.name
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="session")
def tiny_any_weights(tmp_path_factory) -> Path:
    """A random-init dim-8 residual HFGAN with a pattern prior (``patterns: any``): completes cases lacking one to
    three modalities; fast, real ONNX, not trained."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed (install the [torch] extra)")
    import torch

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.authoring.models.hfgan import HFGANConfig
    from brasyn_infer.authoring.models.residual import PriorResidualHFGAN
    from brasyn_infer.constants import View

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("any-weights")
    table = np.random.default_rng(0).uniform(-0.3, 0.3, (4, 16, 5)).astype(np.float32)
    reference = {"t1c": 1000.0, "t1n": 1000.0, "t2f": 1000.0, "t2w": 1000.0}
    net = PriorResidualHFGAN(HFGANConfig(dim=8, num_outputs=2), table, patterns=True)
    manifest = export(net, out, "tiny-any",
                      normalization={"scheme": "percentile", "percentile": 99.5, "reference_scale": reference},
                      default_view=View.AXIAL, provenance={"note": "random init, tests only"})
    return manifest.path


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory) -> Path:
    """A random-init 2.5D U-Net (widths 4, 8) exported as a segmenter: real ONNX, not trained."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed (install the [torch] extra)")
    import torch

    from brasyn_infer.authoring.models.segmenter_export import export_segmenter
    from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("segmenter")
    return export_segmenter(UNet2D(UNetConfig(in_channels=12, widths=(4, 8))), out, "tiny-seg", context=1)


@pytest.fixture(scope="session")
def tiny_direct_segmenter(tmp_path_factory) -> Path:
    """A random-init missing-sequence segmenter (12 + 4 availability channels) with a ``routes`` block that sends
    t1c-missing cases to ``complete`` and every other pattern to ``direct`` (the default)."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed (install the [torch] extra)")
    import json

    import torch

    from brasyn_infer.authoring.models.segmenter_export import export_segmenter
    from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig

    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("direct-segmenter")
    path = export_segmenter(UNet2D(UNetConfig(in_channels=16, widths=(4, 8))), out, "tiny-any", context=1,
                            availability=True)
    data = json.loads(path.read_text())
    data["routes"] = {"t1c": {"route": "complete", "scores": {"note": "test"}}}
    path.write_text(json.dumps(data))
    return path
