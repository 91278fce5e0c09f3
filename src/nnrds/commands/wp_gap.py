"""Commands of the weight-parameterization generalization-gap study."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .. import datasets, io
from ..cli import json_arg
from ..studies import wp_gap


def register(sub) -> None:
    p = sub.add_parser("wp-gap-train", help="train one dataset x parameterization cell of the sweep")
    p.add_argument("--dataset", required=True)
    p.add_argument("--param", required=True)
    p.add_argument("--config-json", type=json_arg, required=True,
                   help="validated config slice: {study, dataset, parameterization, seed, device, dtype, torch_threads}")
    p.add_argument("--runs", required=True, help="output CSV, one row per run")
    p.add_argument("--timings", required=True, help="output CSV of wall times (not byte-reproducible)")
    p.add_argument("--provenance", required=True)
    p.set_defaults(func=_train)

    p = sub.add_parser("wp-gap-summarize", help="concatenate cells; rank correlation and median gaps; caption")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--timings", nargs="+", required=True)
    p.add_argument("--provenance", nargs="+", required=True, help="the cells' provenance records")
    p.add_argument("--config-json", type=json_arg, required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_summarize)


def _train(args) -> int:
    import torch

    c = args.config_json
    torch.set_num_threads(c["torch_threads"])
    t0 = time.perf_counter()
    runs, timings = wp_gap.run_cell(args.dataset, c["dataset"], args.param, c["parameterization"], c["study"],
                                    base_seed=c["seed"], device=c["device"], dtype=c["dtype"])
    io.write_table(args.runs, runs)
    io.write_table(args.timings, timings)
    io.write_json(args.provenance, io.provenance(c, seeds=c["study"]["seeds"], wall_time_s=time.perf_counter() - t0,
                                                 device=timings["device"].iloc[0],
                                                 job=f"wp_gap/{args.dataset}/{args.param}"))
    return 0


def _summarize(args) -> int:
    c = args.config_json
    runs = pd.concat([io.read_table(p) for p in args.runs], ignore_index=True)
    runs = runs.sort_values(["dataset", "parameterization", "depth", "width", "seed"], kind="stable")
    timings = pd.concat([io.read_table(p) for p in args.timings], ignore_index=True)
    corr, med = wp_gap.summarize(runs)
    out = args.out_dir.rstrip("/")
    io.write_table(f"{out}/runs.csv", runs)
    io.write_table(f"{out}/timings.csv", timings)
    io.write_table(f"{out}/gap_correlation.csv", corr)
    io.write_table(f"{out}/gap_by_parameterization.csv", med)
    notes = {name: datasets.DESCRIPTIONS[spec["kind"]] for name, spec in c["datasets"].items()}
    io.write_text(f"{out}/caption.rst", wp_gap.caption(corr, med, c["scale"], c["study"], notes))
    jobs = [json.loads(Path(p).read_text()) for p in args.provenance]
    io.write_json(f"{out}/provenance.json", io.merge_provenance(jobs, c, seeds=c["study"]["seeds"], job="wp_gap/summarize"))
    return 0
