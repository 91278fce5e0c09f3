"""The one training loop, shared by every study.

It trains R replicas at once (see :mod:`nnrds.models`): the loss is the *sum* of the per-replica
losses, and Adam is element-wise, so each replica follows exactly the trajectory it would follow
alone. Regularizers are per-replica too (an L2 strength may differ between replicas), which lets a
whole regularization sweep run as one batch.

Divergence is loud: a non-finite loss (checked every epoch from a per-replica running sum), gradient or
parameter (checked at every log point and after the last epoch) raises :class:`nnrds.guards.NonFiniteError`
naming the study, job, replica(s), epoch and config key (from the ``where`` argument, by default the job's
:func:`nnrds.guards.current`). Progress goes to :mod:`logging` about ten times per fit.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .guards import Where, check_finite, current

log = logging.getLogger(__name__)

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
        raise RuntimeError(
            "device 'cuda' was requested (config key `device`) but torch sees no GPU; "
            "set `device: auto` or `device: cpu`"
        )
    return torch.device(preference)


def replica_tensor(value: float | Sequence[float], R: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.expand(R) if t.dim() == 0 else t


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


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


def cross_entropy_per_replica(net: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every replica, shape (R,): the net's outputs are class logits; ``Y`` holds integer
    labels, (N, 1) shared or (R, N, 1). Pass as ``fit(..., loss_fn=cross_entropy_per_replica)``."""
    logits = net(X)
    y = Y[..., 0].expand(logits.shape[:2])
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=1)


def fit(
    net: torch.nn.Module,
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-2,
    batch_size: int | None = None,
    l2: float | Sequence[float] = 0.0,
    penalty: Penalty | None = None,
    penalty_weight: float | Sequence[float] = 0.0,
    seed: int = 0,
    log_every: int = 0,
    callback: Callback | None = None,
    loss_fn: Callable = mse_per_replica,
    where: Where | None = None,
    progress_lines: int = 10,
    lr_final: float | None = None,
    optimizer: str = "adam",
    lbfgs: dict | None = None,
) -> FitResult:
    """Adam on the sum over replicas of  loss_r + l2_r * ||w_r||^2 + penalty_weight_r * penalty_r.

    ``batch_size=None`` is full-batch gradient descent; otherwise every epoch visits a fresh
    permutation drawn from a generator seeded with ``seed``. ``callback(epoch, net)`` runs at epoch
    0 and every ``log_every`` epochs (and after the last one), for tracking metrics during training.

    Modes: optimisation steps run in training mode (``net.train()``), the logged loss and the callback
    in eval mode (``net.eval()``), and the net is left in the mode it came in. This only matters for
    nets whose forward pass depends on the mode (the noisy RNN of :mod:`nnrds.rnn` injects noise in
    training mode only); for the others it changes nothing.

    ``where`` (default: :func:`nnrds.guards.current`, set by the study command) names the study, cell,
    config key and optionally each replica's label in the :class:`~nnrds.guards.NonFiniteError` raised
    when the loss, a gradient or a parameter stops being finite, and in the ``progress_lines`` progress
    lines logged per fit (epoch, mean/max epoch loss over replicas, elapsed, ETA).

    ``lr_final`` (default None: constant ``lr``): decay the learning rate geometrically, once per epoch, from
    ``lr`` to ``lr_final`` at the last epoch (Adam's steps then shrink instead of oscillating at the end).

    ``optimizer="lbfgs"``: full-batch L-BFGS with a strong-Wolfe line search, one independent optimizer per
    replica evaluated in batches (:mod:`nnrds.lbfgs`; ``lbfgs`` holds its options other than ``max_iter``);
    ``epochs`` is then the number of L-BFGS iterations per replica, ``lr`` its step scale, ``batch_size`` and
    ``seed`` are not used, and ``loss_fn`` may return ``(loss, parts)`` with ``parts`` a dict of (R,) tensors
    (e.g. the terms of a physics-informed loss) that the history records at every accepted iterate.
    """
    if optimizer == "lbfgs":
        return _fit_lbfgs(
            net,
            X,
            Y,
            epochs=epochs,
            lr=lr,
            l2=l2,
            penalty=penalty,
            penalty_weight=penalty_weight,
            loss_fn=loss_fn,
            where=where,
            progress_lines=progress_lines,
            options=lbfgs or {},
            callback=callback,
        )
    if optimizer != "adam":
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam' or 'lbfgs'")
    where = current() if where is None else where
    R = net.n_replicas
    ref = next(net.parameters())
    l2_t = replica_tensor(l2, R, ref)
    pw_t = replica_tensor(penalty_weight, R, ref)
    # foreach: one multi-tensor update for all parameters (bit-identical to the per-tensor loop; fused=True is not)
    opt = torch.optim.Adam(net.parameters(), lr=lr, foreach=True)
    use_l2 = bool(torch.any(l2_t != 0))  # once, not a host sync per step
    sched = None
    if lr_final is not None:
        if not 0 < lr_final <= lr:
            raise ValueError(f"lr_final must be in (0, lr = {lr}], got {lr_final}")
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(lr_final / lr) ** (1.0 / max(epochs - 1, 1)))
    n = X.shape[-2]
    gen = torch.Generator().manual_seed(seed)
    res = FitResult()
    t0 = time.perf_counter()

    was_training = net.training
    label = f"{where.study} {where.cell}" if (where.study, where.cell) != ("?", "?") else "fit"
    log_rate = max(1, math.ceil(epochs / max(1, progress_lines)))

    def check_net(epoch: int) -> None:
        step = f"epoch {epoch} of {epochs}"
        for what, tensors in (
            ("gradient", {k: p.grad for k, p in net.named_parameters()}),
            ("parameter", dict(net.named_parameters())),
        ):
            for name, t in tensors.items():
                if t is not None:
                    check_finite(
                        {name: t},
                        where=where,
                        step=step,
                        what=what,
                        batch_dim=0 if t.dim() and t.shape[0] == R else None,
                    )

    def evaluate(epoch: int) -> None:
        check_net(epoch)
        net.eval()
        with torch.no_grad():
            loss = loss_fn(net, X, Y)
        check_finite(
            loss.detach(),
            where=where,
            step=f"epoch {epoch} of {epochs} (evaluation)",
            what="loss",
            batch_dim=0 if loss.dim() and loss.shape[0] == R else None,
        )
        res.history += [{"epoch": epoch, "replica": r, "train_loss": float(v)} for r, v in enumerate(loss.cpu())]
        if callback is not None:
            callback(epoch, net)
        net.train()

    net.train()
    log.info(
        "%s: training %d replica(s) for %d epochs (%d points, batch size %s, lr %g)",
        label,
        R,
        epochs,
        n,
        batch_size or "full",
        lr,
    )
    if log_every:
        evaluate(0)
    t_last = t0
    for epoch in range(1, epochs + 1):
        # per-replica sum of the epoch's step objectives (float64; a scalar when loss_fn gives no per-replica
        # losses): one device->host sync per epoch to check it, not one per step
        acc: torch.Tensor | None = None
        n_steps = 0
        if batch_size is None or batch_size >= n:
            batches = [None]
        else:
            perm = torch.randperm(n, generator=gen).to(X.device)
            batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
        for idx in batches:
            xb = X if idx is None else X.index_select(X.dim() - 2, idx)
            yb = Y if idx is None else Y.index_select(Y.dim() - 2, idx)
            loss = loss_fn(net, xb, yb)
            if use_l2:
                loss = loss + l2_t * net.l2()
            if penalty is not None:
                loss = loss + pw_t * penalty(net, xb)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            step_loss = loss.detach().to(torch.float64)
            step_loss = step_loss.reshape(R) if step_loss.numel() == R else step_loss.sum().reshape(1)
            acc = step_loss if acc is None else acc + step_loss
            n_steps += 1
        if sched is not None and epoch < epochs:
            sched.step()
        if acc is not None and not bool(torch.isfinite(acc).all()):  # locate replica(s) only when non-finite
            check_finite(
                acc,
                where=where,
                step=f"epoch {epoch} of {epochs}",
                what="loss",
                batch_dim=0 if acc.numel() == R else None,
            )
        now = time.perf_counter()
        if acc is not None and (epoch % log_rate == 0 or epoch == epochs or now - t_last > 300):
            t_last = now
            m = (acc / max(n_steps, 1)).cpu()
            el = now - t0
            log.info(
                "%s: epoch %d/%d  loss mean %.4g max %.4g over %d replica(s)  elapsed %s  ETA %s",
                label,
                epoch,
                epochs,
                float(m.mean()),
                float(m.max()),
                R,
                _hms(el),
                _hms(el / epoch * (epochs - epoch)),
            )
        if log_every and (epoch % log_every == 0 or epoch == epochs):
            evaluate(epoch)
    check_net(epochs)
    net.train(was_training)
    res.wall_time_s = time.perf_counter() - t0
    res.epochs = epochs
    return res


def _fit_lbfgs(
    net: torch.nn.Module,
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    l2: float | Sequence[float],
    penalty: Penalty | None,
    penalty_weight: float | Sequence[float],
    loss_fn: Callable,
    where: Where | None,
    progress_lines: int,
    options: dict,
    callback: Callback | None,
) -> FitResult:
    """The L-BFGS path of :func:`fit` (see there). History: one row per replica and accepted iterate
    (``epoch`` = that replica's iteration, 0 = the start) with ``train_loss`` (the objective) and the parts.
    ``callback(epochs, net)`` runs once, after the last iteration."""
    from . import lbfgs as lb

    where = current() if where is None else where
    R = net.n_replicas
    params = [p for p in net.parameters() if p.requires_grad]
    ref = params[0]
    l2_t = replica_tensor(l2, R, ref)
    pw_t = replica_tensor(penalty_weight, R, ref)
    sizes = [p[0].numel() for p in params]
    label = f"{where.study} {where.cell}" if (where.study, where.cell) != ("?", "?") else "fit"
    res = FitResult()
    t0 = time.perf_counter()
    n_rounds = [0]

    def set_flat(theta: torch.Tensor) -> None:
        with torch.no_grad():
            for p, chunk in zip(params, torch.split(theta, sizes, dim=1)):
                p.copy_(chunk.reshape(p.shape))

    def evaluate(theta: torch.Tensor):
        set_flat(theta)
        for p in params:
            p.grad = None
        out = loss_fn(net, X, Y)
        loss, parts = out if isinstance(out, tuple) else (out, {})
        if torch.any(l2_t != 0):
            loss = loss + l2_t * net.l2()
        if penalty is not None:
            loss = loss + pw_t * penalty(net, X)
        loss.sum().backward()
        grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(R, -1) for p in params], 1)
        step = f"L-BFGS evaluation {n_rounds[0] + 1}"
        check_finite(loss.detach(), where=where, step=step, what="loss")
        check_finite(grads, where=where, step=step, what="gradient")
        aux = [{k: float(v[r].detach()) for k, v in parts.items()} for r in range(R)]
        return loss.detach(), grads.detach(), aux

    latest = [float("nan")] * R

    def record(r: int, it: int, loss: float, aux: dict | None) -> None:
        latest[r] = loss
        res.history.append({"epoch": it, "replica": r, "train_loss": loss, **(aux or {})})

    log_rate = max(1, math.ceil(epochs / max(1, progress_lines)))
    last = [-1]

    def on_round(rnd: int, done: list[int]) -> None:
        n_rounds[0] = rnd
        if progress_lines <= 0:  # the caller logs progress itself
            return
        lo = min(done)
        if lo // log_rate > last[0] // log_rate or lo == epochs and last[0] != epochs:
            last[0] = lo
            el = time.perf_counter() - t0
            cur = latest
            log.info(
                "%s: L-BFGS iteration %d/%d (slowest replica; %d batched evaluations)  loss mean %.4g max %.4g "
                "over %d replica(s)  elapsed %s  ETA %s",
                label,
                lo,
                epochs,
                rnd,
                float(np.mean(cur)),
                float(np.max(cur)),
                R,
                _hms(el),
                _hms(el / max(lo, 1) * (epochs - lo)),
            )

    was_training = net.training
    net.train()
    if progress_lines > 0:
        log.info(
            "%s: L-BFGS (strong Wolfe, per-replica line search) on %d replica(s) for %d iterations", label, R, epochs
        )
    theta0 = torch.cat([p.detach().reshape(R, -1) for p in params], 1)
    opts = lb.LBFGSOptions(max_iter=epochs, lr=lr, **options)
    theta = lb.minimize(evaluate, theta0, opts, record=record, on_round=on_round)
    set_flat(theta)
    for p in params:
        p.grad = None
    check_finite(dict(net.named_parameters()), where=where, step=f"after {epochs} L-BFGS iterations", what="parameter")
    res.history.sort(key=lambda h: (h["replica"], h["epoch"]))
    net.train(was_training)
    if callback is not None:
        callback(epochs, net)
    res.wall_time_s = time.perf_counter() - t0
    res.epochs = epochs
    return res
