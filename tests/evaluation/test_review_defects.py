"""Issue 37: what a review reproduced in run and evaluate (each test failed on the code before its fix)."""

from __future__ import annotations

import gzip
import hashlib
import json
import math

from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.evaluation.report import CSV_FIELDS, read_rows
from tests.conftest import make_case


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def legacy_case(root, folder, case_id, missing=None):
    """A case in BraTS 2018-2021 names: <ID>_t1/_t1ce/_t2/_flair."""
    made = make_case(root, folder, missing=missing or "none")
    for path in sorted(made.iterdir()):
        mod = path.name.split("-")[-1].split(".")[0]
        suffix = {"t1c": "t1ce", "t1n": "t1", "t2f": "flair", "t2w": "t2", "seg": "seg"}[mod]
        path.rename(made / f"{case_id}_{suffix}.nii.gz")
    return made


def test_two_case_folders_with_one_id_are_refused_and_nothing_is_written(tmp_path, tiny_weights):
    """Regression: a/patient1_* and b/patient1_* printed "2 of 2 cases written" and left one file."""
    root = tmp_path / "in"
    legacy_case(root, "a", "patient1", missing="t2f")
    legacy_case(root, "b", "patient1", missing="t2f")
    result = invoke("run", root, tmp_path / "out", "--weights", tiny_weights, "--quiet")
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and all("also the ID of" in e for e in errors)
    assert str(root / "a") in errors[1] and str(root / "b") in errors[0]
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    data = tmp_path / "data"
    legacy_case(data, "a", "patient1")
    legacy_case(data, "b", "patient1")
    make_case(data, "C-1", missing="none")
    report = invoke("evaluate", data, tmp_path / "r", "--weights", tiny_weights, "--drop", "t2f", "--baseline",
                    "mean", "--quiet")
    assert report.exit_code == 1 and report.output.count("also the ID of") == 2
    assert {r["case"] for r in read_rows(tmp_path / "r" / "cases.csv")} == {"C-1"}


def test_save_volumes_never_writes_into_data(tmp_path, tiny_weights):
    """Regression: evaluate --save-volumes DATA overwrote DATA/<ID>/<ID>-t1c.nii.gz, the real input."""
    data = tmp_path / "data"
    for i in range(2):
        make_case(data, f"C-{i}", missing="none")
    before = {p: md5(p) for p in data.rglob("*.nii.gz")}
    for target in (data, data / "C-0", tmp_path):
        result = invoke("evaluate", data, tmp_path / f"r-{target.name}", "--weights", tiny_weights, "--drop", "t1c",
                        "--baseline", "none", "--save-volumes", target, "--quiet")
        assert result.exit_code == 2 and "never writes into DATA" in result.output, result.output
    assert before == {p: md5(p) for p in data.rglob("*.nii.gz")}


def test_an_unreadable_volume_is_one_error_row_and_the_rest_is_scored(tmp_path, tiny_weights):
    """Regression: a truncated volume aborted the whole dry run (no cases.csv) and every shard."""
    data = tmp_path / "data"
    for i in range(3):
        make_case(data, f"C-{i}", missing="none")
    bad = next((data / "C-1").glob("*-t2w.nii.gz"))
    bad.write_bytes(gzip.compress(b"\0" * 100)[:40])  # truncated
    result = invoke("evaluate", data, tmp_path / "r", "--weights", tiny_weights, "--drop", "t1c", "--baseline",
                    "linear", "--quiet")
    assert result.exit_code == 1
    assert len([ln for ln in result.output.splitlines() if ln.startswith("error:") and "C-1" in ln]) == 1
    rows = read_rows(tmp_path / "r" / "cases.csv")
    assert {(r["case"], r["method"]) for r in rows} == {("C-0", "model"), ("C-2", "model"), ("C-0", "linear"),
                                                        ("C-2", "linear"), ("C-1", "error")}
    assert "C-1" in (tmp_path / "r" / "report.md").read_text()
    for i in range(2):  # shards: each scores its own cases, whatever the other's case holds
        shard = invoke("evaluate", data, tmp_path / "s", "--weights", tiny_weights, "--drop", "t1c", "--baseline",
                       "linear", "--shard", f"{i}/2", "--quiet")
        assert shard.exit_code in (0, 1), shard.output
    merged = invoke("summary", "merge", tmp_path / "s")
    assert {r["case"] for r in read_rows(tmp_path / "s" / "cases.shard-0-of-2.csv")} >= {"C-0"}
    assert merged.exit_code in (0, 1)


def test_shards_of_another_count_are_refused(tmp_path, tiny_weights):
    """Regression: shards 0/2, 1/2 and 0/3 in one REPORT_DIR merged into n=4 for 3 cases."""
    data = tmp_path / "data"
    for i in range(3):
        make_case(data, f"C-{i}", missing="none")
    args = ["--weights", tiny_weights, "--drop", "t1c", "--baseline", "mean", "--quiet"]
    assert invoke("evaluate", data, tmp_path / "r", "--shard", "0/2", *args).exit_code == 0
    other = invoke("evaluate", data, tmp_path / "r", "--shard", "0/3", *args)
    assert other.exit_code == 2 and "shards" in other.output
    assert invoke("evaluate", data, tmp_path / "r", "--shard", "1/2", *args).exit_code == 0
    merged = invoke("summary", "merge", tmp_path / "r")
    assert merged.exit_code == 0, merged.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["t1c"]["model"]["ssim"]["n"] == 3


def test_a_resumed_run_on_other_data_is_refused_and_a_lone_case_says_why(tmp_path, tiny_weights):
    """Regression: DATA that gained cases kept linear rows fitted on the old cases; --save-volumes or --segment on a
    resume were silently ignored for scored pairs."""
    data = tmp_path / "data"
    make_case(data, "C-0", missing="none")
    args = ["--weights", tiny_weights, "--drop", "t1c", "--baseline", "linear", "--quiet"]
    first = invoke("evaluate", data, tmp_path / "r", *args)
    assert first.exit_code == 0, first.output
    rows = read_rows(tmp_path / "r" / "cases.csv")
    lone = [r for r in rows if r["method"] == "error"]
    assert len(lone) == 1 and "no other case to fit on" in lone[0]["error"]
    make_case(data, "C-1", missing="none")
    grown = invoke("evaluate", data, tmp_path / "r", *args)
    assert grown.exit_code == 2 and "data_cases" in grown.output
    volumes = invoke("evaluate", data, tmp_path / "r", *args, "--save-volumes", tmp_path / "v")
    assert volumes.exit_code == 2 and "save_volumes" in volumes.output


def test_a_torn_row_is_dropped_and_redone(tmp_path, tiny_weights):
    """Regression: a row cut short was read as a scored pair with NaNs; the next row glued to it broke every resume."""
    data = tmp_path / "data"
    for i in range(2):
        make_case(data, f"C-{i}", missing="none")
    args = ["--weights", tiny_weights, "--drop", "t1c,t2f", "--baseline", "none", "--quiet"]
    assert invoke("evaluate", data, tmp_path / "r", *args).exit_code == 0
    csv_path = tmp_path / "r" / "cases.csv"
    text = csv_path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    csv_path.write_text(text[: len(text) - len(last) - 1] + last[: len(last) // 2])  # the last row torn
    assert len(read_rows(csv_path)) == 3  # dropped, and the file rewritten without it
    again = invoke("evaluate", data, tmp_path / "r", *args)
    assert again.exit_code == 0, again.output
    rows = read_rows(csv_path)
    assert len(rows) == 4 and all(math.isfinite(r["ssim"]) for r in rows)
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header == CSV_FIELDS
