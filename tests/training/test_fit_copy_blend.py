"""Fitting the companion's blend toward the stand-in (training/fit_copy_blend.py), and the pipeline applying it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.constants import Modality
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import load_manifest
from brasyn_infer.synthesis.stand_in import blend_toward
from tests.conftest import HAS_TORCH, make_case, weights_with
from training.fit_copy_blend import Scores, best_weight, fit, main, stand_in_of

T1C, T1N, T2F, T2W = Modality.T1C, Modality.T1N, Modality.T2F, Modality.T2W


def inputs_of(folder, dropped):
    return {m: load_volume(next(folder.glob(f"*-{m.value}.nii.gz"))).data
            for m in (T1C, T1N, T2F, T2W) if m not in dropped}


@pytest.mark.skipif(not HAS_TORCH, reason="the tiny pattern model is exported with torch")
def test_the_pipeline_blends_exactly_as_the_fit_scores(tmp_path, tiny_any_weights):
    inputs = inputs_of(make_case(tmp_path / "d", "B-1", missing="none"), [T1C, T2W])
    plain = Synthesizer(tiny_any_weights)
    blended = Synthesizer(weights_with(tiny_any_weights, tmp_path / "w", copy_blend={"t1c+t2w": {"t1c": 0.3}}))
    off = Synthesizer(blended.manifest.path, prior=False)
    out = plain.synthesize_stages(inputs, T1C, absent=[T2W])["generator"]
    stand = stand_in_of(plain.normalizer, inputs, T1C, [T2W])
    got = blended.synthesize_stages(inputs, T1C, absent=[T2W])["generator"]
    assert np.allclose(got, blend_toward(out, stand, 0.3), rtol=0, atol=1e-4 * float(out.max()))
    assert not np.allclose(got, out) and (got[out == 0] == 0).all()
    # the stand-in is the copy source (t1n for t1c) brought to the output's scale, background 0
    assert np.corrcoef(stand[stand > 0], inputs[T1N][stand > 0])[0, 1] > 0.99
    # the other target of the pattern, --no-prior and one missing are not blended
    assert np.array_equal(blended.synthesize_stages(inputs, T2W, absent=[T1C])["generator"],
                          plain.synthesize_stages(inputs, T2W, absent=[T1C])["generator"])
    assert np.array_equal(off.synthesize_stages(inputs, T1C, absent=[T2W])["generator"], out)
    three = {**inputs, T2W: inputs[T2F]}
    assert np.array_equal(blended.synthesize(three, T1C), plain.synthesize(three, T1C))


def test_the_weight_with_the_best_mean_is_kept_and_each_case_is_scored_by_the_others():
    grid = (0.0, 0.5, 1.0)
    scores = [Scores("A", "t1c+t2w", T1C, grid, (0.5, 0.6, 0.4)),
              Scores("B", "t1c+t2w", T1C, grid, (0.5, 0.7, 0.3)),
              Scores("C", "t1c+t2w", T1C, grid, (0.5, 0.4, 0.9)),
              Scores("A", "t1c+t2w", T2W, grid, (0.6, 0.5, 0.6)),  # a tie at 0 and 1: the smaller weight
              Scores("B", "t1c+t2w", T2W, grid, (0.6, 0.5, 0.6))]
    assert best_weight(scores[:3]) == 0.5  # means 0.5, 0.567, 0.533
    assert best_weight(scores[:3], leave_out="C") == 0.5 and best_weight(scores[:3], leave_out="A") == 1.0
    block, rows = fit(scores)
    # leaving each case out, the best weight scores (0.4 + 0.3 + 0.4) / 3 < 0.5, the synthesis alone: not kept
    assert block == {}
    t1c = next(r for r in rows if r["target"] == "t1c")
    assert t1c["leave_one_out_weights"] == [1.0, 1.0, 0.5]
    assert t1c["leave_one_out"] == pytest.approx((0.4 + 0.3 + 0.4) / 3)
    assert t1c["best"] == 0.5 and t1c["best_in_sample"] == pytest.approx(1.7 / 3)
    assert t1c["weight"] == 0 and t1c["fitted"] == 0.5 and t1c["stand_in"] == pytest.approx(1.6 / 3)
    # a fourth case like A and B: now the others agree on 0.5 and the weight holds out of sample
    block, rows = fit([*scores, Scores("D", "t1c+t2w", T1C, grid, (0.5, 0.65, 0.35))])
    assert block == {"t1c+t2w": {"t1c": 0.5}}
    t1c = next(r for r in rows if r["target"] == "t1c")
    assert t1c["leave_one_out"] > t1c["synthesis"] and t1c["fitted"] == t1c["best_in_sample"]


@pytest.mark.skipif(not HAS_TORCH, reason="the tiny pattern model is exported with torch")
def test_saved_outputs_are_scored_as_evaluate_scores_them_and_the_block_is_written(tmp_path, tiny_any_weights):
    data = tmp_path / "data"
    for case in ("C-1", "C-2"):
        make_case(data, case, missing="none")
    volumes, report = tmp_path / "volumes", tmp_path / "r"
    result = CliRunner().invoke(app, ["evaluate", str(data), str(report), "--drop", "t1c+t2w", "--baseline", "copy",
                                      "--weights", str(tiny_any_weights), "--save-volumes", str(volumes),
                                      "--no-uncertainty", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = {(r["case"], r["modality"], r["method"]): float(r["ssim_brain"])
            for r in csv.DictReader((report / "cases.csv").open())}
    weights = weights_with(tiny_any_weights, tmp_path / "w")
    fitted = weights.parent / "any-blend.json"
    main(["--cases", str(data), "--volumes", str(volumes), "--weights", str(weights),
          "--report", str(tmp_path / "blend.json"), "--write", str(fitted), "--jobs", "2"])
    kept = json.loads((tmp_path / "blend.json").read_text())
    assert len(kept["scores"]) == 4 and kept["grid"][0] == 0.0 and kept["grid"][-1] == 1.0
    for s in kept["scores"]:
        model, copy = rows[(s["case"], s["target"], "model")], rows[(s["case"], s["target"], "copy")]
        assert s["ssim_brain"][0] == pytest.approx(model, abs=1e-6)  # the saved output is what evaluate scored
        assert s["ssim_brain"][-1] == pytest.approx(copy, abs=0.05)  # the stand-in ~ the copy (clipped at p99.5)
    made = load_manifest(fitted)
    assert made.copy_blend == kept["copy_blend"] and made.onnx == load_manifest(weights).onnx
    assert load_manifest(weights).copy_blend == {}  # the fitted weights' own manifest is left alone
    main(["--weights", str(weights), "--refit", str(tmp_path / "blend.json"), "--report", str(tmp_path / "again.json")])
    assert json.loads((tmp_path / "again.json").read_text())["summary"] == kept["summary"]  # the same fit, no scoring
    other = weights.parent / "other.json"
    other.write_text(weights.read_text())
    main(["--apply", str(tmp_path / "blend.json"), "--write", str(other)])
    assert load_manifest(other).copy_blend == kept["copy_blend"]
