"""Machine-learned interatomic potentials with the backbone's WP-ResNet, one concept per module:

* :mod:`.structures`: labelled configurations (:class:`~.structures.Structure`) and their tidy tables.
* :mod:`.descriptors`: Behler-Parrinello G2/G4 symmetry functions of pair vectors, element-resolved for
  several elements (:class:`~.descriptors.DescriptorSpec`), and their pair-vector Jacobians.
* :mod:`.neighbours`: periodic neighbour lists (fixed topology) and the differentiable pair vectors.
* :mod:`.dataset`: a set of configurations with descriptors and Jacobians built once
  (:func:`~.dataset.build_dataset`, :class:`~.dataset.AtomsData`).
* :mod:`.potential`: the per-element networks, energies, forces and stress (:class:`~.potential.Potential`).

Raw data (the Al-EMT generator, the FitSNAP sets) live in :mod:`nnrds.data`; the study that trains and
evaluates these potentials is :mod:`nnrds.studies.materials`.
"""
