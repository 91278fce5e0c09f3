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

from .. import store
from ..studies import stable_arch as sa
from .common import add_commands, present_tables, run_cell_job, write_summary

STABILITY_TABLES = ["runs", "growth", "spectra", "reversibility"]
#: tables of the summary (besides caption.rst and provenance.json)
SUMMARY_TABLES = [
    "runs",
    "growth",
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
    add_commands(
        sub,
        {
            "stable-arch-stability": _stability,
            "stable-arch-reversibility": _reversibility,
            "stable-arch-multilevel": _multilevel,
            "stable-arch-bases": _bases,
            "stable-arch-summarize": _summarize,
        },
    )


def _part_job(args, part: str, run_cell, *, config_key: str | None = None, **kw) -> int:
    """A cell of one part (``stability``, ``reversibility``, ``multilevel`` or ``bases``): the part's settings with
    the study's seeds (and the part's dtype when it has one), its job name and config key (default
    ``stable_arch.<part>.lr``)."""
    cfg = sa.part_config(args.config_json["study"], part)
    if "dtype" in cfg:
        kw["dtype"] = cfg["dtype"]
    key = config_key or f"{sa.STUDY}.{part}.lr"
    return run_cell_job(args, f"{sa.STUDY}/{part}", run_cell, config_key=key, study=cfg, **kw)


def _stability(args) -> int:
    """train one architecture on the 2-D problems at every depth and step; growth (initial, trained, other scheme,
    exact flow), spectra, reversibility

    Config: {seed, device, dtype, torch_threads, study, cell: {arch}}"""
    return _part_job(args, "stability", sa.run_stability_cell, allow_nonfinite=ALLOW_NAN)


def _reversibility(args) -> int:
    """Verlet input reconstruction vs depth (float32/float64) and the linear amplification test

    Config: {seed, device, dtype, torch_threads, study}"""
    # no learning rate here: a non-finite value points at the part's settings
    return _part_job(
        args, "reversibility", sa.run_reversibility, config_key=f"{sa.STUDY}.reversibility", allow_nonfinite=ALLOW_NAN
    )


def _multilevel(args) -> int:
    """multilevel (depth doubling) vs from-scratch and coarse-only training of one parameterization

    Config: {seed, device, dtype, torch_threads, study, dataset, parameterization, cell: {param}}"""
    return _part_job(args, "multilevel", sa.run_multilevel_cell)


def _bases(args) -> int:
    """train WP-ResNets in the monomial, Legendre and Chebyshev bases (degree x T) on one problem

    Config: {seed, device, dtype, torch_threads, study, dataset (regression problem only), cell: {problem}}"""
    return _part_job(args, "bases", sa.run_bases_cell)


def read_parts(args, name: str, sort_by: list[str] | None = None, required: bool = True):
    """``<name>.csv`` of every ``--in-dir`` folder that holds it, concatenated (parts write different tables); None
    when no folder holds it and it is not ``required``."""
    paths = present_tables(args, f"{name}.csv")
    if not paths:
        if not required:
            return None
        raise ValueError(f"stable-arch-summarize: no --in-dir folder holds {name}.csv")
    frames = [store.read_table(p) for p in paths]
    full = [f for f in frames if len(f)] or frames[:1]  # header-only tables would turn every column to object
    df = pd.concat(full, ignore_index=True)
    return df.sort_values(sort_by, kind="stable") if sort_by else df


def _summarize(args) -> int:
    """concatenate the parts; summaries, claims, caption

    Config: {scale, study}"""
    c = args.config_json
    study = c["study"]
    tables = {
        "runs": read_parts(args, "runs", ["arch", "problem", "h", "depth", "seed"]),
        "growth": read_parts(args, "growth", ["arch", "problem", "h", "depth", "weights", "eval_scheme", "seed"]),
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
    tables.update(
        sa.summarize(
            tables["runs"], tables["growth"], tables["reversibility"], tables["multilevel"], study, extra_specs
        )
    )
    write_summary(args, f"{sa.STUDY}/summarize", {k: tables[k] for k in names}, sa.caption(tables, c["scale"], study))
    return 0
