"""Building blocks of a training cell, shared by the studies that train replica batches.

A study's cell job is *prepare -> build -> train -> evaluate -> tabulate*; the pieces every study repeats
live here, the study keeps only what is its own (its replica layout, what it tracks, its tables):

* :class:`Cell` is what a study's cell function gets (its identity, the study's settings, seed, device, dtype,
  dataset spec, parameterization, input folders), made from the job's config by
  :func:`nnrds.commands.common.cell_of`; :meth:`Cell.prepare` / :func:`prepare` fix the seeds and pick device and
  dtype (:class:`Runtime`);
* :func:`regression_data` draws one standardized split per run seed (:func:`nnrds.data.regression.seeded_splits`)
  and stacks them as tensors with a leading seed -- or, given ``replica_seed_index``, replica -- dimension
  (:class:`ReplicaData`), so runs of one seed see the same data in every cell of a dataset;
* :func:`resnet_arch` and :func:`replica_net` build a batch of networks, replica ``r`` initialised from
  :func:`replica_seed` of its run seed (the same for every model and cell, so comparisons are paired);
* :func:`errors` evaluates per-replica MSEs and :func:`tabulate` turns per-replica arrays into table rows.

A core module: it knows models, training and data, never a study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .data import regression
from .models import Arch, ReplicaNet
from .train import fit, mse_per_replica, pick_device, seed_everything


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a cell runs."""

    device: torch.device
    dtype: torch.dtype

    def tensor(self, a) -> torch.Tensor:
        """``a`` as a tensor of the cell's dtype on its device."""
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def index(self, a) -> torch.Tensor:
        """``a`` on the cell's device, keeping its own (e.g. integer) dtype."""
        return torch.as_tensor(a, device=self.device)


def prepare(base_seed: int, device: str = "auto", dtype: str = "float32") -> Runtime:
    """Seed python, numpy and torch with ``base_seed`` (deterministic kernels) and pick the device."""
    seed_everything(base_seed)
    return Runtime(pick_device(device), getattr(torch, dtype))


@dataclass(frozen=True)
class Cell:
    """One cell job of a study: what its ``run_cell`` function needs, in one object.

    ``id`` is the cell's identity (config ``cell``, e.g. ``{"dataset": "chem", "param": "wp"}``; ``cell["dataset"]``
    reads it), ``study`` the study's settings (config ``study``, or the part of it the cell runs), ``dataset`` the
    dataset spec with the folder the rule gave (``data_dir``), ``parameterization`` the spec of ``id["param"]``,
    ``in_dirs`` the rule's input folders and ``data`` the config's raw-data section (e.g. its ``mirror``)."""

    id: Mapping[str, Any]
    study: Mapping[str, Any]
    base_seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    dataset: Mapping[str, Any] | None = None
    parameterization: Mapping[str, Any] | None = None
    in_dirs: tuple[str, ...] = field(default=())
    data: Mapping[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:
        return self.id[key]

    def prepare(self) -> Runtime:
        """Seed everything with the cell's base seed; its device and dtype (:func:`prepare`)."""
        return prepare(self.base_seed, self.device, self.dtype)

    def but(self, **changes) -> Cell:
        """A copy with ``changes`` (e.g. another study part, dtype or dataset spec)."""
        return replace(self, **changes)


def replica_seed(seed: int, base_seed: int) -> int:
    """Initialization seed of the replica of run seed ``seed``: the same in every study cell and for every
    model, so runs of one seed start from paired weights."""
    return 1000 * seed + base_seed


@dataclass
class ReplicaData:
    """Standardized regression data as tensors ``(R, N, d)``: one slice per run seed or per replica."""

    X_train: torch.Tensor
    Y_train: torch.Tensor
    X_test: torch.Tensor
    Y_test: torch.Tensor

    @property
    def d_in(self) -> int:
        return self.X_train.shape[-1]

    @property
    def d_out(self) -> int:
        return self.Y_train.shape[-1]

    @property
    def n_heldout(self) -> int:
        return self.X_test.shape[1]

    def heldout_halves(self, n_val: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """The held-out points split into ``(X_val, Y_val)`` (the first ``n_val``) and ``(X_test, Y_test)`` (the
        rest): the validation half picks hyper-parameters, the test half is reported."""
        if not 1 <= n_val < self.n_heldout:
            raise ValueError(f"n_val={n_val} must leave >= 1 validation and >= 1 test point of {self.n_heldout}")
        X, Y = self.X_test, self.Y_test
        return (
            (X[:, :n_val].contiguous(), Y[:, :n_val].contiguous()),
            (X[:, n_val:].contiguous(), Y[:, n_val:].contiguous()),
        )


def regression_data(
    spec: dict, seeds: Sequence[int], base_seed: int, rt: Runtime, replica_seed_index: Sequence[int] | None = None
) -> ReplicaData:
    """One standardized split per run seed of dataset ``spec`` (the pool built with ``base_seed``), stacked
    along a leading dimension: per seed, or -- with ``replica_seed_index`` (position in ``seeds`` of each
    replica's seed) -- per replica."""
    splits = regression.seeded_splits(spec, list(seeds), base_seed)
    idx = None if replica_seed_index is None else rt.index(list(replica_seed_index))

    def stack(attr: str) -> torch.Tensor:
        t = rt.tensor(np.stack([getattr(s, attr) for s in splits]))
        return t if idx is None else t[idx]

    return ReplicaData(*(stack(a) for a in ("X_train", "Y_train", "X_test", "Y_test")))


def resnet_arch(data: ReplicaData, pspec: dict, *, width: int, depth: int, T: float, **extra) -> Arch:
    """The architecture of a cell: the data's input/output sizes, parameterization spec ``pspec``
    (``{kind, degree}``, config ``parameterizations.<name>``)."""
    return Arch(
        d_in=data.d_in,
        d_out=data.d_out,
        width=width,
        depth=depth,
        param=pspec["kind"],
        degree=pspec.get("degree", 0),
        T=T,
        **extra,
    )


def replica_net(arch: Arch, seeds: Sequence[int], base_seed: int, rt: Runtime) -> ReplicaNet:
    """One replica per entry of ``seeds`` (run seeds, repeated for replicas of one seed), on the cell's device."""
    return ReplicaNet(arch, [replica_seed(s, base_seed) for s in seeds], dtype=rt.dtype).to(rt.device)


def train_replicas(net: torch.nn.Module, data: ReplicaData, study: Mapping, base_seed: int, **kw):
    """:func:`nnrds.train.fit` of ``net`` on the cell's training data with the study's ``epochs``, ``lr`` and
    ``batch_size``, seeded with ``base_seed``; ``kw`` the rest (e.g. ``where``, ``l2``, ``penalty``, ``callback``)."""
    settings = {k: study[k] for k in ("epochs", "lr", "batch_size")}
    return fit(net, data.X_train, data.Y_train, seed=base_seed, **settings, **kw)


@torch.no_grad()
def errors(net: torch.nn.Module, pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, np.ndarray]:
    """Per-replica MSE of each named ``(X, Y)`` pair as float64 arrays ``(R,)``."""
    return {name: mse_per_replica(net, X, Y).cpu().double().numpy() for name, (X, Y) in pairs.items()}


#: the architecture columns of a run row (:func:`arch_columns`), in table order
ARCH_COLUMNS = ["kind", "degree", "depth", "width", "n_params"]


def arch_columns(arch: Arch) -> dict:
    """The architecture columns of a run row (:data:`ARCH_COLUMNS`)."""
    return {
        "kind": arch.param,
        "degree": arch.degree,
        "depth": arch.depth,
        "width": arch.width,
        "n_params": arch.n_params(),
    }


def tabulate(head: dict, replicas: Sequence[dict], per_replica: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per replica: ``head`` (columns shared by the cell), the replica's own columns (``replicas[r]``,
    e.g. its seed and regularizer) and ``float(per_replica[col][r])`` for every per-replica array; when
    ``train_mse`` and ``test_mse`` are among them, also the generalization ``gap`` = test - train MSE."""
    rows = []
    for r, own in enumerate(replicas):
        row = {**head, **own, **{k: float(v[r]) for k, v in per_replica.items()}}
        if "train_mse" in per_replica and "test_mse" in per_replica:
            row["gap"] = row["test_mse"] - row["train_mse"]
        rows.append(row)
    return rows
