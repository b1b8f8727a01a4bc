import numpy as np
import pytest

from brasyn_infer.evaluation.downstream import EMPTY_HD95, dice, hd95, regions, score_segmentation


def cube(shape=(30, 30, 30), lo=(10, 10, 10), size=6):
    m = np.zeros(shape, dtype=bool)
    m[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size] = True
    return m


def test_dice_known_values():
    a = cube()
    b = cube(lo=(13, 10, 10))  # half overlap along x
    assert dice(a, a) == 1.0 and dice(a, b) == pytest.approx(0.5)
    assert dice(a, cube(lo=(20, 20, 20))) == 0.0
    assert dice(np.zeros((3, 3, 3), bool), np.zeros((3, 3, 3), bool)) == 1.0


def test_hd95_known_values():
    a = np.zeros((20, 20, 20), bool)
    b = np.zeros((20, 20, 20), bool)
    a[5, 5, 5] = True
    b[5, 5, 10] = True
    assert hd95(a, b) == pytest.approx(5.0)
    assert hd95(a, b, spacing=(1, 1, 2)) == pytest.approx(10.0)
    assert hd95(cube(), cube()) == 0.0
    assert hd95(a, np.zeros_like(a)) == EMPTY_HD95 and hd95(np.zeros_like(a), np.zeros_like(a)) == 0.0


def test_regions_handle_2023_and_2020_labels():
    labels = np.array([0, 1, 2, 3, 4])
    r = regions(labels)
    assert r["wt"].tolist() == [False, True, True, True, True]
    assert r["tc"].tolist() == [False, True, False, True, True]
    assert r["et"].tolist() == [False, False, False, True, True]


def test_score_segmentation_perfect_and_missing_et():
    ref = np.zeros((20, 20, 20))
    ref[5:15, 5:15, 5:15] = 2
    ref[8:12, 8:12, 8:12] = 3
    perfect = score_segmentation(ref, ref)
    assert all(perfect[f"dice_{k}"] == 1.0 and perfect[f"hd95_{k}"] == 0.0 for k in ("wt", "tc", "et"))
    no_et = np.where(ref == 3, 2, ref)
    s = score_segmentation(no_et, ref)
    assert s["dice_wt"] == 1.0 and s["dice_et"] == 0.0 and s["hd95_et"] == EMPTY_HD95
