"""Replica-batched recurrent networks: Lipschitz RNN, noisy RNN, antisymmetric RNN, coRNN, LSTM.

Same conventions as :mod:`nnrds.models`: every parameter carries a leading replica dimension R, each
replica is initialised from its own seed (a ``torch.Generator`` per replica), and inputs are shared
``(N, T*d_in)`` or per replica ``(R, N, T*d_in)``. Sequences are passed *flattened* (time-major inside a
row: ``x[n, t*d_in:(t+1)*d_in]`` is step t) so that :func:`nnrds.train.fit` can minibatch them along
the sample axis like any other table. Outputs are logits ``(R, N, d_out)``.

Continuous-time RNNs (Erichson et al., "Lipschitz recurrent neural networks", ICLR 2021;
Lim et al., "Noisy recurrent neural networks", NeurIPS 2021)::

    drift   f(h, x) = α A h + tanh(W h + U x + b),  y = D h_T + d
    A = (1-β)(M_A + M_Aᵀ) + β(M_A - M_Aᵀ) - γ_A I,   W = (1-β)(M_W + M_Wᵀ) + β(M_W - M_Wᵀ) - γ_W I

* ``lipschitz``: forward Euler with step ε, ``h_{k+1} = h_k + ε f(h_k, x_k)``, h_0 = 0, α = 1.
* ``noisy``: the Itô SDE ``dh = f dt + σ(h) dB`` with ``σ = ε_n (σ₁ I + σ₂ diag(f))``, integrated by
  Euler–Maruyama with Δt = ε::

      h_{k+1} = h_k + ε f_k + ε_n · s · (σ₁ ξ_k + σ₂ f_k ⊙ ζ_k),   ξ_k, ζ_k ~ N(0, I) independent

  with ``s = √ε`` when ``noise_sqrt_dt`` is true (the default: a genuine Brownian increment, ΔB ~ N(0, Δt I),
  so the noise *does* scale with √Δt) and ``s = 1`` otherwise (the official NoisyRNN code's convention,
  which adds σ₁·N(0, I) per step independently of ε). The noise is ON only in training mode
  (``net.train()``); in eval mode the forward pass is the deterministic Lipschitz RNN. σ₁, σ₂ are
  per-replica buffers, so a training-noise sweep runs as one replica batch. Every training forward draws
  its noise from a fresh generator per replica seeded with (replica seed, forward counter), so runs are
  reproducible and a replica's noise does not depend on the other replicas in the batch.
* ``antisymmetric``: β = 1 and the A term off (α = 0): ``h_{k+1} = h_k + ε tanh(W h_k + U x_k + b)``
  with W = M_W - M_Wᵀ - γ_W I (Chang et al., AntisymmetricRNN, ICLR 2019, as configured in the Lipschitz
  RNN code).

Eigenvalue bound (tested): with S = (1-β)(M + Mᵀ) the symmetric part of A is S - γI and its
antisymmetric part is β(M - Mᵀ). For an eigenpair A v = λ v, |v| = 1, Re λ = v* (S - γI) v, hence
``(1-β) λ_min(M+Mᵀ) - γ ≤ Re λ(A) ≤ (1-β) λ_max(M+Mᵀ) - γ``; for β = 1 every eigenvalue has Re λ = -γ
exactly. The same holds for W with γ_W.

coRNN (Rusch & Mishra, "Coupled oscillatory recurrent neural network (coRNN)", ICLR 2021): the second-order ODE
``y'' = tanh(W y + 𝒲 y' + V u + b) - γ y - ε y'`` as two first-order states, integrated by the paper's IMEX scheme
with step Δt (``cornn_dt``)::

    z_k = z_{k-1} + Δt (tanh(W y_{k-1} + 𝒲 z_{k-1} + V u_k + b) - γ y_{k-1} - ε z_{k-1}),   y_k = y_{k-1} + Δt z_k

y_0 = z_0 = 0, readout ``D y_T + d``; W, 𝒲 ~ nn.Linear-style uniform(±1/√H) init.

LSTM: torch.nn.LSTM (one layer) run per replica on replica-stacked parameters, one bias vector per
gate (torch's b_ih + b_hh merged), uniform(-1/√H, 1/√H) init as in torch, readout ``y = D h_T + d``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .models import normal_init

KINDS = ("lipschitz", "noisy", "antisymmetric", "lstm", "cornn")


@dataclass(frozen=True)
class RNNArch:
    """Architecture shared by the replicas of one batch."""

    kind: str
    d_in: int
    d_out: int
    seq_len: int
    hidden: int = 64
    eps: float = 0.1
    beta: float = 0.75
    gamma_A: float = 1e-3
    gamma_W: float = 1e-3
    init_std: float = 1.0  # M_A, M_W ~ N(0, (init_std / hidden)^2), as in the official code
    eps_noise: float = 1.0  # ε_n
    noise_sqrt_dt: bool = True
    cornn_dt: float = 0.042  # coRNN step Δt and its damping / stiffness (the paper's sequential-MNIST values)
    cornn_gamma: float = 2.7
    cornn_epsilon: float = 4.7

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown RNN kind {self.kind!r}; expected one of {KINDS}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {self.beta}")

    @property
    def effective_beta(self) -> float:
        return 1.0 if self.kind == "antisymmetric" else self.beta

    @property
    def use_A(self) -> bool:
        return self.kind in ("lipschitz", "noisy")

    def n_params(self) -> int:
        """Trainable parameters of one replica."""
        H, d, o = self.hidden, self.d_in, self.d_out
        head = (H + 1) * o
        if self.kind == "lstm":
            return 4 * H * (d + H + 1) + head
        if self.kind == "cornn":
            return (d + 1) * H + 2 * H * H + head
        return (d + 1) * H + H * H * (2 if self.use_A else 1) + head

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(shape: Sequence[int], bound: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound


def structured(M: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """(1-β)(M + Mᵀ) + β(M - Mᵀ) - γ I for M of shape (..., H, H)."""
    Mt = M.transpose(-1, -2)
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    return (1 - beta) * (M + Mt) + beta * (M - Mt) - gamma * eye


def _seq(x: torch.Tensor, arch: RNNArch) -> torch.Tensor:
    """(N, T*d) or (R, N, T*d) -> (R|1, N, T, d)."""
    if x.dim() == 2:
        x = x.unsqueeze(0)
    R, N, F = x.shape
    if F != arch.seq_len * arch.d_in:
        raise ValueError(f"input has {F} features per sample, expected seq_len*d_in = {arch.seq_len}*{arch.d_in}")
    return x.reshape(R, N, arch.seq_len, arch.d_in)


class _ReplicaRNNBase(nn.Module):
    def __init__(self, arch: RNNArch, seeds: Sequence[int]):
        super().__init__()
        self.arch = arch
        self.seeds = [int(s) for s in seeds]

    @property
    def n_replicas(self) -> int:
        return len(self.seeds)

    def _input_proj(self, x: torch.Tensor) -> torch.Tensor:
        """U x_t + b for every step: (R, N, T, G)."""
        xs = _seq(x, self.arch)
        return torch.einsum("rntd,rdg->rntg", xs.expand(self.n_replicas, -1, -1, -1), self.U) + self.b[:, None, None, :]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.d[:, None, :], h, self.D)


class ContinuousRNN(_ReplicaRNNBase):
    """R replicas of a Lipschitz / noisy / antisymmetric RNN (see the module docstring)."""

    def __init__(
        self,
        arch: RNNArch,
        seeds: Sequence[int],
        sigma_add: float | Sequence[float] = 0.0,
        sigma_mult: float | Sequence[float] = 0.0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__(arch, seeds)
        if arch.kind in ("lstm", "cornn"):
            raise ValueError(f"use build() for kind {arch.kind!r}")
        R, H, d, o = len(self.seeds), arch.hidden, arch.d_in, arch.d_out
        names = ["U", "b"] + (["M_A"] if arch.use_A else []) + ["M_W", "D", "d"]
        tensors: dict[str, list[torch.Tensor]] = {k: [] for k in names}
        for s in self.seeds:
            g = torch.Generator().manual_seed(s)
            # nn.Linear-style init for the encoder/decoder, Gaussian std init_std/H for M_A, M_W
            tensors["U"].append(_uniform((d, H), 1 / math.sqrt(d), g))
            tensors["b"].append(_uniform((H,), 1 / math.sqrt(d), g))
            M_A = normal_init((H, H), arch.init_std / H, g)  # drawn for every kind so seeds match across kinds
            if arch.use_A:
                tensors["M_A"].append(M_A)
            tensors["M_W"].append(normal_init((H, H), arch.init_std / H, g))
            tensors["D"].append(_uniform((H, o), 1 / math.sqrt(H), g))
            tensors["d"].append(_uniform((o,), 1 / math.sqrt(H), g))
        for k, v in tensors.items():
            setattr(self, k, nn.Parameter(torch.stack(v).to(dtype)))
        self.register_buffer("sigma_add", torch.as_tensor(sigma_add, dtype=dtype).expand(R).clone())
        self.register_buffer("sigma_mult", torch.as_tensor(sigma_mult, dtype=dtype).expand(R).clone())
        if arch.kind != "noisy" and (torch.any(self.sigma_add != 0) or torch.any(self.sigma_mult != 0)):
            raise ValueError(f"kind {arch.kind!r} takes no noise; use kind 'noisy'")
        #: counts training forwards; with the replica seed it seeds that forward's noise
        self.noise_calls = 0

    def matrices(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """A (R, H, H) or None when the A term is off, and W (R, H, H)."""
        a = self.arch
        beta = a.effective_beta
        A = structured(self.M_A, beta, a.gamma_A) if a.use_A else None
        return A, structured(self.M_W, beta, a.gamma_W)

    def noise_active(self) -> bool:
        return (
            self.training
            and self.arch.kind == "noisy"
            and bool(torch.any(self.sigma_add != 0) or torch.any(self.sigma_mult != 0))
        )

    def _draw_noise(self, N: int, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ξ, ζ of shape (T, R, N, H), each replica from its own generator (replica independence)."""
        T, H = self.arch.seq_len, self.arch.hidden
        xi, zeta = [], []
        for s in self.seeds:
            g = torch.Generator().manual_seed((s * 1_000_003 + self.noise_calls) % (2**63 - 1))
            xi.append(torch.randn(T, N, H, generator=g))
            zeta.append(torch.randn(T, N, H, generator=g))
        self.noise_calls += 1
        conv = dict(dtype=ref.dtype, device=ref.device)
        return torch.stack(xi, 1).to(**conv), torch.stack(zeta, 1).to(**conv)

    def hidden_states(self, x: torch.Tensor, return_all: bool = False):
        a = self.arch
        Z = self._input_proj(x)  # (R, N, T, H)
        R, N = Z.shape[0], Z.shape[1]
        A, W = self.matrices()
        H = a.hidden
        # h @ Mᵀ applies M to column vectors h; W and A act on the same h, so one bmm does both
        K = W.transpose(1, 2) if A is None else torch.cat([W.transpose(1, 2), A.transpose(1, 2)], dim=2)
        h = Z.new_zeros(R, N, a.hidden)
        noisy = self.noise_active()
        if noisy:
            xi, zeta = self._draw_noise(N, Z)
            scale = a.eps_noise * (math.sqrt(a.eps) if a.noise_sqrt_dt else 1.0)
            s_add = (scale * self.sigma_add)[:, None, None]
            s_mult = (scale * self.sigma_mult)[:, None, None]
        hs = [h] if return_all else None
        for t in range(a.seq_len):
            hk = torch.bmm(h, K)
            f = torch.tanh(Z[:, :, t] + hk[..., :H])
            if A is not None:
                f = f + hk[..., H:]
            h = h + a.eps * f
            if noisy:
                h = h + s_add * xi[t] + s_mult * f * zeta[t]
            if return_all:
                hs.append(h)
        return hs if return_all else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x))


class ReplicaLSTM(_ReplicaRNNBase):
    """R replicas of a one-layer torch.nn.LSTM with a linear readout of h_T.

    Parameters are stacked over replicas (torch's layout: W_ih (R, 4H, d), W_hh (R, 4H, H), one bias
    (R, 4H) = torch's b_ih + b_hh); each replica runs torch's fused LSTM through
    ``torch.func.functional_call`` on a parameter-free template, which is several times faster on a
    CPU than a Python loop over time steps.
    """

    def __init__(self, arch: RNNArch, seeds: Sequence[int], dtype: torch.dtype = torch.float32):
        super().__init__(arch, seeds)
        if arch.kind != "lstm":
            raise ValueError(f"ReplicaLSTM needs kind 'lstm', got {arch.kind!r}")
        H, d, o = arch.hidden, arch.d_in, arch.d_out
        k = 1 / math.sqrt(H)
        tensors: dict[str, list[torch.Tensor]] = {n: [] for n in ("W_ih", "W_hh", "b", "D", "d")}
        for s in self.seeds:
            g = torch.Generator().manual_seed(s)
            tensors["W_ih"].append(_uniform((4 * H, d), k, g))  # gates (i, f, g, o) as in torch
            tensors["W_hh"].append(_uniform((4 * H, H), k, g))
            tensors["b"].append(_uniform((4 * H,), k, g))
            tensors["D"].append(_uniform((H, o), k, g))
            tensors["d"].append(_uniform((o,), k, g))
        for n, v in tensors.items():
            setattr(self, n, nn.Parameter(torch.stack(v).to(dtype)))
        with torch.random.fork_rng(devices=[]):  # the template's own init must not move the global RNG
            self._template = [nn.LSTM(d, H, batch_first=True).to(dtype)]  # a list: not a submodule
        for p in self._template[0].parameters():
            p.requires_grad_(False)
        self.register_buffer("_zero_bias", torch.zeros(4 * H, dtype=dtype))

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        xs = _seq(x, self.arch)  # (R|1, N, T, d)
        tmpl = self._template[0]
        hs = []
        for r in range(self.n_replicas):
            params = {
                "weight_ih_l0": self.W_ih[r],
                "weight_hh_l0": self.W_hh[r],
                "bias_ih_l0": self.b[r],
                "bias_hh_l0": self._zero_bias,
            }
            out, _ = torch.func.functional_call(tmpl, params, (xs[r if xs.shape[0] > 1 else 0],))
            hs.append(out[:, -1])
        return torch.stack(hs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x))


class ReplicaCoRNN(_ReplicaRNNBase):
    """R replicas of a coRNN (see the module docstring)."""

    def __init__(self, arch: RNNArch, seeds: Sequence[int], dtype: torch.dtype = torch.float32):
        super().__init__(arch, seeds)
        if arch.kind != "cornn":
            raise ValueError(f"ReplicaCoRNN needs kind 'cornn', got {arch.kind!r}")
        H, d, o = arch.hidden, arch.d_in, arch.d_out
        tensors: dict[str, list[torch.Tensor]] = {n: [] for n in ("U", "b", "K", "D", "d")}
        for s in self.seeds:
            g = torch.Generator().manual_seed(s)
            tensors["U"].append(_uniform((d, H), 1 / math.sqrt(d), g))
            tensors["b"].append(_uniform((H,), 1 / math.sqrt(d), g))
            tensors["K"].append(_uniform((2 * H, H), 1 / math.sqrt(2 * H), g))  # [W; 𝒲] acting on [y, z]
            tensors["D"].append(_uniform((H, o), 1 / math.sqrt(H), g))
            tensors["d"].append(_uniform((o,), 1 / math.sqrt(H), g))
        for n, v in tensors.items():
            setattr(self, n, nn.Parameter(torch.stack(v).to(dtype)))

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        a = self.arch
        Z = self._input_proj(x)  # V u_k + b: (R, N, T, H)
        R, N = Z.shape[0], Z.shape[1]
        y = Z.new_zeros(R, N, a.hidden)
        z = Z.new_zeros(R, N, a.hidden)
        dt, gam, eps = a.cornn_dt, a.cornn_gamma, a.cornn_epsilon
        for t in range(a.seq_len):
            act = torch.tanh(torch.bmm(torch.cat([y, z], dim=2), self.K) + Z[:, :, t])
            z = z + dt * (act - gam * y - eps * z)
            y = y + dt * z
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x))


def build(
    arch: RNNArch,
    seeds: Sequence[int],
    sigma_add: float | Sequence[float] = 0.0,
    sigma_mult: float | Sequence[float] = 0.0,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """The replica batch for ``arch.kind``."""
    if arch.kind == "lstm":
        return ReplicaLSTM(arch, seeds, dtype=dtype)
    if arch.kind == "cornn":
        return ReplicaCoRNN(arch, seeds, dtype=dtype)
    return ContinuousRNN(arch, seeds, sigma_add=sigma_add, sigma_mult=sigma_mult, dtype=dtype)


def cross_entropy_per_replica(net: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every replica, shape (R,).

    Y holds class indices, shared ``(N,)`` / ``(N, 1)`` or per replica ``(R, N, 1)`` (the (N, 1) shape
    keeps the sample axis where :func:`nnrds.train.fit` minibatches it).
    """
    logits = net(X)  # (R, N, C)
    R, N, C = logits.shape
    y = (Y.reshape(R, N) if Y.dim() == 3 else Y.reshape(1, N)).long().expand(R, N)
    return (
        nn.functional.cross_entropy(logits.reshape(R * N, C), y.reshape(R * N), reduction="none").reshape(R, N).mean(1)
    )


@torch.no_grad()
def accuracy_per_replica(net: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions per replica, shape (R,). Uses the net's current mode."""
    logits = net(X)
    R, N, _ = logits.shape
    y = (Y.reshape(R, N) if Y.dim() == 3 else Y.reshape(1, N)).long()
    return (logits.argmax(-1) == y).double().mean(1)
