"""A WP-ResNet / MLP / linear model as a Bayesian regression model over a *flat* parameter vector.

The forward pass is the backbone's (:class:`nnrds.models.ReplicaNet`, same basis matrices from
:mod:`nnrds.wp`, same parameter order), written functionally so that a batch of S parameter vectors
``theta`` of shape (S, P) evaluates as S networks at once (MCMC draws, VI particles, ensemble members):

    x_0 = u A_in + a_in,   x_{n+1} = x_n + h sigma(W(t_n) x_n + b(t_n)),   y = x_L A_out + a_out
    W(t_n) = sum_k Phi[n, k] C_k,  b(t_n) = sum_k Phi[n, k] c_k          (MLP: x_{n+1} = sigma(W_n x_n + b_n))

``kind="linear"`` is the depth-0 case y = u A_out + a_out (Bayesian linear regression through the same
code path; conjugate, used by the tests).

Probabilistic model (outputs standardized by the caller):

    theta_j ~ N(0, s_j^2),   s_j = prior_scale * fan-in scale of its tensor (A_in: 1/sqrt(d_in),
              C_k: the backbone's init std 1/sqrt(w K mean_n Phi[n,k]^2), A_out: 1/sqrt(w)), biases: bias_scale
    sigma_o ~ HalfNormal(noise_scale)  (one noise scale per output; or fixed when ``noise_fixed`` is set)
    y_no | theta, sigma ~ N(f_o(u_n; theta), sigma_o^2)

Unconstrained coordinates for HMC: q = [theta, log sigma]; :meth:`BayesNet.potential` is
-log p(q | data) including the log-Jacobian of sigma = exp(log sigma), identical (tested) to the
potential Pyro derives from :meth:`BayesNet.pyro_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import wp
from ..models import ACTIVATIONS, Arch

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class NetSpec:
    """Architecture + prior of one Bayesian network."""

    d_in: int
    d_out: int
    kind: str = "nonpar"  # linear | mlp | nonpar | const | monomial | legendre | chebyshev
    width: int = 8
    depth: int = 2
    degree: int = 0
    T: float = 1.0
    activation: str = "tanh"
    prior_scale: float = 1.0  # multiplies the fan-in scales of the weights
    bias_scale: float = 1.0  # prior std of the biases
    noise_scale: float = 1.0  # HalfNormal scale of the per-output noise std
    noise_fixed: float | None = None  # known noise std (conjugate toy); None = inferred

    @classmethod
    def from_arch(cls, arch: Arch, **prior) -> NetSpec:
        """The spec of architecture ``arch`` with the prior settings ``prior``."""
        return cls(kind=arch.param, **{k: getattr(arch, k) for k in _SHARED_WITH_ARCH}, **prior)

    def arch(self) -> Arch:
        """The :class:`~nnrds.models.Arch` of this spec (its parameterization is ``kind``)."""
        return Arch(param=self.kind, **{k: getattr(self, k) for k in _SHARED_WITH_ARCH})


#: fields a :class:`NetSpec` shares, by name, with :class:`~nnrds.models.Arch` (``kind`` is Arch's ``param``)
_SHARED_WITH_ARCH = ("d_in", "d_out", "width", "depth", "degree", "T", "activation")


class BayesNet:
    """Flat-parameter forward, prior scales, the Pyro model and the HMC potential of one :class:`NetSpec`."""

    def __init__(self, spec: NetSpec, dtype: torch.dtype = torch.float64):
        self.spec, self.dtype = spec, dtype
        s, w = spec, spec.width
        if s.kind == "linear":
            self.phi = torch.zeros(0, 0, dtype=dtype)
            shapes = {"A_out": (s.d_in, s.d_out), "a_out": (s.d_out,)}
            scales = {"A_out": s.prior_scale / math.sqrt(s.d_in), "a_out": s.bias_scale}
            self.K = 0
        else:
            arch = spec.arch()  # validates kind / activation
            phi = (
                torch.eye(s.depth, dtype=torch.float64)
                if s.kind == "mlp"
                else wp.basis_matrix(s.kind, s.depth, s.degree, s.T)
            )
            self.phi = phi.to(dtype)
            K = self.K = arch.n_basis
            coef_std = (1.0 / torch.sqrt(w * K * phi.pow(2).mean(0).clamp_min(1e-12))).to(dtype)
            shapes = {
                "A_in": (s.d_in, w),
                "a_in": (w,),
                "C": (K, w, w),
                "c": (K, w),
                "A_out": (w, s.d_out),
                "a_out": (s.d_out,),
            }
            scales = {
                "A_in": s.prior_scale / math.sqrt(s.d_in),
                "a_in": s.bias_scale,
                "C": s.prior_scale * coef_std[:, None, None].expand(K, w, w),
                "c": s.bias_scale,
                "A_out": s.prior_scale / math.sqrt(w),
                "a_out": s.bias_scale,
            }
        self.shapes = shapes
        self.slices: dict[str, slice] = {}
        parts, i = [], 0
        for name, shp in shapes.items():
            n = math.prod(shp)
            self.slices[name] = slice(i, i + n)
            parts.append(torch.as_tensor(scales[name], dtype=dtype).expand(shp).reshape(-1))
            i += n
        self.P = i
        self.prior_std = torch.cat(parts)
        self.n_noise = 0 if spec.noise_fixed is not None else spec.d_out
        self.dim = self.P + self.n_noise  # unconstrained dimension
        self.sigma_act = ACTIVATIONS[spec.activation]

    # ------------------------------------------------------------------ parameters
    def unpack(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """(S, P) -> tensors with a leading S (the ReplicaNet layout)."""
        S = theta.shape[0]
        return {k: theta[:, sl].reshape(S, *self.shapes[k]) for k, sl in self.slices.items()}

    def flat_from_net(self, net) -> torch.Tensor:
        """ReplicaNet parameters (R replicas) -> theta of shape (R, P) in this layout."""
        return torch.cat([getattr(net, k).detach().to(self.dtype).flatten(1) for k in self.shapes], dim=1)

    def prior_penalty(self, net, X=None) -> torch.Tensor:
        """sum_j (theta_j / s_j)^2 per replica of a ReplicaNet, shape (R,) (MAP / ensemble regularizer)."""
        out = 0.0
        for k, sl in self.slices.items():
            p = getattr(net, k).flatten(1)
            out = out + (p / self.prior_std[sl].to(p)).pow(2).sum(1)
        return out

    def init_theta(self, seeds) -> torch.Tensor:
        """The backbone's initialization (fan-in Gaussians, zero biases) for each seed, shape (len(seeds), P)."""
        if self.spec.kind == "linear":
            g = [torch.Generator().manual_seed(int(s)) for s in seeds]
            return torch.stack([torch.randn(self.P, generator=gi, dtype=torch.float64) * 0.1 for gi in g]).to(
                self.dtype
            )
        from ..models import ReplicaNet

        net = ReplicaNet(self.spec.arch(), list(seeds), dtype=torch.float64)
        return self.flat_from_net(net)

    # ------------------------------------------------------------------ forward
    def forward(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """theta (S, P) or (P,), X (N, d_in) -> predictions (S, N, d_out) (or (N, d_out) for a single theta)."""
        single = theta.dim() == 1
        th = theta.unsqueeze(0) if single else theta.reshape(-1, self.P)
        p = self.unpack(th)
        if self.spec.kind == "linear":
            x = X
            out = torch.einsum("ni,sio->sno", x, p["A_out"]) + p["a_out"][:, None, :]
        else:
            W = torch.einsum("lk,skij->slij", self.phi, p["C"])
            b = torch.einsum("lk,ski->sli", self.phi, p["c"])
            x = torch.einsum("ni,sij->snj", X, p["A_in"]) + p["a_in"][:, None, :]
            h = self.spec.T / self.spec.depth
            for n in range(self.spec.depth):
                z = torch.einsum("snj,sij->sni", x, W[:, n]) + b[:, n, None, :]
                x = self.sigma_act(z) if self.spec.kind == "mlp" else x + h * self.sigma_act(z)
            out = torch.einsum("snj,sjo->sno", x, p["A_out"]) + p["a_out"][:, None, :]
        if single:
            return out[0]
        return out.reshape(*theta.shape[:-1], *out.shape[1:])

    # ------------------------------------------------------------------ densities
    def split_q(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unconstrained q (..., dim) -> theta (..., P), sigma (..., d_out)."""
        theta = q[..., : self.P]
        if self.n_noise:
            sigma = q[..., self.P :].exp()
        else:
            sigma = torch.full((*q.shape[:-1], self.spec.d_out), float(self.spec.noise_fixed), dtype=q.dtype)
        return theta, sigma

    def log_joint_q(self, q: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """log p(q, Y | X) in unconstrained coordinates (with the log-Jacobian); q (C, dim) -> (C,)."""
        theta, sigma = self.split_q(q)
        f = self.forward(theta, X)  # (C, N, d)
        N = X.shape[0]
        r = (Y - f) / sigma[:, None, :]
        ll = -0.5 * r.pow(2).sum((1, 2)) - N * sigma.log().sum(-1) - 0.5 * N * self.spec.d_out * LOG_2PI
        z = theta / self.prior_std
        lp = -0.5 * z.pow(2).sum(-1) - self.prior_std.log().sum() - 0.5 * self.P * LOG_2PI
        if self.n_noise:
            tau = self.spec.noise_scale
            # HalfNormal(tau) log density + log|d sigma / d log sigma| = log sigma
            lp = (
                lp
                + (0.5 * math.log(2.0 / math.pi) - math.log(tau) - 0.5 * (sigma / tau).pow(2)).sum(-1)
                + sigma.log().sum(-1)
            )
        return ll + lp

    def potential(self, q: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """-log p(q | data) up to a constant, for one q (dim,) -> scalar or a batch (C, dim) -> (C,)."""
        if q.dim() == 1:
            return -self.log_joint_q(q.unsqueeze(0), X, Y)[0]
        return -self.log_joint_q(q, X, Y)

    def potential_and_grad(
        self, q: torch.Tensor, X: torch.Tensor, Y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """U(q) and its gradient for a batch q (C, dim) by a hand-written backward pass (no autograd graph); tanh
        networks and the linear model only. Equal to autograd of :meth:`potential` up to round-off (tested)."""
        s = self.spec
        if s.kind != "linear" and s.activation != "tanh":
            raise NotImplementedError(f"potential_and_grad: hand-written only for tanh, not {s.activation!r}")
        C = q.shape[0]
        theta, sigma = self.split_q(q)
        p = self.unpack(theta)
        xs, acts = [], []
        if s.kind == "linear":
            xL = X.expand(C, *X.shape)
        else:
            W = torch.einsum("lk,skij->slij", self.phi, p["C"])
            b = torch.einsum("lk,ski->sli", self.phi, p["c"])
            x = torch.einsum("ni,sij->snj", X, p["A_in"]) + p["a_in"][:, None, :]
            h = s.T / s.depth
            for n in range(s.depth):
                a = torch.tanh(torch.einsum("snj,sij->sni", x, W[:, n]) + b[:, n, None, :])
                xs.append(x)
                acts.append(a)
                x = a if s.kind == "mlp" else x + h * a
            xL = x
        f = torch.einsum("snj,sjo->sno", xL, p["A_out"]) + p["a_out"][:, None, :]
        N, d = Y.shape
        r = (Y - f) / sigma[:, None, :]
        ls = sigma.log()
        U = 0.5 * r.pow(2).sum((1, 2)) + N * ls.sum(-1) + 0.5 * N * d * LOG_2PI
        z = theta / self.prior_std
        U = U + 0.5 * z.pow(2).sum(-1) + self.prior_std.log().sum() + 0.5 * self.P * LOG_2PI
        if self.n_noise:
            tau = s.noise_scale
            U = U - (0.5 * math.log(2.0 / math.pi) - math.log(tau) - 0.5 * (sigma / tau).pow(2)).sum(-1) - ls.sum(-1)
        gf = -r / sigma[:, None, :]  # dU/df
        g = {"A_out": torch.einsum("snj,sno->sjo", xL, gf), "a_out": gf.sum(1)}
        if s.kind != "linear":
            gx = torch.einsum("sno,sjo->snj", gf, p["A_out"])
            gW, gb = [None] * s.depth, [None] * s.depth
            for n in reversed(range(s.depth)):
                a = acts[n]
                gz = gx * (1 - a * a) if s.kind == "mlp" else gx * (h * (1 - a * a))
                gW[n] = torch.einsum("sni,snj->sij", gz, xs[n])
                gb[n] = gz.sum(1)
                back = torch.einsum("sni,sij->snj", gz, W[:, n])
                gx = back if s.kind == "mlp" else gx + back
            g["C"] = torch.einsum("lk,slij->skij", self.phi, torch.stack(gW, 1))
            g["c"] = torch.einsum("lk,sli->ski", self.phi, torch.stack(gb, 1))
            g["A_in"] = torch.einsum("ni,snj->sij", X, gx)
            g["a_in"] = gx.sum(1)
        grad = torch.cat([g[k].reshape(C, -1) for k in self.shapes], 1) + theta / self.prior_std.pow(2)
        if self.n_noise:
            tau = s.noise_scale
            g_ls = -r.pow(2).sum(1) + N + (sigma / tau).pow(2) - 1.0
            grad = torch.cat([grad, g_ls], 1)
        return U, grad

    def pyro_model(self, X: torch.Tensor, Y: torch.Tensor | None = None):
        """The same model with Pyro sample sites ``theta`` (P,), ``sigma`` (d_out,) and observed ``obs``.

        Works with a leading batch of theta (vectorized ELBO particles)."""
        import pyro
        import pyro.distributions as dist

        theta = pyro.sample("theta", dist.Normal(torch.zeros_like(self.prior_std), self.prior_std).to_event(1))
        if self.n_noise:
            sigma = pyro.sample(
                "sigma",
                dist.HalfNormal(torch.full((self.spec.d_out,), self.spec.noise_scale, dtype=self.dtype)).to_event(1),
            )
        else:
            sigma = torch.full((self.spec.d_out,), float(self.spec.noise_fixed), dtype=self.dtype)
        f = self.forward(theta, X)
        pyro.sample("obs", dist.Normal(f, sigma.unsqueeze(-2)).to_event(2), obs=Y)
        return f
