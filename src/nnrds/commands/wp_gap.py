"""Commands of the weight-parameterization generalization-gap study (rules: workflow/rules/wp_gap.smk).

``wp-gap-train``: one dataset x parameterization cell (config ``cell: {dataset, param}``); reads the dataset's
tables from ``--in-dir`` when it has files; writes :data:`CELL_TABLES` to ``--out-dir``.
``wp-gap-summarize``: reads the cells' folders (``--in-dir``), writes :data:`SUMMARY_TABLES` and ``caption.rst``.
"""

from __future__ import annotations

from ..data import regression
from ..studies import wp_gap
from .common import add_commands, read_tables, run_cell_job, write_summary

#: tables of a training cell (besides timings.csv and provenance.json)
CELL_TABLES = ["runs"]
#: tables of the summary
SUMMARY_TABLES = ["runs", "timings", "gap_correlation", "gap_by_parameterization", "claims"]
RUN_KEYS = ["dataset", "parameterization", "depth", "width", "seed"]


def register(sub) -> None:
    add_commands(sub, {"wp-gap-train": _train, "wp-gap-summarize": _summarize})


def _train(args) -> int:
    """train one dataset x parameterization cell of the sweep

    Config: {seed, device, dtype, torch_threads, study, dataset, parameterization, cell: {dataset, param}}"""
    return run_cell_job(args, "wp_gap", wp_gap.run_cell)


def _summarize(args) -> int:
    """concatenate cells; per-seed effects, median gaps, claims table; caption

    Config: {scale, study, datasets}"""
    c = args.config_json
    runs = read_tables(args, "runs", RUN_KEYS)
    per_seed, med, claims = wp_gap.summarize(runs, c["study"])
    notes = {name: regression.DESCRIPTIONS[spec["kind"]] for name, spec in c["datasets"].items()}
    write_summary(
        args,
        "wp_gap/summarize",
        {
            "runs": runs,
            "timings": read_tables(args, "timings"),
            "gap_correlation": per_seed,
            "gap_by_parameterization": med,
            "claims": claims,
        },
        wp_gap.caption(per_seed, med, claims, c["scale"], c["study"], notes),
    )
    return 0
