"""Commands of the continuous-in-depth study (rules: workflow/rules/continuous_depth.smk).

``continuous-depth-oscillator``: one training scheme (config ``cell: {scheme}``): every system x dt x seed trains
as one replica batch, then the convergence sweep; writes :data:`OSC_TABLES` to ``--out-dir``.
``continuous-depth-wp``: one parameterization (config ``cell: {param}``) trained on ``study.wp.dataset`` (tables from
``--in-dir`` when the dataset has files) and evaluated at other depths; writes :data:`WP_TABLES`.
``continuous-depth-summarize``: reads every cell folder (``--in-dir``), writes :data:`SUMMARY_TABLES` and
``caption.rst``.
"""

from __future__ import annotations

import pandas as pd

from ..data import regression
from ..studies import continuous_depth as cd
from .common import add_commands, concat, present_tables, run_cell_job, write_summary

#: tables of an oscillator cell and of a WP cell (besides timings.csv and provenance.json)
OSC_TABLES = ["runs", "convergence", "reference"]
WP_TABLES = ["wp_runs"]
#: tables of the summary
SUMMARY_TABLES = [
    "runs",
    "convergence",
    "reference",
    "wp_runs",
    "timings",
    "models",
    "slopes",
    "orders",
    "sanity",
    "wp_summary",
    "claims",
]


def register(sub) -> None:
    add_commands(
        sub,
        {
            "continuous-depth-oscillator": _oscillator,
            "continuous-depth-wp": _wp,
            "continuous-depth-summarize": _summarize,
        },
    )


def _part_job(args, part: str, run_cell, **kw) -> int:
    """A cell of one part (``oscillator`` or ``wp``): the part's settings and dtype, its job name and config key."""
    cfg = cd.part_config(args.config_json["study"], part)
    return run_cell_job(
        args, f"{cd.STUDY}/{part}", run_cell, config_key=f"{cd.STUDY}.{part}.lr", study=cfg, dtype=cfg["dtype"], **kw
    )


def _oscillator(args) -> int:
    """train G with one scheme (systems x dt's x seeds as one replica batch); convergence sweep

    Config: {seed, device, dtype, torch_threads, study, cell: {scheme}}"""
    return _part_job(args, "oscillator", cd.run_oscillator_cell)


def _wp(args) -> int:
    """train one ResNet parameterization at depth L; evaluate it at depths L'

    Config: {seed, device, dtype, torch_threads, study, dataset, parameterization, cell: {param}}"""
    # change_vs_next is NaN by definition at the deepest evaluation (there is no deeper one)
    return _part_job(args, "wp", cd.run_wp_cell, allow_nonfinite={"wp_runs": ["change_vs_next"]})


def _read(args, name: str, expected: int, sort_by: list[str]) -> pd.DataFrame:
    """``<name>.csv`` of the cell folders that hold it (oscillator and WP cells write different tables); exactly
    ``expected`` folders must hold it."""
    paths = present_tables(args, f"{name}.csv")
    if len(paths) != expected:
        raise ValueError(
            f"continuous-depth-summarize: expected {expected} cell folders with {name}.csv among "
            f"--in-dir, found {len(paths)}"
        )
    return concat([str(p) for p in paths], sort_by)


def _summarize(args) -> int:
    """concatenate cells; per-model errors and slopes, WP depth convergence, claims; caption

    Config: {scale, study, dataset: the WP dataset's spec}"""
    c = args.config_json
    study = c["study"]
    n_osc, n_wp = len(study["oscillator"]["schemes"]), len(study["wp"]["parameterizations"])
    keys = ["system", "scheme", "train_dt", "seed"]
    runs = _read(args, "runs", n_osc, keys)
    conv = _read(args, "convergence", n_osc, keys + ["h_over_dt"])
    ref = _read(args, "reference", n_osc, ["system", "scheme", "h"])
    wp_runs = _read(args, "wp_runs", n_wp, ["parameterization", "interp", "seed", "depth_eval"])
    tables = {
        "runs": runs,
        "convergence": conv,
        "reference": ref,
        "wp_runs": wp_runs,
        "timings": _read(args, "timings", n_osc + n_wp, ["part", "cell"]),
        **cd.summarize(runs, conv, ref, wp_runs, study),
    }
    write_summary(
        args,
        f"{cd.STUDY}/summarize",
        {k: tables[k] for k in SUMMARY_TABLES},
        cd.caption(tables, c["scale"], study, regression.DESCRIPTIONS.get(c["dataset"]["kind"], "")),
    )
    return 0
