"""Fitting the map's settings on held-out cases: the choice, the calibration, and the manifest written back."""

import json

import numpy as np
import pytest

from tests.conftest import make_case, needs_torch


def record(case, modality, error, top_scale, top_spread, map_scale, map_spread):
    return {"case": case, "modality": modality, "mean_abs_error": error, "voxels": 100,
            "scale": {"unc_top10": top_scale, "unc_spearman": 0.3, "mean_map": map_scale},
            "scale+spread": {"unc_top10": top_spread, "unc_spearman": 0.3, "mean_map": map_spread}}


def test_the_better_ranking_variant_is_chosen_and_its_mean_is_calibrated_to_the_error():
    from brasyn_infer.constants import Modality
    from training.validate import candidate_maps, choose

    records = [record("A", "t1c", 10.0, 1.4, 1.7, 5.0, 8.0), record("B", "t1c", 30.0, 1.6, 1.9, 10.0, 12.0),
               record("A", "t2w", 4.0, 1.5, 1.6, 2.0, 2.0)]
    variant, calibration = choose(records)
    assert variant == "scale+spread"
    assert calibration[Modality.T1C] == pytest.approx((10 + 30) / (8 + 12))
    assert calibration[Modality.T2W] == pytest.approx(2.0) and Modality.T1N not in calibration
    moments = np.stack([np.full((2, 2, 2), 0.5), np.full((2, 2, 2), 0.25 + 0.09), np.full((2, 2, 2), 0.4)])
    maps = candidate_maps(moments.astype(np.float32))
    assert np.allclose(maps["scale"], 0.4) and np.allclose(maps["scale+spread"], 0.5)  # sqrt(0.16 + 0.09)


@needs_torch
def test_validate_writes_the_block_into_the_manifest(tmp_path):
    from brasyn_infer.runtime.manifest import load_manifest
    from tests.training.helpers import validation_model
    from training.validate import main

    manifest = validation_model(tmp_path / "w", ["T-1"])
    make_case(tmp_path / "cases", "V-1", missing="none")
    main(["--cases", str(tmp_path / "cases"), "--holdout", "V-1", "--weights", str(manifest.path),
          "--out", str(tmp_path / "out")])
    block = load_manifest(manifest.path).uncertainty
    assert set(block) == {"view_spread", "calibration"} and set(block["calibration"]) == {"t1c", "t1n", "t2f", "t2w"}
    assert all(c > 0 for c in block["calibration"].values())
    result = json.loads((tmp_path / "out" / "validate.json").read_text())
    assert len(result["records"]) == 4 and result["uncertainty"] == block
    with pytest.raises(SystemExit, match="trained on"):
        main(["--cases", str(tmp_path / "cases"), "--holdout", "V-1", "--weights", str(manifest.path),
              "--out", str(tmp_path / "out")] + ["--holdout", "T-1"])


def test_the_oracle_column_takes_off_one_offset_per_pair_and_nothing_else():
    from brasyn_infer.evaluation.metrics import Scaled
    from brasyn_infer.evaluation.ranking import rank_quality
    from training.validate import offset_free_errors

    rng = np.random.default_rng(0)
    brain = np.zeros((12, 12, 12), bool)
    brain[2:10, 2:10, 2:10] = True
    real = np.where(brain, rng.uniform(0.2, 0.7, brain.shape), 0)
    local = np.where(brain, rng.laplace(0, 0.02, brain.shape), 0)  # where the output is wrong, voxel by voxel
    out = np.where(brain, real + 0.25 + local, 0)  # ... and the whole brain's tone 0.25 too bright
    offset, free = offset_free_errors(Scaled(out, out, 0, 1), Scaled(real, real, 0, 1), brain)
    assert offset == pytest.approx(0.25, abs=0.01)
    assert np.allclose(free, np.abs(local[brain] - (offset - 0.25)))
    perfect = np.abs(local[brain])  # a map that knows the local errors exactly
    assert rank_quality(perfect, free)["unc_spearman"] > 0.95
    assert rank_quality(perfect, np.abs(out - real)[brain])["unc_spearman"] < 0.3  # the offset hides them


def test_the_offsets_spread_is_scored_against_the_other_cases_mean():
    from training.validate import offset_spread

    records = [{"case": c, "modality": m, "offset": o}
               for c, m, o in [("A", "t1c", 0.1), ("B", "t1c", 0.3), ("C", "t1c", -0.1), ("A", "t2w", 0.2)]]
    size, left = offset_spread(records)
    assert size == pytest.approx((0.1 + 0.3 + 0.1 + 0.2) / 4)
    # A: |0.1 - 0.1|, B: |0.3 - 0|, C: |-0.1 - 0.2|; the t2w pair has no other case
    assert left == pytest.approx((0.0 + 0.3 + 0.3) / 3)


def test_a_map_exact_but_for_the_offset_is_scored_on_the_real_errors():
    from training.validate import exact_map_spearman

    rng = np.random.default_rng(1)
    local = rng.laplace(0, 0.05, 20000)  # the signed errors where the output is wrong
    assert exact_map_spearman(np.abs(local), np.abs(local)) == pytest.approx(1.0)  # no offset: it ranks them all
    shifted = [exact_map_spearman(np.abs(local), np.abs(local + c)) for c in (0.02, 0.05, 0.1, 0.2)]
    assert all(a > b for a, b in zip(shifted, shifted[1:], strict=False))  # the larger the offset, the less it ranks
    assert shifted[-1] < 0.2
