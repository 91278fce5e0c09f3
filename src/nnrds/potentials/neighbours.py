"""Periodic neighbour lists: the fixed topology of a configuration and its differentiable pair vectors.

:func:`neighbor_topology` takes ASE's periodic neighbour list (``ase.neighborlist.neighbor_list('ijS')``):
indices and integer cell shifts are fixed, so the pair vectors d_p = R_j - R_i + S_p C (:func:`pair_vectors`)
are differentiable in positions R, cell C and a homogeneous strain eps (R -> R (1 + eps), C -> C (1 + eps)).
:func:`descriptors` builds a configuration's symmetry functions from them (:mod:`nnrds.potentials.descriptors`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .descriptors import DescriptorSpec, descriptors_from_pairs
from .structures import Structure, to_atoms


@dataclass
class Neighbors:
    """Fixed neighbour-list topology of one configuration (indices and integer cell shifts)."""

    i: np.ndarray  # (P,) centre atom
    j: np.ndarray  # (P,) neighbour atom
    S: np.ndarray  # (P, 3) integer shifts: d_p = R_j - R_i + S_p @ C
    ta: np.ndarray  # (T,) first pair of each triplet (same centre)
    tb: np.ndarray  # (T,) second pair
    elem: np.ndarray | None = None  # (n,) element index of every atom (DescriptorSpec.element_index)
    pair_el: np.ndarray | None = None  # (P,) element index of each pair's neighbour j
    trip_blk: np.ndarray | None = None  # (T,) G4 block of each triplet's neighbour-element pair

    @property
    def n_triplets(self) -> int:
        return len(self.ta)


def neighbor_topology(s: Structure, cutoff: float, spec: DescriptorSpec | None = None) -> Neighbors:
    """ASE periodic neighbour list within ``cutoff``, sorted by (i, j), with the triplets (pairs of pairs with
    the same centre) and, given ``spec``, the element indices the element-resolved descriptors need."""
    from ase.neighborlist import neighbor_list

    i, j, S = neighbor_list("ijS", to_atoms(s), float(cutoff))
    order = np.lexsort((j, i))
    i, j, S = i[order], j[order], S[order]
    ta, tb = [], []
    starts = np.searchsorted(i, np.arange(s.natoms))
    ends = np.searchsorted(i, np.arange(s.natoms), side="right")
    for a0, a1 in zip(starts, ends):
        if a1 - a0 > 1:
            u, v = np.triu_indices(a1 - a0, k=1)
            ta.append(u + a0)
            tb.append(v + a0)
    cat = lambda x: np.concatenate(x) if x else np.zeros(0, int)
    nb = Neighbors(
        i.astype(np.int64), j.astype(np.int64), S.astype(np.float64), cat(ta).astype(np.int64), cat(tb).astype(np.int64)
    )
    if spec is None:  # every atom the same kind (a one-element DescriptorSpec)
        nb.elem, blocks = np.zeros(s.natoms, dtype=np.int64), np.zeros((1, 1), dtype=np.int64)
    else:
        nb.elem, blocks = spec.element_index(s.species), spec.pair_block()
    nb.pair_el = nb.elem[nb.j]
    nb.trip_blk = blocks[nb.pair_el[nb.ta], nb.pair_el[nb.tb]]
    return nb


def pair_vectors(pos: torch.Tensor, cell: torch.Tensor, nb: Neighbors, strain: torch.Tensor | None = None):
    """d_p = R'_j - R'_i + S_p C' with R' = R (1 + eps), C' = C (1 + eps)."""
    if strain is not None:
        F = torch.eye(3, dtype=pos.dtype) + strain
        pos, cell = pos @ F, cell @ F
    i, j = torch.as_tensor(nb.i), torch.as_tensor(nb.j)
    S = torch.as_tensor(nb.S, dtype=pos.dtype)
    return pos[j] - pos[i] + S @ cell


def descriptors(
    pos: torch.Tensor, cell: torch.Tensor, nb: Neighbors, spec: DescriptorSpec, strain: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-atom descriptors (n, D), differentiable in positions, cell and strain (``nb`` from
    :func:`neighbor_topology` with the same ``spec`` when it has several elements)."""
    d = pair_vectors(pos, cell, nb, strain)
    el = lambda a: None if a is None else torch.as_tensor(a)
    return descriptors_from_pairs(
        d,
        torch.as_tensor(nb.i),
        torch.as_tensor(nb.ta),
        torch.as_tensor(nb.tb),
        pos.shape[0],
        spec,
        el(nb.pair_el),
        el(nb.trip_blk),
    )
