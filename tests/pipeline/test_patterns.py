"""Cases lacking one, two or three modalities (issue 35): every missing one written, the patterns a manifest
supports, a companion for the others, and the in-graph prior per pattern."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import MODALITIES, Modality
from tests.conftest import HAS_TORCH, SMALL_SHAPE, make_case, weights_with

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def drop(folder, *mods):
    for mod in mods:
        next(folder.glob(f"*-{mod}.nii.gz")).unlink()
    return folder


def test_a_pattern_model_writes_every_missing_modality_and_resume_needs_them_all(tmp_path, tiny_any_weights):
    root = tmp_path / "in"
    drop(make_case(root, "P-2", missing="t1c"), "t2f")  # two missing
    drop(make_case(root, "P-3", missing="t1c"), "t1n", "t2w")  # one left
    make_case(root, "P-1", missing="t2w")  # one missing
    out = tmp_path / "out"
    result = invoke("run", root, out, "--weights", tiny_any_weights, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["P-1-t2w.nii.gz", "P-2-t1c.nii.gz", "P-2-t2f.nii.gz", "P-3-t1c.nii.gz", "P-3-t1n.nii.gz", "P-3-t2w.nii.gz"])
    for path in out.iterdir():
        data = nib.load(str(path)).get_fdata()
        assert data.shape == SMALL_SHAPE and np.isfinite(data).all() and data.max() > 0
    (out / "P-3-t2w.nii.gz").unlink()  # one of three gone: the case is redone
    stamp = (out / "P-2-t1c.nii.gz").stat().st_mtime_ns
    again = invoke("run", root, out, "--weights", tiny_any_weights, "--resume")
    assert again.exit_code == 0 and (out / "P-3-t2w.nii.gz").is_file()
    assert (out / "P-2-t1c.nii.gz").stat().st_mtime_ns == stamp


def test_a_one_missing_model_refuses_other_patterns_in_one_line(tmp_path, tiny_weights):
    root = tmp_path / "in"
    drop(make_case(root, "P-2", missing="t1c"), "t2f")
    make_case(root, "P-1", missing="t2w")
    result = invoke("run", root, tmp_path / "out", "--weights", tiny_weights, "--quiet")
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "P-2" in errors[0] and "t1c, t2f" in errors[0]
    assert "exactly one modality missing" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["P-1-t2w.nii.gz"]


def test_a_companion_completes_what_the_weights_do_not(tmp_path, tiny_weights, tiny_any_weights):
    weights = weights_with(tiny_weights, tmp_path / "w", companion=str(tiny_any_weights))
    root = tmp_path / "in"
    drop(make_case(root, "P-2", missing="t1n"), "t2w")
    result = invoke("run", root, tmp_path / "out", "--weights", weights, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["P-2-t1n.nii.gz", "P-2-t2w.nii.gz"]
    direct = invoke("run", root, tmp_path / "direct", "--weights", tiny_any_weights, "--quiet")
    assert direct.exit_code == 0
    for name in ("P-2-t1n.nii.gz", "P-2-t2w.nii.gz"):  # the companion's own output
        a = nib.load(str(tmp_path / "out" / name)).get_fdata()
        b = nib.load(str(tmp_path / "direct" / name)).get_fdata()
        assert np.array_equal(a, b)


def test_the_graphs_prior_follows_the_pattern():
    """The in-graph prior of a pattern model: for each target and availability mask, the table's row."""
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGANConfig
    from brasyn_infer.authoring.models.residual import PriorResidualHFGAN

    table = np.random.default_rng(1).normal(size=(4, 16, 5)).astype(np.float32)
    net = PriorResidualHFGAN(HFGANConfig(dim=8, num_outputs=2), table, patterns=True)
    x = torch.randn(3, 4, 16, 16)
    mask = torch.tensor([[0, 1, 0, 1], [0, 0, 0, 1], [1, 1, 1, 0]], dtype=torch.float32)
    missing = torch.tensor([0.0, 2.0, 3.0])
    got = net.linear_prior(x, missing, mask)
    for i in range(3):
        code = int((mask[i] * torch.tensor([1.0, 2.0, 4.0, 8.0])).sum())
        row = table[int(missing[i]), code]
        expected = (x[i] * torch.from_numpy(row[:4])[:, None, None]).sum(0) + row[4]
        assert torch.allclose(got[i, 0], expected, atol=1e-5)


def test_pattern_coefficients_are_the_sub_block_of_the_same_fit():
    """The fit of t1c from t1n alone, solved from the three-input statistics, equals a direct least squares."""
    from brasyn_infer.synthesis.linear import case_stats, pattern_code, pattern_table, solve_subset

    rng = np.random.default_rng(0)
    x4 = rng.normal(size=(4, 12, 10, 8)).astype(np.float32)
    x4[0] = 0.7 * x4[1] - 0.2 * x4[3] + 0.1 + 0.05 * rng.normal(size=x4[0].shape)
    stats = case_stats(x4, Modality.T1C)
    coef = solve_subset(stats, Modality.T1C, [Modality.T1N])
    design = np.stack([x4[1].ravel(), np.ones(x4[1].size)], axis=1).astype(np.float64)
    direct = np.linalg.lstsq(design, x4[0].ravel().astype(np.float64), rcond=None)[0]
    assert np.allclose(coef, direct, atol=1e-6)
    table = pattern_table({m: case_stats(x4, m) for m in MODALITIES})
    code = pattern_code([Modality.T1N])
    assert np.allclose(table[0, code, [1, 4]], direct, atol=1e-5) and table[0, code, 0] == 0
    assert not table[0, pattern_code([Modality.T1C, Modality.T1N])].any()  # the target itself: no row


def test_the_manifest_says_what_it_completes(tiny_any_weights, tiny_weights):
    assert json.loads(tiny_any_weights.read_text())["patterns"] == "any"
    assert "patterns" not in json.loads(tiny_weights.read_text())  # one missing: the default, left out


def test_companion_targets_send_that_one_missing_modality_to_the_companion(tmp_path, tiny_weights, tiny_any_weights):
    """Issue 41: the default hands a missing t1c to its companion (trained to draw the tumor) when its manifest lists
    t1c in companion_targets; another single missing modality stays with the weights themselves."""
    weights = weights_with(tiny_weights, tmp_path / "w", companion=str(tiny_any_weights), companion_targets=["t1c"])
    root = tmp_path / "in"
    make_case(root, "P-1", missing="t1c")
    make_case(root, "P-2", missing="t2f")
    result = invoke("run", root, tmp_path / "out", "--weights", weights, "--quiet")
    assert result.exit_code == 0, result.output
    for case, by in (("P-1-t1c", tiny_any_weights), ("P-2-t2f", tiny_weights)):
        alone = invoke("run", root, tmp_path / f"alone-{case}", "--weights", by, "--quiet")
        assert alone.exit_code == 0, alone.output
        got = nib.load(str(tmp_path / "out" / f"{case}.nii.gz")).get_fdata()
        assert np.array_equal(got, nib.load(str(tmp_path / f"alone-{case}" / f"{case}.nii.gz")).get_fdata()), case


def test_companion_targets_need_a_companion_and_known_modalities(tmp_path, tiny_weights, tiny_any_weights):
    from brasyn_infer.errors import WeightsError
    from brasyn_infer.runtime.manifest import load_manifest

    with pytest.raises(WeightsError, match="no companion named"):
        load_manifest(weights_with(tiny_weights, tmp_path / "a", companion_targets=["t1c"]))
    with pytest.raises(WeightsError, match="unknown modality flair"):
        load_manifest(weights_with(tiny_weights, tmp_path / "b", companion=str(tiny_any_weights),
                                   companion_targets=["flair"]))
    ok = load_manifest(weights_with(tiny_weights, tmp_path / "c", companion=str(tiny_any_weights),
                                    companion_targets=["t1c"]))
    assert ok.companion_completes(["t1c"]) and not ok.companion_completes(["t2w"])
    assert ok.companion_completes(["t1c", "t2w"]) and ok.to_json()["companion_targets"] == ["t1c"]
