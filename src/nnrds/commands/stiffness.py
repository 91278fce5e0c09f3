"""Commands of the stiffness study (src/nnrds/studies/stiffness.py)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .. import datasets, io
from ..cli import json_arg
from ..studies import stiffness


def register(sub) -> None:
    p = sub.add_parser("stiffness-train",
                       help="train one dataset x parameterization cell (none / L2 grid / penalty grid x seeds as one "
                            "replica batch), tracking Jacobian-spectrum metrics")
    p.add_argument("--dataset", required=True)
    p.add_argument("--param", required=True)
    p.add_argument("--config-json", type=json_arg, required=True,
                   help="validated config slice: {study, dataset, parameterization, seed, device, dtype, torch_threads}")
    p.add_argument("--runs", required=True, help="output CSV, one row per run (final errors and stiffness)")
    p.add_argument("--metrics", required=True, help="output CSV, tidy per-epoch metrics")
    p.add_argument("--eigenvalues", required=True, help="output CSV, eigenvalues of the first seed's networks (trained; unregularized also at init)")
    p.add_argument("--timings", required=True, help="output CSV of wall times (not byte-reproducible)")
    p.add_argument("--provenance", required=True)
    p.set_defaults(func=_train)

    p = sub.add_parser("stiffness-summarize", help="concatenate cells; claims (a) and (b) with numbers; caption")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--eigenvalues", nargs="+", required=True)
    p.add_argument("--timings", nargs="+", required=True)
    p.add_argument("--provenance", nargs="+", required=True, help="the cells' provenance records")
    p.add_argument("--config-json", type=json_arg, required=True, help="{scale, study, datasets}")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_summarize)


def _train(args) -> int:
    import torch

    c = args.config_json
    torch.set_num_threads(c["torch_threads"])
    t0 = time.perf_counter()
    runs, metrics, eigs, timings = stiffness.run_cell(args.dataset, c["dataset"], args.param, c["parameterization"],
                                                      c["study"], base_seed=c["seed"], device=c["device"],
                                                      dtype=c["dtype"])
    io.write_table(args.runs, runs)
    io.write_table(args.metrics, metrics)
    io.write_table(args.eigenvalues, eigs)
    io.write_table(args.timings, timings)
    io.write_json(args.provenance, io.provenance(c, seeds=c["study"]["seeds"], wall_time_s=time.perf_counter() - t0,
                                                 device=timings["device"].iloc[0],
                                                 job=f"stiffness/{args.dataset}/{args.param}"))
    return 0


def _cat(paths: list[str]) -> pd.DataFrame:
    return pd.concat([io.read_table(p) for p in paths], ignore_index=True)


def _summarize(args) -> int:
    c = args.config_json
    study = c["study"]
    keys = ["dataset", "parameterization"]
    runs = _cat(args.runs).sort_values(keys + ["regularizer", "strength", "seed"], kind="stable")
    metrics = _cat(args.metrics).sort_values(keys + ["regularizer", "strength", "seed", "epoch"], kind="stable")
    eigs = _cat(args.eigenvalues)
    timings = _cat(args.timings)
    ca = stiffness.claim_a(runs)
    sel = stiffness.select_strengths(runs)
    cb = stiffness.claim_b(runs, sel)
    ver = stiffness.verdicts(ca, cb, study["primary_metric"])
    out = args.out_dir.rstrip("/")
    io.write_table(f"{out}/runs.csv", runs)
    io.write_table(f"{out}/metrics.csv", metrics)
    io.write_table(f"{out}/eigenvalues.csv", stiffness.select_eigenvalues(eigs, sel))
    io.write_table(f"{out}/timings.csv", timings)
    io.write_table(f"{out}/claim_a.csv", ca)
    io.write_table(f"{out}/selected.csv", sel)
    io.write_table(f"{out}/claim_b.csv", cb)
    io.write_table(f"{out}/claims.csv", ver)
    notes = {name: datasets.DESCRIPTIONS.get(spec["kind"], spec["kind"]) for name, spec in c["datasets"].items()}
    io.write_text(f"{out}/caption.rst", stiffness.caption(ver, ca, sel, c["scale"], study, notes))
    jobs = [json.loads(Path(p).read_text()) for p in args.provenance]
    io.write_json(f"{out}/provenance.json", io.merge_provenance(jobs, c, seeds=study["seeds"], job="stiffness/summarize"))
    return 0
