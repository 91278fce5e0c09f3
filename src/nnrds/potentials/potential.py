"""The per-atom neural-network potential: E = sum_i [e_ref(k_i) + e(G_i)], forces and stress by autograd.

:class:`Potential` has one per-atom :class:`~nnrds.models.ReplicaNet` per element k (d_in = n_descriptors,
d_out = 1, one replica per ensemble member or per posterior draw), per-element descriptor standardization and
per-element reference energies (least squares of the total energies on the composition counts,
:func:`fit_reference_energies`), so the networks learn the residual; F = -dE/dR and sigma = (1/V) dE/d(eps)
by autograd (:meth:`Potential.energy_autograd`). For training and batch prediction the same derivatives are
split by the chain rule (:meth:`Potential.predict`): dE/dG from autograd through the networks, times the
descriptor Jacobian dG_i/dd_p of the dataset (:mod:`nnrds.potentials.dataset`), so the descriptor graph is not
rebuilt every step. tests/unit/test_materials.py checks both routes against finite differences, for one element
and for a binary cell.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .dataset import AtomsData
from .descriptors import DescriptorSpec
from .neighbours import Neighbors, descriptors, neighbor_topology
from .structures import VOIGT_IDX, Structure


def fit_reference_energies(counts, energy) -> np.ndarray:
    """Per-element reference energies e_ref (n_elements,) by least squares of the total energies on the
    composition counts, E_b ~ sum_e n_be e_ref_e, with weights 1/N_b^2 (i.e. energy *per atom* on the
    composition fractions, the quantity the training loss compares). One element: the mean energy per atom."""
    c = np.asarray(counts, dtype=float)
    n = c.sum(1)
    ref, *_ = np.linalg.lstsq(c / n[:, None], np.asarray(energy, dtype=float) / n, rcond=None)
    return ref


AtomicFn = Callable[[torch.Tensor, int], torch.Tensor]  # (S, n, D) standardized descriptors of element k -> (S, n, 1)


class Potential(torch.nn.Module):
    """E = sum_i [e_ref[k_i] + e_scale * net_{k_i}((G_i - mean_{k_i}) / std_{k_i})]: one ReplicaNet per element
    (``nets[k]`` for ``spec.elements[k]``; all with the same R replicas = ensemble members), per-element
    descriptor standardization (rows of ``g_mean`` / ``g_std``, shape (n_elements, D) or (D,) for one element)
    and per-element reference energies ``e_ref`` (:func:`fit_reference_energies`), so the networks learn the
    residual. ``nets`` may be a single ReplicaNet (one element).

    ``atomic`` (optional in :meth:`predict` / :meth:`energy_autograd`) replaces the nets by any map
    (X (S, n, D), k) -> (S, n, 1) for the atoms of element k, e.g. S posterior draws of the weights of all
    element networks (:meth:`nnrds.uq.bbb.BayesNetStack.forward_part`)."""

    def __init__(self, nets, spec: DescriptorSpec, g_mean, g_std, e_ref, e_scale: float):
        super().__init__()
        nets = [nets] if isinstance(nets, torch.nn.Module) and not isinstance(nets, torch.nn.ModuleList) else nets
        self.nets, self.spec = torch.nn.ModuleList(nets), spec
        ne = len(self.nets)
        if ne != spec.n_elements:
            raise ValueError(f"{ne} element networks for {spec.n_elements} descriptor elements {list(spec.elements)}")
        dt = next(self.nets.parameters()).dtype
        self.register_buffer("g_mean", torch.as_tensor(g_mean, dtype=dt).reshape(ne, -1))
        self.register_buffer("g_std", torch.as_tensor(g_std, dtype=dt).reshape(ne, -1))
        self.e_ref = [float(x) for x in np.atleast_1d(np.asarray(e_ref, dtype=float))]
        if len(self.e_ref) != ne:
            raise ValueError(f"{len(self.e_ref)} reference energies for {ne} elements")
        self.e_scale = float(e_scale)

    @property
    def n_elements(self) -> int:
        return len(self.nets)

    @property
    def n_replicas(self) -> int:
        return self.nets[0].n_replicas

    def l2(self) -> torch.Tensor:
        out = self.nets[0].l2()
        for net in self.nets[1:]:
            out = out + net.l2()
        return out

    @property
    def dtype(self) -> torch.dtype:
        return self.g_mean.dtype

    def atomic_energies(
        self, G: torch.Tensor, S: int, atomic: AtomicFn | None = None, elem: torch.Tensor | None = None
    ):
        """(S, N) atomic energies and, per element k, (atom indices of k or None for all, the (S, n_k, D)
        standardized-input leaf they were computed from)."""

        def one(Gk, k):
            X = ((Gk.to(self.dtype) - self.g_mean[k]) / self.g_std[k]).unsqueeze(0).expand(S, -1, -1).clone()
            X.requires_grad_(True)
            out = (atomic(X, k) if atomic is not None else self.nets[k](X))[..., 0]
            return self.e_ref[k] + self.e_scale * out, X

        if self.n_elements == 1:
            e, X = one(G, 0)
            return e, [(None, X)]
        e = G.new_zeros(S, G.shape[0], dtype=self.dtype)
        leaves = []
        for k in range(self.n_elements):
            idx = (elem == k).nonzero().squeeze(1)
            ek, X = one(G[idx], k)
            e = e.index_copy(1, idx, ek)
            leaves.append((idx, X))
        return e, leaves

    def _dE_dG(self, E: torch.Tensor, leaves, N: int, create_graph: bool) -> torch.Tensor:
        """dE/dG (S, N, D) in raw descriptor units from the per-element standardized leaves."""
        gs = torch.autograd.grad(E.sum(), [X for _, X in leaves], create_graph=create_graph)
        if self.n_elements == 1:
            return gs[0] / self.g_std[0]
        V = gs[0].new_zeros(gs[0].shape[0], N, self.g_std.shape[1])
        for k, ((idx, _), g) in enumerate(zip(leaves, gs)):
            V = V.index_copy(1, idx, g / self.g_std[k])
        return V

    def predict(
        self,
        data: AtomsData,
        atomic: AtomicFn | None = None,
        n: int | None = None,
        create_graph: bool = False,
        forces: bool = True,
        stress: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Energies (S, B), forces (S, N, 3), stresses (S, B, 6) by the chain rule (module docstring)."""
        S = n or self.n_replicas
        dt = self.dtype
        with torch.enable_grad():
            e, leaves = self.atomic_energies(data.G, S, atomic, data.elem)
            B = data.n_configs
            E = e.new_zeros(S, B).index_add(1, data.atom_cfg, e)
            out = {"energy": E}
            if not (forces or stress):
                return out
            V = self._dE_dG(E, leaves, len(data.atom_cfg), create_graph)  # dE/dG (S, N, D)
            g = torch.einsum("spd,pdk->spk", V[:, data.pair_i], data.H.to(dt))  # dE/dd_p (S, P, 3)
        if forces:
            N = len(data.atom_cfg)
            out["forces"] = g.new_zeros(S, N, 3).index_add(1, data.pair_i, g).index_add(1, data.pair_j, -g)
        if stress:
            W = torch.einsum("pb,spa->spab", data.d.to(dt), g)  # dE/deps_ba summed below, then symmetrized
            Wc = W.new_zeros(S, B, 3, 3).index_add(1, data.pair_cfg, W)
            Wc = 0.5 * (Wc + Wc.transpose(-1, -2)) / data.volume.to(dt)[None, :, None, None]
            out["stress"] = torch.stack([Wc[..., a, b] for a, b in VOIGT_IDX], -1)
        return out

    def energy_autograd(
        self, s: Structure, atomic: AtomicFn | None = None, n: int | None = None, nb: Neighbors | None = None
    ) -> dict[str, torch.Tensor]:
        """The reference route: descriptors built from (R, C, eps) in torch; F = -dE/dR, sigma = (1/V) dE/deps
        by autograd (per replica). Returns energy (S,), forces (S, n, 3), stress (S, 6)."""
        S = n or self.n_replicas
        nb = nb or neighbor_topology(s, self.spec.cutoff, self.spec)
        pos = torch.as_tensor(s.positions, dtype=torch.float64).requires_grad_(True)
        eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            G = descriptors(pos, torch.as_tensor(s.cell, dtype=torch.float64), nb, self.spec, eps)
            e, _ = self.atomic_energies(G, S, atomic, torch.as_tensor(nb.elem))
            E = e.sum(1)
            fs, ss = [], []
            for k in range(S):
                gp, ge = torch.autograd.grad(E[k], (pos, eps), retain_graph=k < S - 1)
                fs.append(-gp)
                ge = 0.5 * (ge + ge.T) / s.volume
                ss.append(torch.stack([ge[a, b] for a, b in VOIGT_IDX]))
        return {"energy": E.detach(), "forces": torch.stack(fs), "stress": torch.stack(ss)}
