"""Bayesian UQ core (src/nnrds/uq): model density, conjugate recovery by NUTS and VI, the predictive-sample
contract, metrics against closed forms, R-hat flagging, and a smoke-scale study job."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from nnrds.experiment import Cell
from nnrds.models import Arch, ReplicaNet
from nnrds.uq import BayesNet, NetSpec, diagnostics, metrics, predictive_samples, run_method, run_nuts, run_vi


def _tiny(kind="legendre", **kw):
    return BayesNet(NetSpec(d_in=3, d_out=2, kind=kind, width=3, depth=2, degree=1 if kind == "legendre" else 0, **kw))


def _data(n=20, d_in=3, d_out=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    Y = np.tanh(X @ rng.standard_normal((d_in, d_out))) + 0.1 * rng.standard_normal((n, d_out))
    return X, Y


def test_forward_is_the_backbone():
    arch = Arch(d_in=3, d_out=2, width=4, depth=3, param="legendre", degree=1)
    net = BayesNet(NetSpec.from_arch(arch))
    rn = ReplicaNet(arch, [0, 1, 2], dtype=torch.float64)
    X = torch.randn(7, 3, dtype=torch.float64)
    assert net.P == arch.n_params()
    assert torch.allclose(rn(X), net.forward(net.flat_from_net(rn), X), atol=1e-12)


def test_netspec_and_arch_round_trip():
    arch = Arch(d_in=3, d_out=2, width=4, depth=3, param="legendre", degree=1, T=2.0, activation="relu")
    spec = NetSpec.from_arch(arch, prior_scale=0.5)
    assert spec.kind == "legendre" and spec.T == 2.0 and spec.activation == "relu" and spec.prior_scale == 0.5
    assert spec.arch() == arch and NetSpec.from_arch(spec.arch()) == NetSpec.from_arch(arch)


def test_pyro_log_density_equals_hand_computed():
    import pyro.poutine as poutine

    net = _tiny()
    X, Y = (torch.as_tensor(a) for a in _data(5))
    theta = torch.randn(net.P, dtype=torch.float64) * 0.3
    sigma = torch.tensor([0.3, 0.7], dtype=torch.float64)
    cond = poutine.condition(net.pyro_model, data={"theta": theta, "sigma": sigma})
    lp = poutine.trace(cond).get_trace(X, Y).log_prob_sum()
    f = net.forward(theta, X).numpy()
    hand = (
        stats.norm.logpdf(Y.numpy(), f, sigma.numpy()).sum()
        + stats.norm.logpdf(theta.numpy(), 0, net.prior_std.numpy()).sum()
        + stats.halfnorm.logpdf(sigma.numpy(), scale=1.0).sum()
    )
    assert float(lp) == pytest.approx(hand, rel=1e-10)
    # the HMC potential is Pyro's own potential in unconstrained space (log sigma, with the Jacobian)
    from pyro.infer.mcmc.util import initialize_model

    _, pot, _, _ = initialize_model(net.pyro_model, model_args=(X, Y))
    q = torch.cat([theta, sigma.log()])
    assert float(net.potential(q, X, Y)) == pytest.approx(float(pot({"theta": theta, "sigma": sigma.log()})), rel=1e-10)


def _conjugate(correlated: bool = False):
    rng = np.random.default_rng(1)
    N, d, sig = 30, 3, 0.5
    X = rng.standard_normal((N, d))
    if correlated:  # nearly collinear first two inputs: strongly correlated posterior
        X[:, 1] = X[:, 0] + 0.3 * X[:, 1]
    Y = X @ np.array([[1.0], [-0.5], [0.3]]) + 0.2 + sig * rng.standard_normal((N, 1))
    net = BayesNet(NetSpec(d_in=d, d_out=1, kind="linear", noise_fixed=sig))
    Phi = np.hstack([X, np.ones((N, 1))])
    Lam = Phi.T @ Phi / sig**2 + np.diag(1 / net.prior_std.numpy() ** 2)
    Sig = np.linalg.inv(Lam)
    return net, X, Y, Sig @ Phi.T @ Y[:, 0] / sig**2, Sig, Lam


def test_nuts_recovers_conjugate_posterior():
    net, X, Y, mu, Sig, _ = _conjugate()
    post = run_nuts(net, X, Y, chains=4, warmup=150, samples=400, init="prior", max_tree_depth=5, seed=3)
    th = post.theta.numpy()
    sd = np.sqrt(np.diag(Sig))
    assert np.all(np.abs(th.mean(0) - mu) < 0.15 * sd + 4 * sd / math.sqrt(400))
    assert np.allclose(th.var(0), np.diag(Sig), rtol=0.25)
    d = diagnostics.summarize(diagnostics.to_inference_data(post, X[:3]))
    assert d["pred_rhat_max"] < 1.05 and not d["flagged"] and d["divergences"] == 0


def test_vi_recovers_conjugate_mean_field_optimum():
    net, X, Y, mu, Sig, Lam = _conjugate()
    post = run_vi(net, X, Y, steps=2500, lr=0.03, particles=16, seed=0, final_lr_frac=0.01)
    sd = np.sqrt(np.diag(Sig))
    assert np.all(np.abs(post.theta[0].numpy() - mu) < 0.3 * sd)
    # mean-field optimum of a Gaussian target: variances 1 / diag(precision)
    assert np.allclose(post.theta_scale.numpy() ** 2, 1 / np.diag(Lam), rtol=0.35)


def test_vi_lowrank_recovers_full_conjugate_covariance():
    """With rank = P the low-rank-plus-diagonal guide contains the exact (Gaussian) posterior: it must find its
    mean, variances and the correlations that mean-field cannot represent."""
    net, X, Y, mu, Sig, Lam = _conjugate(correlated=True)
    post = run_vi(net, X, Y, steps=700, lr=0.05, particles=8, seed=0, final_lr_frac=0.01, guide="lowrank", rank=net.P)
    sd = np.sqrt(np.diag(Sig))
    assert np.all(np.abs(post.theta[0].numpy() - mu) < 0.3 * sd)
    W, s = post.theta_factor.numpy(), post.theta_scale.numpy()
    cov = W @ W.T + np.diag(s**2)
    assert np.allclose(np.diag(cov), np.diag(Sig), rtol=0.35)
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    corr_true = Sig / np.outer(sd, sd)
    assert np.abs(corr_true - np.eye(len(sd))).max() > 0.8  # the test case has real correlations
    assert np.abs(corr - corr_true).max() < 0.15
    # Posterior.draw samples the same covariance
    th, _ = post.draw(20000, torch.Generator().manual_seed(0))
    assert np.allclose(np.cov(th.numpy().T), cov, atol=0.1 * sd.max() ** 2)


def test_output_pca_round_trip_retained_variance_and_lifted_noise():
    from nnrds.uq.reduction import OutputPCA

    rng = np.random.default_rng(0)
    Z = rng.standard_normal((400, 2)) * [3.0, 1.0]
    Y = Z @ rng.standard_normal((2, 5)) + 0.1 * rng.standard_normal((400, 5))
    full = OutputPCA.fit(Y, 1.0)
    assert full.k == 5 and np.allclose(full.lift(full.transform(Y)), Y)
    red = OutputPCA.fit(Y, 0.99)
    assert red.k == 2 and 0.99 <= red.retained_variance < 1.0
    lifted = red.lift(red.transform(Y), noise=True, rng=np.random.default_rng(1))
    # the dropped components come back as noise: total variance preserved (within sampling error)
    assert lifted.var(0, ddof=1).sum() == pytest.approx(Y.var(0, ddof=1).sum(), rel=0.02)
    with pytest.raises(ValueError, match="retained variance"):
        OutputPCA.fit(Y, 1.5)


@pytest.mark.parametrize(
    "method,settings",
    [
        ("nuts", {"chains": 2, "warmup": 10, "samples": 10, "max_tree_depth": 3, "init_steps": 5}),
        ("nuts", {"chains": 2, "warmup": 10, "samples": 10, "max_tree_depth": 3, "init_steps": 5, "dtype": "float32"}),
        ("vi", {"steps": 5, "particles": 2}),
        ("vi_lowrank", {"steps": 5, "particles": 2, "rank": 3}),
        ("ensemble", {"members": 3, "epochs": 5}),
        ("map", {"epochs": 5}),
    ],
)
def test_predictive_samples_shape_contract(method, settings):
    net = _tiny()
    X, Y = _data(12)
    post = run_method(method, net, X, Y, settings, seed=0)
    Xn = np.random.default_rng(0).standard_normal((6, 3))
    ys = predictive_samples(post, Xn, n_samples=17, seed=1)
    assert ys.shape == (17, 6, 2) and np.isfinite(ys).all()
    y2, f2 = predictive_samples(post, Xn, n_samples=17, seed=1, return_f=True)
    assert np.array_equal(ys, y2) and f2.shape == (17, 6, 2)
    if method == "map":  # a point estimate: the function samples coincide
        assert np.allclose(f2, f2[0])


def test_crps_and_coverage_against_closed_forms():
    rng = np.random.default_rng(0)
    y = np.array([0.0, 1.0, -2.0])
    s = rng.normal(0.5, 2.0, size=(200_000, 3))
    assert np.allclose(metrics.crps_samples(s, y), metrics.crps_gaussian(y, 0.5, 2.0), rtol=0, atol=0.012)
    # hand-computed: samples {0, 1}, y = 0: E|X-y| = 0.5, E|X-X'|/2 = 0.25
    assert metrics.crps_samples(np.array([[0.0], [1.0]]), np.array([0.0]))[0] == pytest.approx(0.25)
    # exact predictive => coverage nominal, NLL = Gaussian entropy-ish closed form
    N = 4000
    mu, sd = rng.standard_normal(N), np.exp(rng.normal(0, 0.3, N))
    yy = mu + sd * rng.standard_normal(N)
    samples = mu + sd * rng.standard_normal((2000, N))
    row = metrics.summary(samples[..., None], yy[:, None])
    for lvl in (50, 90, 95):
        assert abs(row[f"cov{lvl}"] - lvl / 100) < 0.025
    assert row["nll"] == pytest.approx(np.mean(-stats.norm.logpdf(yy, mu, sd)), abs=0.03)
    curve = metrics.calibration_curve(samples, yy)
    assert all(abs(o - n) < 0.03 for n, o in curve)
    assert row["width90"] == pytest.approx(np.mean(2 * 1.6449 * sd), rel=0.02)


def test_rhat_flagging_on_unmixed_chains():
    rng = np.random.default_rng(0)
    mixed = rng.standard_normal((4, 500))
    stuck = mixed + np.array([0.0, 0.0, 3.0, 3.0])[:, None]  # two chains in another mode
    r1, f1 = diagnostics.rhat_flag(mixed, 1.05)
    r2, f2 = diagnostics.rhat_flag(stuck, 1.05)
    assert r1 < 1.02 and not f1 and r2 > 1.5 and f2
    # the same through a Posterior: chains offset in the noise std flag the run
    net = _tiny()
    from nnrds.uq import Posterior

    th = torch.as_tensor(rng.standard_normal((4 * 100, net.P)) * 0.1)
    # iid noise stds around a per-chain level: two chains sit at 0.1, two at 1.0 (different modes)
    sig = torch.as_tensor(np.repeat([0.1, 0.1, 1.0, 1.0], 100)[:, None] * np.exp(0.05 * rng.standard_normal((400, 2))))
    post = Posterior("nuts", net, th, sig, chains=4, info={"divergent": np.zeros((4, 100), bool)})
    d = diagnostics.summarize(diagnostics.to_inference_data(post, np.zeros((2, 3))), rhat_threshold=1.05)
    assert d["flagged"] and d["sigma_rhat_max"] > 1.5
    # each chain alone is stationary (iid within a chain): the within-chain split R-hat tells "chains in
    # different modes" from "chains still drifting" -- and it must be a finite number, not a NaN that passes
    assert np.isfinite(d["rhat_within_invariant_max"]) and d["rhat_within_invariant_max"] < 1.05
    assert d["mixing"] == diagnostics.MODES
    x = rng.standard_normal((3, 400, 2)) + np.array([0.0, 2.0, 4.0])[:, None, None]
    import arviz as az

    assert diagnostics.within_chain_rhat_max(az.from_dict(posterior={"sigma": x}), ["sigma"]) < 1.02
    x[0] += np.linspace(0.0, 3.0, 400)[:, None]  # one chain drifts
    assert diagnostics.within_chain_rhat_max(az.from_dict(posterior={"sigma": x}), ["sigma"]) > 1.3
    # within-chain ESS sums the chains' own ESS: about the number of draws for iid chains, whatever their offsets
    y = rng.standard_normal((3, 400, 2)) + np.array([0.0, 2.0, 4.0])[:, None, None]
    assert diagnostics.within_chain_ess_min(az.from_dict(posterior={"sigma": y}), ["sigma"]) > 900


def test_study_job_smoke(tmp_path, monkeypatch):
    """One fit job of the ELM UQ study on a tiny simulator ensemble (all five methods, PCA-reduced outputs)."""
    from nnrds import config
    from nnrds.data import ensembles, write_ensemble
    from nnrds.studies import uq_elm

    cfg = config.load(
        config.REPO_ROOT / "config" / "smoke.yaml",
        {
            "data": {"elm": {"n_train": 24, "n_test": 8, "years": 1, "spinup_cycles": 1, "analytic_jumps": 1}},
            "uq_elm": {
                "n_train": 24,
                "n_test": 8,
                "width": 3,
                "depth": 2,
                "n_pred_samples": 20,
                "nuts": {
                    "chains": 2,
                    "warmup": 10,
                    "samples": 10,
                    "max_tree_depth": 3,
                    "init_steps": 10,
                    "starts": 2,
                    "mode_iters": 30,
                },
                "vi": {"steps": 20, "particles": 2},
                "vi_lowrank": {"steps": 20, "particles": 2, "rank": 2},
                "ensemble": {"members": 2, "epochs": 20},
                "map": {"epochs": 20},
                "slices": {"n_points": 3, "inputs": ["nue"]},
                "extrapolation": {"fraction": 0.9},
            },
        },
    )
    res = ensembles.build_elm(cfg["data"]["elm"])
    write_ensemble(tmp_path, res["ptrain"], res["ytrain"], res["ptest"], res["ytest"], res["meta"])
    assert cfg["uq_elm"]["architectures"]["linear_pca"]["pca_variance"] == 0.99
    out = uq_elm.run_job(Cell({"job": "linear_pca"}, cfg["uq_elm"], in_dirs=(str(tmp_path),)))
    m = out["metrics"]
    assert list(m.method) == ["nuts", "vi", "vi_lowrank", "ensemble", "map"]
    # 2 chains x 10 draws cannot reach ESS 400: the NUTS run is flagged and kept apart, the others are ok
    assert m.status.tolist() == ["flagged", "ok", "ok", "ok", "ok"] and bool(m.flagged.iloc[0])
    assert m.mixing.iloc[0] in (diagnostics.DRIFTING, diagnostics.MODES, diagnostics.UNDERSAMPLED)
    assert np.isfinite(m.rhat_invariant_max.iloc[0]) and "L-BFGS" in m.note.iloc[0]
    assert {"crps", "cov90", "rhat_invariant_max", "flagged"} <= set(m.columns)
    # the net fits fewer PCA scores than QoIs; predictions and slices are lifted back to all 10 QoIs
    assert (m.n_fit_outputs < 10).all() and (m.pca_retained_variance >= 0.99).all()
    assert (
        set(out["predictions"].output.unique()) == set(out["slices"].output.unique())
        and out["predictions"].output.nunique() == 10
    )
    assert len(out["slices"]) == 5 * 3 * 10 and len(out["trace"]) > 0
    cap = uq_elm.caption(m, "smoke", cfg["uq_elm"])
    assert "interpolation" in cap and "PCA" in cap and "low-rank VI" in cap
    # the flagged run's numbers appear only in its own labelled line, never among the posteriors
    pooled = [ln for ln in cap.splitlines() if ln.startswith("* interpolation")]
    assert pooled and all("nuts" not in ln for ln in pooled)
    assert any(ln.startswith("* **FLAGGED") and "linear_pca/nuts" in ln for ln in cap.splitlines())
    small = {**cfg["uq_elm"], "nuts": {**cfg["uq_elm"]["nuts"], "max_params": 10}}
    skipped = uq_elm.run_job(Cell({"job": "linear"}, {**small, "methods": ["nuts", "map"]}, in_dirs=(str(tmp_path),)))[
        "metrics"
    ]
    assert skipped.status.tolist() == ["skipped", "ok"] and "max_params" in skipped.note.iloc[0]
    assert "not run" in uq_elm.caption(skipped, "smoke", small)
    # chains that are each stationary but apart ("modes") also get the stacked predictive, labelled as such
    real = diagnostics.summarize

    def as_modes(*a, **k):
        return {**real(*a, **k), "mixing": diagnostics.MODES, "flagged": True}

    monkeypatch.setattr(diagnostics, "summarize", as_modes)
    st = uq_elm.run_job(Cell({"job": "linear"}, {**cfg["uq_elm"], "methods": ["nuts"]}, in_dirs=(str(tmp_path),)))[
        "metrics"
    ]
    assert st.method.tolist() == ["nuts", "nuts_stacked"] and st.status.tolist() == ["flagged", "stacked"]
    assert "Yao, Vehtari & Gelman" in st.note.iloc[1]
    cap = uq_elm.caption(st, "smoke", cfg["uq_elm"])
    assert "**STACKED" in cap and "**FLAGGED" in cap
    # every branch of the caption (skipped, flagged, stacked, PCA) renders without docutils system messages
    import io as _io

    from docutils import nodes
    from docutils.core import publish_doctree

    for text in (cap, uq_elm.caption(m, "smoke", cfg["uq_elm"]), uq_elm.caption(skipped, "smoke", small)):
        warn = _io.StringIO()
        tree = publish_doctree(text, settings_overrides={"report_level": 1, "halt_level": 5, "warning_stream": warn})
        assert not list(tree.findall(nodes.system_message)) and not warn.getvalue().strip(), text


def test_nan_rhat_of_a_stuck_chain_flags():
    """A chain that never moves has constant draws: ArviZ's R-hat is NaN there. That must count as not converged
    (inf), never be skipped by a nanmax -- on the old code the stuck chain below passed as converged."""
    import arviz as az

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 200, 3))
    x[2] = 0.7  # chain 2 stuck at one point for every quantity
    idata = az.from_dict(posterior={"sigma": np.exp(0.1 * x), "pred": x[..., None]})
    d = diagnostics.summarize(idata, rhat_threshold=1.05)
    assert d["rhat_within_invariant_max"] == np.inf and d["mixing"] == diagnostics.DRIFTING and d["flagged"]
    r, flag = diagnostics.rhat_flag(np.full((2, 50), 1.0))
    assert r == np.inf and flag
    ok = diagnostics.summarize(
        az.from_dict(posterior={"sigma": np.exp(0.1 * rng.standard_normal((4, 500, 2)))}),
        rhat_threshold=1.01,
        min_ess=400,
    )
    assert ok["mixing"] == diagnostics.CONVERGED and not ok["flagged"] and ok["rhat_invariant_max"] < 1.01


def test_classify_drifting_modes_undersampled_converged():
    """Known answers on synthetic chains: the classification must tell drifting chains from chains parked in
    different modes, and both from too short but mixed chains."""
    import arviz as az

    rng = np.random.default_rng(0)

    def summ(x, **kw):
        return diagnostics.summarize(az.from_dict(posterior={"pred": x}), rhat_threshold=1.01, min_ess=400, **kw)

    iid = rng.standard_normal((4, 400, 3))
    assert summ(iid)["mixing"] == diagnostics.CONVERGED
    modes = iid + np.array([0.0, 0.0, 4.0, 4.0])[:, None, None]  # two stationary groups
    assert summ(modes)["mixing"] == diagnostics.MODES
    drift = iid + np.linspace(0, 3, 400)[None, :, None]  # every chain still trending
    assert summ(drift)["mixing"] == diagnostics.DRIFTING
    # the decision rule itself, at and around each threshold (NaN never passes)
    c = diagnostics.classify
    assert c(1.005, 1.02, 500) == diagnostics.CONVERGED
    assert c(1.005, 1.02, 399) == diagnostics.UNDERSAMPLED
    assert c(1.02, 1.02, 5000) == diagnostics.MODES
    assert c(1.02, 1.06, 5000) == diagnostics.DRIFTING
    assert c(float("nan"), 1.02, 5000) == diagnostics.MODES
    assert c(1.0, float("nan"), 5000) == diagnostics.DRIFTING
    assert c(1.0, 1.0, float("nan")) == diagnostics.UNDERSAMPLED


def test_two_mode_target_one_mode_with_jitter_vs_independent_starts():
    """NUTS on a two-mode target (mixture of two well-separated Gaussians): chains started at one mode with a
    jitter are stationary and agree (converged *within* that mode); chains started in both modes are each
    stationary but disagree -> 'modes', not 'drifting'."""
    import arviz as az

    from nnrds.uq.nuts import VectorizedNUTS

    mu = torch.tensor([[-6.0, 0.0], [6.0, 0.0]], dtype=torch.float64)

    def U(q):  # -log(0.5 N(mu0, I) + 0.5 N(mu1, I))
        d2 = ((q[:, None, :] - mu[None]) ** 2).sum(-1)
        return -torch.logsumexp(-0.5 * d2, dim=1)

    gen = torch.Generator().manual_seed(0)
    jitter = 0.1 * torch.randn(4, 2, generator=gen, dtype=torch.float64)
    for starts, want in (
        (mu[[0, 0, 0, 0]] + jitter, diagnostics.CONVERGED),
        (mu[[0, 0, 1, 1]] + jitter, diagnostics.MODES),
    ):
        res = VectorizedNUTS(U, max_tree_depth=5, seed=1).run(starts, 150, 400)
        x = res["draws"].numpy()
        d = diagnostics.summarize(az.from_dict(posterior={"pred": x}), rhat_threshold=1.01, min_ess=400)
        assert d["mixing"] == want, d


def test_short_warmup_ends_with_an_adapted_step_size():
    """Issue 11 item 4: warm-ups of 6...20 iterations (and a little longer) end with an adapted step size, not
    exactly 1.0 (old: the last window reset the dual average at the last warm-up iteration) and not 2-100x too
    large (old: 2-5 dual-averaging iterations after the last mass-matrix window). Target: independent Gaussians
    with scales 0.01-0.05, so a step of 1.0 means zero acceptance."""
    from nnrds.uq.nuts import VectorizedNUTS

    s = torch.tensor([0.01, 0.02, 0.05, 0.01, 0.03], dtype=torch.float64)

    def U(q):
        return 0.5 * ((q / s) ** 2).sum(-1)

    for warmup in list(range(6, 21)) + [25, 40]:
        res = VectorizedNUTS(U, max_tree_depth=6, seed=1).run(torch.full((4, 5), 1e-3, dtype=torch.float64), warmup, 40)
        eps = res["step_size"]
        assert np.all(eps != 1.0), (warmup, eps)
        # the step in the scale of the target: between 0.05 and 2.5 leapfrog steps per standard deviation
        eff = eps[:, None] * res["inv_mass"].sqrt().numpy() / s.numpy()
        assert np.all((eff.max(1) > 0.05) & (eff.max(1) < 2.5)), (warmup, eps)
        assert res["accept"].mean() > 0.6, (warmup, res["accept"].mean(1))


def test_non_finite_draws_and_losses_fail_with_one_message():
    """Issue 11 item 6 (UQ part): a non-finite NUTS state, VI loss or ensemble fit fails the job with a
    NonFiniteError that names the study, the chain(s)/member(s), the step and the config key."""
    from nnrds.guards import NonFiniteError
    from nnrds.uq.nuts import VectorizedNUTS

    net = _tiny()
    X, Y = _data(12)
    Ybad = Y.copy()
    Ybad[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"chain\(s\) \[0, 1\].*initial point.*uq_elm\.nuts\.target_accept"):
        run_nuts(net, X, Ybad, chains=2, warmup=5, samples=5, max_tree_depth=2, init="prior", jit=False)

    def U(q):  # finite at the start, NaN once chain 1 leaves the ball of radius 3
        bad = (q.detach().norm(dim=-1) > 3) & (torch.arange(len(q)) == 1)
        return 0.5 * (q**2).sum(-1) + torch.where(bad, float("nan"), 0.0).to(q.dtype)

    class Jumpy(VectorizedNUTS):  # a (buggy) kernel that returns its proposals without the accept step
        def step(self, q, U_, g, eps):
            out = super().step(q, U_, g, eps)
            q1 = out[0] + torch.tensor([[0.0], [10.0]], dtype=q.dtype)
            u1, g1 = self._value_and_grad(q1)
            return (q1, u1, g1, *out[3:])

    with pytest.raises(NonFiniteError, match=r"chain\(s\) \[1\].*iteration 1 of 8 \(warm-up\)"):
        Jumpy(U, max_tree_depth=2).run(torch.zeros(2, 3, dtype=torch.float64), 4, 4)
    Xbad = X.copy()
    Xbad[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"VI loss.*step 1 of 5.*uq_elm\.vi\.lr"):
        run_vi(net, Xbad, Y, steps=5, particles=2)
    with pytest.raises(NonFiniteError):
        run_method("ensemble", net, Xbad, Y, {"members": 2, "epochs": 3})


def test_stacking_weights_recover_a_known_mixture():
    """Stacking (Yao, Vehtari & Gelman 2022) of two fixed candidate predictives N(-2, 1), N(2, 1) on data from
    0.3 N(-2, 1) + 0.7 N(2, 1): the weights maximize the mixture log score, i.e. recover 0.3 / 0.7 within
    sampling error; a useless third candidate gets ~0 weight."""
    from nnrds.uq import stacking

    rng = np.random.default_rng(0)
    n = 4000
    y = np.where(rng.random(n) < 0.3, rng.normal(-2, 1, n), rng.normal(2, 1, n))
    lpd = np.stack([stats.norm.logpdf(y, -2, 1), stats.norm.logpdf(y, 2, 1), stats.norm.logpdf(y, 30, 1)])
    w = stacking.stacking_weights(lpd)
    assert w.sum() == pytest.approx(1.0) and w[2] < 1e-3
    assert abs(w[0] - 0.3) < 3 * math.sqrt(0.3 * 0.7 / n) + 0.01
    # PSIS-LOO of a chain whose draws are the exact conjugate posterior is the analytic LOO density
    net, X, Yc, mu, Sig, _ = _conjugate()
    rng2 = np.random.default_rng(1)
    th = rng2.multivariate_normal(mu, Sig, size=4000)
    sig = torch.full((4000, 1), 0.5, dtype=torch.float64)
    ll = stacking.chain_loglik(net, torch.as_tensor(th), sig, X, Yc)
    lpd_loo, k = stacking.loo_lpd(ll)
    Phi = np.hstack([X, np.ones((len(X), 1))])
    for i in (0, 7, 19):  # exact LOO: refit without point i (Gaussian conjugate)
        m = np.ones(len(X), bool)
        m[i] = False
        Lam = Phi[m].T @ Phi[m] / 0.25 + np.diag(1 / net.prior_std.numpy() ** 2)
        S_i = np.linalg.inv(Lam)
        mu_i = S_i @ Phi[m].T @ Yc[m, 0] / 0.25
        exact = stats.norm.logpdf(Yc[i, 0], Phi[i] @ mu_i, math.sqrt(Phi[i] @ S_i @ Phi[i] + 0.25))
        assert lpd_loo[i] == pytest.approx(exact, abs=0.02)
    assert np.all(k < 1.0)


def test_weighted_chain_draws_follow_the_stacking_weights():
    from nnrds.uq import Posterior

    net = _tiny()
    C, D = 3, 50
    th = torch.zeros(C * D, net.P, dtype=torch.float64)
    th[:, 0] = torch.arange(C).repeat_interleave(D).double()  # chain id in the first weight
    post = Posterior(
        "nuts", net, th, torch.ones(C * D, 2, dtype=torch.float64), chains=C, chain_weights=np.array([0.5, 0.0, 0.5])
    )
    t, _ = post.draw(100, torch.Generator().manual_seed(0))
    counts = np.bincount(t[:, 0].long().numpy(), minlength=3)
    assert counts.tolist() == [50, 0, 50]


def test_nuts_diagnostics_per_posterior_and_no_fraction_claim():
    """Convergence is reported per posterior (one row per NUTS run, each target met or not), never as a fraction of
    runs; without a depth-sweep claim the claims table is empty."""
    from nnrds import config, verdicts
    from nnrds.studies import uq_elm

    study = config.load(config.REPO_ROOT / "config" / "config.yaml")["uq_elm"]
    rows = [
        {
            "job": "linear",
            "architecture": "linear",
            "kind": "legendre",
            "n_params": 250,
            "method": "nuts",
            "status": "ok",
            "rhat_invariant_max": 1.004,
            "rhat_threshold": 1.012,
            "rhat_within_invariant_max": 1.05,
            "within_threshold": 1.09,
            "ess_bulk_invariant_min": 900.0,
            "min_ess": 800.0,
            "mixing": "converged",
            "posterior": "one posterior: chains from 2 independent mode searches agree",
            "chains": 8,
            "draws_per_chain": 150,
            "n_invariant": 110,
            "n_mode_searches": 2,
        },
        {
            "job": "linear_pca",
            "architecture": "linear_pca",
            "kind": "legendre",
            "n_params": 200,
            "method": "nuts",
            "status": "flagged",
            "rhat_invariant_max": 1.3,
            "rhat_threshold": 1.02,
            "rhat_within_invariant_max": 1.05,
            "within_threshold": 1.09,
            "ess_bulk_invariant_min": 60.0,
            "min_ess": 800.0,
            "mixing": "modes",
            "posterior": "chains in different modes: see the stacked predictive (nuts_stacked)",
            "chains": 8,
            "draws_per_chain": 150,
            "n_invariant": 110,
            "n_mode_searches": 2,
        },
        {
            "job": "linear_pca",
            "architecture": "linear_pca",
            "kind": "legendre",
            "n_params": 200,
            "method": "nuts_stacked",
            "status": "stacked",
            "posterior": "stacked modes: a predictive mixture",
        },
        {"job": "linear", "architecture": "linear", "kind": "legendre", "method": "vi", "status": "ok"},
    ]
    m = pd.DataFrame(rows)
    d = uq_elm.nuts_diagnostics(m).set_index("job")
    assert list(d.index) == ["linear", "linear_pca"]
    assert d.loc["linear", ["rhat_invariant_ok", "rhat_within_ok", "ess_ok"]].tolist() == [True, True, True]
    assert d.loc["linear_pca", ["rhat_invariant_ok", "rhat_within_ok", "ess_ok"]].tolist() == [False, True, False]
    assert d.loc["linear_pca", "posterior"].startswith("stacked modes")
    c = uq_elm.claims(m, "default", study)
    assert list(c.columns) == verdicts.CLAIM_COLUMNS and len(c) == 0
    assert uq_elm.posterior_kind({"chain_modes": [0, 1, 0, 1]}, diagnostics.CONVERGED).startswith("one posterior")
    assert uq_elm.posterior_kind({"chain_modes": [0, 0]}, diagnostics.CONVERGED).startswith("one mode")
    assert uq_elm.posterior_kind({}, diagnostics.DRIFTING).startswith("none")
    # the run's note names its targets, the chains' density spread and the over-dispersed starts
    info = {
        "chains": 4,
        "samples": 10,
        "warmup": 10,
        "init": "laplace",
        "mean_tree_depth": 3.0,
        "max_tree_depth": 5,
        "chain_log_density": [-10.0, -30.0, -10.0, -30.0],
        "mode_potentials": [5.0, 25.0],
        "chain_modes": [0, 1, 0, 1],
    }
    dg = {
        "mixing": diagnostics.MODES,
        "rhat_invariant_max": 1.3,
        "rhat_threshold": 1.04,
        "rhat_within_invariant_max": 1.01,
        "within_threshold": 1.2,
        "ess_bulk_invariant_min": 20.0,
        "min_ess": 400.0,
    }
    note = uq_elm.nuts_note(info, dg, study)
    assert "target <= 1.040" in note and "spans 20 nats" in note and "over-dispersed" in note and "True" not in note


def test_rank_rhat_equals_arviz_including_ties():
    import arviz as az

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 31, 6))
    x[1] += 0.5
    x[2, 3:9, 1] = 0.3  # ties
    x[..., 5] = np.round(x[..., 5], 1)  # many ties
    want = az.rhat(az.convert_to_dataset(x))["x"].values
    np.testing.assert_allclose(diagnostics.rank_rhat(np.moveaxis(x, -1, 0)), want, rtol=0, atol=1e-12)


def test_ar1_chains_have_the_requested_ess():
    """ar1_phi inverts ESS = n (1 - phi) / (1 + phi): ArviZ's ESS of the simulated chains is near the target."""
    import arviz as az

    phi = diagnostics.ar1_phi(200, 50.0)
    assert phi == pytest.approx(150 / 250)
    assert diagnostics.ar1_phi(200, 500.0) == 0.0 and diagnostics.ar1_phi(200, 0.0) == 0.99
    x = diagnostics.ar1_chains(1, 1, 200, 200, phi, seed=1)[0]  # 200 quantities, 1 chain each
    ess = [float(az.ess(x[k])) for k in range(40)]
    assert np.mean(ess) == pytest.approx(50.0, rel=0.3)


def test_calibrated_thresholds_pass_a_perfect_sampler_and_flag_a_drifting_one():
    """Known answers of the calibration: at 4 chains x 100 draws and 50 quantities, stationary AR(1) chains (a
    perfect sampler at that ESS) exceed the fixed per-chain cut 1.05 most of the time, but the simulated thresholds
    only about `level` of the time (fresh runs, other seeds); a chain that drifts by 2 sd over the run is flagged."""
    C, D, K, ess = 4, 100, 50, 100.0
    thr = diagnostics.null_rhat_thresholds(C, D, K, ess, level=0.05, n_sim=100, seed=0)
    assert thr["rhat_threshold"] >= diagnostics.PUBLISHED_RHAT and thr["within_threshold"] > 1.05
    fresh = diagnostics.ar1_chains(100, C, D, K, thr["phi"], seed=12345)
    h = D // 2
    within = diagnostics.rank_rhat(np.stack([fresh[..., :h], fresh[..., h:]], axis=-2)).max(axis=(-1, -2))
    multi = diagnostics.rank_rhat(fresh).max(axis=-1)
    assert (within > 1.05).mean() > 0.5  # the fixed cut fails a perfect sampler most of the time
    assert (within > thr["within_threshold"]).mean() < 0.15
    assert (multi > thr["rhat"]).mean() < 0.15
    drift = fresh[0] + np.linspace(0.0, 2.0, D)
    assert diagnostics.rank_rhat(np.stack([drift[..., :h], drift[..., h:]], axis=-2)).max() > thr["within_threshold"]
    # through summarize: iid chains are converged at the calibrated thresholds, drifting chains are not
    import arviz as az

    rng = np.random.default_rng(0)  # one draw of a 5%-level check: a seed whose iid chains are not a false flag
    iid = rng.standard_normal((C, D, 5))
    cal = {"level": 0.05, "n_sim": 50}
    d = diagnostics.summarize(az.from_dict(posterior={"pred": iid}), 1.01, None, 100.0, calibrate=cal)
    assert d["mixing"] == diagnostics.CONVERGED and d["within_threshold"] > 1.0 and "null_phi" in d
    one_drifts = iid.copy()
    one_drifts[0] += np.linspace(0, 3, D)[:, None]
    d = diagnostics.summarize(az.from_dict(posterior={"pred": one_drifts}), 1.01, None, 100.0, calibrate=cal)
    assert d["mixing"] == diagnostics.DRIFTING
    # every chain trending alike reads, at its own (low) ESS, like strong autocorrelation: still flagged
    d = diagnostics.summarize(
        az.from_dict(posterior={"pred": iid + np.linspace(0, 3, D)[None, :, None]}), 1.01, None, 100.0, calibrate=cal
    )
    assert d["flagged"] and d["null_phi"] > 0.5
    with pytest.raises(ValueError, match="within_threshold"):
        diagnostics.summarize(az.from_dict(posterior={"pred": iid}), 1.01, None, 100.0)


def test_laplace_start_spreads_chains_over_the_mode_searches():
    """start_modes='all': chain c starts around mode search c mod starts -- m + L (z_all - z_best) is exactly that
    mode (its potential is the mode search's), while 'best' puts every chain around the best one."""
    from nnrds.uq.inference import _t, laplace_start

    net = _tiny()
    X, Y = _data(15)
    kw = dict(starts=2, seed=3, init_steps=20, mode_iters=30, chains=4)
    m, L, zb, ib = laplace_start(net, X, Y, **kw)
    _, _, za, ia = laplace_start(net, X, Y, start_modes="all", **kw)
    assert ib["chain_modes"] == [ib["best_start"]] * 4 and ia["chain_modes"] == [0, 1, 0, 1]
    centers = m + (za - zb) @ L.T
    u = [float(net.potential(centers[c], _t(X, net), _t(Y, net))) for c in range(4)]
    np.testing.assert_allclose(u, [ia["mode_potentials"][k] for k in ia["chain_modes"]], rtol=1e-8)
    with pytest.raises(ValueError, match="start_modes"):
        laplace_start(net, X, Y, start_modes="some", **kw)


def test_vectorized_nuts_agrees_with_pyro_nuts_on_a_converging_posterior():
    """Pyro's NUTS is the reference engine: on a small WP-ResNet posterior where both converge (19 dims, 24
    points, known noise), the vectorized sampler's invariant quantities (predictions at 3 inputs) have the same
    means (|z| < 4 with ESS-based Monte-Carlo errors) and variances (log ratio within 4 Monte-Carlo sd) as
    Pyro's. Pyro runs its chains one after another (about 0.2 s an iteration here), so its reference is smaller
    (2 chains x 250 draws, ESS >= 150) than the vectorized run (4 x 300, ESS >= 400); both tolerances come from
    the two runs' ESS, so a smaller reference widens them only as far as its Monte-Carlo error does."""
    import arviz as az

    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (24, 1))
    Y = np.tanh(1.5 * X) + 0.3 * rng.standard_normal((24, 1))
    net = BayesNet(NetSpec(d_in=1, d_out=1, kind="legendre", degree=1, width=2, depth=1, noise_fixed=0.3))
    Xc = np.array([[-1.5], [0.0], [1.5]])
    out = {}
    # engine: (chains, warm-up, draws, R-hat threshold, minimum ESS)
    runs = {"vectorized": (4, 200, 300, 1.01, 400), "pyro": (2, 150, 250, 1.02, 150)}
    for engine, (chains, warmup, samples, rhat, min_ess) in runs.items():
        post = run_nuts(
            net,
            X,
            Y,
            chains=chains,
            warmup=warmup,
            samples=samples,
            init="prior",
            engine=engine,
            max_tree_depth=6,
            seed=1,
            target_accept=0.9,
        )
        idata = diagnostics.to_inference_data(post, Xc)
        d = diagnostics.summarize(idata, rhat_threshold=rhat, within_threshold=1.05, min_ess=min_ess)
        assert d["mixing"] == diagnostics.CONVERGED, (engine, d)
        f = idata.posterior["pred"].values[..., 0]
        out[engine] = (f.reshape(-1, 3), np.asarray(az.ess(idata, var_names=["pred"])["pred"].values[..., 0]))
    (a, ea), (b, eb) = out["vectorized"], out["pyro"]
    z = (a.mean(0) - b.mean(0)) / np.sqrt(a.var(0) / ea + b.var(0) / eb)
    assert np.all(np.abs(z) < 4), z
    log_ratio_sd = np.sqrt(2 / ea + 2 / eb)
    assert np.all(np.abs(np.log(a.var(0) / b.var(0))) < 4 * log_ratio_sd), (a.var(0) / b.var(0), log_ratio_sd)


def test_stack_chains_puts_the_weight_on_the_chains_that_predict():
    """Four chains of the conjugate model: two hold exact posterior draws, two sit in a wrong 'mode' (shifted
    weights). Stacking by PSIS-LOO gives the good chains ~all the weight and a better LOO score than equal
    weights; the weighted Posterior then draws only from them."""
    from nnrds.uq import Posterior, stacking

    net, X, Y, mu, Sig, _ = _conjugate()
    rng = np.random.default_rng(2)
    good = rng.multivariate_normal(mu, Sig, size=(2, 300))
    bad = rng.multivariate_normal(mu + np.array([1.0, -1.0, 0.5, 0.5]), Sig, size=(2, 300))
    th = torch.as_tensor(np.concatenate([good, bad]).reshape(-1, net.P))
    post = Posterior("nuts", net, th, torch.full((1200, 1), 0.5, dtype=torch.float64), chains=4)
    st = stacking.stack_chains(net, post, X, Y)
    assert st["weights"][:2].sum() > 0.99 and st["lpd_loo_stacked"] > st["lpd_loo_equal"] + 10
    import dataclasses

    t, _ = dataclasses.replace(post, chain_weights=st["weights"]).draw(200, torch.Generator().manual_seed(0))
    assert np.abs(t.numpy().mean(0) - mu).max() < 0.2


# ------------------------------------------------------------------ NUTS building blocks (nnrds.uq.adaptation)
def test_adaptation_windows_follow_stans_schedule():
    """Stan reference manual: 1000 warm-up iterations, init_buffer 75, term_buffer 50, base window 25 -> slow
    windows end at 100, 150, 250, 450, 950; short warm-ups use 15% / 75% / 10% (terminal buffer >= 10 here);
    below 20 iterations there is no window."""
    from nnrds.uq.adaptation import adaptation_windows

    w = adaptation_windows(1000, 75, 50, 25)
    assert [e for _, e in w] == [100, 150, 250, 450, 950]
    assert [s for s, _ in w] == [75, 100, 150, 250, 450]
    assert adaptation_windows(150) == [(75, 100)]  # 100 + 2*50 > 100: the first window stretches to the buffer
    assert adaptation_windows(200) == [(75, 100), (100, 150)]
    assert adaptation_windows(100) == [(15, 90)]
    assert adaptation_windows(19) == []


def test_welford_variance_and_pooled_covariance_equal_numpy():
    from nnrds.uq.adaptation import WelfordCovariance, WelfordVariance

    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3, 4)) * np.array([1.0, 2.0, 0.5, 3.0]) + 1.0  # (iterations, chains, D)
    v, c = WelfordVariance(3, 4), WelfordCovariance(4)
    for row in torch.as_tensor(x):
        v.update(row)
        c.update(row)
    np.testing.assert_allclose(v.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(v.variance(regularize=False).numpy(), x.var(0, ddof=1), rtol=1e-10)
    n = 30
    np.testing.assert_allclose(v.variance().numpy(), n / (n + 5) * x.var(0, ddof=1) + 1e-3 * 5 / (n + 5), rtol=1e-10)
    pooled = x.reshape(-1, 4)
    np.testing.assert_allclose(
        c.covariance(regularize=False, shrink_to_diag=False).numpy(), np.cov(pooled.T), rtol=1e-10
    )
    lam = 90 / (90 + 4)  # off-diagonal weight n / (n + D)
    S = np.cov(pooled.T)
    want = lam * S + (1 - lam) * np.diag(np.diag(S))
    np.testing.assert_allclose(c.covariance(regularize=False).numpy(), want, rtol=1e-10)
    assert not np.allclose(c.covariance(regularize=False).numpy(), S)  # the shrinkage did something


def test_dual_averaging_against_hand_computed_steps():
    """eps0 = 1 (mu = log 10), target 0.8, gamma 0.05, t0 10, kappa 0.75; accept statistics 0.5 then 1.0:
    H1 = 0.3/11, x1 = log 10 - 20 H1 -> 5.7958; H2 = (11/12) H1 - 0.2/12, x2 = log 10 - 20 sqrt(2) H2 -> 7.9002;
    xbar2 = 2^-0.75 x2 + (1 - 2^-0.75) x1 -> 6.9679."""
    from nnrds.uq.adaptation import DualAveraging

    da = DualAveraging(torch.tensor([1.0], dtype=torch.float64), target=0.8)
    assert float(da.update(torch.tensor([0.5], dtype=torch.float64))) == pytest.approx(5.795782787848097, rel=1e-12)
    assert float(da.update(torch.tensor([1.0], dtype=torch.float64))) == pytest.approx(7.900158579283466, rel=1e-12)
    assert float(da.final_step) == pytest.approx(6.9678754037248485, rel=1e-12)
    da.reset(torch.tensor([0.1], dtype=torch.float64))
    assert da.t == 0 and float(da.mu) == pytest.approx(0.0, abs=1e-12)


def test_step_size_heuristic_doubles_or_halves_to_the_crossing():
    """Hoffman & Gelman Alg. 4 with a deterministic one-step energy error dH = eps^2 (acceptance 0.5 at
    eps = sqrt(log 2) = 0.833): from 0.1 the step doubles to the first step past the crossing, 1.6; from 10 it
    halves to 0.625; each chain on its own."""
    from nnrds.uq.adaptation import find_reasonable_step_size

    eps = find_reasonable_step_size(lambda e: e**2, torch.tensor([0.1, 10.0, 0.8], dtype=torch.float64))
    np.testing.assert_allclose(eps.numpy(), [1.6, 0.625, 1.6])


@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_vectorized_nuts_on_a_banana_with_known_moments(metric):
    """Twisted Gaussian (Haario et al. 1999): x1 = y1, x2 = y2 + b (y1^2 - a^2), y ~ N(0, diag(a^2, 1)); a = 1,
    b = 0.5: E x = 0, Var x1 = 1, Var x2 = 1 + 2 b^2 a^4 = 1.5, Cov(x1, x2) = 0. A non-Gaussian target whose
    curvature changes along it; the sampler's means are within 4 Monte-Carlo errors and its variances within
    15% (both metrics)."""
    import arviz as az

    from nnrds.uq.nuts import VectorizedNUTS

    a, b = 1.0, 0.5

    def U(q):
        return 0.5 * (q[:, 0] / a) ** 2 + 0.5 * (q[:, 1] - b * (q[:, 0] ** 2 - a**2)) ** 2

    res = VectorizedNUTS(U, max_tree_depth=6, seed=3, metric=metric).run(
        torch.zeros(4, 2, dtype=torch.float64), 300, 1000
    )
    x = res["draws"].numpy()
    ess = np.asarray(az.ess(az.convert_to_dataset(x))["x"].values)
    flat = x.reshape(-1, 2)
    mcse = flat.std(0) / np.sqrt(ess)
    assert np.all(np.abs(flat.mean(0)) < 4 * mcse), (flat.mean(0), mcse)
    np.testing.assert_allclose(flat.var(0), [1.0, 1.5], rtol=0.15)
    assert res["divergent"].sum() == 0
    assert res["n_grad_sampling"] > 0 and res["n_grad_warmup"] > 0


def test_dense_adaptation_learns_a_correlated_gaussian():
    """10-dim Gaussian with correlation 0.99 between all coordinates: the pooled dense metric approaches the
    covariance, so the adapted step is large (>= 0.4, a diagonal metric needs ~0.1) and trees are short; the
    moments are right."""
    from nnrds.uq.nuts import VectorizedNUTS

    D, r = 10, 0.99
    S = torch.full((D, D), r, dtype=torch.float64) + (1 - r) * torch.eye(D, dtype=torch.float64)
    P = torch.linalg.inv(S)

    def U(q):
        return 0.5 * ((q @ P) * q).sum(-1)

    # the diagonal run only shows its small step and deep trees (a short run); the dense one is checked in full
    q0 = torch.zeros(8, D, dtype=torch.float64)
    out = {
        "diag": VectorizedNUTS(U, max_tree_depth=8, seed=0, metric="diag").run(q0, 200, 50),
        "dense": VectorizedNUTS(U, max_tree_depth=8, seed=0, metric="dense").run(q0, 400, 200),
    }
    dense = out["dense"]
    assert dense["inv_mass"].shape == (D, D)
    np.testing.assert_allclose(dense["inv_mass"].numpy(), S.numpy(), atol=0.15)
    assert dense["step_size"].min() > 0.4 and out["diag"]["step_size"].max() < 0.3
    assert dense["tree_depth"].mean() < out["diag"]["tree_depth"].mean() - 0.5
    flat = dense["draws"].reshape(-1, D).numpy()
    np.testing.assert_allclose(np.cov(flat.T), S.numpy(), atol=0.15)


def test_vectorized_nuts_keeps_every_tensor_on_the_device_of_q0():
    """Device-agnostic sampler: the potential only ever sees positions on q0's device, the random numbers come
    from a generator on that device, and the draws come back there (CPU here; the same code on CUDA is run by
    test_vectorized_nuts_on_cuda when a GPU is present)."""
    from nnrds.uq.nuts import VectorizedNUTS

    q0 = torch.zeros(3, 4, dtype=torch.float64)
    seen = set()

    def U(q):
        seen.add(q.device)
        return 0.5 * (q**2).sum(-1)

    for metric in ("diag", "dense"):
        s = VectorizedNUTS(U, max_tree_depth=4, seed=0, metric=metric)
        res = s.run(q0, 30, 20)
        assert s.gen.device == q0.device and res["draws"].device == q0.device and res["inv_mass"].device == q0.device
    assert seen == {q0.device}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vectorized_nuts_on_cuda():
    from nnrds.uq.nuts import VectorizedNUTS

    q0 = torch.zeros(4, 3, dtype=torch.float64, device="cuda")
    res = VectorizedNUTS(lambda q: 0.5 * (q**2).sum(-1), max_tree_depth=5, seed=0, metric="dense").run(q0, 100, 200)
    assert res["draws"].is_cuda
    assert abs(float(res["draws"].var()) - 1.0) < 0.3


def test_depth_sweep_claim_known_answers():
    """wp_makes_mcmc_feasible from the depth sweep, unit = (training size, seed) with its effect averaged over depths:
    WP runs with 10x the ESS per gradient evaluation -> supported (effect 1.0 in log10); 10x less -> contradicted;
    equal up to noise -> inconclusive; one unit -> inconclusive (no interval); runs that have not mixed ->
    inconclusive. The efficiency table lists every parameterization and depth."""
    from nnrds import config, verdicts
    from nnrds.studies import uq_elm

    study = config.load(config.REPO_ROOT / "config" / "config.yaml")["uq_elm"]
    study = {**study, "depth_sweep": {**study["depth_sweep"], "claim": True}}
    rng = np.random.default_rng(0)

    def runs(factor, seeds=(0, 1, 2), sizes=(50, 200), noise=0.0, rhat=1.05):
        rows = []
        for n in sizes:
            for s in seeds:
                for depth in (2, 8, 16):
                    for name, wp in (("mlp", False), ("nonpar", False), ("const", True), ("legendre1", True)):
                        e = 1e-3 * (factor if wp else 1.0) * 10 ** (noise * rng.standard_normal())
                        rows.append(
                            {
                                "n_train": n,
                                "seed": s,
                                "depth": depth,
                                "parameterization": name,
                                "wp": wp,
                                "dim": 50,
                                "ess_per_grad": e,
                                "converged": False,
                                "rhat_invariant": rhat,
                                "rhat_within": rhat,
                            }
                        )
        return pd.DataFrame(rows)

    def one(df):
        c = uq_elm.claims(pd.DataFrame(), "default", study, df)
        assert list(c.columns) == verdicts.CLAIM_COLUMNS and len(c) == 1
        return c.iloc[0]

    c = one(runs(10.0))
    assert c.verdict == verdicts.SUPPORTED and c.effect == pytest.approx(1.0) and c.n_units == 6
    assert one(runs(0.1)).verdict == verdicts.CONTRADICTED
    # equal efficiency, tightly measured: an advantage of the margin (a factor 2) is excluded -> contradicted
    assert one(runs(1.0, noise=0.05)).verdict == verdicts.CONTRADICTED
    assert one(runs(10**0.15, seeds=(0, 1), sizes=(50,), noise=0.5)).verdict == verdicts.INCONCLUSIVE
    few = one(runs(10.0, seeds=(0,), sizes=(50,)))
    assert few.verdict == verdicts.INCONCLUSIVE and few.n_units == 1
    assert "depth" in uq_elm.depth_caption(runs(10.0), study)
    # chains that have not mixed (R-hat 1.5): their ESS decides nothing, whatever the interval says
    unmixed = one(runs(10.0, rhat=1.5))
    assert unmixed.verdict == verdicts.INCONCLUSIVE and unmixed.ci_low > 0
    # claim off (default scale): no row; the sweep is the efficiency table
    off = {**study, "depth_sweep": {**study["depth_sweep"], "claim": False}}
    assert len(uq_elm.claims(pd.DataFrame(), "default", off, runs(10.0))) == 0
    eff = uq_elm.depth_efficiency(runs(10.0))
    assert len(eff) == 4 * 3 and set(eff.converged) == {"0/6"}
    assert eff.set_index(["parameterization", "depth"]).loc[("const", 8), "median_ess_per_1000_grad"] == pytest.approx(
        10.0
    )


def test_bench_settings_are_defaults():
    from nnrds.uq import bench

    assert {f"vanilla_{k}" for k in bench.VANILLA_SETTINGS} <= set(bench.DEFAULTS)
    assert set(bench.NNRDS_SETTINGS) <= set(bench.DEFAULTS)
