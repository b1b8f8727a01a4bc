import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.baselines import predict_mean


def test_mean_of_available():
    x4 = np.stack([np.full((2, 2, 2), v, dtype=np.float32) for v in (0.0, 0.3, -1.0, 0.6)])
    np.testing.assert_allclose(predict_mean(x4, Modality.T2F), 0.3)


def test_a_baseline_comes_out_in_the_inputs_units_with_their_background_at_zero():
    """Three identical inputs: their mean, de-normalized, is the input itself (clipped at the percentile the
    normalization scales by), and 0 outside the brain."""
    from functools import partial

    from brasyn_infer.evaluation.baselines import baseline_output
    from brasyn_infer.synthesis.normalize import Normalizer, foreground_percentile
    from tests.conftest import brain_volume

    volume = brain_volume(scale=500.0)
    normalizer = Normalizer.from_manifest({"scheme": "percentile", "percentile": 99.5,
                                           "reference_scale": {m: 1000.0 for m in ("t1c", "t1n", "t2f", "t2w")}})
    inputs = {m: volume for m in (Modality.T1C, Modality.T1N, Modality.T2W)}
    out = baseline_output(normalizer, inputs, Modality.T2F, partial(predict_mean, missing=Modality.T2F))
    expected = np.minimum(volume, foreground_percentile(volume, 99.5))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)
    assert (out[volume == 0] == 0).all() and (out[volume > 0] > 0).all()
