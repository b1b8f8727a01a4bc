import numpy as np

from training.studies.scale_study import loco_errors


def test_a_scale_that_follows_the_others_is_predicted_exactly():
    rng = np.random.default_rng(0)
    base = rng.normal(6, 1, size=(10, 1))
    scales = np.hstack([base, base + 0.5, base - 0.2, base + 1.0])  # a fixed ratio between the modalities
    geo, reg = loco_errors(scales, 3)
    assert np.abs(geo).max() < 1e-9 and np.abs(reg).max() < 1e-9
    noisy = scales + rng.normal(0, 0.3, size=scales.shape)
    geo, reg = loco_errors(noisy, 3)
    assert 0.1 < np.sqrt((geo**2).mean()) < 1.0
