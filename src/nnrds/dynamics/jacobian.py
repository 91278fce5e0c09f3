"""Jacobian of a ResNet's residual function at every layer and sample.

Its Jacobian at layer ``n`` and hidden state ``x_n`` is::

    J_n(x_n) = diag(sigma'(W(t_n) x_n + b(t_n))) W(t_n)

:func:`layer_jacobians` returns a tensor of shape ``(R, L, N, w, w)`` (replicas x layers x samples);
:func:`preactivation_slopes` gives its two factors, which matrix-free code (:mod:`nnrds.dynamics.penalties`)
uses without forming ``J``.
"""

from __future__ import annotations

import torch

from ..models import ReplicaNet


def activation_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """sigma'(z) of the activations in :data:`nnrds.models.ACTIVATIONS`."""
    if name == "tanh":
        return 1.0 - torch.tanh(z).pow(2)
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "softplus":
        return torch.sigmoid(z)
    raise ValueError(f"no derivative for activation {name!r}")


def _check(net: ReplicaNet) -> None:
    if net.arch.param == "mlp":
        raise ValueError("stiffness is defined for ResNets (x + h f); an MLP (param 'mlp') has no residual function")


def preactivation_slopes(net: ReplicaNet, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sigma'(W(t_n) x_n + b(t_n))`` at every layer and sample, shape (R, L, N, w), and W (R, L, w, w).

    ``u`` is (N, d_in) shared by all replicas or (R, N, d_in). Differentiable w.r.t. the parameters.
    """
    _check(net)
    W, b = net.layer_weights()
    xs = torch.stack(net.trajectory(u)[:-1], dim=1)  # (R, L, N, w): the states the layers act on
    z = torch.einsum("rlnj,rlij->rlni", xs, W) + b[:, :, None, :]
    return activation_derivative(net.arch.activation, z), W


def layer_jacobians(net: ReplicaNet, u: torch.Tensor) -> torch.Tensor:
    """J_n(x_n) = diag(sigma'(z)) W(t_n) for every replica, layer and sample: (R, L, N, w, w)."""
    s, W = preactivation_slopes(net, u)
    return s[..., :, None] * W[:, :, None, :, :]
