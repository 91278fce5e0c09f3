"""Seeded space-filling designs over a box of named parameters (Latin hypercube or scrambled Sobol)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import qmc


def parameter_box(ranges: dict[str, list[float]], names: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper bounds in ``names`` order; one clear error for a missing or empty range."""
    lo, hi = [], []
    for n in names:
        if n not in ranges:
            raise ValueError(
                f"`{where}.{n}` is missing: every perturbed parameter needs a [low, high] range "
                f"(known: {', '.join(names)})"
            )
        a, b = ranges[n]
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise ValueError(f"`{where}.{n}` = [{a}, {b}] is not a range with low < high; fix it in the config")
        lo.append(float(a))
        hi.append(float(b))
    return np.array(lo), np.array(hi)


def unit_design(n: int, d: int, kind: str, seed: int) -> np.ndarray:
    """``n`` points in [0, 1)^d. ``kind`` is ``lhs`` or ``sobol`` (scrambled, first n points; n need not be 2^m)."""
    if n < 1:
        raise ValueError(f"design size must be >= 1, got {n}")
    if kind == "lhs":
        return qmc.LatinHypercube(d=d, seed=np.random.default_rng(seed)).random(n)
    if kind == "sobol":
        eng = qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(seed))
        m = int(np.ceil(np.log2(max(n, 2))))
        return eng.random_base2(m)[:n]
    raise ValueError(f"design must be 'lhs' or 'sobol', got {kind!r}")


def train_test_design(
    names: list[str], lo: np.ndarray, hi: np.ndarray, n_train: int, n_test: int, kind: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Independent seeded designs for the training and the held-out set (seeds ``seed`` and ``seed + 1``)."""
    out = []
    for n, s in ((n_train, seed), (n_test, seed + 1)):
        u = unit_design(n, len(names), kind, s)
        out.append(pd.DataFrame(lo + u * (hi - lo), columns=names))
    return out[0], out[1]
