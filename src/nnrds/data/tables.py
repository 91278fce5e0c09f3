"""The ensemble table layout (``ptrain/ytrain/ptest/ytest.csv`` + ``metadata.json``) and its loader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import store

TABLES = ("ptrain.csv", "ytrain.csv", "ptest.csv", "ytest.csv")


def write_ensemble(
    out_dir: str | os.PathLike,
    ptrain: pd.DataFrame,
    ytrain: pd.DataFrame,
    ptest: pd.DataFrame,
    ytest: pd.DataFrame,
    metadata: dict,
) -> None:
    out = Path(out_dir)
    for name, df in zip(TABLES, (ptrain, ytrain, ptest, ytest)):
        store.write_table(out / name, df)
    store.write_json(out / "metadata.json", metadata)


def load_table_dataset(dir: str | os.PathLike):
    """``(Xtrain, Ytrain, Xtest, Ytest, input_names, output_names)`` from an ensemble folder (float64 arrays)."""
    d = Path(dir)
    missing = [n for n in TABLES if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"ensemble folder {d} lacks {', '.join(missing)}; build it first, e.g. "
            f"`snakemake {d / 'ytrain.csv'}` (rules in workflow/rules/data.smk)"
        )
    pt, yt, pe, ye = (pd.read_csv(d / n) for n in TABLES)
    if list(pt.columns) != list(pe.columns) or list(yt.columns) != list(ye.columns):
        raise ValueError(f"ensemble folder {d}: train and test tables have different columns")
    if len(pt) != len(yt) or len(pe) != len(ye):
        raise ValueError(f"ensemble folder {d}: parameter and output tables differ in length")
    f = lambda df: df.to_numpy(dtype=np.float64)  # noqa: E731
    return f(pt), f(yt), f(pe), f(ye), list(pt.columns), list(yt.columns)


def read_metadata(dir: str | os.PathLike) -> dict:
    return json.loads((Path(dir) / "metadata.json").read_text())
