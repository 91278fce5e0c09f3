"""Commands of the materials UQ study (interatomic potentials; src/nnrds/studies/materials.py)."""
from __future__ import annotations

import time

from .. import io
from ..cli import json_arg
from ..studies import materials
from .common import add_cell_args, add_summary_args, cell_job, concat, write_summary

TABLES = ("metrics", "predictions", "calibration", "ev", "history", "info")


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

    p = sub.add_parser("materials-summarize", help="concatenate sets; caption with accuracy, calibration, timings")
    add_summary_args(p, list(TABLES), "{scale, study}")
    p.set_defaults(func=_summarize)


def _data(args) -> int:
    c = args.config_json
    t0 = time.perf_counter()
    conf, atoms, meta = materials.generate_tables(c["spec"], c["seed"])
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
    write_summary(args, "materials/summarize", {**t, "timings": timings},
                  materials.caption(t["metrics"], t["info"], timings, c["scale"], c["study"], notes))
    return 0
