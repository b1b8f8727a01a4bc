"""How well an uncertainty map ranks the real errors: pure functions on ``(n,)`` voxel samples."""

from __future__ import annotations

import numpy as np


def rank_quality(uncertainty: np.ndarray, abs_error: np.ndarray, top: float = 0.10) -> dict[str, float]:
    """How well an uncertainty ranks errors, over the given voxels ``(n,)``: the Spearman correlation, and the
    mean |error| of the ``top`` most uncertain voxels over that of the rest (1: no better than chance)."""
    n = len(abs_error)
    if n < 10:
        return {"unc_spearman": float("nan"), "unc_top10": float("nan")}
    ru = _ranks(uncertainty)
    re = _ranks(abs_error)
    spearman = float(np.corrcoef(ru, re)[0, 1]) if ru.std() > 0 and re.std() > 0 else float("nan")
    k = max(1, int(round(top * n)))
    order = np.argsort(uncertainty, kind="stable")
    worst, rest = abs_error[order[-k:]], abs_error[order[:-k]]
    ratio = float(worst.mean() / rest.mean()) if rest.mean() > 0 else float("nan")
    return {"unc_spearman": spearman, "unc_top10": ratio}


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), float64."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    mean_rank = (starts + ends - 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks
