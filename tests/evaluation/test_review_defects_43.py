"""Issue 43: what a review of segment and evaluate reproduced (each test failed on the code before its fix)."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.evaluation.report import read_rows, summarize
from tests.conftest import HAS_TORCH, SMALL_SHAPE, brain_volume, make_case, weights_with, write_nifti

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def errors_of(result):
    return [ln for ln in result.output.splitlines() if ln.startswith("error:")]


def with_seg(root, case_id, labels, dtype=np.uint8, shape=SMALL_SHAPE):
    folder = make_case(root, case_id, missing="none")
    write_nifti(folder / f"{case_id}-seg.nii.gz", np.asarray(labels), dtype=dtype)
    return folder


def tumor_labels(values=(1, 2, 4)):
    """A label map with one region per value of ``values``, inside the test brain."""
    seg = np.zeros(SMALL_SHAPE, np.float32)
    x = SMALL_SHAPE[0] // 2
    for i, v in enumerate(values):
        seg[x - 4 + 3 * i:x - 1 + 3 * i, 20:30, 8:14] = v
    return seg


def evaluate(data, report, weights, *extra):
    return invoke("evaluate", data, report, "--weights", weights, "--drop", "t2f", "--baseline", "mean",
                  "--no-uncertainty", "--quiet", *extra)


def rows_of(report, case=None, method="model"):
    return [r for r in read_rows(report / "cases.csv") if r["method"] == method and (case is None or r["case"] == case)]


@needs_torch
def test_a_label_the_convention_does_not_define_is_an_error_naming_the_fitting_one(tmp_path, tiny_weights):
    """1. BraTS 2018 labels (1, 2, 4) in a BraSyn-named seg were read as 2023: ET became background, exit 0."""
    data = tmp_path / "data"
    with_seg(data, "R-1", tumor_labels((1, 2, 4)))
    make_case(data, "G-1", missing="none")
    result = evaluate(data, tmp_path / "r", tiny_weights)
    assert result.exit_code == 1
    [line] = errors_of(result)
    assert "R-1-seg.nii.gz" in line and "labels 1, 2, 4 found" in line and "--labels 2018" in line
    assert rows_of(tmp_path / "r", "G-1") and not rows_of(tmp_path / "r", "R-1")
    fixed = evaluate(data, tmp_path / "r2018", tiny_weights, "--labels", "2018")
    assert fixed.exit_code == 0, fixed.output
    [row] = rows_of(tmp_path / "r2018", "R-1")
    assert math.isfinite(row["ssim_tumor"])  # ET (label 4) counts as tumor now
    for command in (["evaluate", data, tmp_path / "x"], ["segment", data, tmp_path / "y"]):
        refused = invoke(*command, "--labels", "2019")
        assert refused.exit_code == 2 and "2018" in refused.output and "2024" in refused.output


@needs_torch
def test_a_map_that_is_not_whole_numbers_is_one_error_row(tmp_path, tiny_weights):
    """2. A soft map of 0 / 0.45 was rounded to no tumor, exit 0."""
    data = tmp_path / "data"
    with_seg(data, "S-1", tumor_labels((1,)) * 0.45, dtype=np.float32)
    make_case(data, "G-1", missing="none")
    result = evaluate(data, tmp_path / "r", tiny_weights)
    assert result.exit_code == 1
    [line] = errors_of(result)
    assert "S-1-seg.nii.gz" in line and "not whole numbers" in line
    errors = [r for r in read_rows(tmp_path / "r" / "cases.csv") if r["method"] == "error"]
    assert [r["case"] for r in errors] == ["S-1"] and rows_of(tmp_path / "r", "G-1")


@needs_torch
def test_a_seg_of_another_grid_is_one_error_row_and_the_rest_is_scored(tmp_path, tiny_weights):
    """7. A seg of another shape crashed the whole dry run (operands could not be broadcast, no report)."""
    data = tmp_path / "data"
    folder = make_case(data, "W-1", missing="none")
    write_nifti(folder / "W-1-seg.nii.gz", np.zeros((10, 10, 10), np.uint8) + 1, dtype=np.uint8)
    make_case(data, "G-1", missing="none")
    result = evaluate(data, tmp_path / "r", tiny_weights)
    assert result.exit_code == 1, result.output
    [line] = errors_of(result)
    assert "W-1-seg.nii.gz" in line and "shape (10, 10, 10) differs" in line
    assert (tmp_path / "r" / "report.md").is_file() and rows_of(tmp_path / "r", "G-1")


@needs_torch
def test_an_empty_seg_is_scored_with_its_tumor_figures_empty_and_a_reason(tmp_path, tiny_weights):
    """8. An all-zero seg got "every voxel is 0 -- fix: ... delete the file" and the case was not scored."""
    data = tmp_path / "data"
    with_seg(data, "Z-1", np.zeros(SMALL_SHAPE))
    result = evaluate(data, tmp_path / "r", tiny_weights)
    assert result.exit_code == 0, result.output
    assert "0 cases skipped" in result.output and not errors_of(result)
    [row] = rows_of(tmp_path / "r", "Z-1")
    assert math.isfinite(row["ssim_brain"]) and math.isnan(row["ssim_tumor"])
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Z-1: the segmentation is empty (no tumor)" in report and "without scores" not in report


@needs_torch
def test_a_resumed_evaluate_refuses_another_companion_or_blend(tmp_path, tiny_weights, tiny_any_weights):
    """4. The fingerprint left out companion, copy_blend and patterns: rows of two blends sat side by side."""
    data = tmp_path / "data"
    make_case(data, "C-1", missing="none")
    companion = weights_with(tiny_any_weights, tmp_path / "any")
    primary = weights_with(tiny_weights, tmp_path / "one", companion=str(companion))
    report = tmp_path / "r"
    first = invoke("evaluate", data, report, "--weights", primary, "--drop", "t1c+t2w", "--baseline", "copy",
                   "--no-uncertainty", "--quiet")
    assert first.exit_code == 0, first.output
    made = json.loads((report / "run.json").read_text())
    assert made["companion"]["name"] == json.loads(companion.read_text())["name"]
    blended = json.loads(companion.read_text())
    blended["copy_blend"] = {"t1c+t2w": {"t1c": 0.5}}
    companion.write_text(json.dumps(blended))
    again = invoke("evaluate", data, report, "--weights", primary, "--drop", "t1c+t2w", "--baseline", "copy",
                   "--no-uncertainty", "--quiet")
    assert again.exit_code == 2 and "holds the scores of another run (companion" in again.output
    own = weights_with(tiny_any_weights, tmp_path / "own")
    assert invoke("evaluate", data, tmp_path / "r2", "--weights", own, "--drop", "t1c+t2w", "--baseline", "copy",
                  "--no-uncertainty", "--quiet").exit_code == 0
    data_ = json.loads(own.read_text())
    data_["copy_blend"] = {"t1c+t2w": {"t2w": 0.2}}
    own.write_text(json.dumps(data_))
    refused = invoke("evaluate", data, tmp_path / "r2", "--weights", own, "--drop", "t1c+t2w", "--baseline", "copy",
                     "--no-uncertainty", "--quiet")
    assert refused.exit_code == 2 and "weights" in refused.output


@needs_torch
def test_output_above_input_is_refused_before_anything_is_written(tmp_path, tiny_weights, tiny_segmenter):
    """6. `segment d2/CASE d2` wrote into the dataset folder; the next run took d2 for one case."""
    data = tmp_path / "d2"
    make_case(data, "C-1", missing="none")
    make_case(data, "C-2", missing="t2f")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for command in (["segment", data / "C-1", data, "--segmenter", tiny_segmenter],
                    ["run", data / "C-2", data, "--weights", tiny_weights]):
        result = invoke(*command)
        assert result.exit_code != 0
        [line] = errors_of(result)
        assert "above it" in line and line.count("d2") == str(data).count("d2"), line
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_a_case_error_names_the_folder_once(tmp_path):
    """6. 'd2: d2: no file named like a modality': the case ID and the folder, the same words twice."""
    import typer

    from brasyn_infer.cli.app import case_fail_line
    from brasyn_infer.errors import CaseError

    probe = typer.Typer()

    @probe.command()
    def main() -> None:
        case_fail_line("d2", CaseError("no file named like a modality", tmp_path / "d2", "name them"))
        case_fail_line("X-1", CaseError("boom", tmp_path / "X-1" / "X-1-t1c.nii.gz"))

    lines = CliRunner().invoke(probe, []).output.splitlines()
    assert lines[0] == "error: d2: no file named like a modality -- fix: name them"
    assert lines[1] == f"error: X-1: {tmp_path / 'X-1' / 'X-1-t1c.nii.gz'}: boom"


@needs_torch
def test_a_segmenter_manifest_that_disagrees_with_its_graph_is_refused_in_one_line(tmp_path, tiny_segmenter):
    """9. `context` edited: every case failed with a multi-line ONNX Runtime message."""
    data = tmp_path / "in"
    make_case(data, "C-1", missing="none")
    edited = weights_with(tiny_segmenter, tmp_path / "seg", context=2)
    result = invoke("segment", data, tmp_path / "out", "--segmenter", edited)
    assert result.exit_code == 1
    [line] = errors_of(result)
    assert "takes 12 input channels, the manifest implies 20 (context 2" in line
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists() or \
        list((tmp_path / "out").iterdir()) == []


@needs_torch
def test_import_refuses_to_overwrite_a_name_unless_forced(tmp_path, tiny_segmenter):
    """Also: `import --out weights --name segmenter` overwrote a shipped model."""
    out = tmp_path / "w"
    args = ["import", tiny_segmenter.with_suffix(".onnx"), "--kind", "segmenter", "--seg-kind", "slice2d",
            "--channels", "t1c,t1n,t2f,t2w", "--context", "1", "--out", out, "--name", "mine"]
    assert invoke(*args).exit_code == 0
    stamp = (out / "mine.json").stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 1 and "already there" in again.output and "--force" in again.output
    assert (out / "mine.json").stat().st_mtime_ns == stamp
    assert invoke(*args, "--force").exit_code == 0


def test_of_two_seg_files_the_one_named_for_the_case_is_taken(tmp_path):
    """Also: a folder holding two *-seg files took whichever sorted last."""
    from brasyn_infer.errors import CaseError
    from brasyn_infer.io.cases import scan_folder

    folder = make_case(tmp_path, "C-1", missing="none")
    write_nifti(folder / "C-1-seg.nii.gz", np.ones(SMALL_SHAPE, np.uint8), dtype=np.uint8)
    write_nifti(folder / "Old-seg.nii.gz", np.ones(SMALL_SHAPE, np.uint8), dtype=np.uint8)
    assert scan_folder(folder).seg.name == "C-1-seg.nii.gz"
    (folder / "C-1-seg.nii.gz").rename(folder / "Other-seg.nii.gz")
    with pytest.raises(CaseError, match="2 segmentation files .* none named for case C-1"):
        scan_folder(folder)


def test_real_rows_count_once_per_case_and_pattern():
    """Also: `real` rows repeated once per synthesized sequence of a pattern in the pooled summaries."""
    rows = []
    for case, dice in (("A", 0.9), ("B", 0.5)):
        for mod in ("t1c", "t2w"):
            rows.append({"case": case, "pattern": "t1c+t2w", "modality": mod, "method": "real", "dice_wt": dice})
            rows.append({"case": case, "pattern": "t1c+t2w", "modality": mod, "method": "model", "dice_wt": dice})
    summary = summarize(rows)
    assert summary["all [two missing]"]["real"]["dice_wt"]["n"] == 2
    assert summary["all [two missing]"]["model"]["dice_wt"]["n"] == 4
    assert summary["t1c [t1c+t2w]"]["real"]["dice_wt"]["n"] == 2


@needs_torch
def test_the_blend_fit_finds_saved_outputs_by_case_id(tmp_path, tiny_any_weights):
    """Also: fit_copy_blend keyed cases by folder name where --save-volumes names them by case ID."""
    from training.fit_copy_blend import main

    data = tmp_path / "data"
    for case in ("C-1", "C-2"):
        make_case(data, case, missing="none").rename(data / f"folder-of-{case}")
    volumes = tmp_path / "volumes"
    result = invoke("evaluate", data, tmp_path / "r", "--drop", "t1c+t2w", "--baseline", "copy", "--weights",
                    tiny_any_weights, "--save-volumes", volumes, "--no-uncertainty", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in volumes.iterdir()) == ["C-1", "C-2"]
    main(["--cases", str(data), "--volumes", str(volumes), "--weights", str(tiny_any_weights),
          "--report", str(tmp_path / "blend.json")])
    assert {s["case"] for s in json.loads((tmp_path / "blend.json").read_text())["scores"]} == {"C-1", "C-2"}


def test_evaluate_reads_the_voxel_spacing_for_the_protocol(tmp_path):
    """3. The protocol passes the case's header spacing to the metrics (the scoring itself: test_seg_metrics)."""
    from brasyn_infer.io.nifti import voxel_spacing

    path = write_nifti(tmp_path / "a.nii.gz", brain_volume(), affine=np.diag([2.0, 2.0, 3.0, 1.0]))
    assert voxel_spacing(nib.load(str(path))) == (2.0, 2.0, 3.0)
