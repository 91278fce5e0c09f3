"""Behler-Parrinello symmetry functions of pair vectors: radial G2 and angular G4 with the cosine cutoff.

Every function here takes the pair vectors d_p (P, 3) of a neighbour list (:mod:`nnrds.potentials.neighbours`)
and the triplets (pairs of pairs with the same centre), so the descriptors are differentiable in whatever the
vectors were computed from (positions, cell, strain). :func:`descriptor_jacobian` gives dG_{i(p)}/dd_p once
per dataset (each G_i depends only on the pair vectors centred at atom i), which the potential's chain-rule
route (:meth:`nnrds.potentials.potential.Potential.predict`) reuses at every training step. For several
elements the descriptors are element-resolved (:class:`DescriptorSpec`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DescriptorSpec:
    """G2: exp(-eta (r - r_s)^2) fc(r) on ``n_radial`` centres r_s in [r_min, cutoff] (eta = 1/(2 spacing^2)).
    G4: 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2))
    fc(r_ij) fc(r_ik) fc(r_jk) for every (eta, zeta, lambda). fc(r) = (cos(pi r / rc) + 1) / 2 for r < rc.

    Element resolution (Behler-Parrinello's multi-element scheme): with ``elements`` (sorted symbols) the G2
    sum runs separately over the neighbours of each element and the G4 sum over the neighbour pairs of each
    unordered element pair (a, b), a <= b in ``elements`` order. Column order: G2 of element 0 (n_radial
    columns), G2 of element 1, ..., then G4 of pair (0, 0), (0, 1), ..., (1, 1), ... (n_angular columns
    each). With one element (or ``elements`` empty: every atom the same kind) this is exactly [G2, G4]."""

    cutoff: float = 5.0
    n_radial: int = 8
    r_min: float = 2.0
    angular_etas: tuple[float, ...] = (0.005, 0.05)
    zetas: tuple[float, ...] = (1.0, 4.0)
    lambdas: tuple[float, ...] = (1.0, -1.0)
    elements: tuple[str, ...] = ()

    @property
    def n_elements(self) -> int:
        return max(1, len(self.elements))

    @property
    def n_element_pairs(self) -> int:
        return self.n_elements * (self.n_elements + 1) // 2

    @property
    def n_angular(self) -> int:
        """G4 columns per element pair."""
        return len(self.angular_etas) * len(self.zetas) * len(self.lambdas)

    @property
    def n_descriptors(self) -> int:
        return self.n_elements * self.n_radial + self.n_element_pairs * self.n_angular

    def element_index(self, species: Sequence[str]) -> np.ndarray:
        """Position of every symbol in ``elements`` (all 0 when ``elements`` is empty)."""
        if not self.elements:
            return np.zeros(len(species), dtype=np.int64)
        pos = {e: k for k, e in enumerate(self.elements)}
        unknown = sorted(set(species) - set(pos))
        if unknown:
            raise ValueError(f"species {unknown} are not among the descriptor elements {list(self.elements)}")
        return np.array([pos[x] for x in species], dtype=np.int64)

    def pair_block(self) -> np.ndarray:
        """(n_elements, n_elements) symmetric table: element pair -> its G4 block (a <= b, row-major)."""
        n = self.n_elements
        t = np.zeros((n, n), dtype=np.int64)
        for c, (a, b) in enumerate((i, j) for i in range(n) for j in range(i, n)):
            t[a, b] = t[b, a] = c
        return t

    @classmethod
    def from_dict(cls, d: dict | None) -> DescriptorSpec:
        d = dict(d or {})
        for k in ("angular_etas", "zetas", "lambdas"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        if "elements" in d:
            d["elements"] = tuple(str(x) for x in d["elements"])
        return cls(**d)


def _fc(r: torch.Tensor, rc: float) -> torch.Tensor:
    return torch.where(r < rc, 0.5 * (torch.cos(math.pi * r.clamp(max=rc) / rc) + 1.0), torch.zeros_like(r))


def descriptor_terms(d: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor, spec: DescriptorSpec):
    """Per-pair radial terms (P, n_radial) and per-triplet angular terms (T, n_angular) (no sums yet)."""
    rc = spec.cutoff
    r = d.norm(dim=1)
    fc = _fc(r, rc)
    centres = torch.linspace(spec.r_min, rc, spec.n_radial, dtype=d.dtype, device=d.device)
    spacing = (rc - spec.r_min) / max(spec.n_radial - 1, 1)
    g2 = torch.exp(-(0.5 / spacing**2) * (r[:, None] - centres) ** 2) * fc[:, None]
    if not (spec.n_angular and len(ta)):
        return g2, d.new_zeros(len(ta), spec.n_angular)
    return g2, angular_terms(d[ta], d[tb], spec)


def angular_terms(da: torch.Tensor, db: torch.Tensor, spec: DescriptorSpec) -> torch.Tensor:
    """The G4 terms (T, n_angular) of triplets with pair vectors da, db (T, 3) (:class:`DescriptorSpec`), as a
    function of the two vectors of each triplet alone (:func:`descriptor_terms` and the per-triplet Jacobians)."""
    rc = spec.cutoff
    ra, rb = da.norm(dim=1), db.norm(dim=1)
    rab = (db - da).norm(dim=1)
    cos = (da * db).sum(1) / (ra * rb)
    base = _fc(ra, rc) * _fc(rb, rc) * _fc(rab, rc)
    r2 = ra**2 + rb**2 + rab**2
    cols = []
    for eta in spec.angular_etas:
        radial = torch.exp(-eta * r2) * base
        for zeta in spec.zetas:
            for lam in spec.lambdas:
                cols.append(2.0 ** (1 - zeta) * (1 + lam * cos).clamp_min(0) ** zeta * radial)
    return torch.stack(cols, 1)


def descriptors_from_pairs(
    d: torch.Tensor,
    pair_i: torch.Tensor,
    ta: torch.Tensor,
    tb: torch.Tensor,
    n_atoms: int,
    spec: DescriptorSpec,
    pair_el: torch.Tensor | None = None,
    trip_blk: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetry functions (n_atoms, n_descriptors) from pair vectors d (P, 3) centred at ``pair_i``;
    triplets are pairs of pairs (ta, tb) with the same centre. With several elements, each pair's term goes
    to the block of its neighbour's element ``pair_el`` and each triplet's to its pair block ``trip_blk``
    (row ``atom * n_blocks + block`` of a (n_atoms * n_blocks, columns) sum, reshaped element-major)."""
    g2, g4 = descriptor_terms(d, ta, tb, spec)
    ne, nb = spec.n_elements, spec.n_element_pairs
    rows2 = pair_i if ne == 1 else pair_i * ne + pair_el
    rows4 = pair_i[ta] if nb == 1 else pair_i[ta] * nb + trip_blk
    G2 = d.new_zeros(n_atoms * ne, spec.n_radial).index_add(0, rows2, g2).reshape(n_atoms, ne * spec.n_radial)
    G4 = d.new_zeros(n_atoms * nb, spec.n_angular).index_add(0, rows4, g4).reshape(n_atoms, nb * spec.n_angular)
    return torch.cat([G2, G4], 1)


def descriptor_jacobian(
    d: torch.Tensor,
    ta: torch.Tensor,
    tb: torch.Tensor,
    spec: DescriptorSpec,
    pair_el: torch.Tensor | None = None,
    trip_blk: torch.Tensor | None = None,
) -> torch.Tensor:
    """H (P, D, 3) = dG_{i(p)}/dd_p by autograd. G_i depends only on the pair vectors centred at i, so the
    gradient of the *sum over atoms* of one descriptor column with respect to d is that column's H.
    Element blocks: a pair enters only the G2 block of its neighbour's element (so its G2 rows are the
    element-agnostic ones, placed there); a triplet enters only its pair block's G4 columns, with the
    Jacobians of :func:`angular_terms` in its two pair vectors (forward-mode autograd)."""
    d = d.detach().requires_grad_(True)
    ne, nb = spec.n_elements, spec.n_element_pairs

    def grads(cols):
        H = [torch.autograd.grad(c, d, retain_graph=True, allow_unused=True)[0] for c in cols]
        return [h if h is not None else torch.zeros_like(d) for h in H]

    with torch.enable_grad():
        if ne == 1:
            g2, g4 = descriptor_terms(d, ta, tb, spec)
            cols = [g2[:, k].sum() for k in range(spec.n_radial)] + [g4[:, k].sum() for k in range(spec.n_angular)]
            return torch.stack(grads(cols), 1)
        g2, _ = descriptor_terms(d, ta[:0], tb[:0], spec)  # radial terms only
        H2 = torch.stack(grads([g2[:, k].sum() for k in range(spec.n_radial)]), 1)  # (P, n_radial, 3)
    H = d.new_zeros(len(d), spec.n_descriptors, 3)
    cols2 = pair_el[:, None] * spec.n_radial + torch.arange(spec.n_radial, device=d.device)
    H.scatter_(1, cols2[..., None].expand(-1, -1, 3), H2.detach())
    if spec.n_angular and len(ta):
        # each triplet's G4 terms depend on its two pair vectors only: their per-triplet Jacobians
        # (T, n_angular, 3) by forward-mode autograd (6 JVPs), added to rows (pair, block) of H
        da, db = d[ta].detach(), d[tb].detach()
        zero = torch.zeros_like(da)
        Ja, Jb = [], []
        for c in range(3):
            e = torch.zeros_like(da)
            e[:, c] = 1.0
            Ja.append(torch.func.jvp(lambda a, b: angular_terms(a, b, spec), (da, db), (e, zero))[1])
            Jb.append(torch.func.jvp(lambda a, b: angular_terms(a, b, spec), (da, db), (zero, e))[1])
        Ja, Jb = torch.stack(Ja, -1), torch.stack(Jb, -1)  # (T, n_angular, 3)
        H4 = d.new_zeros(len(d) * nb, spec.n_angular, 3).index_add(0, ta * nb + trip_blk, Ja)
        H4 = H4.index_add(0, tb * nb + trip_blk, Jb).reshape(len(d), nb * spec.n_angular, 3)
        H[:, ne * spec.n_radial :] = H4
    return H.detach()
