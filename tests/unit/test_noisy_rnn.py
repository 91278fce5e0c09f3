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


def test_cornn_imex_step_known_answer():
    """coRNN with W = 𝒲 = 0 and V = 0: z_k = z_{k-1} + Δt(tanh(b) - γ y_{k-1} - ε z_{k-1}), y_k = y_{k-1} + Δt z_k."""
    a = rnn.RNNArch(
        kind="cornn", d_in=1, d_out=2, seq_len=3, hidden=2, cornn_dt=0.1, cornn_gamma=2.0, cornn_epsilon=3.0
    )
    net = rnn.build(a, [0], dtype=torch.float64)
    with torch.no_grad():
        net.K.zero_(), net.U.zero_(), net.b.copy_(torch.tensor([[0.5, -1.0]], dtype=torch.float64))
    y = z = np.zeros(2)
    for _ in range(3):
        z = z + 0.1 * (np.tanh([0.5, -1.0]) - 2.0 * y - 3.0 * z)
        y = y + 0.1 * z
    got = net.hidden_states(torch.zeros(1, 3, dtype=torch.float64))[0, 0].detach().numpy()
    np.testing.assert_allclose(got, y, rtol=1e-12)


# ------------------------------------------------------------------------------ splits
def _pool(n=40, n_test=0, classes=(0.5, 0.3, 0.2), seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(classes)), [int(round(c * n)) for c in classes])
    yt = rng.integers(0, len(classes), n_test) if n_test else None
    return sequences.SeqPool(
        rng.normal(size=(len(y), 5)),
        y,
        rng.normal(size=(n_test, 5)) if n_test else None,
        yt,
        5,
        1,
        len(classes),
        -1.0,
        1.0,
        "official" if n_test else "cv",
    )


def test_fold_plan_cross_validation_tests_every_sequence_once_per_seed():
    pool = _pool(40)
    plan = sequences.fold_plan(pool, [0, 1, 2], {"cv_folds": 4, "val_fraction": 0.2})
    assert len(plan) == 12 and len({len(f.train) for f in plan}) == 1
    for s in (0, 1, 2):
        fs = [f for f in plan if f.seed == s]
        assert sorted(np.concatenate([f.test for f in fs]).tolist()) == list(range(40))  # each once per seed
        for f in fs:
            assert not set(f.train) & set(f.val) and not (set(f.train) | set(f.val)) & set(f.test)
    assert not np.array_equal(plan[0].test, plan[4].test)  # another repeat, another partition
    again = sequences.fold_plan(pool, [0, 1, 2], {"cv_folds": 4, "val_fraction": 0.2})
    assert all(np.array_equal(a.val, b.val) for a, b in zip(plan, again))


def test_fold_plan_official_split_tests_on_the_official_test_set():
    pool = _pool(30, n_test=25)
    plan = sequences.fold_plan(pool, [0, 1], {"cv_folds": 5, "val_fraction": 0.2})
    assert [f.fold for f in plan] == [0, 0]
    for f in plan:
        assert f.test.tolist() == list(range(30, 55)) and len(f.val) == 6 and len(f.train) == 24
        assert set(f.train) | set(f.val) == set(range(30))
    assert len(pool.X_all) == 55


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


def test_cell_and_summary_tables():
    study, data = small_study()
    runs = []
    for model in ("lipschitz", "noisy", "cornn"):
        out = nr.run_cell(Cell({"dataset": "digits", "model": model}, study, device="cpu", data=data))
        r, tim = out["runs"], out["timings"]
        runs.append(r)
        assert list(r.columns) == nr.RUN_COLUMNS and len(tim) == 1
    again = nr.run_cell(Cell({"dataset": "digits", "model": "noisy"}, study, device="cpu", data=data))["runs"]
    pd.testing.assert_frame_equal(runs[1], again)  # reproducible, training noise included
    runs = pd.concat(runs, ignore_index=True)
    assert len(runs) == 3 * 2 * 2 * 4 * 2  # models x seeds x folds x perturbations x strengths
    assert (runs.groupby(["model", "seed"]).n_test.sum() == 4 * 2 * 60).all()  # 2 folds test all 60 once
    clean = runs[runs.strength == 0]
    assert np.allclose(clean.accuracy, clean.clean_accuracy)
    seeds = nr.seed_runs(runs)
    assert len(seeds) == len(runs) // 2 and (seeds.n_test == 60).all()
    s = nr.summarize(seeds)
    assert {"accuracy_mean", "accuracy_std", "clean_accuracy_mean", "n_params"} <= set(s.columns)
    sel = nr.select_levels(seeds, study)
    assert sel.chosen.sum() == 1
    claims = nr.claims(seeds, study)
    assert claims.claim_id.tolist()[0] == "primary/digits"
    assert claims.claim_id.str.startswith("secondary/").sum() == len(claims) - 1
    comp = nr.compare(seeds, claims, study)
    assert (comp.role == "primary").sum() == 1
    text = nr.caption(seeds, sel, claims, "smoke", study)
    assert "PRIMARY" in text and "validation" in text and "Holm" in text


def test_seed_runs_pool_folds_by_their_sizes():
    base = {
        "dataset": "d",
        "model": "lipschitz",
        "variant": "lipschitz",
        "noise_add": 0.0,
        "noise_mult": 0.0,
        "perturbation": "gaussian",
        "strength": 0.0,
        "seed": 0,
        "split": "cv",
        "train_accuracy": 1.0,
        "chance_accuracy": 0.5,
        "n_params": 1,
    }
    runs = pd.DataFrame(
        [
            {
                **base,
                "fold": 0,
                "n_test": 10,
                "n_val": 2,
                "accuracy": 1.0,
                "clean_accuracy": 1.0,
                "val_accuracy": 0.0,
                "val_clean_accuracy": 0.0,
            },
            {
                **base,
                "fold": 1,
                "n_test": 30,
                "n_val": 6,
                "accuracy": 0.5,
                "clean_accuracy": 0.5,
                "val_accuracy": 1.0,
                "val_clean_accuracy": 1.0,
            },
        ]
    )
    r = nr.seed_runs(runs).iloc[0]
    assert r.accuracy == pytest.approx(25 / 40) and r.val_clean_accuracy == pytest.approx(6 / 8) and r.n_folds == 2


# ------------------------------------------------------------ robustness verdicts on synthetic seeds (known answers)
def synth_seeds(
    *,
    clean_l=0.9,
    clean_n=0.9,
    drop_l=0.3,
    drop_n=0.3,
    val_n=None,
    noise=0.01,
    seeds=20,
    rng_seed=0,
    variants=((0.1, 0.0),),
    perts=("gaussian", "fgsm"),
    datasets=("ecg5000",),
    chance=0.5,
):
    """Seed-level runs with a known truth: clean accuracy clean_x + N(0, noise) (validation: the same, or val_n for
    the noisy RNN), perturbed accuracy (every strength > 0) clean − drop_x + N(0, noise)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    models = [("lipschitz", 0.0, 0.0, clean_l, drop_l)] + [("noisy", a, m, clean_n, drop_n) for a, m in variants]
    for ds in datasets:
        for model, a, m, clean, drop in models:
            for s in range(seeds):
                c = clean + rng.normal(0, noise)
                vc = c if (val_n is None or model == "lipschitz") else val_n + rng.normal(0, noise)
                for pert in perts:
                    for strength in (0.0, 0.1, 0.2):
                        acc = c if strength == 0 else c - drop + rng.normal(0, noise)
                        rows.append(
                            {
                                "dataset": ds,
                                "split": "cv",
                                "model": model,
                                "variant": nr.variant_name(model, a, m),
                                "noise_add": a,
                                "noise_mult": m,
                                "perturbation": pert,
                                "strength": strength,
                                "seed": s,
                                "accuracy": acc,
                                "clean_accuracy": c,
                                "val_accuracy": acc - c + vc,
                                "val_clean_accuracy": vc,
                                "train_accuracy": 1.0,
                                "chance_accuracy": chance,
                                "n_params": 10,
                            }
                        )
    return pd.DataFrame(rows)


STUDY = {"equal_clean_tol": 0.02, "claims": {"alpha": 0.05, "margin": 0.05}, "epochs": 1}


def _claims(seeds, study=STUDY):
    return nr.claims(seeds, study).set_index("claim_id")


def test_normalized_drop_known_answer():
    nd = nr.normalized_drops(synth_seeds(clean_l=0.9, drop_l=0.2, noise=0.0, chance=0.5))
    lip = nd[(nd.variant == "lipschitz") & (nd.perturbation == "pooled")]
    assert lip.normalized_drop.to_numpy() == pytest.approx(0.5)  # (0.9 - 0.7) / (0.9 - 0.5)
    nd = nr.normalized_drops(synth_seeds(clean_l=0.4, noise=0.0, chance=0.5))
    assert nd[nd.variant == "lipschitz"].normalized_drop.isna().all()  # nothing above chance to lose
    nd = nr.normalized_drops(synth_seeds(clean_l=0.53, drop_l=0.02, noise=0.0, chance=0.5))
    assert nd[nd.variant == "lipschitz"].normalized_drop.isna().all()  # 0.03 above chance < min_room 0.05
    nd = nr.normalized_drops(synth_seeds(clean_l=0.53, drop_l=0.02, noise=0.0, chance=0.5), min_room=0.01)
    assert nd[nd.variant == "lipschitz"].normalized_drop.to_numpy() == pytest.approx(2 / 3)


def test_primary_supported_when_the_noisy_rnn_keeps_more_of_its_accuracy():
    c = _claims(synth_seeds(drop_l=0.2, drop_n=0.1))  # normalized drops 0.5 vs 0.25
    assert c.loc["primary/ecg5000", "verdict"] == "supported"
    assert c.loc["primary/ecg5000", "ci_low"] < 0.25 < c.loc["primary/ecg5000", "ci_high"]


def test_primary_contradicted_when_the_advantage_is_below_the_margin():
    c = _claims(synth_seeds(drop_l=0.2, drop_n=0.2, noise=0.005))  # true advantage 0 < margin 0.05
    assert c.loc["primary/ecg5000", "verdict"] == "contradicted"
    c = _claims(synth_seeds(drop_l=0.1, drop_n=0.2))  # the noisy RNN loses more
    assert c.loc["primary/ecg5000", "verdict"] == "contradicted"


def test_primary_inconclusive_when_the_interval_straddles_the_margin():
    c = _claims(synth_seeds(drop_l=0.21, drop_n=0.2, noise=0.03, seeds=6, rng_seed=3))
    r = c.loc["primary/ecg5000"]
    assert r.verdict == "inconclusive" and r.ci_low < 0 < 0.05 < r.ci_high


def test_clean_accuracy_lead_is_not_robustness():
    """The noisy RNN is 10 points better when clean and loses as much accuracy: the absolute drop would call it
    equal; the normalized drop says it keeps a larger share ((0.3)/(0.4) vs 0.3/0.3) -- and the secondary clean
    non-inferiority row is supported (the noisy RNN is not worse when clean)."""
    c = _claims(synth_seeds(clean_l=0.8, clean_n=0.9, drop_l=0.3, drop_n=0.3, val_n=0.8))
    assert c.loc["primary/ecg5000", "effect"] == pytest.approx(1.0 - 0.75, abs=0.02)
    assert c.loc["secondary/ecg5000/clean", "verdict"] == "supported"


def test_noise_level_is_chosen_on_validation_data_only():
    """Two levels; the noisier one matches on validation (it is worse on TEST clean accuracy, which is never
    looked at) -> chosen. When nothing matches, the closest level is chosen and flagged."""
    s = synth_seeds(variants=((0.1, 0.0), (0.3, 0.0)), noise=0.0)
    hi = s.variant == "noisy_add0.3_mult0"
    s.loc[hi, "clean_accuracy"] -= 0.1  # test data: much worse
    sel = nr.select_levels(s, STUDY).set_index("variant")
    assert sel.matched.all() and sel.loc["noisy_add0.3_mult0", "chosen"]
    s.loc[hi, "val_clean_accuracy"] -= 0.1
    s.loc[s.variant == "noisy_add0.1_mult0", "val_clean_accuracy"] -= 0.05
    sel = nr.select_levels(s, STUDY).set_index("variant")
    assert not sel.matched.any() and sel.loc["noisy_add0.1_mult0", "chosen"]


def test_primary_family_is_holm_within_itself_only():
    """Two datasets, three levels, two perturbations: 2 primary claims (Holm over 2), the rest secondary (Holm over
    them); a primary p-value is adjusted x2 at most, whatever the number of secondary rows."""
    from nnrds import verdicts as V

    seeds = synth_seeds(
        drop_l=0.2,
        drop_n=0.17,
        noise=0.03,
        seeds=8,
        variants=((0.1, 0.0), (0.3, 0.0), (0.3, 0.3)),
        datasets=("ecg5000", "italy_power"),
    )
    c = nr.claims(seeds, STUDY)
    prim = c[c.claim_id.str.startswith("primary/")]
    sec = c[c.claim_id.str.startswith("secondary/")]
    assert len(prim) == 2 and len(sec) == 2 * (1 + 3 * 3 - 1)
    np.testing.assert_allclose(prim.p_adjusted, V.holm(prim.p_value))
    np.testing.assert_allclose(sec.p_adjusted, V.holm(sec.p_value))
    assert "Holm over the 2 primary claims" in prim.test.iloc[0]
    with pytest.raises(ValueError, match="at most four"):
        nr.claims(synth_seeds(datasets=("a", "b", "c", "d", "e")), STUDY)


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
                        "val_clean_accuracy": acc,
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
    study, _ = small_study(max_train=None, max_test=None, ecg_path="/nonexistent/ECG.txt", seeds=[0], cv_folds=2)
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
    assert runs[runs.strength == 0].groupby("model").n_test.sum().iloc[0] == 4 * 30  # every sequence tested once
    assert main(["noisy-rnn-train", "--config-json", json.dumps(cfg), "--out-dir", str(tmp_path / "o2")]) == 2


def test_task_study_overrides_only_its_task_design():
    """A task's `task_training` entry overrides its models and noise levels (and training settings) for that task
    only; the other task keeps the study's; the replicas follow the task's levels."""
    study = {
        "models": ["lipschitz", "noisy", "lstm"],
        "noise_levels": [{"add": 0.05, "mult": 0.02}, {"add": 0.3, "mult": 0.0}],
        "epochs": 20,
        "lr": 0.01,
        "batch_size": 32,
        "task_training": {
            "ecg5000": {"epochs": 12, "models": ["lipschitz", "noisy"], "noise_levels": [{"add": 0.1, "mult": 0.0}]}
        },
    }
    ecg, other = nr.task_study("ecg5000", study), nr.task_study("italy_power", study)
    assert ecg["models"] == ["lipschitz", "noisy"] and nr.noise_levels(ecg) == [(0.1, 0.0)]
    assert other["models"] == study["models"] and nr.noise_levels(other) == [(0.05, 0.02), (0.3, 0.0)]
    assert (
        nr.training_settings("ecg5000", study)["epochs"] == 12
        and nr.training_settings("italy_power", study)["epochs"] == 20
    )
    assert len(nr.replicas("noisy", ecg, ["f0", "f1"])) == 2 and len(nr.replicas("noisy", other, ["f0", "f1"])) == 4
