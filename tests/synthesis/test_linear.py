"""The linear regression through sufficient statistics: exact fits, exact leave-one-case-out by subtraction."""

import json

import numpy as np
import pytest

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.synthesis.linear import LinearStats, StatsTable, brain_mask, case_stats, fit, predict, prior_table


def random_case(rng, shape=(12, 14, 40)):
    x4 = rng.uniform(-0.9, 1, (4, *shape)).astype(np.float32)
    x4[:, :2] = -1  # some background
    return x4


def direct_fit(cases, missing):
    """np.linalg.lstsq on the concatenated brain voxels (what the statistics must reproduce)."""
    available = [m.index for m in MODALITIES if m is not missing]
    rows, targets = [], []
    for x4 in cases:
        brain = brain_mask(x4)
        rows.append(np.stack([x4[c][brain] for c in available] + [np.ones(int(brain.sum()))], axis=1))
        targets.append(x4[missing.index][brain])
    coef, *_ = np.linalg.lstsq(np.concatenate(rows).astype(np.float64), np.concatenate(targets).astype(np.float64),
                               rcond=None)
    return coef


def test_recovers_an_exact_linear_relation():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(2):
        x4 = random_case(rng)
        x4[2] = np.where(x4[0] == -1, -1, 0.5 * x4[0] - 0.25 * x4[1] + 0.1 * x4[3] + 0.2)
        cases.append(x4)
    coef = fit(case_stats(c, Modality.T2F) for c in cases)
    np.testing.assert_allclose(coef, [0.5, -0.25, 0.1, 0.2], atol=1e-6)
    brain = brain_mask(cases[0])
    np.testing.assert_allclose(predict(cases[0], Modality.T2F, coef)[brain], cases[0][2][brain], atol=1e-5)


def test_leave_one_case_out_by_subtraction_equals_a_direct_fit():
    rng = np.random.default_rng(1)
    cases = {f"C{i}": random_case(rng, (10 + i, 12, 33)) for i in range(5)}
    table = StatsTable()
    for case_id, x4 in cases.items():
        for m in MODALITIES:
            table.add(case_id, m, case_stats(x4, m))
    for m in (Modality.T1C, Modality.T2W):
        for held in cases:
            expected = direct_fit([x4 for c, x4 in cases.items() if c != held], m)
            np.testing.assert_allclose(table.loco(held, m), expected, rtol=1e-7, atol=1e-9)
        subset = {"C1", "C3"}  # --fit-on: only these cases (never the scored one)
        np.testing.assert_allclose(table.loco("C3", m, subset), direct_fit([cases["C1"]], m), rtol=1e-7, atol=1e-9)


def test_replacing_a_case_keeps_the_total_right_and_the_json_round_trips():
    rng = np.random.default_rng(2)
    a, b = random_case(rng), random_case(rng)
    table = StatsTable()
    table.add("A", Modality.T1C, case_stats(a, Modality.T1C))
    table.add("A", Modality.T1C, case_stats(b, Modality.T1C))  # recomputed: replaces, never adds twice
    assert table.total[Modality.T1C].n == case_stats(b, Modality.T1C).n
    stats = case_stats(a, Modality.T1N)
    again = LinearStats.from_json(json.loads(json.dumps(stats.to_json())))
    assert np.array_equal(again.xtx, stats.xtx) and again.n == stats.n


def test_no_other_case_gives_no_fit_and_the_prior_table_zeroes_the_missing_channel():
    table = StatsTable()
    table.add("A", Modality.T1C, case_stats(random_case(np.random.default_rng(3)), Modality.T1C))
    assert table.loco("A", Modality.T1C) is None
    with pytest.raises(ValueError):
        fit([LinearStats.zero()])
    coefs = {m: np.array([1.0, 2.0, 3.0, 4.0]) for m in MODALITIES}
    prior = prior_table(coefs)
    assert prior.shape == (4, 5) and all(prior[m.index, m.index] == 0 for m in MODALITIES)
    assert list(prior[Modality.T2F.index]) == [1.0, 2.0, 0.0, 3.0, 4.0]
