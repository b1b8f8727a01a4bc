"""Input checks, calibrated: no warning on the real cases, one on each corrupted copy (issue 15, part 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.io.cases import scan_folder
from brasyn_infer.io.checks import check_case
from brasyn_infer.io.nifti import read_inputs
from tests.conftest import EXAMPLE, SHARED

pytestmark = pytest.mark.slow
CASES = SHARED / "data" / "cases"


def warnings_of(folder: Path) -> list[str]:
    return check_case(read_inputs(scan_folder(folder).modalities))


def rewrite(folder: Path, modality: str, change) -> None:
    """Apply ``change(data, image) -> (data, affine, zooms)`` to one file of ``folder``."""
    path = next(folder.glob(f"*-{modality}.nii.gz"))
    image = nib.load(str(path))
    data, affine, zooms = change(image.get_fdata(dtype=np.float32), image)
    out = nib.Nifti1Image(data.astype(np.float32), affine)
    out.header.set_zooms(zooms)
    nib.save(out, str(path))


@pytest.mark.skipif(not CASES.is_dir(), reason="../shared/data/cases is absent")
@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir()) if CASES.is_dir() else [])
def test_real_cases_are_clean(case):
    assert warnings_of(CASES / case) == []


def test_example_is_clean_and_check_exits_0():
    assert warnings_of(EXAMPLE) == []
    result = CliRunner().invoke(app, ["check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output


def zscore(data, image):
    brain = data > 0
    out = np.zeros_like(data)
    out[brain] = (data[brain] - data[brain].mean()) / data[brain].std()
    return out, image.affine, (1.0, 1.0, 1.0)


def resample(data, image):
    from scipy.ndimage import zoom

    affine = image.affine.copy()
    affine[:3, :3] *= 1.2
    return zoom(data, 1 / 1.2, order=1), affine, (1.2, 1.2, 1.2)


def skull(data, image):
    """A skull-like shell: a bright band from outside the brain out to the volume's edge."""
    from scipy.ndimage import binary_dilation

    brain = data > 0
    grown = binary_dilation(brain, iterations=6)
    head = np.zeros_like(brain)
    head[5:-5, 5:-5, :] = True  # scalp to the edge of the field of view, down through the neck
    out = data.copy()
    out[head & ~grown] = 0.4 * np.percentile(data[brain], 99)
    return out, image.affine, (1.0, 1.0, 1.0)


def shift(data, image):
    return np.roll(data, 10, axis=0), image.affine, (1.0, 1.0, 1.0)


@pytest.mark.parametrize(("corruption", "modalities", "expected"), [
    (zscore, ("t1c", "t1n", "t2w"), "z-scored"),
    (resample, ("t1c", "t1n", "t2w"), "not BraTS's 240x240x155 at 1 mm"),
    (skull, ("t1c", "t1n", "t2w"), "not skull-stripped"),
    (shift, ("t1n",), "Dice"),
])
def test_each_corruption_gets_its_warning(tmp_path, corruption, modalities, expected):
    folder = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, folder)
    for modality in modalities:
        rewrite(folder, modality, corruption)
    warnings = warnings_of(folder)
    assert any(expected in w for w in warnings), warnings
    assert all(w.startswith(str(folder)) and " -- " in w for w in warnings)  # file, what is off, what to do
    result = CliRunner().invoke(app, ["check", str(folder)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert lines and all("\n" not in line for line in lines)
    print(f"\n    {corruption.__name__}: {lines[0][:220]}")


def test_run_warns_and_still_writes(tmp_path, tiny_weights):
    """A case off the BraTS grid (the small synthetic one) is warned about in one line, and still written."""
    from tests.conftest import make_case

    make_case(tmp_path / "in", "BraTS-GLI-00005-000")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "in"), str(tmp_path / "out"), "--weights", str(tiny_weights),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and all("not BraTS's 240x240x155 at 1 mm" in w for w in warnings)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["BraTS-GLI-00005-000-t2f.nii.gz"]
