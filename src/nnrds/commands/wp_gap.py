"""Commands of the weight-parameterization generalization-gap study."""
from __future__ import annotations

from ..data import regression
from ..studies import wp_gap
from .common import add_cell_args, add_summary_args, cell_job, concat, dataset_spec, write_summary


def register(sub) -> None:
    p = sub.add_parser("wp-gap-train", help="train one dataset x parameterization cell of the sweep")
    p.add_argument("--dataset", required=True)
    p.add_argument("--param", required=True)
    add_cell_args(p, {"runs": "output CSV, one row per run"}, data_dir=True)
    p.set_defaults(func=_train)

    p = sub.add_parser("wp-gap-summarize", help="concatenate cells; per-seed effects, median gaps, claims table; caption")
    add_summary_args(p, ["runs"], "{scale, study, datasets}")
    p.set_defaults(func=_summarize)


def _train(args) -> int:
    c = args.config_json
    with cell_job(args, f"wp_gap/{args.dataset}/{args.param}") as out:
        out["runs"], out["timings"] = wp_gap.run_cell(
            args.dataset, dataset_spec(args), args.param, c["parameterization"], c["study"],
            base_seed=c["seed"], device=c["device"], dtype=c["dtype"])
    return 0


def _summarize(args) -> int:
    c = args.config_json
    runs = concat(args.runs, ["dataset", "parameterization", "depth", "width", "seed"])
    per_seed, med, claims = wp_gap.summarize(runs, c["study"])
    notes = {name: regression.DESCRIPTIONS[spec["kind"]] for name, spec in c["datasets"].items()}
    write_summary(args, "wp_gap/summarize",
                  {"runs": runs, "timings": concat(args.timings), "gap_correlation": per_seed,
                   "gap_by_parameterization": med, "claims": claims},
                  wp_gap.caption(per_seed, med, claims, c["scale"], c["study"], notes))
    return 0
