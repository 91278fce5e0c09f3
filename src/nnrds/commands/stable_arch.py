"""Commands of the stable-architectures study (rules: workflow/rules/stable_arch.smk).

``stable-arch-stability``: one architecture (config ``cell: {arch}``) on every 2-D problem x step x depth; writes
:data:`STABILITY_TABLES`. ``stable-arch-reversibility``: random Verlet nets and the linear test; writes
``reversibility``. ``stable-arch-multilevel``: one parameterization (config ``cell: {param}``) on the study's
regression dataset; writes ``multilevel``. ``stable-arch-bases``: one problem (config ``cell: {problem}``), every
weight basis x degree x T; writes ``bases_runs``, ``bases_curves``. ``stable-arch-summarize``: reads every part's
folder (``--in-dir``; a table is read from each folder that holds it, so further parts add folders), writes
:data:`SUMMARY_TABLES` and ``caption.rst``.
"""

from __future__ import annotations

import pandas as pd

from .. import io
from ..studies import stable_arch as sa
from .common import add_command, cell_job, dataset_spec, in_tables, write_summary

STABILITY_TABLES = ["runs", "spectra", "reversibility"]
#: tables of the summary (besides caption.rst and provenance.json)
SUMMARY_TABLES = [
    "runs",
    "spectra",
    "reversibility",
    "multilevel",
    "timings",
    "summary",
    "multilevel_summary",
    "claims",
]
#: NaN by design: a linear Verlet roundtrip that overflowed; the linear test has no h, the nets no a
ALLOW_NAN = {"reversibility": ["rel_error", "a", "h", "predicted_xi"]}


def register(sub) -> None:
    add_command(
        sub,
        "stable-arch-stability",
        _stability,
        "train one architecture on the 2-D problems at every depth and step; growth, spectra, reversibility",
        "{seed, device, dtype, torch_threads, study, cell: {arch}}",
    )
    add_command(
        sub,
        "stable-arch-reversibility",
        _reversibility,
        "Verlet input reconstruction vs depth (float32/float64) and the linear amplification test",
        "{seed, device, dtype, torch_threads, study}",
    )
    add_command(
        sub,
        "stable-arch-multilevel",
        _multilevel,
        "multilevel (depth doubling) vs from-scratch training of one parameterization",
        "{seed, device, dtype, torch_threads, study, dataset, parameterization, cell: {param}}",
    )
    add_command(
        sub,
        "stable-arch-bases",
        _bases,
        "train WP-ResNets in the monomial, Legendre and Chebyshev bases (degree x T) on one problem",
        "{seed, device, dtype, torch_threads, study, dataset (regression problem only), cell: {problem}}",
    )
    add_command(
        sub,
        "stable-arch-summarize",
        _summarize,
        "concatenate the parts; summaries, claims, caption",
        "{scale, study}",
    )


def _stability(args) -> int:
    c = args.config_json
    arch = c["cell"]["arch"]
    cfg = sa.part_config(c["study"], "stability")
    with cell_job(
        args, f"{sa.STUDY}/stability/{arch}", config_key=f"{sa.STUDY}.stability.lr", allow_nonfinite=ALLOW_NAN
    ) as out:
        out.update(sa.run_stability_cell(arch, cfg, base_seed=c["seed"], device=c["device"]))
    return 0


def _reversibility(args) -> int:
    c = args.config_json
    cfg = sa.part_config(c["study"], "reversibility")
    with cell_job(
        args, f"{sa.STUDY}/reversibility", config_key=f"{sa.STUDY}.reversibility", allow_nonfinite=ALLOW_NAN
    ) as out:
        out.update(sa.run_reversibility(cfg, base_seed=c["seed"], device=c["device"]))
    return 0


def _multilevel(args) -> int:
    c = args.config_json
    cfg = sa.part_config(c["study"], "multilevel")
    param, pspec = c["cell"]["param"], c["parameterization"]
    with cell_job(args, f"{sa.STUDY}/multilevel/{param}", config_key=f"{sa.STUDY}.multilevel.lr") as out:
        out.update(
            sa.run_multilevel_cell(param, pspec, dataset_spec(args), cfg, base_seed=c["seed"], device=c["device"])
        )
    return 0


def _bases(args) -> int:
    c = args.config_json
    cfg = sa.part_config(c["study"], "bases")
    problem = c["cell"]["problem"]
    dspec = dataset_spec(args) if problem == cfg["dataset"] else None  # else a 2-D problem (nnrds.data.toy2d)
    with cell_job(args, f"{sa.STUDY}/bases/{problem}", config_key=f"{sa.STUDY}.bases.lr") as out:
        out.update(sa.run_bases_cell(problem, dspec, cfg, base_seed=c["seed"], device=c["device"]))
    return 0


def read_parts(args, name: str, sort_by: list[str] | None = None, required: bool = True):
    """``<name>.csv`` of every ``--in-dir`` folder that holds it, concatenated (parts write different tables); None
    when no folder holds it and it is not ``required``."""
    paths = [str(p) for p in in_tables(args, f"{name}.csv") if p.is_file()]
    if not paths:
        if not required:
            return None
        raise ValueError(f"stable-arch-summarize: no --in-dir folder holds {name}.csv")
    frames = [io.read_table(p) for p in paths]
    full = [f for f in frames if len(f)] or frames[:1]  # header-only tables would turn every column to object
    df = pd.concat(full, ignore_index=True)
    return df.sort_values(sort_by, kind="stable") if sort_by else df


def _summarize(args) -> int:
    c = args.config_json
    study = c["study"]
    tables = {
        "runs": read_parts(args, "runs", ["arch", "problem", "h", "depth", "seed"]),
        "spectra": read_parts(args, "spectra", ["arch", "problem", "seed", "layer", "point"]),
        "reversibility": read_parts(
            args, "reversibility", ["source", "arch", "problem", "dtype", "depth", "a", "seed"]
        ),
        "multilevel": read_parts(args, "multilevel", ["parameterization", "mode", "seed", "cost"]),
        "timings": read_parts(args, "timings", ["part", "cell"]),
    }
    names, extra_specs = list(SUMMARY_TABLES), []
    for part in sa.EXTRA_PARTS:  # further parts of the study (their own tables and claims)
        part_tables, specs = part(lambda name: read_parts(args, name, required=False), study)
        tables.update(part_tables)
        names += [k for k in part_tables if k not in names]
        extra_specs += list(specs)
    tables.update(sa.summarize(tables["runs"], tables["reversibility"], tables["multilevel"], study, extra_specs))
    write_summary(args, f"{sa.STUDY}/summarize", {k: tables[k] for k in names}, sa.caption(tables, c["scale"], study))
    return 0
