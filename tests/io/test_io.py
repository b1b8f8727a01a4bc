import gzip

import nibabel as nib
import numpy as np
import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.errors import CaseError, OutputError
from brasyn_infer.io.nifti import load_volume, output_image, read_inputs, write_atomic
from tests.conftest import LPS_AFFINE, brain_volume, write_nifti


def test_load_applies_scaling_and_returns_float32(tmp_path):
    data = brain_volume()
    image = nib.Nifti1Image(data, LPS_AFFINE)
    image.set_data_dtype(np.int16)
    nib.save(image, str(tmp_path / "v.nii.gz"))
    vol = load_volume(tmp_path / "v.nii.gz")
    assert vol.data.dtype == np.float32 and vol.data.shape == data.shape
    np.testing.assert_allclose(vol.data, data, atol=float(np.abs(data).max()) / 30000)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.int16, np.float32])
def test_unusual_dtypes_load(tmp_path, dtype):
    data = (brain_volume(scale=200)).astype(dtype)
    write_nifti(tmp_path / "v.nii", data, dtype=dtype)
    assert load_volume(tmp_path / "v.nii").data.dtype == np.float32


def test_rejects(tmp_path):
    write_nifti(tmp_path / "4d.nii.gz", np.ones((4, 4, 4, 2)))
    with pytest.raises(CaseError, match="4D"):
        load_volume(tmp_path / "4d.nii.gz")
    write_nifti(tmp_path / "2d.nii.gz", np.ones((4, 4)))
    with pytest.raises(CaseError, match="2D"):
        load_volume(tmp_path / "2d.nii.gz")
    nan = brain_volume()
    nan[1, 2, 3] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", nan, dtype=np.float32)
    with pytest.raises(CaseError, match="NaN or inf"):
        load_volume(tmp_path / "nan.nii.gz")
    write_nifti(tmp_path / "zero.nii.gz", np.zeros((4, 4, 4)))
    with pytest.raises(CaseError, match="every voxel is 0"):
        load_volume(tmp_path / "zero.nii.gz")


def test_truncated_and_not_gzip(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", brain_volume())
    blob = good.read_bytes()
    (tmp_path / "trunc.nii.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CaseError, match="trunc.nii.gz"):
        load_volume(tmp_path / "trunc.nii.gz")
    (tmp_path / "plain.nii.gz").write_bytes(b"this is not gzip at all" * 20)
    with pytest.raises(CaseError, match="plain.nii.gz"):
        load_volume(tmp_path / "plain.nii.gz")
    (tmp_path / "header.nii.gz").write_bytes(gzip.compress(b"\x00" * 400))
    with pytest.raises(CaseError, match="header.nii.gz"):
        load_volume(tmp_path / "header.nii.gz")


def test_shape_and_affine_mismatch(tmp_path):
    a = write_nifti(tmp_path / "a.nii.gz", brain_volume())
    b = write_nifti(tmp_path / "b.nii.gz", brain_volume((36, 40, 27)))
    with pytest.raises(CaseError, match="shape"):
        read_inputs({Modality.T1C: a, Modality.T1N: b})
    shifted = LPS_AFFINE.copy()
    shifted[0, 3] = 5
    c = write_nifti(tmp_path / "c.nii.gz", brain_volume(), affine=shifted)
    with pytest.raises(CaseError, match="affine"):
        read_inputs({Modality.T1C: a, Modality.T1N: c})


def test_output_copies_geometry_and_is_float32(tmp_path):
    src = write_nifti(tmp_path / "in.nii.gz", brain_volume())
    like = nib.load(str(src))
    out = tmp_path / "out" / "x.nii.gz"
    out.parent.mkdir()
    data = np.random.default_rng(0).random(like.shape).astype(np.float32)
    write_atomic(output_image(data, like), out)
    back = nib.load(str(out))
    assert back.get_data_dtype() == np.float32
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32), data)
    np.testing.assert_allclose(back.affine, like.affine)
    assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 1
    np.testing.assert_allclose(back.header.get_zooms(), like.header.get_zooms())
    assert [p.name for p in out.parent.iterdir()] == ["x.nii.gz"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    like = nib.load(str(write_nifti(tmp_path / "in.nii.gz", brain_volume())))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def disk_full(image, filename):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(output_image(brain_volume(), like), out_dir / "x.nii.gz")
    assert list(out_dir.iterdir()) == []
