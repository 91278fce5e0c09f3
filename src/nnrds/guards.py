"""Loud failures for non-finite numbers.

A non-finite loss, gradient, parameter, prediction or posterior draw must stop the job with one message
that names the study, the cell/job, the replica(s) or chain(s), the epoch or iteration, and the config
key to change -- before any table is written. Every training, sampling and evaluation loop calls
:func:`check_finite` on what it produced; the CLI turns :class:`NonFiniteError` into that one message and
a non-zero exit status (so Snakemake marks the job failed and removes its outputs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

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


def check_finite(values: Mapping[str, torch.Tensor | np.ndarray | float] | torch.Tensor, *, where: Where,
                 step: str, what: str = "loss", batch_dim: int | None = 0) -> None:
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
        label = what if name == what else f"{what} `{name}`"
        raise NonFiniteError(
            f"non-finite {label} in study `{where.study}`, cell `{where.cell}`, {units}, at {step}: "
            f"training/sampling diverged. Change config key `{where.config_key}` (e.g. a smaller value) and rerun."
        )
