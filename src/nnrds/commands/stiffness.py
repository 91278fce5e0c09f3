"""Commands of the stiffness study (src/nnrds/studies/stiffness.py; rules: workflow/rules/stiffness.smk).

``stiffness-train``: one dataset x parameterization cell (config ``cell: {dataset, param}``); reads the dataset's
tables from ``--in-dir`` when it has files; writes :data:`CELL_TABLES`, ``timings.csv`` and ``provenance.json`` to
``--out-dir``. ``stiffness-summarize``: reads the cells' folders (``--in-dir``), writes :data:`SUMMARY_TABLES`,
``caption.rst`` and ``provenance.json``.
"""

from __future__ import annotations

from ..data import regression
from ..studies import stiffness
from .common import add_commands, read_tables, run_cell_job, write_summary

#: tables of a training cell (besides timings.csv and provenance.json)
CELL_TABLES = ["runs", "metrics", "eigenvalues"]
#: tables of the summary
SUMMARY_TABLES = [
    "runs",
    "metrics",
    "eigenvalues",
    "timings",
    "claim_a",
    "selected",
    "claim_b",
    "claims",
    "gap_correlation",
    "eigenvalue_panels",
]
RUN_KEYS = ["dataset", "parameterization", "regularizer", "strength", "seed"]


def register(sub) -> None:
    add_commands(sub, {"stiffness-train": _train, "stiffness-summarize": _summarize})


def _train(args) -> int:
    """train one dataset x parameterization cell (none / L2 grid / penalty grid x seeds as one replica batch),
    tracking Jacobian-spectrum metrics

    Config: {seed, device, dtype, torch_threads, study, dataset, parameterization, cell: {dataset, param}}"""
    # the stiffness ratio is NaN by definition when no eigenvalue has Re < 0 (max|Re| / min|Re| over Re < 0)
    nan_ok = {"runs": ["stiffness_ratio", "stiffness_ratio_init"], "metrics": ["value"]}
    return run_cell_job(args, "stiffness", stiffness.run_cell, allow_nonfinite=nan_ok)


def _summarize(args) -> int:
    """concatenate cells; claims (a) and (b) with intervals and verdicts (claims.csv); stiffness-gap correlation,
    eigenvalue panels; caption

    Config: {scale, study, datasets}"""
    c = args.config_json
    study = c["study"]
    runs = read_tables(args, "runs", RUN_KEYS)
    metrics = read_tables(args, "metrics", RUN_KEYS + ["epoch"])
    ca = stiffness.claim_a(runs)
    sel = stiffness.select_strengths(runs)
    cb = stiffness.claim_b(runs, sel)
    claims = stiffness.claims(runs, sel, study)
    notes = {name: regression.DESCRIPTIONS.get(spec["kind"], spec["kind"]) for name, spec in c["datasets"].items()}
    eigs = stiffness.select_eigenvalues(read_tables(args, "eigenvalues"), sel)
    write_summary(
        args,
        "stiffness/summarize",
        {
            "runs": runs,
            "metrics": metrics,
            "eigenvalues": eigs,
            "timings": read_tables(args, "timings"),
            "claim_a": ca,
            "selected": sel,
            "claim_b": cb,
            "claims": claims,
            "gap_correlation": stiffness.gap_correlation(runs, study["primary_metric"]),
            "eigenvalue_panels": stiffness.eigenvalue_panels(eigs, study["parameterizations"][0]),
        },
        stiffness.caption(claims, ca, cb, sel, c["scale"], study, notes),
    )
    return 0
