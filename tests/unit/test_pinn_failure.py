"""PINN failure-mode study: reference solutions, PINN residual, per-replica L-BFGS, training-mode hand-offs, loss
landscapes, claims."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds import landscape, lbfgs, pinn, verdicts
from nnrds.data import pde
from nnrds.experiment import Cell
from nnrds.models import Arch, ReplicaNet
from nnrds.studies import pinn_failure as pf
from nnrds.train import fit


# ------------------------------------------------------------------------------------------- reference solutions
@pytest.mark.parametrize(
    "problem, coef, nx, tol",
    [
        ("convection", {"beta": 40.0}, 512, 1e-6),
        ("convection", {"beta": 1.0}, 256, 1e-6),
        ("reaction", {"rho": 10.0}, 256, 1e-7),
        ("reaction_diffusion", {"rho": 5.0, "nu": 6.0}, 512, 1e-5),
        ("reaction_diffusion", {"rho": 10.0, "nu": 2.0}, 512, 1e-5),
    ],
)
def test_reference_matches_method_of_lines(problem, coef, nx, tol):
    """Exact / closed-form / splitting references agree with an independent finite-difference + solve_ivp
    solver on a finer grid to a relative L2 tolerance of 1e-5 (1e-6 for convection)."""
    x, t = pde.grid()  # the splitting's steps are tied to the evaluation grid (8 per interval)
    u = pde.reference_solution(problem, coef, x, t)
    _, uf = pde.method_of_lines(problem, coef, nx, t, rtol=1e-9, atol=1e-11)
    uf = uf[:, :: nx // 256]
    assert np.linalg.norm(u - uf) / np.linalg.norm(uf) < tol


def test_references_closed_forms():
    x, t = pde.grid()
    np.testing.assert_allclose(
        pde.reference_solution("convection", {"beta": 30.0}, x, t), np.sin(x[None, :] - 30.0 * t[:, None]), atol=1e-10
    )
    u = pde.reference_solution("reaction", {"rho": 7.0}, x, t)
    # the logistic ODE holds pointwise (central differences in t)
    dudt = (u[2:] - u[:-2]) / (t[2:] - t[:-2])[:, None]
    np.testing.assert_allclose(dudt, 7.0 * u[1:-1] * (1 - u[1:-1]), atol=2e-2)
    # splitting converges at second order in the substep
    e = [
        np.abs(
            pde.reaction_diffusion_solution(pde.gaussian_ic(x), t[:11], 5.0, 3.0, substeps=s)
            - pde.reaction_diffusion_solution(pde.gaussian_ic(x), t[:11], 5.0, 3.0, substeps=64)
        ).max()
        for s in (1, 2)
    ]
    assert 3.0 < e[0] / e[1] < 5.0
    with pytest.raises(ValueError, match="unknown PDE problem"):
        pde.reference_solution("burgers", {}, x, t)


# ------------------------------------------------------------------------------------------------ PINN residual
def test_residual_matches_analytic():
    """u = sin(x) exp(-t) + x^2 t: u_t = -sin x e^-t + x^2, u_x = cos x e^-t + 2 x t, u_xx = -sin x e^-t + 2 t."""
    g = torch.Generator().manual_seed(0)
    X = torch.stack(
        [
            torch.rand(2, 50, generator=g, dtype=torch.float64) * 2 * math.pi,
            torch.rand(2, 50, generator=g, dtype=torch.float64),
        ],
        -1,
    )

    def u_fn(Z):
        x, t = Z[..., 0], Z[..., 1]
        return (torch.sin(x) * torch.exp(-t) + x**2 * t)[..., None]

    beta, nu, rho = (torch.tensor(v, dtype=torch.float64) for v in ([3.0, 0.0], [0.0, 2.0], [1.5, 4.0]))
    r = pinn.residual(u_fn, X, beta, nu, rho)
    x, t = X[..., 0], X[..., 1]
    u = torch.sin(x) * torch.exp(-t) + x**2 * t
    ut, ux, uxx = (
        -torch.sin(x) * torch.exp(-t) + x**2,
        torch.cos(x) * torch.exp(-t) + 2 * x * t,
        -torch.sin(x) * torch.exp(-t) + 2 * t,
    )
    expect = ut + beta[:, None] * ux - nu[:, None] * uxx - rho[:, None] * u * (1 - u)
    torch.testing.assert_close(r, expect, rtol=1e-12, atol=1e-12)
    # and a wrong coefficient gives a different residual (the test can fail)
    assert not torch.allclose(pinn.residual(u_fn, X, beta + 1, nu, rho), expect)


def test_pinn_loss_is_zero_on_exact_solution():
    """The convection solution sin(x - beta t) has zero IC, BC and residual loss."""
    setup = pinn.Setup(
        "convection", {"beta": np.array([5.0]), "nu": np.zeros(1), "rho": np.zeros(1)}, [0], 64, 1, dtype=torch.float64
    )
    loss = setup.loss(setup.coefs, 0.0, 1.0, setup.tensor(setup.u0[None]))

    def exact(Z):
        return torch.sin(Z[..., 0] - 5.0 * Z[..., 1])[..., None]

    parts = loss.parts(exact)
    for k, v in parts.items():
        assert float(v.detach().abs().max()) < 1e-20, k


# ------------------------------------------------------------------------------------------------------- L-BFGS
def _rosen(x):
    return (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(-1)


def _evaluate(th):
    th = th.detach().requires_grad_(True)
    f = _rosen(th)
    (g,) = torch.autograd.grad(f.sum(), th)
    return f.detach(), g, None


def test_lbfgs_matches_torch_and_batch_companions_do_not_matter():
    x0 = torch.tensor([[-1.2, 1.0, 0.5, -0.3], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, -1.0, 1.0]], dtype=torch.float64)
    o = lbfgs.LBFGSOptions(max_iter=25, history_size=5)
    out = lbfgs.minimize(_evaluate, x0, o)
    for r in range(3):
        p = x0[r].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([p], lr=1, max_iter=25, max_eval=10**6, history_size=5, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            f = _rosen(p)
            f.backward()
            return f

        opt.step(closure)
        torch.testing.assert_close(out[r], p.detach(), rtol=0, atol=1e-10)
        alone = lbfgs.minimize(_evaluate, x0[r : r + 1], o)
        assert torch.equal(out[r], alone[0])
    assert float(_rosen(out[1])) < 1e-3 * float(_rosen(x0[1]))  # it does minimize


def _torch_lbfgs(x0, loss, **kw):
    p = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([p], line_search_fn="strong_wolfe", **kw)

    def closure():
        opt.zero_grad()
        f = loss(p)
        f.backward()
        return f

    opt.step(closure)
    st = opt.state[opt._params[0]]
    return p.detach(), st["n_iter"], st["func_evals"]


def test_vectorized_lbfgs_stops_each_replica_as_torch_does():
    """Replicas that stop at different iterations for different reasons (gradient at the start, loss change,
    iteration cap, evaluation cap): every replica's point, iteration count and evaluation count are torch's;
    the batched driver agrees with the per-replica generator driver; a wrong expectation would fail."""
    x0 = torch.tensor(
        [[-1.2, 1.0, 0.5, -0.3], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, -1.0, 1.0], [0.3, -0.8, 1.5, 0.1]],
        dtype=torch.float64,
    )
    for kw in (
        dict(max_iter=200, tolerance_change=1e-6, history_size=4),
        dict(max_iter=7, history_size=3),
        dict(max_iter=200, max_eval=30, history_size=10),
    ):
        o = lbfgs.LBFGSOptions(**kw)
        info = lbfgs.Info()
        out = lbfgs.minimize(_evaluate, x0, o, info=info)
        ref = lbfgs.minimize_generators(_evaluate, x0, lbfgs.LBFGSOptions(**{**kw, "max_eval": None}))
        for r in range(4):
            p, n_iter, n_eval = _torch_lbfgs(
                x0[r],
                _rosen,
                lr=1,
                max_eval=kw.get("max_eval", 10**6),
                **{k: v for k, v in kw.items() if k != "max_eval"},
            )
            torch.testing.assert_close(out[r], p, rtol=0, atol=1e-10)
            assert info.evaluations[r] == n_eval, (kw, r)
            # torch also counts the iteration that stops because d is no descent direction
            assert info.iterations[r] + (info.reason[r] == "no_descent") == n_iter, (kw, r)
            if "max_eval" not in kw:
                torch.testing.assert_close(out[r], ref[r], rtol=0, atol=1e-12)
        assert info.reason[1] == "tolerance_grad" and len(set(info.reason)) >= 2
    assert info.reason[2] == "max_eval" and info.evaluations[2] >= 30 and info.wall_s.min() >= 0
    with pytest.raises(AssertionError):  # the comparison can fail: another history size gives other iterates
        p, _, _ = _torch_lbfgs(x0[0], _rosen, lr=1, max_iter=200, history_size=2, max_eval=30)
        torch.testing.assert_close(out[0], p, rtol=0, atol=1e-10)


def test_fit_lbfgs_records_parts_and_keeps_replicas_independent():
    torch.manual_seed(0)
    X = torch.linspace(-1, 1, 40, dtype=torch.float64)[:, None]
    Y = torch.sin(3 * X)

    def loss_fn(net, X, Y):
        e = (net(X) - Y).pow(2).mean(dim=(1, 2))
        return e, {"mse": e}

    arch = Arch(1, 1, 8, 2, param="mlp")
    both = ReplicaNet(arch, [3, 4], dtype=torch.float64)
    res = fit(both, X, Y, epochs=15, loss_fn=loss_fn, optimizer="lbfgs")
    one = ReplicaNet(arch, [4], dtype=torch.float64)
    fit(one, X, Y, epochs=15, loss_fn=loss_fn, optimizer="lbfgs")
    torch.testing.assert_close(both(X)[1], one(X)[0], rtol=0, atol=1e-12)
    h = pd.DataFrame(res.history)
    assert {"epoch", "replica", "train_loss", "mse"} <= set(h.columns)
    assert h.groupby("replica").train_loss.last().max() < h.groupby("replica").train_loss.first().min()
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit(one, X, Y, epochs=1, optimizer="sgd")


# ---------------------------------------------------------------------------------------------------- hand-offs
def _small_setup(problem, iters, **coef):
    co = {k: np.full(2, float(coef.get(k, 0.0))) for k in pinn.COEFS}
    return pinn.Setup(problem, co, [0, 1], 40, iters, nx=32, nt=21, dtype=torch.float64)


def test_curriculum_stages_warm_start_and_reach_target():
    setup = _small_setup("convection", 8, beta=20.0)
    net = ReplicaNet(Arch(2, 1, 6, 2, param="mlp"), [0, 1], dtype=torch.float64)
    seen = []

    def hook(k, net, info):
        seen.append((k, {n: p.detach().clone() for n, p in net.named_parameters()}, info))

    ends = []
    orig = pinn.lbfgs_stage

    def spy(net, *a, **kw):
        res = orig(net, *a, **kw)
        ends.append({n: p.detach().clone() for n, p in net.named_parameters()})
        return res

    pinn.lbfgs_stage = spy
    try:
        tr = pinn.train(net, setup, "curriculum", {"start": 1.0, "stages": 4}, hook=hook)
    finally:
        pinn.lbfgs_stage = orig
    assert [s[2]["coefs"]["beta"][0] for s in seen] == [1.0, 1.0 + 19 / 3, 1.0 + 38 / 3, 20.0]
    assert [s[2]["iterations"] for s in seen] == [2, 2, 2, 2]
    for k in range(1, 4):  # stage k starts from stage k-1's final weights
        for n in ends[k - 1]:
            assert torch.equal(seen[k][1][n], ends[k - 1][n])
        assert not torch.equal(seen[k][1]["C"], seen[k - 1][1]["C"])
    assert tr.stages == 4 and {h["stage"] for h in tr.history} == {0, 1, 2, 3}


def test_time_marching_hands_over_end_state():
    setup = _small_setup("reaction", 6, rho=3.0)
    net = ReplicaNet(Arch(2, 1, 6, 2, param="mlp"), [0, 1], dtype=torch.float64)
    seen = []
    tr = pinn.train(
        net,
        setup,
        "seq2seq_0.5",
        hook=lambda k, n, info: seen.append((k, info, {a: b.clone() for a, b in n.state_dict().items()})),
    )
    assert [(s[1]["t_a"], s[1]["t_b"]) for s in seen] == [(0.0, 0.5), (0.5, 1.0)]
    np.testing.assert_array_equal(seen[0][1]["u_ic"].numpy(), np.broadcast_to(setup.u0, (2, 32)))
    # the second window's initial condition is the net's prediction at t = 0.5 after the first window
    net2 = ReplicaNet(Arch(2, 1, 6, 2, param="mlp"), [0, 1], dtype=torch.float64)
    net2.load_state_dict(seen[1][2])
    np.testing.assert_allclose(seen[1][1]["u_ic"].numpy(), setup.predict(net2, np.array([0.5]))[:, 0], atol=1e-12)
    assert tr.u.shape == (2, 21, 32)
    # the grid rows of the first window come from the first window's net (t < 0.5), not from the final one
    assert not np.allclose(tr.u[:, :10], setup.predict(net)[:, :10])
    with pytest.raises(ValueError, match="unknown PINN training mode"):
        pinn.train(net, setup, "marching")


def test_errors():
    ue = np.ones((3, 4))
    rel, mae = pinn.errors(np.stack([ue, 2 * ue]), ue)
    np.testing.assert_allclose(rel, [0.0, 1.0])
    np.testing.assert_allclose(mae, [0.0, 1.0])


# ---------------------------------------------------------------------------------------------------- landscape
class _Quad(torch.nn.Module):
    """Two replicas with a (R, 3, 4) weight and a (R, 4) bias; loss = sum of squared weights + bias."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.C = torch.nn.Parameter(torch.randn(2, 3, 4, generator=g, dtype=torch.float64))
        self.c = torch.nn.Parameter(torch.randn(2, 4, generator=g, dtype=torch.float64))
        self.seeds = [5, 6]


def test_landscape_on_known_quadratic():
    net = _Quad()
    coords = np.linspace(-1, 1, 5)

    def loss(n):
        return n.C.pow(2).sum((1, 2)) + n.c.pow(2).sum(1)

    surf, d, e = landscape.loss_surface(net, loss, coords, seed=0)
    th = net.C.detach()
    # filter normalization: every filter (slice along the fan-in dim, here the last) has the weights' norm
    torch.testing.assert_close(d["C"].norm(dim=-1), th.norm(dim=-1))
    assert torch.count_nonzero(d["c"]) == 0  # bias directions are zero
    for r in range(2):
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                want = float((th[r] + a * d["C"][r] + b * e["C"][r]).pow(2).sum() + net.c[r].detach().pow(2).sum())
                assert surf[r, i, j] == pytest.approx(want, rel=1e-12)
    st = landscape.slice_stats(surf, coords)
    for r in range(2):
        H = 2 * np.array(
            [
                [float((d["C"][r] * d["C"][r]).sum()), float((d["C"][r] * e["C"][r]).sum())],
                [float((d["C"][r] * e["C"][r]).sum()), float((e["C"][r] * e["C"][r]).sum())],
            ]
        )
        ev = np.linalg.eigvalsh(H)
        assert st.hess_max[r] == pytest.approx(ev[-1], rel=1e-8)
        assert st.hess_min[r] == pytest.approx(ev[0], rel=1e-8)
        assert st.curv_a[r] == pytest.approx(H[0, 0], rel=1e-8)
    # parameters restored; a replica's directions do not depend on its companions
    assert torch.equal(net.C.detach(), th)
    solo = _Quad()
    with torch.no_grad():
        solo.C = torch.nn.Parameter(net.C.detach()[1:].clone())
        solo.c = torch.nn.Parameter(net.c.detach()[1:].clone())
    solo.seeds = [6]
    torch.testing.assert_close(landscape.filter_normalized_direction(solo, 0)["C"][0], d["C"][1])
    with pytest.raises(ValueError, match="symmetric"):
        landscape.slice_stats(surf, np.linspace(0, 1, 5))


def test_landscape_on_replicanet_resnet():
    """Any ReplicaNet (here a Legendre WP-ResNet) and any loss closure."""
    net = ReplicaNet(Arch(3, 1, 5, 4, param="legendre", degree=2), [0, 1, 2], dtype=torch.float64)
    X = torch.randn(20, 3, dtype=torch.float64)
    surf, d, _ = landscape.loss_surface(net, lambda n: n(X).pow(2).mean((1, 2)), np.linspace(-0.5, 0.5, 3))
    assert surf.shape == (3, 3, 3)
    torch.testing.assert_close(d["A_in"].norm(dim=-2), net.A_in.detach().norm(dim=-2))
    torch.testing.assert_close(d["C"].norm(dim=-1), net.C.detach().norm(dim=-1))
    with torch.no_grad():
        assert surf[:, 1, 1] == pytest.approx(net(X).pow(2).mean((1, 2)).numpy())


# ------------------------------------------------------------------------------------------------------- claims
STUDY = {
    "seeds": [0, 1, 2, 3, 4, 5],
    "iterations": 10,
    "n_collocation": 10,
    "problems": {
        "convection": {"coefs": [1, 20, 40], "modes": ["plain", "curriculum"], "large_from": 20},
        "reaction": {"coefs": [5, 10], "modes": ["plain", "seq2seq_0.1"], "large_from": 10},
    },
    "claims": {"alpha": 0.05, "fail_rel_error": 0.3, "min_orders": 1.0},
}


def _runs(err):
    """err(problem, mode, coef, seed) -> relative error."""
    rows = []
    for p, s in STUDY["problems"].items():
        for m in s["modes"]:
            for c in s["coefs"]:
                for seed in STUDY["seeds"]:
                    rows.append({"problem": p, "mode": m, "coef": float(c), "seed": seed, "rel_l2": err(p, m, c, seed)})
    return pd.DataFrame(rows)


def test_claims_supported_contradicted_inconclusive():
    rng = np.random.default_rng(0)

    def err(p, m, c, seed):
        if p == "convection":  # plain fails at large beta; curriculum 2 orders better: supported
            base = 0.01 if c < 20 else 1.0
            return base * (0.01 if m == "curriculum" and c >= 20 else 1.0) * np.exp(rng.normal(0, 0.05))
        # reaction: plain error 0.02 (no failure: contradicted); seq2seq no better (contradicted)
        return 0.02 * np.exp(rng.normal(0, 0.05))

    seed_table, _, _, cl = pf.summarize(_runs(err), pd.DataFrame(), STUDY)
    assert list(cl.columns) == verdicts.CLAIM_COLUMNS
    cl = cl.set_index("claim_id")
    assert cl.loc["plain_fails:convection", "verdict"] == "supported"
    assert cl.loc["curriculum_improves:convection", "verdict"] == "supported"
    assert cl.loc["curriculum_improves:convection", "effect"] == pytest.approx(2.0, abs=0.1)
    assert cl.loc["plain_fails:reaction", "verdict"] == "contradicted"
    assert cl.loc["seq2seq_improves:reaction:seq2seq_0.1", "verdict"] == "contradicted"
    assert (cl.n_units == 6).all() and (cl.ci_level >= 0.95).all()

    def noisy(p, m, c, seed):  # a 1-order improvement on average with a huge spread: inconclusive
        if m == "plain":
            return 1.0
        return 10.0 ** (-1.0 + (3.0 if seed % 2 else -3.0))

    cl2 = pf.summarize(_runs(noisy), pd.DataFrame(), STUDY)[3].set_index("claim_id")
    assert cl2.loc["curriculum_improves:convection", "verdict"] == "inconclusive"


# ------------------------------------------------------------------------------------------------ cell and DAG
TINY = {
    "seeds": [0, 1],
    "iterations": 4,
    "n_collocation": 24,
    "normalize_inputs": True,
    "field_stride": 8,
    "curriculum": {"start": 1.0, "stages": 2},
    "landscape": {"betas": [1, 20], "points": 3, "radius": 0.5},
    "problems": {
        "convection": {"coefs": [1, 20], "modes": ["plain", "curriculum"], "large_from": 20},
        "reaction_diffusion": {"coefs": [2], "modes": ["seq2seq_0.5"], "large_from": 2, "rho": 5.0},
    },
}


def test_replica_setup_orders_coefficients_and_seeds_like_the_replicas():
    reps = [(co, s) for co in pf.coefficients("convection", {"coefs": [1, 20]}) for s in (0, 1)]
    coefs, setup = pf.replica_setup("convection", reps, {"n_collocation": 7, "iterations": 3}, torch.float64)
    np.testing.assert_array_equal(coefs["beta"], [1, 1, 20, 20])
    assert list(setup.seeds) == [0, 1, 0, 1] and setup.R == 4 and setup.n_collocation == 7 and setup.iterations == 3
    assert setup.normalize and setup.lbfgs == {} and setup.dtype == torch.float64 and setup.device.type == "cpu"
    _, s2 = pf.replica_setup(
        "convection",
        reps[:1],
        {"n_collocation": 7, "iterations": 3, "normalize_inputs": False},
        torch.float32,
        lbfgs={"history": 5},
    )
    assert not s2.normalize and s2.lbfgs == {"history": 5} and s2.R == 1


def test_run_cell_deterministic_and_independent_of_batch_companions():
    a = pf.run_cell(Cell({"problem": "convection", "mode": "curriculum"}, TINY, device="cpu"))
    b = pf.run_cell(Cell({"problem": "convection", "mode": "curriculum"}, TINY, device="cpu"))
    for k in ("runs", "history", "fields", "landscape", "landscape_stats"):
        pd.testing.assert_frame_equal(a[k], b[k])
    assert set(a["runs"].columns) == set(pf.RUN_COLUMNS) and len(a["runs"]) == 4
    assert len(a["landscape_stats"]) == 4 and len(a["landscape"]) == 2 * 9
    # seed 1 alone (one coefficient) gives the numbers it gives among the other replicas
    solo = pf.run_cell(
        Cell(
            {"problem": "convection", "mode": "curriculum"},
            {**TINY, "seeds": [1], "problems": {"convection": {**TINY["problems"]["convection"], "coefs": [20]}}},
            device="cpu",
        )
    )
    r_all = a["runs"].set_index(["coef", "seed"]).loc[(20.0, 1)]
    r_solo = solo["runs"].set_index(["coef", "seed"]).loc[(20.0, 1)]
    assert r_solo.rel_l2 == pytest.approx(r_all.rel_l2, rel=1e-4)
    c = pf.run_cell(Cell({"problem": "reaction_diffusion", "mode": "seq2seq_0.5"}, TINY, device="cpu"))
    assert c["landscape"].empty and set(c["history"]["stage"]) == {0, 1}


def test_caption_renders_without_docutils_messages():
    from tests.helpers.captions import rst_problems

    rng = np.random.default_rng(1)
    runs = _runs(lambda p, m, c, s: float(np.exp(rng.normal(-1, 0.5))))
    runs["iterations"] = 10
    lstats = pd.DataFrame(
        {
            "problem": "convection",
            "mode": ["plain", "curriculum"],
            "coef": [20.0, 20.0],
            "seed": 0,
            "loss_center": 0.1,
            "sharpness": [3.0, 1.0],
            "curv_a": 1.0,
            "curv_b": 1.0,
            "hess_max": [5.0, 2.0],
            "hess_min": 0.5,
        }
    )
    seed_table, summary, lsum, cl = pf.summarize(runs, lstats, STUDY)
    timings = pd.DataFrame({"batch_wall_time_s": [1.0, 2.0]})
    text = pf.caption(runs, summary, lsum, cl, timings, "smoke", STUDY)
    assert "plain_fails:convection" in text and "sharpness" in text
    assert rst_problems(text) == []
    # no claims at all (e.g. a sweep without large coefficients) still renders
    empty = pf.caption(runs, summary, pf.landscape_summary(pd.DataFrame()), cl.iloc[:0], timings, "smoke", STUDY)
    assert rst_problems(empty) == []


# ------------------------------------------------------------------------------------ issue 21: arms, budgets, paper
def test_residual_points_reach_window_ends_and_count_the_same_per_mode():
    co = {k: np.zeros(2) for k in pinn.COEFS}
    setup = pinn.Setup("reaction", co, [0, 1], 200, 1, sampling="uniform", points_per="mode", dtype=torch.float64)
    X = setup.collocation(0.25, 0.5, salt=3, n=50)
    t = X[..., 1].numpy()
    assert X.shape == (2, 50, 2) and t.min() >= 0.25 and t.max() <= 0.5 and t.max() > 0.49  # up to t_b
    assert not torch.equal(X[0], X[1])  # every replica its own draw
    loss = setup.loss(setup.coefs, 0.25, 0.5, setup.tensor(np.zeros((2, setup.nx))), n=50)
    assert float(loss.t_bc.max()) == 0.5  # boundary terms up to the window's end too
    # per mode: a seq2seq window of width dt gets round(N dt) points, so the windows hold N in all
    assert sum(max(1, round(200 * (b - a))) for a, b in pinn.windows(0.05)) == 200
    interior = pinn.Setup("reaction", co, [0], 5000, 1, sampling="grid_interior").collocation(0.0, 1.0)
    assert float(interior[..., 0].min()) > 0 and float(interior[..., 1].min()) > 0
    with pytest.raises(ValueError, match="residual sampling"):
        pinn.Setup("reaction", co, [0], 5, 1, sampling="random")


def test_official_mlp_has_pytorch_default_init_per_replica():
    net = pf.OfficialMLP([3, 4, 3], dtype=torch.float64)
    assert [tuple(w.shape) for w in net.W] == [(3, 2, 50), (3, 50, 50), (3, 50, 50), (3, 50, 50), (3, 50, 1)]
    for w, b in zip(net.W, net.b):
        w, b = w.detach(), b.detach()
        bound = 1 / math.sqrt(w.shape[1])
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
        assert float(b.abs().max()) <= bound
    assert torch.equal(net.W[1][0], net.W[1][2]) and not torch.equal(net.W[1][0], net.W[1][1])
    X = torch.rand(7, 2, dtype=torch.float64)
    assert net(X).shape == (3, 7, 1)
    # the same function as a plain torch MLP with those weights
    h = X
    for i, (w, b) in enumerate(zip(net.W, net.b)):
        h = h @ w[1].detach() + b[1].detach()
        h = torch.tanh(h) if i < 4 else h
    torch.testing.assert_close(net(X)[1].detach(), h)


def test_arms_cells_and_overrides():
    study = {
        "problems": {"convection": {"coefs": [1, 30], "modes": ["plain"], "large_from": 20}},
        "iterations": 10,
        "arms": {"faithful": {"net": "official", "modes": {"convection": ["plain"]}, "coefs": {"convection": [30]}}},
    }
    assert pf.arm_cells(study) == [("convection", "plain"), ("convection", "plain@faithful")]
    assert pf.split_mode("seq2seq_0.05@equal") == ("seq2seq_0.05", "equal")
    assert pf.split_mode("plain") == ("plain", "main")
    assert pf.arm_config(study, "faithful")["net"] == "official" and "net" not in pf.arm_config(study, "main")
    assert pf.arm_coefs(study, "convection", "faithful") == [30]


def _arm_runs(err, seeds=range(6)):
    rows = []
    for arm, mode in (("main", "plain"), ("main", "curriculum"), ("equal", "curriculum"), ("faithful", "plain")):
        for c in (1, 20, 40):
            for s in seeds:
                rows.append(
                    {
                        "problem": "convection",
                        "mode": mode,
                        "arm": arm,
                        "coef": float(c),
                        "seed": s,
                        "rel_l2": err(arm, mode, c, s),
                    }
                )
    return pd.DataFrame(rows)


def test_equal_budget_faithful_and_budget_axis_claims():
    """Converged curriculum 2 orders better (supported); at the equal budget no better (contradicted); the
    faithful plain PINN fails (supported) while ours does not (contradicted); the budget axis shows plain
    failing at a small budget and not at its end."""
    rng = np.random.default_rng(3)

    def err(arm, mode, c, s):
        e = 1.0 if arm == "faithful" else 0.02
        if mode == "curriculum" and arm == "main" and c >= 20:
            e = 2e-4
        return e * np.exp(rng.normal(0, 0.05))

    runs = _arm_runs(err)
    budget = pd.concat(
        [
            runs[(runs.arm == "main") & (runs["mode"] == "plain")].assign(
                budget=b,
                iterations_used=b,
                final=False,
                rel_l2=lambda d, b=b: (0.9 if b < 10 else 1.0) * d.rel_l2 * (50.0 if b < 10 else 1.0),
            )
            for b in (5.0, 10.0)
        ]
        + [runs.assign(budget=100.0, iterations_used=100, final=True)]
    )
    st = {**STUDY, "iterations": 10, "arms": {"equal": {"budget": "equal"}, "faithful": {"net": "official"}}}
    st["problems"] = {"convection": {"coefs": [1, 20, 40], "modes": ["plain", "curriculum"], "large_from": 20}}
    cl = pf.summarize(runs, pd.DataFrame(), st, budget)[3].set_index("claim_id")
    assert cl.loc["curriculum_improves:convection", "verdict"] == "supported"
    assert cl.loc["equal_budget_curriculum_improves:convection:curriculum", "verdict"] == "contradicted"
    assert cl.loc["equal_budget_curriculum_improves:convection:curriculum", "claim"].startswith("SECONDARY")
    assert cl.loc["plain_fails:convection:faithful", "verdict"] == "supported"
    assert cl.loc["plain_fails:convection", "verdict"] == "contradicted"
    be = pf.budget_effects(budget, st).set_index("budget")
    assert list(be.index) == ["5", "10", "final"]
    assert be.loc["5", "ci_low"] > 0 and be.loc["final", "ci_high"] < 0  # fails early, not at the end


def test_paper_comparison_ratio_and_agreement():
    runs = pd.DataFrame(
        {
            "problem": ["convection"] * 3 + ["reaction"] * 2,
            "mode": ["curriculum"] * 3 + ["seq2seq_0.05"] * 2,
            "arm": "main",
            "coef": [30.0, 30.0, 30.0, 5.0, 10.0],
            "seed": [0, 1, 2, 0, 0],
            "rel_l2": [0.02, 0.04, 0.06, 0.5, 0.07],
        }
    )
    ref = pd.DataFrame(
        {
            "problem": ["convection", "reaction"],
            "mode": ["curriculum", "seq2seq_0.05"],
            "coef_min": [30, 5],
            "coef_max": [30, 10],
            "paper_low": [0.0202, 0.069],
            "paper_high": [0.0202, 0.083],
        }
    )
    cmp = pf.paper_comparison(runs, ref).set_index(["problem", "coef"])
    assert cmp.loc[("convection", 30.0), "ratio"] == pytest.approx(0.04 / 0.0202)
    assert cmp.loc[("convection", 30.0), "within_3x"]
    assert not cmp.loc[("reaction", 5.0), "within_3x"]  # 0.5 > 3 x 0.083
    assert cmp.loc[("reaction", 10.0), "ratio"] == pytest.approx(0.07 / math.sqrt(0.069 * 0.083))
    assert len(pf.paper_comparison(runs.assign(problem="reaction_diffusion"), ref)) == 0


# ------------------------------------------------------------------------------------------ causal training
def test_causal_weights_monotone_start_at_one_and_are_one_without_loss():
    L = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    w = pinn.causal_weights(L, 0.5)
    np.testing.assert_array_equal(w[0], np.ones(4))  # no residual loss: every chunk weighs 1
    np.testing.assert_allclose(w[1], np.exp(-0.5 * np.array([0.0, 1.0, 3.0, 6.0])), rtol=1e-15)
    assert (w[:, 0] == 1.0).all() and (np.diff(w[1]) < 0).all()  # w_1 = 1, then decreasing
    # per-replica eps; the last chunk's own loss never enters the weights
    w2 = pinn.causal_weights(np.array([[1.0, 1.0, 99.0], [1.0, 1.0, 99.0]]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(w2, [[1, 1, 1], [1, math.exp(-1), math.exp(-2)]], rtol=1e-15)


def test_causal_eps_advance_rule():
    eps = [0.01, 0.1, 1.0]
    L = np.array([[1e-5] * 4, [10.0] * 4, [0.1] * 4, [0.1] * 4])
    level, w, done = pinn.causal_advance(L, np.array([0, 0, 0, 2]), eps, 0.99)
    # tiny loss: passes every eps at once (done); large loss: exp(-0.01 * 30) = 0.74 stays at eps 0.01;
    # L = 0.1: exp(-0.01 * 0.3) = 0.997 > 0.99 passes 0.01, exp(-0.1 * 0.3) = 0.970 fails at 0.1; a replica
    # already at eps = 1 with that loss stays there (the schedule never goes back)
    np.testing.assert_array_equal(level, [3, 0, 1, 2])
    np.testing.assert_array_equal(done, [True, False, False, False])
    np.testing.assert_allclose(w[1], pinn.causal_weights(L[1:2], 0.01)[0])
    np.testing.assert_allclose(w[2], pinn.causal_weights(L[2:3], 0.1)[0])
    np.testing.assert_allclose(w[0], pinn.causal_weights(L[0:1], 1.0)[0])  # past the end: the last eps
    assert w[2].min() <= 0.99 < pinn.causal_weights(L[2:3], 0.01).min()
    # delta = 0.999: L = 0.1 no longer passes eps 0.01 (0.997)
    assert pinn.causal_advance(L[2:3], np.array([0]), eps, 0.999)[0][0] == 0


def test_causal_residual_weights_reproduce_the_chunked_loss():
    t = torch.tensor([[0.05, 0.1, 0.3, 0.35, 0.6, 0.65, 0.9, 1.0], [0.0, 0.01, 0.02, 0.6, 0.7, 0.8, 0.9, 0.95]])
    idx = pinn.chunk_index(t, 0.0, 1.0, 4)
    np.testing.assert_array_equal(idx.numpy(), [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 2, 2, 3, 3, 3]])
    r2 = torch.arange(1.0, 17.0, dtype=torch.float64).reshape(2, 8)
    L, counts = pinn.chunk_losses(r2, idx, 4)
    np.testing.assert_allclose(L.numpy(), [[1.5, 3.5, 5.5, 7.5], [10.0, 0.0, 12.5, 15.0]])
    np.testing.assert_array_equal(counts.numpy(), [[2, 2, 2, 2], [3, 0, 2, 3]])
    w = torch.tensor([[1.0, 0.5, 0.25, 0.125], [1.0, 0.3, 0.2, 0.1]], dtype=torch.float64)
    pw = pinn.causal_point_weights(w, idx, counts)
    # weighted mean = (1 / N_t) sum_i w_i L_i over the chunks that hold points (row 2: chunk 2 is empty)
    want = [(1.5 + 0.5 * 3.5 + 0.25 * 5.5 + 0.125 * 7.5) / 4, (10.0 + 0.2 * 12.5 + 0.1 * 15.0) / 3]
    np.testing.assert_allclose((pw * r2).mean(1).numpy(), want, rtol=1e-14)
    # all weights 1 and equally filled chunks: the plain residual mean
    ones = pinn.causal_point_weights(torch.ones(2, 4, dtype=torch.float64), idx, counts)
    assert float((ones[0] * r2[0]).mean()) == pytest.approx(float(r2[0].mean()), rel=1e-15)
    # a PinnLoss with unit per-point weights gives the plain loss exactly
    setup = pinn.Setup("convection", {k: np.full(2, 3.0 if k == "beta" else 0.0) for k in pinn.COEFS}, [0, 1], 16, 1)
    base = setup.loss(setup.coefs, 0.0, 1.0, setup.tensor(np.broadcast_to(setup.u0, (2, setup.nx)).copy()))
    net = ReplicaNet(Arch(2, 1, 6, 2, param="mlp"), [0, 1])
    import dataclasses

    a = base.parts(net)["loss_residual"]
    b = dataclasses.replace(base, weight=torch.ones(2, 16)).parts(net)["loss_residual"]
    assert torch.equal(a, b) and base.weight is None


def test_lbfgs_inactive_replicas_stay_put_and_the_others_run_as_alone():
    x0 = torch.tensor([[-1.2, 1.0, 0.5, -0.3], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, -1.0, 1.0]], dtype=torch.float64)
    o = lbfgs.LBFGSOptions(max_iter=15, history_size=5)
    info = lbfgs.Info()
    out = lbfgs.minimize(_evaluate, x0, o, info=info, active=np.array([True, False, True]))
    assert torch.equal(out[1], x0[1]) and info.reason[1] == "inactive" and info.iterations[1] == 0
    alone = lbfgs.minimize(_evaluate, x0[[0, 2]], o)
    torch.testing.assert_close(out[[0, 2]], alone, rtol=0, atol=0)


CAUSAL = {"epsilons": [0.01, 1.0, 100.0], "chunks": 4, "max_rounds": 3, "round_max_iter": 3}


def test_causal_training_rounds_on_the_smoke_problem():
    """Tiny causal run (convection, beta = 20): every round trains with the weights of the net it starts from
    (recomputed here from the hook's net), eps never goes back, caps and accounts per replica and round."""
    setup = _small_setup("convection", 6, beta=20.0)
    setup.budget = "converge"
    net = ReplicaNet(Arch(2, 1, 6, 2, param="mlp"), [0, 1], dtype=torch.float64)
    seen = []

    def hook(k, n, info):
        base = setup.loss(setup.coefs, 0.0, 1.0, info["u_ic"])
        with torch.enable_grad():
            r2 = pinn.residual(n, base.X_f, base.beta, base.nu, base.rho, create_graph=False).detach().pow(2)
        L, _ = pinn.chunk_losses(r2, pinn.chunk_index(base.X_f[..., 1], 0.0, 1.0, 4), 4)
        seen.append((k, info, pinn.causal_weights(L.numpy(), info["epsilon"])))

    tr = pinn.train(net, setup, "causal", hook=hook, causal=CAUSAL)
    assert [k for k, _, _ in seen] == list(range(tr.stages)) and 1 <= tr.stages <= 3
    for _, info, w in seen:
        np.testing.assert_allclose(info["weights"], w, rtol=1e-12)
        assert (info["weights"][:, 0] == 1.0).all() and info["iterations"] == 3
    st = pd.DataFrame(tr.stage_rows)
    assert set(st[st.stage == 0].replica) == {0, 1} and (st.iterations <= 3).all() and (st.cap == 3).all()
    for _, g in st.groupby("replica"):
        assert list(g.stage) == list(range(len(g))) and (np.diff(g.causal_eps) >= 0).all()
        assert g.causal_eps.isin(CAUSAL["epsilons"]).all() and g.causal_min_weight.between(0, 1).all()
    assert np.isfinite(st.rel_l2_stage).all() and tr.u.shape == (2, 21, 32)
    assert {h["stage"] for h in tr.history} == set(range(tr.stages))
    # a round's row (one evaluation for chunk losses and loss parts): the unweighted loss and the end weights of
    # the net after the round -- for every replica's last round, the final net
    base = setup.loss(setup.coefs, 0.0, 1.0, seen[0][1]["u_ic"])
    with torch.enable_grad():
        own = {n: v.detach().numpy() for n, v in base.parts(net, create_graph=False).items()}
        r2 = pinn.residual(net, base.X_f, base.beta, base.nu, base.rho, create_graph=False).detach().pow(2)
    L, _ = pinn.chunk_losses(r2, pinn.chunk_index(base.X_f[..., 1], 0.0, 1.0, 4), 4)
    for r, g in st.groupby("replica"):
        end = g.iloc[-1]
        for n in ("loss_ic", "loss_bc", "loss_residual"):
            assert end[n] == pytest.approx(float(own[n][r]), rel=1e-12)
        w_end = pinn.causal_weights(L.numpy()[r : r + 1], end.causal_eps).min()
        assert end.causal_min_weight_end == pytest.approx(w_end, rel=1e-12)


def test_causal_defaults_are_the_schema_defaults():
    """One source for the causal settings: the schema's defaults, as a validated config carries them (the
    paper's schedule and the official code's 32 chunks and 0.99 rule)."""
    import yaml

    from nnrds import config

    frag = yaml.safe_load((config.SCHEMA_PATH.parent / "studies" / "pinn_failure.schema.yaml").read_text())
    validated = config.validate({}, schema={"type": "object", **frag})["pinn_failure"]["causal"]
    assert pinn.causal_defaults() == validated
    assert validated == {
        "epsilons": [0.01, 0.1, 1.0, 10.0, 100.0],
        "chunks": 32,
        "delta": 0.99,
        "max_rounds": 20,
        "round_max_iter": 1000,
    }
    d = pinn.causal_defaults()
    d["epsilons"].append(1e3)  # a copy: callers cannot change the defaults
    assert pinn.causal_defaults()["epsilons"][-1] == 100.0


def test_causal_claim_and_rounds_table():
    rng = np.random.default_rng(5)
    runs = _runs(lambda p, m, c, s: float(np.exp(rng.normal(0, 0.05))))
    cz = runs[runs["mode"] == "plain"].assign(mode="causal")
    cz["rel_l2"] = np.where(cz.coef >= 20, 0.01, 1.0) * np.exp(np.random.default_rng(2).normal(0, 0.05, len(cz)))
    st = {**STUDY, "problems": {**STUDY["problems"]}}
    st["problems"]["convection"] = {**st["problems"]["convection"], "modes": ["plain", "curriculum", "causal"]}
    cl = pf.summarize(pd.concat([runs, cz]), pd.DataFrame(), st)[3].set_index("claim_id")
    assert cl.loc["causal_improves:convection", "verdict"] == "supported"  # 2 orders better
    assert cl.loc["curriculum_improves:convection", "verdict"] == "contradicted"  # no better
    assert cl.loc["causal_improves:convection", "effect"] == pytest.approx(2.0, abs=0.1)
    stages = pd.DataFrame(
        {
            "problem": "convection",
            "mode": "causal",
            "arm": "main",
            "coef": 20.0,
            "seed": [0, 0, 1, 1, 1],
            "stage": [0, 1, 0, 1, 2],
            "iterations": [5, 3, 5, 5, 5],
            "stop_reason": ["max_iter", "tolerance_change_loss", "max_iter", "max_iter", "max_iter"],
            "causal_eps": [0.01, 100.0, 0.01, 1.0, 100.0],
            "causal_min_weight_end": [0.995, 0.999, 0.995, 0.999, 0.5],
        }
    )
    cr = pf.causal_rounds(stages, {"causal": {"epsilons": [0.01, 1.0, 100.0], "delta": 0.99}}).set_index("seed")
    assert cr.loc[0, "passed_schedule"] and not cr.loc[1, "passed_schedule"]  # seed 1: stopped at the round cap
    assert list(cr.rounds) == [2, 3] and list(cr.iterations) == [8, 15] and list(cr.rounds_at_iteration_cap) == [1, 3]
    assert pf.causal_rounds(stages.drop(columns="causal_eps"), {}).empty


# ----------------------------------------------------------------------------------- per-mode cap and its verdict
def test_mode_max_iter_reaches_the_setup_and_a_missing_mode_falls_back():
    from nnrds import cost

    reps = [(co, s) for co in pf.coefficients("convection", {"coefs": [30]}) for s in (0, 1)]
    cfg = {"n_collocation": 5, "iterations": 3, "budget": "converge", "stage_max_iter": 300}
    cfg_cur = {**cfg, "mode_max_iter": {"curriculum": 2000}}
    assert pf.replica_setup("convection", reps, cfg_cur, torch.float32, mode="curriculum")[1].stage_max_iter == 2000
    for c, m in ((cfg_cur, "plain"), (cfg_cur, "seq2seq_0.1"), (cfg_cur, None), (cfg, "curriculum")):
        assert pf.replica_setup("convection", reps, c, torch.float32, mode=m)[1].stage_max_iter == 300
    assert pf.cap_text(cfg_cur) == "300 iterations (curriculum: 2000)" and pf.cap_text(cfg) == "300 iterations"
    # an arm may set its own per-mode caps; the cost model counts the mode's cap
    study = {
        **cfg_cur,
        "seeds": [0],
        "curriculum": {"stages": 4},
        "problems": {"convection": {"coefs": [30], "modes": ["plain", "curriculum"], "large_from": 20}},
        "arms": {"short": {"mode_max_iter": {"curriculum": 100}, "modes": {"convection": ["curriculum"]}}},
    }
    assert pf.stage_cap(pf.arm_config(study, "short"), "curriculum") == 100

    def flops(mode):
        return cost.pinn_failure_train({"study": study, "cell": {"problem": "convection", "mode": mode}}).flops

    assert flops("curriculum") == pytest.approx(flops("curriculum@short") * 20)


def _cap_runs(cure_err, capped):
    """Convection runs of plain (error 1 at beta 40) and curriculum (``cure_err``) for six seeds; ``capped(seed)``:
    the curriculum replica's stages at the cap."""
    rows = []
    for m in ("plain", "curriculum"):
        for s in range(6):
            err = 1.0 if m == "plain" else cure_err * (1.1 if s % 2 else 0.9)
            rows.append(
                {
                    "problem": "convection",
                    "mode": m,
                    "coef": 40.0,
                    "seed": s,
                    "rel_l2": err,
                    "stages_at_cap": capped(s) if m == "curriculum" else 0,
                }
            )
    return pd.DataFrame(rows)


CAP_STUDY = {
    **STUDY,
    "budget": "converge",
    "stage_max_iter": 300,
    "mode_max_iter": {"curriculum": 2000},
    "problems": {"convection": {"coefs": [40], "modes": ["plain", "curriculum"], "large_from": 20}},
}


@pytest.mark.parametrize(
    "cure_err, capped, verdict",
    [
        (1e-3, lambda s: 4, "supported"),  # capped everywhere but 3 orders better: evidence, kept
        (0.5, lambda s: 1 if s < 3 else 0, "contradicted"),  # converged in a majority (3 of 6 capped): loses
        (0.5, lambda s: 2 if s < 4 else 0, "inconclusive"),  # capped in 4 of 6 replicas and loses: not trained
    ],
)
def test_capped_cure_that_loses_is_inconclusive_not_contradicted(cure_err, capped, verdict):
    seeds, _, _, cl = pf.summarize(_cap_runs(cure_err, capped), pd.DataFrame(), CAP_STUDY)
    assert list(seeds.columns) == pf.SEED_COLUMNS
    row = cl.set_index("claim_id").loc["curriculum_improves:convection"]
    assert row.verdict == verdict
    if verdict == "inconclusive":
        assert row.ci_high < 1.0  # the interval alone would have contradicted it
        assert "pinn_failure.mode_max_iter.curriculum" in row.design_note and "4 of 6" in row.design_note
    else:
        assert row.design_note == ""
    # at an equal budget (no convergence asked) the cap rule does not apply
    if verdict == "inconclusive":
        eq = pf.summarize(_cap_runs(cure_err, capped), pd.DataFrame(), {**CAP_STUDY, "budget": "equal"})[3]
        assert eq.set_index("claim_id").loc["curriculum_improves:convection", "verdict"] == "contradicted"


def test_caption_names_the_cap_key_of_an_inconclusive_capped_cure():
    from tests.helpers.captions import rst_problems

    runs = _cap_runs(0.5, lambda s: 2 if s < 4 else 0).assign(iterations=10)
    seeds, summary, lsum, cl = pf.summarize(runs, pd.DataFrame(), CAP_STUDY)
    timings = pd.DataFrame({"batch_wall_time_s": [1.0]})
    text = pf.caption(runs, summary, lsum, cl, timings, "smoke", CAP_STUDY)
    assert "pinn_failure.mode_max_iter.curriculum" in text and "300 iterations (curriculum: 2000)" in text
    assert rst_problems(text) == []
