"""The Slurm job-array recipe on a real one-node cluster (deploy/slurm/local-cluster.sh starts one).

Skipped where no cluster answers; BRASYN_REQUIRE_SLURM=1 (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, make_case

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("BRASYN_REQUIRE_SLURM") == "1"
CASES = [f"BraTS-GLI-{i:05d}-000" for i in range(5)]


def _cluster_problem() -> str | None:
    if not shutil.which("sbatch"):
        return "Slurm is not installed (deploy/slurm/local-cluster.sh start installs and starts it, as root)"
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or not re.search(r"idle|mixed|allocated", result.stdout):
        return f"no Slurm node is up ({result.stderr.strip() or result.stdout.strip()})"
    return None


@pytest.fixture(scope="module")
def cluster() -> Path:
    problem = _cluster_problem()
    if problem:
        if REQUIRED:
            pytest.fail(problem)
        pytest.skip(problem)
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.MULTILINE)
    if not match or "jobcomp/filetxt" not in config:
        pytest.skip("this cluster does not keep jobcomp/filetxt records")
    return Path(match.group(1))


def job_records(path: Path, array_job: str, workdir: Path) -> list[dict[str, str]]:
    """The jobcomp/filetxt records of an array's tasks (``key=value`` pairs, one line per job)."""
    if not path.is_file():
        return []
    records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in path.read_text().splitlines()]
    return [r for r in records if r.get("ArrayJobId") == array_job and r.get("WorkDir") == str(workdir)]


def test_job_array_writes_every_case_once(cluster, tmp_path, tiny_weights):
    root = tmp_path / "in"
    for i, case_id in enumerate(CASES):
        make_case(root, case_id, missing=("t1c", "t1n", "t2f", "t2w")[i % 4])
    out, summaries = tmp_path / "out", tmp_path / "summaries"
    env = {**os.environ, "PYTHONPATH": str(REPO), "BRASYN": f"{sys.executable} -m brasyn_infer",
           "SUMMARIES": str(summaries)}
    submit = subprocess.run(["sbatch", "--parsable", "--wait", "--array=0-2", "--cpus-per-task=1", "--mem=1G",
                             f"--output={tmp_path}/task-%A_%a.log", str(REPO / "deploy" / "slurm" / "brasyn-array.sbatch"),
                             str(root), str(out), "--weights", str(tiny_weights)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("task-*.log")))
    assert submit.returncode == 0, submit.stderr + logs
    job = submit.stdout.strip().split(";")[0]
    records: list[dict[str, str]] = []
    for _ in range(30):  # the records are appended when each task ends
        records = job_records(cluster, job, tmp_path)
        if len(records) >= 3:
            break
        time.sleep(1)
    print(f"\n    job {job}: {len(records)} job completion records")
    for record in records:
        print("    " + " ".join(f"{k}={record.get(k, '')}" for k in
                                ("JobId", "ArrayJobId", "ArrayTaskId", "Name", "JobState", "ExitCode", "NodeList", "StartTime", "EndTime")))
    completed = [r for r in records if r.get("JobState") == "COMPLETED"]
    assert len(completed) == 3, records
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(CASES) and all(n.endswith(".nii.gz") and not n.startswith(".") for n in written)
    files = sorted(summaries.glob("summary-*-of-3.json"))
    assert len(files) == 3
    merged = subprocess.run([sys.executable, "-m", "brasyn_infer", "summary", "merge", *map(str, files),
                             "--out", str(tmp_path / "merged.json")], capture_output=True, text=True, env=env)
    print("    " + merged.stdout.strip())
    assert merged.returncode == 0, merged.stderr
    summary = json.loads((tmp_path / "merged.json").read_text())
    assert summary["counts"] == {"written": len(CASES), "skipped": 0, "failed": 0, "missing": 0}
    assert sorted(c["folder"] for c in summary["cases"]) == CASES  # each case once
