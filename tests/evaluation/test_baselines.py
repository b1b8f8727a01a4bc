import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.baselines import predict_mean


def test_mean_of_available():
    x4 = np.stack([np.full((2, 2, 2), v, dtype=np.float32) for v in (0.0, 0.3, -1.0, 0.6)])
    np.testing.assert_allclose(predict_mean(x4, Modality.T2F), 0.3)
