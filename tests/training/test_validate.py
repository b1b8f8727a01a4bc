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
