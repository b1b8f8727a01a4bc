"""Pipeline parity: the CLI with the exported reference weights reproduces the reference volumes."""

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import SHARED, needs_shared, needs_torch

pytestmark = [needs_shared, needs_torch, pytest.mark.slow]
CASE = "BraTS-GLI-00001-000"


@pytest.fixture(scope="module")
def case_without_t2f(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in") / CASE
    folder.mkdir()
    for mod in ("t1c", "t1n", "t2w"):
        (folder / f"{CASE}-{mod}.nii.gz").symlink_to(SHARED / "data" / "cases" / CASE / f"{CASE}-{mod}.nii.gz")
    return folder


@pytest.mark.parametrize("cfg_name", ["A", "B"])
def test_cli_reproduces_reference_volumes(cfg_name, case_without_t2f, tmp_path):
    from typer.testing import CliRunner

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.cli import app
    from tests.authoring.models.test_hfgan import reference_net

    manifest = export(reference_net(cfg_name), tmp_path / "w", f"ref{cfg_name}")
    for view, short in (("axial", "axi"), ("sagittal", "sag"), ("coronal", "cor")):
        out = tmp_path / f"out-{view}"
        result = CliRunner().invoke(app, ["run", str(case_without_t2f), str(out), "--weights", str(manifest.path),
                                          "--view", view, "--quiet"])
        assert result.exit_code == 0, result.output
        assert [p.name for p in out.iterdir()] == [f"{CASE}-t2f.nii.gz"]
        ref = nib.load(str(SHARED / "reference" / f"{cfg_name}_{short}" / f"{CASE}-t2f.nii.gz"))
        ours = nib.load(str(out / f"{CASE}-t2f.nii.gz"))
        tolerance = float(ref.dataobj.slope) + 1e-3
        diff = np.abs(ours.get_fdata(dtype=np.float32) - ref.get_fdata(dtype=np.float32))
        assert diff.max() <= tolerance, f"{view}: max diff {diff.max()} > {tolerance}"
        np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-5)
