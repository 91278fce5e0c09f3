"""Regression datasets named in the config (``datasets:``), and seeded train/test splits.

A dataset spec is ``{kind: ..., n_train, n_test, ...}``. Loaders return a *pool* (X, Y) as float64
numpy arrays; :func:`split` draws a run's training and test points from it with the run's seed and
standardizes both with the training statistics. Adding data (e.g. the land-model ensemble) means
adding a loader here and a name in the config; no study code changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .tables import TABLES, load_table_dataset

LOADERS: dict[str, Callable[[dict, int], tuple[np.ndarray, np.ndarray]]] = {}
#: honest description of each kind (shown in captions and the README)
DESCRIPTIONS: dict[str, str] = {}


def loader(kind: str, description: str):
    def deco(fn):
        LOADERS[kind] = fn
        DESCRIPTIONS[kind] = description
        return fn

    return deco


@loader("sklearn_diabetes", "scikit-learn's bundled diabetes data (442 patients, 10 inputs, 1 output); real data")
def _diabetes(spec: dict, seed: int):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return X.astype(np.float64), y.reshape(-1, 1).astype(np.float64)


@loader("friedman1", "Friedman #1 function of 10 uniform inputs (5 active) with Gaussian noise; synthetic")
def _friedman1(spec: dict, seed: int):
    from sklearn.datasets import make_friedman1

    n = spec["n_train"] + spec["n_test"]
    X, y = make_friedman1(n_samples=max(n, 1000), n_features=spec["n_features"], noise=spec["noise"], random_state=seed)
    return X, y.reshape(-1, 1)


@loader("smooth_synthetic", "y = sum_i sin(x_i) + 0.5 sum_i x_i x_{i+1}, x ~ U[-2,2]^d, plus Gaussian noise; synthetic")
def _smooth(spec: dict, seed: int):
    rng = np.random.default_rng(seed)
    n, d = max(spec["n_train"] + spec["n_test"], 1000), spec["n_features"]
    X = rng.uniform(-2, 2, size=(n, d))
    y = np.sin(X).sum(1) + 0.5 * (X[:, :-1] * X[:, 1:]).sum(1)
    y = y + spec["noise"] * y.std() * rng.standard_normal(n)
    return X, y.reshape(-1, 1)


#: the tables of an ensemble folder (what a rule must declare as inputs and hand over as ``--in-dir``)
ENSEMBLE_FILES = TABLES


@loader(
    "ensemble",
    "a simulator ensemble built by the DAG (results/data/<source>: elm = simplified ELM-style "
    "land model, 15 parameters -> 10 QoIs; chem = stiff Robertson kinetics); substitute for the "
    "original non-public ensembles",
)
def _ensemble(spec: dict, seed: int):
    """Train and held-out designs pooled; each run draws its own split from the pool with its seed.

    Reads only ``spec["data_dir"]``: the folder the job was given (no path convention in the library)."""
    if not spec.get("data_dir"):
        raise ValueError(
            f"dataset kind 'ensemble' (source {spec.get('source')!r}) needs the folder of its tables: "
            "pass --in-dir (the workflow rule gives the folder of its input files)"
        )
    Xtr, Ytr, Xte, Yte, _, _ = load_table_dataset(spec["data_dir"])
    return np.vstack([Xtr, Xte]), np.vstack([Ytr, Yte])


def input_files(spec: dict, data_root: str) -> list[str]:
    """Files a dataset needs from other DAG rules (for rule ``input:``), under ``data_root`` (the workflow's
    raw-data folder, e.g. ``results/data``); none for bundled or synthetic data."""
    if spec["kind"] == "ensemble":
        return [f"{data_root}/{spec['source']}/{n}" for n in ENSEMBLE_FILES]
    return []


def data_dir_of(files: list[str]) -> str | None:
    """The one folder holding a dataset's input files (None when it has none)."""
    import os

    dirs = {os.path.dirname(str(f)) for f in files}
    if len(dirs) > 1:
        raise ValueError(f"a dataset's input files lie in several folders: {sorted(dirs)}")
    return dirs.pop() if dirs else None


def load_pool(spec: dict, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's pool. File-backed kinds read ``spec["data_dir"]`` only (set from the job's ``--in-dir``)."""
    try:
        fn = LOADERS[spec["kind"]]
    except KeyError:
        raise ValueError(f"unknown dataset kind {spec['kind']!r}; known: {sorted(LOADERS)}") from None
    return fn(spec, seed)


@dataclass
class Split:
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray


def split(X: np.ndarray, Y: np.ndarray, n_train: int, n_test: int, seed: int) -> Split:
    """Seeded random split; inputs and outputs standardized with the training points' mean/std."""
    if n_train + 1 > len(X):
        raise ValueError(f"n_train={n_train} leaves no test points in a pool of {len(X)}")
    perm = np.random.default_rng(seed).permutation(len(X))
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    mx, sx = X[tr].mean(0), X[tr].std(0) + 1e-12
    my, sy = Y[tr].mean(0), Y[tr].std(0) + 1e-12
    return Split((X[tr] - mx) / sx, (Y[tr] - my) / sy, (X[te] - mx) / sx, (Y[te] - my) / sy)


def seeded_splits(spec: dict, seeds: list[int], base_seed: int = 0) -> list[Split]:
    """One standardized train/test split per run seed, all drawn from the pool built with ``base_seed``
    (runs of the same seed see the same data in every study cell, so comparisons are paired)."""
    X, Y = load_pool(spec, seed=base_seed)
    return [split(X, Y, spec["n_train"], spec["n_test"], seed=s) for s in seeds]
