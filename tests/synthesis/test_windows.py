import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brasyn_infer.synthesis.windows import BlendMode, blend_weights, compute_starts, sliding_window, window_starts


def test_compute_starts_first_at_zero_last_at_edge():
    assert compute_starts(155, 64, 0.5) == [0, 30, 61, 91]
    assert compute_starts(128, 128, 0.5) == [0]
    assert compute_starts(100, 128, 0.5) == [0]
    with pytest.raises(ValueError):
        compute_starts(10, 4, 1.0)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), window=st.integers(1, 160), overlap=st.floats(0, 0.9))
def test_windows_cover_every_voxel(size, window, overlap):
    starts = compute_starts(size, window, overlap)
    covered = np.zeros(max(size, window), bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered[:size].all()
    assert starts[0] == 0 and (starts[-1] + window >= size)
    if len(starts) > 1:
        gaps = np.diff(starts)
        assert gaps.max() <= window * (1 - overlap) + 1


@pytest.mark.parametrize("mode", list(BlendMode))
@pytest.mark.parametrize("shape,window,overlap", [((37, 41, 29), (16, 16, 16), 0.5), ((20, 20, 20), (32, 32, 32), 0.5),
                                                  ((50, 33, 17), (24, 16, 8), 0.25), ((9, 9, 9), (4, 4, 4), 0.0)])
def test_blending_a_constant_field_returns_it_exactly(mode, shape, window, overlap):
    value = np.float32(3.7)
    vol = np.full((2, *shape), value, dtype=np.float32)
    out = sliding_window(vol, lambda b: b[:, :1], window, overlap, mode, batch_size=3)
    assert out.shape == (1, *shape) and out.dtype == np.float32
    assert (out == value).all()


def test_identity_model_reproduces_the_volume():
    rng = np.random.default_rng(0)
    vol = rng.random((1, 30, 22, 17)).astype(np.float32)
    out = sliding_window(vol, lambda b: b, (12, 12, 12), 0.5, BlendMode.GAUSSIAN, batch_size=4)
    np.testing.assert_allclose(out, vol, rtol=1e-6)


def test_weights_are_cached_positive_and_read_only():
    w = blend_weights((8, 8, 8), BlendMode.HANN)
    assert w is blend_weights((8, 8, 8), BlendMode.HANN)
    assert (w > 0).all() and not w.flags.writeable
    assert len(window_starts((10, 10, 10), (4, 4, 4), 0.5)) == 4**3


def test_non_finite_predictions_are_refused():
    from brasyn_infer.errors import BrasynError

    vol = np.ones((1, 8, 8, 8), np.float32)
    with pytest.raises(BrasynError, match="non-finite"):
        sliding_window(vol, lambda b: b * np.nan, (4, 4, 4), 0.5)


def test_aggregator_accepts_windows_of_different_shapes():
    from brasyn_infer.synthesis.windows import Aggregator

    agg = Aggregator((1, 4, 5, 6), BlendMode.CONSTANT)
    for i in range(4):  # slices along X, value 1
        agg.add(np.ones((1, 1, 5, 6)), (i, 0, 0))
    for k in range(6):  # slices along Z, value 3
        agg.add(np.full((1, 4, 5, 1), 3.0), (0, 0, k))
    np.testing.assert_array_equal(agg.finalize(), np.full((1, 4, 5, 6), 2.0, dtype=np.float32))
