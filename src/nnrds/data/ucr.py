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


def parse_ts(text: str, source: str) -> pd.DataFrame:
    """The sktime / aeon ``.ts`` text format of a univariate, equal-length UCR set: header lines starting with ``#``
    or ``@`` (up to ``@data``), then one series per line, comma-separated values, a colon, the class label. Returns
    the same table as :func:`parse_ucr` (``label``: the archive's integer class, then ``x000, x001, ...``)."""
    rows, labels, in_data = [], [], False
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            in_data = in_data or line.lower().startswith("@data")
            continue
        if not in_data:
            raise ValueError(f"{source} line {i}: data before the @data header")
        values, sep, label = line.rpartition(":")
        if not sep or ":" in values:
            raise ValueError(f"{source} line {i}: expected one univariate series 'v1,v2,...:label'")
        try:
            rows.append([float(v) for v in values.split(",")])
            labels.append(int(float(label)))
        except ValueError as e:
            raise ValueError(f"{source} line {i}: {e}") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"{source} holds no equal-length series")
    df = pd.DataFrame(np.asarray(rows), columns=[f"x{i:03d}" for i in range(len(rows[0]))])
    df.insert(0, "label", np.asarray(labels, dtype=int))
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
