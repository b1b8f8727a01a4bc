import numpy as np
import pytest

from brasyn_infer.synthesis.enhance import ENHANCING, NECROTIC, contrast_ratio, enhance, gaussian_blur


def small_case() -> tuple[np.ndarray, np.ndarray]:
    """A 16 x 16 x 6 t1c (brain 100, background 0) and its classes: edema around enhancing tumor around necrosis."""
    t1c = np.zeros((16, 16, 6), np.float32)
    t1c[1:15, 1:15] = 100.0  # the brain
    classes = np.zeros(t1c.shape, np.uint8)
    classes[4:12, 4:12] = 2  # edema
    classes[5:11, 5:11] = 3  # enhancing tumor
    classes[7:9, 7:9] = 1  # necrotic core
    return t1c, classes


def test_the_labels_are_the_enhancing_tumor_and_the_necrotic_core():
    assert ENHANCING == (3,) and NECROTIC == (1,)


def test_the_ratio_is_the_region_over_the_healthy_brain():
    t1c, classes = small_case()
    t1c[classes == 3] = 180.0
    t1c[classes == 1] = 40.0
    t1c[classes == 2] = 60.0  # edema is neither side of the ratio
    assert contrast_ratio(t1c, classes) == pytest.approx(1.8)
    assert contrast_ratio(t1c, classes, NECROTIC) == pytest.approx(0.4)
    assert contrast_ratio(t1c, np.where(classes == 3, 2, classes)) is None  # no enhancing tumor
    assert contrast_ratio(t1c, np.where(t1c > 0, 3, 0).astype(np.uint8)) is None  # no healthy brain


def test_the_enhancing_tumor_is_scaled_to_the_ratio_keeping_its_texture():
    t1c, classes = small_case()
    et = classes == 3
    t1c[et] = np.linspace(80, 120, et.sum())  # median 100, the healthy median too
    before = t1c.copy()
    out = enhance(t1c, classes, 1.5)
    assert np.isclose(np.median(out[et]), 150.0)
    assert np.allclose(out[et] / t1c[et], 1.5)  # one gain: the texture kept
    assert np.array_equal(out[~et], t1c[~et])  # the rest (necrosis without --necrosis, background) unchanged
    assert np.array_equal(t1c, before) and out is not t1c  # the input is not modified
    assert np.array_equal(enhance(t1c, classes, 0.5), t1c)  # never darkened


def test_the_necrotic_core_is_scaled_down_and_never_brightened():
    t1c, classes = small_case()
    out = enhance(t1c, classes, 1.5, necrosis=0.6)
    assert np.allclose(out[classes == 1], 60.0)
    assert np.allclose(out[classes == 3], 150.0)
    assert np.array_equal(enhance(t1c, classes, 1.0, necrosis=1.4), t1c)  # a brighter core is left as it is


def test_feathering_smooths_the_edge_and_keeps_the_background():
    t1c, classes = small_case()
    sharp, soft = enhance(t1c, classes, 1.5), enhance(t1c, classes, 1.5, feather=1.0)
    assert np.all(soft[t1c == 0] == 0)
    edge = (classes == 2) & np.roll(classes == 3, 1, axis=0)  # edema just outside the enhancing tumor
    assert edge.any() and np.all(soft[edge] > 100.0) and np.all(sharp[edge] == 100.0)
    assert np.all(soft[6:10, 6:10][classes[6:10, 6:10] == 3] <= 150.0 + 1e-3)


def test_no_tumor_or_no_healthy_brain_leaves_the_volume_as_it_is():
    t1c, classes = small_case()
    assert np.array_equal(enhance(t1c, np.zeros_like(classes), 1.5), t1c)
    assert np.array_equal(enhance(t1c, np.where(t1c > 0, 3, 0).astype(np.uint8), 1.5), t1c)


def test_the_blur_keeps_a_constant_and_the_mass():
    assert np.allclose(gaussian_blur(np.full((5, 6, 7), 2.0), 1.5), 2.0)
    spike = np.zeros((21, 21), np.float32)
    spike[10, 10] = 1.0
    blurred = gaussian_blur(spike, 1.0)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-5) and blurred[10, 10] < 0.2
    assert blurred[10, 11] == pytest.approx(blurred[11, 10]) and blurred[10, 11] < blurred[10, 10]
    assert np.array_equal(gaussian_blur(spike, 0), spike)


def test_feathering_leaves_every_voxel_away_from_the_regions_exactly_as_it_was():
    """Regression: blurring the factors themselves (1 almost everywhere) changed every voxel by float rounding."""
    rng = np.random.default_rng(0)
    t1c = rng.uniform(50, 150, (40, 40, 30)).astype(np.float32)
    classes = np.zeros(t1c.shape, np.uint8)
    classes[18:22, 18:22, 14:16] = 3
    out = enhance(t1c, classes, 1.5, feather=1.0)
    far = np.ones(t1c.shape, bool)
    far[12:28, 12:28, 8:22] = False
    assert np.array_equal(out[far], t1c[far]) and not np.array_equal(out, t1c)
