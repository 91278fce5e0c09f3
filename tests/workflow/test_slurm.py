"""The wp_gap part of the smoke DAG through profiles/slurm on a REAL single-node SLURM started by the test itself.

Two fake GPUs (character devices in gres.conf) let SLURM hand out CUDA_VISIBLE_DEVICES; torch still
sees no GPU, so results must equal the local run byte for byte. Skipped (with the reason) where slurm
is not installed; under CI=true a skip is a failure.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.dag_helpers import copy_workflow, snakemake, table_digests
from tests.helpers.slurm_cluster import local_slurm_cluster, slurm_missing_reason

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


# The study run under SLURM: wp_gap (its data jobs, 8 GPU-requesting training cells, the CPU-only landscape and
# summary jobs) covers the executor, resources and determinism; the other studies run locally in the smoke DAG.
SLURM_TARGET = "results/wp_gap/provenance.json"


def test_smoke_dag_on_real_slurm(tmp_path, request):
    reason = slurm_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the SLURM test cannot run: {reason}")
        pytest.skip(reason)
    wd = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((wd / "config/smoke.yaml").read_text())
    cfg["resources"].update(gpu=1, cpus_per_gpu=1, mem_mb=500, runtime_min=10)
    (wd / "config/smoke.yaml").write_text(yaml.safe_dump(cfg))
    with local_slurm_cluster(tmp_path / "slurm", n_gpus=2) as cluster:
        env = cluster.client_env()
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        snakemake(
            wd,
            "--profile",
            "profiles/slurm",
            "--jobs",
            "4",
            "--slurm-status-command",
            "squeue",
            "--slurm-no-account",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--latency-wait",
            "5",
            SLURM_TARGET,
            env=env,
            timeout=1200,
        )
    cells = sorted((wd / "results/wp_gap/cells").rglob("provenance.json"))
    assert len(cells) == 8  # wp_gap cells (elm runs 2 parameterizations: wp_gap.per_dataset)
    for p in cells:  # GPU-requesting training jobs: SLURM set CUDA_VISIBLE_DEVICES
        dev = json.loads(p.read_text())["device"]
        assert dev["slurm_job_id"], f"{p} did not run under SLURM"
        assert dev["CUDA_VISIBLE_DEVICES"] not in (None, ""), f"{p}: GPU job without CUDA_VISIBLE_DEVICES"
        assert dev["device"] == "cpu"  # fake GPUs: torch sees none and falls back to the CPU
    summary = json.loads((wd / "results/wp_gap/provenance.json").read_text())["device"]
    assert summary["slurm_job_id"] and summary["CUDA_VISIBLE_DEVICES"] is None  # CPU job
    got = table_digests(wd)  # the same tables, byte for byte, as the local smoke run
    # asked for only now, so this DAG and the shared one run side by side on two pytest-xdist workers
    smoke_digests = request.getfixturevalue("smoke_digests")
    assert got and {k: smoke_digests.get(k) for k in got} == got
