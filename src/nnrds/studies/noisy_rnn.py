"""Noisy-RNN regularization study: does training-time noise make a Lipschitz RNN robust to input noise?

Models (:mod:`nnrds.rnn`): Lipschitz RNN, noisy RNN (same drift, Euler–Maruyama noise during training
only), antisymmetric RNN, coRNN, LSTM. Data (offline; :mod:`nnrds.data.sequences`): ECG5000 (length-140
heartbeats, 5 classes; the mirror holds only the archive's 500-sequence training split), UCR ItalyPowerDemand
(length 24, 2 classes, official 67 / 1,029 split), and scikit-learn's 8×8 digits read pixel by pixel.

Splits (:func:`nnrds.data.sequences.fold_plan`): a pool without an official test split (ECG5000, digits) is
cross-validated, one repeat of stratified ``cv_folds``-fold CV per seed, so every sequence is tested once per seed;
with an official split the test set is the official one. Either way a stratified ``val_fraction`` of each
training part is held out as *validation* data: the training-noise level of the primary comparison is chosen on
it (:func:`select_levels`), never on test data.

One *cell* = one (dataset, model): every (seed, fold) (and, for the noisy RNN, every training-noise level) is a
replica of one batched network trained by :func:`nnrds.train.fit`, each on its own training sequences. Replica
seeds depend only on the run seed and fold, so the Lipschitz and the noisy RNN of seed s start from the *same*
weights, see the same splits and the same minibatch order: their comparison is paired, and the **seed** (one CV
repeat) is the unit. Evaluation is in eval mode (deterministic); the perturbed inputs are drawn once per
(perturbation, strength) from a fixed seed and shared by every model and seed.

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

import numpy as np
import pandas as pd
import torch

from .. import experiment, rnn, verdicts
from ..data.sequences import DESCRIPTIONS, Fold, SeqPool, fold_plan, load_pool
from ..train import fit

MODELS = rnn.KINDS
PERTURBATIONS = ("gaussian", "multiplicative", "salt_pepper", "fgsm")
#: figures behind the claims (rule noisy_rnn_figures)
STUDY = "noisy_rnn"
CELLS = ("run_cell",)
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
    "fold",
    "n_test",
    "n_val",
    "accuracy",
    "clean_accuracy",
    "val_accuracy",
    "val_clean_accuracy",
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


def fgsm(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, chunk: int | None = None) -> torch.Tensor:
    """One gradient-sign step per replica: returns (R, N, F) adversarial inputs (net in its current mode).
    ``chunk``: samples per backward pass (bounds the memory of long sequences x many replicas)."""
    R = net.n_replicas
    xr = (x.unsqueeze(0).expand(R, *x.shape) if x.dim() == 2 else x).detach()
    n = xr.shape[1]
    step = n if not chunk else int(chunk)
    out = []
    for i in range(0, n, step):
        xc = xr[:, i : i + step].clone().requires_grad_(True)
        yc = y[i : i + step]
        with torch.enable_grad():
            loss = rnn.cross_entropy_per_replica(net, xc, yc).sum()  # replica r's loss depends on xc[r] only
            (grad,) = torch.autograd.grad(loss, xc)
        out.append((xc + eps * grad.sign()).detach())
    return torch.cat(out, dim=1)


def perturb(
    kind: str,
    x: torch.Tensor,
    strength: float,
    gen: torch.Generator,
    data: SeqPool,
    net: torch.nn.Module | None = None,
    y: torch.Tensor | None = None,
    chunk: int | None = None,
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
        return fgsm(net, x, y, strength, chunk=chunk)
    raise ValueError(f"unknown perturbation {kind!r}; expected one of {PERTURBATIONS}")


# ---------------------------------------------------------------------------------------- training
def variant_name(model: str, add: float = 0.0, mult: float = 0.0) -> str:
    return f"noisy_add{add:g}_mult{mult:g}" if model == "noisy" else model


#: the study settings that are fields of :class:`nnrds.rnn.RNNArch`
ARCH_SETTINGS = (
    "hidden",
    "eps",
    "beta",
    "gamma_A",
    "gamma_W",
    "init_std",
    "eps_noise",
    "noise_sqrt_dt",
    "cornn_dt",
    "cornn_gamma",
    "cornn_epsilon",
)
#: training settings a task may override (config ``noisy_rnn.task_training.<task>``)
TRAIN_SETTINGS = ("epochs", "lr", "batch_size")
#: design settings a task may override as well (a costly task can run a thinner design at a smaller scale)
TASK_DESIGN = ("noise_levels", "models")


def arch_for(model: str, data: SeqPool, study: dict) -> rnn.RNNArch:
    """The architecture of ``model`` for ``data`` with the study's settings (:data:`ARCH_SETTINGS`)."""
    return rnn.RNNArch(
        kind=model,
        d_in=data.d_in,
        d_out=data.n_classes,
        seq_len=data.seq_len,
        **{k: study[k] for k in ARCH_SETTINGS},
    )


def training_settings(dataset: str, study: dict) -> dict:
    """epochs, lr, batch_size of ``dataset``: the study's, overridden by ``task_training[dataset]``."""
    over = (study.get("task_training") or {}).get(dataset) or {}
    return {k: over.get(k, study[k]) for k in TRAIN_SETTINGS}


def task_study(dataset: str, study: dict) -> dict:
    """The study section as ``dataset``'s cells see it: :data:`TASK_DESIGN` keys overridden by
    ``task_training[dataset]`` (e.g. ECG5000 with one pre-registered noise level at default scale)."""
    over = (study.get("task_training") or {}).get(dataset) or {}
    return {**study, **{k: over[k] for k in TASK_DESIGN if k in over}}


def noise_levels(study: dict) -> list[tuple[float, float]]:
    return [(float(l["add"]), float(l["mult"])) for l in study["noise_levels"]]


def replicas(model: str, study: dict, folds: list[Fold]) -> list[tuple[Fold, float, float]]:
    """(fold, additive noise, multiplicative noise) of every replica, in batch order: the noisy RNN has one replica
    per training-noise level and (seed, fold), every other model one per (seed, fold)."""
    levels = noise_levels(study) if model == "noisy" else [(0.0, 0.0)]
    return [(f, a, m) for (a, m) in levels for f in folds]


def init_seed(fold: Fold, base_seed: int) -> int:
    """Initialization (and training-noise) seed of a replica: a function of its run seed and fold only, the same
    for every model, so comparisons are paired."""
    return experiment.replica_seed(fold.seed, base_seed) + 7919 * fold.fold


def build_net(
    model: str, data: SeqPool, study: dict, reps: list, base_seed: int, rt: experiment.Runtime
) -> torch.nn.Module:
    """One replica per entry of ``reps``, initialised (and, for the noisy RNN, drawing its training noise) from
    :func:`init_seed` -- the same for every model, so comparisons are paired. The noisy RNN's replicas of one
    (seed, fold) at different noise levels therefore also share their noise draws (common random numbers: only the
    scale sigma_1, sigma_2 differs)."""
    noisy = model == "noisy"
    return rnn.build(
        arch_for(model, data, study),
        [init_seed(f, base_seed) for f, _, _ in reps],
        sigma_add=[a for _, a, _ in reps] if noisy else 0.0,
        sigma_mult=[m for _, _, m in reps] if noisy else 0.0,
        dtype=rt.dtype,
    ).to(rt.device)


@torch.no_grad()
def predictions(net: torch.nn.Module, X: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """argmax class of every replica for shared ``(N, F)`` or per-replica ``(R, N, F)`` inputs: ``(R, N)``."""
    n = X.shape[-2]
    step = n if not chunk else int(chunk)
    return torch.cat([net(X[..., i : i + step, :]).argmax(-1) for i in range(0, n, step)], dim=1)


def _subset_accuracy(correct: np.ndarray, index: list[np.ndarray]) -> np.ndarray:
    """Per replica r: the mean of ``correct[r, index[r]]``."""
    return np.array([correct[r, idx].mean() for r, idx in enumerate(index)], dtype=float)


def run_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train all (seed, fold) replicas (x noise levels) of one dataset x model (``cell["dataset"]``,
    ``cell["model"]``); evaluate clean and perturbed accuracy on every replica's validation and test sequences.
    Returns the tables runs and timings."""
    dataset, model, base_seed = cell["dataset"], cell["model"], cell.base_seed
    study = task_study(dataset, cell.study)
    if model not in MODELS:
        raise ValueError(f"unknown noisy_rnn model {model!r}; expected one of {MODELS}")
    rt = cell.prepare()
    data = load_pool(dataset, study, cell.data)
    folds = fold_plan(data, list(study["seeds"]), study)
    reps = replicas(model, study, folds)
    tr = training_settings(dataset, study)
    net = build_net(model, data, study, reps, base_seed, rt)
    X_all, y_all = data.X_all, data.y_all
    Xtr = rt.tensor(np.stack([X_all[f.train] for f, _, _ in reps]))
    ytr = rt.index(np.stack([y_all[f.train] for f, _, _ in reps])).unsqueeze(-1)
    res = fit(
        net,
        Xtr,
        ytr,
        epochs=tr["epochs"],
        lr=tr["lr"],
        batch_size=tr["batch_size"],
        seed=base_seed,
        loss_fn=rnn.cross_entropy_per_replica,
    )
    net.eval()
    t0 = time.perf_counter()
    chunk = study.get("eval_chunk")
    Xa, ya = rt.tensor(X_all), rt.index(y_all)
    train_acc = rnn.accuracy_per_replica(net, Xtr, ytr).cpu().numpy()
    val_idx = [f.val for f, _, _ in reps]
    test_idx = [f.test for f, _, _ in reps]
    clean_ok = (predictions(net, Xa, chunk) == ya).cpu().numpy()
    clean, val_clean = _subset_accuracy(clean_ok, test_idx), _subset_accuracy(clean_ok, val_idx)
    tested = y_all[np.unique(np.concatenate(test_idx))]
    head = {
        "dataset": dataset,
        "split": data.split,
        "model": model,
        "chance_accuracy": float(np.bincount(tested).max() / len(tested)),
        "n_params": net.arch.n_params(),
        "epochs": res.epochs,
    }
    own = [
        {
            "variant": variant_name(model, a, m),
            "noise_add": a,
            "noise_mult": m,
            "seed": f.seed,
            "fold": f.fold,
            "n_test": len(f.test),
            "n_val": len(f.val),
        }
        for f, a, m in reps
    ]
    rows = []
    for kind, grid in study["perturbations"].items():
        for i, strength in enumerate(grid):
            if strength == 0:
                acc, vacc = clean, val_clean
            else:
                gen = torch.Generator().manual_seed(base_seed * 1_000_003 + 1000 * _PERT_CODE[kind] + i)
                x_in = Xa if kind == "fgsm" else Xa.cpu()  # random perturbations use a CPU generator
                xp = perturb(kind, x_in, float(strength), gen, data, net=net, y=ya.view(-1, 1), chunk=chunk)
                ok = (predictions(net, xp.to(Xa.device), chunk) == ya).cpu().numpy()
                acc, vacc = _subset_accuracy(ok, test_idx), _subset_accuracy(ok, val_idx)
            rows += experiment.tabulate(
                {**head, "perturbation": kind, "strength": float(strength)},
                own,
                {
                    "accuracy": acc,
                    "clean_accuracy": clean,
                    "val_accuracy": vacc,
                    "val_clean_accuracy": val_clean,
                    "train_accuracy": train_acc,
                },
            )
    timings = [
        {
            "dataset": dataset,
            "model": model,
            "n_replicas": len(reps),
            "n_train": int(Xtr.shape[1]),
            "n_evaluated": len(y_all),
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


def seed_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per seed (the unit): the accuracies of its folds pooled by their sizes (test accuracies weighted
    by ``n_test``, validation by ``n_val``; one CV repeat tests every pool sequence once)."""
    r = runs.assign(
        _t=runs.accuracy * runs.n_test,
        _c=runs.clean_accuracy * runs.n_test,
        _v=runs.val_accuracy * runs.n_val,
        _vc=runs.val_clean_accuracy * runs.n_val,
    )
    g = r.groupby([*GROUP, "seed"], sort=True)
    out = g.agg(
        split=("split", "first"),
        n_folds=("fold", "nunique"),
        n_test=("n_test", "sum"),
        n_val=("n_val", "sum"),
        _t=("_t", "sum"),
        _c=("_c", "sum"),
        _v=("_v", "sum"),
        _vc=("_vc", "sum"),
        train_accuracy=("train_accuracy", "mean"),
        chance_accuracy=("chance_accuracy", "first"),
        n_params=("n_params", "first"),
    ).reset_index()
    out["accuracy"] = out.pop("_t") / out.n_test
    out["clean_accuracy"] = out.pop("_c") / out.n_test
    out["val_accuracy"] = out.pop("_v") / out.n_val
    out["val_clean_accuracy"] = out.pop("_vc") / out.n_val
    return out


def summarize(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (ddof=1; 0 for a single seed) over seeds per model × dataset × perturbation × strength."""
    g = seeds.groupby(GROUP, sort=True)
    out = g.agg(
        n_seeds=("seed", "nunique"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        clean_accuracy_mean=("clean_accuracy", "mean"),
        clean_accuracy_std=("clean_accuracy", "std"),
        val_clean_accuracy_mean=("val_clean_accuracy", "mean"),
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
    "val_clean_accuracy_mean",
    "train_accuracy_mean",
]


def clean_vs_training_noise(seeds: pd.DataFrame) -> pd.DataFrame:
    """The regularization trade-off: clean test accuracy (mean, std with ddof=1 -- 0 for one seed), validation and
    training accuracy (mean) over seeds per dataset, multiplicative training-noise level sigma_2 and additive level
    sigma_1, for the Lipschitz and the noisy RNN. Every sigma_2 curve starts at the Lipschitz RNN."""
    clean = seeds.drop_duplicates(["dataset", "variant", "seed"])
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
                val_clean_accuracy_mean=("val_clean_accuracy", "mean"),
                train_accuracy_mean=("train_accuracy", "mean"),
            )
            parts.append(t.reset_index().assign(dataset=ds, noise_mult=float(mult)))
    if not parts:
        return pd.DataFrame(columns=NOISE_CURVE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["clean_accuracy_std"] = out["clean_accuracy_std"].fillna(0.0)
    return out[NOISE_CURVE_COLUMNS]


def normalized_drops(seeds: pd.DataFrame, split: str = "test", min_room: float = 0.05) -> pd.DataFrame:
    """Per (dataset, variant, perturbation, seed): clean accuracy, mean perturbed accuracy over the strengths > 0,
    and the *normalized drop* (clean − perturbed) / (clean − chance): the share of the above-chance accuracy that
    the perturbation destroys (0 = unaffected, 1 = down to the majority class), so a model is not credited with
    robustness for having less accuracy to lose. NaN when clean − chance < ``min_room`` (config
    ``claims.min_room``): a model hardly above chance has nothing to lose and its ratio would explode; such seeds
    drop out of that comparison (``n_units`` shows it). ``split="val"`` scores the validation accuracies instead. Plus ``perturbation = "pooled"``: the mean
    normalized drop over the perturbation types (the primary score)."""
    acc, clean = ("accuracy", "clean_accuracy") if split == "test" else ("val_accuracy", "val_clean_accuracy")
    keys = ["dataset", "model", "variant", "noise_add", "noise_mult", "perturbation", "seed"]
    d = seeds[seeds.strength > 0]
    g = d.groupby(keys, sort=True).agg(
        clean=(clean, "first"), perturbed=(acc, "mean"), chance=("chance_accuracy", "first")
    )
    g = g.reset_index()
    room = g.clean - g.chance
    g["drop"] = g.clean - g.perturbed
    ok = room >= min_room
    g["normalized_drop"] = np.where(ok, g["drop"] / room.where(ok, 1.0), np.nan)
    pooled = (
        g.groupby([k for k in keys if k != "perturbation"], sort=True)
        .agg(
            clean=("clean", "first"),
            perturbed=("perturbed", "mean"),
            chance=("chance", "first"),
            drop=("drop", "mean"),
            normalized_drop=("normalized_drop", "mean"),
        )
        .reset_index()
        .assign(perturbation="pooled")
    )
    return pd.concat([g, pooled[g.columns]], ignore_index=True)


SELECTION_COLUMNS = [
    "dataset",
    "variant",
    "noise_add",
    "noise_mult",
    "n_seeds",
    "lipschitz_val_clean",
    "noisy_val_clean",
    "val_clean_diff",
    "matched",
    "chosen",
]


def select_levels(seeds: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The pre-registered choice of the training-noise level of each dataset's primary comparison, made on
    **validation** data only. Per noisy level: the mean over seeds of the validation clean accuracy, noisy −
    Lipschitz; *matched* when it lies within ±``equal_clean_tol``. Chosen: the matched level with the most noise
    (σ₁ + σ₂; ties: the first in ``noise_levels``) -- the strongest regularization that keeps clean accuracy; when
    no level matches, the level with the smallest |difference| (flagged: ``matched`` false)."""
    tol = float(study.get("equal_clean_tol", 0.02))
    clean = seeds.drop_duplicates(["dataset", "variant", "seed"])
    rows = []
    for ds, g in clean.groupby("dataset", sort=True):
        lip = g[g.model == "lipschitz"].set_index("seed").val_clean_accuracy
        cand = []
        for var, n in g[g.model == "noisy"].groupby("variant", sort=False):
            n = n.set_index("seed").val_clean_accuracy
            common = n.index.intersection(lip.index)
            if len(common) == 0:
                continue
            diff = float((n.loc[common] - lip.loc[common]).mean())
            r0 = g[g.variant == var].iloc[0]
            cand.append(
                {
                    "dataset": ds,
                    "variant": var,
                    "noise_add": float(r0.noise_add),
                    "noise_mult": float(r0.noise_mult),
                    "n_seeds": len(common),
                    "lipschitz_val_clean": float(lip.loc[common].mean()),
                    "noisy_val_clean": float(n.loc[common].mean()),
                    "val_clean_diff": diff,
                    "matched": bool(abs(diff) <= tol),
                    "chosen": False,
                }
            )
        if not cand:
            continue
        order = {lv: i for i, lv in enumerate(noise_levels(study))} if study.get("noise_levels") else {}
        rank = lambda c: order.get((c["noise_add"], c["noise_mult"]), 0)  # noqa: E731
        matched = [c for c in cand if c["matched"]]
        pick = (
            max(matched, key=lambda c: (c["noise_add"] + c["noise_mult"], -rank(c)))
            if matched
            else min(cand, key=lambda c: (abs(c["val_clean_diff"]), rank(c)))
        )
        pick["chosen"] = True
        rows += cand
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


def _paired(nd: pd.DataFrame, ds: str, a: str, b: str, pert: str, col: str = "normalized_drop") -> pd.Series:
    """Per seed: ``col`` of variant ``a`` minus that of variant ``b`` (dataset ``ds``, perturbation ``pert``)."""
    x = nd[(nd.dataset == ds) & (nd.perturbation == pert)]
    va, vb = x[x.variant == a].set_index("seed")[col], x[x.variant == b].set_index("seed")[col]
    common = va.index.intersection(vb.index)
    return (va.loc[common] - vb.loc[common]).sort_index()


def _clean_diff(seeds: pd.DataFrame, ds: str, a: str, b: str) -> pd.Series:
    c = seeds[seeds.dataset == ds].drop_duplicates(["variant", "seed"])
    va, vb = c[c.variant == a].set_index("seed").clean_accuracy, c[c.variant == b].set_index("seed").clean_accuracy
    common = va.index.intersection(vb.index)
    return (va.loc[common] - vb.loc[common]).sort_index()


def claim_specs(seeds: pd.DataFrame, study: dict) -> tuple[list[dict], list[dict]]:
    """The specs (:func:`nnrds.verdicts.verdict_table`) of the PRIMARY family (one claim per dataset, at most four)
    and of the SECONDARY family (everything else). Advantage per seed = normalized drop (Lipschitz) − normalized
    drop (noisy), > 0: the noisy RNN loses a smaller share of its above-chance accuracy."""
    margin = float(study.get("claims", {}).get("margin", 0.05))
    tol = float(study.get("equal_clean_tol", 0.02))
    sel = select_levels(seeds, study)
    nd = normalized_drops(seeds, min_room=float(study.get("claims", {}).get("min_room", 0.05)))
    n_seeds = seeds.seed.nunique()
    primary, secondary = [], []
    base = {
        "study": "noisy_rnn",
        "unit": "seed (one CV repeat / split: same initial weights, splits and minibatches for every model)",
        "figure": FIGURES["robust"],
    }
    for ds in sorted(sel.dataset.unique()):
        s = sel[sel.dataset == ds]
        ch = s[s.chosen].iloc[0]
        how = (
            f"validation-chosen level σ₁ = {ch.noise_add:g}, σ₂ = {ch.noise_mult:g} (validation clean accuracy "
            f"{ch.val_clean_diff:+.3f} vs Lipschitz, {'matched' if ch.matched else 'NOT matched'} within ±{tol:g})"
        )
        x = _paired(nd, ds, "lipschitz", ch.variant, "pooled")
        primary.append(
            {
                **base,
                "claim_id": f"primary/{ds}",
                "claim": f"PRIMARY. On {ds}, the noisy RNN at its validation-chosen training-noise level loses a "
                "smaller share of its above-chance accuracy under input perturbations than the Lipschitz RNN "
                "(pooled over perturbation types and strengths), by at least the margin.",
                "what_was_run": f"{n_seeds} seeds; {how}; normalized drop (clean − perturbed)/(clean − chance) "
                f"averaged over {', '.join(sorted(set(nd.perturbation) - {'pooled'}))}",
                "effect_name": "normalized drop (Lipschitz) − normalized drop (noisy), pooled",
                "x": x.to_numpy(float),
                "kind": "superiority",
                "margin": margin,
            }
        )
        secondary.append(
            {
                **base,
                "claim_id": f"secondary/{ds}/clean",
                "claim": f"SECONDARY. On {ds}, the validation-chosen noisy RNN loses at most {tol:g} clean test "
                "accuracy against the Lipschitz RNN (non-inferiority).",
                "what_was_run": f"{n_seeds} seeds; {how}",
                "effect_name": "clean test accuracy (Lipschitz) − clean test accuracy (noisy)",
                "x": _clean_diff(seeds, ds, "lipschitz", ch.variant).to_numpy(float),
                "kind": "non_superiority",
                "margin": tol,
            }
        )
        for r in s.itertuples():
            for pert in sorted(nd[nd.dataset == ds].perturbation.unique()):
                if pert == "pooled" and r.chosen:
                    continue  # that one is the primary claim
                secondary.append(
                    {
                        **base,
                        "claim_id": f"secondary/{ds}/{r.variant}/{pert}",
                        "claim": f"SECONDARY. On {ds}, the noisy RNN ({r.variant}"
                        f"{', validation-chosen' if r.chosen else ''}) loses a smaller share of its above-chance "
                        f"accuracy under {pert} perturbations than the Lipschitz RNN, by at least the margin.",
                        "what_was_run": f"{n_seeds} seeds; validation clean accuracy {r.val_clean_diff:+.3f} vs "
                        f"Lipschitz ({'matched' if r.matched else 'not matched'} within ±{tol:g})",
                        "effect_name": f"normalized drop (Lipschitz) − normalized drop (noisy), {pert}",
                        "x": _paired(nd, ds, "lipschitz", r.variant, pert).to_numpy(float),
                        "kind": "superiority",
                        "margin": margin,
                    }
                )
        for other in sorted(set(nd[nd.dataset == ds].model) - {"lipschitz", "noisy"}):
            secondary.append(
                {
                    **base,
                    "claim_id": f"secondary/{ds}/vs_{other}/pooled",
                    "claim": f"SECONDARY. On {ds}, the validation-chosen noisy RNN loses a smaller share of its "
                    f"above-chance accuracy under input perturbations (pooled) than the {other} RNN, by at least "
                    "the margin.",
                    "what_was_run": f"{n_seeds} seeds; {how}",
                    "effect_name": f"normalized drop ({other}) − normalized drop (noisy), pooled",
                    "x": _paired(nd, ds, other, ch.variant, "pooled").to_numpy(float),
                    "kind": "superiority",
                    "margin": margin,
                }
            )
    return primary, secondary


def claims(seeds: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`): the primary family (``primary/<dataset>``,
    Holm over its at most four claims) and the secondary family (``secondary/...``, Holm over those), each through
    :func:`nnrds.verdicts.verdict_table` (intervals at the Holm step-down level)."""
    alpha = float(study.get("claims", {}).get("alpha", 0.05))
    primary, secondary = claim_specs(seeds, study)
    if len(primary) > 4:
        raise ValueError(f"the primary family has at most four claims (one per task); got {len(primary)}")
    parts = [verdicts.verdict_table(f, alpha) for f in (primary, secondary) if f]
    if not parts:
        return pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    for fam, n in (("primary", len(primary)), ("secondary", len(secondary))):
        m = out.claim_id.str.startswith(f"{fam}/")
        out.loc[m, "test"] = out.loc[m, "test"].str.replace(f"Holm over {n} claims", f"Holm over the {n} {fam} claims")
    return out


COMPARE_COLUMNS = [
    "dataset",
    "role",
    "claim_id",
    "variant",
    "noise_add",
    "noise_mult",
    "perturbation",
    "n_seeds",
    "val_clean_diff",
    "matched",
    "chosen",
    "lipschitz_clean_mean",
    "noisy_clean_mean",
    "lipschitz_normalized_drop_mean",
    "noisy_normalized_drop_mean",
    "advantage_mean",
    "advantage_ci_low",
    "advantage_ci_high",
    "ci_level",
    "seeds_noisy_better",
    "p_adjusted",
    "verdict",
]


def compare(seeds: pd.DataFrame, claims_df: pd.DataFrame, study: dict) -> pd.DataFrame:
    """Noisy-vs-Lipschitz comparisons per dataset × noise level × perturbation (and ``pooled``) with their claim
    (primary or secondary): normalized drops, the advantage and its interval and verdict from ``claims_df``."""
    sel = select_levels(seeds, study)
    nd = normalized_drops(seeds, min_room=float(study.get("claims", {}).get("min_room", 0.05)))
    cl = seeds.drop_duplicates(["dataset", "variant", "seed"])
    rows = []
    for r in sel.itertuples():
        for pert in sorted(nd[nd.dataset == r.dataset].perturbation.unique()):
            role = "primary" if (pert == "pooled" and r.chosen) else "secondary"
            cid = f"primary/{r.dataset}" if role == "primary" else f"secondary/{r.dataset}/{r.variant}/{pert}"
            c = claims_df[claims_df.claim_id == cid]
            x = nd[(nd.dataset == r.dataset) & (nd.perturbation == pert)]
            adv = _paired(nd, r.dataset, "lipschitz", r.variant, pert)
            cc = cl[cl.dataset == r.dataset]
            rows.append(
                {
                    "dataset": r.dataset,
                    "role": role,
                    "claim_id": cid,
                    "variant": r.variant,
                    "noise_add": r.noise_add,
                    "noise_mult": r.noise_mult,
                    "perturbation": pert,
                    "n_seeds": len(adv),
                    "val_clean_diff": r.val_clean_diff,
                    "matched": r.matched,
                    "chosen": r.chosen,
                    "lipschitz_clean_mean": float(cc[cc.model == "lipschitz"].clean_accuracy.mean()),
                    "noisy_clean_mean": float(cc[cc.variant == r.variant].clean_accuracy.mean()),
                    "lipschitz_normalized_drop_mean": float(x[x.variant == "lipschitz"].normalized_drop.mean()),
                    "noisy_normalized_drop_mean": float(x[x.variant == r.variant].normalized_drop.mean()),
                    "advantage_mean": float(adv.mean()) if len(adv) else math.nan,
                    "advantage_ci_low": float(c.ci_low.iloc[0]) if len(c) else math.nan,
                    "advantage_ci_high": float(c.ci_high.iloc[0]) if len(c) else math.nan,
                    "ci_level": float(c.ci_level.iloc[0]) if len(c) else math.nan,
                    "seeds_noisy_better": int((adv > 0).sum()),
                    "p_adjusted": float(c.p_adjusted.iloc[0]) if len(c) else math.nan,
                    "verdict": c.verdict.iloc[0] if len(c) else verdicts.INCONCLUSIVE,
                }
            )
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def _ci(lo: float, hi: float) -> str:
    return "[n/a]" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.3f}, {hi:+.3f}]"


def _p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.2g}"


def caption(seeds: pd.DataFrame, sel: pd.DataFrame, claims_df: pd.DataFrame, scale: str, study: dict) -> str:
    """RST caption (checked by tests/workflow/test_captions.py: no docutils system message)."""
    tol = study["equal_clean_tol"]
    alpha = float(study.get("claims", {}).get("alpha", 0.05))
    margin = float(study.get("claims", {}).get("margin", 0.05))
    over = study.get("task_training") or {}
    lines = [
        f"Noisy-RNN regularization study, **{scale}** scale: hidden {study['hidden']}, Euler step ε = {study['eps']}, "
        f"β = {study['beta']}, γ_A = {study['gamma_A']}, γ_W = {study['gamma_W']}; coRNN Δt = {study['cornn_dt']}, "
        f"γ = {study['cornn_gamma']}, ε = {study['cornn_epsilon']}; {study['epochs']} epochs of Adam "
        f"(lr {study['lr']}, batch {study['batch_size']})"
        + "".join(f"; {t}: {', '.join(f'{k} {v}' for k, v in o.items())}" for t, o in sorted(over.items()))
        + f"; {len(study['seeds'])} seeds ({study['seeds'][0]}–{study['seeds'][-1]}); training noise σ = "
        f"ε_n(σ₁ I + σ₂ diag(f)) with ε_n = {study['eps_noise']}, Euler–Maruyama "
        f"{'with' if study['noise_sqrt_dt'] else 'without'} √Δt scaling, on only during training. Perturbations are "
        "applied to evaluation inputs only (gaussian: x + σξ; multiplicative: x(1 + σξ); salt_pepper: rate p; fgsm: "
        "one gradient-sign step of size ε).",
        "",
        "Datasets: " + "; ".join(f"*{d}*: {DESCRIPTIONS[d]}" for d in sorted(seeds.dataset.unique())) + ". "
        "ItalyPowerDemand and the ECG5000 file are cited in the raw-data layer's metadata (UCR archive, Dau et al. "
        "2019).",
        "",
        f"**Splits.** A pool without an official test split is cross-validated: one repeat of stratified "
        f"{study['cv_folds']}-fold CV per seed, so every sequence is tested once per seed and a seed's accuracy is "
        "pooled over its folds; with an official split the test set is the official one. A stratified "
        f"{study['val_fraction']:g} of each training part is *validation* data. The seed is the unit (same initial "
        "weights, splits and minibatches for every model).",
        "",
        "**Pre-registered design.** Robustness is the *normalized drop* (clean − perturbed)/(clean − chance) (chance: "
        "majority-class accuracy), averaged over each perturbation's strengths above 0, so a model with less clean "
        "accuracy gets no credit for having less to lose (undefined, and the seed left out of that comparison, when "
        f"clean − chance < {float(study.get('claims', {}).get('min_room', 0.05)):g}). The noisy RNN's training-noise level for the primary "
        f"comparison is chosen on **validation** data: the level with the most noise whose validation clean accuracy "
        f"is within ±{tol:g} of the Lipschitz RNN's (mean over seeds). PRIMARY family (Holm over its "
        f"{int(claims_df.claim_id.str.startswith('primary/').sum()) if len(claims_df) else 0} claims, one per "
        "dataset): advantage = normalized drop (Lipschitz) − normalized drop (noisy), pooled over the perturbation "
        f"types; superiority with margin {margin:g}: *supported* when the interval lies above 0, *contradicted* when "
        f"it lies below the margin {margin:g} (no meaningful advantage), else *inconclusive*. Everything else "
        "(every level × perturbation, the clean-accuracy non-inferiority, the other models) is a SECONDARY row, Holm "
        "within the secondary family. Intervals: t at the Holm step-down level (familywise error "
        f"{alpha:g}).",
        "",
    ]
    prim = claims_df[claims_df.claim_id.str.startswith("primary/")] if len(claims_df) else claims_df
    for r in prim.itertuples():
        ntd = getattr(r, "n_units_to_decide", None)
        extra = f", units to decide {ntd:g}" if ntd is not None and np.isfinite(ntd) else ""
        lines.append(
            f"* **{r.claim_id}: {r.verdict}.** Advantage {r.effect:+.3f} {_ci(r.ci_low, r.ci_high)} "
            f"({r.ci_level:.1%} interval, {r.n_units} seeds, Holm p = {_p(r.p_adjusted)}{extra}); {r.what_was_run}."
        )
    if len(prim):
        lines.append("")
    for ds, g in seeds.groupby("dataset", sort=True):
        clean = g.drop_duplicates(["variant", "seed"]).groupby("variant").clean_accuracy.agg(["mean", "std"]).fillna(0)
        cl = ", ".join(f"{v} {r['mean']:.3f} ± {r['std']:.3f}" for v, r in clean.iterrows())
        s = sel[sel.dataset == ds]
        vs = "; ".join(f"{r.variant} {r.val_clean_diff:+.3f}{' (chosen)' if r.chosen else ''}" for r in s.itertuples())
        lines += [
            f"*{ds}* ({g.split.iloc[0]} split; majority-class accuracy {g.chance_accuracy.iloc[0]:.3f}): clean test "
            f"accuracy (mean ± std over seeds) {cl}. Validation clean accuracy noisy − Lipschitz: {vs}.",
            "",
        ]
    if len(claims_df):
        sec = claims_df[claims_df.claim_id.str.startswith("secondary/")]
        counts = sec.verdict.value_counts()
        lines += [
            f"**Secondary rows** ({len(sec)}, Holm within them): {counts.get('supported', 0)} supported, "
            f"{counts.get('contradicted', 0)} contradicted, {counts.get('inconclusive', 0)} inconclusive; see "
            "claims.csv and robustness_comparison.csv."
        ]
    return "\n".join(lines) + "\n"
