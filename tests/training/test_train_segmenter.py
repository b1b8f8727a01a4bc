"""The segmenter's recipe end to end on small synthetic cases: it trains, resumes only the same recipe, scores its
held-out case with the product's inference code and exports a segmenter that `segment` runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import HAS_TORCH, make_case

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")


def test_train_resume_score_and_export(tmp_path):
    from training.train_segmenter import main

    cases = tmp_path / "cases"
    for i in range(3):
        make_case(cases, f"C-{i}", missing="none", seg=True)
    make_case(cases, "NOSEG", missing="none")  # no labels: left out
    args = ["--cases", str(cases), "--holdout", "C-2", "--widths", "4", "8", "--crop", "16", "--batch", "2",
            "--steps", "4", "--save-every", "2", "--threads", "1", "--run-dir", str(tmp_path / "run"),
            "--out", str(tmp_path / "w"), "--name", "seg"]
    main(args)
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["data"]["train"] == ["C-0", "C-1"] and record["data"]["holdout"] == ["C-2"]
    assert set(record["holdout_scores"]["C-2"]) >= {"dice_WT", "hd95_ET"} and record["steps"] == 4
    manifest = json.loads((tmp_path / "w" / "seg.json").read_text())
    assert manifest["architecture"] == "segmenter" and manifest["context"] == 1
    other = list(args)
    other[other.index("--steps") + 1] = "6"
    with pytest.raises(SystemExit, match="another recipe"):
        main([*other, "--resume"])
    from typer.testing import CliRunner

    from brasyn_infer.cli import app

    result = CliRunner().invoke(app, ["segment", str(cases / "C-2"), str(tmp_path / "out"), "--segmenter",
                                      str(tmp_path / "w" / "seg.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "C-2-seg.nii.gz").is_file()
