"""The map from a graph's own scale: the manifest block, the views' moments, and the arithmetic."""

import numpy as np
import pytest

from brasyn_infer.constants import Modality, View
from brasyn_infer.errors import WeightsError
from brasyn_infer.synthesis.generate import generate_volume
from brasyn_infer.synthesis.uncertainty import ScaleMap, scale_map


def test_the_block_round_trips_and_bad_blocks_are_refused():
    block = ScaleMap.from_manifest({"view_spread": True, "calibration": {"t1c": 1.5}})
    assert block.view_spread and block.calibration == {Modality.T1C: 1.5}
    assert ScaleMap.from_manifest(block.to_json()) == block
    assert ScaleMap.from_manifest(None) == ScaleMap()
    for bad in ({"calibration": {"flair": 1.0}}, {"calibration": {"t1c": 0}}, {"calibration": {"t1c": "x"}}):
        with pytest.raises(WeightsError):
            ScaleMap.from_manifest(bad)


def test_the_map_is_the_mean_scale_optionally_widened_by_the_views_and_calibrated():
    y = np.full((2, 2, 2), 0.5, np.float32)
    moments = np.stack([y, y * y + np.float32(0.09), np.full_like(y, 0.4)])  # the views' variance is 0.09
    out, plain = scale_map(moments.copy(), Modality.T2F, ScaleMap())  # a copy: scale_map works in the moments
    assert np.array_equal(out, y) and np.allclose(plain, 0.4)
    _, wide = scale_map(moments.copy(), Modality.T2F, ScaleMap(True, {Modality.T2F: 2.0}))
    assert np.allclose(wide, 2.0 * 0.5)  # sqrt(0.4**2 + 0.3**2) * 2
    assert wide.dtype == np.float32 and wide.shape == y.shape


def test_a_rounding_negative_spread_counts_as_none():
    y = np.full((2, 2, 2), 0.7, np.float32)
    moments = np.stack([y, y * y - np.float32(1e-6), np.full_like(y, 0.4)])  # float32 sums can dip below y**2
    _, scale = scale_map(moments, Modality.T1C, ScaleMap(True))
    assert np.all(np.isfinite(scale)) and np.allclose(scale, 0.4)


def two_outputs(x, mask, missing, view):
    """y = the first channel; log_scale = log(1 + view id): each view has its own constant scale."""
    y = x[:, :1] * np.float32(0.5)
    return np.concatenate([y, np.log1p(view)[:, None, None, None] * np.ones_like(y)], axis=1)


def test_fused_views_give_the_mean_output_its_second_moment_and_the_mean_scale():
    rng = np.random.default_rng(0)
    x4 = np.where(rng.random((4, 10, 12, 9)) > 0.2, rng.uniform(-0.9, 1, (4, 10, 12, 9)), -1).astype(np.float32)
    views = [View.AXIAL, View.SAGITTAL]
    moments = generate_volume(two_outputs, x4, Modality.T2F, views, 4, with_scale=True)
    plain = generate_volume(lambda *a: two_outputs(*a)[:, :1], x4, Modality.T2F, views, 4)
    assert moments.shape == (3, 10, 12, 9) and np.array_equal(moments[0], plain)
    ran = (x4[[0, 1, 3]] != -1).any(0)
    assert np.allclose(moments[2][ran], (1 + 2) / 2)  # exp(log 1) = 1 axial, exp(log 2) = 2 sagittal
    assert np.allclose(moments[1][ran], moments[0][ran] ** 2, atol=1e-6)  # the same y in both views: no spread
