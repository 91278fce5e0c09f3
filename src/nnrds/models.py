"""One model family for every study: replica-batched ResNets (forward Euler of a neural ODE) and MLPs.

All parameters carry a leading *replica* dimension R, so R independent networks of the same
architecture (different seeds, or sweep points that share a shape) train together in one process with
batched matmuls. Inputs of shape (N, d_in) are broadcast to every replica; (R, N, d_in) gives each
replica its own batch. Every replica is initialised from its own seed, so a replica's numbers do not
depend on which other replicas share its batch.

Initialization (:func:`nnrds.wp.init_map`): A_in ~ N(0, 1/d_in), A_out ~ N(0, 1/width), biases 0, and
every layer's W(t_n) ~ N(0, 1/width) entrywise -- exactly, at every node, for every parameterization.
A basis that spans every function on the layer grid (nonpar, MLP) starts with independent layers; a
smaller basis (const, polynomials of degree < L-1) starts from the constant weight function W(t) = Z
(equal per-layer variance forces this for a polynomial of degree d at depth L >= 2d+2), its higher
coefficients at 0. Bases of one span (monomial, Legendre and Chebyshev of one degree) therefore start from the
same network function given the same seed.

ResNet:  x_0 = A_in u + a_in,  x_{n+1} = x_n + h * sigma(W(t_n) x_n + b(t_n)),  y = A_out x_L + a_out
MLP:     x_{n+1} = sigma(W_n x_n + b_n)   (no skip, one weight per layer)

Stable blocks (``Arch.block``; Haber & Ruthotto 2017, Chang et al. 2018), same parameters and initialization:

* ``antisymmetric``: x' = sigma((W - W^T - gamma I) x + b); ``scheme="euler"`` (a ResNet unit with an antisymmetric
  weight) or ``scheme="leapfrog"``, the two-step explicit midpoint rule x_{n+1} = x_{n-1} + 2 h f_n(x_n) (first step
  Euler). The Jacobian diag(sigma') (W - W^T) is similar to an antisymmetric matrix, so its eigenvalues are purely
  imaginary (gamma = 0): forward Euler amplifies every such mode by |1 + h lambda| > 1 at every step, whereas the
  leapfrog rule's stability region is the imaginary segment |h lambda| < 1, where it neither grows nor decays.
* ``hamiltonian`` (``scheme="verlet"``): states (x, z), z_{-1/2} = 0,
  z_{n+1/2} = z_{n-1/2} - h sigma(W_n^T x_n + b_n),  x_{n+1} = x_n + h sigma(W_n z_{n+1/2} + b_n);
  algebraically invertible (:meth:`ReplicaNet.verlet_inverse`); the readout reads x_L.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import wp

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "softplus": nn.functional.softplus}
#: block type -> the integration schemes it can use (the first is the default)
BLOCKS = {"resnet": ("euler",), "antisymmetric": ("euler", "leapfrog"), "hamiltonian": ("verlet",)}


@dataclass(frozen=True)
class Arch:
    """Architecture of one network; replicas in a batch share it."""

    d_in: int
    d_out: int
    width: int
    depth: int
    param: str = "nonpar"  # nonpar | const | monomial | legendre | chebyshev | mlp
    degree: int = 0
    T: float = 1.0
    activation: str = "tanh"
    block: str = "resnet"  # resnet | antisymmetric | hamiltonian (see BLOCKS)
    scheme: str = "euler"  # euler | leapfrog (antisymmetric) | verlet (hamiltonian)
    gamma: float = 0.0  # antisymmetric block: W - W^T - gamma I

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; expected one of {list(BLOCKS)}")
        if self.scheme not in BLOCKS[self.block]:
            raise ValueError(f"block {self.block!r} integrates with {BLOCKS[self.block]}, not {self.scheme!r}")
        if self.block != "resnet" and self.param == "mlp":
            raise ValueError(f"an MLP has no {self.block} block")
        if self.param != "mlp" and self.param not in wp.KINDS:
            raise ValueError(f"unknown parameterization {self.param!r}; expected mlp or one of {wp.KINDS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {list(ACTIVATIONS)}")

    @property
    def n_basis(self) -> int:
        return self.depth if self.param == "mlp" else wp.n_basis(self.param, self.depth, self.degree)

    @property
    def h(self) -> float:
        return self.T / self.depth

    def n_params(self) -> int:
        """Trainable parameters of one replica."""
        w = self.width
        return (self.d_in + 1) * w + self.n_basis * (w * w + w) + (w + 1) * self.d_out

    def to_dict(self) -> dict:
        return asdict(self)


def normal_init(shape: Sequence[int], std: float | torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """float64 N(0, std^2) draws of ``shape`` from ``gen`` (the initialisation of every replica network)."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * std


class ReplicaNet(nn.Module):
    """R replicas of one architecture (ResNet with a weight parameterization, or MLP)."""

    def __init__(self, arch: Arch, seeds: Sequence[int], dtype: torch.dtype = torch.float32):
        super().__init__()
        self.arch = arch
        self.seeds = [int(s) for s in seeds]
        a, w, K = arch, arch.width, arch.n_basis
        if a.param == "mlp":
            phi = torch.eye(a.depth, dtype=torch.float64)
        else:
            phi = wp.basis_matrix(a.param, a.depth, a.degree, a.T)
        self.register_buffer("phi", phi.to(dtype))
        #: the basis is the identity (nonpar, MLP): W(t_n) = C_n, no basis product to build (nor to differentiate)
        self.identity_basis = phi.shape[0] == phi.shape[1] and bool(
            torch.equal(phi, torch.eye(phi.shape[0], dtype=phi.dtype))
        )
        # initial W(t_n) = (F z)_n / sqrt(w), coefficients C = M z / sqrt(w): every layer's W(t_n) has
        # variance exactly 1/width, and bases of one span start from the same function (wp.init_map)
        _, M = wp.init_map(phi)
        M = torch.as_tensor(M, dtype=torch.float64)
        tensors: dict[str, list[torch.Tensor]] = {k: [] for k in ("A_in", "a_in", "C", "c", "A_out", "a_out")}
        for s in self.seeds:
            g = torch.Generator().manual_seed(s)
            tensors["A_in"].append(normal_init((a.d_in, w), 1.0 / math.sqrt(a.d_in), g))
            tensors["a_in"].append(torch.zeros(w, dtype=torch.float64))
            tensors["C"].append(torch.einsum("km,mij->kij", M, normal_init((M.shape[1], w, w), 1.0 / math.sqrt(w), g)))
            tensors["c"].append(torch.zeros(K, w, dtype=torch.float64))  # b(t_n) = 0 at every node
            tensors["A_out"].append(normal_init((w, a.d_out), 1.0 / math.sqrt(w), g))
            tensors["a_out"].append(torch.zeros(a.d_out, dtype=torch.float64))
        for k, v in tensors.items():
            setattr(self, k, nn.Parameter(torch.stack(v).to(dtype)))

    @property
    def n_replicas(self) -> int:
        return len(self.seeds)

    def layer_weights(self, phi: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """W(t_n), b(t_n) for every layer: shapes (R, L, w, w) and (R, L, w). ``phi`` (L', K): the basis on another
        layer grid (:func:`nnrds.wp.resample`), giving the same weight function's values at L' layers."""
        if phi is None and self.identity_basis:
            return self.C, self.c
        phi = self.phi if phi is None else phi
        W = torch.einsum("lk,rkij->rlij", phi, self.C)
        b = torch.einsum("lk,rki->rli", phi, self.c)
        return W, b

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        if u.dim() == 2:
            return torch.einsum("ni,rij->rnj", u, self.A_in) + self.a_in[:, None, :]
        return torch.bmm(u, self.A_in) + self.a_in[:, None, :]

    def trajectory(self, u: torch.Tensor, phi: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Hidden states x_0..x_L, each (R, N, width). With ``phi`` of shape (L', K) (a ResNet's basis on another
        layer grid, :func:`nnrds.wp.resample`): the same network evaluated at depth L' with step h = T/L'."""
        sigma = ACTIVATIONS[self.arch.activation]
        if phi is None:
            depth, h = self.arch.depth, self.arch.h
        elif self.arch.param == "mlp":
            raise ValueError("an MLP has no weight function W(t): it cannot be evaluated at another depth")
        else:
            depth, h = phi.shape[0], self.arch.T / phi.shape[0]
        W, b = self.layer_weights(phi)
        x = self.embed(u)
        if self.arch.block != "resnet":
            return self._stable_trajectory(x, W, b, h, depth)[0]
        xs = [x]
        Wt = W.transpose(-1, -2)  # x W^T: one plain batched matmul per layer (einsum permutes, copies and
        # differentiates more ops; baddbmm would save the bias add but changes the rounding of the gradients)
        for n in range(depth):
            z = torch.bmm(x, Wt[:, n]) + b[:, n, None, :]
            x = sigma(z) if self.arch.param == "mlp" else x + h * sigma(z)
            xs.append(x)
        return xs

    def layer_matrix(self, W: torch.Tensor) -> torch.Tensor:
        """The matrix a block applies to its state: W (resnet, hamiltonian), W - W^T - gamma I (antisymmetric)."""
        if self.arch.block != "antisymmetric":
            return W
        eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
        return W - W.transpose(-1, -2) - self.arch.gamma * eye

    def vector_field(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """f(x) = sigma(A x + b) of one layer (A = :meth:`layer_matrix` of W (R, w, w); b (R, w); x (R, N, w))."""
        z = torch.bmm(x, self.layer_matrix(W).transpose(-1, -2)) + b[:, None, :]
        return ACTIVATIONS[self.arch.activation](z)

    def _stable_trajectory(
        self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, h: float, depth: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """States x_0..x_L of an antisymmetric or Hamiltonian block, and the z_{n+1/2} of the latter ([] else)."""
        xs, zs = [x], []
        if self.arch.block == "hamiltonian":
            z = torch.zeros_like(x)
            for n in range(depth):
                z = z - h * self.vector_field(x, W[:, n].transpose(-1, -2), b[:, n])
                x = x + h * self.vector_field(z, W[:, n], b[:, n])
                xs.append(x)
                zs.append(z)
            return xs, zs
        for n in range(depth):
            f = self.vector_field(x, W[:, n], b[:, n])
            if self.arch.scheme == "leapfrog" and n > 0:
                x = xs[-2] + 2.0 * h * f
            else:
                x = x + h * f
            xs.append(x)
        return xs, zs

    def verlet_states(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_0, x_L, z_{L-1/2}) of a Hamiltonian network: its input state and the final pair."""
        if self.arch.block != "hamiltonian":
            raise ValueError("verlet_states needs block 'hamiltonian'")
        W, b = self.layer_weights()
        x0 = self.embed(u)
        xs, zs = self._stable_trajectory(x0, W, b, self.arch.h, self.arch.depth)
        return x0, xs[-1], zs[-1]

    def verlet_inverse(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the Verlet network backwards from (x_L, z_{L-1/2}): x_n = x_{n+1} - h sigma(W_n z_{n+1/2} + b_n),
        z_{n-1/2} = z_{n+1/2} + h sigma(W_n^T x_n + b_n). Returns (x_0, z_{-1/2}) (exactly (x_0, 0) in exact
        arithmetic)."""
        W, b = self.layer_weights()
        h = self.arch.h
        for n in reversed(range(self.arch.depth)):
            x = x - h * self.vector_field(z, W[:, n], b[:, n])
            z = z + h * self.vector_field(x, W[:, n].transpose(-1, -2), b[:, n])
        return x, z

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.A_out) + self.a_out[:, None, :]

    def forward(self, u: torch.Tensor, phi: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(self.trajectory(u, phi)[-1])

    def l2(self) -> torch.Tensor:
        """Sum of squared weights per replica, shape (R,), the L2 penalty (biases excluded)."""
        return sum(p.pow(2).flatten(1).sum(1) for p in (self.A_in, self.C, self.A_out))
