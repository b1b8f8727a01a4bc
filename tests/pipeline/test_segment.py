"""`brasyn-infer segment` (issue 34): labels in the inputs' convention, missing sequences refused without
--complete, completed with it, resume, and the embedded segmenter end to end on a real case."""

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


@needs_torch
def test_labels_follow_the_names_and_a_missing_sequence_needs_complete(tmp_path, tiny_segmenter, tiny_weights):
    root = tmp_path / "in"
    make_case(root, "B-1", missing="none")
    legacy(make_case(root, "L_1", missing="none"))
    make_case(root, "M-1", missing="t2f")
    out = tmp_path / "out"
    result = invoke("segment", root, out, "--segmenter", tiny_segmenter, "--quiet")
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "M-1" in errors[0] and "--complete" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["B-1-seg.nii.gz", "L_1_seg.nii.gz"]
    for name in ("B-1-seg.nii.gz", "L_1_seg.nii.gz"):
        image = nib.load(str(out / name))
        assert image.shape == SMALL_SHAPE and image.get_data_dtype() == np.uint8
    brasyn = np.asarray(nib.load(str(out / "B-1-seg.nii.gz")).dataobj)
    legacy_labels = np.asarray(nib.load(str(out / "L_1_seg.nii.gz")).dataobj)
    assert set(np.unique(brasyn)) <= {0, 1, 2, 3} and set(np.unique(legacy_labels)) <= {0, 1, 2, 4}
    # the same volumes: the same classes, ET numbered 3 in one and 4 in the other
    assert np.array_equal(np.where(brasyn == 3, 4, brasyn), legacy_labels)
    forced = invoke("segment", root / "B-1", tmp_path / "o2018", "--segmenter", tiny_segmenter, "--labels", "2018")
    assert forced.exit_code == 0
    assert np.array_equal(np.asarray(nib.load(str(tmp_path / "o2018" / "B-1-seg.nii.gz")).dataobj), legacy_labels)
    completed = invoke("segment", root / "M-1", tmp_path / "oc", "--segmenter", tiny_segmenter, "--complete",
                       "--weights", tiny_weights)
    assert completed.exit_code == 0, completed.output
    assert "after synthesizing t2f" in completed.output
    assert [p.name for p in (tmp_path / "oc").iterdir()] == ["M-1-seg.nii.gz"]  # the synthesis is not written
    stamp = (out / "B-1-seg.nii.gz").stat().st_mtime_ns
    again = invoke("segment", root, out, "--segmenter", tiny_segmenter, "--resume", "--quiet")
    assert again.exit_code == 1 and (out / "B-1-seg.nii.gz").stat().st_mtime_ns == stamp


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
