# nnrds: neural networks as (random) dynamical systems -- the whole program as one DAG.
#   snakemake                                   # default scale (config/config.yaml), profiles/default
#   snakemake --configfile config/smoke.yaml    # smoke scale (CI)
#   snakemake --profile profiles/slurm ...      # on a SLURM cluster
# The config is validated against workflow/schemas/ before any job is planned: a bad key or type
# stops here with one message naming the key path, and nothing is written.
from snakemake.utils import min_version

min_version("9.0")

import os
import shlex
import sys

import nnrds.config as nnrds_config


# default scale unless --configfile is given (no silent merge of two scales' keys)
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



report: "workflow/report/workflow.rst"


_sources = [str(p) for p in (workflow.overwrite_configfiles or [])] or ["config/config.yaml"]
try:
    _validated = nnrds_config.validate(config, source=" + ".join(_sources))
except nnrds_config.ConfigError as _e:
    raise SystemExit(f"\nnnrds: {_e}\n")
config.clear()
config.update(_validated)

SCALE = config["scale"]
# the package CLI, run by the interpreter that runs Snakemake (works without an activated venv)
NNRDS = f"{shlex.quote(sys.executable)} -m nnrds"
PAPERMILL = f"{shlex.quote(sys.executable)} -m papermill"


def cfg_arg(obj):
    """A config slice as one shell-quoted JSON argument for the nnrds CLI."""
    return shlex.quote(nnrds_config.dumps(obj))


def job_env():
    """Keys every job needs, in every study's config slice."""
    return {k: config[k] for k in ("seed", "device", "dtype", "torch_threads")}


def cluster_resources():
    """SLURM partition/account from NNRDS_SLURM_PARTITION / NNRDS_SLURM_ACCOUNT (no file edits needed;
    `--default-resources slurm_partition=... slurm_account=...` works too). Ignored by local runs."""
    env = {"slurm_partition": "NNRDS_SLURM_PARTITION", "slurm_account": "NNRDS_SLURM_ACCOUNT"}
    return {k: os.environ[v] for k, v in env.items() if os.environ.get(v)}


def train_resources(attempt_scale_mb):
    """Cluster resources of a training job; a GPU only when config `resources.gpu` > 0."""
    r = config["resources"]
    res = {
        **cluster_resources(),
        "runtime": r["runtime_min"],
        "mem_mb": lambda wc, attempt: attempt * max(r["mem_mb"], attempt_scale_mb),
    }
    if r["gpu"] > 0:
        res.update(gpu=r["gpu"], cpus_per_gpu=r["cpus_per_gpu"])
    return res


def dataset_inputs(name):
    """Files a named dataset needs from other rules (simulator ensembles); [] for bundled data."""
    from nnrds.datasets import input_files

    return input_files(config["datasets"][name])


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    param=r"[A-Za-z0-9_\-]+",


ALL_TARGETS = []  # each study appends its final outputs when enabled


include: "workflow/rules/data.smk"
include: "workflow/rules/wp_gap.smk"
include: "workflow/rules/noisy_rnn.smk"
include: "workflow/rules/stiffness.smk"
include: "workflow/rules/uq.smk"
include: "workflow/rules/materials.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
