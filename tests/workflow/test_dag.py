"""The workflow end to end at smoke scale: dry-runs, a full run, determinism, kill -9 and rerun, report."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.dag_helpers import copy_workflow, snakemake, table_digests

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scale", ["smoke", "config", "paper"])
def test_dry_run_every_scale(tmp_path, scale):
    wd = copy_workflow(tmp_path / "wf")
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", f"config/{scale}.yaml"],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "wp_gap_train" in out.stdout
    assert not (wd / "results").exists() or not any((wd / "results").rglob("*.csv"))


def assert_notebook_ran(path: Path) -> None:
    """Every code cell of an executed notebook ran (papermill numbers it) and none shows an error output."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code), f"{path.name}: a code cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == [], f"{path.name}: {errors[0].get('ename')}"


def test_smoke_dag_produces_tables_figures_provenance(smoke_run):
    wd = smoke_run
    runs = pd.read_csv(wd / "results/wp_gap/runs.csv")
    # (datasets x parameterizations, elm: wp_gap.per_dataset with 2) x depths x widths x seeds
    assert len(runs) == (2 * 3 + 2) * 2 * 1 * 2
    assert ((runs.gap - (runs.test_mse - runs.train_mse)).abs() < 1e-8).all()  # 10 significant digits in CSV
    wp = runs[runs.parameterization != "nonpar"]
    assert wp.groupby(["dataset", "parameterization"]).n_params.nunique().eq(1).all()  # depth-independent
    for f in ("gap_vs_nparams", "nparams_vs_depth", "test_vs_depth", "gap_vs_depth", "landscape"):
        for ext in ("png", "pdf"):
            assert (wd / f"figures/wp_gap/{f}.{ext}").stat().st_size > 1000
    assert_notebook_ran(wd / "results/notebooks/wp_gap.ipynb")
    prov = json.loads((wd / "results/wp_gap/provenance.json").read_text())
    assert prov["config"]["scale"] == "smoke" and prov["seeds"] == [0, 1]
    assert len(prov["jobs"]) == 9 and all(j["device"]["device"] == "cpu" for j in prov["jobs"])  # 8 cells + landscape
    assert "Spearman" in (wd / "results/wp_gap/caption.rst").read_text()
    claims = pd.read_csv(wd / "results/wp_gap/claims.csv")
    assert "smoother_landscape:elm:legendre3" in set(claims.claim_id)
    stats = pd.read_csv(wd / "results/wp_gap/landscape_stats.csv")
    assert set(stats.parameterization) == {"mlp", "legendre3"} and len(stats) == 2 * 2


@pytest.mark.parametrize(
    "study,figs",
    [
        ("stiffness", ["metrics_vs_epoch", "test_vs_strength", "stiffness_vs_gap", "eigenvalues"]),
        ("noisy_rnn", ["robustness_advantage", "accuracy_vs_strength", "clean_vs_training_noise"]),
        (
            "uq_elm",
            [
                "parity",
                "calibration",
                "coverage_crps",
                "slices",
                "extrapolation",
                "nuts_trace",
                "flagged",
                "depth_feasibility",
            ],
        ),
        ("materials", ["parity", "calibration", "std_vs_error", "ev_curve", "group_errors"]),
        ("continuous_depth", ["error_vs_h", "order_test", "wp_depth_convergence"]),
        ("pinn_failure", ["error_vs_coefficient", "heatmaps", "loss_curves", "landscapes"]),
        (
            "stable_arch",
            ["accuracy_vs_depth", "perturbation_growth", "growth_factors", "eigenvalues_stability", "reversibility"]
            + ["multilevel", "bases_loss_curves", "bases_final_error", "bases_gram_condition"],
        ),
    ],
)
def test_smoke_dag_runs_every_study(smoke_run, study, figs):
    wd = smoke_run
    prov = json.loads((wd / f"results/{study}/provenance.json").read_text())
    assert prov["config"]["scale"] == "smoke" and prov["git"]["commit"] is not None
    assert (wd / f"results/{study}/caption.rst").stat().st_size > 100
    for f in figs:
        assert (wd / f"figures/{study}/{f}.png").stat().st_size > 1000
    assert_notebook_ran(wd / f"results/notebooks/{study}.ipynb")


def test_smoke_dag_builds_raw_data(smoke_run):
    for name in ("elm", "chem"):
        meta = json.loads((smoke_run / f"results/data/{name}/metadata.json").read_text())
        assert meta and (smoke_run / f"figures/data/{name}.png").exists()
    for name in ("fitsnap_Ta", "ecg5000"):  # an acquired dataset records the checksum of the file it read
        ver = json.loads((smoke_run / f"results/data/{name}/provenance.json").read_text())["verification"]
        assert ver["dataset"] == name and len(ver["digest"]) == 64, ver
        src = Path(ver["source"])
        if ver["check"] == "sha256" and src.is_file():  # a mirror file (a download records its URL)
            assert hashlib.sha256(src.read_bytes()).hexdigest() == ver["digest"], name
        else:  # an archive: the digest of its member files' contents
            assert ver["check"] == "content digest" and ver["n_files"] > 0, ver
    for name in ("elm", "chem", "al_emt", "fitsnap_Ta", "ecg5000"):  # every data job: its own row of timings.csv
        t = pd.read_csv(smoke_run / f"results/data/{name}/timings.csv")
        assert t.job.tolist() == [f"data/{name}"] and (t.wall_time_s > 0).all(), name
    assert (smoke_run / "results/data/al_emt/configs.csv").exists() and not (
        smoke_run / "results/materials/data"
    ).exists()


def test_report_has_every_figure(smoke_run, smoke_report):
    """Every PNG the smoke run wrote under figures/ (each study's, the raw-data figures, the forest plot) is in the
    report, named by its path (two studies both have a parity.png): a figure rule whose PNG lacks ``report(...)``
    fails here."""
    html = smoke_report.read_text(errors="replace")
    pngs = sorted(p.relative_to(smoke_run).as_posix() for p in (smoke_run / "figures").rglob("*.png"))
    studies = {p.split("/")[1] for p in pngs}
    assert {"data", "wp_gap", "stiffness", "pinn_failure", "stable_arch"} <= studies, studies
    missing = [p for p in pngs if p not in html]
    assert missing == [], f"figures the report does not show: {missing}"


#: the part of the smoke DAG the kill-and-rerun test runs: the stiffness study up to its summary (its data job, four
#: training cells, the summary), about a tenth of the whole DAG; wp_gap is the SLURM test's part
KILL_TARGET = "results/stiffness/provenance.json"
KILL_STUDY = "results/stiffness/"


def test_kill_and_rerun_completes_with_same_results(request, tmp_path):
    """kill -9 early in a second run of one study's part of the DAG (stiffness, KILL_TARGET), unlock, rerun: no
    half-written files, and every table byte-identical to the shared smoke run. The kill comes after the first
    training cell, so the other cells and the summary run in the second directory: this is also a two-independent-runs
    determinism check of the stiffness study (tests/workflow/test_slurm.py is one of wp_gap). The shared run's digests
    are asked for only after this run, so the two DAGs run side by side on two pytest-xdist workers."""
    wd = copy_workflow(tmp_path / "wf")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            KILL_TARGET,
            "--configfile",
            "config/smoke.yaml",
        ],  # target first: --configfile takes several,
        cwd=wd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cells = wd / KILL_STUDY / "cells"

    def trained() -> bool:  # a stiffness training cell has finished (it writes its provenance last)
        return cells.exists() and any(cells.rglob("provenance.json"))

    deadline = time.time() + 300
    while time.time() < deadline and not trained():
        time.sleep(0.2)
    assert proc.poll() is None, "the DAG finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {k for k in table_digests(wd) if k.startswith(KILL_STUDY)}
    snakemake(wd, "--unlock")
    snakemake(wd, "--cores", "all", KILL_TARGET)  # (an option ends --configfile's list of files)
    got = table_digests(wd)
    ref = request.getfixturevalue("smoke_digests")  # the shared smoke run (waits for it when another worker runs it)
    study = {k for k in ref if k.startswith(KILL_STUDY)}
    assert study and {k for k in got if k.startswith(KILL_STUDY)} == study
    assert len(done) < 0.5 * len(study), f"kill came too late: {len(done)} of {len(study)} tables already written"
    assert {k: ref.get(k) for k in got} == got  # every table of the rerun (data included) as in the shared run
    leftovers = [p for d in ("results", "figures") if (wd / d).exists() for p in (wd / d).rglob("*")]
    assert [p for p in leftovers if p.name.endswith(".tmp")] == []


def test_diverged_training_fails_the_job_and_writes_no_table(tmp_path):
    """Issue 11 item 6 through snakemake: the smoke config with `wp_gap.lr: 1e12` must fail its training job with
    one message naming study, cell, replica(s), epoch and config key, and leave no runs table behind (one job only)."""
    wd = copy_workflow(tmp_path / "wf")
    (wd / "diverge.yaml").write_text("wp_gap:\n  lr: 1.0e+12\n")  # (PyYAML reads 1.0e12 as a string)
    target = "results/wp_gap/cells/diabetes/nonpar/runs.csv"
    out = snakemake(wd, "--cores", "1", target, check=False, configfiles=("config/smoke.yaml", "diverge.yaml"))
    assert out.returncode != 0, out.stdout[-3000:]
    log = (wd / "results/wp_gap/logs/train_diabetes_nonpar.log").read_text()
    errors = [ln for ln in log.splitlines() if "error:" in ln]
    assert len(errors) == 1, log[-3000:]
    for part in ("non-finite", "study `wp_gap`", "cell `diabetes/nonpar`", "replica(s) [", "epoch ", "`wp_gap.lr`"):
        assert part in errors[0], (part, errors[0])
    assert "INFO nnrds.train" in log  # progress lines go to the rule's log
    assert not (wd / target).exists() and not (wd / "results/wp_gap/runs.csv").exists()
    assert not list((wd / "results").rglob("runs.csv"))
