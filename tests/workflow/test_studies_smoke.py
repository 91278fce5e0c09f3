"""The studies in the shared smoke-scale run of the whole DAG (fixture ``smoke_run``, tests/conftest.py): tables
with the expected layout, claims with CLAIM_COLUMNS, figures, logs and benchmark files. Moved here from the studies'
unit tests, which must not need the DAG."""

import pandas as pd
import pytest


@pytest.mark.slow
def test_smoke_dag_builds_continuous_depth(smoke_run):
    """continuous_depth in the shared smoke-scale run of the whole DAG: tables with the expected layout, claims with
    CLAIM_COLUMNS, figures, progress logs and benchmark files (its determinism is checked with every other table by
    tests/workflow/test_dag.py::test_kill_and_rerun_completes_with_same_results)."""
    import json

    wd = smoke_run  # the shared smoke-scale run of the whole DAG (tests/conftest.py)
    figs = [f"figures/continuous_depth/{f}.png" for f in ("error_vs_h", "order_test", "wp_depth_convergence")]
    res = wd / "results/continuous_depth"
    claims = pd.read_csv(res / "claims.csv")
    assert all((wd / f).is_file() for f in claims.figure)  # columns and verdicts: validated by the ledger rule
    assert {"euler_order:pendulum", "rk4_order:harmonic", "depth_refinement:smooth10:legendre3"} <= set(claims.claim_id)
    conv = pd.read_csv(res / "convergence.csv")
    assert set(conv.scheme) == {"euler", "midpoint", "rk4"} and set(conv.seed) == {0, 1, 2}
    assert len(pd.read_csv(res / "models.csv")) == 3 * 2 * 2 * 3  # schemes x systems x dt's x seeds
    wpr = pd.read_csv(res / "wp_runs.csv")
    assert set(wpr.variant) == {"legendre3", "nonpar/constant", "nonpar/linear"} and set(wpr.depth_eval) == {
        2,
        4,
        8,
        16,
    }
    for f in figs:
        assert (wd / f).stat().st_size > 1000 and (wd / f).with_suffix(".pdf").exists()
    prov = json.loads((res / "provenance.json").read_text())
    assert prov["config"]["scale"] == "smoke" and len(prov["jobs"]) == 5
    assert "INFO nnrds.train" in (res / "logs/oscillator_rk4.log").read_text()
    assert len(list((res / "benchmarks").glob("*.tsv"))) == 5
    from tests.helpers.captions import rst_problems

    assert rst_problems((res / "caption.rst").read_text()) == []


@pytest.mark.slow
def test_smoke_dag_builds_pinn_failure(smoke_run):
    """pinn_failure in the shared smoke-scale run of the whole DAG (tests/conftest.py)."""
    wd = smoke_run
    cl = pd.read_csv(wd / "results/pinn_failure/claims.csv")
    assert all((wd / f).is_file() for f in cl.figure)  # columns and verdicts: validated by the ledger rule
    assert {"plain_fails:convection", "curriculum_improves:convection", "causal_improves:convection"} <= set(
        cl.claim_id
    )
    cr = pd.read_csv(wd / "results/pinn_failure/causal_rounds.csv")
    assert len(cr) == 4 and set(cr.problem) == {"convection"}  # 2 betas x 2 seeds
    for f in pf_figs():
        assert (wd / f"figures/pinn_failure/{f}.png").stat().st_size > 1000


def pf_figs():
    return ["error_vs_coefficient", "heatmaps", "loss_curves", "landscapes"]
