"""Bayesian uncertainty quantification for WP-ResNets / MLPs (Pyro): NUTS, VI, deep ensembles, MAP.

One interface: ``run_method(name, net, X, Y, settings)`` returns a :class:`Posterior`, and
:func:`predictive_samples` returns posterior-predictive samples for any of them.
"""

from .inference import (
    METHODS,
    Posterior,
    predictive_samples,
    run_ensemble,
    run_map,
    run_method,
    run_nuts,
    run_nuts_vanilla,
    run_vi,
)
from .model import BayesNet, NetSpec

__all__ = [
    "METHODS",
    "BayesNet",
    "NetSpec",
    "Posterior",
    "predictive_samples",
    "run_ensemble",
    "run_map",
    "run_method",
    "run_nuts",
    "run_nuts_vanilla",
    "run_vi",
]
