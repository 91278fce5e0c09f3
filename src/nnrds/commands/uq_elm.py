"""Commands of the ELM surrogate UQ study (rules: workflow/rules/uq_elm.smk) and the NUTS speed benchmark.

Every command takes ``--config-json`` (the job's config slice, including its identity), ``--in-dir`` (folders of
fixed-name tables given by the rule) and ``--out-dir`` (the one folder it writes):

* ``uq-elm-fit``: one fit job (config ``job``: an architecture name or ``extrapolation``); reads the ELM ensemble
  folder; writes :data:`JOB_TABLES`.
* ``uq-elm-depth``: one cell of the NUTS feasibility sweep over depth (config ``n_train``); writes ``depth_runs``.
* ``uq-elm-truth``: the simulator along the 1-D slices; writes ``slices_truth``.
* ``uq-elm-summarize``: reads the fit jobs' and depth cells' folders; writes :data:`SUMMARY_TABLES` (among them
  ``nuts_diagnostics``: convergence per NUTS posterior, and ``depth_efficiency``: the depth sweep per
  parameterization and depth) and ``caption.rst``.
* ``uq-bench``: NUTS ESS per second / per gradient evaluation, vanilla Pyro vs nnrds vs NumPyro.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import store
from .common import add_commands, cell_job, cell_of, in_tables, run_cell_job

JOB_TABLES = ("metrics", "calibration", "predictions", "slices", "trace", "timings")
DEPTH_TABLES = ("depth_runs", "depth_timings")
SUMMARY_TABLES = (*JOB_TABLES, "coverage_crps", "claims", "nuts_diagnostics", "depth_efficiency", *DEPTH_TABLES)


def register(sub) -> None:
    add_commands(
        sub,
        {
            "uq-elm-fit": _fit,
            "uq-elm-depth": _depth,
            "uq-elm-truth": _truth,
            "uq-elm-summarize": _summarize,
            "uq-bench": _bench,
        },
    )


def _fit(args) -> int:
    """ELM surrogate UQ: every method for one architecture (or extrapolation)

    Config: {job, study, seed, device, dtype, torch_threads}; --in-dir: the ELM ensemble folder"""
    from ..studies import uq_elm

    job = args.config_json["job"]
    # loops name this study and job when they diverge (nnrds.uq.inference sets the key)
    return run_cell_job(
        args,
        "uq_elm",
        uq_elm.run_job,
        config_key="uq_elm",
        allow_nonfinite=uq_elm.NONFINITE_BY_DESIGN,
        unchecked_rows=uq_elm.UNCHECKED_ROWS,
        id={"job": job},
    )


def _depth(args) -> int:
    """ELM surrogate UQ: NUTS feasibility over depth for one training size

    Config: {n_train, study, seed, torch_threads}; --in-dir: the ELM ensemble folder"""
    from ..studies import uq_elm

    n = int(args.config_json["n_train"])
    with cell_job(args, f"uq_elm/depth_n{n}", config_key="uq_elm") as out:
        out.update(uq_elm.run_depth_cell(cell_of(args, id={"n_train": n})))
    return 0


def _truth(args) -> int:
    """the simulator along the 1-D slices of the ELM UQ study

    Config: {elm: data.elm, slices: uq_elm.slices}; --in-dir: the ELM ensemble folder"""
    from ..data import read_metadata
    from ..studies import uq_elm

    c = args.config_json
    store.write_table(
        Path(args.out_dir) / "slices_truth.csv",
        uq_elm.simulate_slices(read_metadata(args.in_dir[0]), c["elm"], c["slices"]),
    )
    return 0


def _concat(args, name: str) -> pd.DataFrame:
    frames = [store.read_table(p) for p in in_tables(args, f"{name}.csv") if p.exists() and p.stat().st_size > 1]
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _summarize(args) -> int:
    """concatenate the fit jobs and depth cells; caption, claims

    Config: {scale, seed, study}; --in-dir: the fit jobs' and depth cells' folders"""
    from ..studies import uq_elm

    c = args.config_json
    out = Path(args.out_dir)
    # one canonical order (by folder name), whatever order the workflow listed the folders in: the summary tables
    # are byte-identical between a local and a cluster run
    args.in_dir = sorted(args.in_dir, key=lambda d: Path(d).name)
    tables = {k: _concat(args, k) for k in (*JOB_TABLES, *DEPTH_TABLES)}
    m = tables["metrics"]
    outs = c["study"]["slices"]["outputs"]
    if len(tables["slices"]):  # the slice figure draws the configured QoIs
        tables["slices"] = tables["slices"][tables["slices"].output.isin(outs)].reset_index(drop=True)
    cols = [
        x
        for x in (
            "job",
            "architecture",
            "n_params",
            "method",
            "setting",
            "status",
            "rmse",
            "nll",
            "crps",
            "cov50",
            "cov90",
            "cov95",
            "width90",
            "pred_std",
            "rhat_invariant_max",
            "theta_rhat_max",
            "ess_bulk_invariant_min",
            "divergences",
            "flagged",
            "note",
        )
        if x in m.columns
    ]
    tables["coverage_crps"] = m[cols]
    tables["claims"] = uq_elm.claims(m, c["scale"], c["study"], tables["depth_runs"])
    tables["nuts_diagnostics"] = uq_elm.nuts_diagnostics(m)
    tables["depth_efficiency"] = uq_elm.depth_efficiency(tables["depth_runs"])
    for k, df in tables.items():
        store.write_table(out / f"{k}.csv", df)
    store.write_text(out / "caption.rst", uq_elm.caption(m, c["scale"], c["study"], tables["depth_runs"]))
    jobs = [json.loads(p.read_text()) for p in in_tables(args, "provenance.json")]
    store.write_json(
        out / "provenance.json", store.merge_provenance(jobs, c, seeds=c.get("seed"), job="uq_elm/summarize")
    )
    return 0


def _bench(args) -> int:
    """NUTS ESS/s on the ELM WP-ResNet posterior: vanilla Pyro vs nnrds vs NumPyro

    Config: overrides of nnrds.uq.bench.DEFAULTS (n_train, width, depth, warmup, samples, engines, ...); --in-dir:
    the ELM ensemble folder. ``"mode": "equal"``: the equal-settings comparison of the vectorized sampler and
    NumPyro (overrides of nnrds.uq.bench.EQUAL_DEFAULTS; tables equal_settings.csv / .json)"""
    from ..uq import bench

    c = dict(args.config_json)
    out = Path(args.out_dir)
    if c.pop("mode", "engines") == "equal":  # equal settings (nnrds.uq.bench.equal_settings)
        res = bench.equal_settings(args.in_dir[0], c)
        store.write_table(out / "equal_settings.csv", res["table"])
        store.write_json(out / "equal_settings.json", res["meta"])
        print(res["table"].to_string(index=False))
        print(res["meta"])
        return 0
    engines = c.pop("engines", ["vanilla", "nnrds", "numpyro"])
    res = bench.run(args.in_dir[0], c, engines=engines)
    store.write_table(out / "bench.csv", res["table"])
    store.write_table(out / "agreement.csv", res["agreement"])
    store.write_json(out / "bench.json", res["meta"])
    print(res["table"].to_string(index=False))
    print(res["agreement"].describe().to_string())
    return 0
