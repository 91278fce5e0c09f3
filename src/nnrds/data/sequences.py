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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ucr import official_test, read_ucr

DATASETS = ("digits", "digits_permuted", "ecg5000")

DESCRIPTIONS = {
    "digits": "scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes) read pixel by pixel "
    "as length-64 sequences, pixels scaled to [0, 1]; stratified train/test split",
    "digits_permuted": "the same digits with one fixed random permutation of the 64 pixels (seed `permutation_seed`)",
    "ecg5000": "UCR ECG5000 heartbeats (length 140, 5 classes, z-normalized by the archive); only the "
    "archive's 500-sequence training split is in the offline mirror, so it is split stratified "
    "into this study's train/test sets (not the official split; with a full download of the archive "
    "the official 500/4,500 split is used and the table's `split` column says `official`)",
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
