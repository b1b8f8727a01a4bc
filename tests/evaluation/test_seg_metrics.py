"""Segmentation scores through the official BraTS package, held against a hand case with a known answer."""

import math

import numpy as np
import pytest

pytest.importorskip("brats_evaluation")
from brasyn_infer.evaluation.seg_metrics import HD95_CAP, brats_scores  # noqa: E402


def test_a_hand_case_with_a_known_answer():
    ref = np.zeros((40, 40, 30), np.uint8)
    ref[10:20, 10:20, 10:20] = 2  # 1,000 voxels of edema
    ref[12:16, 12:16, 12:16] = 3  # 64 voxels of enhancing tumor
    pred = ref.copy()
    pred[10:15] = 0  # half the tumor, along x
    got = brats_scores(pred, ref)
    assert got["dice_wt"] == pytest.approx(2 * 500 / 1500)  # WT: 500 of 1,000 voxels kept
    assert got["dice_et"] == pytest.approx(2 * 16 / 80)  # ET: x = 15 only, 16 of 64
    assert got["dice_tc"] == pytest.approx(got["dice_et"])  # no necrosis: TC = ET
    assert got["hd95_wt"] == 5.0  # the cut face is 5 voxels from the reference's
    assert got["lw_dice_wt"] == pytest.approx(got["dice_wt"])  # one lesion: lesion-wise = global


def test_empty_regions_follow_the_package():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:10, 5:10, 5:10] = 2
    got = brats_scores(np.zeros_like(ref), ref)
    assert got["dice_wt"] == 0.0 and got["hd95_wt"] == HD95_CAP  # missed: 373, as its parser reports inf
    assert math.isnan(got["dice_et"])  # absent from both: left out of means


def test_hd95_is_in_mm_from_the_voxel_spacing():
    """Regression (issue 43, 3): the same case with 1 mm and 2 mm headers gave the same HD95 (voxels, labelled mm)."""
    ref = np.zeros((40, 40, 30), np.uint8)
    ref[10:20, 10:20, 10:20] = 3
    pred = np.zeros_like(ref)
    pred[14:24, 10:20, 10:20] = 3
    one, two = brats_scores(pred, ref), brats_scores(pred, ref, (2.0, 2.0, 2.0))
    anisotropic = brats_scores(pred, ref, (1.0, 3.0, 3.0))  # the shift is along X: 1 mm voxels there
    for key in ("hd95_et", "lw_hd95_et", "hd95_wt"):
        assert two[key] == pytest.approx(2 * one[key]) and one[key] > 0, key
    assert anisotropic["hd95_et"] == pytest.approx(one["hd95_et"])
    assert two["dice_et"] == one["dice_et"]
