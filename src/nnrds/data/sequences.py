"""Sequence-classification datasets as seeded train/test splits: scikit-learn's 8x8 digits read pixel by pixel
(length-64 sequences, 1 input per step), the same with a fixed pixel permutation, and UCR ECG5000 (length-140
heartbeats, 5 classes) as verified by the acquisition step (:mod:`nnrds.data.acquire`, parsed by
:mod:`nnrds.data.ucr`).

A dataset spec holds ``test_fraction``, ``permutation_seed``, ``max_train``, ``max_test`` and ``ecg_path`` (the
noisy-RNN study passes its config section, which has them). The mirror holds only ECG5000's 500-sequence
*training* split, which is split stratified into train/test sets here (the archive's official test split is used
instead when a full download provides it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ucr import official_test, read_ucr

DATASETS = ("digits", "digits_permuted", "ecg5000", "italy_power")

DESCRIPTIONS = {
    "digits": "scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes) read pixel by pixel "
    "as length-64 sequences, pixels scaled to [0, 1]; stratified train/test split",
    "digits_permuted": "the same digits with one fixed random permutation of the 64 pixels (seed `permutation_seed`)",
    "ecg5000": "UCR ECG5000 heartbeats (length 140, 5 classes, z-normalized by the archive); only the "
    "archive's 500-sequence training split is in the offline mirror, so it is split stratified "
    "into this study's train/test sets (not the official split; with a full download of the archive "
    "the official 500/4,500 split is used and the table's `split` column says `official`)",
    "italy_power": "UCR ItalyPowerDemand (Keogh et al. 2006; length-24 daily electricity-demand curves, 2 classes: "
    "October-March vs April-September), the archive's official split of 67 training and 1,029 test sequences "
    "(the .ts files bundled in aeon 1.6.0, sha256-verified by the raw-data layer)",
}


@dataclass
class SeqData:
    X_train: np.ndarray  # (n, T*d) float
    y_train: np.ndarray  # (n,) int
    X_test: np.ndarray
    y_test: np.ndarray
    seq_len: int
    d_in: int
    n_classes: int
    lo: float  # salt-and-pepper values
    hi: float
    split: str = "stratified"  # stratified: split here; official: the archive's train/test split


#: how a missing ECG5000 file is named in the error (with the config keys that point to it)
ECG_FILE_WHAT = "ECG5000 file (config `noisy_rnn.ecg_path` / `data.mirror`)"


def ecg_path(spec: dict, data: dict | None) -> Path:
    """``spec["ecg_path"]`` (config ``noisy_rnn.ecg_path``) or, when null, ``<data.mirror>/ECG5000_TRAIN.txt``.

    The DAG sets ``ecg_path`` to the raw-data layer's verified ``results/data/ecg5000/train.csv``
    (rule ``data_acquire_ecg5000``); when that layer downloaded the full archive it also wrote
    ``test.csv`` there, and the official train/test split is used instead of a stratified split.
    """
    if spec.get("ecg_path"):
        return Path(spec["ecg_path"])
    mirror = (data or {}).get("mirror")
    if not mirror:
        raise ValueError(
            "noisy_rnn needs ECG5000: set `noisy_rnn.ecg_path` or `data.mirror` (in the DAG the "
            "raw-data rule data_acquire_ecg5000 provides it)"
        )
    return Path(mirror) / "ECG5000_TRAIN.txt"


def italy_path(spec: dict) -> Path:
    """``spec["italy_path"]`` (config ``noisy_rnn.italy_path``; in the DAG the raw-data layer's verified
    ``results/data/italy_power/train.csv``, with ``test.csv`` beside it)."""
    if not spec.get("italy_path"):
        raise ValueError("noisy_rnn needs ItalyPowerDemand: set `noisy_rnn.italy_path` (rule data_acquire_ucr)")
    return Path(spec["italy_path"])


@dataclass
class SeqPool:
    """A dataset before splitting: the pool ``X, y`` that cross-validation splits (ECG5000 without an official
    test split, digits), or the official training split with the official test split ``X_test, y_test``."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    seq_len: int
    d_in: int
    n_classes: int
    lo: float
    hi: float
    split: str  # "cv": cross-validated over the pool; "official": the archive's train/test split

    @property
    def X_all(self) -> np.ndarray:
        """Every sequence a replica is evaluated on: the pool, then the official test split (if any)."""
        return self.X if self.X_test is None else np.concatenate([self.X, self.X_test])

    @property
    def y_all(self) -> np.ndarray:
        return self.y if self.y_test is None else np.concatenate([self.y, self.y_test])


def load_pool(name: str, spec: dict, data: dict | None = None) -> SeqPool:
    """The unsplit dataset ``name`` (see :class:`SeqPool`); ``spec["max_train"]`` keeps a stratified subset of that
    many sequences of a pool (the first ones of an official training split), ``max_test`` the first sequences of an
    official test split (smoke scale)."""
    Xte = yte = None
    if name in ("digits", "digits_permuted"):
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.astype(np.float64) / 16.0
        if name == "digits_permuted":
            X = X[:, np.random.default_rng(spec["permutation_seed"]).permutation(X.shape[1])]
    elif name == "ecg5000":
        path = ecg_path(spec, data)
        X, y = read_ucr(path, ECG_FILE_WHAT)
        test = official_test(path)
        if test is not None:
            Xte, yte = read_ucr(test, ECG_FILE_WHAT)
    elif name == "italy_power":
        path = italy_path(spec)
        X, y = read_ucr(path, "ItalyPowerDemand file (config `noisy_rnn.italy_path`)")
        test = official_test(path)
        if test is None:
            raise ValueError(f"ItalyPowerDemand needs its official test split next to {path} (test.csv)")
        Xte, yte = read_ucr(test, "ItalyPowerDemand test file")
    else:
        raise ValueError(f"unknown sequence dataset {name!r}; expected one of {DATASETS}")
    if spec.get("max_train") and spec["max_train"] < len(y):
        if Xte is None:  # a pool: a stratified subset (the archive's files are sorted by class in places)
            from sklearn.model_selection import train_test_split

            keep, _ = train_test_split(
                np.arange(len(y)), train_size=spec["max_train"], stratify=_strata(y), random_state=0
            )
            keep = np.sort(keep)
        else:
            keep = np.arange(spec["max_train"])
        X, y = X[keep], y[keep]
    if Xte is not None and spec.get("max_test"):
        Xte, yte = Xte[: spec["max_test"]], yte[: spec["max_test"]]
    n_classes = int(max(y.max(), yte.max() if yte is not None else 0)) + 1
    return SeqPool(
        X, y, Xte, yte, X.shape[1], 1, n_classes, float(X.min()), float(X.max()), "cv" if Xte is None else "official"
    )


@dataclass(frozen=True)
class Fold:
    """One replica's split: indices into :attr:`SeqPool.X_all` of its training, validation and test sequences."""

    seed: int
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _strata(y: np.ndarray) -> np.ndarray:
    """Stratification labels for a split: classes with a single member (ECG5000's class 5 has 2 in 500) are pooled
    into one stratum, itself merged into the largest class when it still has only one member."""
    vals, counts = np.unique(y, return_counts=True)
    rare = np.isin(y, vals[counts < 2])
    out = np.where(rare, -1, y)
    if rare.sum() == 1:
        out[rare] = vals[np.argmax(counts)]
    return out


def fold_plan(pool: SeqPool, seeds: list[int], spec: dict) -> list[Fold]:
    """The splits of every run seed, in batch order (seed-major).

    ``cv`` pools: repeated stratified ``spec["cv_folds"]``-fold cross-validation, one repeat per seed (shuffled with
    the seed), so every pool sequence is tested exactly once per seed; the validation split is a stratified
    ``spec["val_fraction"]`` of each fold's training part. ``official`` splits: one fold per seed, test = the
    official test split, validation = a stratified ``val_fraction`` of the official training split (seeded).
    Training sets of one batch must have one size (:func:`nnrds.train.fit` minibatches them together), so each is
    cut to the smallest (the dropped sequences, at most one or two, are the last of a shuffled order)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    n = len(pool.y)
    rows: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
    for seed in seeds:
        if pool.split == "cv":
            skf = StratifiedKFold(n_splits=int(spec["cv_folds"]), shuffle=True, random_state=seed)
            with warnings.catch_warnings():  # classes rarer than the folds (ECG5000's 2-member class): expected
                warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
                parts = list(skf.split(np.zeros(n), pool.y))
        else:
            parts = [(np.arange(n), n + np.arange(len(pool.y_test)))]
        for k, (tr, te) in enumerate(parts):
            split = dict(test_size=spec["val_fraction"], random_state=1000 * seed + k)
            try:
                fit_idx, val_idx = train_test_split(tr, stratify=_strata(pool.y[tr]), **split)
            except ValueError:  # fewer validation sequences than classes (smoke-sized pools): unstratified
                fit_idx, val_idx = train_test_split(tr, **split)
            rows.append((seed, k, fit_idx, np.sort(val_idx), np.sort(te)))
    m = min(len(r[2]) for r in rows)
    return [Fold(s, k, tr[:m], va, te) for s, k, tr, va, te in rows]


def load_dataset(name: str, spec: dict, data: dict | None = None, seed: int = 0) -> SeqData:
    """Stratified train/test split (test fraction ``spec["test_fraction"]``, seeded with ``seed``), except for
    ECG5000 when the archive's official test split is available (see :func:`ecg_path`)."""
    from sklearn.model_selection import train_test_split

    if name in ("digits", "digits_permuted"):
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.astype(np.float64) / 16.0
        if name == "digits_permuted":
            X = X[:, np.random.default_rng(spec["permutation_seed"]).permutation(X.shape[1])]
        seq_len = 64
    elif name == "ecg5000":
        path = ecg_path(spec, data)
        X, y = read_ucr(path, ECG_FILE_WHAT)
        seq_len = X.shape[1]
        test = official_test(path)
        if test is not None:  # a full download: use the archive's own train/test split
            Xte, yte = read_ucr(test, ECG_FILE_WHAT)
            return _finish(X, y, Xte, yte, seq_len, spec, "official")
    else:
        raise ValueError(f"unknown sequence dataset {name!r}; expected one of {DATASETS}")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=spec["test_fraction"], stratify=y, random_state=seed)
    return _finish(Xtr, ytr, Xte, yte, seq_len, spec, "stratified")


def _finish(Xtr, ytr, Xte, yte, seq_len, spec, split) -> SeqData:
    if spec.get("max_train"):
        Xtr, ytr = Xtr[: spec["max_train"]], ytr[: spec["max_train"]]
    if spec.get("max_test"):
        Xte, yte = Xte[: spec["max_test"]], yte[: spec["max_test"]]
    n_classes = int(max(ytr.max(), yte.max())) + 1
    return SeqData(Xtr, ytr, Xte, yte, seq_len, 1, n_classes, float(Xtr.min()), float(Xtr.max()), split)
