"""Commands of the stiffness study (src/nnrds/studies/stiffness.py)."""
from __future__ import annotations

from ..data import regression
from ..studies import stiffness
from .common import add_cell_args, add_summary_args, cell_job, concat, dataset_spec, write_summary

CELL_TABLES = {
    "runs": "output CSV, one row per run (final errors and stiffness)",
    "metrics": "output CSV, tidy per-epoch metrics",
    "eigenvalues": "output CSV, eigenvalues of the first seed's networks (trained; unregularized also at init)",
}


def register(sub) -> None:
    p = sub.add_parser("stiffness-train",
                       help="train one dataset x parameterization cell (none / L2 grid / penalty grid x seeds as one "
                            "replica batch), tracking Jacobian-spectrum metrics")
    p.add_argument("--dataset", required=True)
    p.add_argument("--param", required=True)
    add_cell_args(p, CELL_TABLES, data_dir=True)
    p.set_defaults(func=_train)

    p = sub.add_parser("stiffness-summarize", help="concatenate cells; claims (a) and (b) with intervals and verdicts (claims.csv); caption")
    add_summary_args(p, list(CELL_TABLES), "{scale, study, datasets}")
    p.set_defaults(func=_summarize)


def _train(args) -> int:
    c = args.config_json
    # the stiffness ratio is NaN by definition when no eigenvalue has Re < 0 (max|Re| / min|Re| over Re < 0)
    nan_ok = {"runs": ["stiffness_ratio", "stiffness_ratio_init"], "metrics": ["value"]}
    with cell_job(args, f"stiffness/{args.dataset}/{args.param}", allow_nonfinite=nan_ok) as out:
        out["runs"], out["metrics"], out["eigenvalues"], out["timings"] = stiffness.run_cell(
            args.dataset, dataset_spec(args), args.param, c["parameterization"], c["study"],
            base_seed=c["seed"], device=c["device"], dtype=c["dtype"])
    return 0


def _summarize(args) -> int:
    c = args.config_json
    study = c["study"]
    keys = ["dataset", "parameterization", "regularizer", "strength", "seed"]
    runs = concat(args.runs, keys)
    metrics = concat(args.metrics, keys + ["epoch"])
    ca = stiffness.claim_a(runs)
    sel = stiffness.select_strengths(runs)
    cb = stiffness.claim_b(runs, sel)
    claims = stiffness.claims(runs, sel, study)
    notes = {name: regression.DESCRIPTIONS.get(spec["kind"], spec["kind"]) for name, spec in c["datasets"].items()}
    eigs = stiffness.select_eigenvalues(concat(args.eigenvalues), sel)
    write_summary(args, "stiffness/summarize",
                  {"runs": runs, "metrics": metrics, "eigenvalues": eigs,
                   "timings": concat(args.timings), "claim_a": ca, "selected": sel, "claim_b": cb, "claims": claims,
                   "gap_correlation": stiffness.gap_correlation(runs, study["primary_metric"]),
                   "eigenvalue_panels": stiffness.eigenvalue_panels(eigs, study["parameterizations"][0])},
                  stiffness.caption(claims, ca, cb, sel, c["scale"], study, notes))
    return 0
