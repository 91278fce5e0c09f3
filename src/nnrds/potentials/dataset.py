"""A set of configurations flattened for batched prediction: descriptors and their Jacobians, built once.

:func:`build_dataset` computes every configuration's neighbour list, descriptors G (N, D) and the pair-vector
Jacobians H (P, D, 3) = dG_{i(p)}/dd_p (autograd, in chunks that bound the memory of the descriptor graph) and
stacks them with the labels into one :class:`AtomsData`; :meth:`AtomsData.subset` takes configurations out
of it without recomputing anything (training minibatches, splits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .descriptors import DescriptorSpec, descriptor_jacobian, descriptors_from_pairs
from .neighbours import Neighbors, neighbor_topology, pair_vectors
from .structures import Structure


@dataclass
class AtomsData:
    """A dataset of configurations flattened for batched prediction (float64 on the CPU).

    G (N, D) descriptors; H (P, D, 3) = dG_{i(p)}/dd_p (autograd, once); d (P, 3) pair vectors;
    pair_i / pair_j global atom indices; atom_cfg (N,) and pair_cfg (P,) configuration positions 0..B-1;
    elem (N,) element index of every atom (DescriptorSpec.element_index); has_stress (B,) whether the
    configuration carries a stress label (FitSNAP stores six exact zeros where the DFT run computed none)."""

    G: torch.Tensor
    H: torch.Tensor
    d: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    atom_cfg: torch.Tensor
    pair_cfg: torch.Tensor
    natoms: torch.Tensor  # (B,)
    volume: torch.Tensor  # (B,)
    energy: torch.Tensor  # (B,) total energy
    forces: torch.Tensor  # (N, 3)
    stress: torch.Tensor  # (B, 6)
    groups: list[str] = field(default_factory=list)
    config_ids: list[int] = field(default_factory=list)
    elem: torch.Tensor | None = None  # (N,) long
    has_stress: torch.Tensor | None = None  # (B,) bool

    @property
    def n_configs(self) -> int:
        return len(self.natoms)

    def composition(self, n_elements: int) -> torch.Tensor:
        """(B, n_elements) atom counts of every element per configuration (float64)."""
        c = torch.zeros(self.n_configs, n_elements, dtype=torch.float64, device=self.atom_cfg.device)
        return c.index_put_(
            (self.atom_cfg, self.elem),
            torch.ones(len(self.elem), dtype=torch.float64, device=c.device),
            accumulate=True,
        )

    def to(self, device=None, dtype: torch.dtype | None = None) -> AtomsData:
        """Moved to ``device``; floating tensors (descriptors, Jacobians, targets) cast to ``dtype``."""

        def mv(v):
            if not isinstance(v, torch.Tensor):
                return v
            return v.to(device=device, dtype=dtype if dtype is not None and v.is_floating_point() else None)

        return AtomsData(**{k: mv(v) for k, v in self.__dict__.items()})

    def subset(self, idx) -> AtomsData:
        """Configurations ``idx`` (positions 0..B-1) as a new dataset, in that order."""
        dev = self.G.device
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1).to(dev)
        B = self.n_configs
        new_pos = torch.full((B,), -1, dtype=torch.long, device=dev)
        new_pos[idx] = torch.arange(len(idx), device=dev)
        am = new_pos[self.atom_cfg] >= 0
        pm = new_pos[self.pair_cfg] >= 0
        atom_new = torch.full((len(self.atom_cfg),), -1, dtype=torch.long, device=dev)
        atoms_sel = am.nonzero().squeeze(1)
        # atoms grouped by their new configuration order
        order = torch.argsort(new_pos[self.atom_cfg[atoms_sel]], stable=True)
        atoms_sel = atoms_sel[order]
        atom_new[atoms_sel] = torch.arange(len(atoms_sel), device=dev)
        pairs_sel = pm.nonzero().squeeze(1)
        il = idx.tolist()
        return AtomsData(
            self.G[atoms_sel],
            self.H[pairs_sel],
            self.d[pairs_sel],
            atom_new[self.pair_i[pairs_sel]],
            atom_new[self.pair_j[pairs_sel]],
            new_pos[self.atom_cfg[atoms_sel]],
            new_pos[self.pair_cfg[pairs_sel]],
            self.natoms[idx],
            self.volume[idx],
            self.energy[idx],
            self.forces[atoms_sel],
            self.stress[idx],
            [self.groups[k] for k in il],
            [self.config_ids[k] for k in il],
            self.elem[atoms_sel],
            self.has_stress[idx],
        )


def _chunks(nbs: Sequence[Neighbors], chunk: int, max_triplets: int) -> list[tuple[int, int]]:
    """Consecutive configuration ranges of at most ``chunk`` configurations and (unless a single
    configuration exceeds it) ``max_triplets`` triplets: bounds the memory of the descriptor graph."""
    out, c0, tri = [], 0, 0
    for k, nb in enumerate(nbs):
        if k > c0 and (k - c0 >= chunk or tri + nb.n_triplets > max_triplets):
            out.append((c0, k))
            c0, tri = k, 0
        tri += nb.n_triplets
    if c0 < len(nbs):
        out.append((c0, len(nbs)))
    return out


def build_dataset(
    structs: Sequence[Structure], spec: DescriptorSpec, chunk: int = 64, max_triplets: int = 2_000_000
) -> AtomsData:
    """Neighbour lists, descriptors and their pair-vector Jacobians for every configuration."""
    parts = []
    nbs = [neighbor_topology(s, spec.cutoff, spec) for s in structs]
    for c0, c1 in _chunks(nbs, chunk, max_triplets):
        block = structs[c0:c1]
        ds, pis, pjs, tas, tbs, acfg, pcfg, pel, tbl, elem = [], [], [], [], [], [], [], [], [], []
        off = poff = 0
        for b, s in enumerate(block):
            nb = nbs[c0 + b]
            d = pair_vectors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb)
            ds.append(d)
            pis.append(torch.as_tensor(nb.i) + off)
            pjs.append(torch.as_tensor(nb.j) + off)
            tas.append(torch.as_tensor(nb.ta) + poff)
            tbs.append(torch.as_tensor(nb.tb) + poff)
            pel.append(torch.as_tensor(nb.pair_el))
            tbl.append(torch.as_tensor(nb.trip_blk))
            elem.append(torch.as_tensor(nb.elem))
            acfg.append(torch.full((s.natoms,), c0 + b, dtype=torch.long))
            pcfg.append(torch.full((len(nb.i),), c0 + b, dtype=torch.long))
            off += s.natoms
            poff += len(nb.i)
        d = torch.cat(ds)
        pi, pj, ta, tb, pe, tk = (torch.cat(x) for x in (pis, pjs, tas, tbs, pel, tbl))
        G = descriptors_from_pairs(d, pi, ta, tb, off, spec, pe, tk)
        H = descriptor_jacobian(d, ta, tb, spec, pe, tk)
        parts.append((G.detach(), H, d.detach(), pi, pj, torch.cat(acfg), torch.cat(pcfg), off, torch.cat(elem)))
    G, H, d, pi, pj, acfg, pcfg, elem = ([] for _ in range(8))
    aoff = 0
    for g, h, dd, a, b, ac, pc, n, el in parts:
        G.append(g), H.append(h), d.append(dd), pi.append(a + aoff), pj.append(b + aoff), acfg.append(ac)
        pcfg.append(pc), elem.append(el)
        aoff += n
    f64 = torch.float64
    return AtomsData(
        torch.cat(G),
        torch.cat(H),
        torch.cat(d),
        torch.cat(pi),
        torch.cat(pj),
        torch.cat(acfg),
        torch.cat(pcfg),
        torch.tensor([s.natoms for s in structs], dtype=f64),
        torch.tensor([s.volume for s in structs], dtype=f64),
        torch.tensor([s.energy for s in structs], dtype=f64),
        torch.as_tensor(np.concatenate([s.forces for s in structs]), dtype=f64),
        torch.as_tensor(np.stack([s.stress for s in structs]), dtype=f64),
        [s.group for s in structs],
        [s.config_id for s in structs],
        torch.cat(elem),
        torch.tensor([bool(np.any(s.stress != 0)) for s in structs]),
    )
