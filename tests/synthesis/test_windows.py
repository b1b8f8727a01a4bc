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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_aggregator_accepts_windows_of_different_shapes(dtype):
    from brasyn_infer.synthesis.windows import Aggregator

    agg = Aggregator((1, 4, 5, 6), BlendMode.CONSTANT, dtype)  # float32: finalize divides the sums in place
    for i in range(4):  # slices along X, value 1
        agg.add(np.ones((1, 1, 5, 6)), (i, 0, 0))
    for k in range(6):  # slices along Z, value 3
        agg.add(np.full((1, 4, 5, 1), 3.0), (0, 0, k))
    np.testing.assert_array_equal(agg.finalize(), np.full((1, 4, 5, 6), 2.0, dtype=np.float32))


def test_one_retry_policy_for_every_model():
    """Regression: out of device memory, only the 2D generator halved its batch; the 3D generator and the refiner
    failed. Each now halves it (down to 1), keeps the size that worked, and gives the same result."""
    from brasyn_infer.constants import Modality
    from brasyn_infer.errors import DeviceOutOfMemory
    from brasyn_infer.synthesis.generate import generate_windows
    from brasyn_infer.synthesis.refine import refine_volume

    calls: list[int] = []

    def model(x, missing):  # fits two windows at a time at most
        calls.append(len(x))
        if len(x) > 2:
            raise DeviceOutOfMemory("does not fit")
        return x[:, :1] * 0.5

    rng = np.random.default_rng(0)
    x4 = rng.uniform(-0.9, 1, (4, 20, 20, 20)).astype(np.float32)
    background = np.zeros((20, 20, 20), dtype=bool)
    out = generate_windows(model, x4, Modality.T2F, background, (8, 8, 8), overlap=0.5, batch_size=8)
    assert calls[:3] == [8, 4, 2] and max(calls[3:]) <= 2 and np.isfinite(out).all()  # halved, then kept
    calls.clear()
    volumes = {m: np.where(background, 0, rng.uniform(1, 2, (20, 20, 20))).astype(np.float32)
               for m in (Modality.T1C, Modality.T1N, Modality.T2W)}
    refined = refine_volume(model, volumes, volumes[Modality.T1C], background, Modality.T2F, (8, 8, 8), 0.5,
                            BlendMode.GAUSSIAN, batch_size=4)
    assert calls[:2] == [4, 2] and max(calls[2:]) <= 2 and np.isfinite(refined).all()

    def never(x, missing):
        raise DeviceOutOfMemory("nothing fits")

    with pytest.raises(DeviceOutOfMemory):
        generate_windows(never, x4, Modality.T2F, background, (8, 8, 8), batch_size=4)
