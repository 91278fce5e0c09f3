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


@dataclass
class BlockGraph:
    """The pair graph of a block of consecutive configurations: pair vectors ``d`` (P, 3), the pairs' atoms
    ``pi`` / ``pj`` and the triplets' pairs ``ta`` / ``tb`` numbered within the block, the pairs' element
    pair ``pair_el`` and the triplets' block ``trip_blk``, configuration positions in the whole set of every atom
    (``atom_cfg``) and pair (``pair_cfg``), element index of every atom, and the block's number of atoms."""

    d: torch.Tensor
    pi: torch.Tensor
    pj: torch.Tensor
    ta: torch.Tensor
    tb: torch.Tensor
    pair_el: torch.Tensor
    trip_blk: torch.Tensor
    atom_cfg: torch.Tensor
    pair_cfg: torch.Tensor
    elem: torch.Tensor
    n_atoms: int


def block_graph(block: Sequence[Structure], nbs: Sequence[Neighbors], c0: int) -> BlockGraph:
    """The :class:`BlockGraph` of configurations ``block`` (neighbour lists ``nbs``), the first at position ``c0``
    of the set."""
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("d", "pi", "pj", "ta", "tb", "pel", "tbl", "el", "ac", "pc")
    }
    off = poff = 0
    for b, (s, nb) in enumerate(zip(block, nbs, strict=True)):
        parts["d"].append(pair_vectors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb))
        parts["pi"].append(torch.as_tensor(nb.i) + off)
        parts["pj"].append(torch.as_tensor(nb.j) + off)
        parts["ta"].append(torch.as_tensor(nb.ta) + poff)
        parts["tb"].append(torch.as_tensor(nb.tb) + poff)
        parts["pel"].append(torch.as_tensor(nb.pair_el))
        parts["tbl"].append(torch.as_tensor(nb.trip_blk))
        parts["el"].append(torch.as_tensor(nb.elem))
        parts["ac"].append(torch.full((s.natoms,), c0 + b, dtype=torch.long))
        parts["pc"].append(torch.full((len(nb.i),), c0 + b, dtype=torch.long))
        off += s.natoms
        poff += len(nb.i)
    c = {k: torch.cat(v) for k, v in parts.items()}
    return BlockGraph(c["d"], c["pi"], c["pj"], c["ta"], c["tb"], c["pel"], c["tbl"], c["ac"], c["pc"], c["el"], off)


def block_descriptors(g: BlockGraph, spec: DescriptorSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Descriptors G (N, D) of a block's atoms and their pair-vector Jacobians H (P, D, 3)."""
    G = descriptors_from_pairs(g.d, g.pi, g.ta, g.tb, g.n_atoms, spec, g.pair_el, g.trip_blk)
    H = descriptor_jacobian(g.d, g.ta, g.tb, spec, g.pair_el, g.trip_blk)
    return G.detach(), H


def label_tensors(structs: Sequence[Structure]) -> dict:
    """Per-configuration labels of :class:`AtomsData` (natoms, volume, energy, forces, stress as float64; groups,
    config ids; has_stress)."""
    f64 = torch.float64
    return {
        "natoms": torch.tensor([s.natoms for s in structs], dtype=f64),
        "volume": torch.tensor([s.volume for s in structs], dtype=f64),
        "energy": torch.tensor([s.energy for s in structs], dtype=f64),
        "forces": torch.as_tensor(np.concatenate([s.forces for s in structs]), dtype=f64),
        "stress": torch.as_tensor(np.stack([s.stress for s in structs]), dtype=f64),
        "groups": [s.group for s in structs],
        "config_ids": [s.config_id for s in structs],
        "has_stress": torch.tensor([bool(np.any(s.stress != 0)) for s in structs]),
    }


def build_dataset(
    structs: Sequence[Structure], spec: DescriptorSpec, chunk: int = 64, max_triplets: int = 2_000_000
) -> AtomsData:
    """Neighbour lists, descriptors and their pair-vector Jacobians for every configuration: per block of
    configurations (:func:`_chunks`) its pair graph (:func:`block_graph`) and descriptors
    (:func:`block_descriptors`), joined with atom indices offset by the atoms of the blocks before."""
    nbs = [neighbor_topology(s, spec.cutoff, spec) for s in structs]
    G, H, d, pi, pj, acfg, pcfg, elem = ([] for _ in range(8))
    aoff = 0
    for c0, c1 in _chunks(nbs, chunk, max_triplets):
        g = block_graph(structs[c0:c1], nbs[c0:c1], c0)
        Gb, Hb = block_descriptors(g, spec)
        G.append(Gb), H.append(Hb), d.append(g.d.detach()), pi.append(g.pi + aoff), pj.append(g.pj + aoff)
        acfg.append(g.atom_cfg), pcfg.append(g.pair_cfg), elem.append(g.elem)
        aoff += g.n_atoms
    cat = torch.cat
    return AtomsData(
        cat(G), cat(H), cat(d), cat(pi), cat(pj), cat(acfg), cat(pcfg), elem=cat(elem), **label_tensors(structs)
    )
