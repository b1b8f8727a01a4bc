"""training/studies/fit_tone.py: the tone correction fitted on held-out outputs, and posthoc_study --tone scoring it."""

import csv
import json

import numpy as np
import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.synthesis.tone import Tone, brain_quantiles
from tests.conftest import brain_volume, make_case, needs_torch, write_nifti


def test_the_fit_is_each_modalitys_mean_curve_and_can_leave_a_case_out():
    from training.studies.fit_tone import fit_tone, pair_tone

    a = pair_tone("A", Modality.T1C, brain_volume(seed=1) ** 0.5, brain_volume(seed=1))
    b = pair_tone("B", Modality.T1C, brain_volume(seed=2) ** 0.5, brain_volume(seed=2))
    c = pair_tone("A", Modality.T2W, brain_volume(seed=3), brain_volume(seed=3))
    tone = fit_tone([a, b, c])
    assert set(tone.curves) == {Modality.T1C, Modality.T2W}
    np.testing.assert_allclose(tone.curves[Modality.T1C][0], (a.output + b.output) / 2)
    np.testing.assert_allclose(tone.curves[Modality.T1C][1], (a.real + b.real) / 2)
    without = fit_tone([a, b, c], leave_out="A")
    assert set(without.curves) == {Modality.T1C}
    np.testing.assert_allclose(without.curves[Modality.T1C][0], b.output)


def held_out_outputs(tmp_path, cases=("V-1", "V-2"), modalities=("t2f",)):
    """Cases T-1, T-2 (trained on) and V-* (held out, segmented), each V-* with an output of each of ``modalities``
    whose tone is bent, and its map. Returns the last modality's real volume and output."""
    for case_id in ("T-1", "T-2", *cases):
        make_case(tmp_path / "cases", case_id, missing="none", seg=case_id.startswith("V"))
    for mod in modalities:
        i = ("t1c", "t1n", "t2f", "t2w").index(mod)
        truth = brain_volume(scale=800 + 200 * i, seed=i)  # every case's volume, as make_case writes it
        bent = np.where(truth > 0, np.sqrt(truth) * 40, 0).astype(np.float32)
        for case_id in cases:
            (tmp_path / "volumes" / case_id).mkdir(parents=True, exist_ok=True)
            write_nifti(tmp_path / "volumes" / case_id / f"{case_id}-{mod}.nii.gz", bent, dtype=np.float32)
            noise = np.abs(np.random.default_rng(0).normal(size=truth.shape)).astype(np.float32) * (truth > 0)
            write_nifti(tmp_path / "volumes" / case_id / f"{case_id}-{mod}-uncertainty.nii.gz", noise, dtype=np.float32)
    return truth, bent


@needs_torch
def test_fit_tone_writes_the_block_the_synthesizer_reads(tmp_path):
    from tests.training.helpers import validation_model
    from training.studies.fit_tone import main

    truth, bent = held_out_outputs(tmp_path)
    manifest = validation_model(tmp_path / "w", ["T-1", "T-2"])
    main(["--cases", str(tmp_path / "cases"), "--volumes", str(tmp_path / "volumes"), "--weights", str(manifest.path),
          "--points", "50"])
    block = json.loads(manifest.path.read_text())["tone"]
    assert list(block) == ["t2f"] and len(block["t2f"]["output"]) == 51
    tone = Tone.from_manifest(block)
    np.testing.assert_allclose(tone.curves[Modality.T2F][1], brain_quantiles(truth, 50), atol=2e-3)  # the case is int16
    corrected = tone.apply(bent, Modality.T2F)
    assert np.abs(corrected / corrected.max() - truth / truth.max())[truth > 0].max() < 0.02  # the bend undone
    with pytest.raises(SystemExit, match="no <case>"):
        main(["--cases", str(tmp_path / "cases"), "--volumes", str(tmp_path / "cases" / "T-1"), "--weights",
              str(manifest.path)])


@needs_torch
def test_the_study_scores_the_tone_fitted_on_all_and_on_the_other_cases_with_the_models_map(tmp_path):
    from tests.training.helpers import validation_model
    from training.studies.posthoc_study import TONE, TONE_LOO, main

    held_out_outputs(tmp_path, modalities=("t1c", "t2f"))
    manifest = validation_model(tmp_path / "w", ["T-1", "T-2"])
    out = tmp_path / "out"
    main(["--cases", str(tmp_path / "cases"), "--weights", str(manifest.path), "--volumes", str(tmp_path / "volumes"),
          "--alpha", "1", "--sigma", "--tone", "--out", str(out)])
    rows = list(csv.DictReader((out / "posthoc.csv").open()))
    assert [(r["case"], r["modality"]) for r in rows] == [("V-1", "t1c"), ("V-1", "t2f"), ("V-2", "t1c"), ("V-2", "t2f")]
    for row in rows:
        assert float(row[TONE]) > float(row["blend 1"]) + 0.01  # the bend costs SSIM; the curve takes it off
        assert float(row[TONE_LOO]) == pytest.approx(float(row[TONE]), abs=1e-3)  # the other case bends alike
        assert -1 <= float(row["own map unc_spearman: output"]) <= 1
        assert f"own map unc_top10: {TONE_LOO}" in row
    report = (out / "posthoc.md").read_text()
    assert f"| {TONE_LOO} |" in report and "| the model's own map, on the errors of |" in report
    line = next(x for x in report.splitlines() if x.startswith("t1c tumor SSIM (mean over 2 pairs"))
    tumor = {k: float(v) for k, v in (part.rsplit(" ", 1) for part in line.split(": ", 1)[1].split(", "))}
    assert set(tumor) == {"linear", "blend 1", TONE, TONE_LOO} and tumor[TONE] > tumor["blend 1"]


@needs_torch
def test_evaluate_keeps_each_outputs_map_where_fit_tone_and_the_study_read_it(tmp_path):
    from typer.testing import CliRunner

    from brasyn_infer.cli import app
    from brasyn_infer.io.nifti import load_volume
    from tests.training.helpers import validation_model

    make_case(tmp_path / "data", "V-1", missing="none")
    manifest = validation_model(tmp_path / "w", ["T-1"])  # a graph with its own log_scale output: a map to score
    keep = tmp_path / "volumes"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "data"), str(tmp_path / "r"), "--drop", "t2f",
                                      "--baseline", "none", "--weights", str(manifest.path), "--view", "axial",
                                      "--save-volumes", str(keep), "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (keep / "V-1").iterdir()) == ["V-1-t2f-uncertainty.nii.gz", "V-1-t2f.nii.gz"]
    output, uncertainty = (load_volume(keep / "V-1" / name).data for name in ("V-1-t2f.nii.gz", "V-1-t2f-uncertainty.nii.gz"))
    assert uncertainty.max() > 0 and (uncertainty[output == 0] == 0).all()
