"""Commands of the materials UQ study (interatomic potentials; science in src/nnrds/studies/materials.py, rules in
workflow/rules/materials.smk). Every command takes ``--config-json``, ``--in-dir``, ``--out-dir`` and writes
fixed table names (src/nnrds/commands/common.py).

``materials-train``: one set (config ``cell: {set}``), every split; reads ``configs.csv`` / ``atoms.csv`` from
its ``--in-dir`` (the data layer's folder: ``data-al-emt`` or ``data-acquire``); writes :data:`CELL_TABLES` and
``timings.csv``.
``materials-summarize``: reads the cells' folders, the folder of the linear-SNAP reference
(:data:`REFERENCE_TABLE`) and the acquired FitSNAP sets' folders (their ``metadata.json``: detected stress
units), told apart by the files they hold; writes :data:`SUMMARY_TABLES` and ``caption.rst``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..studies import materials
from .common import add_commands, concat, run_cell_job, write_summary

#: tables of a training cell (besides timings.csv and provenance.json)
CELL_TABLES = ["metrics", "predictions", "calibration", "ev", "history", "info", "config_errors"]
#: tables of the summary
SUMMARY_TABLES = [*CELL_TABLES, "timings", "group_metrics", "ev_summary", "sanity", "claims"]
#: the linear-SNAP reference errors (FitSNAP's example fits), in the folder the rule gives
REFERENCE_TABLE = "snap_linear_fitsnap.csv"
#: numeric columns of the cell tables that are NaN by design in some rows (not a divergence): the rank
#: correlation of a constant predicted std, the training volume range of a set without bulk configurations
NAN_BY_DESIGN = {
    "metrics": ["spearman_std_abs_err"],
    "info": ["train_bulk_volume_min", "train_bulk_volume_max", "energy_weight_tau"],
}


def register(sub) -> None:
    add_commands(sub, {"materials-train": _train, "materials-summarize": _summarize})


def _train(args) -> int:
    """train ensemble + Bayes-by-backprop potentials on every split of one set

    Config: {seed, device, dtype, torch_threads, study, cell: {set}} (set: al_emt, fitsnap (Ta), wbe (W-Be))"""
    c = args.config_json
    mset = c["cell"]["set"]
    dspec = {**c["study"][mset], "kind": mset}
    return run_cell_job(args, "materials", materials.run_cell, allow_nonfinite=NAN_BY_DESIGN, dataset=dspec)


def input_folders(in_dirs: list[str]) -> tuple[list[Path], Path | None, list[Path]]:
    """(cell folders, reference folder or None, FitSNAP data folders) among the summary's ``--in-dir``
    folders, in the rule's order: a cell folder holds ``metrics.csv``, the reference folder
    :data:`REFERENCE_TABLE`, a data folder ``metadata.json``."""
    dirs = [Path(d) for d in in_dirs]
    cells = [d for d in dirs if (d / "metrics.csv").exists()]
    refs = [d for d in dirs if (d / REFERENCE_TABLE).exists()]
    data = [d for d in dirs if d not in cells and (d / "metadata.json").exists()]
    return cells, (refs[0] if refs else None), data


def _summarize(args) -> int:
    """concatenate sets; per-group errors beside linear SNAP, symmetry sanity checks, claims; caption with accuracy, calibration, timings

    Config: {scale, seed, study}"""
    c = args.config_json
    cells, ref_dir, data_dirs = input_folders(args.in_dir)
    t = {name: concat([str(d / f"{name}.csv") for d in cells]) for name in CELL_TABLES}
    timings = concat([str(d / "timings.csv") for d in cells])
    notes = {s: materials.DESCRIPTIONS[s] for s in c["study"]["sets"]}
    ref = materials.read_reference(ref_dir / REFERENCE_TABLE) if ref_dir is not None else None
    groups = materials.group_metrics(t["config_errors"], ref)
    has_ta = "fitsnap" in set(t["config_errors"]["dataset"])
    claims = materials.claims(t["config_errors"], ref) if has_ta else None
    sanity = materials.symmetry_checks(t["config_errors"])
    evs = materials.ev_summary(t["ev"], t["info"])
    units = {}
    for d in data_dirs:
        meta = json.loads((d / "metadata.json").read_text())
        units[meta.get("set", str(d / "metadata.json"))] = meta
    out = {**t, "timings": timings, "group_metrics": groups, "ev_summary": evs, "sanity": sanity}
    if claims is not None:
        out["claims"] = claims
    # the summary's provenance merges the cells' records only
    write_summary(
        argparse.Namespace(**{**vars(args), "in_dir": [str(d) for d in cells]}),
        "materials/summarize",
        out,
        materials.caption(
            t["metrics"], t["info"], timings, c["scale"], c["study"], notes, groups, claims, evs, units, sanity
        ),
    )
    return 0
