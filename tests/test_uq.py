"""Bayesian UQ core (src/nnrds/uq): model density, conjugate recovery by NUTS and VI, the predictive-sample
contract, metrics against closed forms, R-hat flagging, and a smoke-scale study job."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

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


def test_pyro_log_density_equals_hand_computed():
    import pyro.poutine as poutine

    net = _tiny()
    X, Y = (torch.as_tensor(a) for a in _data(5))
    theta = torch.randn(net.P, dtype=torch.float64) * 0.3
    sigma = torch.tensor([0.3, 0.7], dtype=torch.float64)
    cond = poutine.condition(net.pyro_model, data={"theta": theta, "sigma": sigma})
    lp = poutine.trace(cond).get_trace(X, Y).log_prob_sum()
    f = net.forward(theta, X).numpy()
    hand = (stats.norm.logpdf(Y.numpy(), f, sigma.numpy()).sum()
            + stats.norm.logpdf(theta.numpy(), 0, net.prior_std.numpy()).sum()
            + stats.halfnorm.logpdf(sigma.numpy(), scale=1.0).sum())
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
    Lam = Phi.T @ Phi / sig ** 2 + np.diag(1 / net.prior_std.numpy() ** 2)
    Sig = np.linalg.inv(Lam)
    return net, X, Y, Sig @ Phi.T @ Y[:, 0] / sig ** 2, Sig, Lam


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
    post = run_vi(net, X, Y, steps=700, lr=0.05, particles=8, seed=0, final_lr_frac=0.01, guide="lowrank",
                  rank=net.P)
    sd = np.sqrt(np.diag(Sig))
    assert np.all(np.abs(post.theta[0].numpy() - mu) < 0.3 * sd)
    W, s = post.theta_factor.numpy(), post.theta_scale.numpy()
    cov = W @ W.T + np.diag(s ** 2)
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


@pytest.mark.parametrize("method,settings", [
    ("nuts", {"chains": 2, "warmup": 10, "samples": 10, "max_tree_depth": 3, "init_steps": 5}),
    ("nuts", {"chains": 2, "warmup": 10, "samples": 10, "max_tree_depth": 3, "init_steps": 5, "dtype": "float32"}),
    ("vi", {"steps": 5, "particles": 2}),
    ("vi_lowrank", {"steps": 5, "particles": 2, "rank": 3}),
    ("ensemble", {"members": 3, "epochs": 5}),
    ("map", {"epochs": 5}),
])
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
    sig = torch.as_tensor(np.repeat([0.1, 0.1, 1.0, 1.0], 100)[:, None] * np.ones((1, 2)))
    post = Posterior("nuts", net, th, sig, chains=4, info={"divergent": np.zeros((4, 100), bool)})
    d = diagnostics.summarize(diagnostics.to_inference_data(post, np.zeros((2, 3))), rhat_threshold=1.05)
    assert d["flagged"] and d["sigma_rhat_max"] > 1.5
    # each chain alone is stationary (constant sigma within a chain, iid weights): the within-chain split R-hat
    # tells "chains in different modes" from "chains still drifting"
    assert d["rhat_within_invariant_max"] < 1.05 or not np.isfinite(d["rhat_within_invariant_max"])
    x = rng.standard_normal((3, 400, 2)) + np.array([0.0, 2.0, 4.0])[:, None, None]
    import arviz as az

    assert diagnostics.within_chain_rhat_max(az.from_dict(posterior={"sigma": x}), ["sigma"]) < 1.02
    x[0] += np.linspace(0.0, 3.0, 400)[:, None]  # one chain drifts
    assert diagnostics.within_chain_rhat_max(az.from_dict(posterior={"sigma": x}), ["sigma"]) > 1.3
    # within-chain ESS sums the chains' own ESS: about the number of draws for iid chains, whatever their offsets
    y = rng.standard_normal((3, 400, 2)) + np.array([0.0, 2.0, 4.0])[:, None, None]
    assert diagnostics.within_chain_ess_min(az.from_dict(posterior={"sigma": y}), ["sigma"]) > 900


def test_study_job_smoke(tmp_path):
    """One fit job of the ELM UQ study on a tiny simulator ensemble (all five methods, PCA-reduced outputs)."""
    from nnrds import config
    from nnrds.data import ensembles, write_ensemble
    from nnrds.studies import uq_elm

    cfg = config.load(config.REPO_ROOT / "config" / "smoke.yaml", {
        "raw_data": {"elm": {"n_train": 24, "n_test": 8, "years": 1, "spinup_cycles": 1, "analytic_jumps": 1}},
        "uq_elm": {"n_train": 24, "n_test": 8, "width": 3, "depth": 2, "n_pred_samples": 20,
                   "nuts": {"chains": 2, "warmup": 10, "samples": 10, "max_tree_depth": 3, "init_steps": 10},
                   "vi": {"steps": 20, "particles": 2}, "vi_lowrank": {"steps": 20, "particles": 2, "rank": 2},
                   "ensemble": {"members": 2, "epochs": 20},
                   "map": {"epochs": 20}, "slices": {"n_points": 3, "inputs": ["nue"]},
                   "extrapolation": {"fraction": 0.9}}})
    res = ensembles.build_elm(cfg["raw_data"]["elm"])
    write_ensemble(tmp_path, res["ptrain"], res["ytrain"], res["ptest"], res["ytest"], res["meta"])
    assert cfg["uq_elm"]["architectures"]["linear_pca"]["pca_variance"] == 0.99
    out = uq_elm.run_job("linear_pca", str(tmp_path), cfg["uq_elm"])
    m = out["metrics"]
    assert list(m.method) == ["nuts", "vi", "vi_lowrank", "ensemble", "map"] and (m.status == "ok").all()
    assert {"crps", "cov90", "rhat_invariant_max", "flagged"} <= set(m.columns)
    # the net fits fewer PCA scores than QoIs; predictions and slices are lifted back to all 10 QoIs
    assert (m.n_fit_outputs < 10).all() and (m.pca_retained_variance >= 0.99).all()
    assert set(out["predictions"].output.unique()) == set(out["slices"].output.unique()) and \
        out["predictions"].output.nunique() == 10
    assert len(out["slices"]) == 5 * 3 * 10 and len(out["trace"]) > 0
    cap = uq_elm.caption(m, "smoke", cfg["uq_elm"])
    assert "interpolation" in cap and "PCA" in cap and "low-rank VI" in cap
    small = {**cfg["uq_elm"], "nuts": {**cfg["uq_elm"]["nuts"], "max_params": 10}}
    skipped = uq_elm.run_job("linear", str(tmp_path), {**small, "methods": ["nuts", "map"]})["metrics"]
    assert skipped.status.tolist() == ["skipped", "ok"] and "max_params" in skipped.note.iloc[0]
    assert "not run" in uq_elm.caption(skipped, "smoke", small)
