"""The per-voxel linear regression baseline through sufficient statistics.

For one case and one dropped modality ``m``, over its brain voxels (all four normalized channels away from the
background value), let ``X`` be the ``(n, 4)`` design ``[x_a, x_b, x_c, 1]`` (the three available channels in
:data:`~brasyn_infer.constants.MODALITIES` order, then the intercept) and ``y`` the ``(n,)`` target channel.
:class:`LinearStats` keeps ``X^T X`` ``(4, 4)``, ``X^T y`` ``(4,)``, ``y^T y`` and ``n`` in float64: a few dozen
numbers, whatever the case's size. The least-squares fit on any set of cases is the solution of the summed normal
equations, so a leave-one-case-out fit is the total minus the held-out case: exact, in constant memory and time
per case (:class:`StatsTable`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from brasyn_infer.constants import BACKGROUND, MODALITIES, Modality

#: ridge added to the normal equations' diagonal (not the intercept's), for a case whose channels are collinear
RIDGE = 1e-9


@dataclass(frozen=True)
class LinearStats:
    """``X^T X`` ``(4, 4)``, ``X^T y`` ``(4,)``, ``y^T y`` and ``n`` of one case and dropped modality (float64)."""

    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    n: int

    def __add__(self, other: LinearStats) -> LinearStats:
        return LinearStats(self.xtx + other.xtx, self.xty + other.xty, self.yty + other.yty, self.n + other.n)

    def __sub__(self, other: LinearStats) -> LinearStats:
        return LinearStats(self.xtx - other.xtx, self.xty - other.xty, self.yty - other.yty, self.n - other.n)

    @classmethod
    def zero(cls) -> LinearStats:
        return cls(np.zeros((4, 4)), np.zeros(4), 0.0, 0)

    def to_json(self) -> dict:
        return {"xtx": self.xtx.tolist(), "xty": self.xty.tolist(), "yty": self.yty, "n": self.n}

    @classmethod
    def from_json(cls, data: Mapping) -> LinearStats:
        return cls(np.asarray(data["xtx"], dtype=np.float64), np.asarray(data["xty"], dtype=np.float64),
                   float(data["yty"]), int(data["n"]))


def brain_mask(x4: np.ndarray, fill: float = BACKGROUND) -> np.ndarray:
    """``(X, Y, Z)`` bool: voxels where all four normalized channels of ``x4`` ``(4, X, Y, Z)`` differ from ``fill``."""
    return (x4 != np.float32(fill)).all(axis=0)


def case_stats(x4: np.ndarray, missing: Modality, fill: float = BACKGROUND,
               mask: np.ndarray | None = None) -> LinearStats:
    """The statistics of one complete normalized case ``x4`` ``(4, X, Y, Z)`` with ``missing`` as the target,
    over ``mask`` (default: :func:`brain_mask`). Accumulated in float64 slab by slab (bounded memory)."""
    mask = brain_mask(x4, fill) if mask is None else mask
    available = [m.index for m in MODALITIES if m is not missing]
    total = LinearStats.zero()
    for k in range(0, x4.shape[1], 16):
        inside = mask[k:k + 16]
        if not inside.any():
            continue
        design = np.empty((int(inside.sum()), 4), dtype=np.float64)
        for j, c in enumerate(available):
            design[:, j] = x4[c, k:k + 16][inside]
        design[:, 3] = 1.0
        y = x4[missing.index, k:k + 16][inside].astype(np.float64)
        total = total + LinearStats(design.T @ design, design.T @ y, float(y @ y), len(y))
    return total


def solve(stats: LinearStats) -> np.ndarray:
    """Least-squares coefficients ``(4,)``: three weights (available channels in MODALITIES order), then the intercept."""
    if stats.n < 4:
        raise ValueError(f"a linear fit needs at least 4 voxels, got {stats.n}")
    ridge = RIDGE * np.trace(stats.xtx) * np.diag([1.0, 1.0, 1.0, 0.0])
    return np.linalg.solve(stats.xtx + ridge, stats.xty)


def fit(cases: Iterable[LinearStats]) -> np.ndarray:
    """Coefficients fitted on the voxels of all these cases together."""
    total = LinearStats.zero()
    for stats in cases:
        total = total + stats
    return solve(total)


def predict(x4: np.ndarray, missing: Modality, coef: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` float32 prediction ``sum_i w_i x_i + b`` over the available channels of ``x4`` (normalized
    units; the caller masks the background). Accumulated in float64."""
    available = [m.index for m in MODALITIES if m is not missing]
    out = np.full(x4.shape[1:], coef[-1], dtype=np.float64)
    for weight, channel in zip(coef[:-1], available, strict=True):
        out += weight * x4[channel]
    return out.astype(np.float32)


def prior_table(coefs: Mapping[Modality, np.ndarray]) -> np.ndarray:
    """``(4, 5)`` float32: row ``m`` holds, for ``m`` missing, the weight of each of the four channels (0 for ``m``
    itself) and the intercept: the in-graph linear prior of :class:`~brasyn_infer.authoring.models.residual`."""
    table = np.zeros((len(MODALITIES), len(MODALITIES) + 1), dtype=np.float32)
    for missing, coef in coefs.items():
        available = [m.index for m in MODALITIES if m is not missing]
        table[missing.index, available] = coef[:3]
        table[missing.index, -1] = coef[3]
    return table


class StatsTable:
    """Per case and dropped modality statistics, with their running total: leave-one-case-out fits by subtraction."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[Modality, LinearStats]] = {}
        self.total: dict[Modality, LinearStats] = {}

    def add(self, case_id: str, missing: Modality, stats: LinearStats) -> None:
        old = self.cases.setdefault(case_id, {}).get(missing)
        self.cases[case_id][missing] = stats
        running = self.total.get(missing, LinearStats.zero())
        self.total[missing] = running + stats - (old or LinearStats.zero())

    def has(self, case_id: str, missing: Modality) -> bool:
        return missing in self.cases.get(case_id, {})

    def loco_stats(self, case_id: str, missing: Modality, fit_on: set[str] | None = None) -> LinearStats | None:
        """The summed statistics of every case but ``case_id`` (only those of ``fit_on`` when given); None when no
        other case has statistics for ``missing``. A fit from fewer inputs solves a sub-block (:func:`solve_subset`)."""
        if fit_on is not None:
            chosen = [s[missing] for c, s in self.cases.items() if c in fit_on and c != case_id and missing in s]
            return sum(chosen, LinearStats.zero()) if chosen else None
        others = self.total.get(missing, LinearStats.zero())
        own = self.cases.get(case_id, {}).get(missing)
        if own is not None:
            others = others - own
        return others if others.n >= 4 else None

    def loco(self, case_id: str, missing: Modality, fit_on: set[str] | None = None) -> np.ndarray | None:
        """Coefficients fitted on every case but ``case_id`` (only those of ``fit_on`` when given); None when no
        other case has statistics for ``missing``."""
        if fit_on is not None:
            chosen = [s[missing] for c, s in self.cases.items() if c in fit_on and c != case_id and missing in s]
            return fit(chosen) if chosen else None
        others = self.total.get(missing, LinearStats.zero())
        own = self.cases.get(case_id, {}).get(missing)
        if own is not None:
            others = others - own
        return solve(others) if others.n >= 4 else None


#: number of availability codes: bit ``c`` of a code is set when channel ``c`` (MODALITIES order) is available
PATTERN_CODES = 2 ** len(MODALITIES)


def pattern_code(available: Iterable[Modality]) -> int:
    """The availability code of a set of modalities: ``sum(2 ** m.index)`` (the graph's ``mask @ [1, 2, 4, 8]``)."""
    return int(sum(2 ** m.index for m in set(available)))


def solve_subset(stats: LinearStats, missing: Modality, available: Iterable[Modality]) -> np.ndarray:
    """Coefficients ``(len(available) + 1,)`` of the fit of ``missing`` from a subset of the other three modalities
    (MODALITIES order, then the intercept), from the statistics of the three-input fit: the sub-block of the same
    normal equations over the same voxels, so exact."""
    others = [m for m in MODALITIES if m is not missing]
    chosen = sorted(set(available), key=lambda m: m.index)
    if not chosen or missing in chosen:
        raise ValueError(f"the inputs of a fit of {missing.value} are 1 to 3 of the other modalities, got {chosen}")
    rows = [others.index(m) for m in chosen] + [3]
    xtx, xty = stats.xtx[np.ix_(rows, rows)], stats.xty[rows]
    ridge = RIDGE * np.trace(xtx) * np.diag([1.0] * len(chosen) + [0.0])
    return np.linalg.solve(xtx + ridge, xty)


def pattern_table(stats: Mapping[Modality, LinearStats]) -> np.ndarray:
    """``(4, 16, 5)`` float32: ``[m, code]`` holds, for ``m`` synthesized from the modalities whose bits are set in
    ``code`` (:func:`pattern_code`), the weight of each of the four channels (0 for those not available) and the
    intercept; codes that include ``m`` or are empty are zeros. ``stats``: each target's summed three-input
    statistics (e.g. over the training cases). ``[m, code of the other three]`` equals :func:`prior_table`'s row."""
    table = np.zeros((len(MODALITIES), PATTERN_CODES, len(MODALITIES) + 1), dtype=np.float32)
    for missing, total in stats.items():
        for code in range(1, PATTERN_CODES):
            available = [m for m in MODALITIES if code >> m.index & 1]
            if missing in available:
                continue
            coef = solve_subset(total, missing, available)
            table[missing.index, code, [m.index for m in available]] = coef[:-1]
            table[missing.index, code, -1] = coef[-1]
    return table


def predict_subset(x4: np.ndarray, missing: Modality, available: Iterable[Modality], coef: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` float32 ``sum_i w_i x_i + b`` over ``available`` (MODALITIES order), coefficients from
    :func:`solve_subset`. Accumulated in float64."""
    chosen = sorted(set(available), key=lambda m: m.index)
    out = np.full(x4.shape[1:], coef[-1], dtype=np.float64)
    for weight, m in zip(coef[:-1], chosen, strict=True):
        out += weight * x4[m.index]
    return out.astype(np.float32)
