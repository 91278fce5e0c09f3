"""What every study's commands share: arguments, timing, atomic table output and provenance.

The convention (one for every command): ``--config-json`` is the job's config slice (including the cell's
identity, e.g. ``{"cell": {"dataset": ..., "param": ...}}``), ``--in-dir`` the folders of fixed-name tables
the rule gives it (none, one or many), ``--out-dir`` the one folder it writes: ``<table>.csv`` for every table
of the study, ``timings.csv`` and ``provenance.json``. A command reads nothing else and writes nothing else,
so a rule only names folders (see ``nnrds_shell`` in workflow/rules/common.smk). A study command says which
tables it produces and how to compute them."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .. import guards, store
from ..cli import json_arg
from ..experiment import Cell


def add_job_args(p, config_help: str = "validated config slice of the job") -> None:
    """The three options of every command: ``--config-json``, ``--in-dir`` (zero or more folders of input
    tables, given by the rule) and ``--out-dir`` (the folder of the job's fixed-name outputs)."""
    p.add_argument("--config-json", type=json_arg, required=True, help=config_help)
    p.add_argument(
        "--in-dir",
        nargs="*",
        default=[],
        help="folders of the input tables, given by the rule from its inputs (none for bundled data)",
    )
    p.add_argument("--out-dir", required=True, help="folder of the outputs (fixed names per study)")


def add_command(sub, name: str, func, help: str, config_help: str) -> None:
    """Register ``nnrds <name>`` on the one convention (:func:`add_job_args`), run as ``func(args)``."""
    p = sub.add_parser(name, help=help)
    add_job_args(p, config_help)
    p.set_defaults(func=func)


def add_commands(sub, commands: Mapping[str, Callable]) -> None:
    """Register ``nnrds <name>`` for every ``name: func`` of ``commands`` (:func:`add_command`); the help texts are
    the function's docstring (:func:`command_help`), so a study's commands are one dict."""
    for name, func in commands.items():
        add_command(sub, name, func, *command_help(func))


def command_help(func) -> tuple[str, str]:
    """(help, config help) of a command function from its docstring: the first paragraph says what the command
    does, the paragraph starting ``Config:`` what its ``--config-json`` slice holds (default: "validated config
    slice of the job")."""
    paras = [" ".join(p.split()) for p in (inspect.getdoc(func) or "").split("\n\n") if p.strip()]
    if not paras or paras[0].startswith("Config:"):
        raise ValueError(f"command function {func.__name__} needs a docstring saying what the command does")
    conf = [p.removeprefix("Config:").strip() for p in paras[1:] if p.startswith("Config:")]
    return paras[0], conf[0] if conf else "validated config slice of the job"


def in_tables(args, name: str) -> list[Path]:
    """``<in-dir>/<name>`` of every input folder, in the rule's order (``name`` includes the suffix)."""
    return [Path(d) / name for d in args.in_dir]


def present_tables(args, name: str) -> list[Path]:
    """``<name>`` in those ``--in-dir`` folders that hold it (a summary reading the folders of several kinds of job)."""
    return [p for p in in_tables(args, name) if p.is_file()]


def read_tables(args, name: str, sort_by: list[str] | None = None) -> pd.DataFrame:
    """The table ``<name>.csv`` of every input folder, concatenated (optionally stably sorted)."""
    return concat([str(p) for p in in_tables(args, f"{name}.csv")], sort_by)


def dataset_spec(args) -> dict:
    """The job's dataset spec (``config_json["dataset"]``) with the folder the rule gave (the first ``--in-dir``), so
    the loader reads only the rule's inputs (see :func:`nnrds.data.regression.load_pool`)."""
    spec = dict(args.config_json["dataset"])
    data_dir = args.in_dir[0] if args.in_dir else None
    if data_dir:
        spec["data_dir"] = data_dir
    return spec


def cell_of(args, **changes) -> Cell:
    """The :class:`~nnrds.experiment.Cell` of a cell job from its config slice: ``cell`` (identity), ``study``,
    ``seed``, ``device``, ``dtype``, ``dataset`` (with the rule's folder, :func:`dataset_spec`), ``parameterization``
    and ``data`` when the slice has them, and the ``--in-dir`` folders; ``changes`` override fields (e.g. the study
    part a cell runs)."""
    c = args.config_json
    cell = Cell(
        id=c.get("cell", {}),
        study=c["study"],
        base_seed=c["seed"],
        device=c.get("device", "auto"),
        dtype=c.get("dtype", "float32"),
        dataset=dataset_spec(args) if "dataset" in c else None,
        parameterization=c.get("parameterization"),
        in_dirs=tuple(args.in_dir),
        data=c.get("data"),
    )
    return cell.but(**changes) if changes else cell


def job_where(args, job: str, config_key: str | None = None) -> guards.Where:
    """``Where`` of a cell job ``"<study>/<cell...>"``; the config key defaults to ``<study>.lr`` when the study
    has a learning rate (the usual cure of a divergence)."""
    study, _, cell = job.partition("/")
    if config_key is None:
        sc = args.config_json.get("study", {})
        config_key = f"{study}.lr" if isinstance(sc, dict) and "lr" in sc else study
    return guards.Where(study=study, cell=cell or job, config_key=config_key)


@contextmanager
def cell_job(
    args,
    job: str,
    *,
    config_key: str | None = None,
    allow_nonfinite: Mapping[str, Iterable[str]] | None = None,
    unchecked_rows: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
) -> Iterator[dict]:
    """Run a training cell: fix torch threads, time it, then write the tables the body put into the
    yielded dict (keys = output options, ``timings`` included) and the cell's provenance.

    The body runs inside :func:`nnrds.guards.job` (so :func:`nnrds.train.fit` names this study, cell and
    ``config_key`` when it diverges). Before anything is written every table but ``timings`` is checked: a
    NaN/inf in a numeric column (except the study's NaN-by-design ``allow_nonfinite[table]``, and except the rows
    ``unchecked_rows[table](df)`` marks, e.g. a method that was not run) raises
    :class:`~nnrds.guards.NonFiniteError` naming table and column, and no table is written. The provenance
    names the study's ``seeds`` (else the job's ``seed``) and the device of ``timings`` when it has one."""
    import torch

    c = args.config_json
    torch.set_num_threads(c["torch_threads"])
    t0 = time.perf_counter()
    tables: dict[str, pd.DataFrame] = {}
    where = job_where(args, job, config_key)
    with guards.job(where):
        yield tables
    allow, skip = allow_nonfinite or {}, unchecked_rows or {}
    for name, df in tables.items():
        if name != "timings":
            checked = df[~skip[name](df)] if name in skip else df
            guards.check_table(checked, table=name, where=where, allow=set(allow.get(name, ())))
    out = Path(args.out_dir)
    for name, df in tables.items():
        store.write_table(out / f"{name}.csv", df)
    timings = tables.get("timings")
    store.write_json(
        out / "provenance.json",
        store.provenance(
            c,
            seeds=c["study"].get("seeds", c.get("seed")),
            wall_time_s=time.perf_counter() - t0,
            device=timings["device"].iloc[0] if timings is not None and "device" in timings else None,
            job=job,
        ),
    )


def run_cell_job(
    args,
    prefix: str,
    run_cell: Callable[[Cell], Mapping[str, pd.DataFrame]],
    *,
    config_key: str | None = None,
    allow_nonfinite: Mapping[str, Iterable[str]] | None = None,
    unchecked_rows: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
    **changes,
) -> int:
    """The body of every ``<study>-train`` command: ``run_cell(cell_of(args, **changes))`` inside :func:`cell_job`
    named ``<prefix>/<cell id values...>`` (e.g. ``wp_gap/chem/wp``); the tables it returns are written."""
    cell = cell_of(args, **changes)
    with cell_job(
        args,
        "/".join([prefix, *map(str, cell.id.values())]),
        config_key=config_key,
        allow_nonfinite=allow_nonfinite,
        unchecked_rows=unchecked_rows,
    ) as out:
        out.update(run_cell(cell))
    return 0


def concat(paths: list[str], sort_by: list[str] | None = None) -> pd.DataFrame:
    df = pd.concat([store.read_table(p) for p in paths], ignore_index=True)
    return df.sort_values(sort_by, kind="stable") if sort_by else df


def write_summary(args, job: str, tables: dict[str, pd.DataFrame], caption: str) -> None:
    """Write ``<out>/<name>.csv`` for every table, ``caption.rst`` and the merged ``provenance.json``."""
    c, out = args.config_json, Path(args.out_dir)
    for name, df in tables.items():
        store.write_table(out / f"{name}.csv", df)
    store.write_text(out / "caption.rst", caption)
    jobs = [json.loads(p.read_text()) for p in in_tables(args, "provenance.json")]
    store.write_json(out / "provenance.json", store.merge_provenance(jobs, c, seeds=c["study"]["seeds"], job=job))
