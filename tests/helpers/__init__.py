"""Shared test helpers (imported as ``tests.helpers.<module>``; pyproject's pytest ``pythonpath`` puts the repository
root on the import path): running the workflow in a scratch copy (dag_helpers), rendering captions as the report does
(captions), a single-node SLURM cluster (slurm_cluster)."""
