"""What every study's train-cell and summarize commands share: arguments, timing, atomic table output
and provenance. A study command only says which tables it produces and how to compute them."""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from .. import io
from ..cli import json_arg


def add_cell_args(p, tables: dict[str, str]) -> None:
    """``--config-json``, one output option per table (name -> help), ``--timings`` and ``--provenance``."""
    p.add_argument("--config-json", type=json_arg, required=True,
                   help="validated config slice: {study, seed, device, dtype, torch_threads, ...}")
    for name, help_ in tables.items():
        p.add_argument(f"--{name}", required=True, help=help_)
    p.add_argument("--timings", required=True, help="output CSV of wall times (not byte-reproducible)")
    p.add_argument("--provenance", required=True)


def add_summary_args(p, tables: list[str], config_help: str) -> None:
    """One ``--<table>`` list per per-cell table, plus the cells' timings and provenance records."""
    for name in [*tables, "timings", "provenance"]:
        p.add_argument(f"--{name}", nargs="+", required=True)
    p.add_argument("--config-json", type=json_arg, required=True, help=config_help)
    p.add_argument("--out-dir", required=True)


@contextmanager
def cell_job(args, job: str) -> Iterator[dict]:
    """Run a training cell: fix torch threads, time it, then write the tables the body put into the
    yielded dict (keys = output options, ``timings`` included) and the cell's provenance."""
    import torch

    c = args.config_json
    torch.set_num_threads(c["torch_threads"])
    t0 = time.perf_counter()
    tables: dict[str, pd.DataFrame] = {}
    yield tables
    for name, df in tables.items():
        io.write_table(getattr(args, name), df)
    io.write_json(args.provenance, io.provenance(c, seeds=c["study"]["seeds"], wall_time_s=time.perf_counter() - t0,
                                                 device=tables["timings"]["device"].iloc[0], job=job))


def concat(paths: list[str], sort_by: list[str] | None = None) -> pd.DataFrame:
    df = pd.concat([io.read_table(p) for p in paths], ignore_index=True)
    return df.sort_values(sort_by, kind="stable") if sort_by else df


def write_summary(args, job: str, tables: dict[str, pd.DataFrame], caption: str) -> None:
    """Write ``<out>/<name>.csv`` for every table, ``caption.rst`` and the merged ``provenance.json``."""
    c, out = args.config_json, Path(args.out_dir)
    for name, df in tables.items():
        io.write_table(out / f"{name}.csv", df)
    io.write_text(out / "caption.rst", caption)
    jobs = [json.loads(Path(p).read_text()) for p in args.provenance]
    io.write_json(out / "provenance.json", io.merge_provenance(jobs, c, seeds=c["study"]["seeds"], job=job))
