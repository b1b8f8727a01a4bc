import numpy as np

from training.studies.enhancement_study import enhancement_ratio, paint


def _case() -> tuple[np.ndarray, np.ndarray]:
    t1c = np.zeros((12, 12, 4), np.float32)
    t1c[1:11, 1:11] = 100.0  # the brain
    classes = np.zeros(t1c.shape, np.uint8)
    classes[4:8, 4:8] = 2  # edema
    classes[5:7, 5:7] = 3  # enhancing tumor
    return t1c, classes


def test_the_ratio_is_the_enhancing_tumor_over_the_healthy_brain():
    t1c, classes = _case()
    t1c[classes == 3] = 180.0
    t1c[classes == 2] = 60.0  # edema is neither side of the ratio
    assert abs(enhancement_ratio(t1c, classes) - 1.8) < 1e-6
    assert enhancement_ratio(t1c, np.where(classes == 3, 1, classes)) is None  # no enhancing tumor


def test_paint_raises_the_called_enhancing_voxels_only_and_never_lowers():
    t1c, classes = _case()
    t1c[5, 5, :] = 300.0  # already brighter than the level
    out = paint(t1c, classes, 1.5)
    enhancing = classes == 3
    assert np.allclose(out[enhancing & (t1c < 150)], 150.0)  # 1.5 x the healthy median (100)
    assert np.allclose(out[5, 5, :], 300.0)
    assert np.array_equal(out[~enhancing], t1c[~enhancing])  # the rest unchanged, the background still 0
    assert out is not t1c and t1c.max() == 300.0  # the input is not modified


def test_gain_scales_the_called_enhancing_voxels_to_the_level_keeping_their_texture():
    t1c, classes = _case()
    enhancing = classes == 3
    t1c[enhancing] = np.linspace(80, 120, enhancing.sum())  # median 100, the healthy median too
    out = paint(t1c, classes, 1.5, mode="gain")
    assert np.isclose(np.median(out[enhancing]), 150.0)
    assert np.allclose(out[enhancing] / t1c[enhancing], 1.5)  # one gain: the texture kept
    assert np.array_equal(out[~enhancing], t1c[~enhancing])
    assert np.array_equal(paint(t1c, classes, 0.5, mode="gain"), t1c)  # never darkened
