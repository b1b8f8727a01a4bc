"""training/studies/map_study.py: candidate maps built after the network, the fitted ones scored on the case left out."""

import numpy as np

from tests.conftest import needs_torch


def samples(error, level, n=400):
    """A pair's samples whose map and features carry no information, with the given error and level."""
    rng = np.random.default_rng(0)
    flat = {k: rng.uniform(0.1, 1, n).astype(np.float32) for k in ("map", "b", "var", "gradient", "local std", "edge")}
    return {**flat, "error": error.astype(np.float32), "level": level.astype(np.float32)}


def test_fitted_candidates_learn_from_the_other_cases_only():
    from training.studies.map_study import candidates

    level = np.linspace(0, 0.999, 400)
    data = {("A", "t1c"): samples(1 - level, level),  # A: the darker, the worse
            ("B", "t1c"): samples(level, level),  # B and C: the brighter, the worse
            ("C", "t1c"): samples(level + 0.01, level),
            ("A", "t2w"): samples(1 - level, level)}  # another modality: never in t1c's level table
    left_out = candidates(("A", "t1c"), data, (1.0,))
    assert np.corrcoef(left_out["expected at level"], level)[0, 1] > 0.9  # learned from B and C, not from A
    assert np.corrcoef(left_out["fit"], level)[0, 1] > 0.9
    assert set(left_out) >= {"map", "scale", "spread", "scale + 1 spread", "gradient", "level", "edge", "expected at level"}
    np.testing.assert_allclose(left_out["scale + 1 spread"], np.sqrt(data["A", "t1c"]["b"] ** 2 + data["A", "t1c"]["var"]),
                               rtol=1e-6)


@needs_torch
def test_the_study_samples_each_pair_and_reports_every_candidate(tmp_path):
    from tests.training.helpers import validation_model
    from tests.training.studies.test_fit_tone import held_out_outputs
    from training.studies.map_study import main

    held_out_outputs(tmp_path, modalities=("t1c", "t2f"))
    manifest = validation_model(tmp_path / "w", ["T-1", "T-2"])
    out = tmp_path / "out"
    args = ["--cases", str(tmp_path / "cases"), "--weights", str(manifest.path), "--volumes", str(tmp_path / "volumes"),
            "--out", str(out), "--samples", "2000", "--spread-weight", "1"]
    main(args)
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "V-1-t1c.npz", "V-1-t2f.npz", "V-2-t1c.npz", "V-2-t2f.npz"]
    report = (out / "map_study.md").read_text()
    for name in ("map", "scale + 1 spread", "expected at level", "fit"):
        assert f"| {name} |" in report
    assert "4 pairs" in report and "t1n Spearman" not in report  # only the modalities scored
    first = report
    main(args)  # a rerun reads the samples back: the same report
    assert (out / "map_study.md").read_text() == first
