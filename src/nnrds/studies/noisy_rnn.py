"""Noisy-RNN regularization study: does training-time noise make a Lipschitz RNN robust to input noise?

Models (:mod:`nnrds.rnn`): Lipschitz RNN, noisy RNN (same drift, Euler–Maruyama noise during training
only), antisymmetric RNN, LSTM. Data (offline; :mod:`nnrds.data.sequences`): scikit-learn's bundled 8×8 digits
read pixel by pixel (length-64 sequences, 1 input per step), the same with a fixed pixel permutation, and ECG5000
(length-140 heartbeats, 5 classes) from the raw-data layer: the mirror holds only the archive's 500-sequence
*training* split, which this study splits stratified into its own train/test sets (the official UCR test
split is used instead when a full download provides it).

One *cell* = one (dataset, model): every seed (and, for the noisy RNN, every training-noise level) is a
replica of one batched network trained by :func:`nnrds.train.fit`. Replica seeds depend only on the run
seed, so the Lipschitz and the noisy RNN of seed s start from the *same* weights and see the same
minibatches: their comparison is paired. Evaluation is in eval mode (deterministic); the perturbed test
inputs are drawn once per (perturbation, strength) from a fixed seed and shared by every model and seed.

Perturbations (applied to the network's input values; digits are scaled to [0, 1], ECG5000 is z-normalized
per heartbeat by the archive):

* ``gaussian``       x + σ ξ,             ξ ~ N(0, 1) i.i.d. per input value
* ``multiplicative`` x (1 + σ ξ),         ξ ~ N(0, 1)
* ``salt_pepper``    each value replaced with probability p, by ``hi`` or ``lo`` with equal odds, where
  (lo, hi) = (min, max) of the training inputs (0 and 1 for digits)
* ``fgsm``           x + ε sign(∇_x CE(net(x), y)), one gradient-sign step per replica (white box)
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import experiment, rnn, verdicts
from ..data.sequences import DESCRIPTIONS, SeqData, load_dataset
from ..train import fit

MODELS = rnn.KINDS
PERTURBATIONS = ("gaussian", "multiplicative", "salt_pepper", "fgsm")
#: figures behind the claims (rule noisy_rnn_figures)
FIGURES = {
    "robust": "figures/noisy_rnn/robustness_advantage.png",
    "comparisons": "figures/noisy_rnn/robustness_advantage.png",
}

RUN_COLUMNS = [
    "dataset",
    "split",
    "model",
    "variant",
    "noise_add",
    "noise_mult",
    "perturbation",
    "strength",
    "seed",
    "accuracy",
    "clean_accuracy",
    "train_accuracy",
    "chance_accuracy",
    "n_params",
    "epochs",
]
_PERT_CODE = {k: i for i, k in enumerate(PERTURBATIONS)}


# ------------------------------------------------------------------------------------ perturbations
def additive_noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """x + σ ξ, ξ ~ N(0, 1): the perturbation has mean 0 and variance σ²."""
    return x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def multiplicative_noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """x (1 + σ ξ), ξ ~ N(0, 1): the factor has mean 1 and variance σ²."""
    return x * (1 + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype))


def salt_and_pepper(x: torch.Tensor, p: float, gen: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    """Each value independently replaced with probability p, by ``hi`` (salt) or ``lo`` (pepper), 50/50."""
    hit = torch.rand(x.shape, generator=gen) < p
    salt = torch.rand(x.shape, generator=gen) < 0.5
    repl = torch.where(salt, torch.full_like(x, hi), torch.full_like(x, lo))
    return torch.where(hit, repl, x)


def fgsm(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One gradient-sign step per replica: returns (R, N, F) adversarial inputs (net in its current mode)."""
    R = net.n_replicas
    xr = (x.unsqueeze(0).expand(R, *x.shape) if x.dim() == 2 else x).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = rnn.cross_entropy_per_replica(net, xr, y).sum()  # replica r's loss depends on xr[r] only
        (grad,) = torch.autograd.grad(loss, xr)
    return (xr + eps * grad.sign()).detach()


def perturb(
    kind: str,
    x: torch.Tensor,
    strength: float,
    gen: torch.Generator,
    data: SeqData,
    net: torch.nn.Module | None = None,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    if strength == 0:
        return x
    if kind == "gaussian":
        return additive_noise(x, strength, gen)
    if kind == "multiplicative":
        return multiplicative_noise(x, strength, gen)
    if kind == "salt_pepper":
        return salt_and_pepper(x, strength, gen, data.lo, data.hi)
    if kind == "fgsm":
        return fgsm(net, x, y, strength)
    raise ValueError(f"unknown perturbation {kind!r}; expected one of {PERTURBATIONS}")


# ---------------------------------------------------------------------------------------- training
def variant_name(model: str, add: float = 0.0, mult: float = 0.0) -> str:
    return f"noisy_add{add:g}_mult{mult:g}" if model == "noisy" else model


#: the study settings that are fields of :class:`nnrds.rnn.RNNArch`
ARCH_SETTINGS = ("hidden", "eps", "beta", "gamma_A", "gamma_W", "init_std", "eps_noise", "noise_sqrt_dt")


def arch_for(model: str, data: SeqData, study: dict) -> rnn.RNNArch:
    """The architecture of ``model`` for ``data`` with the study's settings (:data:`ARCH_SETTINGS`)."""
    return rnn.RNNArch(
        kind=model,
        d_in=data.d_in,
        d_out=data.n_classes,
        seq_len=data.seq_len,
        **{k: study[k] for k in ARCH_SETTINGS},
    )


def replicas(model: str, study: dict) -> list[tuple[int, float, float]]:
    """(seed, additive noise, multiplicative noise) of every replica, in batch order: the noisy RNN has one replica
    per training-noise level and seed, every other model one per seed."""
    levels = [(float(l["add"]), float(l["mult"])) for l in study["noise_levels"]] if model == "noisy" else [(0.0, 0.0)]
    return [(s, a, m) for (a, m) in levels for s in study["seeds"]]


def build_net(
    model: str, data: SeqData, study: dict, reps: list, base_seed: int, rt: experiment.Runtime
) -> torch.nn.Module:
    """One replica per entry of ``reps``, initialised (and, for the noisy RNN, drawing its training noise) from
    :func:`nnrds.experiment.replica_seed` of its run seed -- the same for every model, so comparisons are paired.
    The noisy RNN's replicas of one seed at different noise levels therefore also share their noise draws
    (common random numbers: only the scale sigma_1, sigma_2 differs)."""
    noisy = model == "noisy"
    return rnn.build(
        arch_for(model, data, study),
        [experiment.replica_seed(s, base_seed) for s, _, _ in reps],
        sigma_add=[a for _, a, _ in reps] if noisy else 0.0,
        sigma_mult=[m for _, _, m in reps] if noisy else 0.0,
        dtype=rt.dtype,
    ).to(rt.device)


def perturbed_accuracy(
    net: torch.nn.Module,
    data: SeqData,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    clean: np.ndarray,
    study: dict,
    base_seed: int,
):
    """Yield ``(perturbation, strength, accuracy per replica)`` for every perturbation and strength of the study.

    The perturbed test inputs of one (perturbation, strength) are drawn from a fixed seed, so every model and
    seed sees the same ones; strength 0 is the clean accuracy (identical inputs, eval mode)."""
    for kind, grid in study["perturbations"].items():
        for i, strength in enumerate(grid):
            gen = torch.Generator().manual_seed(base_seed * 1_000_003 + 1000 * _PERT_CODE[kind] + i)
            x_in = X_test if kind == "fgsm" else X_test.cpu()  # random perturbations use a CPU generator
            if strength == 0:
                acc = clean
            else:
                xp = perturb(kind, x_in, float(strength), gen, data, net=net, y=y_test)
                acc = rnn.accuracy_per_replica(net, xp.to(X_test.device), y_test).cpu().numpy()
            yield kind, float(strength), acc


def run_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train all seeds (x noise levels) of one dataset x model (``cell["dataset"]``, ``cell["model"]``; raw data
    from ``cell.data``); evaluate clean and perturbed accuracy. Returns the tables runs and timings."""
    dataset, model, study, base_seed = cell["dataset"], cell["model"], cell.study, cell.base_seed
    if model not in MODELS:
        raise ValueError(f"unknown noisy_rnn model {model!r}; expected one of {MODELS}")
    rt = cell.prepare()
    data = load_dataset(dataset, study, cell.data, seed=base_seed)
    reps = replicas(model, study)
    net = build_net(model, data, study, reps, base_seed, rt)
    Xtr, Xte = rt.tensor(data.X_train), rt.tensor(data.X_test)
    ytr, yte = rt.index(data.y_train).view(-1, 1), rt.index(data.y_test).view(-1, 1)
    res = fit(
        net,
        Xtr,
        ytr,
        epochs=study["epochs"],
        lr=study["lr"],
        batch_size=study["batch_size"],
        seed=base_seed,
        loss_fn=rnn.cross_entropy_per_replica,
    )
    net.eval()
    t0 = time.perf_counter()
    train_acc = rnn.accuracy_per_replica(net, Xtr, ytr).cpu().numpy()
    clean = rnn.accuracy_per_replica(net, Xte, yte).cpu().numpy()
    head = {
        "dataset": dataset,
        "split": data.split,
        "model": model,
        "chance_accuracy": float(np.bincount(data.y_test).max() / len(data.y_test)),
        "n_params": net.arch.n_params(),
        "epochs": res.epochs,
    }
    own = [{"variant": variant_name(model, a, m), "noise_add": a, "noise_mult": m, "seed": s} for s, a, m in reps]
    rows = []
    for kind, strength, acc in perturbed_accuracy(net, data, Xte, yte, clean, study, base_seed):
        rows += experiment.tabulate(
            {**head, "perturbation": kind, "strength": strength},
            own,
            {"accuracy": acc, "clean_accuracy": clean, "train_accuracy": train_acc},
        )
    timings = [
        {
            "dataset": dataset,
            "model": model,
            "n_replicas": len(reps),
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
            "seq_len": data.seq_len,
            "epochs": res.epochs,
            "train_wall_time_s": res.wall_time_s,
            "eval_wall_time_s": time.perf_counter() - t0,
            "device": str(rt.device),
        }
    ]
    return {"runs": pd.DataFrame(rows, columns=RUN_COLUMNS), "timings": pd.DataFrame(timings)}


# ------------------------------------------------------------------------------------------ summary
GROUP = ["dataset", "model", "variant", "noise_add", "noise_mult", "perturbation", "strength"]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (ddof=1; 0 for a single seed) over seeds per model × dataset × perturbation × strength."""
    g = runs.groupby(GROUP, sort=True)
    out = g.agg(
        n_seeds=("seed", "nunique"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        clean_accuracy_mean=("clean_accuracy", "mean"),
        clean_accuracy_std=("clean_accuracy", "std"),
        train_accuracy_mean=("train_accuracy", "mean"),
        chance_accuracy=("chance_accuracy", "first"),
        n_params=("n_params", "first"),
    ).reset_index()
    for c in ("accuracy_std", "clean_accuracy_std"):
        out[c] = out[c].fillna(0.0)
    return out


NOISE_CURVE_COLUMNS = [
    "dataset",
    "noise_mult",
    "noise_add",
    "n_seeds",
    "clean_accuracy_mean",
    "clean_accuracy_std",
    "train_accuracy_mean",
]


def clean_vs_training_noise(runs: pd.DataFrame) -> pd.DataFrame:
    """The regularization trade-off: clean test accuracy (mean, std with ddof=1 -- 0 for one seed) and training
    accuracy (mean) over seeds per dataset, multiplicative training-noise level sigma_2 and additive level sigma_1,
    for the Lipschitz and the noisy RNN. Every sigma_2 curve starts at the Lipschitz RNN (sigma_1 = sigma_2 = 0)."""
    clean = runs.drop_duplicates(["dataset", "variant", "seed"])
    clean = clean[clean.model.isin(["lipschitz", "noisy"])]
    parts = []
    for ds, g in clean.groupby("dataset", sort=True):
        lip = g[(g.noise_add == 0) & (g.noise_mult == 0)]
        for mult, gm in g.groupby("noise_mult", sort=True):
            gm = pd.concat([lip, gm]).drop_duplicates(["variant", "seed"])
            t = gm.groupby("noise_add", sort=True).agg(
                n_seeds=("seed", "nunique"),
                clean_accuracy_mean=("clean_accuracy", "mean"),
                clean_accuracy_std=("clean_accuracy", "std"),
                train_accuracy_mean=("train_accuracy", "mean"),
            )
            parts.append(t.reset_index().assign(dataset=ds, noise_mult=float(mult)))
    if not parts:
        return pd.DataFrame(columns=NOISE_CURVE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["clean_accuracy_std"] = out["clean_accuracy_std"].fillna(0.0)
    return out[NOISE_CURVE_COLUMNS]


def per_seed_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per seed of one (model variant, dataset, perturbation): clean accuracy, perturbed accuracy (mean over the
    strengths > 0) and the robustness *drop* = clean − perturbed (lower = more robust)."""
    d = df[df.strength > 0]
    out = pd.DataFrame(
        {"clean": df.groupby("seed").clean_accuracy.first(), "perturbed": d.groupby("seed").accuracy.mean()}
    )
    out["drop"] = out.clean - out.perturbed
    return out


def _t_p(d: np.ndarray) -> float:
    """Two-sided one-sample t-test p-value of mean 0 (NaN for < 2 values; 0/1 for zero variance)."""
    if len(d) < 2:
        return math.nan
    if np.all(d == d[0]):
        return 0.0 if d[0] != 0 else 1.0
    with warnings.catch_warnings():  # nearly constant differences: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_1samp(d, 0.0).pvalue)


def compare(runs: pd.DataFrame, study: dict | None = None) -> pd.DataFrame:
    """Paired noisy-vs-Lipschitz robustness per dataset × noise level × perturbation (the comparison family).

    Per seed (same initial weights and minibatches for both models): the robustness *advantage* of the noisy
    RNN = drop(Lipschitz) − drop(noisy), drop = clean accuracy − mean perturbed accuracy over the strengths
    > 0, so a lead in clean accuracy does not count as robustness. *Matched clean accuracy*: the paired
    clean-accuracy difference (noisy − Lipschitz, the same for every perturbation) is shown equivalent within
    ±``equal_clean_tol`` by TOST at level alpha (its 1 − 2 alpha t-interval inside the band). Test of each
    comparison: paired t-test over seeds, two-sided; p-values Holm-adjusted over every comparison of the
    table; interval: Bonferroni-simultaneous (1 − alpha/m) t-interval. Verdict (:func:`comparison_verdict`).
    """
    study = study or {}
    alpha = float(study.get("claims", {}).get("alpha", 0.05))
    tol = float(study.get("equal_clean_tol", 0.02))
    rows = []
    base = runs[runs.model == "lipschitz"]
    for (ds, var, pert), g in runs[runs.model == "noisy"].groupby(["dataset", "variant", "perturbation"], sort=True):
        b = base[(base.dataset == ds) & (base.perturbation == pert)]
        if b.empty or not (g.strength > 0).any():
            continue
        n, l = per_seed_scores(g), per_seed_scores(b)
        common = n.index.intersection(l.index)
        if len(common) == 0:
            continue
        n, l = n.loc[common], l.loc[common]
        adv = (l["drop"] - n["drop"]).to_numpy(dtype=float)
        dcl = (n.clean - l.clean).to_numpy(dtype=float)
        cl_mean, cl_lo, cl_hi = verdicts.mean_ci(dcl, 1 - 2 * alpha)
        rows.append(
            {
                "dataset": ds,
                "variant": var,
                "noise_add": float(g.noise_add.iloc[0]),
                "noise_mult": float(g.noise_mult.iloc[0]),
                "perturbation": pert,
                "n_seeds": len(common),
                "lipschitz_clean_mean": float(l.clean.mean()),
                "noisy_clean_mean": float(n.clean.mean()),
                "clean_diff_mean": cl_mean,
                "clean_diff_ci_low": cl_lo,
                "clean_diff_ci_high": cl_hi,
                "clean_matched": bool(np.isfinite(cl_lo) and -tol < cl_lo and cl_hi < tol),
                "lipschitz_drop_mean": float(l["drop"].mean()),
                "noisy_drop_mean": float(n["drop"].mean()),
                "advantage_mean": float(adv.mean()),
                "seeds_noisy_better": int((adv > 0).sum()),
                "p_value": _t_p(adv),
                "_adv": adv,
            }
        )
    if not rows:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    m = len(rows)
    level = 1 - alpha / m
    padj = verdicts.holm([r["p_value"] for r in rows])
    for r, pa in zip(rows, padj):
        _, r["advantage_ci_low"], r["advantage_ci_high"] = verdicts.mean_ci(r.pop("_adv"), level)
        r["ci_level"], r["p_holm"] = level, float(pa)
        r["verdict"] = comparison_verdict(r["advantage_mean"], r["p_holm"], r["clean_matched"], alpha)
    return pd.DataFrame(rows)[COMPARE_COLUMNS]


COMPARE_COLUMNS = [
    "dataset",
    "variant",
    "noise_add",
    "noise_mult",
    "perturbation",
    "n_seeds",
    "lipschitz_clean_mean",
    "noisy_clean_mean",
    "clean_diff_mean",
    "clean_diff_ci_low",
    "clean_diff_ci_high",
    "clean_matched",
    "lipschitz_drop_mean",
    "noisy_drop_mean",
    "advantage_mean",
    "advantage_ci_low",
    "advantage_ci_high",
    "ci_level",
    "seeds_noisy_better",
    "p_value",
    "p_holm",
    "verdict",
]


def comparison_verdict(advantage: float, p_holm: float, clean_matched: bool, alpha: float = 0.05) -> str:
    """ "The noisy RNN is more robust (smaller accuracy drop) at matched clean accuracy", one comparison:
    *supported* when the Holm-adjusted p < alpha and the mean advantage is > 0, *contradicted* when it is
    significant the other way (the noisy RNN loses more), *inconclusive* otherwise -- and always when the clean
    accuracies are not shown equal (then the comparison is not at matched clean accuracy)."""
    if not clean_matched or not np.isfinite(p_holm) or p_holm >= alpha:
        return verdicts.INCONCLUSIVE
    return verdicts.SUPPORTED if advantage > 0 else verdicts.CONTRADICTED if advantage < 0 else verdicts.INCONCLUSIVE


def overall_advantage(runs: pd.DataFrame, comp: pd.DataFrame) -> pd.Series:
    """Per seed: the noisy RNN's robustness advantage averaged over the matched comparisons (NaN-free)."""
    keep = comp[comp.clean_matched]
    vals = []
    base = runs[runs.model == "lipschitz"]
    for r in keep.itertuples():
        g = runs[
            (runs.model == "noisy")
            & (runs.dataset == r.dataset)
            & (runs.variant == r.variant)
            & (runs.perturbation == r.perturbation)
        ]
        b = base[(base.dataset == r.dataset) & (base.perturbation == r.perturbation)]
        n, l = per_seed_scores(g), per_seed_scores(b)
        vals.append(l["drop"] - n["drop"])
    if not vals:
        return pd.Series(dtype=float)
    return pd.concat(vals, axis=1).dropna().mean(axis=1)


def claims(runs: pd.DataFrame, comp: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`).

    Row ``robust``: the headline claim "the noisy RNN is more robust to input perturbations than the
    Lipschitz RNN at matched clean accuracy" -- per seed, the advantage averaged over every matched comparison
    (unit: the seed, which carries one initialization and one minibatch order for both models); t-interval at
    1 − alpha, :func:`nnrds.verdicts.superiority`. Then one row per comparison (``robust/<dataset>/<variant>/
    <perturbation>``), verdict :func:`comparison_verdict` with Holm over the family."""
    alpha = float(study.get("claims", {}).get("alpha", 0.05))
    tol = float(study.get("equal_clean_tol", 0.02))
    seeds = sorted(runs.seed.unique())
    run = (
        f"{runs.dataset.nunique()} datasets; Lipschitz RNN vs noisy RNN at {runs[runs.model == 'noisy'].variant.nunique()} "
        f"training-noise levels; {len(seeds)} seeds; {study.get('epochs', '?')} epochs; "
        f"{', '.join(sorted(runs.perturbation.unique()))} test perturbations"
    )
    rows = []
    if comp.empty:
        return pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)
    ov = overall_advantage(runs, comp).to_numpy(dtype=float)
    est, lo, hi = verdicts.mean_ci(ov, 1 - alpha) if len(ov) else (math.nan, math.nan, math.nan)
    p = _t_p(ov)
    if np.isfinite(p):  # one-sided (H0: advantage <= 0) from the two-sided p
        p = p / 2 if est > 0 else 1 - p / 2
    n_match = int(comp.clean_matched.sum())
    rows.append(
        verdicts.Claim(
            study="noisy_rnn",
            claim_id="robust",
            claim="The noisy RNN is more robust to input perturbations (smaller accuracy drop from clean) than the "
            "Lipschitz RNN at matched clean accuracy.",
            what_was_run=run + f"; averaged over the {n_match} of {len(comp)} comparisons with matched clean accuracy",
            unit="seed (same initial weights and minibatches for both models)",
            n_units=len(ov),
            effect_name="accuracy drop (Lipschitz) − accuracy drop (noisy), mean over matched comparisons",
            effect=est,
            ci_low=lo,
            ci_high=hi,
            ci_level=1 - alpha,
            p_value=p,
            test="paired t-test, one-sided; t-interval",
            verdict=verdicts.superiority(lo, hi),
            figure=FIGURES["robust"],
        )
    )
    for r in comp.itertuples():
        rows.append(
            verdicts.Claim(
                study="noisy_rnn",
                claim_id=f"robust/{r.dataset}/{r.variant}/{r.perturbation}",
                claim=f"On {r.dataset}, the noisy RNN ({r.variant}) loses less accuracy under {r.perturbation} "
                "perturbations than the Lipschitz RNN at matched clean accuracy.",
                what_was_run=f"{r.n_seeds} seeds; clean accuracy noisy − Lipschitz {r.clean_diff_mean:+.3f} "
                f"({1 - 2 * alpha:.0%} interval [{r.clean_diff_ci_low:+.3f}, {r.clean_diff_ci_high:+.3f}], "
                f"{'matched' if r.clean_matched else 'NOT matched'} within ±{tol:g})",
                unit="seed",
                n_units=int(r.n_seeds),
                effect_name="accuracy drop (Lipschitz) − accuracy drop (noisy)",
                effect=float(r.advantage_mean),
                ci_low=float(r.advantage_ci_low),
                ci_high=float(r.advantage_ci_high),
                ci_level=float(r.ci_level),
                p_value=float(r.p_value),
                p_adjusted=float(r.p_holm),
                test=f"paired t-test, two-sided, Holm over {len(comp)} comparisons; Bonferroni-simultaneous interval",
                verdict=r.verdict,
                figure=FIGURES["comparisons"],
            )
        )
    return verdicts.claims_frame(rows)


def _ci(lo: float, hi: float) -> str:
    return "[n/a]" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.3f}, {hi:+.3f}]"


def _p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.2g}"


def caption(runs: pd.DataFrame, comp: pd.DataFrame, claims_df: pd.DataFrame, scale: str, study: dict) -> str:
    """RST caption (checked by tests/workflow/test_captions.py: no docutils system message)."""
    tol = study["equal_clean_tol"]
    alpha = float(study.get("claims", {}).get("alpha", 0.05))
    lines = [
        f"Noisy-RNN regularization study, **{scale}** scale: hidden {study['hidden']}, Euler step ε = {study['eps']}, "
        f"β = {study['beta']}, γ_A = {study['gamma_A']}, γ_W = {study['gamma_W']}, {study['epochs']} epochs of Adam "
        f"(lr {study['lr']}, batch {study['batch_size']}), {len(study['seeds'])} seeds "
        f"({', '.join(map(str, study['seeds']))}); training noise σ = ε_n(σ₁ I + σ₂ diag(f)) with ε_n = "
        f"{study['eps_noise']}, Euler–Maruyama {'with' if study['noise_sqrt_dt'] else 'without'} √Δt scaling, on "
        "only during training. Accuracy is on the held-out test split, mean ± std over seeds; perturbations are "
        "applied to test inputs only (gaussian: x + σξ; multiplicative: x(1 + σξ); salt_pepper: rate p; fgsm: one "
        "gradient-sign step of size ε).",
        "",
        "Datasets: " + "; ".join(f"*{d}*: {DESCRIPTIONS[d]}" for d in sorted(runs.dataset.unique())) + ".",
        "",
        "**How robustness is scored and tested.** A run's *drop* is its clean test accuracy minus its mean accuracy "
        "over the perturbation's strengths above 0; the noisy RNN's *advantage* is the Lipschitz RNN's drop minus "
        "the noisy RNN's drop for the same seed (same initial weights and minibatches), so a lead in clean accuracy "
        "does not count as robustness. A comparison is at *matched clean accuracy* when the paired clean-accuracy "
        f"difference is shown equivalent within ±{tol:g} (TOST at level {alpha:g}: its {1 - 2 * alpha:.0%} "
        "t-interval lies inside the band; config ``noisy_rnn.equal_clean_tol``). Each (dataset, noise level, "
        "perturbation) comparison is a paired t-test over seeds; the p-values of all "
        f"{len(comp)} comparisons are **Holm-adjusted** (familywise error {alpha:g}) and the intervals are "
        "Bonferroni-simultaneous. Verdict per comparison: *supported* (Holm p below the level, noisy RNN loses "
        "less), *contradicted* (significant the other way), *inconclusive* otherwise, and always when the clean "
        "accuracies are not matched. The headline claim averages each seed's advantage over the matched "
        f"comparisons (unit: seed; one-sided t-test, {1 - alpha:.0%} t-interval).",
        "",
    ]
    head = claims_df[claims_df.claim_id == "robust"] if len(claims_df) else claims_df
    if len(head):
        r = head.iloc[0]
        if r.n_units > 0:
            lines += [
                f"**Headline: {r.verdict}.** {r.claim} Mean advantage {r.effect:+.3f} accuracy, "
                f"{r.ci_level:.0%} interval {_ci(r.ci_low, r.ci_high)}, {r.n_units} seeds, one-sided p = "
                f"{_p(r.p_value)}; {r.what_was_run}.",
                "",
            ]
        else:
            lines += [
                f"**Headline: {r.verdict}.** {r.claim} No comparison reached matched clean accuracy, so the "
                f"claim could not be tested at this scale ({r.what_was_run}).",
                "",
            ]
    elif comp.empty:
        lines += ["No noisy-vs-Lipschitz comparison (one of the two models is not in this run).", ""]
    for ds, g in runs.groupby("dataset", sort=True):
        clean = g.drop_duplicates(["variant", "seed"]).groupby("variant").clean_accuracy.agg(["mean", "std"]).fillna(0)
        cl = ", ".join(f"{v} {r['mean']:.3f} ± {r['std']:.3f}" for v, r in clean.iterrows())
        lines += [
            f"*{ds}* ({g.split.iloc[0]} train/test split; majority-class test accuracy "
            f"{g.chance_accuracy.iloc[0]:.3f}): clean test accuracy {cl}.",
            "",
        ]
        c = comp[comp.dataset == ds] if not comp.empty else comp
        for r in c.itertuples():
            match = "matched" if r.clean_matched else "not matched"
            lines.append(
                f"* {ds}, {r.variant} vs lipschitz, {r.perturbation}: drop {r.noisy_drop_mean:.3f} vs "
                f"{r.lipschitz_drop_mean:.3f}, advantage {r.advantage_mean:+.3f} "
                f"{_ci(r.advantage_ci_low, r.advantage_ci_high)}, noisy better in "
                f"{r.seeds_noisy_better}/{r.n_seeds} seeds, Holm p = {_p(r.p_holm)}; clean difference "
                f"{r.clean_diff_mean:+.3f} {_ci(r.clean_diff_ci_low, r.clean_diff_ci_high)} ({match}) "
                f"→ **{r.verdict}**."
            )
        if len(c):
            lines.append("")
    if not comp.empty:
        counts = comp.verdict.value_counts()
        lines += [
            f"**Overall**: of {len(comp)} comparisons ({int(comp.clean_matched.sum())} at matched clean "
            f"accuracy), {counts.get('supported', 0)} supported, {counts.get('contradicted', 0)} "
            f"contradicted, {counts.get('inconclusive', 0)} inconclusive after Holm's correction."
        ]
    return "\n".join(lines) + "\n"
