"""Model math: bases, parameter counts, nonpar indexing, forward Euler, replica independence."""

import numpy as np
import pytest
import torch

from nnrds import wp
from nnrds.models import Arch, ReplicaNet

WP_KINDS = [("const", 0), ("monomial", 1), ("monomial", 3), ("legendre", 1), ("legendre", 3)]


@pytest.mark.parametrize("kind,degree", WP_KINDS)
def test_param_count_independent_of_depth(kind, degree):
    counts = {Arch(10, 1, 16, L, kind, degree).n_params() for L in (1, 2, 5, 17, 64, 200)}
    assert len(counts) == 1
    net = ReplicaNet(Arch(10, 1, 16, 7, kind, degree), seeds=[0])
    assert sum(p[0].numel() for p in net.parameters()) == counts.pop()


@pytest.mark.parametrize("param", ["nonpar", "mlp"])
def test_param_count_grows_with_depth_for_nonpar_and_mlp(param):
    a1, a2 = Arch(3, 2, 5, 4, param), Arch(3, 2, 5, 8, param)
    assert a2.n_params() - a1.n_params() == 4 * (5 * 5 + 5)
    # hand count: input (3+1)*5, 4 layers of 5x5 + 5, output (5+1)*2
    assert a1.n_params() == 4 * 5 + 4 * 30 + 6 * 2


def test_nonpar_indexes_layer_by_integer_number():
    for L in range(1, 201):
        net = ReplicaNet(Arch(2, 1, 3, L, "nonpar"), seeds=[L])
        W, b = net.layer_weights()
        assert torch.equal(W[0], net.C[0]), L  # layer n uses coefficient n, for every n
        assert W.shape == (1, L, 3, 3)


def test_shifted_legendre_orthogonal_on_0_T():
    T = 2.5
    x, w = np.polynomial.legendre.leggauss(20)
    t, w = (x + 1) * T / 2, w * T / 2
    G = np.array(
        [[np.sum(w * wp.shifted_legendre(i, t, T) * wp.shifted_legendre(j, t, T)) for j in range(6)] for i in range(6)]
    )
    np.testing.assert_allclose(G, np.diag([T / (2 * k + 1) for k in range(6)]), atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 3, 5])
def test_legendre_and_monomial_span_same_functions(degree):
    L = 40
    Pm = wp.basis_matrix("monomial", L, degree).numpy()
    Pl = wp.basis_matrix("legendre", L, degree).numpy()
    # each basis is expressible exactly in the other: least-squares residual is zero
    for A, B in ((Pm, Pl), (Pl, Pm)):
        coef, *_ = np.linalg.lstsq(A, B, rcond=None)
        np.testing.assert_allclose(A @ coef, B, atol=1e-9)
    assert np.linalg.matrix_rank(np.hstack([Pm, Pl])) == degree + 1


def test_basis_values():
    phi = wp.basis_matrix("legendre", 4, 2, T=2.0).numpy()
    t = np.array([0, 0.5, 1.0, 1.5])
    s = t - 1.0  # 2t/T - 1
    np.testing.assert_allclose(phi, np.stack([np.ones(4), s, 1.5 * s**2 - 0.5], 1))
    np.testing.assert_allclose(wp.basis_matrix("monomial", 4, 3, T=2.0).numpy()[:, 3], (t / 2) ** 3)


def test_resnet_is_forward_euler():
    arch = Arch(3, 2, 4, 6, "legendre", 2, T=1.7)
    net = ReplicaNet(arch, seeds=[3], dtype=torch.float64)
    u = torch.randn(5, 3, dtype=torch.float64)
    h = 1.7 / 6
    x = u @ net.A_in[0] + net.a_in[0]
    for n in range(6):
        t = n * h
        s = 2 * t / 1.7 - 1
        phi = torch.tensor([1.0, s, 1.5 * s * s - 0.5], dtype=torch.float64)
        W = torch.einsum("k,kij->ij", phi, net.C[0])
        b = phi @ net.c[0]
        x = x + h * torch.tanh(x @ W.T + b)
    y = x @ net.A_out[0] + net.a_out[0]
    torch.testing.assert_close(net(u)[0], y)


def test_mlp_has_no_skip():
    net = ReplicaNet(Arch(3, 1, 4, 2, "mlp"), seeds=[0], dtype=torch.float64)
    u = torch.randn(5, 3, dtype=torch.float64)
    x = u @ net.A_in[0]
    for n in range(2):
        x = torch.tanh(x @ net.C[0, n].T + net.c[0, n])
    torch.testing.assert_close(net(u)[0], x @ net.A_out[0] + net.a_out[0])


def test_replica_is_independent_of_its_batch():
    arch = Arch(4, 2, 8, 5, "monomial", 3)
    u = torch.randn(7, 4)
    alone = ReplicaNet(arch, seeds=[11])(u)[0]
    batched = ReplicaNet(arch, seeds=[5, 11, 2])(u)[1]
    torch.testing.assert_close(alone, batched)


def test_unknown_parameterization_is_rejected():
    with pytest.raises(ValueError, match="unknown parameterization 'spline'"):
        Arch(1, 1, 1, 1, "spline")


# ---------------------------------------------------------------- initialization (issue 11, item 5)
INIT_KINDS = [
    ("nonpar", 0),
    ("mlp", 0),
    ("const", 0),
    ("monomial", 1),
    ("monomial", 3),
    ("legendre", 1),
    ("legendre", 3),
    ("legendre", 5),
]


@pytest.mark.parametrize("kind,degree", INIT_KINDS)
@pytest.mark.parametrize("depth", [1, 2, 4, 8, 16])
def test_every_layer_starts_with_variance_one_over_width(kind, degree, depth):
    """Exact: Var W(t_n) = (Phi M M^T Phi^T)_nn / w = 1/w at every node (b(t_n) = 0)."""
    phi = torch.eye(depth, dtype=torch.float64) if kind == "mlp" else wp.basis_matrix(kind, depth, degree)
    F, M = wp.init_map(phi)
    node_cov = phi.numpy() @ M @ M.T @ phi.numpy().T
    np.testing.assert_allclose(np.diag(node_cov), 1.0, rtol=1e-10)
    np.testing.assert_allclose(phi.numpy() @ M, F, atol=1e-10)
    # and empirically, per layer, over 200 replicas x 16 x 16 entries (relative s.e. of a variance ~0.6%)
    w = 16
    net = ReplicaNet(Arch(3, 1, w, depth, kind, degree), seeds=range(200), dtype=torch.float64)
    W, b = net.layer_weights()
    var = W.detach().pow(2).mean(dim=(0, 2, 3)).numpy() * w  # per layer, in units of 1/w (mean is 0)
    np.testing.assert_allclose(var, 1.0, atol=0.03)
    assert torch.count_nonzero(b) == 0


@pytest.mark.parametrize("degree", [1, 3])
@pytest.mark.parametrize("depth", [2, 3, 4, 8, 16])
def test_monomial_and_legendre_start_from_the_same_network(degree, depth):
    u = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    nets = [
        ReplicaNet(Arch(3, 2, 6, depth, kind, degree), seeds=[4, 17], dtype=torch.float64)
        for kind in ("monomial", "legendre")
    ]
    Wm, Wl = (n.layer_weights()[0] for n in nets)
    torch.testing.assert_close(Wm, Wl, rtol=0, atol=1e-12)
    torch.testing.assert_close(nets[0](u), nets[1](u), rtol=0, atol=1e-12)
    for k in ("A_in", "A_out"):
        assert torch.equal(getattr(nets[0], k), getattr(nets[1], k))


def test_bases_of_one_span_start_alike():
    """Spans decide the start: const/linear/cubic/Legendre-3 at depth 16 (all start constant in t) share the
    initial network; nonpar and Legendre of degree L-1 (both span every function on L nodes) share theirs."""
    u = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    small = [
        ReplicaNet(Arch(3, 1, 5, 16, k, d), seeds=[3], dtype=torch.float64)(u)
        for k, d in (("const", 0), ("monomial", 1), ("monomial", 3), ("legendre", 3))
    ]
    for y in small[1:]:
        torch.testing.assert_close(y, small[0], rtol=0, atol=1e-12)
    full = [
        ReplicaNet(Arch(3, 1, 5, 4, k, d), seeds=[3], dtype=torch.float64)
        for k, d in (("nonpar", 0), ("legendre", 3), ("monomial", 3))
    ]
    for net in full[1:]:
        torch.testing.assert_close(net.layer_weights()[0], full[0].layer_weights()[0], rtol=0, atol=1e-10)
    # a constant start really is constant in t; a full-span start is not
    W16 = ReplicaNet(Arch(3, 1, 5, 16, "legendre", 3), seeds=[3]).layer_weights()[0][0]
    assert torch.equal(W16, W16[:1].expand_as(W16))
    assert not torch.allclose(full[0].layer_weights()[0][0, 0], full[0].layer_weights()[0][0, 1])


def test_init_map_rejects_a_basis_without_constants():
    t = wp.layer_times(8)
    with pytest.raises(ValueError, match="must contain the constant functions"):
        wp.init_map(np.stack([t, t**2], axis=1))
