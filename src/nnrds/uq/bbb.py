"""Bayes-by-backprop for any likelihood of a WP-ResNet's weights (Blundell et al. 2015).

:func:`nnrds.uq.inference.run_vi` covers regression y = f(x; theta) + noise through Pyro. Models whose
likelihood is not of that form (an interatomic potential: energies are sums of per-atom outputs, forces and
stresses are derivatives of them) give :func:`run_bbb` their negative log-likelihood ``nll(theta, idx)`` of a
batch of S weight draws (S, P) on data items ``idx`` instead. The variational family, prior and result are
the UQ core's: mean-field Normal over the flat weights theta of a :class:`~nnrds.uq.model.BayesNet` (the
:class:`~nnrds.models.ReplicaNet` layout) or of several at once (:class:`BayesNetStack`: the per-element
networks of a multi-element potential, theta = their flat weights concatenated, one joint posterior),
softplus scales, the BayesNets' fan-in Normal prior, and a :class:`~nnrds.uq.inference.Posterior`
(method ``"vi"``) that :meth:`Posterior.draw` samples from (for a stack, ``Posterior.net`` is the stack:
draw from it and evaluate with :meth:`BayesNetStack.forward_part`, not with ``predictive_samples``). The
optimisation is the backbone's training loop :func:`nnrds.train.fit` (Adam, minibatches of data items):
the per-item negative ELBO

    L = E_q[ nll(theta, batch) ] * n_data / |batch| / n_data + kl_weight * KL(q || prior) / n_data,

with the expectation estimated by ``particles`` reparameterized draws and the Gaussian KL in closed form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .inference import Posterior, softplus_inv
from .model import BayesNet


class MeanFieldGaussian(nn.Module):
    """q(theta) = N(loc, softplus(rho)^2) over the P weights; one 'replica' for :func:`nnrds.train.fit`."""

    n_replicas = 1

    def __init__(self, loc: torch.Tensor, init_scale: float = 1e-3):
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        self.rho = nn.Parameter(torch.full_like(self.loc, softplus_inv(init_scale)))

    @property
    def scale(self) -> torch.Tensor:
        return nn.functional.softplus(self.rho)

    def sample(self, n: int) -> torch.Tensor:
        return self.loc + self.scale * torch.randn(n, self.loc.shape[0], dtype=self.loc.dtype, device=self.loc.device)

    def kl(self, prior_std: torch.Tensor) -> torch.Tensor:
        """KL(q || N(0, prior_std^2)), closed form."""
        s, p = self.scale, prior_std.to(self.loc)
        return (torch.log(p / s) + (s.pow(2) + self.loc.pow(2)) / (2 * p.pow(2)) - 0.5).sum()

    def l2(self) -> torch.Tensor:  # fit's optional L2 hook (unused: the KL is the regularizer)
        return self.loc.pow(2).sum()[None]


def replica_forward(bnet: BayesNet, theta: torch.Tensor, X: torch.Tensor, shell=None) -> torch.Tensor:
    """S networks with flat weights theta (S, P) on inputs X (N, d) shared or (S, N, d) per draw -> (S, N, d_out).

    Runs the backbone's :class:`~nnrds.models.ReplicaNet` forward with the draws as its replicas (so per-draw
    inputs, and autograd with respect to them, work; :meth:`BayesNet.forward` takes shared inputs only)."""
    from torch.func import functional_call

    from ..models import ReplicaNet

    shell = shell or ReplicaNet(bnet.spec.arch(), [0], dtype=theta.dtype).to(theta.device)
    return functional_call(shell, bnet.unpack(theta), (X,))


class BayesNetStack:
    """Several :class:`~nnrds.uq.model.BayesNet` (e.g. one per element) as one flat weight vector
    theta = [theta_0 | theta_1 | ...] (S, sum P_k) with the concatenated priors, so that one mean-field
    posterior covers the weights of all of them."""

    def __init__(self, parts: Sequence[BayesNet]):
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("BayesNetStack needs at least one BayesNet")
        self.dtype = self.parts[0].dtype
        self.offsets = [0]
        for b in self.parts:
            self.offsets.append(self.offsets[-1] + b.P)
        self.P = self.offsets[-1]
        self.prior_std = torch.cat([b.prior_std for b in self.parts])
        self.d_out = self.parts[0].spec.d_out

    def __len__(self) -> int:
        return len(self.parts)

    def part(self, theta: torch.Tensor, k: int) -> torch.Tensor:
        """The weights of network k: theta[..., offsets[k]:offsets[k+1]]."""
        return theta[..., self.offsets[k] : self.offsets[k + 1]]

    def flat_from_nets(self, nets) -> torch.Tensor:
        """ReplicaNets (one per part, R replicas each) -> theta (R, P)."""
        return torch.cat([b.flat_from_net(n) for b, n in zip(self.parts, nets)], dim=1)

    def forward_part(self, k: int, theta: torch.Tensor, X: torch.Tensor, shell=None) -> torch.Tensor:
        """Network k of S draws theta (S, P) on X (see :func:`replica_forward`) -> (S, N, d_out)."""
        return replica_forward(self.parts[k], self.part(theta, k), X, shell)


def run_bbb(
    bnet: BayesNet | BayesNetStack,
    nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_data: int,
    *,
    init_theta: torch.Tensor,
    epochs: int = 200,
    lr: float = 1e-3,
    batch_size: int | None = None,
    particles: int = 2,
    init_scale: float = 1e-3,
    kl_weight: float = 1.0,
    seed: int = 0,
    log_every: int = 0,
) -> Posterior:
    """Bayes-by-backprop (module docstring). ``nll(theta (S, P), idx (n,)) -> (S,)`` summed over the items
    ``idx`` of 0..n_data-1; ``init_theta`` (P,) is the initial mean (e.g. trained networks' weights);
    ``bnet`` is one BayesNet or a :class:`BayesNetStack` (P = the stack's total)."""
    torch.manual_seed(seed)
    q = MeanFieldGaussian(init_theta.to(bnet.dtype), init_scale)
    prior_std = bnet.prior_std
    q = q.to(init_theta.device)
    idx_all = torch.arange(n_data, device=init_theta.device).reshape(-1, 1)

    def loss_fn(qnet, xb, yb):
        idx = xb[:, 0]
        theta = qnet.sample(particles)
        lik = nll(theta, idx).mean() * (n_data / len(idx))
        return ((lik + kl_weight * qnet.kl(prior_std)) / n_data).reshape(1)

    from ..train import fit

    res = fit(
        q,
        idx_all,
        idx_all,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        loss_fn=loss_fn,
        log_every=log_every,
    )
    loc, scale = q.loc.detach().cpu().clone(), q.scale.detach().cpu().clone()  # Posterior.draw samples on the CPU
    info = {
        "epochs": epochs,
        "lr": lr,
        "particles": particles,
        "wall_s": res.wall_time_s,
        "kl_weight": kl_weight,
        "final_loss": res.history[-1]["train_loss"] if res.history else float("nan"),
        "guide_scale": "softplus",
        "mean_scale": float(scale.mean()),
    }
    d_out = bnet.d_out if isinstance(bnet, BayesNetStack) else bnet.spec.d_out
    sigma = torch.zeros(1, d_out, dtype=bnet.dtype)  # log noise std placeholder: the caller's likelihood owns it
    post = Posterior("vi", bnet, loc[None], sigma, theta_scale=scale, info=info)
    post.info["history"] = res.history
    return post


__all__ = ["BayesNetStack", "MeanFieldGaussian", "replica_forward", "run_bbb"]
