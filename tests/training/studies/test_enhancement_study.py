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


def test_rim_redraws_the_tumor_core_as_an_enhancing_shell_around_a_necrotic_interior():
    from training.studies.enhancement_study import rim_classes

    classes = np.zeros((20, 20, 20), np.uint8)
    classes[2:18, 2:18, 2:18] = 2  # edema, kept
    classes[4:16, 4:16, 4:16] = 3  # a solid 12^3 core, all enhancing
    out = rim_classes(classes, 3)
    assert np.bincount(out.ravel(), minlength=4).tolist() == [20**3 - 16**3, 6**3, 16**3 - 12**3, 12**3 - 6**3]
    assert (out[7:13, 7:13, 7:13] == 1).all() and (out[4, 4:16, 4:16] == 3).all()
