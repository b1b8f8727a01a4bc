import numpy as np
import pytest

from brasyn_infer.constants import PLANE, View
from brasyn_infer.synthesis.views import SliceGeometry


@pytest.mark.parametrize("view", list(View))
@pytest.mark.parametrize("shape", [(240, 240, 155), (37, 51, 23)])
def test_take_put_roundtrip(view, shape):
    rng = np.random.default_rng(0)
    vol = rng.random((2, *shape), dtype=np.float32)
    geometry = SliceGeometry(view, shape)
    index = np.arange(geometry.count)
    planes = geometry.take(vol, index)
    assert planes.shape == (geometry.count, 2, PLANE, PLANE)
    out = np.zeros(shape, dtype=np.float32)
    geometry.put(out, index, planes[:, 1])
    np.testing.assert_array_equal(out, vol[1])


def test_brats_padding_is_42_before_43_after():
    shape = (240, 240, 155)
    vol = np.zeros((1, *shape), dtype=np.float32)
    planes = SliceGeometry(View.SAGITTAL, shape).take(vol, np.array([0]))
    assert (planes[0, 0, :, :42] == -1).all() and (planes[0, 0, :, 42:197] == 0).all()
    assert (planes[0, 0, :, 197:] == -1).all()
    assert SliceGeometry(View.CORONAL, shape).pads == ((0, 0), (42, 43))
    assert SliceGeometry(View.AXIAL, shape).pads == ((0, 0), (0, 0))


def test_slice_orientation_matches_spec():
    shape = (240, 240, 155)
    vol = np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape)
    ax = SliceGeometry(View.AXIAL, shape).take(vol, np.array([7]))[0, 0]
    np.testing.assert_array_equal(ax, vol[0, :, :, 7])  # rows X, columns Y
    sag = SliceGeometry(View.SAGITTAL, shape).take(vol, np.array([5]))[0, 0]
    np.testing.assert_array_equal(sag[:, 42:197], vol[0, 5, :, :])  # rows Y, columns Z
    cor = SliceGeometry(View.CORONAL, shape).take(vol, np.array([9]))[0, 0]
    np.testing.assert_array_equal(cor[:, 42:197], vol[0, :, 9, :])  # rows X, columns Z


def test_occupied_flags():
    vol = np.full((2, 4, 5, 6), -1, dtype=np.float32)
    vol[1, 2, 3, 4] = 0.5
    assert SliceGeometry(View.SAGITTAL, (4, 5, 6)).occupied(vol, [1]).tolist() == [False, False, True, False]
    assert not SliceGeometry(View.SAGITTAL, (4, 5, 6)).occupied(vol, [0]).any()


def test_too_large_plane_is_rejected():
    with pytest.raises(ValueError, match="exceeds"):
        _ = SliceGeometry(View.AXIAL, (300, 240, 155)).pads
