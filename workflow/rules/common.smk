# Helpers shared by every rules file (included first by the Snakefile). They say how rules call the package, the
# config slice every job gets, cluster resources, and the files a dataset needs from other rules.
import math
import os
import shlex
import sys
from pathlib import Path

SCALE = config["scale"]
CLAIM_TABLES = []  # every enabled study that tests claims appends its claims.csv (ledger: workflow/rules/claims.smk)
CLAIM_CATEGORIES = {}  # study key -> its report category, which opens with the study's panel of the forest plot


def declare_claims(folder, category):
    """An enabled study that tests claims, called from the study's rules file. Its ``<folder>/claims.csv`` joins the
    ledger (CLAIM_TABLES), and its report ``category`` opens with its panel of the forest plot (claims.smk). The
    study's key is the folder's name."""
    CLAIM_TABLES.append(f"{folder}/claims.csv")
    CLAIM_CATEGORIES[Path(folder).name] = category


# Rules run the package CLI as `$NNRDS_PYTHON -m nnrds ...`: the interpreter that runs Snakemake (works without
# an activated venv; set here, in every Snakemake process, so cluster jobs get their own interpreter too; the
# Snakefile declares it in `envvars:`).
os.environ["NNRDS_PYTHON"] = sys.executable


def nnrds_shell(command):
    """The one shell line of every job rule: ``nnrds <command>`` with the rule's config slice (``params.cfg``),
    input folders (``params.in_dirs``; may be empty) and output folder (``params.out_dir``), logging to the rule's
    log. Rules only name folders; the command knows its fixed table names (src/nnrds/commands/common.py)."""
    return (
        f"$NNRDS_PYTHON -m nnrds {command} --config-json {{params.cfg}} --in-dir {{params.in_dirs}} "
        "--out-dir {params.out_dir} > {log} 2>&1"
    )


def table_outputs(folder, tables, provenance=True):
    """Named outputs ``<folder>/<table>.csv`` (plus ``provenance.json``) of a job writing fixed table names."""
    out = {t: f"{folder}/{t}.csv" for t in tables}
    if provenance:
        out["provenance"] = f"{folder}/provenance.json"
    return out


def report_tables(folder, tables, category, caption):
    """Named outputs ``<folder>/<table>.csv`` shown in the report under ``category`` (subcategory "tables")."""
    return {t: report(f"{folder}/{t}.csv", category=category, subcategory="tables", caption=caption) for t in tables}


def in_dirs_of(*keys):
    """params function: the distinct folders of the named inputs, in order, shell-quoted and space-separated
    (the ``--in-dir`` of :func:`nnrds_shell`); empty when the inputs are empty (bundled data)."""

    def f(wildcards, input):
        files = [p for k in keys for p in (input[k] if isinstance(input[k], list) else [input[k]])]
        return " ".join(shlex.quote(d) for d in dict.fromkeys(os.path.dirname(p) for p in files))

    return f


def out_dir_of(key):
    """params function: the folder of the named output ``key`` (derived, not a hard-coded prefix)."""
    return lambda wildcards, output: os.path.dirname(output[key])


def in_dir_of(key):
    """params function: the folder of the named input ``key``."""
    return lambda wildcards, input: os.path.dirname(input[key])


def fig_dir(wildcards, output):
    """params function of the notebook rules: the folder of their PNG outputs."""
    return os.path.dirname(output.png[0])


def figure_outputs(key, figs, category, caption):
    """Outputs of a study's figures rule: its executed notebook, PNGs in the report, PDFs."""
    pngs = [f"figures/{key}/{f}.png" for f in figs]
    return {
        "notebook": f"results/notebooks/{key}.ipynb",
        "png": [report(p, category=category, subcategory="figures", caption=caption) for p in pngs],
        "pdf": [f"figures/{key}/{f}.pdf" for f in figs],
    }


def cfg_arg(obj):
    """A config slice as one shell-quoted JSON argument for the nnrds CLI."""
    return shlex.quote(nnrds_config.dumps(obj))


#: keys that only a study's summary reads (claims: margins, alphas, families), at any depth of a study section
SUMMARY_ONLY_KEYS = frozenset({"claims"})


def job_study(section, drop=()):
    """A study section (or part of it) as a training/fit job's params get it: without SUMMARY_ONLY_KEYS at any
    depth and without the top-level keys ``drop`` (settings of other jobs), so that editing them reruns no training
    job ("Params have changed" compares a job's params); the summary rule gets the whole section."""

    def strip(v):
        return {k: strip(x) for k, x in v.items() if k not in SUMMARY_ONLY_KEYS} if isinstance(v, dict) else v

    return {k: strip(v) for k, v in section.items() if k not in SUMMARY_ONLY_KEYS and k not in drop}


def job_env():
    """Keys every job needs, in every study's config slice."""
    return {k: config[k] for k in ("seed", "device", "dtype", "torch_threads")}


# The long training rules (minutes per job: noisy_rnn, materials, uq_elm, pinn_failure) start before the short
# ones, so that the last minutes of a local run are not one long job on one core while the other core idles
# (longest-first scheduling; the 2026-12-07 fresh-clone run spent 143 s with one job, the ECG noisy RNN, left).
LONG_JOB_PRIORITY = 10


def cluster_resources():
    """SLURM partition/account from NNRDS_SLURM_PARTITION / NNRDS_SLURM_ACCOUNT (no file edits needed;
    `--default-resources slurm_partition=... slurm_account=...` works too). Ignored by local runs."""
    env = {"slurm_partition": "NNRDS_SLURM_PARTITION", "slurm_account": "NNRDS_SLURM_ACCOUNT"}
    return {k: os.environ[v] for k, v in env.items() if os.environ.get(v)}


def _estimate():
    """Per-job predictions of `nnrds estimate --json` (config `resources.estimate`; relative to the workflow
    folder), or None (the fixed runtime_min / mem_mb)."""
    path = config["resources"].get("estimate")
    if not path:
        return None
    p = Path(path) if Path(path).is_absolute() else Path(workflow.basedir) / path
    if not p.is_file():
        raise SystemExit(f"\nnnrds: `resources.estimate` names {p}, which does not exist (nnrds estimate --json)\n")
    import json

    return json.loads(p.read_text())["jobs"]


ESTIMATE = _estimate()


def estimated(rule_name, wildcards):
    """The estimate of job ``rule_name`` x ``wildcards`` (named as the estimate file names it), or None."""
    from nnrds.commands.estimate import job_key

    return ESTIMATE.get(job_key(rule_name, dict(wildcards.items())))


def train_resources(attempt_scale_mb, rule_name=None):
    """Cluster resources of a training job; a GPU only when config `resources.gpu` > 0. With config
    `resources.estimate` a job of ``rule_name`` that the estimate names asks for `estimate_factor` x its predicted
    runtime and memory; every other job (and every job without an estimate) the fixed values."""
    r = config["resources"]
    fixed_mb = max(r["mem_mb"], attempt_scale_mb)
    res = {**cluster_resources(), "runtime": r["runtime_min"], "mem_mb": lambda wc, attempt: attempt * fixed_mb}
    if ESTIMATE is not None and rule_name is not None:
        k = float(r["estimate_factor"])

        def runtime(wc):
            e = estimated(rule_name, wc)
            return r["runtime_min"] if e is None else max(1, math.ceil(k * e["seconds"] / 60))

        def mem_mb(wc, attempt):
            e = estimated(rule_name, wc)
            return attempt * (fixed_mb if e is None else max(100, math.ceil(k * e["mem_mb"])))

        res.update(runtime=runtime, mem_mb=mem_mb)
    if r["gpu"] > 0:
        res.update(gpu=r["gpu"], cpus_per_gpu=r["cpus_per_gpu"])
    return res


ENSEMBLE_ROOT = "results/data"  # where the rules of data.smk write the simulator ensembles


def dataset_spec(name):
    """The spec of a named regression dataset (config ``data.sets.<name>``)."""
    return config["data"]["sets"][name]


def dataset_inputs(name):
    """Files a named dataset needs from other rules (simulator ensembles); [] for bundled data."""
    from nnrds.data.regression import input_files

    return input_files(dataset_spec(name), ENSEMBLE_ROOT)


def mirror_path():
    """`data.mirror` as an absolute path (relative paths are taken from the workflow folder); None = download."""
    m = config["data"]["mirror"]
    if m is None:
        return None
    p = Path(m)
    return str(p if p.is_absolute() else (Path(workflow.basedir) / p).resolve())


def materials_data_dir(s):
    """Folder of a materials set: generated Al-EMT, or the acquired FitSNAP set named by its `source`."""
    m = config["materials"]
    return "results/data/al_emt" if s == "al_emt" else f"results/data/{m[s]['source']}"


def acquire_cfg(wildcards):
    """The config slice of a data-acquisition job (workflow/rules/data.smk): mirror (absolute; null = download),
    timeout, and the dataset."""
    return cfg_arg(
        {
            "mirror": mirror_path(),
            "timeout_s": config["data"]["acquire"]["timeout_s"],
            "cell": {"dataset": wildcards.dataset},
        }
    )
