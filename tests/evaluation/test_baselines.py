import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.baselines import brain_voxels, fit_linear, predict_linear, predict_mean


def test_linear_recovers_an_exact_linear_relation():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(2):
        x4 = rng.uniform(-0.9, 1, (4, 10, 11, 12)).astype(np.float32)
        x4[2] = 0.5 * x4[0] - 0.25 * x4[1] + 0.1 * x4[3] + 0.2
        cases.append(x4)
    coef = fit_linear([brain_voxels(c, Modality.T2F, rng) for c in cases])
    np.testing.assert_allclose(coef, [0.5, -0.25, 0.1, 0.2], atol=1e-5)
    np.testing.assert_allclose(predict_linear(cases[0], Modality.T2F, coef), cases[0][2], atol=1e-5)


def test_brain_voxels_excludes_background():
    x4 = np.zeros((4, 3, 3, 3), dtype=np.float32)
    x4[:, 0] = -1
    features, target = brain_voxels(x4, Modality.T1C, np.random.default_rng(0))
    assert features.shape == (18, 3) and target.shape == (18,)


def test_mean_of_available():
    x4 = np.stack([np.full((2, 2, 2), v, dtype=np.float32) for v in (0.0, 0.3, -1.0, 0.6)])
    np.testing.assert_allclose(predict_mean(x4, Modality.T2F), 0.3)
