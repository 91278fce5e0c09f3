"""Commands of the weight-parameterization generalization-gap study (rules: workflow/rules/wp_gap.smk).

``wp-gap-train``: one dataset x parameterization cell (config ``cell: {dataset, param}``); reads the dataset's
tables from ``--in-dir`` when it has files; writes :data:`CELL_TABLES` to ``--out-dir``.
``wp-gap-landscape``: the loss-landscape job (config ``study.landscape``, ``parameterizations`` of its nets); reads the
dataset like a cell; writes :data:`LANDSCAPE_TABLES`.
``wp-gap-summarize``: reads the cells' folders and the landscape folder when there is one (``--in-dir``; told apart
by their files), writes :data:`SUMMARY_TABLES` and ``caption.rst``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..data import regression
from ..studies import wp_gap
from .common import add_commands, read_tables, run_cell_job, write_summary

#: tables of a training cell (besides timings.csv and provenance.json)
CELL_TABLES = ["runs"]
#: tables of the summary
SUMMARY_TABLES = [
    "runs",
    "timings",
    "gap_correlation",
    "gap_by_parameterization",
    "claims",
    "landscape",
    "landscape_stats",
    "landscape_effects",
]
#: tables of the landscape job (besides timings.csv and provenance.json)
LANDSCAPE_TABLES = ["landscape", "landscape_stats"]
RUN_KEYS = ["dataset", "parameterization", "depth", "width", "seed"]


def register(sub) -> None:
    add_commands(sub, {"wp-gap-train": _train, "wp-gap-landscape": _landscape, "wp-gap-summarize": _summarize})


def _train(args) -> int:
    """train one dataset x parameterization cell of the sweep

    Config: {seed, device, dtype, torch_threads, study, dataset, parameterization, cell: {dataset, param}}"""
    return run_cell_job(args, "wp_gap", wp_gap.run_cell)


def _landscape(args) -> int:
    """WP-ResNets vs MLP: 2-D loss slices and their smoothness statistics

    Config: {seed, device, dtype, torch_threads, study, dataset, parameterizations}"""
    pspecs = args.config_json["parameterizations"]
    return run_cell_job(args, "wp_gap/landscape", lambda cell: wp_gap.run_landscape(cell, pspecs))


def _summarize(args) -> int:
    """concatenate cells; per-seed effects, median gaps, claims table; caption

    Config: {scale, study, datasets}"""
    c = args.config_json
    land_dirs = [d for d in args.in_dir if (Path(d) / "landscape_stats.csv").exists()]
    cells = argparse.Namespace(**{**vars(args), "in_dir": [d for d in args.in_dir if d not in land_dirs]})
    runs = read_tables(cells, "runs", RUN_KEYS)
    land = argparse.Namespace(**{**vars(args), "in_dir": land_dirs})
    surfaces = read_tables(land, "landscape") if land_dirs else pd.DataFrame(columns=wp_gap.LANDSCAPE_COLUMNS)
    lstats = read_tables(land, "landscape_stats") if land_dirs else None
    per_seed, med, claims = wp_gap.summarize(runs, c["study"], lstats)
    effects = (
        wp_gap.landscape_effects(lstats, wp_gap.landscape_config(c["study"]))
        if lstats is not None
        else pd.DataFrame(columns=wp_gap.LANDSCAPE_EFFECT_COLUMNS)
    )
    notes = {name: regression.DESCRIPTIONS[spec["kind"]] for name, spec in c["datasets"].items()}
    write_summary(
        args,
        "wp_gap/summarize",
        {
            "runs": runs,
            "timings": read_tables(cells, "timings"),
            "gap_correlation": per_seed,
            "gap_by_parameterization": med,
            "claims": claims,
            "landscape": surfaces,
            "landscape_stats": lstats if lstats is not None else pd.DataFrame(columns=wp_gap.LANDSCAPE_STAT_COLUMNS),
            "landscape_effects": effects,
        },
        wp_gap.caption(per_seed, med, claims, c["scale"], c["study"], notes, effects),
    )
    return 0
