"""Ranking scores of an uncertainty map."""

import numpy as np
import pytest

from brasyn_infer.evaluation.ranking import rank_quality


def test_rank_quality_tells_a_good_map_from_a_random_one():
    rng = np.random.default_rng(2)
    error = rng.exponential(1.0, 50_000)
    perfect = rank_quality(error * 3 + 1, error)
    assert perfect["unc_spearman"] == pytest.approx(1.0)
    assert perfect["unc_top10"] > 3
    noise = rank_quality(rng.random(50_000), error)
    assert abs(noise["unc_spearman"]) < 0.03 and 0.9 < noise["unc_top10"] < 1.1
    ties = rank_quality(np.zeros(100), rng.random(100))  # a constant map ranks nothing
    assert ties["unc_spearman"] != ties["unc_spearman"] or abs(ties["unc_spearman"]) < 1e-9


