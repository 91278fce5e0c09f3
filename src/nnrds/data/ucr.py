"""The UCR time-series archive's text format (one series per line, class label first), parsed once for every
reader: the acquisition step (:mod:`nnrds.data.acquire`, which writes ``train.csv`` / ``test.csv``) and the
studies that read either the archive's text files or those CSVs (:func:`read_ucr`)."""

from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np
import pandas as pd

#: names of the archive's test split next to a training file (acquired CSV, or the archive's own text file)
TEST_NAMES = ("test.csv", "ECG5000_TEST.txt")


def parse_ucr(text: str, source: str) -> pd.DataFrame:
    """UCR text format: whitespace separated, class in column 1, then the series. Returns a ``label`` column
    (the archive's class, 1..K) and one column ``x000, x001, ...`` per time step."""
    try:
        a = np.loadtxt(_io.StringIO(text), ndmin=2)
    except ValueError as e:
        raise ValueError(f"{source} is not a UCR text file ({e})") from None
    df = pd.DataFrame(a[:, 1:], columns=[f"x{i:03d}" for i in range(a.shape[1] - 1)])
    df.insert(0, "label", a[:, 0].astype(int))
    return df


def read_ucr(path: str | Path, what: str = "UCR file") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a UCR text file or of a CSV written by the acquisition step (``label`` column):
    X float64 (n, length), y int (n,) with the archive's classes 1..K mapped to 0..K-1. ``what`` names the file
    (and the config keys that point to it) in the error when it does not exist."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    df = pd.read_csv(path) if path.suffix == ".csv" else parse_ucr(path.read_text(), str(path))
    return df.drop(columns="label").to_numpy(np.float64), df["label"].to_numpy(int) - 1


def official_test(train_path: str | Path) -> Path | None:
    """The archive's test split next to a training file, if a full download put it there."""
    train_path = Path(train_path)
    for name in TEST_NAMES:
        p = train_path.with_name(name)
        if p.exists() and p != train_path:
            return p
    return None
