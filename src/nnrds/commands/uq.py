"""Commands of the Bayesian UQ layer: the ELM surrogate UQ study and the NUTS speed benchmark."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pandas as pd

from .. import io
from ..cli import json_arg

JOB_TABLES = ("metrics", "calibration", "predictions", "slices", "trace", "timings")


def register(sub) -> None:
    p = sub.add_parser("uq-elm-fit", help="ELM surrogate UQ: every method for one architecture (or extrapolation)")
    p.add_argument("--job", required=True, help="an architecture name of uq_elm.architectures, or 'extrapolation'")
    p.add_argument("--ensemble-dir", required=True)
    p.add_argument("--config-json", type=json_arg, required=True, help="{study, seed, device, dtype, torch_threads}")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_fit)

    p = sub.add_parser("uq-elm-truth", help="the simulator along the 1-D slices of the ELM UQ study")
    p.add_argument("--ensemble-dir", required=True)
    p.add_argument("--config-json", type=json_arg, required=True, help="{elm: data.elm, slices: uq_elm.slices}")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_truth)

    p = sub.add_parser("uq-elm-summarize", help="concatenate the fit jobs; caption with coverage/CRPS and flags")
    p.add_argument("--job-dirs", nargs="+", required=True)
    p.add_argument("--config-json", type=json_arg, required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_summarize)

    p = sub.add_parser("uq-bench", help="NUTS ESS/s on the ELM WP-ResNet posterior: vanilla Pyro vs nnrds vs NumPyro")
    p.add_argument("--ensemble-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--config-json", type=json_arg, default={},
                   help="overrides of nnrds.uq.bench.DEFAULTS (n_train, width, depth, warmup, samples, ...)")
    p.add_argument("--engines", nargs="+", default=["vanilla", "nnrds", "numpyro"])
    p.set_defaults(func=_bench)


def _fit(args) -> int:
    import torch

    from ..studies import uq_elm

    from .. import guards

    c = args.config_json
    torch.set_num_threads(c["torch_threads"])
    t0 = time.perf_counter()
    where = guards.Where(study="uq_elm", cell=args.job, config_key="uq_elm")
    job_ctx = guards.job(where) if hasattr(guards, "job") else contextlib.nullcontext()
    with job_ctx:  # loops name this study and job when they diverge (nnrds.uq.inference sets the method's key)
        res = uq_elm.run_job(args.job, args.ensemble_dir, c["study"], base_seed=c["seed"])
    out = Path(args.out_dir)
    for k in JOB_TABLES:
        io.write_table(out / f"{k}.csv", res[k])
    io.write_json(out / "provenance.json", io.provenance(c, seeds=c["seed"], wall_time_s=time.perf_counter() - t0,
                                                       job=f"uq_elm/{args.job}"))
    return 0


def _truth(args) -> int:
    from ..data import read_metadata
    from ..studies import uq_elm

    c = args.config_json
    io.write_table(args.out, uq_elm.simulate_slices(read_metadata(args.ensemble_dir), c["elm"], c["slices"]))
    return 0


def _summarize(args) -> int:
    from ..studies import uq_elm

    c = args.config_json
    out = Path(args.out_dir)
    # one canonical job order (by folder name), whatever order the workflow listed the folders in: the
    # summary tables are byte-identical between a local and a cluster run
    args.job_dirs = sorted(args.job_dirs, key=lambda d: Path(d).name)
    for k in JOB_TABLES:
        frames = [io.read_table(Path(d) / f"{k}.csv") for d in args.job_dirs
                  if (Path(d) / f"{k}.csv").stat().st_size > 1]
        frames = [f for f in frames if len(f.columns)]
        io.write_table(out / f"{k}.csv", pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
    m = io.read_table(out / "metrics.csv")
    cols = [x for x in ("job", "architecture", "n_params", "method", "setting", "status", "rmse", "nll", "crps",
                        "cov50", "cov90", "cov95", "width90", "pred_std", "rhat_invariant_max",
                        "theta_rhat_max", "ess_bulk_invariant_min", "divergences", "flagged", "note") if x in m.columns]
    io.write_table(out / "coverage_crps.csv", m[cols])
    io.write_text(out / "caption.rst", uq_elm.caption(m, c["scale"], c["study"]))
    io.write_table(out / "claims.csv", uq_elm.claims(m, c["scale"], c["study"]))
    jobs = [json.loads((Path(d) / "provenance.json").read_text()) for d in args.job_dirs]
    io.write_json(out / "provenance.json", io.merge_provenance(jobs, c, seeds=c.get("seed"), job="uq_elm/summarize"))
    return 0


def _bench(args) -> int:
    from ..uq import bench

    res = bench.run(args.ensemble_dir, args.config_json, engines=args.engines)
    out = Path(args.out_dir)
    io.write_table(out / "bench.csv", res["table"])
    io.write_table(out / "agreement.csv", res["agreement"])
    io.write_json(out / "bench.json", res["meta"])
    print(res["table"].to_string(index=False))
    print(res["agreement"].describe().to_string())
    return 0
