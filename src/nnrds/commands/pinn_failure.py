"""Commands of the PINN failure-mode study (rules: workflow/rules/pinn_failure.smk).

``pinn-failure-train``: one (problem, training mode) cell (config ``cell: {problem, mode}``); every coefficient x
seed of the cell trains as one batch of replicas; writes :data:`CELL_TABLES` to ``--out-dir``.
``pinn-failure-summarize``: reads the cells' folders (``--in-dir``), writes :data:`SUMMARY_TABLES` and
``caption.rst``.
"""

from __future__ import annotations

from .. import store
from ..studies import pinn_failure
from .common import add_commands, read_tables, run_cell_job, write_summary

#: tables of a training cell (besides timings.csv and provenance.json)
CELL_TABLES = ["runs", "stages", "budget", "history", "fields", "landscape", "landscape_stats", "replica_timings"]
#: tables of the summary
SUMMARY_TABLES = [
    "runs",
    "timings",
    "replica_timings",
    "stages",
    "causal_rounds",
    "budget",
    "budget_effects",
    "paper_comparison",
    "history",
    "fields",
    "landscape",
    "landscape_stats",
    "seed_effects",
    "error_summary",
    "landscape_summary",
    "heatmap_cases",
    "claims",
]
RUN_KEYS = ["problem", "mode", "arm", "coef", "seed"]


def register(sub) -> None:
    add_commands(
        sub, {"pinn-failure-train": _train, "pinn-failure-summarize": _summarize, "pinn-failure-bench": _bench}
    )


def _train(args) -> int:
    """train one problem x training-mode cell (all coefficients and seeds)

    Config: {seed, device, dtype, torch_threads, study, cell: {problem, mode}}"""
    return run_cell_job(args, "pinn_failure", pinn_failure.run_cell, config_key="pinn_failure.lbfgs")


def _summarize(args) -> int:
    """concatenate cells; per-seed effects, claims table; caption

    Config: {scale, study, reference (path of the paper's table, optional)}"""
    import pandas as pd

    c = args.config_json
    runs = read_tables(args, "runs", RUN_KEYS)
    order = {p: i for i, p in enumerate(c["study"]["problems"])}
    runs = runs.sort_values(
        ["problem", "arm", "mode", "coef", "seed"],
        key=lambda s: s.map(order) if s.name == "problem" else s,
        kind="stable",
    ).reset_index(drop=True)
    timings = read_tables(args, "timings")
    lstats = read_tables(args, "landscape_stats", ["problem", "mode", "coef", "seed"])
    budget = read_tables(args, "budget", RUN_KEYS)
    seed_table, summary, lsum, claims = pinn_failure.summarize(runs, lstats, c["study"], budget)
    beff = pinn_failure.budget_effects(budget, c["study"])
    ref = pd.read_csv(c["reference"]) if c.get("reference") else pd.DataFrame(columns=["problem", "mode"])
    comparison = pinn_failure.paper_comparison(runs, ref)
    stages = read_tables(args, "stages")
    causal = pinn_failure.causal_rounds(stages, c["study"])
    write_summary(
        args,
        "pinn_failure/summarize",
        {
            "runs": runs,
            "timings": timings,
            "replica_timings": read_tables(args, "replica_timings"),
            "stages": stages,
            "causal_rounds": causal,
            "budget": budget,
            "budget_effects": beff,
            "paper_comparison": comparison,
            "history": read_tables(args, "history"),
            "fields": read_tables(args, "fields"),
            "landscape": read_tables(args, "landscape"),
            "landscape_stats": lstats,
            "seed_effects": seed_table,
            "error_summary": summary,
            "landscape_summary": lsum,
            "heatmap_cases": pinn_failure.heatmap_cases(runs[runs.arm == "main"]),
            "claims": claims,
        },
        pinn_failure.caption(runs, summary, lsum, claims, timings, c["scale"], c["study"], beff, comparison, causal),
    )
    return 0


def _bench(args) -> int:
    """speed-up of replica batching over a loop (benchmarks/pinn_batching.md)

    Config: overrides of nnrds.studies.pinn_failure.BENCH_DEFAULTS"""
    from pathlib import Path

    table = pinn_failure.batching_benchmark(args.config_json)
    store.write_table(Path(args.out_dir) / "bench.csv", table)
    print(table.to_string(index=False))
    return 0
