"""Real BraTS 2018 cases in their own file names (`_t1`, `_t1ce`, `_t2`, `_flair`, `_seg`): run, check, evaluate."""

import math

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.evaluation.report import read_rows
from tests.conftest import SHARED

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED / "data" / "brats2018").is_dir(), reason="../shared/data/brats2018 is absent")]
LEGACY = SHARED / "data" / "brats2018"
CASES = {"Brats18_CBICA_ABM_1": "t1ce", "Brats18_TCIA10_637_1": "flair"}  # the second is scaled to the int16 range


def linked(root, case_id, drop=None):
    """A copy of a real case (symlinks), without the ``drop`` file."""
    folder = root / case_id
    folder.mkdir(parents=True)
    for path in (LEGACY / case_id).glob("*.nii.gz"):
        if drop is None or not path.name.endswith(f"_{drop}.nii.gz"):
            (folder / path.name).symlink_to(path)
    return folder


def test_run_writes_each_output_in_the_inputs_convention(tmp_path, tiny_weights):
    for case_id, drop in CASES.items():
        linked(tmp_path / "in", case_id, drop)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "in"), str(tmp_path / "out"), "--weights",
                                      str(tiny_weights), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Brats18_CBICA_ABM_1_t1ce.nii.gz",
                                                                    "Brats18_TCIA10_637_1_flair.nii.gz"]
    out = nib.load(str(tmp_path / "out" / "Brats18_TCIA10_637_1_flair.nii.gz"))
    like = nib.load(str(LEGACY / "Brats18_TCIA10_637_1" / "Brats18_TCIA10_637_1_t1.nii.gz"))
    np.testing.assert_allclose(out.affine, like.affine)
    data = out.get_fdata(dtype=np.float32)
    brain = like.get_fdata(dtype=np.float32) > 0
    # int16-range inputs give an int16-range output (the scale follows the inputs'), background 0
    assert np.median(data[brain]) > 1000 and (data[~brain] == 0).mean() > 0.99


def test_check_finds_nothing_wrong_with_real_cases(tmp_path):
    for case_id in CASES:
        linked(tmp_path / "in", case_id)
    result = CliRunner().invoke(app, ["check", str(tmp_path / "in")])
    assert result.exit_code == 0, result.output


def test_evaluate_scores_tumor_and_healthy_tissue_from_2018_labels(tmp_path, tiny_weights):
    for case_id in CASES:
        linked(tmp_path / "data", case_id)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "data"), str(tmp_path / "report"), "--drop", "t1c",
                                      "--baseline", "linear", "--weights", str(tiny_weights), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "report" / "cases.csv")
    assert {(r["case"], r["method"]) for r in rows} == {(c, m) for c in CASES for m in ("model", "linear")}
    assert all(not math.isnan(r["ssim_tumor"]) and not math.isnan(r["ssim_healthy"]) for r in rows)
