import numpy as np

from training.studies.enhancement_study import paint


def _case() -> tuple[np.ndarray, np.ndarray]:
    t1c = np.zeros((12, 12, 4), np.float32)
    t1c[1:11, 1:11] = 100.0  # the brain
    classes = np.zeros(t1c.shape, np.uint8)
    classes[4:8, 4:8] = 2  # edema
    classes[5:7, 5:7] = 3  # enhancing tumor
    return t1c, classes


def test_paint_raises_the_called_enhancing_voxels_only_and_never_lowers():
    t1c, classes = _case()
    t1c[5, 5, :] = 300.0  # already brighter than the level
    out = paint(t1c, classes, 1.5)
    enhancing = classes == 3
    assert np.allclose(out[enhancing & (t1c < 150)], 150.0)  # 1.5 x the healthy median (100)
    assert np.allclose(out[5, 5, :], 300.0)
    assert np.array_equal(out[~enhancing], t1c[~enhancing])  # the rest unchanged, the background still 0
    assert out is not t1c and t1c.max() == 300.0  # the input is not modified
