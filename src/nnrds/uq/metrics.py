"""Predictive metrics from posterior-predictive samples (S, N, d) and targets (N, d).

RMSE of the predictive mean; Gaussian NLL of the moment-matched predictive N(mean, var); CRPS of the
sample (empirical) predictive distribution; empirical coverage and mean width of central intervals; a
calibration curve (observed vs nominal central coverage). All averaged over points and outputs unless
``per_output``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

LEVELS = (0.5, 0.9, 0.95)
CURVE_LEVELS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))


def crps_gaussian(y, mu, sigma):
    """Closed-form CRPS of N(mu, sigma^2) at y (Gneiting & Raftery 2007)."""
    z = (np.asarray(y) - mu) / sigma
    return sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (S, ...) at ``y`` (...):
    E|X - y| - 1/2 E|X - X'|, with the pairwise term from the sorted samples in O(S log S)."""
    x = np.sort(np.asarray(samples), axis=0)
    S = x.shape[0]
    t1 = np.abs(x - y[None]).mean(0)
    i = np.arange(1, S + 1).reshape((S,) + (1,) * (x.ndim - 1))
    t2 = (2 * (2 * i - S - 1) * x).sum(0) / (2 * S * S)  # = 1/2 E|X - X'|
    return t1 - t2


def interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    return np.quantile(samples, a, axis=0), np.quantile(samples, 1 - a, axis=0)


def coverage(samples: np.ndarray, y: np.ndarray, level: float) -> float:
    lo, hi = interval(samples, level)
    return float(np.mean((y >= lo) & (y <= hi)))


def calibration_curve(samples: np.ndarray, y: np.ndarray, levels=CURVE_LEVELS) -> list[tuple[float, float]]:
    return [(float(l), coverage(samples, y, l)) for l in levels]


def gaussian_nll(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    mu, var = samples.mean(0), samples.var(0) + 1e-12
    return 0.5 * np.log(2 * math.pi * var) + 0.5 * (y - mu) ** 2 / var


def summary(samples: np.ndarray, y: np.ndarray, levels=LEVELS) -> dict[str, float]:
    """One row of metrics (averaged over points and outputs)."""
    samples, y = np.asarray(samples, dtype=float), np.asarray(y, dtype=float)
    out = {
        "rmse": float(np.sqrt(np.mean((samples.mean(0) - y) ** 2))),
        "nll": float(gaussian_nll(samples, y).mean()),
        "crps": float(crps_samples(samples, y).mean()),
        "pred_std": float(samples.std(0).mean()),
    }
    for l in levels:
        lo, hi = interval(samples, l)
        k = int(round(100 * l))
        out[f"cov{k}"] = float(np.mean((y >= lo) & (y <= hi)))
        out[f"width{k}"] = float(np.mean(hi - lo))
    return out
