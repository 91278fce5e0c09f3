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

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
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
    #: stop a replica once it has used this many function evaluations (checked after an iteration, as torch's
    #: ``max_eval``); None: no limit besides ``max_iter``
    max_eval: int | None = None


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


def minimize_generators(
    evaluate: Evaluate,
    theta0: torch.Tensor,
    options: LBFGSOptions = LBFGSOptions(),
    record: Record | None = None,
    on_round: Callable[[int, list[int]], None] | None = None,
) -> torch.Tensor:
    """The previous driver, kept as the reference of :func:`minimize` (tests, benchmarks/pinn_batching.md): one
    Python generator per replica (:func:`replica_lbfgs`), all requested points evaluated in one batched call,
    but every replica's line search and two-loop recursion run in Python on its own vectors. Same arguments as
    :func:`minimize`; ``options.max_eval`` is not supported here."""
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


# ------------------------------------------------------------------------------------------ vectorized driver
#: per-replica phases of :func:`minimize`
_NEWDIR, _BRACKET, _ZOOM, _DONE = 0, 1, 2, 3
#: why a replica stopped (``Info.reason``)
REASONS = (
    "max_iter",
    "max_eval",
    "tolerance_grad",
    "tolerance_change_step",
    "tolerance_change_loss",
    "no_descent",
    "inactive",
)


@dataclass
class Info:
    """Per-replica account of a :func:`minimize` run (arrays of length R)."""

    iterations: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    evaluations: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    reason: list[str] = field(default_factory=list)
    #: seconds from the start of the batch until the replica stopped (its share of a batch has no own clock)
    wall_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rounds: int = 0  # batched evaluations
    kept: dict = field(default_factory=dict)  # iteration count -> iterates (R, P), see :func:`minimize`


def _cubic_min_v(x1, f1, g1, x2, f2, g2, lo, hi) -> np.ndarray:
    """:func:`_cubic_min` on arrays (same operations in the same order, so the same float64 results)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        disc = d1 * d1 - g1 * g2
        d2 = np.sqrt(np.where(disc < 0, 0.0, disc))
        m_a = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        m_b = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    m = np.where(x1 <= x2, m_a, m_b)
    m = np.minimum(np.maximum(m, lo), hi)
    return np.where(disc < 0, (lo + hi) / 2, m)


def minimize(
    evaluate: Evaluate,
    theta0: torch.Tensor,
    options: LBFGSOptions = LBFGSOptions(),
    record: Record | None = None,
    on_round: Callable[[int, list[int]], None] | None = None,
    info: Info | None = None,
    keep_at: Sequence[int] = (),
    active: np.ndarray | None = None,
) -> torch.Tensor:
    """Minimize R independent losses from ``theta0`` (R, P); returns the final points (R, P).

    Every replica runs its own L-BFGS (own history, step length and strong-Wolfe state), vectorized over the
    replicas: the per-replica state lives in arrays of length R (scalars: float64 on the host; vectors: tensors
    (R, P) on the device), every round makes ONE batched call ``evaluate(points (R, P))`` in which every replica
    that is still running gets its next trial point (a replica that has stopped is evaluated at its final point
    and masked out), and each branch of the line search and of the two-loop recursion is applied to all replicas
    it concerns at once through masks. The decisions and operations per replica are those of
    :func:`replica_lbfgs` (and of ``torch.optim.LBFGS``), so a replica's iterates do not depend on its batch
    companions (tested bit for bit in float64 against :func:`minimize_generators` and a lone run).

    ``record(r, iteration, loss, aux_r)`` sees every accepted iterate of replica r; ``on_round(round,
    iterations_done_per_replica)`` runs after every batched evaluation (progress logging); ``info``, when given,
    is filled with per-replica iterations, evaluations, stop reason and time (:class:`Info`), and with the
    iterates after each count of ``keep_at`` iterations (``Info.kept[c]`` (R, P): a replica that stopped before
    c iterations contributes its final point). ``active`` (R,) bool, when given: the replicas that are not active
    stay at ``theta0`` (stop reason ``inactive``, 0 iterations), e.g. replicas that finished a schedule of
    rounds while their batch companions go on."""
    o = options
    R, P = theta0.shape
    dev, dt = theta0.device, theta0.dtype
    m_hist = int(o.history_size)
    t_start = time.perf_counter()

    def host(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float64).numpy()

    X = theta0.detach().clone()
    F0, G, aux0 = evaluate(X)
    G = G.detach().clone()
    rnd = 0
    auxes = {0: aux0}
    f = host(F0)
    n_evals = np.ones(R, dtype=int)
    it = np.zeros(R, dtype=int)
    cur_aux = np.zeros(R, dtype=int)  # round whose aux belongs to the current iterate
    reason = [""] * R
    wall = np.zeros(R)

    def rec(mask: np.ndarray) -> None:
        if record is None:
            return
        for r in np.flatnonzero(mask):
            a = auxes[int(cur_aux[r])]
            record(int(r), int(it[r]), float(f[r]), None if a is None else a[int(r)])

    rec(np.ones(R, dtype=bool))
    phase = np.full(R, _NEWDIR)
    gmax = host(G.abs().amax(1))
    stop0 = gmax <= o.tolerance_grad
    phase[stop0] = _DONE
    for r in np.flatnonzero(stop0):
        reason[r] = "tolerance_grad"
    if active is not None:
        off = ~np.asarray(active, dtype=bool) & (phase != _DONE)
        phase[off] = _DONE
        for r in np.flatnonzero(off):
            reason[r] = "inactive"

    # history: ring buffers (R, m, P); slot of the j-th newest pair = (head - 1 - j) mod m
    S = torch.zeros(R, m_hist, P, dtype=dt, device=dev)
    Y = torch.zeros_like(S)
    ro = torch.zeros(R, m_hist, dtype=dt, device=dev)
    head = np.zeros(R, dtype=int)
    n_hist = np.zeros(R, dtype=int)
    h_diag = torch.ones(R, dtype=dt, device=dev)
    D = torch.zeros_like(X)
    G_prev = G.clone()
    t_acc = np.zeros(R)  # accepted step of the last iteration
    f_prev_it = f.copy()
    # line-search state
    f0 = f.copy()  # loss at the start of the line search
    gtd0 = np.zeros(R)
    d_norm = np.zeros(R)
    t = np.zeros(R)  # current trial step
    n_ls = np.zeros(R, dtype=int)
    t_p, f_p, gtd_p = np.zeros(R), np.zeros(R), np.zeros(R)
    G_p = G.clone()
    aux_p = np.full(R, -1)
    b_t, b_f, b_gtd = np.zeros((R, 2)), np.zeros((R, 2)), np.zeros((R, 2))
    b_aux = np.full((R, 2), -1)
    B_g = [G.clone(), G.clone()]
    lo = np.zeros(R, dtype=int)
    insuff = np.zeros(R, dtype=bool)

    def mcol(mask: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(mask, device=dev)[:, None]

    def set_bracket(mask: np.ndarray, slot, tt, ff, gg, GG: torch.Tensor, aa) -> None:
        """bracket[slot] = (tt, ff, gg, GG, aa) where mask; slot: int or array of 0/1."""
        slot = np.broadcast_to(np.asarray(slot), (R,))
        for k in (0, 1):
            mk = mask & (slot == k)
            if not mk.any():
                continue
            b_t[mk, k] = np.broadcast_to(tt, (R,))[mk]
            b_f[mk, k] = np.broadcast_to(ff, (R,))[mk]
            b_gtd[mk, k] = np.broadcast_to(gg, (R,))[mk]
            b_aux[mk, k] = np.broadcast_to(aa, (R,))[mk]
            B_g[k] = torch.where(mcol(mk), GG, B_g[k])

    def stop(mask: np.ndarray, why: str) -> None:
        for r in np.flatnonzero(mask & (phase != _DONE)):
            reason[r] = why
            wall[r] = time.perf_counter() - t_start
        phase[mask] = _DONE

    def new_direction(mask: np.ndarray) -> None:
        """Start the next iteration of the replicas in ``mask``: history update, two-loop recursion, first
        trial step (or stop when d is no descent direction)."""
        nonlocal S, Y, ro, h_diag, D, G_prev, G_p
        if not mask.any():
            return
        later = mask & (it > 0)
        if later.any():
            y = G - G_prev
            s = D * torch.as_tensor(t_acc, dtype=dt, device=dev)[:, None]
            ys_t = (y * s).sum(-1)
            ys = host(ys_t)
            upd = later & (ys > 1e-10)
            if upd.any():
                idx = np.flatnonzero(upd)
                it_ = torch.as_tensor(idx, device=dev)
                sl = torch.as_tensor(head[idx], device=dev)
                S[it_, sl] = s[it_]
                Y[it_, sl] = y[it_]
                ro[it_, sl] = 1.0 / ys_t[it_]
                head[idx] = (head[idx] + 1) % m_hist
                n_hist[idx] = np.minimum(n_hist[idx] + 1, m_hist)
                h_new = ys_t / (y * y).sum(-1)
                h_diag = torch.where(torch.as_tensor(upd, device=dev), h_new, h_diag)
            # two-loop recursion over the replicas of ``later`` (pairs a replica lacks contribute exact zeros)
            sub = np.flatnonzero(later)
            rs = torch.as_tensor(sub, device=dev)
            q = -G[rs]
            J = int(n_hist[sub].max())
            al, pairs = [], []
            for j in range(J):
                valid = n_hist[sub] > j
                slot = torch.as_tensor((head[sub] - 1 - j) % m_hist, device=dev)
                s_j, y_j = S[rs, slot], Y[rs, slot]
                ro_j = torch.where(torch.as_tensor(valid, device=dev), ro[rs, slot], torch.zeros((), dtype=dt))
                a_j = (s_j * q).sum(-1) * ro_j
                q = q - a_j[:, None] * y_j
                al.append(a_j)
                pairs.append((s_j, y_j, ro_j))
            d = q * h_diag[rs][:, None]
            for j in range(J - 1, -1, -1):
                s_j, y_j, ro_j = pairs[j]
                be = (y_j * d).sum(-1) * ro_j
                d = d + (al[j] - be)[:, None] * s_j
            D[rs] = d
        first = mask & (it == 0)
        if first.any():
            D = torch.where(mcol(first), -G, D)
        G_prev = torch.where(mcol(mask), G, G_prev)
        f_prev_it[mask] = f[mask]
        gtd = host((G * D).sum(-1))
        t_new = np.full(R, float(o.lr))
        if first.any():
            gsum = host(G.abs().sum(-1))
            with np.errstate(divide="ignore"):
                t_new = np.where(first, np.minimum(1.0, 1.0 / gsum) * o.lr, t_new)
        nodesc = mask & (gtd > -o.tolerance_change)
        stop(nodesc, "no_descent")
        go = mask & ~nodesc
        if not go.any():
            return
        gtd0[go], f0[go], t[go] = gtd[go], f[go], t_new[go]
        d_norm[go] = host(D.abs().amax(1))[go]
        t_p[go], f_p[go], gtd_p[go], aux_p[go] = 0.0, f[go], gtd[go], -1
        G_p = torch.where(mcol(go), G, G_p)
        n_ls[go] = 0
        phase[go] = _BRACKET

    def finish(mask: np.ndarray, tt, ff, GG: torch.Tensor, aa) -> None:
        """Accept the line search's result where mask: step, iterate, record, stopping rules."""
        nonlocal X, G
        if not mask.any():
            return
        tt, ff, aa = (np.broadcast_to(v, (R,)) for v in (tt, ff, aa))
        t_acc[mask] = tt[mask]
        tcol = torch.as_tensor(np.where(mask, tt, 0.0), dtype=dt, device=dev)[:, None]
        X = torch.where(mcol(mask), X + tcol * D, X)
        G = torch.where(mcol(mask), GG, G)
        f[mask] = ff[mask]
        keep = mask & (aa >= 0)
        cur_aux[keep] = aa[keep]
        it[mask] += 1
        for c in kept:
            hit = mask & (it == c)
            if hit.any():
                kept[c] = torch.where(mcol(hit), X, kept[c])
        rec(mask)
        gm = host(G.abs().amax(1))
        step = host((D * tcol).abs().amax(1))
        rules = [
            ("max_iter", it >= o.max_iter),
            ("max_eval", n_evals >= (o.max_eval if o.max_eval is not None else np.iinfo(np.int64).max)),
            ("tolerance_grad", gm <= o.tolerance_grad),
            ("tolerance_change_step", step <= o.tolerance_change),
            ("tolerance_change_loss", np.abs(f - f_prev_it) < o.tolerance_change),
        ]
        left = mask.copy()
        for why, cond in rules:
            hit = left & cond
            stop(hit, why)
            left &= ~hit
        phase[left] = _NEWDIR

    def zoom_next(mask: np.ndarray) -> None:
        """Top of the zoom loop (N&W Alg. 3.6) for the replicas in ``mask``: end the search or pick a trial."""
        if not mask.any():
            return
        out = mask & ((n_ls > o.max_ls) | (np.abs(b_t[:, 1] - b_t[:, 0]) * d_norm < o.tolerance_change))
        if out.any():
            lo_g = torch.where(mcol(lo == 0), B_g[0], B_g[1])
            finish(out, b_t[rows_np, lo], b_f[rows_np, lo], lo_g, b_aux[rows_np, lo])
        go = mask & ~out
        if not go.any():
            return
        a, b = np.minimum(b_t[:, 0], b_t[:, 1]), np.maximum(b_t[:, 0], b_t[:, 1])
        tc = _cubic_min_v(b_t[:, 0], b_f[:, 0], b_gtd[:, 0], b_t[:, 1], b_f[:, 1], b_gtd[:, 1], a, b)
        eps = 0.1 * (b - a)
        near = np.minimum(b - tc, tc - a) < eps
        move = near & (insuff | (tc >= b) | (tc <= a))
        moved = np.where(np.abs(tc - b) < np.abs(tc - a), b - eps, a + eps)
        tc = np.where(move, moved, tc)
        new_ins = np.where(near, ~move, False)
        insuff[go] = new_ins[go]
        t[go] = tc[go]
        phase[go] = _ZOOM

    rows_np = np.arange(R)
    kept = {int(c): X.clone() for c in keep_at if int(c) > 0}
    new_direction(phase == _NEWDIR)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # masked-out lanes may hold inf/nan
        while True:
            active = (phase == _BRACKET) | (phase == _ZOOM)
            if not active.any():
                break
            tcol = torch.as_tensor(np.where(active, t, 0.0), dtype=dt, device=dev)[:, None]
            pts = torch.where(mcol(active), X + tcol * D, X)
            Fn, Gn, auxn = evaluate(pts)
            Gn = Gn.detach()
            rnd += 1
            auxes[rnd] = auxn
            n_evals[active] += 1
            n_ls[active] += 1
            fn = host(Fn)
            gtdn = host((Gn * D).sum(-1))
            # ---- bracketing phase (N&W Alg. 3.5)
            mb = active & (phase == _BRACKET)
            to_zoom = np.zeros(R, dtype=bool)
            if mb.any():
                left = mb.copy()
                A = left & (n_ls > o.max_ls)  # no bracket found: zoom cannot run either
                set_bracket(A, 0, 0.0, f0, gtd0, G, -1)
                set_bracket(A, 1, t, fn, gtdn, Gn, rnd)
                left &= ~A
                B = left & ((fn > f0 + o.c1 * t * gtd0) | ((n_ls > 2) & (fn >= f_p)))
                left &= ~B
                C = left & (np.abs(gtdn) <= -o.c2 * gtd0)
                left &= ~C
                Dm = left & (gtdn >= 0)
                left &= ~Dm
                BD = B | Dm
                set_bracket(BD, 0, t_p, f_p, gtd_p, G_p, aux_p)
                set_bracket(BD, 1, t, fn, gtdn, Gn, rnd)
                to_zoom = A | BD
                finish(C, t.copy(), fn, Gn, rnd)
                if left.any():  # extrapolate
                    tn = _cubic_min_v(t_p, f_p, gtd_p, t, fn, gtdn, t + 0.01 * (t - t_p), 10 * t)
                    t_p[left], f_p[left], gtd_p[left], aux_p[left] = t[left], fn[left], gtdn[left], rnd
                    G_p = torch.where(mcol(left), Gn, G_p)
                    t[left] = tn[left]
            # ---- zoom phase: receive
            mz = active & (phase == _ZOOM)
            if mz.any():
                hi = 1 - lo
                worse = mz & ((fn > f0 + o.c1 * t * gtd0) | (fn >= b_f[rows_np, lo]))
                set_bracket(worse, hi, t, fn, gtdn, Gn, rnd)
                lo = np.where(worse, np.where(b_f[:, 0] <= b_f[:, 1], 0, 1), lo)
                better = mz & ~worse
                done = better & (np.abs(gtdn) <= -o.c2 * gtd0)
                flip = better & ~done & (gtdn * (b_t[rows_np, hi] - b_t[rows_np, lo]) >= 0)
                lo_g = torch.where(mcol(lo == 0), B_g[0], B_g[1])
                set_bracket(flip, hi, b_t[rows_np, lo], b_f[rows_np, lo], b_gtd[rows_np, lo], lo_g, b_aux[rows_np, lo])
                set_bracket(better, lo, t, fn, gtdn, Gn, rnd)
                lo_g = torch.where(mcol(lo == 0), B_g[0], B_g[1])
                finish(done, b_t[rows_np, lo], b_f[rows_np, lo], lo_g, b_aux[rows_np, lo])
                zoom_next(mz & ~done)
            # ---- zoom phase: start (insufficient-progress flag cleared, as in N&W)
            if to_zoom.any():
                lo = np.where(to_zoom, np.where(b_f[:, 0] <= b_f[:, 1], 0, 1), lo)
                insuff[to_zoom] = False
                zoom_next(to_zoom)
            new_direction(phase == _NEWDIR)
            keep = {int(v) for v in cur_aux} | {int(v) for v in aux_p} | {int(v) for v in b_aux.ravel()} | {rnd}
            for k in [k for k in auxes if k not in keep]:
                del auxes[k]
            if on_round is not None:
                on_round(rnd, it.tolist())
    if info is not None:
        info.iterations, info.evaluations, info.reason = it.copy(), n_evals.copy(), list(reason)
        info.wall_s, info.rounds = wall, rnd
        short = {c: torch.as_tensor(it < c, device=dev)[:, None] for c in kept}
        info.kept = {c: torch.where(short[c], X, v) for c, v in kept.items()}
        if 0 in {int(c) for c in keep_at}:
            info.kept[0] = theta0.detach().clone()
    return X
