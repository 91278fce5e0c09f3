"""One module per study; each exposes the functions its rules call through :mod:`nnrds.cli`.

Every study module keeps the contract :class:`Study` (a test checks it for every module here): ``STUDY`` (its
config key and results folder), ``FIGURES`` (figure paths its claims point to, each an output of its figures
rule), ``CELLS`` (names of its cell functions, ``Cell -> {table: DataFrame}``, run through
:func:`nnrds.commands.common.cell_job`), ``claims`` (its claims table, :data:`nnrds.verdicts.CLAIM_COLUMNS`) and
``caption``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Protocol, runtime_checkable


@runtime_checkable
class Study(Protocol):
    """What every module of :mod:`nnrds.studies` provides."""

    STUDY: str
    FIGURES: Mapping[str, str]
    CELLS: tuple[str, ...]
    claims: Callable
    caption: Callable


def modules() -> dict[str, ModuleType]:
    """Every study module of this package by its name."""
    return {m.name: importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)}


def contract_errors(mod: ModuleType) -> list[str]:
    """What a study module lacks of :class:`Study` (empty when it keeps the contract)."""
    errs = [f"no {k}" for k in ("STUDY", "FIGURES", "CELLS", "claims", "caption") if not hasattr(mod, k)]
    if errs:
        return errs
    name = mod.__name__.rsplit(".", 1)[-1]
    if mod.STUDY != name:
        errs.append(f"STUDY is {mod.STUDY!r}, not the module name {name!r}")
    errs += [
        f"FIGURES[{k!r}] = {p!r} is not under figures/{name}/"
        for k, p in mod.FIGURES.items()
        if not str(p).startswith(f"figures/{name}/")
    ]
    errs += [f"cell function {c} missing" for c in mod.CELLS if not callable(getattr(mod, c, None))]
    errs += [f"{k} is not callable" for k in ("claims", "caption") if not callable(getattr(mod, k))]
    return errs
