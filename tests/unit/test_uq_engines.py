"""NUTS engines: the hand-written gradient of the BayesNet potential, the vectorized sampler's
fixed kernel and per-chain leapfrog counts, and the optional NumPyro engine (skipped when numpyro is not
installed: it is the optional ``bench`` extra, which CI does not install)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnrds.uq import BayesNet, NetSpec, diagnostics, run_nuts
from nnrds.uq.nuts import VectorizedNUTS


def _data(n=25, d_in=3, d_out=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in))
    Y = np.tanh(X @ rng.standard_normal((d_in, d_out))) + 0.1 * rng.standard_normal((n, d_out))
    return X, Y


NETS = {
    "legendre": dict(kind="legendre", degree=1, width=3, depth=3),
    "mlp": dict(kind="mlp", width=3, depth=2),
    "nonpar_fixed_noise": dict(kind="nonpar", width=2, depth=2, noise_fixed=0.3),
    "linear": dict(kind="linear"),
}


def _autograd(net, q, X, Y):
    q = q.clone().requires_grad_(True)
    u = net.potential(q, X, Y)
    (g,) = torch.autograd.grad(u.sum(), q)
    return u.detach(), g


@pytest.mark.parametrize("name", list(NETS))
def test_hand_written_gradient_equals_autograd(name):
    X, Y = _data()
    net = BayesNet(NetSpec(d_in=3, d_out=2, **NETS[name]))
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    q = 0.7 * torch.randn(5, net.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u, g = net.potential_and_grad(q, Xt, Yt)
    u0, g0 = _autograd(net, q, Xt, Yt)
    assert g.shape == g0.shape == (5, net.dim)
    np.testing.assert_allclose(u.numpy(), u0.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g.numpy(), g0.numpy(), rtol=1e-9, atol=1e-9 * float(g0.abs().max()))
    # a wrong gradient is caught: perturbing one coordinate's gradient by 1e-6 of its scale fails the check
    bad = g.clone()
    bad[0, 0] += 1e-6 * float(g0.abs().max())
    assert not np.allclose(bad.numpy(), g0.numpy(), rtol=1e-9, atol=1e-9 * float(g0.abs().max()))


def test_hand_written_gradient_refuses_other_activations():
    net = BayesNet(NetSpec(d_in=3, d_out=2, kind="mlp", width=3, depth=2, activation="relu"))
    X, Y = _data()
    with pytest.raises(NotImplementedError, match="tanh"):
        net.potential_and_grad(torch.zeros(2, net.dim, dtype=torch.float64), torch.as_tensor(X), torch.as_tensor(Y))


def test_sampler_with_hand_written_gradient_follows_the_autograd_chains():
    """The same seed gives the same chains on a small WP posterior, warm-up included -- not bit-identical: the two
    gradients differ by round-off (~1e-15), which the leapfrog dynamics amplify to ~1e-6 after 40 iterations
    (measured), so the draws agree to 1e-4 and every tree decision (depths, evaluation count) is the same."""
    X, Y = _data()
    net = BayesNet(NetSpec(d_in=3, d_out=2, kind="legendre", degree=1, width=2, depth=2))
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    q0 = 0.1 * torch.randn(3, net.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def run(vg):
        s = VectorizedNUTS(lambda q: net.potential(q, Xt, Yt), max_tree_depth=4, seed=2, value_and_grad=vg)
        return s.run(q0, 25, 15)

    a = run(None)
    b = run(lambda q: net.potential_and_grad(q, Xt, Yt))
    np.testing.assert_allclose(b["draws"].numpy(), a["draws"].numpy(), atol=1e-4)
    np.testing.assert_array_equal(a["tree_depth"], b["tree_depth"])
    assert a["n_grad_sampling"] == b["n_grad_sampling"]


def test_fixed_kernel_samples_a_gaussian_with_the_given_metric_and_step():
    """inv_mass + step_size fix the kernel: nothing adapted (the step and metric come back unchanged), no
    step-size search (one gradient evaluation before the first draw), correct moments; per-chain leapfrog counts
    lie within the tree depth's bounds 2^(d-1) <= n <= 2^d - 1."""
    D = 4
    S = torch.full((D, D), 0.9, dtype=torch.float64) + 0.1 * torch.eye(D, dtype=torch.float64)
    P = torch.linalg.inv(S)

    def U(q):
        return 0.5 * ((q @ P) * q).sum(-1)

    C = 6
    res = VectorizedNUTS(U, max_tree_depth=6, seed=1, metric="dense").run(
        torch.zeros(C, D, dtype=torch.float64), 0, 400, inv_mass=S, step_size=0.7
    )
    np.testing.assert_allclose(res["step_size"], 0.7)
    np.testing.assert_allclose(res["inv_mass"].numpy(), S.numpy())
    assert res["n_grad_warmup"] == C
    flat = res["draws"].reshape(-1, D).numpy()
    np.testing.assert_allclose(np.cov(flat.T), S.numpy(), atol=0.15)
    n, d = res["n_leapfrog"], res["tree_depth"]
    assert n.shape == (C, 400) and np.all(n >= 2 ** (d - 1)) and np.all(n <= 2**d - 1)
    # a fixed step that is far too large is kept (not adapted) and shows as divergences / rejections
    big = VectorizedNUTS(U, max_tree_depth=6, seed=1, metric="dense").run(
        torch.zeros(C, D, dtype=torch.float64), 0, 30, inv_mass=S, step_size=5.0
    )
    np.testing.assert_allclose(big["step_size"], 5.0)
    assert big["accept"].mean() < 0.5
    with pytest.raises(ValueError, match="both"):
        VectorizedNUTS(U, metric="dense").run(torch.zeros(2, D, dtype=torch.float64), 0, 5, step_size=0.5)


# ----------------------------------------------------------------------------------------------- NumPyro engine
def _numpyro():
    pytest.importorskip("numpyro", reason="NumPyro engine: optional extra (pip install -e '.[bench]'), not in CI")
    pytest.importorskip("jax", reason="NumPyro engine: optional extra (pip install -e '.[bench]'), not in CI")


@pytest.mark.parametrize("name", ["legendre", "linear"])
def test_jax_potential_equals_the_torch_potential(name):
    _numpyro()
    import jax

    from nnrds.uq import jax_potential

    X, Y = _data()
    net = BayesNet(NetSpec(d_in=3, d_out=2, **NETS[name]))
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    q = 0.7 * torch.randn(3, net.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    jax_potential.enable_x64("float64")
    vg = jax.vmap(jax.value_and_grad(jax_potential.potential_fn(net, X, Y, "float64")))
    u, g = vg(jax.numpy.asarray(q.numpy()))
    u0, g0 = _autograd(net, q, Xt, Yt)
    np.testing.assert_allclose(np.asarray(u), u0.numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g), g0.numpy(), rtol=1e-9, atol=1e-9)
    # in the Laplace coordinates: U(m + L z)
    m, L = q[0], torch.eye(net.dim, dtype=torch.float64) * 0.5
    Uz = jax_potential.potential_fn(net, X, Y, "float64", shift=m, factor=L)
    z = q[1]
    assert float(Uz(jax.numpy.asarray(z.numpy()))) == pytest.approx(float(net.potential(m + L @ z, Xt, Yt)), rel=1e-12)


def test_numpyro_engine_recovers_the_conjugate_posterior_through_the_study_path():
    """engine numpyro returns the vectorized engine's Posterior and info keys, and the diagnostics path works on
    it: exact conjugate Gaussian posterior of Bayesian linear regression (known noise)."""
    _numpyro()
    rng = np.random.default_rng(1)
    N, d, sig = 30, 3, 0.5
    X = rng.standard_normal((N, d))
    Y = X @ np.array([[1.0], [-0.5], [0.3]]) + 0.2 + sig * rng.standard_normal((N, 1))
    net = BayesNet(NetSpec(d_in=d, d_out=1, kind="linear", noise_fixed=sig))
    Phi = np.hstack([X, np.ones((N, 1))])
    Sig = np.linalg.inv(Phi.T @ Phi / sig**2 + np.diag(1 / net.prior_std.numpy() ** 2))
    mu = Sig @ Phi.T @ Y[:, 0] / sig**2
    post = run_nuts(
        net, X, Y, chains=4, warmup=150, samples=400, init="prior", max_tree_depth=5, seed=3, engine="numpyro"
    )
    th = post.theta.numpy()
    sd = np.sqrt(np.diag(Sig))
    assert post.chains == 4 and th.shape == (1600, net.P)
    assert np.all(np.abs(th.mean(0) - mu) < 0.15 * sd + 4 * sd / math.sqrt(400))
    assert np.allclose(th.var(0), np.diag(Sig), rtol=0.25)
    i = post.info
    for k in ("warmup_s", "sampling_s", "divergent", "accept_rate", "step_size", "mean_tree_depth", "n_grad_sampling"):
        assert k in i, k
    assert len(i["step_size"]) == 4 and 1 <= i["mean_tree_depth"] <= 5 and i["divergent"].shape == (4, 400)
    dg = diagnostics.summarize(diagnostics.to_inference_data(post, X[:3]))
    assert dg["pred_rhat_max"] < 1.05 and not dg["flagged"] and dg["divergences"] == 0


def test_numpyro_fixed_kernel_keeps_the_given_step():
    _numpyro()
    from nnrds.uq.inference import numpyro_nuts

    net = BayesNet(NetSpec(d_in=2, d_out=1, kind="linear", noise_fixed=1.0))
    X = np.random.default_rng(0).standard_normal((10, 2))
    Y = X[:, :1]
    q0 = torch.zeros(2, net.dim, dtype=torch.float64)
    out = numpyro_nuts(
        net,
        X,
        Y,
        q0,
        seed=[0, 1],
        warmup=0,
        samples=20,
        step_size=0.3,
        inverse_mass_matrix=torch.eye(net.dim, dtype=torch.float64),
    )
    assert len(out) == 2
    for q, info in out:
        assert q.shape == (2, 20, net.dim)
        np.testing.assert_allclose(info["step_size"], 0.3)
    assert not np.allclose(out[0][0].numpy(), out[1][0].numpy())  # the seeds differ
