import numpy as np

from tests.synthesis.test_enhance import small_case
from training.studies.enhancement_study import paint


def test_paint_raises_the_called_enhancing_voxels_only_and_never_lowers():
    t1c, classes = small_case()
    t1c[6, 6, :] = 300.0  # already brighter than the level
    out = paint(t1c, classes, 1.5)
    enhancing = classes == 3
    assert np.allclose(out[enhancing & (t1c < 150)], 150.0)  # 1.5 x the healthy median (100)
    assert np.allclose(out[6, 6, :], 300.0)
    assert np.array_equal(out[~enhancing], t1c[~enhancing])  # the rest unchanged, the background still 0
    assert out is not t1c and t1c.max() == 300.0  # the input is not modified
