"""The Kubernetes Indexed Job manifest: no cluster runs here, so it is parsed and held against the
entrypoint (the image's own run of it, read-only root and all, is in test_image.py)."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from brasyn_infer import container
from brasyn_infer.cli import app
from brasyn_infer.orchestration.shards import SHARDS_ENV, shard_from_env
from tests.conftest import REPO

MANIFEST = REPO / "deploy" / "kubernetes" / "brasyn-indexed-job.yaml"


def load_job() -> dict:
    (job,) = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]
    return job


def the_container(job: dict) -> dict:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


def test_indexed_job_and_shards_agree():
    job = load_job()
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and 1 <= spec["parallelism"] <= spec["completions"]
    env = {e["name"]: e["value"] for e in the_container(job)["env"]}
    assert int(env[SHARDS_ENV]) == spec["completions"]
    shards = [shard_from_env({"JOB_COMPLETION_INDEX": str(i), **env}) for i in range(spec["completions"])]
    assert [(s.index, s.count) for s in shards] == [(i, spec["completions"]) for i in range(spec["completions"])]


def test_pod_is_non_root_with_a_read_only_root_and_a_gpu():
    job = load_job()
    pod = job["spec"]["template"]["spec"]
    box = the_container(job)
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert box["resources"]["limits"]["nvidia.com/gpu"] >= 1
    mounts = {m["mountPath"]: m for m in box["volumeMounts"]}
    assert mounts["/input"]["readOnly"] is True
    assert {"/input", "/output", "/tmp"} <= set(mounts)  # /tmp: HOME and caches on a read-only root
    volumes = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in box["volumeMounts"]} <= volumes
    cube = yaml.safe_load((REPO / "mlcube" / "mlcube.yaml").read_text())
    assert box["image"] == cube["docker"]["image"]


def test_args_are_a_form_the_entrypoint_accepts(tmp_path):
    box = the_container(load_job())
    argv = container.translate(list(box["args"]))
    assert argv is not None and argv[:2] == ["/input", "/output"]
    command = typer.main.get_command(app)
    run = command.commands["run"]
    context = run.make_context("run", list(argv))  # raises on an unknown option or a bad value
    assert context.params["resume"] is True and context.params["summary"] == Path("/summaries")
    summary_dir = Path(context.params["summary"])
    mounts = {m["mountPath"] for m in box["volumeMounts"]}
    assert str(summary_dir) in mounts and summary_dir != Path("/output")
