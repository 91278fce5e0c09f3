"""Loud failures for non-finite numbers.

A non-finite loss, gradient, parameter, prediction or posterior draw must stop the job with one message
that names the study, the cell/job, the replica(s) or chain(s), the epoch or iteration, and the config
key to change -- before any table is written. Every training, sampling and evaluation loop calls
:func:`check_finite` on what it produced; the CLI turns :class:`NonFiniteError` into that one message and
a non-zero exit status (so Snakemake marks the job failed and removes its outputs).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch


class NonFiniteError(RuntimeError):
    """A computed quantity is NaN or inf; ``str(err)`` is the one message the user sees."""


@dataclass(frozen=True)
class Where:
    """Where a loop runs: filled in once per job and passed down to the loops."""

    study: str = "?"
    cell: str = "?"
    config_key: str = "?"  # e.g. "wp_gap.lr" -- the key whose change most likely cures a divergence
    unit: str = "replica"  # "replica" or "chain"
    #: optional label of every replica/chain in batch order (e.g. "seed 3", "l2 0.01 seed 1"), shown next to
    #: the indices in the message
    labels: Sequence[str] | None = None

    def at(self, **changes) -> Where:
        """A copy with some fields changed, e.g. ``where.at(cell=f"{where.cell} depth 4")``."""
        return replace(self, **changes)


_CURRENT: contextvars.ContextVar[Where] = contextvars.ContextVar(
    "nnrds_where",
    default=Where(),  # noqa: B039 -- Where is a frozen dataclass: never mutated
)


def current() -> Where:
    """The :class:`Where` of the job now running (set by :func:`job`; ``Where()`` outside any job).

    Loops use it when their caller passes no ``where`` (e.g. :func:`nnrds.train.fit`), so a study that does
    not pass one still fails with the study, the job and the config key of its command.
    """
    return _CURRENT.get()


@contextlib.contextmanager
def job(where: Where) -> Iterator[Where]:
    """Make ``where`` the :func:`current` one inside the block (the study commands wrap each job in it)."""
    token = _CURRENT.set(where)
    try:
        yield where
    finally:
        _CURRENT.reset(token)


def _bad_indices(t: torch.Tensor | np.ndarray, batch_dim: int | None) -> list[int] | None:
    """Indices along ``batch_dim`` holding a non-finite value; [] when all finite; None when no batch dim."""
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(np.asarray(t))
    if not (t.is_floating_point() or t.is_complex()):
        return []
    bad = ~torch.isfinite(t)
    if not bool(bad.any()):
        return []
    if batch_dim is None or t.dim() == 0:
        return None
    b = bad.movedim(batch_dim, 0).reshape(t.shape[batch_dim], -1).any(dim=1)
    return [int(i) for i in torch.nonzero(b).flatten().tolist()]


def check_finite(
    values: Mapping[str, torch.Tensor | np.ndarray | float] | torch.Tensor,
    *,
    where: Where,
    step: str,
    what: str = "loss",
    batch_dim: int | None = 0,
) -> None:
    """Raise :class:`NonFiniteError` if any of ``values`` holds NaN/inf.

    ``values``: one tensor or a name -> tensor mapping (e.g. ``dict(net.named_parameters())``);
    ``step``: e.g. ``"epoch 12"`` or ``"iteration 340 (warm-up)"``; ``batch_dim``: the replica/chain
    dimension of the tensors (``None``: tensors have none).
    """
    items = values.items() if isinstance(values, Mapping) else [(what, values)]
    for name, v in items:
        if v is None:
            continue
        t = v if isinstance(v, (torch.Tensor, np.ndarray)) else np.asarray(v, dtype=float)
        idx = _bad_indices(t.detach() if isinstance(t, torch.Tensor) else t, batch_dim)
        if idx == []:
            continue
        units = f"{where.unit}(s) {idx}" if idx is not None else f"all {where.unit}s"
        if idx and where.labels is not None and max(idx) < len(where.labels):
            shown = [str(where.labels[i]) for i in idx[:8]] + (["..."] if len(idx) > 8 else [])
            units += f" ({', '.join(shown)})"
        label = what if name == what else f"{what} `{name}`"
        raise NonFiniteError(
            f"non-finite {label} in study `{where.study}`, cell `{where.cell}`, {units}, at {step}: "
            f"training/sampling diverged. Change config key `{where.config_key}` (e.g. a smaller value) and rerun."
        )


def check_table(
    df, *, table: str, where: Where | None = None, allow: Iterable[str] = (), keys: Sequence[str] = ()
) -> None:
    """Refuse a table holding NaN/inf in a numeric column (other than those in ``allow``).

    Raises :class:`NonFiniteError` naming the table, the column, how many rows and the first offending
    rows' identifying columns (``keys``, e.g. ``["depth", "seed"]``; default: the table's non-numeric
    columns plus ``seed``), with the study, job and config key of ``where`` (default: :func:`current`).
    """
    where = current() if where is None else where
    allow = set(allow)
    num = df.select_dtypes(include=[np.number]).columns
    for col in num:
        if col in allow:
            continue
        bad = ~np.isfinite(df[col].to_numpy(dtype=float))
        if not bad.any():
            continue
        keys = list(keys) or [c for c in df.columns if c not in num or c in ("seed", "replica", "chain")]
        rows = df.loc[bad, [k for k in keys if k in df.columns]].head(3)
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in rows.to_dict("records"))
        raise NonFiniteError(
            f"non-finite `{col}` in table `{table}` of study `{where.study}`, cell `{where.cell}`: "
            f"{int(bad.sum())} of {len(df)} row(s) (first: {shown or 'row ' + str(int(np.argmax(bad)))}); "
            f"no table was written. Training/evaluation diverged: change config key `{where.config_key}` "
            "(e.g. a smaller value) and rerun."
        )
