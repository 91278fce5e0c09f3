"""Commands of the materials UQ study (interatomic potentials; src/nnrds/studies/materials.py)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import io
from ..cli import json_arg
from ..data import al_emt
from ..studies import materials
from .common import add_cell_args, add_summary_args, cell_job, concat, write_summary

TABLES = ("metrics", "predictions", "calibration", "ev", "history", "info", "config_errors")


def register(sub) -> None:
    p = sub.add_parser("materials-data", help="generate the Al-EMT configurations (ASE + EMT) as tidy tables")
    p.add_argument("--config-json", type=json_arg, required=True, help="{seed, spec} (spec = materials.al_emt)")
    p.add_argument("--out-dir", required=True, help="writes configs.csv, atoms.csv, metadata.json, provenance.json")
    p.set_defaults(func=_data)

    p = sub.add_parser("materials-train", help="train ensemble + Bayes-by-backprop potentials on every split of one set")
    p.add_argument("--set", required=True, help="al_emt, fitsnap (Ta) or wbe (W-Be)")
    p.add_argument("--data-dir", required=True, help="folder with configs.csv and atoms.csv")
    add_cell_args(p, {t: f"output CSV: {t}" for t in TABLES})
    p.set_defaults(func=_train)

    p = sub.add_parser("materials-summarize", help="concatenate sets; per-group errors beside linear SNAP, claims; "
                                                   "caption with accuracy, calibration, timings")
    add_summary_args(p, list(TABLES), "{scale, study}")
    p.add_argument("--reference", default=None, help="linear-SNAP reference errors (workflow/reference/snap_linear_fitsnap.csv)")
    p.add_argument("--data-metadata", nargs="*", default=[],
                   help="metadata.json of the acquired FitSNAP sets (their detected stress units go into the caption)")
    p.set_defaults(func=_summarize)


def _data(args) -> int:
    c = args.config_json
    t0 = time.perf_counter()
    conf, atoms, meta = al_emt.tables(c["spec"], c["seed"])
    io.write_table(f"{args.out_dir}/configs.csv", conf)
    io.write_table(f"{args.out_dir}/atoms.csv", atoms)
    io.write_json(f"{args.out_dir}/metadata.json", meta)
    io.write_json(f"{args.out_dir}/provenance.json",
                  io.provenance(c, seeds=[c["seed"]], wall_time_s=time.perf_counter() - t0, job="materials/data"))
    return 0


def _train(args) -> int:
    c = args.config_json
    with cell_job(args, f"materials/{args.set}") as out:
        tables = materials.run_cell(args.set, {**c["study"][args.set], "kind": args.set}, c["study"], args.data_dir,
                                    base_seed=c["seed"], device=c["device"], dtype=c["dtype"])
        out.update(tables)
    return 0


def _summarize(args) -> int:
    c = args.config_json
    t = {name: concat(getattr(args, name)) for name in TABLES}
    timings = concat(args.timings)
    notes = {s: materials.DESCRIPTIONS[s] for s in c["study"]["sets"]}
    ref = materials.read_reference(args.reference) if args.reference else None
    groups = materials.group_metrics(t["config_errors"], ref)
    claims = materials.snap_claims(t["config_errors"], ref) if ref is not None else None
    evs = materials.ev_summary(t["ev"], t["info"])
    units = {}
    for path in args.data_metadata or []:
        meta = json.loads(Path(path).read_text())
        units[meta.get("set", path)] = meta
    out = {**t, "timings": timings, "group_metrics": groups, "ev_summary": evs}
    if claims is not None:
        out["claims"] = claims
    write_summary(args, "materials/summarize", out,
                  materials.caption(t["metrics"], t["info"], timings, c["scale"], c["study"], notes, groups, claims,
                                    evs, units))
    return 0
