# nnrds: neural networks as (random) dynamical systems -- the whole program as one DAG.
#   snakemake                                   # default scale (config/config.yaml), profiles/default
#   snakemake --configfile config/smoke.yaml    # smoke scale (CI)
#   snakemake --profile profiles/slurm ...      # on a SLURM cluster
# The config is validated against workflow/schemas/ before any job is planned: a bad key or type
# stops here with one message naming the key path, and nothing is written.
from snakemake.utils import min_version

min_version("9.0")

import nnrds.config as nnrds_config

# default scale unless --configfile is given (no silent merge of two scales' keys); workflow.configfiles lists the
# --configfile files, then those a configfile: directive loaded
if not workflow.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


_sources = [str(p) for p in workflow.configfiles]
try:
    _validated = nnrds_config.validate(config, source=" + ".join(_sources))
except nnrds_config.ConfigError as _e:
    raise SystemExit(f"\nnnrds: {_e}\n")
config.clear()
config.update(_validated)


include: "workflow/rules/common.smk"


envvars:
    "NNRDS_PYTHON",  # set by common.smk: the interpreter running Snakemake


include: "workflow/rules/figures.smk"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    param=r"[A-Za-z0-9_\-]+",


ALL_TARGETS = []  # each study appends its final outputs when enabled


include: "workflow/rules/data.smk"
include: "workflow/rules/wp_gap.smk"
include: "workflow/rules/noisy_rnn.smk"
include: "workflow/rules/stiffness.smk"
include: "workflow/rules/uq_elm.smk"
include: "workflow/rules/materials.smk"
include: "workflow/rules/continuous_depth.smk"
include: "workflow/rules/pinn_failure.smk"
include: "workflow/rules/stable_arch.smk"
include: "workflow/rules/claims.smk"  # last: it reads CLAIM_TABLES


rule all:
    default_target: True
    input:
        ALL_TARGETS,
