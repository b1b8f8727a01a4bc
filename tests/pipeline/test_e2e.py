"""The main job, end to end: the bundled default weights on the bundled example case."""

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.evaluation.metrics import score
from tests.conftest import EXAMPLE, SHARED

pytestmark = pytest.mark.slow
CASE = EXAMPLE.name


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [f"{CASE}-t2f.nii.gz"]
    return nib.load(str(out / f"{CASE}-t2f.nii.gz"))


def test_geometry_and_background(synthesized):
    ref = nib.load(str(EXAMPLE / f"{CASE}-t1c.nii.gz"))
    assert synthesized.shape == ref.shape == (240, 240, 155)
    np.testing.assert_allclose(synthesized.affine, ref.affine)
    assert synthesized.get_data_dtype() == np.float32
    data = synthesized.get_fdata(dtype=np.float32)
    inputs = [nib.load(str(p)).get_fdata(dtype=np.float32) for p in sorted(EXAMPLE.glob("*.nii.gz"))]
    background = sum((v <= 0).astype(int) for v in inputs) >= 2
    assert (data[background] == 0).all() and (data >= 0).all() and np.isfinite(data).all()
    brain = ~background
    assert (data[brain] > 0).mean() > 0.95  # brain-shaped: the brain is filled


@pytest.mark.skipif(not (SHARED / "data" / "cases" / CASE).is_dir(), reason="../shared (the real t2f) is absent")
def test_plausible_against_the_real_flair(synthesized):
    """A sanity bound: the example case is in the shipped model's training data (it was one of the validation
    model's held-out cases: weights/default.md has that score)."""
    truth = nib.load(str(SHARED / "data" / "cases" / CASE / f"{CASE}-t2f.nii.gz")).get_fdata(dtype=np.float32)
    pred = synthesized.get_fdata(dtype=np.float32)
    brain = truth > 0
    assert np.corrcoef(pred[brain], truth[brain])[0, 1] > 0.5
    metrics = score(pred, truth)
    assert metrics["ssim"] > 0.85 and metrics["ssim_brain"] > 0.4
