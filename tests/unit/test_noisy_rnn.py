"""Noisy-RNN study: A/W structure and eigenvalue bounds, noise switch, determinism, perturbation
statistics, replica independence, and a tiny end-to-end cell + summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nnrds import config as cfgmod
from nnrds import rnn
from nnrds.data import sequences
from nnrds.experiment import Cell
from nnrds.studies import noisy_rnn as nr
from nnrds.train import fit

T, D_IN, D_OUT = 12, 2, 3


def arch(kind="lipschitz", **kw):
    base = dict(
        kind=kind,
        d_in=D_IN,
        d_out=D_OUT,
        seq_len=T,
        hidden=16,
        eps=0.1,
        beta=0.75,
        gamma_A=1e-3,
        gamma_W=1e-3,
        init_std=4.0,
    )
    base.update(kw)
    return rnn.RNNArch(**base)


def inputs(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, T * D_IN, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------- A / W structure
@pytest.mark.parametrize("beta,gamma", [(0.75, 1e-3), (0.5, 0.2), (0.0, 0.05), (1.0, 0.1)])
def test_structure_and_eigenvalue_bounds(beta, gamma):
    """A = (1-β)(M+Mᵀ) + β(M-Mᵀ) - γI: symmetric part (1-β)(M+Mᵀ) - γI, antisymmetric part β(M-Mᵀ), and
    every eigenvalue has (1-β)λ_min(M+Mᵀ) - γ ≤ Re λ ≤ (1-β)λ_max(M+Mᵀ) - γ (Re λ = -γ when β = 1)."""
    net = rnn.ContinuousRNN(arch(beta=beta, gamma_A=gamma, gamma_W=2 * gamma), seeds=[0, 1], dtype=torch.float64)
    A, W = net.matrices()
    for M, mat, g in ((net.M_A, A, gamma), (net.M_W, W, 2 * gamma)):
        for r in range(2):
            Mr, Xr = M[r].detach(), mat[r].detach()
            I = torch.eye(Mr.shape[0], dtype=Mr.dtype)
            S = Mr + Mr.T
            torch.testing.assert_close((Xr + Xr.T) / 2, (1 - beta) * S - g * I)
            torch.testing.assert_close((Xr - Xr.T) / 2, beta * (Mr - Mr.T))
            re = torch.linalg.eigvals(Xr).real
            ev = torch.linalg.eigvalsh(S)
            tol = 1e-9
            assert re.max() <= (1 - beta) * ev.max() - g + tol
            assert re.min() >= (1 - beta) * ev.min() - g - tol
            if beta == 1.0:
                torch.testing.assert_close(re, torch.full_like(re, -g))


def test_antisymmetric_kind_has_no_A_and_skew_W():
    net = rnn.ContinuousRNN(arch("antisymmetric", beta=0.3, gamma_W=0.01), seeds=[3], dtype=torch.float64)
    A, W = net.matrices()
    assert A is None and not hasattr(net, "M_A")
    Wr = W[0].detach()
    torch.testing.assert_close(Wr + Wr.T, -2 * 0.01 * torch.eye(16, dtype=torch.float64))
    assert net.arch.n_params() == sum(p[0].numel() for p in net.parameters())


@pytest.mark.parametrize("kind", rnn.KINDS)
def test_n_params_matches_parameters(kind):
    net = rnn.build(arch(kind), seeds=[0, 1])
    assert net.arch.n_params() == sum(p[0].numel() for p in net.parameters())


# --------------------------------------------------------------------------- noise switch
def test_noise_off_equals_lipschitz_exactly():
    x = inputs()
    lip = rnn.ContinuousRNN(arch("lipschitz"), seeds=[5, 6], dtype=torch.float64)
    noisy = rnn.ContinuousRNN(arch("noisy"), seeds=[5, 6], sigma_add=0.0, sigma_mult=0.0, dtype=torch.float64)
    for m in (lip, noisy):
        m.train()
    assert torch.equal(lip(x), noisy(x))
    # training with zero noise follows the Lipschitz trajectory bit for bit
    y = torch.randint(0, D_OUT, (10, 1), generator=torch.Generator().manual_seed(1))
    for m in (lip, noisy):
        fit(m, x, y, epochs=3, lr=1e-2, batch_size=4, loss_fn=rnn.cross_entropy_per_replica)
    for (n1, p1), (n2, p2) in zip(lip.named_parameters(), noisy.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_noise_only_in_training_and_eval_deterministic():
    x = inputs()
    lip = rnn.ContinuousRNN(arch("lipschitz"), seeds=[5], dtype=torch.float64).eval()
    noisy = rnn.ContinuousRNN(arch("noisy"), seeds=[5], sigma_add=0.3, sigma_mult=0.3, dtype=torch.float64)
    noisy.eval()
    e1, e2 = noisy(x), noisy(x)
    assert torch.equal(e1, e2) and torch.equal(e1, lip(x))  # eval = deterministic = Lipschitz drift
    noisy.train()
    t1, t2 = noisy(x), noisy(x)
    assert not torch.allclose(t1, e1) and not torch.allclose(t1, t2)  # fresh noise every training forward


def test_training_noise_reproducible():
    x = inputs()
    a = rnn.ContinuousRNN(arch("noisy"), seeds=[1, 2], sigma_add=0.2, sigma_mult=[0.0, 0.1], dtype=torch.float64)
    b = rnn.ContinuousRNN(arch("noisy"), seeds=[1, 2], sigma_add=0.2, sigma_mult=[0.0, 0.1], dtype=torch.float64)
    assert torch.equal(a(x), b(x)) and torch.equal(a(x), b(x))


def test_euler_maruyama_increment_variance():
    """One step from h_0 = 0 with σ₂ = 0: h_1 = ε tanh(Ux+b) + ε_n √ε σ₁ ξ, so Var = ε_n² ε σ₁²."""
    a = arch("noisy", eps=0.04, eps_noise=2.0, hidden=64)
    a = rnn.RNNArch(**{**a.to_dict(), "seq_len": 1})
    net = rnn.ContinuousRNN(a, seeds=[0], sigma_add=0.5, dtype=torch.float64)
    x = torch.zeros(4000, D_IN, dtype=torch.float64)
    with torch.no_grad():
        net.train()
        h_noisy = net.hidden_states(x)
        net.eval()
        h_det = net.hidden_states(x)
    var = (h_noisy - h_det).var().item()
    expected = (2.0 * 0.04**0.5 * 0.5) ** 2
    assert abs(var / expected - 1) < 0.03


# ----------------------------------------------------------------------- replica independence
@pytest.mark.parametrize("kind", rnn.KINDS)
def test_replica_independence(kind):
    """A replica's init, output and training-noise draw do not depend on the other replicas in the batch."""
    x = inputs()
    kw = dict(sigma_add=[0.1, 0.2, 0.3], sigma_mult=[0.05, 0.0, 0.1]) if kind == "noisy" else {}
    big = rnn.build(arch(kind), seeds=[7, 8, 9], dtype=torch.float64, **kw)
    kw1 = dict(sigma_add=0.2, sigma_mult=0.0) if kind == "noisy" else {}
    one = rnn.build(arch(kind), seeds=[8], dtype=torch.float64, **kw1)
    for m in (big, one):
        m.train()
    torch.testing.assert_close(big(x)[1], one(x)[0], rtol=1e-12, atol=1e-12)
    # per-replica inputs: replica 1's output ignores replica 0's and 2's inputs
    xr = torch.stack([inputs(seed=1), x, inputs(seed=2)])
    big.eval(), one.eval()
    torch.testing.assert_close(big(xr)[1], one(x)[0], rtol=1e-12, atol=1e-12)


def test_lstm_matches_torch_lstm():
    net = rnn.ReplicaLSTM(arch("lstm"), seeds=[0, 1], dtype=torch.float64)
    ref = torch.nn.LSTM(D_IN, 16, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(net.W_ih[1])
        ref.weight_hh_l0.copy_(net.W_hh[1])
        ref.bias_ih_l0.copy_(net.b[1])
        ref.bias_hh_l0.zero_()
    x = inputs()
    out, _ = ref(x.reshape(10, T, D_IN))
    torch.testing.assert_close(net.hidden_states(x)[1], out[:, -1])


# --------------------------------------------------------------------------- perturbations
def test_perturbation_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 500, dtype=torch.float64, generator=g) + 0.5  # values in [0.5, 1.5]
    sigma, p = 0.3, 0.15
    d = nr.additive_noise(x, sigma, g) - x
    assert abs(d.mean().item()) < 3 * sigma / 400 and abs(d.var().item() / sigma**2 - 1) < 0.02
    f = nr.multiplicative_noise(x, sigma, g) / x
    assert abs(f.mean().item() - 1) < 3 * sigma / 400 and abs(f.var().item() / sigma**2 - 1) < 0.02
    sp = nr.salt_and_pepper(x, p, g, lo=-1.0, hi=2.0)
    changed = sp != x
    assert abs(changed.double().mean().item() - p) < 0.005
    assert torch.all((sp[changed] == -1.0) | (sp[changed] == 2.0))
    assert abs((sp[changed] == 2.0).double().mean().item() - 0.5) < 0.02
    assert torch.equal(nr.perturb("gaussian", x, 0.0, g, None), x)


def test_fgsm_moves_each_value_by_eps_and_raises_loss():
    torch.manual_seed(0)
    net = rnn.ContinuousRNN(arch("lipschitz"), seeds=[0, 1], dtype=torch.float64).eval()
    x = inputs(40)
    y = torch.randint(0, D_OUT, (40, 1))
    xa = nr.fgsm(net, x, y, 0.05)
    assert xa.shape == (2, 40, T * D_IN)
    assert torch.allclose((xa - x).abs(), torch.full_like(xa, 0.05))
    with torch.no_grad():
        assert torch.all(
            rnn.cross_entropy_per_replica(net, xa, y.unsqueeze(0).expand(2, 40, 1))
            > rnn.cross_entropy_per_replica(net, x, y)
        )


# ------------------------------------------------------------------------------ end to end
def small_study(**over):
    frag = yaml.safe_load((cfgmod.SCHEMA_PATH.parent / "studies" / "noisy_rnn.schema.yaml").read_text())
    cfg = cfgmod.validate({}, schema={"type": "object", **frag})  # this study's defaults only
    data = {"mirror": str(cfgmod.REPO_ROOT / ".." / "shared" / "data")}
    study = cfgmod.deep_merge(
        cfg["noisy_rnn"],
        dict(
            hidden=8,
            epochs=1,
            seeds=[0, 1],
            max_train=60,
            max_test=40,
            batch_size=30,
            noise_levels=[{"add": 0.1, "mult": 0.0}],
            perturbations={
                "gaussian": [0.0, 0.2],
                "multiplicative": [0.0, 0.5],
                "salt_pepper": [0.0, 0.1],
                "fgsm": [0.0, 0.05],
            },
        ),
    )
    return cfgmod.deep_merge(study, over), data


def test_datasets_split_stratified():
    study, data = small_study(max_train=None, max_test=None)
    d = sequences.load_dataset("digits", study, data)
    assert d.X_train.shape[1] == 64 and d.seq_len == 64 and d.n_classes == 10
    assert len(d.y_train) + len(d.y_test) == 1797
    ratio = np.bincount(d.y_test) / np.bincount(np.concatenate([d.y_train, d.y_test]))
    assert np.all(np.abs(ratio - 0.3) < 0.02)
    p = sequences.load_dataset("digits_permuted", study, data)
    assert np.allclose(np.sort(p.X_train, 1), np.sort(d.X_train, 1)) and not np.allclose(p.X_train, d.X_train)
    if sequences.ecg_path(study, data).exists():
        e = sequences.load_dataset("ecg5000", study, data)
        assert e.seq_len == 140 and e.n_classes == 5 and len(e.y_train) + len(e.y_test) == 500
        assert set(np.unique(e.y_train)) == set(range(5))
        counts = np.bincount(e.y_test, minlength=5)  # classes have 292/177/10/19/2 sequences in the mirror
        assert abs(counts[0] - 0.3 * 292) <= 1 and abs(counts[1] - 0.3 * 177) <= 1


def test_cell_and_summary_tables(tmp_path):
    study, data = small_study()
    runs = []
    for model in ("lipschitz", "noisy"):
        out = nr.run_cell(Cell({"dataset": "digits", "model": model}, study, device="cpu", data=data))
        r, tim = out["runs"], out["timings"]
        runs.append(r)
        assert list(r.columns) == nr.RUN_COLUMNS and len(tim) == 1
    again = nr.run_cell(Cell({"dataset": "digits", "model": "noisy"}, study, device="cpu", data=data))["runs"]
    pd.testing.assert_frame_equal(runs[1], again)  # reproducible, training noise included
    runs = pd.concat(runs, ignore_index=True)
    assert len(runs) == 2 * 2 * 4 * 2
    clean = runs[runs.strength == 0]
    assert np.allclose(clean.accuracy, clean.clean_accuracy)
    s = nr.summarize(runs)
    assert {"accuracy_mean", "accuracy_std", "clean_accuracy_mean", "n_params"} <= set(s.columns)
    comp = nr.compare(runs, study)
    assert len(comp) == 4
    claims = nr.claims(runs, comp, study)
    assert claims.claim_id.iloc[0] == "robust" and len(claims) == 5
    text = nr.caption(runs, comp, claims, "smoke", study)
    assert "noisy_add0.1_mult0 vs lipschitz" in text and "Overall" in text and "Holm" in text


# ------------------------------------------------------------ robustness verdicts on synthetic runs (known answers)
def synth_runs(
    *,
    clean_l=0.9,
    clean_n=0.9,
    drop_l=0.3,
    drop_n=0.3,
    noise=0.01,
    seeds=8,
    rng_seed=0,
    variants=((0.1, 0.0),),
    perts=("gaussian", "fgsm"),
    datasets=("digits",),
):
    """Runs with a known truth: per seed, clean accuracy clean_x + N(0, noise), perturbed accuracy (every
    strength > 0) clean − drop_x + N(0, noise)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    models = [("lipschitz", 0.0, 0.0, clean_l, drop_l)] + [("noisy", a, m, clean_n, drop_n) for a, m in variants]
    for ds in datasets:
        for model, a, m, clean, drop in models:
            for s in range(seeds):
                c = clean + rng.normal(0, noise)
                for pert in perts:
                    for strength in (0.0, 0.1, 0.2):
                        acc = c if strength == 0 else c - drop + rng.normal(0, noise)
                        rows.append(
                            {
                                "dataset": ds,
                                "split": "stratified",
                                "model": model,
                                "variant": nr.variant_name(model, a, m),
                                "noise_add": a,
                                "noise_mult": m,
                                "perturbation": pert,
                                "strength": strength,
                                "seed": s,
                                "accuracy": acc,
                                "clean_accuracy": c,
                                "train_accuracy": 1.0,
                                "chance_accuracy": 0.1,
                                "n_params": 10,
                                "epochs": 1,
                            }
                        )
    return pd.DataFrame(rows, columns=nr.RUN_COLUMNS)


STUDY = {"equal_clean_tol": 0.02, "claims": {"alpha": 0.05}, "epochs": 1}


def _verdicts(runs):
    comp = nr.compare(runs, STUDY)
    return comp, nr.claims(runs, comp, STUDY).set_index("claim_id")


def test_robustness_supported_when_drop_is_smaller_at_equal_clean_accuracy():
    comp, c = _verdicts(synth_runs(drop_l=0.3, drop_n=0.15))
    assert comp.clean_matched.all() and (comp.verdict == "supported").all()
    assert c.loc["robust", "verdict"] == "supported"
    assert c.loc["robust", "ci_low"] < 0.15 < c.loc["robust", "ci_high"]


def test_robustness_contradicted_when_noisy_loses_more():
    comp, c = _verdicts(synth_runs(drop_l=0.15, drop_n=0.3))
    assert (comp.verdict == "contradicted").all() and c.loc["robust", "verdict"] == "contradicted"


def test_robustness_inconclusive_on_noise():
    comp, c = _verdicts(
        synth_runs(drop_l=0.2, drop_n=0.2, noise=0.003, rng_seed=3).assign(
            accuracy=lambda d: d.accuracy + np.where(d.strength > 0, np.random.default_rng(1).normal(0, 0.2, len(d)), 0)
        )
    )
    assert (comp.verdict == "inconclusive").all() and c.loc["robust", "verdict"] == "inconclusive"


def test_clean_accuracy_lead_is_not_robustness():
    """The noisy RNN is 10 points better when clean and loses exactly as much: the old absolute score called it
    'more robust'; the drop gives no advantage, and the clean accuracies are not matched -> inconclusive."""
    comp, c = _verdicts(synth_runs(clean_l=0.8, clean_n=0.9, drop_l=0.3, drop_n=0.3))
    assert (~comp.clean_matched).all()
    assert (comp.advantage_mean.abs() < 0.02).all() and (comp.verdict == "inconclusive").all()
    assert c.loc["robust", "verdict"] == "inconclusive" and c.loc["robust", "n_units"] == 0


def test_unmatched_clean_accuracy_is_never_supported():
    comp, _ = _verdicts(synth_runs(clean_l=0.85, clean_n=0.9, drop_l=0.3, drop_n=0.1))
    assert (comp.p_holm < 0.05).all() and (comp.verdict == "inconclusive").all()


def test_holm_over_the_comparison_family():
    """Many comparisons with one modest true effect: the unadjusted p would pass, Holm's does not."""
    runs = synth_runs(
        drop_l=0.2,
        drop_n=0.2,
        noise=0.02,
        seeds=5,
        perts=("gaussian", "multiplicative", "fgsm"),
        variants=((0.1, 0.0), (0.3, 0.0), (0.3, 0.3)),
        datasets=("digits", "ecg5000"),
    )
    sel = (
        (runs.model == "noisy")
        & (runs.perturbation == "gaussian")
        & (runs.dataset == "digits")
        & (runs.noise_add == 0.1)
        & (runs.strength > 0)
    )
    runs.loc[sel, "accuracy"] += 0.025  # a small advantage in one of 18 comparisons
    comp, c = _verdicts(runs)
    assert len(comp) == 18
    from nnrds import verdicts as V

    np.testing.assert_allclose(comp.p_holm, V.holm(comp.p_value))
    assert comp.ci_level.tolist() == pytest.approx([1 - 0.05 / 18] * 18)
    row = comp[(comp.dataset == "digits") & (comp.variant == "noisy_add0.1_mult0") & (comp.perturbation == "gaussian")]
    assert row.p_value.iloc[0] < 0.05 and row.p_holm.iloc[0] >= 0.05 and row.verdict.iloc[0] == "inconclusive"
    claims = nr.claims(runs, comp, STUDY)
    assert list(claims.columns) == V.CLAIM_COLUMNS and len(claims) == 1 + 18
    assert claims.p_adjusted.iloc[1:].tolist() == pytest.approx(comp.p_holm.tolist())


@pytest.mark.parametrize(
    "adv,p,matched,verdict",
    [
        (0.1, 0.01, True, "supported"),
        (-0.1, 0.01, True, "contradicted"),
        (0.1, 0.2, True, "inconclusive"),
        (0.1, 0.01, False, "inconclusive"),
        (0.1, float("nan"), True, "inconclusive"),
    ],
)
def test_comparison_verdict(adv, p, matched, verdict):
    assert nr.comparison_verdict(adv, p, matched, 0.05) == verdict


def test_clean_vs_training_noise_curves_start_at_the_lipschitz_rnn():
    rows = []
    for model, a, m, accs in (
        ("lipschitz", 0.0, 0.0, [0.8, 0.9]),
        ("noisy", 0.1, 0.0, [0.7, 0.7]),
        ("noisy", 0.1, 0.3, [0.6, 0.5]),
        ("lstm", 0.0, 0.0, [0.1, 0.1]),
    ):
        for seed, acc in enumerate(accs):
            for strength in (0.0, 0.5):  # one row per perturbation strength: counted once
                rows.append(
                    {
                        "dataset": "d",
                        "model": model,
                        "variant": nr.variant_name(model, a, m),
                        "noise_add": a,
                        "noise_mult": m,
                        "seed": seed,
                        "strength": strength,
                        "clean_accuracy": acc,
                        "train_accuracy": 1.0,
                    }
                )
    t = nr.clean_vs_training_noise(pd.DataFrame(rows))
    assert list(t.columns) == nr.NOISE_CURVE_COLUMNS
    assert list(zip(t.noise_mult, t.noise_add)) == [(0.0, 0.0), (0.0, 0.1), (0.3, 0.0), (0.3, 0.1)]
    assert t.clean_accuracy_mean.tolist() == pytest.approx([0.85, 0.7, 0.85, 0.55])
    assert t.clean_accuracy_std.tolist() == pytest.approx(
        [np.std([0.8, 0.9], ddof=1), 0.0, np.std([0.8, 0.9], ddof=1), np.std([0.6, 0.5], ddof=1)]
    )
    assert t.n_seeds.tolist() == [2, 2, 2, 2] and (t.train_accuracy_mean == 1.0).all()


def test_train_command_reads_ecg_from_the_folder_it_is_given(tmp_path, monkeypatch):
    """noisy-rnn-train on the one convention: the cell in the config slice, ECG5000 from --in-dir (file ecg_file),
    fixed table names in --out-dir; nothing is read from the study's ecg_path or the mirror."""
    import json

    from nnrds.cli import main
    from nnrds.data import ucr

    rng = np.random.default_rng(0)
    text = "\n".join(" ".join([str(k % 3 + 1)] + [f"{v:.3f}" for v in rng.normal(size=6)]) for k in range(30))
    ucr.parse_ucr(text, "toy").to_csv(tmp_path / "train.csv", index=False)
    study, _ = small_study(max_train=None, max_test=None, ecg_path="/nonexistent/ECG.txt", seeds=[0])
    cfg = {
        "study": study,
        "data": {"mirror": None},
        "ecg_file": "train.csv",
        "seed": 0,
        "device": "cpu",
        "dtype": "float32",
        "torch_threads": 1,
        "cell": {"dataset": "ecg5000", "model": "lipschitz"},
    }
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert (
        main(["noisy-rnn-train", "--config-json", json.dumps(cfg), "--in-dir", str(tmp_path), "--out-dir", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "runs.csv", "timings.csv"]
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.dataset) == {"ecg5000"} and (runs.chance_accuracy > 0).all()
    assert main(["noisy-rnn-train", "--config-json", json.dumps(cfg), "--out-dir", str(tmp_path / "o2")]) == 2
