"""Dry runs end to end on small synthetic complete cases."""

import hashlib
import json
import math

import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import Modality
from brasyn_infer.errors import BrasynError
from brasyn_infer.evaluation.dry_run import parse_drop
from brasyn_infer.evaluation.report import read_rows
from tests.conftest import make_case


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    make_case(root, "C-1", missing="none", seg=True)
    make_case(root, "C-2", missing="none")
    make_case(root, "C-3", missing="none")
    make_case(root, "INCOMPLETE", missing="t1c")
    return root


def test_evaluate_writes_reports_and_leaves_data_untouched(data, tmp_path, tiny_weights):
    before = tree_digest(data)
    report = tmp_path / "report"
    args = ["evaluate", str(data), str(report), "--drop", "t2f,t1n", "--weights", str(tiny_weights), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # the incomplete case is reported
    assert "INCOMPLETE" in result.output and "not complete: t1c missing" in result.output
    assert tree_digest(data) == before
    rows = read_rows(report / "cases.csv")
    assert len(rows) == 3 * 2 * 3  # cases x dropped modalities x (model, linear, mean)
    assert {(r["method"]) for r in rows} == {"model", "linear", "mean"}
    seg_rows = [r for r in rows if r["case"] == "C-1"]
    assert all(not math.isnan(r["ssim_tumor"]) for r in seg_rows)
    assert all(math.isnan(r["ssim_tumor"]) for r in rows if r["case"] == "C-2")
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary) == {"t2f", "t1n", "all"} and summary["all"]["model"]["ssim"]["n"] == 6
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs == sorted(f"C-{i}-{m}.png" for i in (1, 2, 3) for m in ("t2f", "t1n"))
    md = (report / "report.md").read_text()
    assert "| t2f | model |" in md and "![C-1-t2f.png](C-1-t2f.png)" in md

    # resume: nothing is recomputed, the CSV keeps one row per (case, modality, method)
    stamp = (report / "C-1-t2f.png").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1
    assert len(read_rows(report / "cases.csv")) == 18
    assert (report / "C-1-t2f.png").stat().st_mtime_ns == stamp


def test_report_inside_data_is_refused(data, tiny_weights):
    result = CliRunner().invoke(app, ["evaluate", str(data), str(data / "r"), "--weights", str(tiny_weights)])
    assert result.exit_code == 1 and "inside" in result.output


def test_parse_drop():
    assert parse_drop("all") == [Modality.T1C, Modality.T1N, Modality.T2F, Modality.T2W]
    assert parse_drop("t2f, T1C") == [Modality.T2F, Modality.T1C]
    with pytest.raises(BrasynError):
        parse_drop("flair")


def test_only_scores_the_held_out_case_with_baselines_fitted_on_the_rest(data, tmp_path, tiny_weights):
    report = tmp_path / "fold"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(report), "--only", "C-2", "--drop", "t2f",
                                      "--baseline", "linear", "--weights", str(tiny_weights), "--quiet"])
    assert result.exit_code == 1, result.output  # INCOMPLETE is still reported
    rows = read_rows(report / "cases.csv")
    assert {(r["case"], r["method"]) for r in rows} == {("C-2", "model"), ("C-2", "linear")}
    bad = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "x"), "--only", "NOPE",
                                   "--weights", str(tiny_weights), "--quiet"])
    assert bad.exit_code == 1 and "--only names cases not in DATA" in bad.output


def test_segment_flag_skips_with_one_line_when_unavailable(data, tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setattr("brasyn_infer.evaluation.downstream.segmentation_unavailable", lambda: "no docker command")
    result = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "r"), "--only", "C-1", "--drop", "t2f",
                                      "--baseline", "none", "--segment", "--weights", str(tiny_weights), "--quiet"])
    lines = [ln for ln in result.output.splitlines() if "downstream segmentation skipped" in ln]
    assert lines == ["downstream segmentation skipped: no docker command"]
    rows = read_rows(tmp_path / "r" / "cases.csv")
    assert len(rows) == 1 and math.isnan(rows[0]["dice_wt"])


def test_segment_scores_with_a_stand_in_segmenter(data, tmp_path, tiny_weights, monkeypatch):
    """The wiring: the synthesized case is segmented and compared with the case's -seg file."""
    import nibabel as nib

    calls = []

    def fake_segment(inputs, output_file, cuda_devices="0"):
        calls.append(sorted(m.value for m in inputs))
        seg_path = next((data / "C-1").glob("*-seg.nii.gz"))
        nib.save(nib.load(str(seg_path)), str(output_file))  # a perfect segmenter
        return output_file

    monkeypatch.setattr("brasyn_infer.evaluation.downstream.segmentation_unavailable", lambda: None)
    monkeypatch.setattr("brasyn_infer.evaluation.downstream.segment", fake_segment)
    result = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "r"), "--only", "C-1", "--drop", "t2f",
                                      "--baseline", "none", "--segment", "--weights", str(tiny_weights), "--quiet"])
    assert calls == [["t1c", "t1n", "t2f", "t2w"]], result.output
    row = read_rows(tmp_path / "r" / "cases.csv")[0]
    assert row["dice_wt"] == 1.0 and row["hd95_wt"] == 0.0
    assert "dice_wt" in (tmp_path / "r" / "report.md").read_text()


def test_with_a_refiner_both_stages_are_scored(data, tmp_path, tiny_weights, tiny_refiner):
    report = tmp_path / "refined"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(report), "--only", "C-1", "--drop", "t1n",
                                      "--baseline", "none", "--weights", str(tiny_weights), "--refiner",
                                      str(tiny_refiner), "--quiet"])
    assert result.exit_code == 1, result.output  # INCOMPLETE is still reported
    rows = read_rows(report / "cases.csv")
    assert sorted(r["method"] for r in rows) == ["model", "model+refiner"]
    model, refined = sorted(rows, key=lambda r: r["method"])
    assert refined["seconds"] > model["seconds"]  # the refiner's time is added to the generator's
    assert "model+refiner" in (report / "report.md").read_text()


def test_save_volumes_keeps_the_generator_output_with_the_inputs_geometry(data, tmp_path, tiny_weights):
    import nibabel as nib
    import numpy as np

    from brasyn_infer.constants import Device
    from brasyn_infer.io.nifti import read_inputs
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    keep = tmp_path / "oof"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(tmp_path / "r"), "--only", "C-2", "--drop", "t2f",
                                      "--baseline", "none", "--weights", str(tiny_weights), "--save-volumes", str(keep),
                                      "--device", "cpu", "--quiet"])
    assert result.exit_code == 1, result.output  # INCOMPLETE is still reported
    assert sorted(p.relative_to(keep).as_posix() for p in keep.rglob("*.nii.gz")) == ["C-2/C-2-t2f.nii.gz"]
    saved = nib.load(keep / "C-2" / "C-2-t2f.nii.gz")
    real = nib.load(data / "C-2" / "C-2-t2f.nii.gz")
    np.testing.assert_allclose(saved.affine, real.affine)
    loaded = read_inputs({m: data / "C-2" / f"C-2-{m.value}.nii.gz" for m in Modality})
    expected = Synthesizer(tiny_weights, device=Device.CPU, refine=False).synthesize(
        {m: v.data for m, v in loaded.items() if m is not Modality.T2F}, Modality.T2F)
    np.testing.assert_allclose(np.asarray(saved.dataobj, dtype=np.float32), expected, rtol=1e-5, atol=1e-3)
