"""The one training loop, shared by every study.

It trains R replicas at once (see :mod:`nnrds.models`): the loss is the *sum* of the per-replica
losses, and Adam is element-wise, so each replica follows exactly the trajectory it would follow
alone. Regularizers are per-replica too (an L2 strength may differ between replicas), which lets a
whole regularization sweep run as one batch.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

Penalty = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]  # (net, X_batch) -> (R,)
Callback = Callable[[int, torch.nn.Module], None]  # (epoch, net)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` takes CUDA when it is there; ``cpu``/``cuda`` force one."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested (config key `device`) but torch sees no GPU; "
                           "set `device: auto` or `device: cpu`")
    return torch.device(preference)


def replica_tensor(value: float | Sequence[float], R: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.expand(R) if t.dim() == 0 else t


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # epoch, replica, loss rows
    wall_time_s: float = 0.0
    epochs: int = 0


def mse_per_replica(net: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of every replica, shape (R,). X, Y: (N, d) shared or (R, N, d)."""
    pred = net(X)
    Y = Y if Y.dim() == 3 else Y.unsqueeze(0)
    return (pred - Y).pow(2).mean(dim=(1, 2))


def fit(net: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, *, epochs: int, lr: float = 1e-2,
        batch_size: int | None = None, l2: float | Sequence[float] = 0.0,
        penalty: Penalty | None = None, penalty_weight: float | Sequence[float] = 0.0,
        seed: int = 0, log_every: int = 0, callback: Callback | None = None,
        loss_fn: Callable = mse_per_replica) -> FitResult:
    """Adam on the sum over replicas of  loss_r + l2_r * ||w_r||^2 + penalty_weight_r * penalty_r.

    ``batch_size=None`` is full-batch gradient descent; otherwise every epoch visits a fresh
    permutation drawn from a generator seeded with ``seed``. ``callback(epoch, net)`` runs at epoch
    0 and every ``log_every`` epochs (and after the last one), for tracking metrics during training.

    Modes: optimisation steps run in training mode (``net.train()``), the logged loss and the callback
    in eval mode (``net.eval()``), and the net is left in the mode it came in. This only matters for
    nets whose forward pass depends on the mode (the noisy RNN of :mod:`nnrds.rnn` injects noise in
    training mode only); for the others it changes nothing.
    """
    R = net.n_replicas
    ref = next(net.parameters())
    l2_t = replica_tensor(l2, R, ref)
    pw_t = replica_tensor(penalty_weight, R, ref)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = X.shape[-2]
    gen = torch.Generator().manual_seed(seed)
    res = FitResult()
    t0 = time.perf_counter()

    was_training = net.training

    def log(epoch: int) -> None:
        net.eval()
        with torch.no_grad():
            loss = loss_fn(net, X, Y)
        res.history += [{"epoch": epoch, "replica": r, "train_loss": float(v)} for r, v in enumerate(loss.cpu())]
        if callback is not None:
            callback(epoch, net)
        net.train()

    net.train()
    if log_every:
        log(0)
    for epoch in range(1, epochs + 1):
        if batch_size is None or batch_size >= n:
            batches = [None]
        else:
            perm = torch.randperm(n, generator=gen).to(X.device)
            batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
        for idx in batches:
            xb = X if idx is None else X.index_select(X.dim() - 2, idx)
            yb = Y if idx is None else Y.index_select(Y.dim() - 2, idx)
            loss = loss_fn(net, xb, yb)
            if torch.any(l2_t != 0):
                loss = loss + l2_t * net.l2()
            if penalty is not None:
                loss = loss + pw_t * penalty(net, xb)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        if log_every and (epoch % log_every == 0 or epoch == epochs):
            log(epoch)
    net.train(was_training)
    res.wall_time_s = time.perf_counter() - t0
    res.epochs = epochs
    return res
