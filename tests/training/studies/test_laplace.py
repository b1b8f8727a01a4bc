"""The Laplace-scale uncertainty fit of the trust block."""

import numpy as np

from brasyn_infer.synthesis.trust import laplace_scale
from training.studies.laplace import fit_laplace


def test_fit_laplace_recovers_the_scale_model():
    rng = np.random.default_rng(1)
    feats = rng.uniform(0.01, 1.0, size=(2, 200_000))
    true_w = np.array([-1.0, 0.8, -0.3])
    b = laplace_scale(feats, true_w)
    errors = np.abs(rng.laplace(0.0, b))
    w = fit_laplace(feats, errors)
    assert np.allclose(w, true_w, atol=0.03)


