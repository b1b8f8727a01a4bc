"""The post-hoc study of the validation model's outputs: its variants, its table, and a run on small cases."""

import numpy as np
import pytest

from tests.conftest import brain_volume, make_case, needs_torch, write_nifti


def test_the_variants_are_the_prior_the_blends_the_smoothed_output_and_the_mean_of_two():
    from training.studies.posthoc_study import mean_of_two, smooth_inside, variants

    output = brain_volume(scale=900.0)
    prior = brain_volume(scale=900.0, seed=3)
    found = variants(output, prior, alphas=(0.5, 1.0), sigmas=(1.0,), other=output * 4)
    assert list(found) == ["linear", "blend 0.5", "blend 1", "smooth 1", "mean of two"]
    assert found["linear"] is prior
    np.testing.assert_allclose(found["blend 1"], output)
    np.testing.assert_allclose(found["blend 0.5"], (output + prior) / 2, rtol=1e-6)
    smoothed = smooth_inside(output, 1.0)
    inside = output > 0
    assert np.array_equal(smoothed > 0, inside)
    pairs = inside[1:] & inside[:-1]
    assert np.abs(np.diff(smoothed, axis=0))[pairs].mean() < 0.7 * np.abs(np.diff(output, axis=0))[pairs].mean()
    edge = inside & ~np.roll(inside, 1, axis=0)  # the background's zeros are not averaged in at the edge
    assert abs(smoothed[edge].mean() / output[edge].mean() - 1) < 0.05
    # two syntheses that differ only by their intensity scale average to either one on a common scale
    both = mean_of_two(output, output * 4)
    np.testing.assert_allclose(both, output / np.percentile(output[output > 0], 99), rtol=1e-5)
    assert "mean of two" not in variants(output, prior, (1.0,), (), None)


def test_the_oracle_gives_the_output_the_real_histogram_and_keeps_its_ranks():
    from training.studies.posthoc_study import ORACLE, tone_matched, variants

    truth = brain_volume(scale=900.0)
    inside = truth > 0
    bent = np.where(inside, np.sqrt(truth) * 7 + 3, 0).astype(np.float32)  # the same structure, another tone
    np.testing.assert_allclose(tone_matched(bent, truth), truth, rtol=1e-6)  # a monotone change is undone exactly
    other = brain_volume(scale=50.0, seed=5)
    matched = tone_matched(other, truth)
    assert np.array_equal(matched > 0, other > 0)
    assert abs(np.median(matched[other > 0]) - np.median(truth[inside])) < 0.02 * np.median(truth[inside])
    order = np.argsort(other[other > 0], kind="stable")
    assert np.all(np.diff(matched[other > 0][order]) >= 0)  # ranks kept
    assert ORACLE in variants(other, other, (1.0,), (), None, truth) and ORACLE not in variants(other, other, (1.0,), (), None)


def test_the_table_gives_the_gain_over_linear_its_worst_pair_and_each_modality():
    from training.studies.posthoc_study import gains_table

    rows = [{"case": "A", "modality": "t1c", "linear": 0.5, "blend 1": 0.6, "map unc_spearman": 0.1, "map unc_top10": 1.2},
            {"case": "B", "modality": "t1c", "linear": 0.7, "blend 1": 0.65, "map unc_spearman": 0.3, "map unc_top10": 1.6},
            {"case": "A", "modality": "t2w", "linear": 0.4, "blend 1": 0.7, "map unc_spearman": float("nan"),
             "map unc_top10": float("nan")}]
    table = gains_table(rows)
    line = next(row for row in table.splitlines() if row.startswith("| blend 1 |"))
    assert "+0.1167" in line  # (0.1 - 0.05 + 0.3) / 3
    assert "-0.0500 (B t1c)" in line
    assert line.endswith("| +0.0250 | +0.3000 |")
    assert "unc_spearman 0.200, unc_top10 1.40 (mean over 2 pairs)" in table


def test_the_chosen_blend_is_the_largest_alpha_that_keeps_every_pair_above_the_floor():
    from training.studies.posthoc_study import blend_line, chosen_blend

    rows = [{"case": "A", "modality": "t1c", "linear": 0.6, "blend 0.5": 0.59, "blend 0.8": 0.575, "blend 1": 0.55},
            {"case": "B", "modality": "t1c", "linear": 0.4, "blend 0.5": 0.45, "blend 0.8": 0.5, "blend 1": 0.52},
            {"case": "A", "modality": "t2w", "linear": 0.4, "blend 0.5": 0.5, "blend 0.8": 0.6, "blend 1": 0.7},
            {"case": "A", "modality": "t2f", "linear": 0.5, "blend 0.5": 0.4, "blend 0.8": 0.4, "blend 1": 0.4}]
    chosen = chosen_blend(rows, [0.5, 0.8, 1.0], floor=-0.02)
    assert chosen == {"t1c": 0.5, "t2f": None, "t2w": 1.0}  # A t1c: -0.01 at 0.5, -0.025 at 0.8
    assert chosen_blend(rows, [0.5, 0.8, 1.0], floor=-0.05)["t1c"] == 1.0
    line = blend_line(chosen, -0.02)
    assert "t1c 0.5, t2f none of the alphas, t2w 1" in line and line.endswith("`--blend t1c=0.5`")


@needs_torch
def test_a_study_on_small_cases_scores_each_output_against_the_linear_fit(tmp_path):
    from tests.training.helpers import validation_model
    from training.studies.posthoc_study import main

    manifest = validation_model(tmp_path / "w", ["T-1", "T-2"])
    for case_id in ("T-1", "T-2", "V-1"):
        make_case(tmp_path / "cases", case_id, missing="none")
    truth = brain_volume(scale=800 + 200 * 2, seed=2)  # V-1's t2f, as make_case writes it
    (tmp_path / "volumes" / "V-1").mkdir(parents=True)
    write_nifti(tmp_path / "volumes" / "V-1" / "V-1-t2f.nii.gz", truth * 3, dtype=np.float32)  # right but for scale
    out = tmp_path / "out"
    main(["--cases", str(tmp_path / "cases"), "--weights", str(manifest.path), "--volumes", str(tmp_path / "volumes"),
          "--alpha", "0.5", "1", "--sigma", "1", "--out", str(out)])
    import csv

    rows = list(csv.DictReader((out / "posthoc.csv").open()))
    assert [(r["case"], r["modality"]) for r in rows] == [("V-1", "t2f")]
    row = {k: float(v) for k, v in rows[0].items() if k not in ("case", "modality")}
    assert row["blend 1"] == pytest.approx(1.0, abs=1e-4)  # the output is the truth up to its scale
    assert row["linear"] < row["blend 0.5"] < row["blend 1"]
    assert row["smooth 1"] < row["blend 1"]
    assert row["tone matched (oracle)"] == pytest.approx(1.0, abs=1e-4)
    assert sorted(p.name for p in (out / "linear-stats").iterdir()) == ["T-1.json", "T-2.json"]
    assert "| blend 1 |" in (out / "posthoc.md").read_text()
    # outputs of a case the model trained on are refused
    (tmp_path / "volumes" / "T-1").mkdir()
    with pytest.raises(SystemExit, match="trained on T-1"):
        main(["--cases", str(tmp_path / "cases"), "--weights", str(manifest.path), "--volumes",
              str(tmp_path / "volumes"), "--out", str(out)])
