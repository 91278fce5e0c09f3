"""Continuous-in-depth study: exact oscillator solutions against solve_ivp, integrator orders (slopes 1, 2, 4), the
depth resampling of a trained ResNet's weights, the convergence test on models with a known answer, and the
claims on synthetic cases (supported, contradicted, inconclusive)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from nnrds import integrators, verdicts, wp
from nnrds.data.oscillators import Oscillator, transition_pairs
from nnrds.guards import NonFiniteError
from nnrds.models import Arch, ReplicaNet
from nnrds.studies import continuous_depth as cd

OSC = dict(
    systems=["pendulum", "harmonic"],
    g=9.81,
    q0=3 * math.pi / 4,
    schemes=["euler", "midpoint", "rk4"],
    train_dts=[0.05, 0.1],
    n_pairs=16,
    width=8,
    seeds=[0, 1],
    epochs=20,
    lr=0.01,
    lr_final=1e-3,
    t_end=1.2,
    coarse_factors=[4, 2],
    refine_levels=3,
    n_eval_states=4,
    dtype="float64",
)


# ------------------------------------------------------------------------------------------ exact solutions
@pytest.mark.parametrize("kind", ["pendulum", "harmonic"])
def test_exact_solution_matches_tight_solve_ivp(kind):
    osc = Oscillator(kind)
    t = np.linspace(0.0, 3 * osc.period, 241)
    sol = solve_ivp(lambda _, x: osc.field(x), (0.0, t[-1]), osc.x0, method="DOP853", rtol=1e-12, atol=1e-12, t_eval=t)
    assert sol.success
    assert np.abs(sol.y.T - osc.exact(t)).max() < 1e-8
    e = osc.energy(osc.exact(t))
    assert np.abs(e - e[0]).max() < 1e-9 * abs(e[0])


def test_pendulum_period_and_amplitude():
    osc = Oscillator("pendulum", g=9.81, q0=3 * math.pi / 4)
    # large-amplitude period is longer than the small-angle 2 pi / sqrt(g) (K(m) > pi/2)
    assert osc.period > 2 * math.pi / math.sqrt(9.81) * 1.4
    x = osc.exact(np.array([0.0, osc.period / 4, osc.period / 2, osc.period]))
    np.testing.assert_allclose(x[0], [3 * math.pi / 4, 0.0], atol=1e-12)
    assert abs(x[1, 0]) < 1e-9 and x[1, 1] < 0  # bottom of the swing, moving in -q
    np.testing.assert_allclose(x[2], [-3 * math.pi / 4, 0.0], atol=1e-9)
    np.testing.assert_allclose(x[3], x[0], atol=1e-9)
    # released from rest: p at the bottom = -sqrt(2 g (1 - cos q0))
    assert x[1, 1] == pytest.approx(-math.sqrt(2 * 9.81 * (1 - math.cos(3 * math.pi / 4))), rel=1e-9)
    with pytest.raises(ValueError, match="release from rest"):
        Oscillator("pendulum", p0=1.0)


def test_transition_pairs_are_exact_flow_steps():
    osc = Oscillator("pendulum")
    t, X, Y = transition_pairs(osc, 0.05, 10)
    assert X.shape == Y.shape == (10, 2)
    np.testing.assert_allclose(Y, osc.exact(t + 0.05))
    np.testing.assert_allclose(t[1] - t[0], osc.period / 10)


# ------------------------------------------------------------------------------------------- integrators
def _observed_orders(f, x0, exact_T, T=1.0, hs=(0.02, 0.01, 0.005, 0.0025)):
    out = {}
    for name in integrators.SCHEMES:
        err = [np.abs(integrators.integrate(f, x0, h, integrators.n_steps_for(T, h), name) - exact_T).max() for h in hs]
        out[name] = integrators.fitted_order(hs, err)
    return out


def test_integrator_orders_on_a_linear_field():
    """x' = A x (harmonic oscillator, exact solution expm(A t) x0): observed slopes 1, 2, 4."""
    A = np.array([[0.0, 1.0], [-9.81, 0.0]])
    x0 = np.array([1.0, 0.5])
    orders = _observed_orders(lambda x: x @ A.T, x0, expm(A) @ x0)
    assert orders["euler"] == pytest.approx(1.0, abs=0.1)
    assert orders["midpoint"] == pytest.approx(2.0, abs=0.1)
    assert orders["rk4"] == pytest.approx(4.0, abs=0.1)
    assert {n: s.order for n, s in integrators.SCHEMES.items()} == {"euler": 1, "midpoint": 2, "rk4": 4}


def test_integrator_orders_on_a_nonlinear_field_in_torch_with_per_replica_steps():
    """x' = x^2 (x(t) = x0 / (1 - x0 t)) in torch, two replicas with their own step (R, 1, 1) tensors."""
    x0 = torch.tensor([[[0.5]], [[0.3]]], dtype=torch.float64)
    exact = x0 / (1 - x0 * 1.0)
    for name, s in integrators.SCHEMES.items():
        errs = []
        hs = [0.02, 0.01, 0.005]
        for h in hs:
            x = integrators.integrate(
                lambda x: x * x,
                x0,
                torch.full((2, 1, 1), h, dtype=torch.float64),
                integrators.n_steps_for(1.0, h),
                name,
            )
            errs.append(float((x - exact).abs().max()))
        assert integrators.fitted_order(hs, errs) == pytest.approx(s.order, abs=0.15), name


def test_a_wrong_tableau_shows_its_true_order():
    """The order test can fail: RK4's tableau with Euler-like weights is first order, not fourth."""
    bad = integrators.runge_kutta([[0, 0], [0.5, 0]], [0.5, 0.0])  # weights sum to 1/2: not even consistent
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    x0 = np.array([1.0, 0.0])
    e = []
    for h in (0.02, 0.01):
        x = x0
        for _ in range(integrators.n_steps_for(1.0, h)):
            x = bad(lambda y: y @ A.T, x, h)
        e.append(np.abs(x - expm(A) @ x0).max())
    assert e[1] > 0.5 * e[0]  # does not converge


def test_fitted_order_and_step_count():
    h = np.array([0.1, 0.05, 0.025])
    assert integrators.fitted_order(h, 3 * h**2.5) == pytest.approx(2.5)
    assert np.isnan(integrators.fitted_order([0.1], [1.0]))
    assert integrators.n_steps_for(1.2, 0.4) == 3
    with pytest.raises(ValueError, match="whole number"):
        integrators.n_steps_for(1.0, 0.4)
    with pytest.raises(ValueError, match="unknown integration scheme"):
        integrators.get("leapfrog-typo")
    with pytest.raises(ValueError, match="lower-triangular"):
        integrators.runge_kutta([[0, 1], [0, 0]], [0.5, 0.5])


# ---------------------------------------------------------------------------------- ResNet at other depths
def test_resample_nonpar_constant_repeats_layers_and_linear_interpolates():
    phi = wp.resample("nonpar", 4, 8, interp="constant").numpy()
    np.testing.assert_array_equal(phi, np.repeat(np.eye(4), 2, axis=0))
    lin = wp.resample("nonpar", 4, 8, interp="linear").numpy()
    np.testing.assert_allclose(lin.sum(1), 1.0)
    np.testing.assert_allclose(lin[1], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(lin[-1], [0, 0, 0, 1.0])  # constant after the last node
    np.testing.assert_array_equal(wp.resample("nonpar", 4, 2, interp="constant").numpy(), np.eye(4)[[0, 2]])
    np.testing.assert_array_equal(wp.resample("nonpar", 4, 4, interp="linear").numpy(), np.eye(4))
    np.testing.assert_array_equal(wp.resample("legendre", 4, 16, 3).numpy(), wp.basis_matrix("legendre", 16, 3).numpy())


def test_refined_nonpar_resnet_equals_the_resnet_with_repeated_layers():
    """Depth 2L with piecewise-constant weights = a depth-2L ResNet whose layers are the trained ones repeated (step
    h/2); evaluation at the trained depth is the trained network exactly."""
    a = Arch(d_in=3, d_out=2, width=5, depth=4, param="nonpar", T=1.0)
    net = ReplicaNet(a, [0, 1], dtype=torch.float64)
    u = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(net(u, net.phi), net(u))
    deep = ReplicaNet(Arch(3, 2, 5, 8, "nonpar", T=1.0), [0, 1], dtype=torch.float64)
    with torch.no_grad():
        for name in ("A_in", "a_in", "A_out", "a_out"):
            getattr(deep, name).copy_(getattr(net, name))
        deep.C.copy_(net.C.repeat_interleave(2, dim=1))
        deep.c.copy_(net.c.repeat_interleave(2, dim=1))
    torch.testing.assert_close(net(u, wp.resample("nonpar", 4, 8, interp="constant").double()), deep(u))
    with pytest.raises(ValueError, match="MLP"):
        ReplicaNet(Arch(3, 2, 5, 2, "mlp"), [0]).trajectory(u.float(), torch.eye(4))


# -------------------------------------------------------------------------- convergence test, known answers
class _Field(torch.nn.Module):
    """A fixed linear vector field x' = x M^T for every replica (no parameters)."""

    def __init__(self, M, R):
        super().__init__()
        self.register_buffer("M", torch.as_tensor(M, dtype=torch.float64))
        self.R = R

    def forward(self, x):
        return x @ self.M.T


def _harmonic_cfg():
    return {**OSC, "systems": ["harmonic"], "seeds": [0], "train_dts": [0.1], "refine_levels": 4}


def test_perfect_euler_model_is_discrete_and_true_field_is_continuous():
    """Harmonic oscillator: the exact Euler-trained model G = (expm(A dt) - I)/dt reproduces the data at h = dt
    (error ~ 0) but its error grows when h is refined (penalty > 1 decade); the true field under RK4 has a
    penalty < 0. Through convergence_sweep and per_model, the study's own code paths."""
    cfg = _harmonic_cfg()
    A = np.array([[0.0, 1.0], [-cfg["g"], 0.0]])
    dt = 0.1
    reps = [{"system": "harmonic", "train_dt": dt, "seed": 0}]
    out = []
    for scheme, M in (("euler", (expm(A * dt) - np.eye(2)) / dt), ("rk4", A)):
        conv = cd.convergence_sweep(_Field(M, 1), reps, scheme, cfg)
        runs = pd.DataFrame([{**reps[0], "scheme": scheme, "train_loss": 0.0, "epochs": 0}])
        out.append(cd.per_model(runs, conv, cd.reference_sweep(scheme, cfg)))
    m = pd.concat(out).set_index("scheme")
    assert m.loc["euler", "error_train_dt"] < 1e-12
    assert m.loc["euler", "refine_penalty_log10"] > 1.0
    assert m.loc["euler", "discrete_advantage_log10"] > 10
    assert m.loc["rk4", "refine_penalty_log10"] < -3
    assert m.loc["rk4", "slope_fine"] == pytest.approx(4.0, abs=0.2)
    assert m.loc["rk4", "ref_slope_fine"] == pytest.approx(4.0, abs=0.2)
    assert m.loc["euler", "ref_slope_fine"] == pytest.approx(1.0, abs=0.2)


def test_non_finite_prediction_fails_the_sweep():
    class Bad(torch.nn.Module):
        def forward(self, x):
            return x * float("nan")

    reps = [{"system": "harmonic", "train_dt": 0.1, "seed": 0}]
    with pytest.raises(NonFiniteError, match="prediction"):
        cd.convergence_sweep(Bad(), reps, "euler", _harmonic_cfg())


def test_training_batch_equals_training_each_replica_alone():
    """Seeds x dt's x systems as one replica batch give the same final losses as one replica at a time (the
    benchmark's premise), and a trained Euler model beats its initial loss."""
    cfg = {**OSC, "epochs": 15}
    field, reps, info = cd.train_oscillators("midpoint", cfg, device="cpu", dtype="float64", log_progress=False)
    assert len(reps) == 2 * 2 * 2 and info["loss"].shape == (8,)
    for i in (0, 5):
        _, _, one = cd.train_oscillators(
            "midpoint", cfg, device="cpu", dtype="float64", reps=[reps[i]], log_progress=False
        )
        assert one["loss"][0] == pytest.approx(info["loss"][i], rel=1e-9)
    _, _, zero = cd.train_oscillators(
        "midpoint", {**cfg, "epochs": 1, "lr_final": None}, device="cpu", dtype="float64", log_progress=False
    )
    assert (info["loss"] < zero["loss"]).all()


def test_perfect_models_show_their_order_in_the_order_test():
    """Harmonic oscillator, through convergence_sweep, per_model and orders: the exact Euler-trained model
    G = (expm(A dt) - I)/dt (bias O(dt)) has e(h -> 0) ~ dt^1; the true field under RK4 (no bias, only the
    integration error at h = dt 2^-J, ~ dt^4) has slope 4."""
    cfg = {**_harmonic_cfg(), "train_dts": [0.025, 0.05, 0.1]}
    A = np.array([[0.0, 1.0], [-cfg["g"], 0.0]])
    out = []
    for dt in cfg["train_dts"]:
        reps = [{"system": "harmonic", "train_dt": dt, "seed": 0}]
        for scheme, M in (("euler", (expm(A * dt) - np.eye(2)) / dt), ("rk4", A)):
            conv = cd.convergence_sweep(_Field(M, 1), reps, scheme, cfg)
            runs = pd.DataFrame([{**reps[0], "scheme": scheme, "train_loss": 0.0, "epochs": 0}])
            out.append(cd.per_model(runs, conv, cd.reference_sweep(scheme, cfg)))
    od = cd.orders(pd.concat(out)).set_index("scheme")
    assert od.loc["euler", "fitted_order"] == pytest.approx(1.0, abs=0.2) and od.loc["euler", "n_dts"] == 3
    assert od.loc["rk4", "fitted_order"] == pytest.approx(4.0, abs=0.2)


# ------------------------------------------------------------------------------------------------ claims
def _models(p_of, adv=lambda s, r: 1.0, seeds=range(6), rng_seed=0, floor=0.0):
    """Per-model table whose h -> 0 error is e = dt^p (+ floor), p = p_of[scheme](seed, rng) per seed; the Euler
    discrete advantage adv(seed, rng); the refinement penalty 0."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for sc in ("euler", "midpoint", "rk4"):
        for s in seeds:
            p = p_of[sc](s, rng)
            for dt in (0.025, 0.05, 0.1):
                rows.append(
                    {
                        "system": "pendulum",
                        "scheme": sc,
                        "order": integrators.get(sc).order,
                        "train_dt": dt,
                        "seed": s,
                        "error_fine": 0.3 * dt**p + floor,
                        "refine_penalty_log10": 0.0,
                        "discrete_advantage_log10": adv(s, rng),
                    }
                )
    return pd.DataFrame(rows)


def _wp(rel, seeds=range(6), rng_seed=1):
    rng = np.random.default_rng(rng_seed)
    return pd.DataFrame(
        [
            {
                "dataset": "smooth10",
                "variant": v,
                "kind": k,
                "interp": i,
                "seed": s,
                "test_mse_trained": 0.1,
                "rel_change_finest": rel[v](s, rng),
            }
            for v, k, i in (("legendre3", "legendre", "basis"), ("nonpar/constant", "nonpar", "constant"))
            for s in seeds
        ]
    )


STUDY = {
    "seeds": list(range(6)),
    "oscillator": {k: v for k, v in OSC.items() if k != "seeds"},
    "wp": {"dataset": "smooth10", "depth": 8, "width": 16, "T": 1.0, "epochs": 10, "depth_factors": [0.25, 1, 16]},
}


def _verdicts(t):
    return dict(zip(t.claim_id, t.verdict))


NOMINAL = {"euler": lambda s, r: 1 + r.normal(0, 0.05), "midpoint": lambda s, r: 2 + r.normal(0, 0.05)}
NOMINAL["rk4"] = lambda s, r: 4 + r.normal(0, 0.05)


def _expected_pattern():
    """(orders, wp summary) of a pattern where every claim holds: each scheme's h -> 0 error scales at its order,
    both WP variants move their outputs by ~1% of the prediction spread."""
    wps = _wp({"legendre3": lambda s, r: 0.01 + r.normal(0, 0.002), "nonpar/constant": lambda s, r: 0.01})
    return cd.orders(_models(NOMINAL)), wps


def test_orders_recover_known_power_laws():
    od = cd.orders(_models({"euler": lambda s, r: 1.0, "midpoint": lambda s, r: 2.0, "rk4": lambda s, r: 4.0}))
    assert np.allclose(od.fitted_order, od.order) and np.allclose(od.order_deviation, 0.0)
    # a fitting floor far above the O(dt^4) bias: RK4's slope collapses towards 0 (the test sees the floor)
    floored = cd.orders(
        _models({"euler": lambda s, r: 1.0, "midpoint": lambda s, r: 2.0, "rk4": lambda s, r: 4.0}, floor=1e-2)
    ).set_index("scheme")
    assert floored.loc["rk4", "fitted_order"].max() < 0.5 and floored.loc["euler", "fitted_order"].min() > 0.5


def test_claims_supported_on_the_expected_pattern():
    od, wps = _expected_pattern()
    t = cd.claims(od, wps, STUDY)
    assert list(t.columns) == verdicts.CLAIM_COLUMNS
    assert set(_verdicts(t).values()) == {"supported"}, _verdicts(t)
    assert len(t) == 5 and (t.n_units == 6).all()
    assert {"euler_order:pendulum", "rk4_order:pendulum", "depth_refinement:smooth10:legendre3"} <= set(t.claim_id)
    assert (t.p_adjusted >= t.p_value).all()


def test_claims_contradicted_when_the_floor_hides_the_order_and_depth_moves_the_outputs():
    """RK4 (and midpoint) below a fitting floor: p ~ 0, |p - 4| ~ 4 far above the margin; the WP variants move their
    outputs by 50% of the prediction spread."""
    od = cd.orders(_models(NOMINAL, floor=1e-2))
    wps = _wp(
        {"legendre3": lambda s, r: 0.5 + r.normal(0, 0.02), "nonpar/constant": lambda s, r: 0.4 + r.normal(0, 0.02)}
    )
    v = _verdicts(cd.claims(od, wps, STUDY))
    assert v["rk4_order:pendulum"] == v["midpoint_order:pendulum"] == "contradicted", v
    assert v["depth_refinement:smooth10:legendre3"] == v["depth_refinement:smooth10:nonpar/constant"] == "contradicted"


def test_claims_inconclusive_on_noise_around_the_margin():
    m = cd.CLAIM_DEFAULTS["margin_order"]
    devs = {0: 0.05, 1: 1.2, 2: 0.3}
    noisy = {sc: (lambda s, r, o=o: o + devs[s]) for sc, o in (("euler", 1), ("midpoint", 2), ("rk4", 4))}
    od = cd.orders(_models(noisy, seeds=range(3)))
    assert od.order_deviation.mean() == pytest.approx(np.mean(list(devs.values())))
    md = cd.CLAIM_DEFAULTS["margin_depth"]
    wps = _wp({v: (lambda s, r: [0.0, 2 * md, md][s]) for v in ("legendre3", "nonpar/constant")}, seeds=range(3))
    v = _verdicts(cd.claims(od, wps, STUDY))
    assert set(v.values()) == {"inconclusive"}, (v, m)


def test_sanity_check_is_outside_the_claims():
    models = _models(NOMINAL, adv=lambda s, r: 1.5 + r.normal(0, 0.1))
    sn = cd.sanity(models)
    assert list(sn.check) == ["euler_good_discrete"] and bool(sn.passes.iloc[0])
    assert not cd.sanity(_models(NOMINAL, adv=lambda s, r: r.normal(0, 1.0), seeds=range(3))).passes.iloc[0]
    od, wps = _expected_pattern()
    assert not cd.claims(od, wps, STUDY).claim_id.str.startswith("euler_good").any()


def test_wp_summary_relative_change_is_change_over_spread():
    rows = []
    for d, te, tr, ch, sp in ((8, 0.2, 0.1, 0.0, 0.8), (16, 0.21, 0.11, 0.08, 0.79), (128, 0.22, 0.12, 0.16, 0.78)):
        rows.append(
            dict(
                dataset="smooth10",
                variant="const",
                kind="const",
                interp="basis",
                seed=0,
                depth_train=8,
                depth_eval=d,
                h=1.0 / d,
                test_mse=te,
                train_mse=tr,
                change_vs_trained=ch,
                change_vs_next=0.01,
                pred_spread=sp,
            )
        )
    w = cd.wp_summary(pd.DataFrame(rows)).iloc[0]
    assert w.rel_change_finest == pytest.approx(0.16 / 0.8) and w.pred_spread_trained == 0.8
    assert w.log_train_ratio_finest == pytest.approx(math.log(0.12 / 0.1))


def test_caption_renders_without_docutils_messages():
    from tests.helpers.captions import rst_problems

    od, wps = _expected_pattern()
    models = _models(NOMINAL)
    for c in ("error_train_dt", "slope_coarse", "slope_fine", "ref_slope_coarse", "ref_slope_fine"):
        models[c] = 0.01
    models["refine_penalty_log10"] = 0.0
    for c in ("test_mse_finest", "change_vs_trained_finest", "slope_change_vs_next", "log_train_ratio_finest"):
        wps[c] = np.nan if c == "slope_change_vs_next" else 0.5
    tables = {
        "slopes": cd.slopes(models),
        "orders": od,
        "sanity": cd.sanity(models),
        "claims": cd.claims(od, wps, STUDY),
        "wp_summary": wps,
    }
    study = {**STUDY, "wp": {**STUDY["wp"], "interpolations": ["constant"]}}
    text = cd.caption(tables, "smoke", study, "simulated")
    assert rst_problems(text) == []
    assert "supported" in text and "n/a" in text and "Sanity check" in text and "Order test" in text


def test_fit_lr_final_decays_geometrically_and_defaults_to_constant():
    """fit(lr_final=lr) is the constant-lr fit exactly; lr_final < lr changes the path; the lr of the last epoch is
    lr_final (checked through a callback reading Adam's param group); lr_final > lr is refused."""
    from nnrds.train import fit

    X = torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    Y = X[:, :1] ** 2

    def run(**kw):
        net = ReplicaNet(Arch(3, 1, 4, 2, "nonpar"), [0, 1], dtype=torch.float64)
        fit(net, X, Y, epochs=12, lr=0.05, **kw)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    base = run()
    assert torch.equal(run(lr_final=0.05), base)
    assert not torch.equal(run(lr_final=0.005), base)
    seen = []

    class Spy(torch.optim.Adam):
        def step(self, *a, **k):
            seen.append(self.param_groups[0]["lr"])
            return super().step(*a, **k)

    orig = torch.optim.Adam
    torch.optim.Adam = Spy
    try:
        run(lr_final=0.005)
    finally:
        torch.optim.Adam = orig
    assert seen[0] == pytest.approx(0.05) and seen[-1] == pytest.approx(0.005)
    np.testing.assert_allclose(np.diff(np.log(seen)), np.log(0.1) / 11)
    with pytest.raises(ValueError, match="lr_final"):
        run(lr_final=0.5)
