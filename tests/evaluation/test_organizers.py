"""The organizers' SSIM_tumor / SSIM_non_tumor held against torchmetrics itself (both border variants), and PSNR and
MAE against the BraTS inpainting package, on small random volumes and on a real case (issue 36)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brasyn_infer.evaluation.metrics import mae, percentile_scale, psnr, score
from brasyn_infer.evaluation.organizers import BORDER_CROPPED, BORDER_FULL, organizers_ssim
from tests.conftest import SHARED

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")
TOL = 1e-5
REAL_CASE = SHARED / "data" / "cases" / "BraTS-GLI-00000-000"


def torchmetrics_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The full SSIM map of torchmetrics' StructuralSimilarityIndexMeasure() (defaults), as the organizers call it."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    ssim = StructuralSimilarityIndexMeasure(return_full_image=True)
    _, full = ssim(preds=torch.tensor(pred[None, None], dtype=torch.float32),
                   target=torch.tensor(truth[None, None], dtype=torch.float32))
    return full[0, 0].double().numpy()


def organizers_reference(pred: np.ndarray, truth: np.ndarray, tumor: np.ndarray, border: str) -> tuple[float, float]:
    """The organizers' ssim.py with torchmetrics: images times the mask, the map averaged over the whole volume
    (1.4.2 and later) or without its 5-voxel border (1.4.1 and earlier)."""
    out = []
    for keep in (tumor, ~tumor):
        full = torchmetrics_map(pred * keep, truth * keep)
        if border == BORDER_CROPPED:
            full = full[5:-5, 5:-5, 5:-5]
        out.append(float(full.mean()))
    return out[0], out[1]


@pytest.mark.parametrize("border", [BORDER_FULL, BORDER_CROPPED])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_volumes_match_torchmetrics(seed, border):
    rng = np.random.default_rng(seed)
    shape = (26 + seed, 30, 22 + 2 * seed)
    truth = rng.random(shape)
    pred = np.clip(truth + 0.3 * rng.standard_normal(shape), 0, 1)
    truth[: 3 + seed] = 0  # some background
    pred[: 3 + seed] = 0
    tumor = np.zeros(shape, bool)
    tumor[8:18, 10:20, 6:14] = True
    ours = organizers_ssim(pred, truth, tumor, border)
    theirs = organizers_reference(pred, truth, tumor, border)
    assert abs(ours[0] - theirs[0]) < TOL and abs(ours[1] - theirs[1]) < TOL, (ours, theirs)


def test_an_empty_mask_and_a_tumor_at_the_edge(tmp_path):
    """A tumor box on the volume's faces; an empty tumor mask gives torchmetrics' 0 / 0 (NaN) as theirs does."""
    rng = np.random.default_rng(3)
    truth, pred = rng.random((20, 24, 18)), rng.random((20, 24, 18))
    edge = np.zeros(truth.shape, bool)
    edge[:4, :5, :3] = True  # the box reaches the volume's faces: reflection there is the volume's own
    for tumor in (edge, np.zeros(truth.shape, bool)):
        for border in (BORDER_FULL, BORDER_CROPPED):
            ours, theirs = organizers_ssim(pred, truth, tumor, border), organizers_reference(pred, truth, tumor, border)
            assert np.allclose(ours, theirs, atol=TOL, equal_nan=True), (ours, theirs)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CASE.is_dir(), reason="../shared/data (real cases) is absent")
def test_a_real_case_matches_the_organizers_scorer():
    """BraTS-GLI-00000-000, its t1n standing in for a synthesized t1c, scored the organizers' way."""
    import nibabel as nib

    def load(mod):
        return np.asarray(nib.load(str(REAL_CASE / f"BraTS-GLI-00000-000-{mod}.nii.gz")).dataobj, dtype=np.float32)

    truth, pred, seg = percentile_scale(load("t1c")), percentile_scale(load("t1n")), load("seg")
    tumor = seg > 0
    for border in (BORDER_FULL, BORDER_CROPPED):
        ours = organizers_ssim(pred, truth, tumor, border)
        theirs = organizers_reference(pred.astype(np.float32), truth.astype(np.float32), tumor, border)
        print(f"\n    {border}: ours {ours}, torchmetrics {theirs}")
        assert abs(ours[0] - theirs[0]) < TOL and abs(ours[1] - theirs[1]) < TOL
    scores = score(load("t1n"), load("t1c"), seg)
    assert abs(scores["ssim_tumor_organizers"] - organizers_reference(pred, truth, tumor, BORDER_FULL)[0]) < TOL


def test_score_leaves_the_organizers_columns_empty_without_a_segmentation():
    rng = np.random.default_rng(0)
    volume = rng.random((20, 20, 20)).astype(np.float32) * 100
    got = score(volume, volume * 0.9)
    assert math.isnan(got["ssim_tumor_organizers"]) and math.isnan(got["ssim_non_tumor_organizers"])


def test_psnr_and_mae_equal_the_inpainting_packages():
    """On the same [0, 1] images and brain mask, psnr and mae are the BraTS inpainting package's psnr_01 and mae."""
    pytest.importorskip("inpainting")
    from inpainting.challenge_metrics_2023 import _mean_absolute_error, _peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    truth = rng.random((24, 24, 20))
    pred = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0, 1)
    brain = truth > 0.2
    t = torch.tensor(truth[brain], dtype=torch.float64)
    p = torch.tensor(pred[brain], dtype=torch.float64)
    assert abs(psnr(pred, truth, brain) - float(_peak_signal_noise_ratio(t, p, data_range=(0, 1)))) < TOL
    assert abs(mae(pred, truth, brain) - float(_mean_absolute_error(t, p))) < TOL
