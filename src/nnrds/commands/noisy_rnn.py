"""Commands of the noisy-RNN regularization study (src/nnrds/studies/noisy_rnn.py)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .. import io
from ..cli import json_arg


def register(sub) -> None:
    p = sub.add_parser("noisy-rnn-train",
                       help="train one dataset x model cell (all seeds and noise levels as replicas) and evaluate "
                            "it under every test-time perturbation")
    p.add_argument("--dataset", required=True, help="digits | digits_permuted | ecg5000")
    p.add_argument("--model", required=True, help="lipschitz | noisy | antisymmetric | lstm")
    p.add_argument("--config-json", type=json_arg, required=True,
                   help="validated config slice: {study, data, seed, device, dtype, torch_threads}")
    p.add_argument("--runs", required=True, help="output CSV, one row per seed x noise level x perturbation x strength")
    p.add_argument("--timings", required=True, help="output CSV of wall times (not byte-reproducible)")
    p.add_argument("--provenance", required=True)
    p.set_defaults(func=_train)

    p = sub.add_parser("noisy-rnn-summarize",
                       help="concatenate cells; mean ± std over seeds; paired noisy-vs-Lipschitz comparison; caption")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--timings", nargs="+", required=True)
    p.add_argument("--provenance", nargs="+", required=True, help="the cells' provenance records")
    p.add_argument("--config-json", type=json_arg, required=True, help="{scale, study}")
    p.add_argument("--out-dir", required=True,
                   help="writes runs.csv, timings.csv, summary.csv, robustness_comparison.csv, caption.rst, "
                        "provenance.json")
    p.set_defaults(func=_summarize)


def _train(args) -> int:
    import torch

    from ..studies import noisy_rnn

    c = args.config_json
    torch.set_num_threads(c["torch_threads"])
    t0 = time.perf_counter()
    runs, timings = noisy_rnn.run_cell(args.dataset, args.model, c["study"], c.get("data"), base_seed=c["seed"],
                                       device=c["device"], dtype=c["dtype"])
    io.write_table(args.runs, runs)
    io.write_table(args.timings, timings)
    io.write_json(args.provenance, io.provenance(c, seeds=c["study"]["seeds"], wall_time_s=time.perf_counter() - t0,
                                                 device=timings["device"].iloc[0],
                                                 job=f"noisy_rnn/{args.dataset}/{args.model}"))
    return 0


def _summarize(args) -> int:
    from ..studies import noisy_rnn

    c = args.config_json
    runs = pd.concat([io.read_table(p) for p in args.runs], ignore_index=True)
    runs = runs.sort_values(["dataset", "model", "variant", "perturbation", "strength", "seed"], kind="stable")
    timings = pd.concat([io.read_table(p) for p in args.timings], ignore_index=True)
    summary = noisy_rnn.summarize(runs)
    comp = noisy_rnn.compare(runs)
    out = args.out_dir.rstrip("/")
    io.write_table(f"{out}/runs.csv", runs)
    io.write_table(f"{out}/timings.csv", timings)
    io.write_table(f"{out}/summary.csv", summary)
    io.write_table(f"{out}/robustness_comparison.csv", comp)
    io.write_text(f"{out}/caption.rst", noisy_rnn.caption(runs, comp, c["scale"], c["study"]))
    jobs = [json.loads(Path(p).read_text()) for p in args.provenance]
    io.write_json(f"{out}/provenance.json",
                  io.merge_provenance(jobs, c, seeds=c["study"]["seeds"], job="noisy_rnn/summarize"))
    return 0
