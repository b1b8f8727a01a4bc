"""How well an uncertainty map ranks the real errors: pure functions on ``(n,)`` voxel samples, and the errors
of one volume it is scored against (:class:`MapErrors`, computed once and shared by every map scored on it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brasyn_infer.evaluation.metrics import Scaled


@dataclass(frozen=True)
class MapErrors:
    """The real errors of a synthesized volume over the brain (``truth > 0``), as flat ``(n,)`` samples:
    ``scaled`` on the scale-free [0, 1] images the other metrics compare (each volume over its own 0.5-99.5
    percentiles, docs/design.md §8), ``raw`` on the raw intensities, where a missing modality's unknowable
    intensity scale dominates the error. ``brain`` is the ``(X, Y, Z)`` mask they are taken over."""

    brain: np.ndarray
    scaled: np.ndarray
    raw: np.ndarray

    @classmethod
    def of(cls, synthesized: np.ndarray | Scaled, truth: np.ndarray | Scaled) -> MapErrors:
        """The errors of ``synthesized`` against ``truth``, each in scanner units or already :class:`Scaled`."""
        synthesized, truth = Scaled.of(synthesized), Scaled.of(truth)
        brain = truth.raw > 0
        return cls(brain, np.abs(synthesized.unit[brain] - truth.unit[brain]),
                   np.abs(synthesized.raw[brain] - truth.raw[brain]))


def map_quality(uncertainty: np.ndarray, errors: MapErrors) -> dict[str, float]:
    """How an ``(X, Y, Z)`` uncertainty map ranks ``errors``: ``unc_spearman`` and ``unc_top10`` on the scale-free
    images, ``unc_spearman_raw`` and ``unc_top10_raw`` on the raw intensities."""
    values = uncertainty[errors.brain]
    return {**rank_quality(values, errors.scaled),
            **{f"{k}_raw": v for k, v in rank_quality(values, errors.raw).items()}}


def rank_quality(uncertainty: np.ndarray, abs_error: np.ndarray, top: float = 0.10) -> dict[str, float]:
    """How well an uncertainty ranks errors, over the given voxels ``(n,)``: the Spearman correlation
    (``scipy.stats.spearmanr``: average ranks for ties; NaN when either is constant), and the
    mean |error| of the ``top`` most uncertain voxels over that of the rest (1: no better than chance)."""
    n = len(abs_error)
    if n < 10:
        return {"unc_spearman": float("nan"), "unc_top10": float("nan")}
    from scipy.stats import spearmanr

    constant = np.ptp(uncertainty) == 0 or np.ptp(abs_error) == 0
    spearman = float("nan") if constant else float(spearmanr(uncertainty, abs_error).statistic)
    k = max(1, int(round(top * n)))
    order = np.argsort(uncertainty, kind="stable")
    worst, rest = abs_error[order[-k:]], abs_error[order[:-k]]
    ratio = float(worst.mean() / rest.mean()) if rest.mean() > 0 else float("nan")
    return {"unc_spearman": spearman, "unc_top10": ratio}

