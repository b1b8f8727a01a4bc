"""Shards sharing one OUTPUT, run summaries and their merge (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.io.atomic import STALE_AFTER_SECONDS, TEMP_PREFIX, remove_stale_temps
from brasyn_infer.orchestration.shards import Shard
from tests.conftest import REPO, make_case

CASES = [f"BraTS-GLI-{i:05d}-000" for i in range(7)]


@pytest.fixture
def many_cases(tmp_path) -> Path:
    """Seven small cases (different missing modalities) and one broken folder."""
    root = tmp_path / "in"
    for i, case_id in enumerate(CASES):
        make_case(root, case_id, missing=("t1c", "t1n", "t2f", "t2w")[i % 4])
    broken = root / "BraTS-GLI-00099-000"
    broken.mkdir()
    (broken / "BraTS-GLI-00099-000-t1c.nii.gz").write_bytes(b"truncated")
    return root


def cli(*args, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    for key in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        env.pop(key, None)
    return subprocess.Popen([sys.executable, "-m", "brasyn_infer", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_shards_at_once_equal_one_process(many_cases, tmp_path, tiny_weights):
    """Three shard processes over one OUTPUT at once: every case written once, no temp file left, the
    union byte for byte a one-process run; the merged summary has every case."""
    shared, single, summaries = tmp_path / "shared", tmp_path / "single", tmp_path / "summaries"
    summaries.mkdir()
    procs = [cli("run", many_cases, shared, "--weights", tiny_weights, "--quiet", "--shard", f"{i}/3",
                 "--summary", summaries) for i in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 0, 1], outs  # the broken folder fails in exactly one shard
    for _, err in outs:
        assert "Traceback" not in err
        assert err.splitlines()[0].startswith("shard ") and "sorted by name" in err.splitlines()[0]
    one = cli("run", many_cases, single, "--weights", tiny_weights, "--quiet")
    one.communicate(timeout=600)
    names = sorted(p.name for p in shared.iterdir())
    assert names == sorted(p.name for p in single.iterdir())
    assert len(names) == len(CASES) and not any(n.startswith(".") for n in names)
    for name in names:
        assert (shared / name).read_bytes() == (single / name).read_bytes(), name
    files = sorted(summaries.iterdir())
    assert [f.name for f in files] == [f"summary-{i}-of-3.json" for i in range(3)]
    first = json.loads(files[0].read_text())
    assert first["shard"]["count"] == 3 and len(first["all_cases"]) == len(CASES) + 1
    assert first["weights"]["sha256"] and first["versions"]["onnxruntime"]
    merged_file = tmp_path / "merged.json"
    result = CliRunner().invoke(app, ["summary", "merge", *map(str, files), "--out", str(merged_file)])
    assert result.exit_code == 1  # the broken case failed
    merged = json.loads(merged_file.read_text())
    assert merged["counts"] == {"written": len(CASES), "skipped": 0, "failed": 1, "missing": 0}
    assert [c["folder"] for c in merged["cases"]] == sorted([*CASES, "BraTS-GLI-00099-000"])
    assert "failed: BraTS-GLI-00099-000" in result.output
    # a shard that never reported: its cases are missing, by name
    partial = CliRunner().invoke(app, ["summary", "merge", str(files[0]), str(files[2])])
    assert partial.exit_code == 1 and "missing shards 1" in partial.output
    assert sum(line.startswith("error: missing: ") for line in partial.output.splitlines()) == len(shard_cases(1, 3))


def shard_cases(index: int, count: int) -> list[str]:
    return Shard(index, count).select([*CASES, "BraTS-GLI-00099-000"])


def test_resume_per_shard_and_temp_files_of_other_shards_are_left_alone(many_cases, tmp_path, tiny_weights):
    out = tmp_path / "out"
    out.mkdir()
    mine = shard_cases(0, 2)
    theirs = shard_cases(1, 2)
    mine_name, theirs_name = f"{mine[0]}-t1c.nii.gz", f"{theirs[0]}-t1n.nii.gz"
    stale = out / f"{TEMP_PREFIX}deadhost-1-{mine_name}"
    in_flight = out / f"{TEMP_PREFIX}otherhost-2-{theirs_name}"
    stale.write_bytes(b"half")
    in_flight.write_bytes(b"being written")
    old = time.time() - STALE_AFTER_SECONDS - 60  # another host's writer: gone once its file stopped changing
    os.utime(stale, (old, old))
    assert remove_stale_temps(out, [mine_name]) == [stale]
    assert in_flight.exists() and not stale.exists()
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(many_cases), str(out), "--weights", str(tiny_weights), "--quiet",
                                "--shard", "0/2", "--summary", str(tmp_path / "s0.json")])
    assert first.exit_code in (0, 1)
    again = runner.invoke(app, ["run", str(many_cases), str(out), "--weights", str(tiny_weights), "--quiet",
                                "--shard", "0/2", "--resume", "--summary", str(tmp_path / "s0.json")])
    summary = json.loads((tmp_path / "s0.json").read_text())
    statuses = {c["folder"]: c["status"] for c in summary["cases"]}
    assert {f for f, s in statuses.items() if s == "skipped"} == {f for f in mine if f != "BraTS-GLI-00099-000"}
    assert again.exit_code == (1 if "BraTS-GLI-00099-000" in mine else 0)
    assert in_flight.exists()  # another shard's write in progress is never deleted


def test_summary_never_inside_output(many_cases, tmp_path, tiny_weights):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(many_cases), str(out), "--weights", str(tiny_weights),
                                      "--summary", str(out / "summary.json")])
    assert result.exit_code == 2 and "inside the output folder" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_setup_failure_is_in_the_summary(tmp_path, tiny_weights):
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--weights",
                                      str(tiny_weights), "--summary", str(tmp_path / "s.json")])
    assert result.exit_code == 1
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["exit_code"] == 1 and "input does not exist" in summary["error"]


def test_evaluate_shards_merge_into_one_report(tmp_path, tiny_weights):
    """Two evaluate shards into one REPORT_DIR, then `summary merge REPORT_DIR`: the same rows as one run."""
    data = tmp_path / "data"
    for i in range(3):
        make_case(data, f"BraTS-GLI-{i:05d}-000", missing="none", seg=(i == 0))
    report = tmp_path / "report"
    runner = CliRunner()
    base = ["evaluate", str(data), str(report), "--weights", str(tiny_weights), "--drop", "t2f", "--baseline", "mean",
            "--quiet"]
    for i in range(2):
        assert runner.invoke(app, [*base, "--shard", f"{i}/2"]).exit_code == 0
    assert not (report / "summary.json").exists()
    merged = runner.invoke(app, ["summary", "merge", str(report)])
    assert merged.exit_code == 0, merged.output
    summary = json.loads((report / "summary.json").read_text())
    assert "t2f" in summary and (report / "report.md").is_file()
    rows = sum(len((report / f"cases.shard-{i}-of-2.csv").read_text().splitlines()) - 1 for i in range(2))
    assert rows == 3 * 2  # 3 cases x (model, mean)
    (report / "shard-1-of-2.json").unlink()
    assert runner.invoke(app, ["summary", "merge", str(report)]).exit_code == 1


def test_merge_refuses_foreign_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    result = CliRunner().invoke(app, ["summary", "merge", str(bad)])
    assert result.exit_code == 1 and "not a brasyn-infer run summary" in result.output
