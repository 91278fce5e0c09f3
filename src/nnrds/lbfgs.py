"""L-BFGS with a strong-Wolfe line search, one independent optimizer per replica, evaluated in batches.

A line search over the *sum* of the replica losses would couple the replicas (one step length, one curvature
history for all), so a replica's trajectory would depend on its batch companions. Here every replica runs its
own L-BFGS -- its own history, two-loop recursion, step length and line-search state machine -- written as a
Python generator that yields the point it wants evaluated next and receives (loss, gradient) there. The driver
:func:`minimize` advances all generators in lockstep and evaluates all requested points in ONE batched call
(replicas are separable: loss_r depends only on replica r's parameters), so the expensive part is batched while
the per-replica decisions stay exactly those of a lone run. A replica that has finished keeps being evaluated
at its final point (the result is discarded), so the batch keeps its shape.

The algorithm follows Nocedal & Wright (2006), Alg. 7.4 (two-loop recursion, initial scaling
H0 = s'y / y'y) and Alg. 3.5/3.6 (strong-Wolfe bracketing and zoom with safeguarded cubic interpolation),
with the constants and stopping rules of ``torch.optim.LBFGS`` (c1 = 1e-4, c2 = 0.9, 25 evaluations per line
search, first step min(1, 1/||g||_1) * lr; stop on ||g||_inf <= tolerance_grad, a step or loss change below
tolerance_change).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch

#: evaluate(theta (R, P)) -> (loss (R,), gradient (R, P), aux): aux is anything indexable by replica or None
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, object]]
#: record(replica, iteration, loss, aux_of_replica) at every accepted iterate (iteration 0 = the start)
Record = Callable[[int, int, float, object], None]


@dataclass(frozen=True)
class LBFGSOptions:
    max_iter: int = 100
    lr: float = 1.0
    history_size: int = 50
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9
    max_ls: int = 25
    c1: float = 1e-4
    c2: float = 0.9


def _cubic_min(
    x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, bounds: tuple[float, float] | None = None
) -> float:
    """Minimizer of the cubic through (x1, f1, g1), (x2, f2, g2), clipped to ``bounds`` (default: [x1, x2]);
    the midpoint when the cubic has no minimizer."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2
    d2 = disc**0.5
    if x1 <= x2:
        m = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        m = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(m, lo), hi)


Gen = Generator[torch.Tensor, tuple, tuple]


def _strong_wolfe(
    x: torch.Tensor, t: float, d: torch.Tensor, f: float, g: torch.Tensor, gtd: float, o: LBFGSOptions
) -> Gen:
    """Line search along d from x: yields trial points, returns (f, g, aux, t) at the accepted step."""
    d_norm = float(d.abs().max())
    f_new, g_new, aux_new = yield x + t * d
    gtd_new = float(g_new.dot(d))
    t_prev, f_prev, g_prev, gtd_prev, aux_prev = 0.0, f, g, gtd, None
    n_eval, done = 1, False
    # bracketing phase (N&W Alg. 3.5)
    while True:
        if n_eval > o.max_ls:  # no bracket found: the zoom phase cannot run either
            br = [[0.0, f, g, gtd, None], [t, f_new, g_new, gtd_new, aux_new]]
            break
        if f_new > f + o.c1 * t * gtd or (n_eval > 2 and f_new >= f_prev):
            br = [[t_prev, f_prev, g_prev, gtd_prev, aux_prev], [t, f_new, g_new, gtd_new, aux_new]]
            break
        if abs(gtd_new) <= -o.c2 * gtd:
            br, done = [[t, f_new, g_new, gtd_new, aux_new]], True
            break
        if gtd_new >= 0:
            br = [[t_prev, f_prev, g_prev, gtd_prev, aux_prev], [t, f_new, g_new, gtd_new, aux_new]]
            break
        t_next = _cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(t + 0.01 * (t - t_prev), 10 * t))
        t_prev, f_prev, g_prev, gtd_prev, aux_prev = t, f_new, g_new, gtd_new, aux_new
        t = t_next
        f_new, g_new, aux_new = yield x + t * d
        gtd_new = float(g_new.dot(d))
        n_eval += 1
    if done:
        b = br[0]
        return b[1], b[2], b[4], b[0]
    # zoom phase (N&W Alg. 3.6): br[lo] has the lower loss
    lo, hi = (0, 1) if br[0][1] <= br[1][1] else (1, 0)
    insufficient = False
    while n_eval <= o.max_ls:
        if abs(br[1][0] - br[0][0]) * d_norm < o.tolerance_change:
            break
        t = _cubic_min(br[0][0], br[0][1], br[0][3], br[1][0], br[1][1], br[1][3])
        a, b = min(br[0][0], br[1][0]), max(br[0][0], br[1][0])
        eps = 0.1 * (b - a)
        if min(b - t, t - a) < eps:  # too close to an end: move it inside, unless the last one progressed
            if insufficient or t >= b or t <= a:
                t = b - eps if abs(t - b) < abs(t - a) else a + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new, aux_new = yield x + t * d
        gtd_new = float(g_new.dot(d))
        n_eval += 1
        if f_new > f + o.c1 * t * gtd or f_new >= br[lo][1]:
            br[hi] = [t, f_new, g_new, gtd_new, aux_new]
            lo, hi = (0, 1) if br[0][1] <= br[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -o.c2 * gtd:
                done = True
            elif gtd_new * (br[hi][0] - br[lo][0]) >= 0:
                br[hi] = list(br[lo])
            br[lo] = [t, f_new, g_new, gtd_new, aux_new]
            if done:
                break
    b = br[lo]
    return b[1], b[2], b[4], b[0]


def replica_lbfgs(x0: torch.Tensor, o: LBFGSOptions, record: Callable[[int, float, object], None]) -> Gen:
    """L-BFGS of ONE replica as a generator: yields points (P,), receives (loss, gradient (P,), aux) there,
    calls ``record(iteration, loss, aux)`` at every accepted iterate; returns the final point."""
    x = x0.clone()
    f, g, aux = yield x
    record(0, f, aux)
    if float(g.abs().max()) <= o.tolerance_grad:
        return x
    old_s: list[torch.Tensor] = []
    old_y: list[torch.Tensor] = []
    ro: list[float] = []
    h_diag, d, t, g_prev = 1.0, -g, 0.0, g
    for it in range(1, o.max_iter + 1):
        if it > 1:
            y, s = g - g_prev, d * t
            ys = float(y.dot(s))
            if ys > 1e-10:
                if len(old_s) == o.history_size:
                    old_s.pop(0), old_y.pop(0), ro.pop(0)
                old_s.append(s), old_y.append(y), ro.append(1.0 / ys)
                h_diag = ys / float(y.dot(y))
            q = -g
            al = [0.0] * len(old_s)
            for i in range(len(old_s) - 1, -1, -1):
                al[i] = float(old_s[i].dot(q)) * ro[i]
                q = q - al[i] * old_y[i]
            d = q * h_diag
            for i in range(len(old_s)):
                be = float(old_y[i].dot(d)) * ro[i]
                d = d + (al[i] - be) * old_s[i]
        g_prev, f_prev = g, f
        t = min(1.0, 1.0 / float(g.abs().sum())) * o.lr if it == 1 else o.lr
        gtd = float(g.dot(d))
        if gtd > -o.tolerance_change:
            break
        f, g, aux_new, t = yield from _strong_wolfe(x, t, d, f, g, gtd, o)
        aux = aux if aux_new is None else aux_new  # step 0 accepted: still at the previous point
        x = x + t * d
        record(it, f, aux)
        if (
            float(g.abs().max()) <= o.tolerance_grad
            or float((d * t).abs().max()) <= o.tolerance_change
            or abs(f - f_prev) < o.tolerance_change
        ):
            break
    return x


def minimize(
    evaluate: Evaluate,
    theta0: torch.Tensor,
    options: LBFGSOptions = LBFGSOptions(),
    record: Record | None = None,
    on_round: Callable[[int, list[int]], None] | None = None,
) -> torch.Tensor:
    """Minimize R independent losses from ``theta0`` (R, P); returns the final points (R, P).

    ``evaluate`` gets all replicas' requested points at once; ``record(r, iteration, loss, aux_r)`` sees every
    accepted iterate of replica r; ``on_round(round, iterations_done_per_replica)`` runs after every batched
    evaluation (progress logging)."""
    R = theta0.shape[0]
    done_iter = [0] * R

    def rec(r: int):
        def f(it: int, loss: float, aux: object) -> None:
            done_iter[r] = it
            if record is not None:
                record(r, it, loss, aux)

        return f

    gens = [replica_lbfgs(theta0[r], options, rec(r)) for r in range(R)]
    points = [next(gn) for gn in gens]
    final: list[torch.Tensor | None] = [None] * R
    rnd = 0
    while any(v is None for v in final):
        F, G, aux = evaluate(torch.stack([p if final[r] is None else final[r] for r, p in enumerate(points)]))
        rnd += 1
        for r, gn in enumerate(gens):
            if final[r] is not None:
                continue
            a = None if aux is None else aux[r]
            try:
                points[r] = gn.send((float(F[r]), G[r], a))
            except StopIteration as stop:
                final[r] = stop.value
        if on_round is not None:
            on_round(rnd, list(done_iter))
    return torch.stack(final)  # type: ignore[arg-type]
