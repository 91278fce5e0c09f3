"""Stable-architecture study: blocks of the model family, Verlet inversion, prolongation, data, stability functions,
claims (src/nnrds/studies/stable_arch.py, models.py, integrators.py, data/toy2d.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds import integrators, wp
from nnrds.data import toy2d
from nnrds.models import Arch, ReplicaNet
from nnrds.studies import stable_arch as sa
from nnrds.train import cross_entropy_per_replica

F64 = torch.float64


def _u(n: int = 5) -> torch.Tensor:
    return torch.linspace(-1, 1, 2 * n, dtype=F64).reshape(n, 2)


def _randomize_biases(net: ReplicaNet, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.c.copy_(0.3 * torch.randn(net.c.shape, generator=g, dtype=F64))
        net.a_in.copy_(0.3 * torch.randn(net.a_in.shape, generator=g, dtype=F64))


# --------------------------------------------------------------------------------------------- model family
def test_default_resnet_block_unchanged():
    """Stored outputs of the default ResNet (computed with the code before the stable blocks were added), and the
    forward-Euler formula written out."""
    net = ReplicaNet(Arch(2, 3, 4, 3, param="nonpar", T=1.5), [0, 7], dtype=F64)
    y = net(_u())
    assert y.sum().item() == pytest.approx(2.3919635765321923, abs=1e-14)
    assert y[1, 2].tolist() == pytest.approx(
        [0.01872799728599997, -0.09949255671735152, 0.34643717236581095], abs=1e-15
    )
    leg = ReplicaNet(Arch(2, 3, 4, 8, param="legendre", degree=2, T=1.5), [3], dtype=F64)
    assert leg(_u()).sum().item() == pytest.approx(1.3077753747035266, abs=1e-14)
    _randomize_biases(net)
    W, b = net.layer_weights()
    x = torch.einsum("ni,rij->rnj", _u(), net.A_in) + net.a_in[:, None, :]
    for n in range(3):
        x = x + 0.5 * torch.tanh(torch.einsum("rnj,rij->rni", x, W[:, n]) + b[:, n, None, :])
    assert torch.equal(net.readout(x), net(_u()))


def test_block_validation():
    with pytest.raises(ValueError, match="integrates with"):
        Arch(2, 2, 4, 3, block="resnet", scheme="leapfrog")
    with pytest.raises(ValueError, match="unknown block"):
        Arch(2, 2, 4, 3, block="unitary")
    with pytest.raises(ValueError, match="MLP"):
        Arch(2, 2, 4, 3, param="mlp", block="antisymmetric")


def test_antisymmetric_spectrum_is_imaginary():
    """K - K^T has a purely imaginary spectrum, and so has the layer Jacobian diag(sigma') (K - K^T) (torch.func);
    with gamma the real parts are -gamma (matrix) and negative (Jacobian)."""
    net = ReplicaNet(Arch(2, 3, 6, 4, T=2.0, block="antisymmetric"), [0, 1], dtype=F64)
    _randomize_biases(net)
    W, _ = net.layer_weights()
    lam = torch.linalg.eigvals(net.layer_matrix(W))
    assert lam.real.abs().max() < 1e-12 and lam.imag.abs().max() > 0.1
    hl, layers = sa.layer_spectra(net, _u().expand(2, 5, 2), n_layers=4, n_points=3)
    assert hl.shape == (2, 4, 3, 6) and layers == [0, 1, 2, 3]
    assert hl.real.abs().max() < 1e-12 and hl.imag.abs().max() > 0.05
    damped = ReplicaNet(Arch(2, 3, 6, 4, T=2.0, block="antisymmetric", gamma=0.5), [0], dtype=F64)
    lam = torch.linalg.eigvals(damped.layer_matrix(damped.layer_weights()[0]))
    assert torch.allclose(lam.real, torch.full_like(lam.real, -0.5), atol=1e-12)
    plain = ReplicaNet(Arch(2, 3, 6, 4, T=2.0), [0], dtype=F64)  # a ResNet's W has real eigenvalue parts
    assert torch.linalg.eigvals(plain.layer_weights()[0]).real.abs().max() > 0.1


def test_second_order_jacobian_matches_autograd():
    """The second-order net's layer Jacobian [[0, I], [-K^T diag(sigma') K, 0]] at Y_n against autograd of the
    first-order field (Y, V) -> (V, -K^T sigma(K Y + b)); its eigenvalues are imaginary (K^T D K is PSD)."""
    net = sa.SecondOrderNet(Arch(2, 3, 3, 4, T=2.0), [5], dtype=F64)
    _randomize_biases(net)
    J, layers = sa.layer_jacobians(net, _u()[None], n_layers=2, n_points=2)
    W, b = net.layer_weights()
    ys = net.trajectory(_u()[None, :2])
    for li, n in enumerate(layers):

        def f(s, n=n):
            y, v = s[:3][None, None], s[3:][None, None]
            acc = -torch.einsum("rni,rij->rnj", torch.tanh(torch.einsum("rnj,rij->rni", y, W[:, n]) + b[:, n]), W[:, n])
            return torch.cat([v[0, 0], acc[0, 0]])

        state = torch.cat([ys[n][0, 0], torch.zeros(3, dtype=F64)])
        ref = torch.autograd.functional.jacobian(f, state)
        assert torch.allclose(J[0, li, 0], ref, atol=1e-13)
    lam = torch.linalg.eigvals(J)
    assert lam.real.abs().max() < 1e-10 and lam.imag.abs().max() > 0.05


@pytest.mark.parametrize(
    "block,scheme", [("resnet", "euler"), ("antisymmetric", "leapfrog"), ("hamiltonian", "verlet")]
)
def test_layer_jacobians_match_autograd(block, scheme):
    net = ReplicaNet(
        Arch(2, 3, 3, 4, T=2.0, block=block, scheme=scheme, gamma=0.1 * (block == "antisymmetric")), [5], dtype=F64
    )
    _randomize_biases(net)
    J, layers = sa.layer_jacobians(net, _u()[None], n_layers=2, n_points=2)
    assert layers == [0, 3]
    W, b = net.layer_weights()
    x0 = net.embed(_u()[None, :2])
    xs, zs = (
        net._stable_trajectory(x0, W, b, net.arch.h, 4) if block != "resnet" else (net.trajectory(_u()[None, :2]), [])
    )
    for li, n in enumerate(layers):
        for p in range(2):
            if block == "hamiltonian":

                def f(s, n=n):
                    x, z = s[:3][None, None], s[3:][None, None]
                    return torch.cat(
                        [net.vector_field(z, W[:, n], b[:, n])[0, 0], -net.vector_field(x, W[:, n].mT, b[:, n])[0, 0]]
                    )

                state = torch.cat([xs[n][0, p], zs[n][0, p]])
            else:

                def f(s, n=n):
                    return net.vector_field(s[None, None], W[:, n], b[:, n])[0, 0]

                state = xs[n][0, p]
            ref = torch.autograd.functional.jacobian(f, state.detach())
            assert torch.allclose(J[0, li, p], ref, atol=1e-13), (n, p)


def test_leapfrog_block_is_the_two_step_rule():
    net = ReplicaNet(Arch(2, 3, 4, 3, T=1.5, block="antisymmetric", scheme="leapfrog"), [2], dtype=F64)
    _randomize_biases(net)
    W, b = net.layer_weights()
    xs = [net.embed(_u())]
    xs.append(xs[0] + 0.5 * net.vector_field(xs[0], W[:, 0], b[:, 0]))
    for n in (1, 2):
        xs.append(xs[n - 1] + 2 * 0.5 * net.vector_field(xs[n], W[:, n], b[:, n]))
    assert torch.equal(net.trajectory(_u())[-1], xs[-1])


def test_verlet_step_inverted_exactly():
    """float64, small depth: the Verlet network run backwards returns its input (and z_{-1/2} = 0) to 1e-12."""
    net = ReplicaNet(Arch(2, 3, 5, 4, T=2.0, block="hamiltonian", scheme="verlet"), [0, 1, 2], dtype=F64)
    _randomize_biases(net)
    x0, xN, zN = net.verlet_states(_u())
    assert (xN - x0).abs().max() > 0.05  # the network does move its state
    xr, zr = net.verlet_inverse(xN, zN)
    assert (xr - x0).abs().max() < 1e-12 and zr.abs().max() < 1e-12
    assert sa.reconstruction_error(net, _u()).max() < 1e-12
    assert torch.equal(net.trajectory(_u())[-1], xN)


def test_verlet_inverse_detects_a_wrong_step():
    """A network whose forward pass differs from the inverted one (another h) is not reconstructed."""
    net = ReplicaNet(Arch(2, 3, 5, 4, T=2.0, block="hamiltonian", scheme="verlet"), [0], dtype=F64)
    other = ReplicaNet(Arch(2, 3, 5, 4, T=2.4, block="hamiltonian", scheme="verlet"), [0], dtype=F64)
    x0, xN, zN = other.verlet_states(_u())
    xr, _ = net.verlet_inverse(xN, zN)
    assert (xr - x0).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------- prolongation
def test_prolongation_of_wp_network_is_exact():
    """A WP network prolongated to 2L keeps W(t): its layer weights at the old nodes are the old ones, and its
    output equals the trained network evaluated at 2L layers through the resampled basis (to rounding)."""
    net = ReplicaNet(Arch(3, 2, 4, 4, param="legendre", degree=2, T=1.0), [0, 1], dtype=F64)
    _randomize_biases(net)
    with torch.no_grad():
        net.C.add_(0.2)
    fine = sa.prolongate(net, 8, "constant")
    assert fine.arch.depth == 8 and fine.arch.h == 0.125
    W, b = net.layer_weights()
    Wf, bf = fine.layer_weights()
    assert torch.allclose(Wf[:, ::2], W, atol=1e-14, rtol=0) and torch.allclose(bf[:, ::2], b, atol=1e-14, rtol=0)
    u = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    phi = wp.resample("legendre", 4, 8, degree=2, T=1.0)
    assert torch.allclose(fine(u), net(u, phi), atol=1e-14, rtol=0)
    # only h changed: the output differs from the coarse net's by the discretization error, not by 0
    assert (fine(u) - net(u)).abs().max() > 1e-6


def test_prolongation_of_nonpar_interpolates_layers():
    net = ReplicaNet(Arch(3, 2, 4, 4, param="nonpar", T=1.0), [0], dtype=F64)
    W = net.layer_weights()[0]
    Wc = sa.prolongate(net, 8, "constant").layer_weights()[0]
    assert torch.equal(Wc[:, 0::2], W) and torch.equal(Wc[:, 1::2], W)
    Wl = sa.prolongate(net, 8, "linear").layer_weights()[0]
    assert torch.allclose(Wl[:, 1], 0.5 * (W[:, 0] + W[:, 1]), atol=1e-15)


def test_multilevel_depths():
    assert sa.multilevel_depths({"start_depth": 4, "final_depth": 64}) == [4, 8, 16, 32, 64]
    with pytest.raises(ValueError, match="power of two"):
        sa.multilevel_depths({"start_depth": 4, "final_depth": 48})


# ------------------------------------------------------------------------------------------- data and loss
@pytest.mark.parametrize("name", list(toy2d.CLASSES))
def test_toy2d_seeded_with_stated_classes(name):
    u, y = toy2d.make(name, 600, 3)
    u2, y2 = toy2d.make(name, 600, 3)
    u3, _ = toy2d.make(name, 600, 4)
    assert u.shape == (600, 2) and y.shape == (600,) and y.dtype == np.int64
    assert np.array_equal(u, u2) and np.array_equal(y, y2) and not np.array_equal(u, u3)
    counts = np.bincount(y, minlength=toy2d.CLASSES[name])
    assert len(counts) == toy2d.CLASSES[name] and counts.min() > 0.5 * 600 / len(counts)


def test_toy2d_labels_follow_the_construction():
    u, y = toy2d.make("peaks", 400, 0)
    edges = toy2d._peaks_edges()
    assert np.array_equal(y, np.searchsorted(edges, toy2d.peaks(u[:, 0], u[:, 1])))
    u, y = toy2d.make("ellipses", 400, 0)
    r = np.hypot(u[:, 0], 2 * u[:, 1])
    assert np.array_equal(y, np.floor((r - 0.4) / 0.9).astype(int))
    with pytest.raises(ValueError, match="unknown 2-D problem"):
        toy2d.make("moons", 10, 0)


def test_cross_entropy_per_replica():
    net = ReplicaNet(Arch(2, 3, 4, 2), [0, 1], dtype=F64)
    u, y = toy2d.make("ellipses", 20, 0)
    U, Y = torch.as_tensor(u), torch.as_tensor(y)[:, None]
    loss = cross_entropy_per_replica(net, U, Y)
    logits = net(U)
    ref = [torch.nn.functional.cross_entropy(logits[r], Y[:, 0]) for r in range(2)]
    assert loss.shape == (2,) and torch.allclose(loss, torch.stack(ref), atol=1e-14)


# ------------------------------------------------------------------------------------- stability functions
def test_amplification_known_values():
    a = np.array([0.3, 0.9, 1.1])
    assert integrators.amplification("euler", 1j * a) == pytest.approx(np.sqrt(1 + a**2))
    assert integrators.amplification("euler", -1.0) == pytest.approx(0.0)
    lf = integrators.amplification("leapfrog", 1j * a)
    assert lf[:2] == pytest.approx([1.0, 1.0]) and lf[2] == pytest.approx(1.1 + math.sqrt(1.1**2 - 1))
    assert integrators.amplification("leapfrog", -0.1) > 1.0  # unstable off the imaginary axis
    assert integrators.amplification("verlet", [1.9j, 2.1j]) == pytest.approx([1.0, sa.verlet_xi(1.05)])
    assert integrators.amplification("rk4", -1.0) == pytest.approx(1 - 1 + 1 / 2 - 1 / 6 + 1 / 24)
    with pytest.raises(ValueError, match="no stability function"):
        integrators.amplification("bdf2", 1j)


def test_linear_verlet_roundtrip_follows_the_amplification():
    """a^2 < 1: the roundtrip stays at rounding; a^2 > 1: its error grows like |xi|^(2N) (known amplification)."""
    assert sa.verlet_xi(0.9) == 1.0 and sa.verlet_xi(1.2) == pytest.approx((1.2 + math.sqrt(0.44)) ** 2)
    assert max(sa.linear_verlet_roundtrip(0.9, n, "float64") for n in (8, 32, 128)) < 1e-12
    a = 1.02
    n = np.array([8, 12, 16, 20])
    err = np.array([sa.linear_verlet_roundtrip(a, int(k), "float64") for k in n])
    slope = np.polyfit(n, np.log(err), 1)[0]
    assert slope == pytest.approx(2 * math.log(sa.verlet_xi(a)), rel=0.15)
    assert math.isnan(sa.linear_verlet_roundtrip(1.5, 400, "float32"))  # overflow is NaN, not a number


# ------------------------------------------------------------------------------ schemes, flows, growth (issue 22)
def _two_d(omega: float, depth: int, block: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer weights (1, depth, 2, 2) with a known linearization: antisymmetric W - W^T = omega J (rotation
    generator), a Hamiltonian / second-order W = omega I; zero biases."""
    if block == "antisymmetric":
        W = torch.tensor([[0.0, -0.5 * omega], [0.5 * omega, 0.0]], dtype=F64)
    else:
        W = omega * torch.eye(2, dtype=F64)
    return W.expand(1, depth, 2, 2).clone(), torch.zeros(1, depth, 2, dtype=F64)


def test_flows_known_answers_in_the_linear_regime():
    """Small states (tanh ~ identity): the antisymmetric field is the rotation x' = omega J x, so the exact flow keeps
    ||x||, forward Euler multiplies it by (1 + (h omega)^2)^(N/2), the two-step midpoint rule keeps it (|h omega| < 1);
    the Hamiltonian net's x'' = -omega^2 x and the second-order net's Y'' = -omega^2 Y give x0 cos(omega T) exactly,
    Verlet / leapfrog to O(h^2)."""
    omega, h, N = 1.5, 0.2, 40
    x0 = torch.tensor([[[1e-4, 0.0]]], dtype=F64)
    W, b = _two_d(omega, N, "antisymmetric")
    r = {
        s: float(sa.final_state("antisymmetric", s, W, b, x0, h).norm() / 1e-4) for s in ("euler", "midpoint", "exact")
    }
    assert r["exact"] == pytest.approx(1.0, abs=1e-6)
    assert r["euler"] == pytest.approx((1 + (h * omega) ** 2) ** (N / 2), rel=1e-5)
    assert abs(r["midpoint"] - 1.0) < 0.05
    T = h * N
    for block, scheme in (("hamiltonian", "verlet"), ("second_order", "leapfrog")):
        W, b = _two_d(omega, N, block)
        exact = sa.final_state(block, "exact", W, b, x0, h)
        assert torch.allclose(exact, x0 * math.cos(omega * T), atol=1e-11, rtol=0), block
        disc = sa.final_state(block, scheme, W, b, x0, h)
        assert (disc - x0 * math.cos(omega * T)).abs().max() < 0.1 * 1e-4, block
        assert (disc - exact).abs().max() > 1e-9, block  # the discretization is not the exact flow
    with pytest.raises(ValueError, match="integrates with"):
        sa.final_state("hamiltonian", "euler", W, b, x0, h)


def test_final_state_is_each_nets_own_forward_pass():
    """final_state with a net's own scheme equals the model's trajectory for every architecture; the exact flow
    converges (16 vs 64 RK4 steps per layer agree to 1e-8)."""
    for name in sa.ARCHS:
        cfg = {"width": 4, "gamma": 0.1, "gamma_damped": 0.5}
        arch = sa.stability_arch(name, cfg, 3, 6, 0.3)
        net = sa.stability_net(name, arch, [1, 2], F64)
        _randomize_biases(net)
        W, b = net.layer_weights()
        block, scheme = sa.ARCHS[name]
        x0 = net.embed(_u())
        own = sa.final_state(block, scheme, W, b, x0, arch.h, gamma=arch.gamma)
        assert torch.equal(own, net.trajectory(_u())[-1]), name
        e16, e64 = (sa.final_state(block, "exact", W, b, x0, arch.h, gamma=arch.gamma, substeps=m) for m in (16, 64))
        assert (e16 - e64).abs().max() < 1e-8, name
        assert sa.eval_schemes(block, scheme)[0] == scheme and sa.eval_schemes(block, scheme)[-1] == "exact"
    assert sa.eval_schemes("antisymmetric", "midpoint") == ["midpoint", "euler", "exact"]


def test_second_order_net_is_the_leapfrog_rule_written_out():
    net = sa.SecondOrderNet(Arch(2, 3, 4, 3, T=1.5), [2], dtype=F64)
    _randomize_biases(net)
    W, b = net.layer_weights()
    h = 0.5
    ys = [net.embed(_u())]
    prev = ys[0]
    for n in range(3):
        K = W[:, n]
        acc = torch.einsum("rni,rij->rnj", torch.tanh(torch.einsum("rnj,rij->rni", ys[-1], K) + b[:, n, None]), K)
        ys.append(2 * ys[-1] - prev - h * h * acc)
        prev = ys[-2]
    assert torch.allclose(net.trajectory(_u())[-1], ys[-1], atol=1e-15, rtol=0)
    assert sa.block_of(net) == "second_order" and sa.net_scheme(net) == "leapfrog"


def test_every_architecture_starts_from_the_same_weights():
    """Same seeds -> the same initial W, b, embedding and read-out for every architecture (the growth at
    initialization compares schemes on identical weights)."""
    cfg = {"width": 4, "gamma": 0.0, "gamma_damped": 0.5}
    nets = [sa.stability_net(a, sa.stability_arch(a, cfg, 3, 8, 0.5), [3, 4], F64) for a in sa.ARCHS]
    for n in nets[1:]:
        for k in ("A_in", "C", "c", "A_out"):
            assert torch.equal(getattr(n, k), getattr(nets[0], k))
    e, m = (nets[list(sa.ARCHS).index(a)] for a in ("antisym_euler", "antisym_midpoint"))
    ge = sa.perturbation_growth(e, _u(), 0, "midpoint")
    assert np.array_equal(ge, sa.perturbation_growth(m, _u(), 0)) and not np.array_equal(
        ge, sa.perturbation_growth(e, _u(), 0)
    )


def test_smooth_weights_options_and_time_smoothness():
    """The time-smoothness penalty is 0 for a constant W(t) and sum ||W_{n+1} - W_n||^2 / h for known layers;
    the part's ``param`` gives the stability nets a smooth basis."""
    cfg = {"width": 3, "param": "const"}
    const = sa.stability_net("antisym_midpoint", sa.stability_arch("antisym_midpoint", cfg, 2, 5, 0.5), [0], F64)
    assert const.arch.param == "const" and float(sa.time_smoothness(const).detach()) == 0.0
    leg = sa.stability_arch("antisym_euler", {"width": 3, "param": "legendre", "degree": 2}, 2, 8, 0.5)
    assert (leg.param, leg.degree) == ("legendre", 2)
    net = ReplicaNet(Arch(2, 2, 2, 4, T=2.0), [0, 1], dtype=F64)
    with torch.no_grad():
        net.C.copy_(torch.arange(4, dtype=F64)[None, :, None, None].expand(2, 4, 2, 2))  # W_n = n (every entry)
        net.c.zero_()
    assert sa.time_smoothness(net).tolist() == pytest.approx([3 * 4 / 0.5] * 2)  # 3 jumps of 4 entries, h = 0.5


# ------------------------------------------------------------------------------------------------- claims
ARCH_NAMES = ["antisym_euler", "antisym_euler_damped", "antisym_midpoint", "hamiltonian", "second_order"]


def _growth(rise: dict, seeds: int = 6, noise: float = 0.01) -> pd.DataFrame:
    """A synthetic growth table: log10 growth 0 at N = 4 and ``rise[(arch, weights, eval_scheme)]`` at N = 16 (own
    scheme when eval_scheme is None), with a seed-to-seed spread symmetric about it (shifted per entry, so that
    differences between entries spread too)."""
    offsets = [1.0, -1.0, 0.5, -0.5, 0.2, -0.2, 0.7, -0.7]
    rows = []
    for k, ((arch, weights, ev), r) in enumerate(rise.items()):
        ev = sa.ARCHS[arch][1] if ev is None else ev
        for s in range(seeds):
            for problem in ("peaks", "swiss_roll"):
                for depth, g in ((4, 0.0), (16, r + noise * offsets[(s + k) % 8] * (1 if problem == "peaks" else 0.9))):
                    rows.append(
                        {"arch": arch, "problem": problem, "h": 0.5, "depth": depth, "seed": s, "weights": weights,
                         "eval_scheme": ev, "log10_growth": g}
                    )  # fmt: skip
    return pd.DataFrame(rows)


def _factors(total, init, trained, exact, stable=0.05, euler=1.0, **kw) -> pd.DataFrame:
    """Growth table whose claims have known effects: the own-scheme rises (``euler`` for antisym_euler, ``stable``
    for the others) and the four midpoint-vs-Euler factors."""
    E, M = "antisym_euler", "antisym_midpoint"
    rise = {(a, "trained", None): stable for a in ARCH_NAMES}
    rise[(E, "trained", None)] = euler
    rise[(M, "trained", None)] = euler + total
    rise[(E, "init", "euler")], rise[(E, "init", "midpoint")] = init, 0.0
    rise[(E, "init_const", "euler")], rise[(E, "init_const", "midpoint")] = init, 0.0
    rise[(E, "trained", "midpoint")] = euler - trained  # Euler - midpoint on Euler weights = trained
    rise[(M, "trained", "euler")] = euler + total + trained  # and on midpoint weights
    rise[(E, "trained", "exact")], rise[(M, "trained", "exact")] = 0.0, exact
    return _growth(rise, **kw)


def test_growth_rise_known_answer():
    g = _growth({("antisym_euler", "trained", None): 0.8, ("antisym_euler", "init", "exact"): -0.3}, noise=0.0)
    assert sa.growth_rise(g, "antisym_euler", 0.5, "trained") == pytest.approx([0.8] * 6)
    assert sa.growth_rise(g, "antisym_euler", 0.5, "init", "exact") == pytest.approx([-0.3] * 6)
    assert sa.growth_rise(g, "antisym_midpoint", 0.5, "trained").size == 0


def _study(archs=tuple(ARCH_NAMES)):
    return {
        "seeds": list(range(6)),
        "stability": {
            "archs": list(archs),
            "problems": ["peaks", "swiss_roll"],
            "steps": [0.5],
            "depths": [4, 16],
            "width": 4,
            "epochs": 1,
        },
        "multilevel": {"dataset": "elm_n400", "start_depth": 2, "final_depth": 4, "epochs_per_level": 3, "width": 4,
                       "T": 1.0},
    }  # fmt: skip


def _rev(err):
    rows = [
        {"source": "trained", "dtype": "float64", "depth": 16, "seed": s, "rel_error": e} for s, e in enumerate(err)
    ]
    return pd.DataFrame(rows, columns=["source", "dtype", "depth", "seed", "rel_error"])


def _ml(ratio_log10):
    rows = [
        {"parameterization": "nonpar", "seed": s, "multilevel_test": 1.0, "scratch_cost_test": 10.0**r,
         "scratch_steps_test": 10.0**r, "coarse_test": 10.0**r}
        for s, r in enumerate(ratio_log10)
    ]  # fmt: skip
    return pd.DataFrame(rows)


CLAIM_IDS = [
    "antisym_euler_unstable:h0.5",
    "antisym_euler_damped_stable:h0.5",
    "antisym_midpoint_stable:h0.5",
    "hamiltonian_stable:h0.5",
    "second_order_stable:h0.5",
    "midpoint_amplifies_more:h0.5",
    "same_weights_init:h0.5",
    "same_weights_init_smooth:h0.5",
    "same_weights_trained:h0.5",
    "midpoint_weights_expansive:h0.5",
    "verlet_reversible",
    "multilevel_cheaper:nonpar",
    "multilevel_equal_steps:nonpar",
    "multilevel_beats_coarse:nonpar",
]


def test_claims_supported():
    cl = sa.claims(
        _factors(total=-0.95, init=0.8, trained=0.7, exact=0.6, euler=1.0, stable=0.05),
        _rev([1e-15, 2e-15, 3e-15, 1.5e-15, 4e-15, 2.5e-15]),
        _ml([0.5, 0.6, 0.55, 0.52, 0.58, 0.61]),
        _study(),
    ).set_index("claim_id")
    # a stable midpoint net (rise 1.0 - 0.95) cannot also amplify more than the unstable Euler one
    assert list(cl.index) == CLAIM_IDS
    want = {c: "supported" for c in CLAIM_IDS} | {"midpoint_amplifies_more:h0.5": "contradicted"}
    assert cl.verdict.to_dict() == want, cl[["effect", "ci_low", "ci_high", "verdict"]]
    assert cl.loc["antisym_euler_unstable:h0.5", "effect"] == pytest.approx(1.0 - math.log10(2), abs=0.02)
    assert cl.loc["same_weights_trained:h0.5", "effect"] == pytest.approx(0.7, abs=0.02)
    assert cl.loc["midpoint_weights_expansive:h0.5", "effect"] == pytest.approx(0.6, abs=0.02)
    assert (cl.p_adjusted >= cl.p_value).all() and (cl.n_units == 6).all()
    # Holm families: stability + reversibility (11), multilevel (3)
    assert (
        cl.test.str.contains("Holm over 11 claims").sum() == 11
        and cl.test.str.contains("Holm over 3 claims").sum() == 3
    )


def test_claims_contradicted():
    """Euler rises below the threshold, the stable nets far above it, every factor the other way round."""
    cl = sa.claims(
        _factors(total=-0.5, init=-0.8, trained=-0.7, exact=-0.6, euler=0.0, stable=1.5),
        _rev([1e-6, 2e-6, 3e-6, 1.5e-6, 4e-6, 2.5e-6]),
        _ml([-0.5, -0.6, -0.55, -0.52, -0.58, -0.61]),
        _study(),
    ).set_index("claim_id")
    want = {c: "contradicted" for c in CLAIM_IDS}
    want["antisym_midpoint_stable:h0.5"] = "supported"  # its rise is 0.0 - 0.5 < the threshold
    assert cl.verdict.to_dict() == want, cl[["effect", "ci_low", "ci_high", "verdict"]]


def test_claims_inconclusive():
    """Effects that straddle the threshold (or 0 and the margin) with spread across seeds."""
    mg = math.log10(2)
    cl = sa.claims(
        _factors(total=0.05, init=0.05, trained=0.05, exact=0.05, euler=mg, stable=mg - 0.05, noise=0.5),
        _rev([1e-12, 1e-8, 1e-11, 1e-9, 1e-10, 1e-10]),
        _ml([1.0, -1.0, 0.5, -0.5, 0.1, -0.1]),
        _study(),
    )
    assert set(cl.verdict) == {"inconclusive"}, cl[["claim_id", "effect", "ci_low", "ci_high", "verdict"]]


def test_claims_follow_the_configured_architectures():
    cl = sa.claims(_factors(0, 0, 0, 0), _rev([]), pd.DataFrame(), _study(archs=("hamiltonian",)))
    assert list(cl.claim_id) == ["hamiltonian_stable:h0.5"]
    cl = sa.claims(_factors(0, 0, 0, 0), _rev([]), pd.DataFrame(), _study(archs=("antisym_euler", "resnet")))
    assert list(cl.claim_id) == ["antisym_euler_unstable:h0.5"]  # the factors need both antisymmetric schemes


def test_part_seeds_override():
    study = {"seeds": [0, 1], "stability": {"seeds": [0, 1, 2]}, "multilevel": {}}
    assert sa.part_config(study, "stability")["seeds"] == [0, 1, 2]
    assert sa.part_config(study, "multilevel")["seeds"] == [0, 1]


# --------------------------------------------------------------------------------------------- multilevel
def test_multilevel_budget_known_values():
    b = sa.multilevel_budget({"start_depth": 4, "final_depth": 32, "epochs_per_level": 100})
    assert b == {"steps": 400, "cost": 100 * (4 + 8 + 16 + 32), "cost_epoch": 188, "coarse_cost": 1600}


def test_initial_net_same_distribution_at_every_depth():
    """A degree-3 basis starts from the final depth's W(t) at every depth (init_map alone would draw independent
    layers at depth 4 but a constant W(t) at 32); nonpar draws independent N(0, 1/w) layers at every depth."""
    arch = Arch(3, 1, 4, 4, param="legendre", degree=3, T=1.0)
    coarse = sa.initial_net(arch, 4, 32, [0, 1], F64)
    fine = sa.initial_net(arch, 32, 32, [0, 1], F64)
    Wc, Wf = coarse.layer_weights()[0], fine.layer_weights()[0]
    assert torch.allclose(Wc, Wc[:, :1].expand_as(Wc), atol=1e-14)  # constant W(t), as at the final depth
    assert torch.allclose(Wc[:, 0], Wf[:, 0], atol=1e-14) and torch.equal(coarse.A_in, fine.A_in)
    plain = ReplicaNet(Arch(3, 1, 4, 4, param="legendre", degree=3, T=1.0), [0, 1], dtype=F64).layer_weights()[0]
    assert not torch.allclose(plain, plain[:, :1].expand_as(plain))  # what the fix avoids
    W = sa.initial_net(Arch(3, 1, 16, 4, param="nonpar"), 4, 32, list(range(20)), F64).layer_weights()[0].detach()
    assert float(W.var()) == pytest.approx(1 / 16, rel=0.1)
    assert abs(float(torch.corrcoef(torch.stack([W[:, 0].flatten(), W[:, 1].flatten()]))[0, 1])) < 0.1


def test_run_multilevel_cell_modes_and_budgets():
    """A tiny run on a synthetic set: multilevel, scratch (with its equal-cost record) and coarse (with its
    prolongated record) at the budgets of multilevel_budget; the summary reads them."""
    from nnrds.experiment import Cell

    cfg = {"dataset": "friedman1", "parameterizations": ["nonpar"], "interp": "constant", "start_depth": 2,
           "final_depth": 8, "T": 1.0, "width": 4, "epochs_per_level": 3, "records_per_level": 1, "lr": 0.01,
           "seeds": [0, 1]}  # fmt: skip
    spec = {"kind": "friedman1", "n_features": 5, "noise": 0.5, "n_train": 20, "n_test": 10}
    out = sa.run_multilevel_cell(
        Cell({"param": "nonpar"}, cfg, device="cpu", dtype="float64", dataset=spec, parameterization={"kind": "nonpar"})
    )
    ml = out["multilevel"]
    b = sa.multilevel_budget(cfg)
    assert b == {"steps": 9, "cost": 42, "cost_epoch": 6, "coarse_cost": 18}
    sc = ml[ml["mode"] == "scratch"]
    assert sc["steps"].max() == 9 and 6 in set(sc["epoch"]) and set(sc["depth"]) == {8}
    co = ml[ml["mode"] == "coarse"]
    assert co[co.level == 1].depth.unique().tolist() == [8] and co.cost.max() == 18
    assert ml[ml["mode"] == "multilevel"].cost.max() == 42 and (ml.test_loss > 0).all()
    sm = sa.multilevel_summary(ml, cfg)
    assert len(sm) == 2 and (sm.scratch_cost_cost == 48).all() and (sm.scratch_steps_cost == 72).all()
    assert (sm.steps == 9).all() and np.isfinite(sm[["multilevel_test", "coarse_test"]].to_numpy()).all()


def test_multilevel_summary_and_jumps():
    rows = []
    for s in (0, 1):
        for mode, pts in (
            (
                "multilevel",
                [(0, 2, 0, 0, 0, 1.0), (0, 2, 5, 5, 10, 0.5), (1, 4, 0, 5, 10, 0.6), (1, 4, 5, 10, 30, 0.1)],
            ),
            ("scratch", [(0, 4, 0, 0, 0, 1.0), (0, 4, 8, 8, 32, 0.2), (0, 4, 10, 10, 40, 0.15)]),
            ("coarse", [(0, 2, 0, 0, 0, 1.0), (0, 2, 10, 10, 20, 0.3), (1, 4, 0, 10, 20, 0.35)]),
        ):
            for level, depth, epoch, steps, cost, loss in pts:
                rows.append(
                    {"parameterization": "p", "kind": "nonpar", "mode": mode, "seed": s, "level": level,
                     "depth": depth, "epoch": epoch, "steps": steps, "cost": cost, "train_loss": loss,
                     "test_loss": 2 * loss}
                )  # fmt: skip
    cfg = {"start_depth": 2, "final_depth": 4, "epochs_per_level": 5}  # cost 30 -> equal cost at epoch 8
    sm = sa.multilevel_summary(pd.DataFrame(rows), cfg)
    assert len(sm) == 2 and sm.multilevel_loss.tolist() == [0.1, 0.1] and sm.scratch_cost_loss.tolist() == [0.2, 0.2]
    assert sm.scratch_steps_test.tolist() == [0.3, 0.3] and sm.coarse_test.tolist() == [0.7, 0.7]
    assert sm.cost_to_scratch_loss.tolist() == [30.0, 30.0]
    assert sm.max_log10_jump.iloc[0] == pytest.approx(math.log10(0.6 / 0.5))


def test_run_stability_cell_growth_table():
    """A tiny stability run: the growth table holds the initial (and, antisymmetric, constant initial) and trained
    weights through every scheme of eval_schemes; the Euler and the midpoint net share their initial weights, so the
    Euler net's initial weights through the midpoint rule give the midpoint net's initial growth exactly."""
    from nnrds.experiment import Cell

    cfg = {"archs": ["antisym_euler", "antisym_midpoint"], "problems": ["peaks"], "n_train": 16, "n_test": 16,
           "width": 3, "depths": [2, 4], "steps": [0.5], "gamma": 0.0, "gamma_damped": 0.5, "epochs": 2, "lr": 0.02,
           "spectrum_layers": 2, "spectrum_points": 2, "exact_substeps": 2, "growth_points": 8, "seeds": [0, 1]}  # fmt: skip
    out = {a: sa.run_stability_cell(Cell({"arch": a}, cfg, device="cpu", dtype="float64")) for a in cfg["archs"]}
    ge, gm = out["antisym_euler"]["growth"], out["antisym_midpoint"]["growth"]
    assert set(zip(ge.weights, ge.eval_scheme)) == {
        (w, s) for w in ("init", "init_const", "trained") for s in ("euler", "midpoint", "exact")
    }
    key = ["depth", "seed"]
    a = ge[(ge.weights == "init") & (ge.eval_scheme == "midpoint")].set_index(key).log10_growth
    b = gm[(gm.weights == "init") & (gm.eval_scheme == "midpoint")].set_index(key).log10_growth
    assert a.equals(b)
    tr = gm[(gm.weights == "trained") & (gm.eval_scheme == "midpoint")].set_index(key).log10_growth
    runs = out["antisym_midpoint"]["runs"].set_index(key).log10_growth
    assert np.allclose(tr.sort_index(), runs.sort_index()) and not np.allclose(tr.sort_index(), b.sort_index())
