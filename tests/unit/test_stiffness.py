"""Jacobians, spectra and penalties (nnrds.dynamics) and the stiffness study (nnrds.studies.stiffness)."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds.dynamics import jacobian, penalties, spectrum
from nnrds.models import Arch, ReplicaNet
from nnrds.train import fit

torch.set_num_threads(1)


def _net(param="nonpar", act="tanh", depth=3, width=5, seeds=(0, 1), dtype=torch.float64, degree=0):
    arch = Arch(d_in=4, d_out=1, width=width, depth=depth, param=param, degree=degree, activation=act)
    return ReplicaNet(arch, list(seeds), dtype=dtype)


@pytest.mark.parametrize("act", ["tanh", "softplus", "relu"])
@pytest.mark.parametrize("param,degree", [("nonpar", 0), ("legendre", 2)])
def test_jacobian_matches_autograd(act, param, degree):
    torch.manual_seed(0)
    net = _net(param=param, act=act, degree=degree)
    with torch.no_grad():  # non-zero biases, so the test sees b(t)
        net.c.normal_()
    u = torch.randn(6, 4, dtype=torch.float64)
    J = jacobian.layer_jacobians(net, u)
    R, L, N, w = net.n_replicas, net.arch.depth, u.shape[0], net.arch.width
    assert J.shape == (R, L, N, w, w)
    W, b = net.layer_weights()
    xs = net.trajectory(u)
    sigma = {"tanh": torch.tanh, "relu": torch.relu, "softplus": torch.nn.functional.softplus}[act]
    for r in range(R):
        for n in range(L):
            f = lambda x: sigma(W[r, n] @ x + b[r, n])  # noqa: E731
            for i in range(N):
                ref = torch.func.jacrev(f)(xs[n][r, i].detach())
                torch.testing.assert_close(J[r, n, i], ref.detach(), rtol=1e-10, atol=1e-12)


def test_metrics_on_known_spectrum():
    h = 0.25
    lam = torch.tensor([[-1.0, -4.0, 2.0], [-0.5, -8.0, -1.0], [1.0, 2.0, 3.0]], dtype=torch.complex128)
    m = spectrum.spectrum_metrics(lam, h)
    torch.testing.assert_close(m["stiffness_ratio"][:2], torch.tensor([4.0, 16.0], dtype=torch.float64))
    assert math.isnan(m["stiffness_ratio"][2])  # no eigenvalue with negative real part
    torch.testing.assert_close(m["spectral_radius"], torch.tensor([4.0, 8.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(m["euler_index"], h * m["spectral_radius"])
    # |1 + h lam|: row 0 max(0.75, 0, 1.5) ; row 1 max(0.875, 1, 0.75) ; row 2: 1.75
    torch.testing.assert_close(m["euler_amp"], torch.tensor([1.5, 1.0, 1.75], dtype=torch.float64))
    assert m["euler_stable"].tolist() == [0.0, 1.0, 0.0]
    # complex pair: |1 + h(-2 +- 2i)| = |0.5 +- 0.5i|
    m = spectrum.spectrum_metrics(torch.tensor([[-2 + 2j, -2 - 2j]], dtype=torch.complex128), h)
    assert m["stiffness_ratio"].item() == pytest.approx(1.0)
    assert m["euler_amp"].item() == pytest.approx(math.sqrt(0.5))
    assert m["spectral_radius"].item() == pytest.approx(math.sqrt(8))


def test_diagonal_weights_give_hand_computed_metrics():
    """W(t) = diag(d), b = 0, x_0 = 0: sigma'(0) = 1 for tanh, so J = diag(d) at every layer."""
    net = _net(depth=2, width=3, seeds=(0,))
    d = torch.tensor([-1.0, -10.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        net.C.copy_(torch.diag(d).expand(1, 2, 3, 3))
        net.c.zero_()
        net.A_in.zero_()
    u = torch.zeros(4, 4, dtype=torch.float64)
    agg, lam = spectrum.measure(net, u)
    assert lam.shape == (1, 2, 4, 3)
    h = net.arch.h  # 0.5
    assert agg[("stiffness_ratio", "median", "max")].item() == pytest.approx(10.0)
    assert agg[("spectral_radius", "p90", "mean")].item() == pytest.approx(10.0)
    assert agg[("euler_index", "median", "max")].item() == pytest.approx(10 * h)
    assert agg[("euler_amp", "median", "max")].item() == pytest.approx(abs(1 - 10 * h))  # 4 -> unstable
    assert agg[("euler_stable", "median", "mean")].item() == 0.0


def test_aggregate_median_p90_max_mean_and_nan():
    m = torch.tensor([[[1.0, 2.0, 3.0, float("nan")], [10.0, 20.0, 30.0, 40.0]]])  # (R=1, L=2, N=4)
    a = spectrum.aggregate(m)
    assert a[("median", "max")].item() == pytest.approx(25.0)
    assert a[("median", "mean")].item() == pytest.approx((2.0 + 25.0) / 2)
    assert a[("p90", "max")].item() == pytest.approx(np.quantile([10, 20, 30, 40], 0.9))
    a = spectrum.aggregate(torch.full((1, 2, 3), float("nan")))
    assert math.isnan(a[("median", "max")].item()) and math.isnan(a[("median", "mean")].item())


def test_power_iteration_matches_svd():
    torch.manual_seed(1)
    net = _net(width=6)
    u = torch.randn(5, 4, dtype=torch.float64)
    est = penalties.spectral_norm_estimate(net, u, iters=200)
    ref = torch.linalg.matrix_norm(jacobian.layer_jacobians(net, u), ord=2)
    torch.testing.assert_close(est, ref.detach(), rtol=1e-6, atol=1e-8)
    assert (penalties.spectral_norm_estimate(net, u, iters=3) <= ref + 1e-9).all()  # lower bound at any iters
    fro = penalties.frobenius_penalty(net, u)
    sn = penalties.spectral_penalty(net, u, iters=200)
    assert (sn <= fro + 1e-12).all()


@pytest.mark.parametrize("kind", ["spectral_norm", "frobenius"])
def test_penalty_gradient_finite_and_reduces_metric(kind):
    torch.manual_seed(0)
    arch = Arch(d_in=4, d_out=1, width=8, depth=4, param="nonpar", T=2.0)
    X = torch.randn(32, 4)
    Y = torch.sin(X.sum(1, keepdim=True))
    net = ReplicaNet(arch, [0, 0])  # identical replicas; replica 1 is penalized
    pen = penalties.make_penalty(kind, power_iters=4)
    p = pen(net, X)
    assert p.shape == (2,)
    p.sum().backward()
    assert all(torch.isfinite(q.grad).all() for q in net.parameters() if q.grad is not None)
    assert net.C.grad.abs().sum() > 0
    net.zero_grad()
    fit(net, X, Y, epochs=40, lr=0.02, penalty=pen, penalty_weight=[0.0, 10.0])
    agg, _ = spectrum.measure(net, X)
    rho = agg[("euler_index", "median", "max")]
    assert rho[1] < 0.7 * rho[0]
    with torch.no_grad():
        assert pen(net, X)[1] < pen(net, X)[0]


def test_mlp_is_rejected():
    with pytest.raises(ValueError, match="ResNet"):
        jacobian.layer_jacobians(_net(param="mlp"), torch.zeros(2, 4, dtype=torch.float64))


TINY_STUDY = {
    "enabled": True,
    "datasets": ["tiny"],
    "parameterizations": ["nonpar"],
    "depth": 3,
    "width": 6,
    "T": 1.0,
    "activation": "tanh",
    "seeds": [0, 1, 2],
    "epochs": 12,
    "lr": 0.02,
    "batch_size": None,
    "l2_grid": [0.001, 0.1],
    "penalty_grid": [1.0, 100.0],
    "penalty": {"kind": "spectral_norm", "power_iters": 3},
    "track_every": 6,
    "track_samples": 8,
    "eig_samples": 4,
    "eig_chunk": 1000,
    "val_fraction": 0.5,
    "primary_metric": "stiffness_ratio",
    "claims": {"alpha": 0.05, "margin_rel": 0.05},
}
TINY_DATA = {"kind": "smooth_synthetic", "n_features": 5, "noise": 0.1, "n_train": 20, "n_test": 30}


def test_study_cli_train_and_summarize(tmp_path):
    """stiffness-train for two cells, then stiffness-summarize (in-process): tables, claims and caption."""
    from nnrds.cli import main
    from nnrds.studies.stiffness import replica_layout

    cells = []
    for pname, pspec in (("nonpar", {"kind": "nonpar"}), ("leg", {"kind": "legendre", "degree": 1})):
        d = tmp_path / "cells" / pname
        cfg = {
            "study": TINY_STUDY,
            "dataset": TINY_DATA,
            "parameterization": pspec,
            "seed": 0,
            "device": "cpu",
            "dtype": "float32",
            "torch_threads": 1,
            "cell": {"dataset": "tiny", "param": pname},
        }
        assert main(["stiffness-train", "--config-json", json.dumps(cfg), "--out-dir", str(d)]) == 0
        assert {p.name for p in d.iterdir()} == {
            "runs.csv",
            "metrics.csv",
            "eigenvalues.csv",
            "timings.csv",
            "provenance.json",
        }
        cells.append(d)
    args = [
        "stiffness-summarize",
        "--config-json",
        json.dumps({"scale": "smoke", "study": TINY_STUDY, "datasets": {"tiny": TINY_DATA}}),
        "--in-dir",
        *map(str, cells),
        "--out-dir",
        str(tmp_path / "sum"),
    ]
    assert main(args) == 0
    out = tmp_path / "sum"
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * len(replica_layout(TINY_STUDY)) == 2 * 3 * 5
    assert ((runs.gap - (runs.test_mse - runs.train_mse)).abs() < 1e-8).all()
    # runs of one seed share initial weights and data: identical initial stiffness across regularizers
    assert runs.groupby(["parameterization", "seed"]).euler_index_init.nunique().eq(1).all()
    met = pd.read_csv(out / "metrics.csv")
    assert sorted(met.epoch.unique()) == [0, 6, 12]
    assert {"stiffness_ratio", "spectral_radius", "euler_index", "euler_amp", "euler_stable", "test_mse"} <= set(
        met.metric
    )
    eig = pd.read_csv(out / "eigenvalues.csv")
    assert set(eig.regularizer) == {"none", "l2", "stiffness"} and set(eig.epoch) == {0, 12}
    assert eig.groupby(["parameterization", "regularizer"]).strength.nunique().eq(1).all()  # selected only
    cell = pd.read_csv(cells[0] / "eigenvalues.csv")
    assert cell.groupby("regularizer").strength.nunique().to_dict() == {"l2": 2, "none": 1, "stiffness": 2}
    assert len(eig[(eig.parameterization == "nonpar") & (eig.regularizer == "none") & (eig.epoch == 0)]) == 3 * 4 * 6
    from nnrds import verdicts as V

    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.columns) == V.CLAIM_COLUMNS and list(claims.claim_id) == ["a", "b1", "b1_test", "b2"]
    assert claims.verdict.isin(V.VERDICTS).all() and (claims.n_units == 3).all()  # 1 dataset x 3 seeds
    assert "(b2) inconclusive" in (out / "caption.rst").read_text()  # 3 units: no 90% interval
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["jobs"]) == 2
    from nnrds.commands.stiffness import SUMMARY_TABLES

    assert {f"{t}.csv" for t in SUMMARY_TABLES} <= {p.name for p in out.iterdir()}
    corr = pd.read_csv(out / "gap_correlation.csv")
    assert corr.dataset.tolist() == ["tiny"] and corr.metric.tolist() == ["stiffness_ratio"]
    panels = pd.read_csv(out / "eigenvalue_panels.csv")
    assert set(panels.parameterization) == {"nonpar"} and (panels.n_eigenvalues == 3 * 4 * 6).all()


@pytest.mark.slow
def test_rules_dry_run(tmp_path):
    """The study's rules plan at smoke scale on a tiny data set, with the Snakefile as shipped (it includes them)."""
    import yaml

    from tests.helpers.dag_helpers import copy_workflow

    wd = copy_workflow(tmp_path / "wf")
    assert 'include: "workflow/rules/stiffness.smk"' in (wd / "Snakefile").read_text()
    cfg = yaml.safe_load((wd / "config/smoke.yaml").read_text())
    cfg["data"]["sets"].setdefault("tiny", TINY_DATA)
    cfg["stiffness"] = {**{k: v for k, v in TINY_STUDY.items() if k != "datasets"}, "datasets": ["tiny"]}
    (wd / "config/stiffness_test.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/stiffness_test.yaml"],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for rule in ("stiffness_train", "stiffness_summarize", "stiffness_figures"):
        assert rule in out.stdout


# --------------------------------------------------------------------- claims on synthetic runs (known answers)
def synth_runs(
    *,
    growth=0.0,
    gap_adv=0.0,
    pen_vs_l2=0.0,
    none_vs_pen=0.0,
    noise=0.01,
    datasets=4,
    seeds=5,
    params=("p1", "p2"),
    rng_seed=0,
    param_noise=True,
):
    """A runs table with a known truth. Per (dataset, seed) unit: log10(final/initial) of every metric =
    ``growth``; gap(none) - gap(penalty) = ``gap_adv``; ln(test L2 / test penalty) = ``pen_vs_l2``;
    ln(test none / test penalty) = ``none_vs_pen``; each plus N(0, noise) per unit (and per parameterization
    when ``param_noise``). One strength per regularizer, so the selection is trivial."""
    from nnrds.studies.stiffness import RUN_COLUMNS, STIFF_METRICS

    rng = np.random.default_rng(rng_seed)
    rows = []
    for d in range(datasets):
        for s in range(seeds):
            u = rng.normal(0, noise, size=4)  # unit-level noise, shared by its parameterizations
            for p in params:
                e = rng.normal(0, noise, size=4) if param_noise else np.zeros(4)
                pen_test = 0.5 * np.exp(rng.normal(0, 0.3))
                tests = {
                    "stiffness": pen_test,
                    "l2": pen_test * np.exp(pen_vs_l2 + u[0] + e[0]),
                    "none": pen_test * np.exp(none_vs_pen + u[1] + e[1]),
                }
                gap_pen = 0.2 + rng.normal(0, 0.05)
                gaps = {"stiffness": gap_pen, "l2": gap_pen, "none": gap_pen + gap_adv + u[2] + e[2]}
                init = 10 ** rng.normal(1, 0.5)
                for reg, strength in (("none", 0.0), ("l2", 0.1), ("stiffness", 10.0)):
                    row = {
                        "dataset": f"d{d}",
                        "parameterization": p,
                        "kind": "nonpar",
                        "degree": 0,
                        "depth": 3,
                        "width": 4,
                        "n_params": 10,
                        "seed": s,
                        "regularizer": reg,
                        "strength": strength,
                        "test_mse": tests[reg],
                        "val_mse": tests[reg],
                        "gap": gaps[reg],
                        "train_mse": tests[reg] - gaps[reg],
                        "epochs": 10,
                    }
                    for m in STIFF_METRICS:
                        row[f"{m}_init"] = init
                        row[m] = init * 10 ** (growth + u[3] + e[3])
                    rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


STUDY_CLAIMS = {**TINY_STUDY, "claims": {"alpha": 0.05, "margin_rel": 0.05}}


def _claims(runs):
    from nnrds.studies import stiffness as S

    return S.claims(runs, S.select_strengths(runs), STUDY_CLAIMS).set_index("claim_id")


@pytest.mark.parametrize("growth,verdict", [(0.5, "supported"), (-0.5, "contradicted"), (0.0, "inconclusive")])
def test_claim_a_verdicts(growth, verdict):
    c = _claims(synth_runs(growth=growth, noise=0.05 if growth else 0.5))
    assert c.loc["a", "verdict"] == verdict
    if growth:
        assert c.loc["a", "ci_low"] < growth < c.loc["a", "ci_high"]


@pytest.mark.parametrize("gap_adv,verdict", [(0.1, "supported"), (-0.1, "contradicted"), (0.0, "inconclusive")])
def test_claim_b1_regularizes_verdicts(gap_adv, verdict):
    c = _claims(synth_runs(gap_adv=gap_adv, noise=0.02 if gap_adv else 0.3))
    assert c.loc["b1", "verdict"] == verdict


@pytest.mark.parametrize("none_vs_pen,verdict", [(0.3, "supported"), (-0.3, "contradicted"), (0.0, "inconclusive")])
def test_claim_b1_test_mse_verdicts(none_vs_pen, verdict):
    c = _claims(synth_runs(none_vs_pen=none_vs_pen, noise=0.05 if none_vs_pen else 0.5))
    assert c.loc["b1_test", "verdict"] == verdict


def test_claim_b2_is_a_non_superiority_test_with_a_margin():
    """'No better than L2': supported only when a >= 5% advantage of the penalty is excluded."""
    tight = _claims(synth_runs(pen_vs_l2=0.0, noise=0.005))  # penalty = L2 within ~1%
    assert tight.loc["b2", "verdict"] == "supported"
    assert tight.loc["b2", "margin"] == pytest.approx(np.log(1.05))
    # its interval is taken at its Holm step-down level, 1 - 2 alpha_j (here the smallest p of four: alpha/4)
    from nnrds import verdicts as V

    _, a = V.holm_alphas(tight.p_value.to_numpy(), 0.05)
    assert tight.loc["b2", "ci_level"] == pytest.approx(1 - 2 * a[3]) == pytest.approx(1 - 2 * 0.05 / 4)
    assert tight.loc["b2", "ci_high"] < np.log(1.05)
    better = _claims(synth_runs(pen_vs_l2=0.3, noise=0.02))  # penalty 35% better than L2
    assert better.loc["b2", "verdict"] == "contradicted"
    # noisy data and no true difference: the old code called this "held" (Wilcoxon not significant)
    noisy = _claims(synth_runs(pen_vs_l2=0.0, noise=0.5))
    assert noisy.loc["b2", "verdict"] == "inconclusive"
    assert noisy.loc["b2", "p_value"] > 0.05


def test_claim_b2_advantage_inside_the_margin_is_inconclusive_not_contradicted():
    """An interval above 0 that reaches below the margin shows a benefit but not one above the margin: the old rule
    (ci_low > 0) called this contradicted; the corrected one needs ci_low > margin."""
    c = _claims(synth_runs(pen_vs_l2=0.06, noise=0.03, rng_seed=0))
    r = c.loc["b2"]
    assert 0 < r.ci_low < r.margin < r.ci_high
    assert r.verdict == "inconclusive" and 20 < r.n_units_to_decide < np.inf and r.design_note == ""


def test_claims_take_each_interval_at_its_holm_step_down_level():
    """Known answer: b1's unit effects give a 95% Hodges-Lehmann interval above 0, but b1 is not rejected after
    Holm over the four claims, so its interval is taken at the Bonferroni level 1 - alpha/4 and reaches below 0:
    inconclusive (the old code decided on the unadjusted 95% interval: supported). Every level is Holm's."""
    from nnrds import verdicts as V
    from nnrds.studies import stiffness as S

    runs = synth_runs(growth=1.0, gap_adv=0.08, none_vs_pen=0.5, noise=0.1, rng_seed=3)
    sel = S.select_strengths(runs)
    c = S.claims(runs, sel, STUDY_CLAIMS).set_index("claim_id")
    v = S.paired_advantage(runs, sel, "stiffness", "none", "gap").to_numpy()
    assert V.hodges_lehmann_ci(v, 0.95)[1] > 0
    assert c.loc["b1", "ci_level"] == pytest.approx(1 - 0.05 / 4) and c.loc["b1", "p_adjusted"] > 0.05
    assert c.loc["b1", "ci_low"] < 0 and c.loc["b1", "verdict"] == "inconclusive"
    assert (c.loc["b1", "ci_low"], c.loc["b1", "ci_high"]) == pytest.approx(V.hodges_lehmann_ci(v, 1 - 0.05 / 4)[1:])
    p_adj, a = V.holm_alphas(c.p_value.to_numpy(), 0.05)
    np.testing.assert_allclose(c.p_adjusted, p_adj)
    np.testing.assert_allclose(c.ci_level, [1 - a[0], 1 - a[1], 1 - a[2], 1 - 2 * a[3]])
    assert c.loc["a", "verdict"] == c.loc["b1_test", "verdict"] == "supported"
    assert (c.n_units_to_decide.loc[["a", "b1_test"]] == 20).all() and c.loc["b1", "n_units_to_decide"] > 20


def test_too_few_units_for_the_level_is_a_design_note():
    """3 units cannot give a Wilcoxon interval at any level used here: each claim says how many would."""
    c = _claims(synth_runs(growth=1.0, pen_vs_l2=0.0, noise=0.001, datasets=1, seeds=3))
    assert (c.n_units_to_decide == np.inf).all()
    assert c.loc["a", "design_note"].startswith("cannot decide at this design: a Wilcoxon interval at ")
    assert (
        "needs at least 8 units, this scale runs 3" in c.loc["a", "design_note"]
    )  # 98.75%: 2^(1-n) <= 0.0125 needs n >= 8
    assert "8 seeds on each of the 1 datasets" in c.loc["a", "design_note"]


def test_claims_unit_is_dataset_seed_not_run():
    """Two parameterizations of one (dataset, seed) share the data split: duplicating a parameterization must
    not narrow the interval (pseudo-replication), and n_units counts (dataset, seed) pairs."""
    runs = synth_runs(growth=0.2, noise=0.3, params=("p1",))
    one = _claims(runs)
    two = _claims(pd.concat([runs, runs.assign(parameterization="p1_copy")], ignore_index=True))
    assert (one.n_units == 4 * 5).all() and (two.n_units == 4 * 5).all()
    for cid in ("a", "b1", "b1_test", "b2"):
        assert two.loc[cid, "ci_high"] - two.loc[cid, "ci_low"] == pytest.approx(
            one.loc[cid, "ci_high"] - one.loc[cid, "ci_low"], rel=1e-9
        )


def test_claims_table_columns_and_holm():
    from nnrds import verdicts as V
    from nnrds.studies import stiffness as S

    runs = synth_runs(growth=0.5, noise=0.05)
    c = S.claims(runs, S.select_strengths(runs), STUDY_CLAIMS)
    assert list(c.columns) == V.CLAIM_COLUMNS
    assert set(c.claim_id) == {"a", "b1", "b1_test", "b2"} and (c.study == "stiffness").all()
    np.testing.assert_allclose(c.p_adjusted, V.holm(c.p_value))
    assert c.verdict.isin(V.VERDICTS).all() and c.figure.str.startswith("figures/stiffness/").all()


def test_too_few_units_is_inconclusive():
    c = _claims(synth_runs(growth=1.0, pen_vs_l2=0.0, noise=0.001, datasets=1, seeds=3))
    assert (c.verdict == "inconclusive").all()  # 3 units cannot give a 95% interval, however clear the data


def test_gap_correlation_per_dataset_known_answers():
    from nnrds.studies import stiffness as S

    n = 6
    runs = pd.DataFrame(
        {
            "dataset": ["a"] * n + ["b"] * n,
            "stiffness_ratio": [1, 2, 3, 4, 5, np.nan] + [1, 2, 3, 4, 5, 6],
            "gap": [0.1, 0.2, 0.3, 0.4, 0.5, 9.0] + [6, 5, 4, 3, 2, 1],
        }
    )
    c = S.gap_correlation(runs, "stiffness_ratio")
    assert list(c.columns) == S.GAP_CORRELATION_COLUMNS and c.dataset.tolist() == ["a", "b"]
    assert c.n_runs.tolist() == [5, 6]  # the NaN ratio (no eigenvalue with Re < 0) is left out
    assert c.spearman_rho.tolist() == pytest.approx([1.0, -1.0])
    assert (c.p_value < 0.05).all()


def test_eigenvalue_panels_max_abs_and_euler_disc():
    from nnrds.studies import stiffness as S

    h = 0.5  # disc |1 + h lam| <= 1: centre -2, radius 2
    lam = [(-1.0, 0.0), (-4.0, 0.0), (0.0, 3.0), (-5.0, 0.0)]  # inside, on the edge, outside, outside
    e = pd.DataFrame(
        [
            {
                "dataset": "d",
                "parameterization": p,
                "seed": 0,
                "regularizer": "none",
                "strength": 0.0,
                "epoch": 10,
                "h": h,
                "layer": 0,
                "sample": i,
                "re": re,
                "im": im,
            }
            for p in ("nonpar", "legendre3")
            for i, (re, im) in enumerate(lam)
        ]
    )
    t = S.eigenvalue_panels(e, "legendre3")
    assert list(t.columns) == S.EIGEN_PANEL_COLUMNS and len(t) == 1
    r = t.iloc[0]
    assert r.parameterization == "legendre3" and r.n_eigenvalues == 4
    assert r.max_abs == pytest.approx(5.0) and r.frac_in_euler_disc == pytest.approx(0.5)


def test_superiority_row_and_holm_claims_known_answers():
    from nnrds.studies import stiffness as st

    rng = np.random.default_rng(0)
    up, down, flat = rng.normal(1.0, 0.2, 12), rng.normal(-1.0, 0.2, 12), rng.normal(0.0, 1.0, 12)
    rows = [st.superiority_row(cid, "c", "e", v, 0.95) for cid, v in (("a", up), ("b1", down), ("b1_test", flat))]
    assert [r["verdict"] for r in rows] == ["supported", "contradicted", "inconclusive"]
    # two-sided p-values (the dual of the two-sided interval): small for both clear directions
    assert rows[0]["n_units"] == 12 and max(rows[0]["p_value"], rows[1]["p_value"]) < 0.01 < rows[2]["p_value"]
    t = st.holm_claims(rows, "what was run")
    assert list(t.claim_id) == ["a", "b1", "b1_test"] and (t.p_adjusted >= t.p_value).all()
    assert t.p_adjusted.iloc[0] == pytest.approx(min(1.0, 3 * rows[0]["p_value"]))
    assert (t.study == "stiffness").all() and t.margin.isna().all() and (t.what_was_run == "what was run").all()


def test_caption_pieces():
    from types import SimpleNamespace

    from nnrds.studies import stiffness as st

    base = dict(claim="C.", effect=0.5, ci_low=0.1, ci_high=0.9, ci_level=0.95, n_units=6, p_value=0.01)
    lines = {
        cid: st.claim_line(SimpleNamespace(claim_id=cid, verdict="supported", p_adjusted=0.04, margin=0.05, **base))
        for cid in ("a", "b1", "b1_test", "b2")
    }
    assert all(v.startswith(f"* **({k}) supported**: C. ") for k, v in lines.items())
    assert "Median log10(final/initial) = +0.5" in lines["a"] and "Gap reduction" in lines["b1"]
    assert "Holm" in lines["b1_test"] and "margin +0.05" in lines["b2"] and "against the margin" in lines["b2"]
    assert "Holm 0.04" in lines["b2"] and "Inconclusive" not in lines["b2"]
    # an inconclusive claim says what would decide it
    open_ = SimpleNamespace(
        claim_id="b1",
        verdict="inconclusive",
        p_adjusted=0.2,
        margin=0.05,
        n_units_to_decide=23.0,
        design_note="",
        **{**base, "ci_low": -0.1},
    )
    assert "Inconclusive: would decide at about 23 units" in st.claim_line(open_)
