"""The built image, run exactly as each real client runs it (``make docker-test``; issue 13).

Every run is held against the host CLI's output on the same cases (max abs diff <= 1e-3 of the host
output's 99.5th percentile), and its stderr must hold no traceback. The cases are real BraTS volumes
cropped around the brain's center, so that a CPU-only CI machine runs the whole matrix in minutes.

Without the image these tests skip; ``make docker-test`` sets BRASYN_DOCKER_TEST=1, which makes a
missing image or engine a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from tests.conftest import EXAMPLE, REPO, SHARED

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = os.environ.get("BRASYN_IMAGE", "brasyn-infer:0.1.0")
REQUIRED = os.environ.get("BRASYN_DOCKER_TEST") == "1"
#: the crop of each real case (X, Y, Z), centered on the brain's bounding box
CROP = (96, 96, 64)
#: a uid/gid that does not exist in the image
STRANGER = "54321:54321"
MAX_IMAGE_BYTES = 3.5e9
TOLERANCE = 1e-3


def docker(*args: str, timeout: int = 900, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def _unavailable() -> str | None:
    if not shutil.which("docker"):
        return "no docker client"
    if docker("info", timeout=30).returncode != 0:
        return "no Docker engine answers (deploy/docker/engine.sh starts one)"
    if docker("image", "inspect", IMAGE, timeout=30).returncode != 0:
        return f"image {IMAGE} is not built (make docker-test builds and tests it)"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = _unavailable()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    return IMAGE


def crop_case(source: Path, target: Path, case_id: str, drop: str, mirror: bool = False) -> Path:
    """``source``'s modalities but ``drop``, cropped to CROP around the brain, as ``target/case_id``."""
    folder = target / case_id
    folder.mkdir(parents=True)
    files = {p.name.split("-")[-1].split(".")[0]: p for p in source.glob("*.nii.gz")}
    images = {mod: nib.load(str(path)) for mod, path in files.items() if mod in ("t1c", "t1n", "t2f", "t2w")}
    brain = np.any([np.asarray(img.dataobj) > 0 for img in images.values()], axis=0)
    lo, hi = np.argwhere(brain).min(0), np.argwhere(brain).max(0)
    start = [int(max(0, min((a + b) // 2 - n // 2, s - n))) for a, b, n, s in zip(lo, hi, CROP, brain.shape, strict=True)]
    window = tuple(slice(s, s + n) for s, n in zip(start, CROP, strict=True))
    for mod, img in images.items():
        if mod == drop:
            continue
        cropped = img.slicer[window]
        data = np.asarray(cropped.dataobj)
        if mirror:
            data = data[::-1].copy()
        out = nib.Nifti1Image(data, cropped.affine, cropped.header)
        nib.save(out, str(folder / f"{case_id}-{mod}.nii.gz"))
    return folder


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """Two real cases with different missing modalities (the second from ../shared when present)."""
    root = tmp_path_factory.mktemp("docker-cases") / "input"
    crop_case(EXAMPLE, root, "BraTS-GLI-00001-000", drop="t2f")
    shared = SHARED / "data" / "cases" / "BraTS-MET-00110-000"
    if shared.is_dir():
        crop_case(shared, root, "BraTS-MET-00110-000", drop="t1c")
    else:
        crop_case(EXAMPLE, root, "BraTS-GLI-00002-000", drop="t2f", mirror=True)
    readable(root)
    return root


def traversable(path: Path) -> None:
    """Every folder above ``path`` can be entered by any uid (pytest's temp folders are 0700)."""
    for parent in path.parents:
        if parent == Path(parent.anchor) or parent.stat().st_mode & 0o005 == 0o005:
            break
        parent.chmod(parent.stat().st_mode | 0o005)


def readable(root: Path) -> None:
    """A tree any uid can read (the image runs under uids that do not own the files)."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    traversable(root)


def writable_dir(path: Path) -> Path:
    """A new folder any uid can write."""
    path.mkdir(parents=True)
    path.chmod(0o777)
    traversable(path)
    return path


def expected_names(root: Path) -> set[str]:
    names = set()
    for folder in root.iterdir():
        mods = {p.name.split("-")[-1].split(".")[0] for p in folder.glob("*.nii.gz")}
        (missing,) = {"t1c", "t1n", "t2f", "t2w"} - mods
        names.add(f"{folder.name}-{missing}.nii.gz")
    return names


@pytest.fixture(scope="module")
def host_outputs(cases, tmp_path_factory) -> Path:
    """What the host CLI writes for the same cases with the same (bundled default) weights, on the CPU."""
    out = tmp_path_factory.mktemp("host") / "output"
    env = {k: v for k, v in os.environ.items() if k != "BRASYN_WEIGHTS_DIR"}
    result = subprocess.run([sys.executable, "-m", "brasyn_infer", str(cases), str(out), "--device", "cpu", "--quiet"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=1800)
    assert result.returncode == 0, result.stderr
    return out


def assert_matches_host(output: Path, host: Path, names: set[str]) -> None:
    """``output`` holds exactly ``names``, each equal to the host's within 1e-3 of its 99.5th percentile."""
    assert {p.name for p in output.iterdir()} == names, f"unexpected files in {output}: {sorted(os.listdir(output))}"
    for name in sorted(names):
        ours = nib.load(str(output / name))
        theirs = nib.load(str(host / name))
        a, b = ours.get_fdata(dtype=np.float32), theirs.get_fdata(dtype=np.float32)
        assert a.shape == b.shape and np.allclose(ours.affine, theirs.affine)
        scale = float(np.percentile(b[b > 0], 99.5))
        diff = float(np.abs(a - b).max())
        print(f"    {name}: max |image - host| = {diff:.3g} ({diff / scale:.2e} of p99.5 {scale:.1f})")
        assert diff <= TOLERANCE * scale


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def run_image(image: str, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    result = docker("run", "--rm", "--network", "none", *args, timeout=timeout)
    print(f"  docker run ... -> exit {result.returncode}; stderr tail: {result.stderr.strip().splitlines()[-1:]}")
    return result


def test_a_synapse(image, cases, host_outputs, tmp_path):
    """Synapse 2025: no arguments, read-only /input, a uid unknown to the image, memory and shm limits."""
    out = writable_dir(tmp_path / "synapse")
    result = run_image(image, "--user", STRANGER, "-v", f"{cases}:/input:ro", "-v", f"{out}:/output:rw",
                       "--memory", "16G", "--shm-size", "4G", image)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert_matches_host(out, host_outputs, expected_names(cases))


@pytest.mark.parametrize("year", [2025, 2024])
def test_b_brats_package(image, cases, host_outputs, tmp_path, year):
    """The brats package's MissingMRI orchestrator pointed at our tag: 2025 (/input, /output, no command)
    and 2024 (MLCube paths /mlcube_io0..3, `infer --data_path --output_path`)."""
    brats = pytest.importorskip("brats", reason="the brats package is not installed (pip install brats)")
    from brats.constants import MissingMRIAlgorithms

    case = cases / "BraTS-GLI-00001-000"
    algorithm = brats.MissingMRI(algorithm=MissingMRIAlgorithms.BraTS25_1, force_cpu=True)
    algorithm.algorithm.run_args.docker_image = image
    algorithm.algorithm.run_args.cpu_compatible = True
    algorithm.algorithm.run_args.requires_root = False  # the caller's uid, as the 2025 path documents
    algorithm.algorithm.additional_files = None
    algorithm.algorithm.meta.year = year
    output = tmp_path / f"brats-{year}" / "synthesized.nii.gz"
    log = tmp_path / f"brats-{year}.log"
    algorithm.infer_single(output_file=output, log_file=log,
                           **{p.name.split("-")[-1].split(".")[0]: p for p in case.glob("*.nii.gz")})
    assert output.is_file()
    assert_clean(log.read_text())
    # it renames the case to BraTS-GLI-00000-000 and moves the one output file: compare with the host's
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    shutil.copy(output, renamed / "BraTS-GLI-00001-000-t2f.nii.gz")
    assert_matches_host(renamed, host_outputs, {"BraTS-GLI-00001-000-t2f.nii.gz"})
    print(f"    brats {year}: {output.name} written through the orchestrator")


@pytest.fixture(scope="module")
def medperf() -> str:
    """MedPerf's own client (medperf/client.sh installs it from ../shared/tools/medperf once; cached)."""
    snapshot = SHARED / "tools" / "medperf"
    if not (snapshot / "cli").is_dir():
        if os.environ.get("BRASYN_REQUIRE_MEDPERF") == "1":  # CI (.ci/run): the client run is required there
            pytest.fail("../shared/tools/medperf (MedPerf's client snapshot) is absent, and CI requires its run")
        pytest.skip("../shared/tools/medperf (MedPerf's client snapshot) is absent")
    result = subprocess.run([str(REPO / "medperf" / "client.sh"), str(snapshot)], capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_c_medperf_client(image, medperf, cases, host_outputs, tmp_path):
    """MedPerf's own code runs the image: `medperf container run_test` with medperf/container_config.yaml and
    medperf/parameters.yaml, offline, as MedPerf builds the docker command (its volumes, -u the caller, no network,
    a host folder at /tmp). `--gpus 0` is MedPerf's own switch for a machine without a GPU (it drops run_args.gpus)."""
    additional = tmp_path / "additional_files"
    additional.mkdir()
    out = writable_dir(tmp_path / "predictions")
    home = tmp_path / "home"  # MedPerf keeps its storage and logs under ~/.medperf*
    home.mkdir()
    result = subprocess.run(
        [medperf, "--gpus", "0", "container", "run_test", "--container", str(REPO / "medperf" / "container_config.yaml"),
         "--task", "infer", "--parameters_file_path", str(REPO / "medperf" / "parameters.yaml"),
         "--additional_files_path", str(additional), "--mounts", f"data_path={cases},output_path={out}"],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "HOME": str(home)}, cwd=tmp_path)
    logs = "\n".join(p.read_text(errors="replace") for p in home.glob(".medperf_logs/*.log"))
    command = [line for line in logs.splitlines() if "Running command" in line or "docker run" in line]
    print("    " + (command[-1].strip()[:400] if command else "(no command logged)"))
    assert result.returncode == 0, result.stdout + result.stderr + logs[-3000:]
    assert_clean(result.stdout + result.stderr)
    assert_matches_host(out, host_outputs, expected_names(cases))


def test_c_medperf(image, cases, host_outputs, tmp_path):
    """MedPerf's run as its code builds it, with what the client test above cannot show in CI: MedPerf passes
    `-u <caller uid:gid>`, and CI's caller is root (0:0); a MedPerf user is not, and their uid is unknown to the
    image. Here: the volumes of medperf/container_config.yaml, read-only inputs, a uid unknown to the image, no
    network, a host folder at /tmp, the image's own entrypoint with no arguments."""
    config = yaml.safe_load((REPO / "medperf" / "container_config.yaml").read_text())
    assert config["container_type"] == "DockerImage" and config["image"] == IMAGE
    task = config["tasks"]["infer"]
    additional = tmp_path / "additional_files"
    additional.mkdir()
    hosts = {"data_path": cases, "parameters_file": REPO / "medperf" / "parameters.yaml", "additional_files": additional}
    out = writable_dir(tmp_path / "predictions")
    scratch = writable_dir(tmp_path / "tmp")
    readable(additional)
    args = ["-u", STRANGER]
    for name, volume in task["input_volumes"].items():
        args += ["--volume", f"{hosts[name]}:{volume['mount_path']}:ro"]
    args += ["--volume", f"{out}:{task['output_volumes']['output_path']['mount_path']}:rw", "--volume", f"{scratch}:/tmp:rw"]
    args += ["--shm-size", task.get("run_args", {}).get("shm_size", "4gb")]
    result = run_image(image, *args, image)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert_matches_host(out, host_outputs, expected_names(cases))


def test_d_bad_case_beside_a_good_one(image, cases, host_outputs, tmp_path):
    """One line names the bad case, the good one is written, exit 1, and nothing else is in /output."""
    mixed = tmp_path / "mixed"
    shutil.copytree(cases / "BraTS-GLI-00001-000", mixed / "BraTS-GLI-00001-000")
    bad = mixed / "BraTS-GLI-00099-000"
    bad.mkdir()
    (bad / "BraTS-GLI-00099-000-t1c.nii.gz").write_bytes(b"not a nifti file")
    for name in ("t1n", "t2w"):
        shutil.copy(cases / "BraTS-GLI-00001-000" / f"BraTS-GLI-00001-000-{name}.nii.gz", bad / f"BraTS-GLI-00099-000-{name}.nii.gz")
    readable(mixed)
    out = writable_dir(tmp_path / "out")
    result = run_image(image, "--user", STRANGER, "-v", f"{mixed}:/input:ro", "-v", f"{out}:/output:rw", image)
    assert result.returncode == 1
    assert_clean(result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:") and "BraTS-GLI-00099-000" in line]
    assert len(lines) == 1, result.stderr
    print(f"    {lines[0]}")
    assert_matches_host(out, host_outputs, {"BraTS-GLI-00001-000-t2f.nii.gz"})


def test_e_cuda_provider_resolves(image):
    """CUDA is in the image's ONNX Runtime and its provider library resolves every library but the driver's."""
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c",
                    "import onnxruntime as o, os; print(','.join(o.get_available_providers())); "
                    "print(os.path.join(os.path.dirname(o.__file__), 'capi', 'libonnxruntime_providers_cuda.so'))",
                    check=True)
    providers, library = result.stdout.split()
    assert "CUDAExecutionProvider" in providers.split(",")
    ldd = docker("run", "--rm", "--network", "none", "--entrypoint", "ldd", image, library, check=True)
    missing = sorted({line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line})
    print(f"    providers: {providers}; unresolved by ldd: {missing}")
    assert missing == ["libcuda.so.1"], ldd.stdout


def test_f_size_and_entry_forms(image):
    """The image is at most 3.5 GB; `hotfix` does nothing; an unknown layout fails in one line."""
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image, check=True).stdout)
    print(f"    {image}: {size / 1e9:.2f} GB (limit {MAX_IMAGE_BYTES / 1e9:.1f} GB)")
    assert size <= MAX_IMAGE_BYTES
    assert docker("run", "--rm", "--network", "none", image, "hotfix").returncode == 0
    nothing = docker("run", "--rm", "--network", "none", "--user", STRANGER, image)
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert len([line for line in nothing.stderr.splitlines() if line.startswith("error:")]) == 1, nothing.stderr


def test_g_kubernetes_pods(image, cases, host_outputs, tmp_path):
    """The Indexed Job's pods, as far as Docker can play them: the manifest's args and env, its uid, a
    read-only root with /tmp writable, JOB_COMPLETION_INDEX 0..N-1 (one pod after another). The shards'
    outputs together equal the host's, and their summaries merge with nothing missing."""
    from ..deploy.test_kubernetes import load_job, the_container

    job = load_job()
    box = the_container(job)
    env = {e["name"]: e["value"] for e in box["env"]}
    count = 2
    env["BRASYN_SHARDS"] = str(count)  # two pods for two cases (the manifest's 8 would leave pods idle)
    user = f"{job['spec']['template']['spec']['securityContext']['runAsUser']}:" \
           f"{job['spec']['template']['spec']['securityContext']['runAsGroup']}"
    out, summaries = writable_dir(tmp_path / "predictions"), writable_dir(tmp_path / "summaries")
    for index in range(count):
        args = ["--read-only", "--tmpfs", "/tmp", "--user", user, "-e", f"JOB_COMPLETION_INDEX={index}",
                *[item for key, value in env.items() for item in ("-e", f"{key}={value}")],
                "-v", f"{cases}:/input:ro", "-v", f"{out}:/output:rw", "-v", f"{summaries}:/summaries:rw",
                image, *box["args"]]
        result = run_image(image, *args)
        assert result.returncode == 0, result.stderr
        assert_clean(result.stderr)
        assert f"shard {index}/{count}" in result.stderr
    assert_matches_host(out, host_outputs, expected_names(cases))
    merged = subprocess.run([sys.executable, "-m", "brasyn_infer", "summary", "merge",
                             *map(str, sorted(summaries.glob("*.json")))], capture_output=True, text=True, cwd=REPO)
    print(f"    {merged.stdout.strip()}")
    assert merged.returncode == 0, merged.stderr


def test_h_imported_3d_model_in_a_derived_image(image, cases, tmp_path):
    """A participant's 3D generator (the BraSyn baseline's architecture, random init): exported, imported as
    `default`, baked into a derived image with the README's two-line Dockerfile, run as Synapse runs it,
    and held against the host CLI with the same weights."""
    torch = pytest.importorskip("torch", reason="the [torch] extra is needed to export the model")
    from tests.thirdparty import SIT3D, export_onnx

    torch.manual_seed(0)
    export_onnx(SIT3D().eval(), tmp_path / "sit3d.onnx", (torch.randn(1, 4, 32, 32, 32), torch.zeros(1)), ["x", "missing"])
    context = tmp_path / "context"
    imported = subprocess.run([sys.executable, "-m", "brasyn_infer", "import", str(tmp_path / "sit3d.onnx"),
                               "--kind", "window3d", "--normalization", "minmax", "--range", "0", "1", "--overlap", "0.25",
                               "--out", str(context / "my-weights"), "--name", "default"],
                              capture_output=True, text=True, cwd=REPO)
    assert imported.returncode == 0, imported.stderr + imported.stdout
    (context / "Dockerfile").write_text(f"FROM {image}\nCOPY my-weights/ /opt/brasyn/weights/\n")
    derived = "brasyn-infer-byom-test:latest"
    build = subprocess.run(["docker", "build", "--network", "host", "-q", "-t", derived, str(context)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    try:
        host = tmp_path / "host"
        reference = subprocess.run([sys.executable, "-m", "brasyn_infer", str(cases), str(host), "--weights",
                                    str(context / "my-weights" / "default.json"), "--device", "cpu", "--quiet"],
                                   capture_output=True, text=True, cwd=REPO)
        assert reference.returncode == 0, reference.stderr
        out = writable_dir(tmp_path / "out")
        result = run_image(derived, "--user", STRANGER, "-v", f"{cases}:/input:ro", "-v", f"{out}:/output:rw",
                           "--memory", "16G", "--shm-size", "4G", derived)
        assert result.returncode == 0, result.stderr
        assert_clean(result.stderr)
        info = docker("run", "--rm", "--network", "none", derived, "info", check=True).stdout
        assert "architecture: imported" in info, info
        assert_matches_host(out, host, expected_names(cases))
    finally:
        docker("rmi", "-f", derived)


def test_i_segment_entry_form_completes_and_segments(image, cases, tmp_path):
    """`IMAGE segment /input /output --complete`: the example case (t2f missing) completed and segmented as a
    stranger uid, labels in the inputs' convention, nothing but the segmentation in /output."""
    out = writable_dir(tmp_path / "segs")
    result = run_image(image, "--user", STRANGER, "-v", f"{cases}:/input:ro", "-v", f"{out}:/output:rw", image,
                       "segment", "/input", "/output", "--complete")
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{p.name}-seg.nii.gz" for p in cases.iterdir() if p.is_dir())
    segs = [np.asarray(nib.load(str(out / name)).dataobj) for name in names]
    assert all(s.dtype == np.uint8 and set(np.unique(s)) <= {0, 1, 2, 3} for s in segs)
    assert any((s > 0).any() for s in segs)


def test_j_segment_entry_form_takes_each_patterns_route(image, cases, tmp_path):
    """`IMAGE segment /input /output` (issue 42): an incomplete case is no longer refused; it goes by its pattern's
    route (the missing-sequence segmenter ships in the image), as a stranger uid, and the log names the route."""
    out = writable_dir(tmp_path / "segs-auto")
    result = run_image(image, "--user", STRANGER, "-v", f"{cases}:/input:ro", "-v", f"{out}:/output:rw", image,
                       "segment", "/input", "/output")
    assert result.returncode == 0, result.stderr
    assert "route direct" in result.stderr or "route complete" in result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{p.name}-seg.nii.gz" for p in cases.iterdir() if p.is_dir())
    forced = writable_dir(tmp_path / "segs-direct")
    result = run_image(image, "--user", STRANGER, "-v", f"{cases}:/input:ro", "-v", f"{forced}:/output:rw", image,
                       "segment", "/input", "/output", "--route", "direct")
    assert result.returncode == 0 and "route direct" in result.stderr, result.stderr
