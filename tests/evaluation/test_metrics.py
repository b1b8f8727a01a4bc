import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from brasyn_infer.evaluation.metrics import (
    Scaled,
    mae,
    masked_mean,
    percentile_range,
    percentile_scale,
    psnr,
    score,
    ssim_brain,
    ssim_map,
    support_box,
)
from tests.conftest import brain_volume


def independent_ssim_map(a, b, sigma=1.5, c1=0.01**2, c2=0.03**2):
    """SSIM written out from Wang et al. 2004 with a truncated Gaussian (window 11), population stats."""
    f = lambda v: gaussian_filter(v, sigma, truncate=3.5, mode="reflect")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))


def test_ssim_map_matches_independent_computation():
    rng = np.random.default_rng(0)
    a = gaussian_filter(rng.random((30, 32, 28)), 2)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    a, b = percentile_scale(a), percentile_scale(b)
    ours = ssim_map(b, a)
    ref = independent_ssim_map(a, b)
    inner = (slice(5, -5),) * 3  # skimage crops nothing but pads differently at the border
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-6)


def test_identical_volumes():
    vol = brain_volume()
    s = score(vol, vol)
    assert s["ssim"] == pytest.approx(1.0) and s["ssim_brain"] == pytest.approx(1.0)
    assert s["psnr"] == math.inf and s["mae"] == 0.0
    assert math.isnan(s["ssim_tumor"])


def test_percentile_scaling_is_per_volume():
    vol = brain_volume()
    assert score(vol * 10, vol)["ssim"] == pytest.approx(1.0)  # a 10x scanner is not penalized
    scaled = percentile_scale(vol)
    assert scaled.min() == 0 and scaled.max() == 1


def test_a_volume_scaled_once_scores_as_the_raw_one():
    """The evaluation scales each volume once (Scaled) and passes it on: every figure is the same as when each
    call scales the raw volume itself, and what is scaled is not scaled again."""
    truth = brain_volume(scale=700.0)
    seg = np.zeros(truth.shape, dtype=np.uint8)
    seg[10:14, 10:14, 10:14] = 1
    pred = np.roll(truth, 2, axis=1) * 3.0
    scaled = Scaled.of(pred)
    assert Scaled.of(scaled) is scaled and scaled.raw is pred
    assert (scaled.lo, scaled.hi) == percentile_range(pred)
    np.testing.assert_array_equal(scaled.unit, percentile_scale(pred))
    assert score(scaled, Scaled.of(truth), seg) == score(pred, truth, seg)
    assert score(scaled, truth)["ssim_brain"] < 1


def whole_volume_score(pred, truth, seg):
    """score's SSIMs from the SSIM map of the whole volume, as the organizers compute it."""
    p, t = percentile_scale(pred), percentile_scale(truth)
    smap = ssim_map(p, t)
    brain = truth > 0
    tumor = (seg > 0) & brain
    return {"ssim": masked_mean(smap, None), "ssim_brain": masked_mean(smap, brain),
            "ssim_tumor": masked_mean(smap, tumor), "ssim_healthy": masked_mean(smap, brain & ~tumor)}


@pytest.mark.parametrize("where", ["inside", "edge"])
def test_the_ssim_map_on_the_brains_box_gives_the_whole_volumes_figures(where):
    """score computes the SSIM map only on the box around the nonzero voxels (plus the window's reach): the brain,
    tumor and healthy means are bit for bit the whole volume's, the whole-volume mean equal to rounding. Also when
    the synthesis has voxels outside the real brain, and when the brain touches the volume's edge."""
    shape = (70, 64, 48)
    truth = np.zeros(shape, np.float32)
    small = brain_volume((30, 26, 20), scale=600.0)
    origin = (20, 18, 14) if where == "inside" else (0, 38, 28)
    box = tuple(slice(o, o + n) for o, n in zip(origin, small.shape, strict=True))
    truth[box] = small
    pred = np.roll(truth, 2, axis=1) * 1.7 + 0.3 * np.roll(truth, -1, axis=0)  # some voxels outside the brain
    seg = (truth > np.percentile(truth[truth > 0], 90)).astype(np.uint8)
    ours, whole = score(pred, truth, seg), whole_volume_score(pred, truth, seg)
    for key in ("ssim_brain", "ssim_tumor", "ssim_healthy"):
        assert ours[key] == whole[key], key
    assert ours["ssim"] == pytest.approx(whole["ssim"], rel=1e-12, abs=0) and ours["ssim"] < 1
    cropped = support_box(percentile_scale(pred), percentile_scale(truth))
    assert np.prod([s.stop - s.start for s in cropped]) < 0.6 * truth.size  # the point: a smaller map


def test_the_box_is_the_whole_volume_when_nothing_is_nonzero():
    empty = np.zeros((5, 6, 7))
    assert support_box(empty) == (slice(0, 5), slice(0, 6), slice(0, 7))


def test_known_mae_and_psnr():
    truth = np.zeros((10, 10, 10))
    truth[2:8, 2:8, 2:8] = 0.5
    pred = truth + 0.1 * (truth > 0)
    brain = truth > 0
    assert mae(pred, truth, brain) == pytest.approx(0.1)
    assert psnr(pred, truth, brain) == pytest.approx(20.0)


def test_shifted_copy_has_expected_mae():
    truth = brain_volume()
    pred = truth.copy()
    pred[truth > 0] += 0.1 * np.percentile(truth, 99.5)
    assert score(pred, truth)["mae"] < score(np.roll(truth, 3, axis=0), truth)["mae"]


def test_tumor_and_healthy_split_uses_seg():
    truth = brain_volume(seed=1)
    pred = truth.copy()
    seg = np.zeros(truth.shape, dtype=np.uint8)
    seg[10:18, 12:20, 8:16] = 2
    rng = np.random.default_rng(0)
    pred[seg > 0] = rng.random(int((seg > 0).sum())) * truth.max()  # ruin the tumor only
    s = score(pred, truth, seg)
    assert s["ssim_tumor"] < 0.5 < s["ssim_healthy"]
    assert s["ssim_tumor"] < s["ssim_brain"] < s["ssim_healthy"]


def test_the_tumor_is_the_same_in_both_label_conventions():
    """Enhancing tumor is label 4 in BraTS 2018-2022 and 3 from 2023: the tumor and healthy scores do not change."""
    rng = np.random.default_rng(5)
    truth = rng.uniform(1, 2, (20, 22, 24)).astype(np.float32)
    pred = truth + rng.normal(0, 0.1, truth.shape).astype(np.float32)
    seg4 = np.zeros(truth.shape, dtype=np.int16)
    seg4[5:10, 5:10, 5:10] = 4
    seg4[10:12, 5:10, 5:10] = 2
    seg3 = np.where(seg4 == 4, 3, seg4)
    a, b = score(pred, truth, seg4), score(pred, truth, seg3)
    assert a["ssim_tumor"] == b["ssim_tumor"] and a["ssim_healthy"] == b["ssim_healthy"] and not np.isnan(a["ssim_tumor"])


def test_ssim_brain_alone_is_scores_figure():
    truth = brain_volume((30, 34, 22), 900, seed=1)
    pred = truth * 0.8 + np.random.default_rng(2).normal(0, 60, truth.shape) * (truth > 0)
    assert ssim_brain(pred, truth) == score(pred, truth)["ssim_brain"]
    assert ssim_brain(truth, truth) == pytest.approx(1.0) and ssim_brain(pred, truth) < 0.99
