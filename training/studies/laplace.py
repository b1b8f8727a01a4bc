"""Fitting the Laplace-scale uncertainty model of a manifest's ``trust`` block (applied at inference by
:func:`brasyn_infer.synthesis.trust.laplace_scale`)."""

from __future__ import annotations

import numpy as np

from brasyn_infer.synthesis.trust import EPS


def design(feats: np.ndarray) -> np.ndarray:
    """``(n, 1 + k)`` design matrix ``[1, log(f_1 + EPS), ...]`` of ``(k, n)`` feature samples, float64."""
    return np.hstack([np.ones((feats.shape[1], 1)), np.log(feats.T.astype(np.float64) + EPS)])


def fit_laplace(feats: np.ndarray, abs_error: np.ndarray, iterations: int = 50, ridge: float = 1e-6) -> np.ndarray:
    """Weights of :func:`laplace_scale` that maximize the Laplace likelihood of ``abs_error`` ``(n,)`` given
    ``(k, n)`` features: minimize ``mean(|e| / b + log b)``, convex in the weights (Newton's method)."""
    a = design(feats)
    e = abs_error.astype(np.float64)
    w = np.zeros(a.shape[1])
    w[0] = np.log(max(e.mean(), 1e-9))
    for _ in range(iterations):
        r = e * np.exp(-(a @ w))  # |e| / b
        grad = a.T @ (1 - r) / len(e)
        hess = (a * r[:, None]).T @ a / len(e) + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
