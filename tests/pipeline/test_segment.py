"""`brasyn-infer segment` (issues 34 and 42): labels in the inputs' convention; a case lacking sequences goes by the
route its pattern records (direct or complete), or the one forced; resume only of what this route and these models
made; and the embedded segmenters end to end on a real case."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from tests.conftest import HAS_TORCH, REPO, SHARED, SMALL_SHAPE, make_case

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def legacy(folder):
    for path in sorted(folder.iterdir()):
        mod = path.name.split("-")[-1].split(".")[0]
        suffix = {"t1c": "t1ce", "t1n": "t1", "t2f": "flair", "t2w": "t2", "seg": "seg"}[mod]
        path.rename(folder / f"{folder.name}_{suffix}.nii.gz")
    return folder


def labels(path):
    return np.asarray(nib.load(str(path)).dataobj)


@needs_torch
def test_labels_follow_the_names(tmp_path, tiny_segmenter, tiny_direct_segmenter):
    root = tmp_path / "in"
    make_case(root, "B-1", missing="none")
    legacy(make_case(root, "L_1", missing="none"))
    out = tmp_path / "out"
    result = invoke("segment", root, out, "--segmenter", tiny_segmenter, "--direct-segmenter", tiny_direct_segmenter,
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["B-1-seg.nii.gz", "L_1_seg.nii.gz"]
    for name in ("B-1-seg.nii.gz", "L_1_seg.nii.gz"):
        image = nib.load(str(out / name))
        assert image.shape == SMALL_SHAPE and image.get_data_dtype() == np.uint8
    brasyn, legacy_labels = labels(out / "B-1-seg.nii.gz"), labels(out / "L_1_seg.nii.gz")
    assert set(np.unique(brasyn)) <= {0, 1, 2, 3} and set(np.unique(legacy_labels)) <= {0, 1, 2, 4}
    # the same volumes: the same classes, ET numbered 3 in one and 4 in the other
    assert np.array_equal(np.where(brasyn == 3, 4, brasyn), legacy_labels)
    forced = invoke("segment", root / "B-1", tmp_path / "o2018", "--segmenter", tiny_segmenter, "--labels", "2018",
                    "--direct-segmenter", tiny_direct_segmenter)
    assert forced.exit_code == 0
    assert np.array_equal(labels(tmp_path / "o2018" / "B-1-seg.nii.gz"), legacy_labels)


@needs_torch
@pytest.mark.parametrize("present", ["t1c", "t1n", "t2f", "t2w", "t1c+t1n", "t1c+t2f", "t1c+t2w", "t1n+t2f",
                                     "t1n+t2w", "t2f+t2w", "t1c+t1n+t2f", "t1c+t1n+t2w", "t1c+t2f+t2w",
                                     "t1n+t2f+t2w", "t1c+t1n+t2f+t2w"])
def test_every_pattern_segments_by_the_direct_route(tmp_path, tiny_segmenter, tiny_direct_segmenter, present):
    """Each of the 15 availability patterns segments with no refusal; what is there decides the result (the
    missing sequences are not read as zeros of a complete case: the availability planes differ)."""
    from brasyn_infer.runtime.segmenter import Segmenter

    folder = make_case(tmp_path / "in", "P-1", missing="none")
    for mod in ("t1c", "t1n", "t2f", "t2w"):
        if mod not in present.split("+"):
            (folder / f"P-1-{mod}.nii.gz").unlink()
    route = [] if present.count("+") == 3 else ["--route", "direct"]
    result = invoke("segment", folder, tmp_path / "out", "--segmenter", tiny_segmenter, "--direct-segmenter",
                    tiny_direct_segmenter, *route)
    assert result.exit_code == 0, result.output
    assert ("route direct" in result.output) == bool(route)
    written = labels(tmp_path / "out" / "P-1-seg.nii.gz")
    assert written.shape == SMALL_SHAPE and set(np.unique(written)) <= {0, 1, 2, 3}
    if route:  # the same segmenter on the same arrays, called directly: what segment wrote
        direct = Segmenter(tiny_direct_segmenter)
        volumes = {m: np.asarray(nib.load(str(p)).dataobj, dtype=np.float32)
                   for m, p in ((m, folder / f"P-1-{m.value}.nii.gz") for m in direct.manifest.channels) if p.exists()}
        assert np.array_equal(written, direct.segment(volumes))


@needs_torch
def test_the_route_is_the_manifests_per_pattern_and_can_be_forced(tmp_path, tiny_segmenter, tiny_direct_segmenter,
                                                                 tiny_weights):
    """auto: t1c missing -> complete (the tiny manifest's routes), t2f missing -> direct (no entry); --route and
    --complete force one; the log names the route; complete writes no synthesized volume."""
    root = tmp_path / "in"
    make_case(root, "A-1", missing="t1c")
    make_case(root, "F-1", missing="t2f")
    common = ["--segmenter", tiny_segmenter, "--direct-segmenter", tiny_direct_segmenter, "--weights", tiny_weights]
    auto = invoke("segment", root, tmp_path / "auto", *common)
    assert auto.exit_code == 0, auto.output
    assert "A-1: route complete (t1c synthesized" in auto.output and "F-1: route direct" in auto.output
    assert sorted(p.name for p in (tmp_path / "auto").iterdir()) == ["A-1-seg.nii.gz", "F-1-seg.nii.gz"]
    direct = invoke("segment", root, tmp_path / "direct", *common, "--route", "direct")
    assert direct.exit_code == 0 and "A-1: route direct" in direct.output and "route complete" not in direct.output
    complete = invoke("segment", root / "F-1", tmp_path / "complete", *common, "--complete")
    assert complete.exit_code == 0 and "F-1: route complete (t2f synthesized" in complete.output
    clash = invoke("segment", root, tmp_path / "x", *common, "--complete", "--route", "direct")
    assert clash.exit_code == 2 and "--complete with --route direct" in clash.output


@needs_torch
def test_a_case_with_no_sequence_is_refused(tmp_path, tiny_segmenter, tiny_direct_segmenter):
    folder = tmp_path / "in" / "E-1"
    folder.mkdir(parents=True)
    (folder / "E-1-seg.nii.gz").write_bytes(b"")
    good = make_case(tmp_path / "in", "G-1", missing="t2w")
    result = invoke("segment", tmp_path / "in", tmp_path / "out", "--segmenter", tiny_segmenter,
                    "--direct-segmenter", tiny_direct_segmenter)
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "E-1" in errors[0]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["G-1-seg.nii.gz"] and good.is_dir()


@needs_torch
def test_resume_keeps_only_what_this_route_and_these_models_made(tmp_path, tiny_segmenter, tiny_direct_segmenter,
                                                                tiny_weights, tiny_any_weights):
    """Regression (issue 43, 5): --resume kept files made with other --labels, another segmenter or other generator
    weights. Now each output's header records what made it; --resume redoes one made otherwise."""
    from tests.conftest import weights_with

    root = tmp_path / "in"
    make_case(root, "B-1", missing="none")
    make_case(root, "M-1", missing="t2f")
    out = tmp_path / "out"
    common = ["--segmenter", tiny_segmenter, "--direct-segmenter", tiny_direct_segmenter, "--weights", tiny_weights]
    assert invoke("segment", root, out, *common, "--quiet").exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def changed(*extra):
        result = invoke("segment", root, out, *common, "--resume", *extra)
        assert result.exit_code == 0, result.output
        now = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        stamps.update(now)
        return result, sorted(n for n in now if now[n] != before[n])

    before = dict(stamps)
    result, redone = changed()
    assert redone == [] and result.output.count("skipped") == 2
    before = dict(stamps)
    result, redone = changed("--labels", "2018")
    assert redone == ["B-1-seg.nii.gz", "M-1-seg.nii.gz"] and "made otherwise" in result.output
    assert set(np.unique(labels(out / "B-1-seg.nii.gz"))) <= {0, 1, 2, 4}
    before = dict(stamps)
    _, redone = changed("--labels", "2018", "--route", "complete")  # the generator now makes M-1's t2f
    assert redone == ["M-1-seg.nii.gz"]
    before = dict(stamps)
    _, redone = changed("--labels", "2018", "--route", "complete")
    assert redone == []
    moved = weights_with(tiny_weights, tmp_path / "w2")  # the same graph from another folder: nothing to redo
    result = invoke("segment", root, out, "--segmenter", tiny_segmenter, "--direct-segmenter", tiny_direct_segmenter,
                    "--weights", moved, "--resume", "--labels", "2018", "--route", "complete")
    assert result.exit_code == 0 and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    result = invoke("segment", root, out, "--segmenter", tiny_segmenter, "--direct-segmenter", tiny_direct_segmenter,
                    "--weights", tiny_any_weights, "--resume", "--labels", "2018", "--route", "complete")
    assert result.exit_code == 0, result.output
    now = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert sorted(n for n in now if now[n] != stamps[n]) == ["M-1-seg.nii.gz"]  # other generator weights: redone


CASE = SHARED / "data" / "brats2018" / "Brats18_CBICA_AME_1"


@pytest.mark.slow
@pytest.mark.skipif(not CASE.is_dir(), reason="../shared/data (real cases) is absent")
def test_the_embedded_segmenter_on_a_real_held_out_case(tmp_path):
    """The shipped segmenter (trained on every case, this one included: a check of the path, not of quality) on a
    real BraTS 2018 case: labels 1, 2, 4 where the expert's are, the inputs' geometry."""
    assert (REPO / "weights" / "segmenter.json").is_file()
    result = invoke("segment", CASE, tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    out = nib.load(str(tmp_path / "out" / "Brats18_CBICA_AME_1_seg.nii.gz"))
    expert = nib.load(str(CASE / "Brats18_CBICA_AME_1_seg.nii.gz"))
    assert np.array_equal(out.affine, expert.affine) and out.shape == expert.shape
    pred, truth = np.asarray(out.dataobj), np.asarray(expert.dataobj)
    assert set(np.unique(pred)) <= {0, 1, 2, 4}
    wt = 2 * ((pred > 0) & (truth > 0)).sum() / ((pred > 0).sum() + (truth > 0).sum())
    assert wt > 0.8, wt


def test_resume_redoes_what_a_replaced_companion_made(tmp_path, tiny_segmenter, tiny_weights, tiny_any_weights):
    """The companion that completed a case lacking two sequences is part of each output's record: replaced by
    another graph under the same name, --resume redoes the output (the name alone kept it)."""
    import shutil

    from tests.conftest import weights_with

    companion = tmp_path / "companion"
    companion.mkdir()
    for f in (tiny_any_weights, tiny_any_weights.with_suffix(".onnx")):
        shutil.copy(f, companion)
    weights = weights_with(tiny_weights, tmp_path / "w", companion=str(companion / tiny_any_weights.name))
    root = tmp_path / "in"
    drop_case = make_case(root, "M-2", missing="t2f")
    next(p for p in drop_case.iterdir() if "t2w" in p.name).unlink()
    out = tmp_path / "out"
    common = ["--segmenter", tiny_segmenter, "--direct-segmenter", "none", "--weights", weights, "--route", "complete"]
    assert invoke("segment", root, out, *common, "--quiet").exit_code == 0
    first = (out / "M-2-seg.nii.gz").stat().st_mtime_ns
    result = invoke("segment", root, out, *common, "--resume")
    assert result.exit_code == 0 and (out / "M-2-seg.nii.gz").stat().st_mtime_ns == first
    import torch

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.authoring.models.hfgan import HFGANConfig
    from brasyn_infer.authoring.models.residual import PriorResidualHFGAN
    from brasyn_infer.runtime.manifest import load_manifest

    torch.manual_seed(1)
    old = load_manifest(companion / tiny_any_weights.name)
    net = PriorResidualHFGAN(HFGANConfig(dim=8, num_outputs=2), np.zeros((4, 16, 5), np.float32), patterns=True)
    export(net, companion, old.name, normalization=old.normalization, default_view=old.default_view)
    result = invoke("segment", root, out, *common, "--resume")
    assert result.exit_code == 0, result.output
    assert (out / "M-2-seg.nii.gz").stat().st_mtime_ns != first and "made otherwise" in result.output
