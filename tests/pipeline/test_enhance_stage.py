"""The enhancement stage (issue 41): a synthesized t1c given real t1c's tumor contrast where the missing-sequence
segmenter finds the tumor; off unless asked for or the manifest enables it; t1c only; the companion's t1c too."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import Modality
from brasyn_infer.errors import WeightsError
from brasyn_infer.io.cases import scan_folder
from brasyn_infer.io.nifti import read_inputs
from tests.conftest import HAS_TORCH, make_case, weights_with

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")

BLOCK = {"enabled": False, "guide": None, "ratio": 1.5, "necrosis": 0.7, "feather": 1.0}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def volumes_of(folder):
    return {m: v.data for m, v in read_inputs(scan_folder(folder).modalities).items()}


@pytest.fixture(autouse=True)
def guide_with_healthy_brain(monkeypatch):
    """The random-init guide calls every brain voxel some tumor class, which leaves no healthy brain to measure the
    contrast on (the stage then changes nothing): keep its enhancing tumor only, the rest healthy."""
    from brasyn_infer.runtime.segmenter import Segmenter

    segment = Segmenter.segment
    monkeypatch.setattr(Segmenter, "segment", lambda self, volumes: np.where(segment(self, volumes) == 3, 3, 0
                                                                              ).astype(np.uint8))


@pytest.fixture
def enhancing_weights(tmp_path, tiny_weights, tiny_direct_segmenter):
    return weights_with(tiny_weights, tmp_path / "w", enhance={**BLOCK, "guide": str(tiny_direct_segmenter)})


def test_the_stage_is_the_guides_tumor_given_the_manifests_contrast(tmp_path, enhancing_weights,
                                                                    tiny_direct_segmenter):
    from brasyn_infer.pipeline.synthesizer import Synthesizer, final_stage
    from brasyn_infer.runtime.segmenter import Segmenter
    from brasyn_infer.synthesis.enhance import enhance

    volumes = volumes_of(make_case(tmp_path / "in", "E-1", missing="t1c"))
    synth = Synthesizer(enhancing_weights, enhance=True)
    stages = synth.synthesize_stages(volumes, Modality.T1C)
    guide = Segmenter(tiny_direct_segmenter).segment(volumes)
    assert (guide == 3).any() and ((guide == 0) & (volumes[Modality.T1N] > 0)).any()  # work to do
    expected = enhance(stages["generator"], guide, 1.5, 0.7, 1.0)
    assert np.array_equal(stages["enhanced"], expected)
    assert not np.array_equal(stages["enhanced"], stages["generator"])
    assert final_stage(stages) is stages["enhanced"] and "enhanced" in synth.last_seconds
    assert synth.describe()["enhance"]["ratio"] == 1.5 and "enhanced by tiny-any" in synth.label
    other = synth.synthesize_stages({m: v for m, v in volumes.items() if m is not Modality.T2F} |
                                    {Modality.T1C: volumes[Modality.T1N]}, Modality.T2F)
    assert "enhanced" not in other  # t1c only


def test_off_by_default_on_with_the_flag_or_the_manifest(tmp_path, tiny_weights, enhancing_weights,
                                                         tiny_direct_segmenter):
    root = tmp_path / "in"
    make_case(root, "E-1", missing="t1c")
    outputs = {}
    for name, weights, flags in (("plain", tiny_weights, ()), ("block-off", enhancing_weights, ()),
                                 ("flag", enhancing_weights, ("--enhance",)),
                                 ("guide", tiny_weights, ()),
                                 ("enabled", weights_with(enhancing_weights, tmp_path / "on",
                                                          enhance={**BLOCK, "enabled": True,
                                                                   "guide": str(tiny_direct_segmenter)}), ()),
                                 ("disabled", tmp_path / "on" / enhancing_weights.name, ("--no-enhance",))):
        if name == "guide":  # --guide without a block: refused, nothing written
            result = invoke("run", root, tmp_path / name, "--weights", weights, "--guide", tiny_direct_segmenter,
                            "--quiet")
            assert result.exit_code == 1 and "no enhancement stage" in result.output
            assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())
            continue
        result = invoke("run", root, tmp_path / name, "--weights", weights, *flags, "--quiet")
        assert result.exit_code == 0, result.output
        outputs[name] = nib.load(str(tmp_path / name / "E-1-t1c.nii.gz")).get_fdata()
    assert np.array_equal(outputs["plain"], outputs["block-off"])
    assert np.array_equal(outputs["plain"], outputs["disabled"])
    assert not np.array_equal(outputs["plain"], outputs["flag"])
    assert np.array_equal(outputs["flag"], outputs["enabled"])


def test_the_guide_must_be_a_missing_sequence_segmenter(tmp_path, enhancing_weights, tiny_segmenter):
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    with pytest.raises(WeightsError, match="missing-sequence segmenter"):
        Synthesizer(enhancing_weights, guide=tiny_segmenter)


@pytest.mark.parametrize("change, words", [({"ratio": 0.9}, "enhance.ratio"), ({"ratio": "1.5"}, "enhance.ratio"),
                                           ({"necrosis": 1.2}, "enhance.necrosis"), ({"feather": -1}, "feather"),
                                           ({"guide": 3}, "enhance.guide")])
def test_a_malformed_block_is_refused_when_the_weights_load(tmp_path, tiny_weights, change, words):
    from brasyn_infer.runtime.manifest import load_manifest

    path = weights_with(tiny_weights, tmp_path / "bad", enhance={**BLOCK, **change})
    with pytest.raises(WeightsError, match=words) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)


def test_the_companions_t1c_is_enhanced_too(tmp_path, tiny_weights, tiny_any_weights, tiny_direct_segmenter):
    from brasyn_infer.pipeline.completer import Completer
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    weights = weights_with(tiny_weights, tmp_path / "w", companion=str(tiny_any_weights),
                           enhance={**BLOCK, "guide": str(tiny_direct_segmenter)})
    folder = make_case(tmp_path / "in", "E-2", missing="t1c")
    next(folder.glob("*-t2f.nii.gz")).unlink()
    completed = Completer(Synthesizer(weights, enhance=True)).complete(volumes_of(folder),
                                                                       (Modality.T1C, Modality.T2F))
    assert "enhanced" in completed[Modality.T1C] and "enhanced" not in completed[Modality.T2F]


def test_evaluate_scores_the_t1c_before_and_after_the_stage(tmp_path, tiny_weights, tiny_any_weights,
                                                            tiny_segmenter, tiny_direct_segmenter):
    from brasyn_infer.evaluation.report import read_rows

    weights = weights_with(tiny_weights, tmp_path / "w", companion=str(tiny_any_weights), enhance=BLOCK)
    data = tmp_path / "data"
    make_case(data, "C-1", missing="none", seg=True)
    make_case(data, "C-2", missing="none")
    report = tmp_path / "r"
    args = ["evaluate", data, report, "--only", "C-1", "--drop", "t1c,t1c+t2f", "--baseline", "none", "--segment",
            "--segmenter", tiny_segmenter, "--direct-segmenter", "none", "--weights", weights,
            "--guide", tiny_direct_segmenter, "--no-uncertainty", "--quiet"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    rows = read_rows(report / "cases.csv")
    enhanced = [r for r in rows if r["method"] == "model+enhance"]
    assert sorted((r["pattern"], r["modality"]) for r in enhanced) == [("t1c", "t1c"), ("t1c+t2f", "t1c")]
    model = next(r for r in rows if r["method"] == "model" and r["pattern"] == "t1c")
    assert enhanced[0]["ssim_brain"] != model["ssim_brain"]
    assert enhanced[0]["seconds"] > model["seconds"] and np.isfinite(enhanced[0]["dice_wt"])
    assert "model+enhance" in (report / "report.md").read_text()
    assert json.loads((report / "run.json").read_text())["enhance"]["guide"]["name"] == "tiny-any"
    stamp = (report / "cases.csv").stat().st_mtime_ns
    again = invoke(*args)  # a rerun resumes: every row is there, nothing is redone
    assert again.exit_code == 0 and (report / "cases.csv").stat().st_mtime_ns == stamp
