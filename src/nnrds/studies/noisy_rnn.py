"""Noisy-RNN regularization study: does training-time noise make a Lipschitz RNN robust to input noise?

Models (:mod:`nnrds.rnn`): Lipschitz RNN, noisy RNN (same drift, Euler–Maruyama noise during training
only), antisymmetric RNN, LSTM. Data (offline): scikit-learn's bundled 8×8 digits read pixel by pixel
(length-64 sequences, 1 input per step), the same with a fixed pixel permutation, and ECG5000
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

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import rnn
from ..train import fit, pick_device, seed_everything

DATASETS = ("digits", "digits_permuted", "ecg5000")
MODELS = rnn.KINDS
PERTURBATIONS = ("gaussian", "multiplicative", "salt_pepper", "fgsm")

DESCRIPTIONS = {
    "digits": "scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes) read pixel by pixel "
              "as length-64 sequences, pixels scaled to [0, 1]; stratified train/test split",
    "digits_permuted": "the same digits with one fixed random permutation of the 64 pixels (seed "
                       "`permutation_seed`)",
    "ecg5000": "UCR ECG5000 heartbeats (length 140, 5 classes, z-normalized by the archive); only the "
               "archive's 500-sequence training split is in the offline mirror, so it is split stratified "
               "into this study's train/test sets (not the official split; with a full download of the archive "
               "the official 500/4,500 split is used and the table's `split` column says `official`)",
}

RUN_COLUMNS = ["dataset", "split", "model", "variant", "noise_add", "noise_mult", "perturbation", "strength", "seed",
               "accuracy", "clean_accuracy", "train_accuracy", "chance_accuracy", "n_params", "epochs"]
_PERT_CODE = {k: i for i, k in enumerate(PERTURBATIONS)}


# --------------------------------------------------------------------------------------------- data
@dataclass
class SeqData:
    X_train: np.ndarray  # (n, T*d) float
    y_train: np.ndarray  # (n,) int
    X_test: np.ndarray
    y_test: np.ndarray
    seq_len: int
    d_in: int
    n_classes: int
    lo: float  # salt-and-pepper values
    hi: float
    split: str = "stratified"  # stratified: this study's split; official: the archive's train/test split


def ecg_path(study: dict, data: dict | None) -> Path:
    """``study.ecg_path`` or, when null, ``<data.mirror>/ECG5000_TRAIN.txt``.

    The DAG sets ``ecg_path`` to the raw-data layer's verified ``results/data/ecg5000/train.csv``
    (rule ``data_acquire_ecg5000``); when that layer downloaded the full archive it also wrote
    ``test.csv`` there, and the official train/test split is used instead of a stratified split.
    """
    if study.get("ecg_path"):
        return Path(study["ecg_path"])
    mirror = (data or {}).get("mirror")
    if not mirror:
        raise ValueError("noisy_rnn needs ECG5000: set `noisy_rnn.ecg_path` or `data.mirror` (in the DAG the "
                         "raw-data rule data_acquire_ecg5000 provides it)")
    return Path(mirror) / "ECG5000_TRAIN.txt"


def load_dataset(name: str, study: dict, data: dict | None = None, seed: int = 0) -> SeqData:
    """Stratified train/test split (test fraction ``study.test_fraction``, seeded with ``seed``), except for
    ECG5000 when the archive's official test split is available (see :func:`ecg_path`)."""
    from sklearn.model_selection import train_test_split

    if name in ("digits", "digits_permuted"):
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.astype(np.float64) / 16.0
        if name == "digits_permuted":
            X = X[:, np.random.default_rng(study["permutation_seed"]).permutation(X.shape[1])]
        seq_len = 64
    elif name == "ecg5000":
        path = ecg_path(study, data)
        X, y = _read_ucr(path)
        seq_len = X.shape[1]
        test = _official_test(path)
        if test is not None:  # a full download: use the archive's own train/test split
            Xte, yte = _read_ucr(test)
            return _finish(X, y, Xte, yte, seq_len, study, "official")
    else:
        raise ValueError(f"unknown noisy_rnn dataset {name!r}; expected one of {DATASETS}")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=study["test_fraction"], stratify=y, random_state=seed)
    return _finish(Xtr, ytr, Xte, yte, seq_len, study, "stratified")


def _finish(Xtr, ytr, Xte, yte, seq_len, study, split) -> SeqData:
    if study.get("max_train"):
        Xtr, ytr = Xtr[:study["max_train"]], ytr[:study["max_train"]]
    if study.get("max_test"):
        Xte, yte = Xte[:study["max_test"]], yte[:study["max_test"]]
    n_classes = int(max(ytr.max(), yte.max())) + 1
    return SeqData(Xtr, ytr, Xte, yte, seq_len, 1, n_classes, float(Xtr.min()), float(Xtr.max()), split)


def _read_ucr(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """UCR text (class in column 1) or the raw-data layer's CSV (``label`` column); classes 1..K -> 0..K-1."""
    if not path.exists():
        raise FileNotFoundError(f"ECG5000 file {path} does not exist (config `noisy_rnn.ecg_path` / `data.mirror`)")
    if path.suffix == ".csv":
        df = pd.read_csv(path)
        return df.drop(columns="label").to_numpy(np.float64), df["label"].to_numpy(int) - 1
    raw = np.loadtxt(path, ndmin=2)
    return raw[:, 1:], raw[:, 0].astype(int) - 1


def _official_test(train_path: Path) -> Path | None:
    """The archive's test split next to the training file, if a full download put it there."""
    for name in ("test.csv", "ECG5000_TEST.txt"):
        p = train_path.with_name(name)
        if p.exists() and p != train_path:
            return p
    return None


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


def perturb(kind: str, x: torch.Tensor, strength: float, gen: torch.Generator, data: SeqData,
            net: torch.nn.Module | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
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


def arch_for(model: str, data: SeqData, study: dict) -> rnn.RNNArch:
    return rnn.RNNArch(kind=model, d_in=data.d_in, d_out=data.n_classes, seq_len=data.seq_len,
                       hidden=study["hidden"], eps=study["eps"], beta=study["beta"], gamma_A=study["gamma_A"],
                       gamma_W=study["gamma_W"], init_std=study["init_std"], eps_noise=study["eps_noise"],
                       noise_sqrt_dt=study["noise_sqrt_dt"])


def replica_seed(seed: int, base_seed: int) -> int:
    """Init (and training-noise) seed of a replica: the same for every model, so comparisons are paired.

    The noisy RNN's replicas of one seed at different noise levels therefore also share their noise draws
    (common random numbers: only the scale σ₁, σ₂ differs)."""
    return 1000 * seed + base_seed


def run_cell(dataset: str, model: str, study: dict, data_cfg: dict | None = None, *, base_seed: int = 0,
             device: str = "auto", dtype: str = "float32") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train all seeds (x noise levels) of one dataset x model; evaluate clean and perturbed accuracy."""
    if model not in MODELS:
        raise ValueError(f"unknown noisy_rnn model {model!r}; expected one of {MODELS}")
    seed_everything(base_seed)
    dev = pick_device(device)
    tdtype = getattr(torch, dtype)
    data = load_dataset(dataset, study, data_cfg, seed=base_seed)
    seeds = list(study["seeds"])
    levels = [(float(l["add"]), float(l["mult"])) for l in study["noise_levels"]] if model == "noisy" else [(0.0, 0.0)]
    reps = [(s, a, m) for (a, m) in levels for s in seeds]
    arch = arch_for(model, data, study)
    net = rnn.build(arch, [replica_seed(s, base_seed) for s, _, _ in reps],
                    sigma_add=[a for _, a, _ in reps] if model == "noisy" else 0.0,
                    sigma_mult=[m for _, _, m in reps] if model == "noisy" else 0.0, dtype=tdtype).to(dev)

    def t(a, **kw):
        return torch.as_tensor(a, device=dev, **kw)

    Xtr, Xte = t(data.X_train, dtype=tdtype), t(data.X_test, dtype=tdtype)
    ytr, yte = t(data.y_train).view(-1, 1), t(data.y_test).view(-1, 1)
    res = fit(net, Xtr, ytr, epochs=study["epochs"], lr=study["lr"], batch_size=study["batch_size"],
              seed=base_seed, loss_fn=rnn.cross_entropy_per_replica)
    net.eval()
    t0 = time.perf_counter()
    train_acc = rnn.accuracy_per_replica(net, Xtr, ytr).cpu().numpy()
    clean = rnn.accuracy_per_replica(net, Xte, yte).cpu().numpy()
    chance = float(np.bincount(data.y_test).max() / len(data.y_test))
    rows = []
    for kind, grid in study["perturbations"].items():
        for i, strength in enumerate(grid):
            gen = torch.Generator().manual_seed(base_seed * 1_000_003 + 1000 * _PERT_CODE[kind] + i)
            x_in = Xte if kind == "fgsm" else Xte.cpu()  # random perturbations use a CPU generator
            xp = perturb(kind, x_in, float(strength), gen, data, net=net, y=yte)
            acc = rnn.accuracy_per_replica(net, xp.to(dev), yte).cpu().numpy()
            for r, (s, a, m) in enumerate(reps):
                rows.append({"dataset": dataset, "split": data.split, "model": model, "variant": variant_name(model, a, m),
                             "noise_add": a, "noise_mult": m, "perturbation": kind, "strength": float(strength),
                             "seed": s, "accuracy": float(acc[r]), "clean_accuracy": float(clean[r]),
                             "train_accuracy": float(train_acc[r]), "chance_accuracy": chance,
                             "n_params": arch.n_params(), "epochs": res.epochs})
    timings = [{"dataset": dataset, "model": model, "n_replicas": len(reps), "n_train": len(data.y_train),
                "n_test": len(data.y_test), "seq_len": data.seq_len, "epochs": res.epochs,
                "train_wall_time_s": res.wall_time_s, "eval_wall_time_s": time.perf_counter() - t0,
                "device": str(dev)}]
    return pd.DataFrame(rows, columns=RUN_COLUMNS), pd.DataFrame(timings)


# ------------------------------------------------------------------------------------------ summary
GROUP = ["dataset", "model", "variant", "noise_add", "noise_mult", "perturbation", "strength"]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (ddof=1; 0 for a single seed) over seeds per model × dataset × perturbation × strength."""
    g = runs.groupby(GROUP, sort=True)
    out = g.agg(n_seeds=("seed", "nunique"), accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                clean_accuracy_mean=("clean_accuracy", "mean"), clean_accuracy_std=("clean_accuracy", "std"),
                train_accuracy_mean=("train_accuracy", "mean"), chance_accuracy=("chance_accuracy", "first"),
                n_params=("n_params", "first")).reset_index()
    for c in ("accuracy_std", "clean_accuracy_std"):
        out[c] = out[c].fillna(0.0)
    return out


def compare(runs: pd.DataFrame) -> pd.DataFrame:
    """Paired noisy-vs-Lipschitz comparison per dataset × noise level × perturbation.

    Robustness score of a run = mean accuracy over the perturbation's strengths > 0. Differences are
    noisy − Lipschitz of the same seed (same initial weights and minibatches).
    """
    rows = []
    base = runs[runs.model == "lipschitz"]
    for (ds, var, pert), g in runs[runs.model == "noisy"].groupby(["dataset", "variant", "perturbation"], sort=True):
        b = base[(base.dataset == ds) & (base.perturbation == pert)]
        if b.empty:
            continue

        def per_seed(df):
            d = df[df.strength > 0]
            return pd.DataFrame({"score": d.groupby("seed").accuracy.mean(),
                                 "clean": df.groupby("seed").clean_accuracy.first()})

        n, l = per_seed(g), per_seed(b)
        common = n.index.intersection(l.index)
        if len(common) == 0 or n.score.isna().all():
            continue
        n, l = n.loc[common], l.loc[common]
        d_score, d_clean = n.score - l.score, n.clean - l.clean
        sd = (lambda s: float(s.std()) if len(s) > 1 else 0.0)
        rows.append({"dataset": ds, "variant": var, "noise_add": float(g.noise_add.iloc[0]),
                     "noise_mult": float(g.noise_mult.iloc[0]), "perturbation": pert, "n_seeds": len(common),
                     "lipschitz_clean_mean": float(l.clean.mean()), "noisy_clean_mean": float(n.clean.mean()),
                     "clean_diff_mean": float(d_clean.mean()), "clean_diff_std": sd(d_clean),
                     "lipschitz_score_mean": float(l.score.mean()), "noisy_score_mean": float(n.score.mean()),
                     "score_diff_mean": float(d_score.mean()), "score_diff_std": sd(d_score),
                     "seeds_noisy_better": int((d_score > 0).sum()),
                     "lipschitz_drop_mean": float((l.clean - l.score).mean()),
                     "noisy_drop_mean": float((n.clean - n.score).mean())})
    return pd.DataFrame(rows)


def verdict(row, tol: float) -> str:
    """Words for one comparison row (paired over seeds)."""
    equal = abs(row.clean_diff_mean) <= tol
    if row.score_diff_mean > 0 and row.seeds_noisy_better == row.n_seeds and row.n_seeds > 1:
        word = "more robust"
    elif row.score_diff_mean <= 0 and row.seeds_noisy_better <= row.n_seeds // 2:
        word = "not more robust"
    else:
        word = "inconclusive"
    return word if equal else f"not a like-for-like comparison (clean accuracies differ by {row.clean_diff_mean:+.3f}); {word} by perturbed accuracy"


def caption(runs: pd.DataFrame, comp: pd.DataFrame, scale: str, study: dict) -> str:
    tol = study["equal_clean_tol"]
    lines = [
        f"Noisy-RNN regularization study, **{scale}** scale: hidden {study['hidden']}, Euler step ε = {study['eps']}, "
        f"β = {study['beta']}, γ_A = {study['gamma_A']}, γ_W = {study['gamma_W']}, {study['epochs']} epochs of Adam "
        f"(lr {study['lr']}, batch {study['batch_size']}), seeds {study['seeds']}; training noise "
        f"σ = ε_n(σ₁ I + σ₂ diag(f)) with ε_n = {study['eps_noise']}, Euler–Maruyama "
        f"{'with' if study['noise_sqrt_dt'] else 'without'} √Δt scaling, on only during training. "
        "Accuracy is on the held-out test split, mean ± std over seeds; perturbations are applied to test inputs only "
        "(gaussian: x + σξ; multiplicative: x(1 + σξ); salt_pepper: rate p; fgsm: one gradient-sign step of size ε).",
        "",
        "Datasets: " + "; ".join(f"*{d}*: {DESCRIPTIONS[d]}" for d in sorted(runs.dataset.unique())) + ".",
        "",
    ]
    for ds, g in runs.groupby("dataset", sort=True):
        clean = g.drop_duplicates(["variant", "seed"]).groupby("variant").clean_accuracy.agg(["mean", "std"]).fillna(0)
        cl = ", ".join(f"{v} {r['mean']:.3f} ± {r['std']:.3f}" for v, r in clean.iterrows())
        lines.append(f"* **{ds}** ({g.split.iloc[0]} train/test split; majority-class test accuracy "
                     f"{g.chance_accuracy.iloc[0]:.3f}); "
                     f"clean test accuracy: {cl}.")
        c = comp[comp.dataset == ds] if not comp.empty else comp
        if c.empty:
            lines.append("  No noisy-vs-Lipschitz comparison (one of the two models is not in this run).")
            continue
        for var, cv in c.groupby("variant", sort=True):
            r0 = cv.iloc[0]
            eq = "equal within" if abs(r0.clean_diff_mean) <= tol else "NOT equal within"
            lines.append(f"  - {var} vs lipschitz: clean accuracy difference {r0.clean_diff_mean:+.3f} ± "
                         f"{r0.clean_diff_std:.3f} ({eq} the tolerance {tol}).")
            for r in cv.itertuples():
                lines.append(f"    {r.perturbation}: mean perturbed accuracy {r.noisy_score_mean:.3f} vs "
                             f"{r.lipschitz_score_mean:.3f}, paired difference {r.score_diff_mean:+.3f} ± "
                             f"{r.score_diff_std:.3f}, noisy better in {r.seeds_noisy_better}/{r.n_seeds} seeds; "
                             f"drop from clean {r.noisy_drop_mean:.3f} vs {r.lipschitz_drop_mean:.3f} → "
                             f"{verdict(r, tol)}.")
    if not comp.empty:
        eq = comp[comp.clean_diff_mean.abs() <= tol]
        n_more = sum(verdict(r, tol) == "more robust" for r in eq.itertuples())
        lines += ["", f"**Overall**: among {len(eq)} (dataset, noise level, perturbation) comparisons at equal clean "
                      f"accuracy (|Δclean| ≤ {tol}), the noisy RNN was more robust (higher mean perturbed accuracy in "
                      f"every seed) in {n_more}; {len(comp) - len(eq)} comparisons had unequal clean accuracy and "
                      "are not counted. With few seeds and small data this is weak evidence either way."]
    return "\n".join(lines) + "\n"
