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


# A stand-in for `docker run` and `apptainer run` on the test cluster (no engine, no image there): it starts the
# venv's brasyn-infer with the mounts translated and *only* the environment the script passes into the container
# (-e / --env), as a container would see it, so the shard arithmetic is the one the image would do.
SHIM = r'''#!{python}
import os, sys
args = sys.argv[1:]
assert args[0] == "run", args
args = args[1:]
env = {{"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}}
mounts, rest = {{}}, []
takes_value = {{"--network", "--gpus", "--user", "--shm-size", "--name"}}
i = 0
while i < len(args):
    a = args[i]
    if a in ("-e", "--env"):
        key, _, value = args[i + 1].partition("=")
        env[key] = value
        i += 2
    elif a in ("-v", "-B"):
        src, dst = args[i + 1].split(":")[:2]
        mounts[dst] = src
        i += 2
    elif a in takes_value:
        i += 2
    elif a.startswith("-"):
        i += 1
    else:
        rest = args[i + 1:]  # after the image (or SIF)
        break
rest = [mounts.get(r, r) for r in rest]
os.execve({python!r}, [{python!r}, "-m", "brasyn_infer", *rest], env)
'''


@pytest.mark.parametrize("script", ["brasyn-array-docker.sbatch", "brasyn-array-apptainer.sbatch"])
@pytest.mark.parametrize("array", ["1-3", "0-4:2"])
def test_container_scripts_find_their_shard_for_any_array(cluster, tmp_path, tiny_weights, script, array):
    """Regression: these scripts passed --shard TASK_ID/TASK_COUNT: with --array=1-3 task 3 asked for shard 3/3 (a
    usage error) and shard 0 never ran; --array=0-4:2 broke the same way. Each task must find its shard of 3."""
    root = tmp_path / "in"
    for i, case_id in enumerate(CASES):
        make_case(root, case_id, missing=("t1c", "t1n", "t2f", "t2w")[i % 4])
    shims = tmp_path / "bin"
    shims.mkdir()
    for name in ("docker", "apptainer"):
        (shims / name).write_text(SHIM.format(python=sys.executable))
        (shims / name).chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "PYTHONPATH": str(REPO), "GPUS": ""}
    submit = subprocess.run(["sbatch", "--parsable", "--wait", f"--array={array}", "--cpus-per-task=1", "--mem=1G",
                             "--gres=none", f"--output={tmp_path}/task-%A_%a.log", str(REPO / "deploy" / "slurm" / script),
                             str(root), str(out), "--weights", str(tiny_weights)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("task-*.log")))
    assert submit.returncode == 0, submit.stderr + logs
    rules = sorted(re.findall(r"shard (\d)/(\d) \(from SLURM_ARRAY_TASK_ID\)", logs))
    print(f"\n    {script} --array={array}: shards {', '.join('/'.join(r) for r in rules)}")
    assert rules == [("0", "3"), ("1", "3"), ("2", "3")], logs
    assert sorted(p.name.split("-t")[0] for p in out.iterdir()) == CASES  # each case written once
    files = sorted((tmp_path / "out.summaries").glob("summary-*-of-3.json"))
    assert [f.name for f in files] == [f"summary-{i}-of-3.json" for i in range(3)]


def test_stop_leaves_daemons_it_did_not_start_alone(tmp_path):
    """Regression: `local-cluster.sh stop` ran `pkill -x slurmd slurmctld munged`, also on a real cluster node."""
    if os.geteuid() != 0:
        pytest.skip("local-cluster.sh needs root")
    fake = tmp_path / "slurmd"  # a process named like a daemon this script never started
    shutil.copy(shutil.which("sleep"), fake)
    daemon = subprocess.Popen([str(fake), "60"])
    try:
        state = tmp_path / "state"
        state.mkdir()
        result = subprocess.run([str(REPO / "deploy" / "slurm" / "local-cluster.sh"), "stop"], capture_output=True,
                                text=True, env={**os.environ, "BRASYN_SLURM_STATE": str(state)}, timeout=60)
        assert result.returncode == 0, result.stderr
        assert daemon.poll() is None  # still running
        mine = subprocess.Popen([str(fake), "60"])  # one it started: its pid file is in the state folder
        (state / "slurmd.pid").write_text(f"{mine.pid}\n")
        subprocess.run([str(REPO / "deploy" / "slurm" / "local-cluster.sh"), "stop"], check=True, timeout=60,
                       env={**os.environ, "BRASYN_SLURM_STATE": str(state)})
        assert mine.wait(timeout=10) is not None and daemon.poll() is None and not (state / "slurmd.pid").exists()
    finally:
        daemon.kill()
        daemon.wait()


FAKE_DOCKER = """#!/bin/bash
echo "$*" >> "$DOCKER_LOG"
if [ "$1" = run ]; then exec sleep 30; fi
"""


def test_docker_script_names_each_attempt_uniquely_and_stops_its_container_on_cancel(tmp_path):
    """Regression: the container was named brasyn-<job>-<task>, so a requeued task on the same node failed on the
    name, and a cancelled job's client died while the daemon kept the container running outside the job's limits."""
    import signal
    import time

    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "docker").write_text(FAKE_DOCKER)
    (shims / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    (tmp_path / "in").mkdir()
    names = []
    for attempt in range(2):  # the same job, task and node, twice (a requeue)
        env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "DOCKER_LOG": str(log), "GPUS": "",
               "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1", "SLURM_RESTART_COUNT": str(attempt)}
        script = subprocess.Popen(["bash", str(REPO / "deploy" / "slurm" / "brasyn-array-docker.sbatch"),
                                   str(tmp_path / "in"), str(tmp_path / "out")], env=env)
        for _ in range(100):
            if log.is_file() and log.read_text().count("run ") > attempt:
                break
            time.sleep(0.1)
        script.send_signal(signal.SIGTERM)  # scancel
        assert script.wait(timeout=30) == 143
        run_line = [ln for ln in log.read_text().splitlines() if ln.startswith("run ")][attempt]
        names.append(run_line.split("--name ")[1].split()[0])
        assert f"stop --time 30 {names[-1]}" in log.read_text()
    assert names[0] != names[1] and all(n.startswith("brasyn-7-1-") for n in names)
