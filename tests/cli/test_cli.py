
"""The CLI end to end on small synthetic cases, and the bad-input matrix.

Each bad kind sits beside a good case: the run must exit non-zero, print one line naming the
bad file and the fix, still write the good case, and leave nothing else in the output folder.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.io.atomic import temp_path
from tests.conftest import LPS_AFFINE, SMALL_SHAPE, brain_volume, make_case, write_nifti

GOOD = "BraTS-GLI-00007-000"


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def run_cli(input_dir: Path, output: Path, weights: Path, *extra: str):
    return invoke("run", input_dir, output, "--weights", weights, "--quiet", *extra)


def output_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_run_writes_exactly_the_predictions(tmp_path, tiny_weights):
    root = tmp_path / "in"
    make_case(root, GOOD, "t2f")
    make_case(root, "BraTS-MEN-00001-000", "t1c", seg=True)
    before = {p: p.read_bytes() for p in root.rglob("*.nii.gz")}
    result = run_cli(root, tmp_path / "out", tiny_weights)
    assert result.exit_code == 0, result.output
    assert output_names(tmp_path / "out") == ["BraTS-GLI-00007-000-t2f.nii.gz", "BraTS-MEN-00001-000-t1c.nii.gz"]
    assert "2 of 2 cases written" in result.output
    assert {p: p.read_bytes() for p in root.rglob("*.nii.gz")} == before  # inputs untouched
    out = nib.load(str(tmp_path / "out" / f"{GOOD}-t2f.nii.gz"))
    data = out.get_fdata(dtype=np.float32)
    assert out.shape == SMALL_SHAPE and out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.affine, LPS_AFFINE)
    brain = brain_volume() > 0
    assert (data[~brain] == 0).all() and (data >= 0).all() and np.isfinite(data).all()


def test_single_case_folder_and_view_option(tmp_path, tiny_weights):
    folder = make_case(tmp_path / "in", GOOD, "t1n")
    result = run_cli(folder, tmp_path / "out", tiny_weights, "--view", "coronal", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert output_names(tmp_path / "out") == [f"{GOOD}-t1n.nii.gz"]


def test_resume_skips_complete_and_redoes_broken(tmp_path, tiny_weights):
    root = tmp_path / "in"
    make_case(root, "A-1")
    make_case(root, "B-2")
    out = tmp_path / "out"
    assert run_cli(root, out, tiny_weights).exit_code == 0
    done = out / "A-1-t2f.nii.gz"
    stamp = done.stat().st_mtime_ns
    broken = out / "B-2-t2f.nii.gz"
    broken.write_bytes(broken.read_bytes()[:100])
    temp_path(out / "B-2-t2f.nii.gz").write_bytes(b"half")  # left by a killed run: its lock is free
    result = run_cli(root, out, tiny_weights, "--resume")
    assert result.exit_code == 0, result.output
    assert done.stat().st_mtime_ns == stamp
    assert nib.load(str(broken)).get_fdata().shape == SMALL_SHAPE
    assert output_names(out) == ["A-1-t2f.nii.gz", "B-2-t2f.nii.gz"]


# --- the bad-input matrix -------------------------------------------------------------------------

def _bad(root: Path) -> Path:
    folder = root / "BraTS-BAD-00001-000"
    folder.mkdir(parents=True)
    return folder


def _write3(folder: Path, volumes: dict[str, np.ndarray] | None = None, **kw) -> None:
    for i, mod in enumerate(("t1c", "t1n", "t2w")):
        vol = (volumes or {}).get(mod, brain_volume(seed=i))
        write_nifti(folder / f"{folder.name}-{mod}.nii.gz", vol, **kw)


def k_no_nifti(root):
    (_bad(root) / "notes.txt").write_text("hello")
    return "no NIfTI files"


def k_two_missing(root):
    folder = _bad(root)
    _write3(folder)
    next(folder.glob("*-t1n.nii.gz")).unlink()
    return "2 modalities missing"


def k_none_missing(root):
    folder = _bad(root)
    _write3(folder)
    write_nifti(folder / f"{folder.name}-t2f.nii.gz", brain_volume())
    return "no modality is missing"


def k_duplicate(root):
    folder = _bad(root)
    _write3(folder)
    write_nifti(folder / "copy-t1c.nii.gz", brain_volume())
    return "two files for t1c"


def k_shape(root):
    folder = _bad(root)
    _write3(folder, {"t2w": brain_volume((36, 40, 27))})
    return "t2w.nii.gz: shape"


def k_affine(root):
    folder = _bad(root)
    _write3(folder)
    shifted = LPS_AFFINE.copy()
    shifted[1, 3] += 3
    write_nifti(next(folder.glob("*-t2w.nii.gz")), brain_volume(), affine=shifted)
    return "t2w.nii.gz: affine differs"


def k_4d(root):
    folder = _bad(root)
    _write3(folder, {"t1c": np.ones((*SMALL_SHAPE, 2))})
    return "t1c.nii.gz: volume is 4D"


def k_2d(root):
    folder = _bad(root)
    _write3(folder, {"t1n": np.ones((36, 40))})
    return "t1n.nii.gz: volume is 2D"


def k_truncated(root):
    folder = _bad(root)
    _write3(folder)
    path = next(folder.glob("*-t1c.nii.gz"))
    path.write_bytes(path.read_bytes()[:2000])
    return "t1c.nii.gz: file is truncated"


def k_not_gzip(root):
    folder = _bad(root)
    _write3(folder)
    next(folder.glob("*-t1n.nii.gz")).write_bytes(b"plain text, not gzip\n" * 50)
    return "t1n.nii.gz"


def k_corrupt_header(root):
    folder = _bad(root)
    _write3(folder)
    next(folder.glob("*-t2w.nii.gz")).write_bytes(gzip.compress(b"\x07" * 500))
    return "t2w.nii.gz: cannot read NIfTI"


def _one_non_finite(root, mod, value, at):
    folder = _bad(root)
    vol = brain_volume()
    vol[at] = value
    _write3(folder, {mod: vol}, dtype=np.float32)
    return f"{mod}.nii.gz: 1 voxels are NaN or inf"


def k_nan(root):
    return _one_non_finite(root, "t1c", np.nan, (10, 10, 10))


def k_inf(root):
    return _one_non_finite(root, "t2w", np.inf, (5, 5, 5))


def k_all_zero(root):
    folder = _bad(root)
    _write3(folder, {"t1n": np.zeros(SMALL_SHAPE)})
    return "t1n.nii.gz: every voxel is 0"


def k_empty_folder(root):
    _bad(root)
    return "no NIfTI files"


def k_unknown_name(root):
    folder = _bad(root)
    write_nifti(folder / "brain_mask.nii.gz", brain_volume())
    return "no file named like"


BAD_KINDS = [k_no_nifti, k_empty_folder, k_unknown_name, k_two_missing, k_none_missing, k_duplicate, k_shape,
             k_affine, k_4d, k_2d, k_truncated, k_not_gzip, k_corrupt_header, k_nan, k_inf, k_all_zero]


@pytest.mark.parametrize("kind", BAD_KINDS, ids=lambda f: f.__name__[2:])
def test_bad_case_fails_alone(kind, tmp_path, tiny_weights):
    root = tmp_path / "in"
    make_case(root, GOOD)
    fragment = kind(root)
    out = tmp_path / "out"
    result = run_cli(root, out, tiny_weights)
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: BraTS-BAD-00001-000")]
    assert len(lines) == 1, result.output
    assert fragment in lines[0] and "fix:" in lines[0], lines[0]
    assert output_names(out) == [f"{GOOD}-t2f.nii.gz"]
    assert "1 of 2 cases written" in result.output


# --- inputs that must work --------------------------------------------------------------------------

def test_odd_but_valid_inputs(tmp_path, tiny_weights):
    root = tmp_path / "in put ñ"
    uncompressed = _bad(root)  # .nii inputs, uint8 and float64 dtypes, an unknown extra file
    for i, (mod, dtype) in enumerate((("t1c", np.uint8), ("t1n", np.float64), ("t2w", np.int16))):
        write_nifti(uncompressed / f"{uncompressed.name}-{mod}.nii", brain_volume(scale=200, seed=i), dtype=dtype)
    (uncompressed / "README.txt").write_text("extra files are ignored")
    real = make_case(tmp_path / "elsewhere", "BraTS-LNK-00001-000", "t1c")
    (root / "BraTS-LNK-00001-000").symlink_to(real, target_is_directory=True)
    result = run_cli(root, tmp_path / "out dir", tiny_weights)
    assert result.exit_code == 0, result.output
    assert output_names(tmp_path / "out dir") == ["BraTS-BAD-00001-000-t2f.nii.gz", "BraTS-LNK-00001-000-t1c.nii.gz"]


def test_read_only_input(tmp_path, tiny_weights):
    root = tmp_path / "in"
    folder = make_case(root, GOOD)
    for p in [*folder.iterdir(), folder, root]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        result = run_cli(root, tmp_path / "out", tiny_weights)
    finally:
        for p in [root, folder, *folder.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert result.exit_code == 0, result.output


# --- run-level errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_in_input_is_refused(tmp_path, tiny_weights, where):
    root = tmp_path / "in"
    make_case(root, GOOD)
    out = root if where == "same" else root / "preds"
    result = run_cli(root, out, tiny_weights)
    assert result.exit_code == 1 and "inside" in result.output
    assert not (root / "preds").exists()


def test_unwritable_output(tmp_path, tiny_weights):
    root = tmp_path / "in"
    make_case(root, GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(root, blocker / "out", tiny_weights)
    assert result.exit_code == 1 and "not writable" in result.output and "fix:" in result.output


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_unusable_input_root(tmp_path, tiny_weights, make):
    target = tmp_path / "x"
    if make == "file":
        target.write_text("x")
    elif make == "empty":
        target.mkdir()
    result = run_cli(target, tmp_path / "out", tiny_weights)
    assert result.exit_code == 1
    assert sum(ln.startswith("error:") for ln in result.output.splitlines()) == 1


def test_bad_weights(tmp_path, tiny_weights):
    root = tmp_path / "in"
    make_case(root, GOOD)
    result = run_cli(root, tmp_path / "out", tmp_path / "nope")
    assert result.exit_code == 1 and "no weights named" in result.output


def test_usage_errors_exit_2(tmp_path):
    assert invoke("run").exit_code == 2
    assert invoke("run", tmp_path, tmp_path / "o", "--view", "oblique").exit_code == 2
    assert invoke("run", tmp_path, tmp_path / "o", "--batch-size", "0").exit_code == 2


def test_info_shows_weights_and_providers(tiny_weights):
    result = invoke("info", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert "CPUExecutionProvider" in result.output and "verified" in result.output


def test_main_implies_run(monkeypatch, tmp_path, tiny_weights):

    from brasyn_infer import cli

    make_case(tmp_path / "in", GOOD)
    monkeypatch.setattr(sys, "argv", ["brasyn-infer", str(tmp_path / "in"), str(tmp_path / "out"), "--weights",
                                      str(tiny_weights), "--quiet"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    assert output_names(tmp_path / "out") == [f"{GOOD}-t2f.nii.gz"]


def test_unexpected_error_in_one_case_does_not_stop_the_run(tmp_path, tiny_weights, monkeypatch):
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    root = tmp_path / "in"
    make_case(root, "A-1")
    make_case(root, "B-2")
    original = Synthesizer.synthesize_stages
    calls = []

    def flaky(self, volumes, missing, on_batch=None, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("onnxruntime: simulated kernel failure")
        return original(self, volumes, missing, on_batch, **kwargs)

    monkeypatch.setattr(Synthesizer, "synthesize_stages", flaky)
    result = run_cli(root, tmp_path / "out", tiny_weights)
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "A-1" in errors[0] and "simulated kernel failure" in errors[0]
    assert output_names(tmp_path / "out") == ["B-2-t2f.nii.gz"]


def test_views_fuse_and_refine_options(tmp_path, tiny_weights, tiny_refiner):
    folder = make_case(tmp_path / "in", GOOD, "t2w")
    fused = run_cli(folder, tmp_path / "fused", tiny_weights, "--view", "sagittal", "--view", "axial")
    assert fused.exit_code == 0, fused.output
    refused = run_cli(folder, tmp_path / "r", tiny_weights, "--refine")
    assert refused.exit_code == 1 and "name no refiner" in refused.output and "--refiner" in refused.output
    refined = run_cli(folder, tmp_path / "refined", tiny_weights, "--refiner", tiny_refiner)
    assert refined.exit_code == 0, refined.output
    a = nib.load(str(tmp_path / "fused" / f"{GOOD}-t2w.nii.gz")).get_fdata()
    b = nib.load(str(tmp_path / "refined" / f"{GOOD}-t2w.nii.gz")).get_fdata()
    assert a.shape == b.shape == SMALL_SHAPE and not np.array_equal(a, b)  # two views vs one view + refiner


def test_unexpected_error_outside_a_case_is_one_line(monkeypatch, tmp_path, capsys):
    """A bug outside any case (here: discovery) ends the run with one line and exit 1, not a traceback;
    BRASYN_DEBUG=1 shows the traceback."""

    from brasyn_infer import cli
    from brasyn_infer.pipeline import job

    def broken(root):
        raise AttributeError("simulated bug")

    monkeypatch.setattr(job, "discover", broken)
    monkeypatch.setattr(sys, "argv", ["brasyn-infer", str(tmp_path), str(tmp_path / "out"), "--quiet"])
    monkeypatch.delenv("BRASYN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unexpected AttributeError: simulated bug")
    monkeypatch.setenv("BRASYN_DEBUG", "1")
    with pytest.raises(AttributeError):
        cli.main()


def test_the_commands_are_the_ones_the_application_has():
    """Regression: the implied-run rule listed a `bench` command that does not exist."""
    from typer.main import get_command

    from brasyn_infer.cli import command_names

    assert command_names() == set(get_command(app).commands) == {"run", "check", "info", "export", "import",
                                                                 "evaluate", "summary", "segment"}
    for name in command_names():
        assert CliRunner().invoke(app, [name, "--help"]).exit_code == 0


def test_info_describes_the_defaults_own_map_and_what_it_completes():
    """Regression: info said "uncertainty model none" for the default, whose graph makes its own map."""
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "uncertainty model none" not in result.output
    assert "uncertainty map: the graph's own log_scale output" in result.output
    assert "completes:" in result.output
    assert "enhance: t1c where segmenter-any calls the tumor" in result.output and "(off by default" in result.output


def test_info_lists_a_pattern_models_blend_toward_the_stand_in(tmp_path, tiny_any_weights):
    from tests.conftest import weights_with

    plain = CliRunner().invoke(app, ["info", "--weights", str(tiny_any_weights)])
    assert plain.exit_code == 0 and "stand-in" not in plain.output
    weights = weights_with(tiny_any_weights, tmp_path / "w", copy_blend={"t1c+t2w": {"t1c": 0.3, "t2w": 0.1}})
    result = CliRunner().invoke(app, ["info", "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    assert "blend toward the stand-in (several missing): t1c+t2w missing: t1c 0.3, t2w 0.1" in result.output
