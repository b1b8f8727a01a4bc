import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from brasyn_infer.constants import BRASYN25_STATS, MODALITIES, Modality
from brasyn_infer.errors import WeightsError
from brasyn_infer.synthesis.normalize import (
    Normalizer,
    background_mask,
    denormalize_fixed,
    denormalize_percentile,
    estimate_scale,
    normalize_fixed,
    normalize_percentile,
)
from tests.conftest import brain_volume


def test_fixed_matches_spec_formula():
    s = BRASYN25_STATS["t2f"]
    x = np.array([-5, 0, 1, 500, 8842, 20000], dtype=np.float32)
    z = normalize_fixed(x, s["mean"], s["std"], s["max_val"])
    expected = (np.clip(x, 0, s["max_val"]) - np.float32(s["mean"])) / np.float32(s["std"])
    expected[x <= 0] = -1
    np.testing.assert_array_equal(z, expected.astype(np.float32))
    assert z[0] == -1 and z[1] == -1 and z[2] > -1


def test_fixed_roundtrip_inside_range():
    s = BRASYN25_STATS["t1c"]
    x = np.linspace(1, s["max_val"], 1000, dtype=np.float32)
    back = denormalize_fixed(normalize_fixed(x, s["mean"], s["std"], s["max_val"]), s["mean"], s["std"])
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-2)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 200), elements=st.floats(0, 5e4, width=32)), st.floats(1.0, 1e4))
def test_percentile_roundtrip_property(x, scale):
    z = normalize_percentile(x, scale)
    assert z.dtype == np.float32 and (z >= -1).all() and (z <= 1).all()
    assert (z[x <= 0] == -1).all()
    back = denormalize_percentile(z, scale)
    inside = x <= scale
    np.testing.assert_allclose(back[inside], x[inside], rtol=1e-5, atol=scale * 1e-6 + 1e-3)
    assert (back >= 0).all()


def test_estimate_scale_follows_the_scanner():
    ref = {"t1c": 2000.0, "t1n": 1000.0, "t2f": 800.0, "t2w": 1500.0}
    scales = {Modality.T1C: 200.0, Modality.T1N: 100.0, Modality.T2W: 150.0}  # 10x lower scanner
    assert estimate_scale(scales, ref, Modality.T2F) == pytest.approx(80.0)


def test_background_mask_needs_two_of_three():
    x4 = np.zeros((4, 3, 1, 1), dtype=np.float32)
    x4[:, 0] = -1  # all background
    x4[0, 1] = -1  # one available channel background -> brain
    x4[0, 2] = x4[1, 2] = -1  # two -> background
    x4[2] = -1  # missing channel is never counted
    assert background_mask(x4, Modality.T2F)[:, 0, 0].tolist() == [True, False, True]


def test_normalizer_stack_and_restore(tmp_path):
    norm = Normalizer.from_manifest({"scheme": "percentile", "percentile": 100,
                                     "reference_scale": {"t1c": 10.0, "t1n": 10.0, "t2f": 10.0, "t2w": 10.0}})
    vol = np.array([[[0.0, 5.0, 10.0]]], dtype=np.float32)
    x4, scales = norm.stack({Modality.T1C: vol, Modality.T1N: vol, Modality.T2W: vol}, Modality.T2F)
    assert (x4[2] == -1).all() and x4[0].tolist() == [[[-1.0, 0.0, 1.0]]]
    y = x4[0].copy()
    out = norm.restore(y, background_mask(x4, Modality.T2F), Modality.T2F, scales)
    np.testing.assert_allclose(out, vol)
    assert out[0, 0, 0] == 0.0


def test_unknown_scheme_is_a_weights_error():
    with pytest.raises(WeightsError, match="unknown normalization"):
        Normalizer.from_manifest({"scheme": "magic"})


@pytest.mark.parametrize(("block", "fill"), [({"scheme": "zscore"}, 0.0), ({"scheme": "minmax", "range": [0, 1]}, 0.0),
                                             ({"scheme": "minmax"}, -1.0), ({"scheme": "minmax", "fill": -2.0}, -2.0)])
def test_generic_schemes_fill_and_invert(block, fill):
    """zscore and minmax: background and missing channel at the fill value; an output equal to a scaled copy
    of an input comes back in scanner-like units, background exactly 0."""
    from brasyn_infer.constants import Modality
    from brasyn_infer.synthesis.normalize import Normalizer, background_mask

    normalizer = Normalizer.from_manifest(block)
    assert normalizer.fill == fill
    base = brain_volume((20, 22, 18))
    volumes = {Modality.T1C: base * 1.0, Modality.T1N: base * 0.8, Modality.T2W: base * 1.2}
    x4, scales = normalizer.stack(volumes, Modality.T2F)
    assert (x4[Modality.T2F.index] == np.float32(fill)).all()
    assert (x4[Modality.T1C.index][base <= 0] == np.float32(fill)).all()
    assert (x4[Modality.T1C.index][base > 0] != np.float32(fill)).mean() > 0.99
    background = background_mask(x4, Modality.T2F, fill)
    assert (background == (base <= 0)).all()
    out = normalizer.restore(x4[Modality.T1C.index].copy(), background, Modality.T2F, scales)
    assert (out[background] == 0).all() and (out >= 0).all() and np.isfinite(out).all()
    assert 0.1 < np.corrcoef(out[~background], base[~background])[0, 1] <= 1.0 + 1e-6


def test_unknown_scheme_names_the_choices():
    from brasyn_infer.errors import WeightsError
    from brasyn_infer.synthesis.normalize import Normalizer

    with pytest.raises(WeightsError, match="minmax"):
        Normalizer.from_manifest({"scheme": "histogram"})
    with pytest.raises(WeightsError, match="empty"):
        Normalizer.from_manifest({"scheme": "minmax", "range": [1, 0]})


@pytest.mark.parametrize("block", [
    {"scheme": "brasyn25", "fill": 0.0},
    {"scheme": "percentile", "percentile": 99.5, "reference_scale": {"t1c": 1000.0, "t1n": 1000.0, "t2f": 1000.0,
                                                                      "t2w": 1000.0}, "fill": 0.5},
    {"scheme": "zscore", "fill": 3.0},
    {"scheme": "minmax", "range": [-1, 1], "fill": 0.25},
])
def test_background_is_exactly_zero_whatever_the_fill(block):
    """Regression: brasyn25 with fill 0 and percentile with fill 0.5 gave the background their mean / half scale."""
    from brasyn_infer.synthesis.normalize import Normalizer, background_mask

    normalizer = Normalizer.from_manifest(block)
    base = brain_volume(scale=900.0)
    volumes = {m: base * (1 + 0.1 * i) for i, m in enumerate(MODALITIES) if m is not Modality.T2F}
    x4, scales = normalizer.stack(volumes, Modality.T2F)
    background = background_mask(x4, Modality.T2F, normalizer.fill)
    assert background.any() and (~background).any()
    out = normalizer.restore(x4[Modality.T1C.index].copy(), background, Modality.T2F, scales)
    assert (out[background] == 0).all() and (out[~background] > 0).mean() > 0.5
