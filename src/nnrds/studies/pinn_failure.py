"""PINN failure modes and two ways out (Krishnapriyan, Gholami, Zhe, Kirby & Mahoney, NeurIPS 2021).

Problems (:mod:`nnrds.data.pde`): convection (coefficient beta), reaction (rho) and reaction-diffusion (nu, with a
fixed rho). One *cell* = one (problem, training mode); it trains every swept coefficient x seed as replicas of one
:class:`~nnrds.models.ReplicaNet` (MLP 2 -> 4 x 50 tanh -> 1) with per-replica L-BFGS vectorized over the replicas
(:mod:`nnrds.pinn`, :mod:`nnrds.lbfgs`). With ``budget: converge`` every stage / window trains to its L-BFGS
tolerances or its cap (``stage_max_iter``; per mode ``mode_max_iter``); ``arms`` add variants of the main setup as cells ``<mode>@<arm>`` (``equal``: the
old equal-total-budget split, a secondary claim; ``faithful``: the official code's inputs, network, init, residual
points and L-BFGS tolerances). The seed fixes the initialization and the collocation draw, and is shared by the
modes, so comparisons between modes are paired by seed.

Claims (:func:`claims`; the seed is the unit: the runs of one seed at different coefficients share an
initialization, so effects are summarized within the seed first):

* ``plain_fails:<problem>`` -- the plain PINN fails (relative L2 error of order 1) at the large coefficients
  (beta >= 20; the upper part of the rho / nu sweeps, ``large_from``). Per seed: the smallest, over the large
  coefficients, of log10(rel. error / ``fail_rel_error``); supported when the interval lies above 0.
* ``curriculum_improves:convection`` -- curriculum regularization lowers the convection error by one to two
  orders of magnitude. Per seed: the mean over the large betas of log10(error plain / error curriculum);
  supported when the interval lies above ``min_orders`` (1), contradicted when it lies below.
* ``seq2seq_improves:<problem>:<mode>`` -- sequence-to-sequence training greatly lowers the reaction and
  reaction-diffusion errors: as the previous claim with the seq2seq mode in place of curriculum.
* ``causal_improves:<problem>`` -- causal training (Wang, Sankaran & Perdikaris 2022; :func:`nnrds.pinn.train_causal`,
  in rounds of L-BFGS with fixed weights) lowers the error: as the curriculum claim with mode ``causal``, in the
  same Holm family. The paper of the study has no causal numbers; this claim tests the causal paper's premise on
  the failure-mode paper's problems.
* ``plain_fails:<problem>:<arm>`` -- as ``plain_fails`` in another arm (e.g. faithful to the official code).
* ``equal_budget_<kind>:<problem>:<mode>`` -- SECONDARY: the cure of the ``equal`` arm against the plain iterate after
  the same total number of iterations (the budget axis of the main plain run).

Caps (:func:`cap_override`): with ``budget: converge`` a cure claim whose interval would contradict it while the
cure's replicas hit the stage cap (``mode_max_iter`` of the mode, else ``stage_max_iter``; causal:
``round_max_iter``) in some stage in a majority of replicas is *inconclusive*, with a ``design_note`` naming the
key to raise: that cure was not trained to convergence. A capped cure that still beats plain stays *supported*.

Descriptive tables: ``budget_effects`` (the plain-failure effect at every budget checkpoint) and
``paper_comparison`` (our medians beside the paper's published errors, ratio, within 3x).

Intervals: Student t over seeds (distribution-free median interval when all seeds agree exactly), at the level
of Holm's step-down procedure over all the study's claims, so an interval excludes the threshold exactly when
the Holm-adjusted p-value (two-sided one-sample t test against the threshold) is <= alpha.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from .. import config, experiment, landscape, pinn, verdicts
from ..data import pde
from ..models import Arch, ReplicaNet

log = logging.getLogger(__name__)

STUDY = "pinn_failure"
#: the coefficient each problem sweeps
SWEPT = {"convection": "beta", "reaction": "rho", "reaction_diffusion": "nu"}
ARCH = dict(d_in=2, d_out=1, width=50, depth=4, param="mlp", activation="tanh")
CLAIM_DEFAULTS = config.schema_defaults("pinn_failure", "claims")
CELLS = ("run_cell",)
FIGURES = {
    "plain_fails": "figures/pinn_failure/error_vs_coefficient.png",
    "curriculum_improves": "figures/pinn_failure/error_vs_coefficient.png",
    "seq2seq_improves": "figures/pinn_failure/error_vs_coefficient.png",
    "causal_improves": "figures/pinn_failure/error_vs_coefficient.png",
}

RUN_COLUMNS = [
    "problem",
    "mode",
    "arm",
    "budget",
    "coef_name",
    "coef",
    "beta",
    "nu",
    "rho",
    "seed",
    "rel_l2",
    "mean_abs_err",
    "loss_final",
    "loss_ic",
    "loss_bc",
    "loss_residual",
    "iterations",
    "evaluations",
    "stages_at_cap",
    "stages",
]


def coefficients(problem: str, pspec: dict) -> list[dict]:
    """(beta, nu, rho) of every swept point of a problem."""
    out = []
    for c in pspec["coefs"]:
        co = {"beta": 0.0, "nu": 0.0, "rho": 0.0, SWEPT[problem]: float(c)}
        if problem == "reaction_diffusion":
            co["rho"] = float(pspec.get("rho", 5.0))
        out.append(co)
    return out


def stage_cap(cfg: dict, mode: str | None = None) -> int:
    """Cap of L-BFGS iterations per stage / window (``budget: converge``) of training mode ``mode``:
    ``mode_max_iter[mode]`` when given, else ``stage_max_iter``."""
    per_mode = cfg.get("mode_max_iter") or {}
    return int(per_mode.get(mode, cfg.get("stage_max_iter", 1000)))


def cap_text(cfg: dict) -> str:
    """The per-stage cap in words: "N iterations" plus the per-mode caps that differ from it."""
    base = stage_cap(cfg)
    extra = {m: c for m, c in (cfg.get("mode_max_iter") or {}).items() if int(c) != base}
    return f"{base} iterations" + "".join(f" ({m}: {int(c)})" for m, c in extra.items())


def replica_setup(
    problem: str,
    reps: list,
    cfg: dict,
    dtype: torch.dtype,
    device: torch.device | None = None,
    lbfgs: dict | None = None,
    mode: str | None = None,
) -> tuple[dict[str, np.ndarray], pinn.Setup]:
    """Coefficient arrays (one entry per replica) and the :class:`nnrds.pinn.Setup` of replicas ``reps`` =
    ``[(coefficients, seed), ...]`` with ``cfg``'s ``n_collocation``, ``iterations``, ``normalize_inputs``,
    ``budget``, ``sampling``, ``points_per``, ``checkpoints`` and the stage cap of training mode ``mode``
    (:func:`stage_cap`: ``mode_max_iter`` or ``stage_max_iter``)."""
    coef_arr = {k: np.array([co[k] for co, _ in reps]) for k in pinn.COEFS}
    setup = pinn.Setup(
        problem,
        coef_arr,
        [s for _, s in reps],
        int(cfg["n_collocation"]),
        int(cfg["iterations"]),
        lbfgs=dict(lbfgs or {}),
        normalize=bool(cfg.get("normalize_inputs", True)),
        dtype=dtype,
        device=torch.device("cpu") if device is None else device,
        budget=str(cfg.get("budget", "equal")),
        stage_max_iter=stage_cap(cfg, mode),
        sampling=str(cfg.get("sampling", "grid")),
        points_per=str(cfg.get("points_per", "stage")),
        checkpoints=tuple(int(c) for c in cfg.get("checkpoints", ())),
    )
    return coef_arr, setup


#: study keys an arm may override (workflow/schemas/studies/pinn_failure.schema.yaml, ``arms``)
ARM_KEYS = (
    "budget",
    "iterations",
    "stage_max_iter",
    "mode_max_iter",
    "n_collocation",
    "sampling",
    "points_per",
    "normalize_inputs",
    "net",
    "lbfgs",
)
STAGE_COLUMNS = [
    "problem",
    "mode",
    "arm",
    "coef",
    "seed",
    "stage",
    "t_a",
    "t_b",
    "stage_coef",
    "n_residual_points",
    "cap",
    "iterations",
    "evaluations",
    "stop_reason",
    "loss_ic",
    "loss_bc",
    "loss_residual",
    "loss_total",
    "rel_l2_stage",
    "causal_eps",
    "causal_min_weight",
    "causal_min_weight_end",
]
#: error vs budget: plain (main arm) at every checkpoint (``budget`` = iteration count, the iterate there or the
#: final one if it stopped before: ``iterations_used``) and every run at its end (``final``, budget = iterations used)
BUDGET_COLUMNS = ["problem", "mode", "arm", "coef", "seed", "budget", "iterations_used", "rel_l2", "final"]


def split_mode(mode: str) -> tuple[str, str]:
    """``"<mode>@<arm>"`` -> (mode, arm); a mode without ``@`` is the main arm."""
    m, _, arm = mode.partition("@")
    return m, (arm or "main")


def arm_config(study: dict, arm: str) -> dict:
    """The study's settings with an arm's overrides (:data:`ARM_KEYS`) applied."""
    if arm == "main":
        return study
    spec = (study.get("arms") or {})[arm]
    return {**study, **{k: spec[k] for k in ARM_KEYS if k in spec}}


def arm_cells(study: dict) -> list[tuple[str, str]]:
    """(problem, cell mode) of every training job: the problems' modes, then every arm's."""
    out = [(p, m) for p, spec in study["problems"].items() for m in spec["modes"]]
    for arm, spec in (study.get("arms") or {}).items():
        for p, modes in (spec.get("modes") or {}).items():
            if p in study["problems"]:
                out += [(p, f"{m}@{arm}") for m in modes]
    return out


def arm_coefs(study: dict, problem: str, arm: str) -> list:
    if arm == "main":
        return list(study["problems"][problem]["coefs"])
    spec = (study.get("arms") or {})[arm]
    return list((spec.get("coefs") or {}).get(problem, study["problems"][problem]["coefs"]))


class OfficialMLP(torch.nn.Module):
    """R replicas of the official code's network: Linear(2, 50) -> tanh -> 3 x (Linear(50, 50) -> tanh) ->
    Linear(50, 1) on raw (x, t), each Linear initialized as PyTorch's default (weights and biases
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))) from the replica's own seed."""

    def __init__(self, seeds, width: int = 50, depth: int = 4, dtype=torch.float32):
        super().__init__()
        self.seeds = [int(s) for s in seeds]
        dims = [2] + [width] * depth + [1]
        Ws, bs = [[] for _ in dims[1:]], [[] for _ in dims[1:]]
        for s in self.seeds:
            g = torch.Generator().manual_seed(s)
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                bound = 1.0 / np.sqrt(a)
                Ws[i].append((torch.rand(a, b, generator=g, dtype=torch.float64) * 2 - 1) * bound)
                bs[i].append((torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1) * bound)
        self.W = torch.nn.ParameterList([torch.nn.Parameter(torch.stack(w).to(dtype)) for w in Ws])
        self.b = torch.nn.ParameterList([torch.nn.Parameter(torch.stack(v).to(dtype)) for v in bs])

    @property
    def n_replicas(self) -> int:
        return len(self.seeds)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() == 2:
            X = X.expand(len(self.seeds), -1, -1)
        h = X
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            h = torch.baddbmm(b[:, None, :], h, W)
            if i < len(self.W) - 1:
                h = torch.tanh(h)
        return h


def run_cell(cell: experiment.Cell, where=None) -> dict[str, pd.DataFrame]:
    """Train every coefficient x seed of one (problem, mode[@arm]) (``cell["problem"]``, ``cell["mode"]``).
    Returns the tables runs, stages, budget, history, fields, landscape, landscape_stats and timings."""
    problem, cell_mode, base_seed = cell["problem"], cell["mode"], cell.base_seed
    mode, arm = split_mode(cell_mode)
    study = arm_config(cell.study, arm)
    rt = cell.prepare()
    dev, tdtype = rt.device, rt.dtype
    pspec = {**study["problems"][problem], "coefs": arm_coefs(cell.study, problem, arm)}
    seeds = [int(s) for s in study["seeds"]]
    cos = coefficients(problem, pspec)
    reps = [(co, s) for co in cos for s in seeds]  # replica order: coefficient-major
    cfg = dict(study)
    if mode == "plain" and arm == "main":
        cfg["checkpoints"] = [int(c) for c in study.get("checkpoints", [])]
    coef_arr, setup = replica_setup(problem, reps, cfg, tdtype, dev, lbfgs=study.get("lbfgs"), mode=mode)
    if study.get("net", "ours") == "official":
        net = OfficialMLP([experiment.replica_seed(s, base_seed) for _, s in reps], dtype=tdtype).to(dev)
    else:
        net = experiment.replica_net(Arch(**ARCH), [s for _, s in reps], base_seed, rt)
    t0 = time.perf_counter()
    trained = pinn.train(net, setup, mode, study.get("curriculum"), where=where, causal=study.get("causal"))
    wall = time.perf_counter() - t0
    log.info("%s/%s: %d replicas trained in %.1f s", problem, cell_mode, len(reps), wall)

    exact = np.stack([pde.reference_solution(problem, co, setup.x, setup.t) for co, _ in reps])
    rel, mae = pinn.errors(trained.u, exact)
    key = SWEPT[problem]
    st = pd.DataFrame(trained.stage_rows)
    st.insert(0, "seed", [reps[r][1] for r in st["replica"]])
    st.insert(0, "coef", [reps[r][0][key] for r in st["replica"]])
    st.insert(0, "arm", arm)
    st.insert(0, "mode", mode)
    st.insert(0, "problem", problem)
    per_rep = st.groupby("replica", sort=True)
    seq = mode.startswith("seq2seq_")
    # loss columns: the last stage's own loss (plain, curriculum: the target problem on [0, 1]); seq2seq: the mean
    # over windows of each window's own loss at the end of its training
    loss_of = per_rep[["loss_ic", "loss_bc", "loss_residual", "loss_total"]].mean() if seq else None
    rows = []
    for r, (co, s) in enumerate(reps):
        g = st[st.replica == r]
        lrow = loss_of.loc[r] if seq else g.iloc[-1]
        rows.append(
            {
                "problem": problem,
                "mode": mode,
                "arm": arm,
                "budget": setup.budget,
                "coef_name": key,
                "coef": co[key],
                **co,
                "seed": s,
                "rel_l2": float(rel[r]),
                "mean_abs_err": float(mae[r]),
                "loss_final": float(lrow["loss_total"]),
                **{k: float(lrow[k]) for k in ("loss_ic", "loss_bc", "loss_residual")},
                "iterations": int(g.iterations.sum()),
                "evaluations": int(g.evaluations.sum()),
                "stages_at_cap": int((g.stop_reason == "max_iter").sum()),
                "stages": len(g),  # causal: the rounds this replica trained
            }
        )
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    cols = STAGE_COLUMNS if mode == "causal" else [c for c in STAGE_COLUMNS if not c.startswith("causal_")]
    stages = st.drop(columns=["replica"])[cols]  # causal_* columns only in causal runs
    # wall times are not reproducible: their own table (like timings), not in runs / stages
    rtimes = st[["problem", "mode", "arm", "coef", "seed", "stage", "iterations", "evaluations", "wall_s"]].copy()
    brows = []
    for r, (co, s) in enumerate(reps):
        used = int(runs.iterations.iloc[r])
        for c, u in sorted(trained.kept.items()):
            e = float(pinn.errors(u[r : r + 1], exact[r])[0][0])
            brows.append([problem, mode, arm, co[key], s, float(c), min(c, used), e, False])
        brows.append([problem, mode, arm, co[key], s, float(used), used, float(rel[r]), True])
    budget = pd.DataFrame(brows, columns=BUDGET_COLUMNS)

    hist = pd.DataFrame(trained.history)
    hist.insert(0, "seed", [reps[r][1] for r in hist["replica"]])
    hist.insert(0, "coef", [reps[r][0][key] for r in hist["replica"]])
    hist.insert(0, "arm", arm)
    hist.insert(0, "mode", mode)
    hist.insert(0, "problem", problem)
    hist = hist.drop(columns=["replica"])[
        [
            "problem",
            "mode",
            "arm",
            "coef",
            "seed",
            "stage",
            "iteration",
            "train_loss",
            "loss_ic",
            "loss_bc",
            "loss_residual",
        ]
    ]

    # fields for the heat maps: every coefficient, first seed, x subsampled by field_stride
    stride = int(study.get("field_stride", 2))
    X, T = np.meshgrid(setup.x[::stride], setup.t)
    frames = []
    for r, (co, s) in enumerate(reps):
        if s != seeds[0] or arm != "main":
            continue
        up, ue = trained.u[r][:, ::stride], exact[r][:, ::stride]
        frames.append(
            pd.DataFrame(
                {
                    "problem": problem,
                    "mode": mode,
                    "coef": co[key],
                    "seed": s,
                    "x": X.ravel(),
                    "t": T.ravel(),
                    "u_exact": ue.ravel(),
                    "u_pred": up.ravel(),
                    "abs_err": np.abs(up - ue).ravel(),
                }
            )
        )
    fields = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FIELD_COLUMNS)

    if arm == "main":
        land, lstats = _landscapes(net, setup, problem, mode, reps, study, coef_arr, base_seed)
    else:
        land, lstats = pd.DataFrame(columns=LAND_COLUMNS), pd.DataFrame(columns=LSTAT_COLUMNS)
    timings = pd.DataFrame(
        [
            {
                "problem": problem,
                "mode": mode,
                "arm": arm,
                "replicas_in_batch": len(reps),
                "iterations_max": int(runs.iterations.max()),
                "evaluations_max": int(runs.evaluations.max()),
                "batch_wall_time_s": wall,
                "wall_time_s_per_replica": wall / len(reps),
                "device": str(dev),
            }
        ]
    )
    return {
        "runs": runs,
        "stages": stages,
        "budget": budget,
        "history": hist,
        "fields": fields,
        "landscape": land,
        "landscape_stats": lstats,
        "timings": timings,
        "replica_timings": rtimes,
    }


FIELD_COLUMNS = ["problem", "mode", "coef", "seed", "x", "t", "u_exact", "u_pred", "abs_err"]
LAND_COLUMNS = ["problem", "mode", "coef", "seed", "a", "b", "loss"]
LSTAT_COLUMNS = [
    "problem",
    "mode",
    "coef",
    "seed",
    "loss_center",
    "sharpness",
    "curv_a",
    "curv_b",
    "hess_max",
    "hess_min",
]


def _landscapes(
    net, setup: pinn.Setup, problem: str, mode: str, reps, study: dict, coef_arr, base_seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loss slices of the convection runs at the configured betas (all replicas in one batch; surfaces of the
    first seed kept for plotting, statistics of every seed)."""
    ls = study.get("landscape") or {}
    if problem != "convection" or not ls.get("enabled", True):
        return pd.DataFrame(columns=LAND_COLUMNS), pd.DataFrame(columns=LSTAT_COLUMNS)
    coords = np.linspace(-float(ls.get("radius", 1.0)), float(ls.get("radius", 1.0)), int(ls.get("points", 11)))
    loss = setup.loss(coef_arr, 0.0, 1.0, setup.tensor(np.broadcast_to(setup.u0, (len(reps), setup.nx)).copy()))
    t0 = time.perf_counter()
    surf, _, _ = landscape.loss_surface(net, loss.total, coords, seed=base_seed)
    log.info(
        "%s/%s: loss landscape %dx%d for %d replicas in %.1f s",
        problem,
        mode,
        len(coords),
        len(coords),
        len(reps),
        time.perf_counter() - t0,
    )
    st = landscape.slice_stats(surf, coords)
    betas = {float(b) for b in ls.get("betas", [1, 20, 30, 40])}
    first = int(study["seeds"][0])
    A, B = np.meshgrid(coords, coords, indexing="ij")
    land, stat_rows = [], []
    for r, (co, s) in enumerate(reps):
        if co["beta"] not in betas:
            continue
        stat_rows.append({"problem": problem, "mode": mode, "coef": co["beta"], "seed": s, **st.iloc[r].to_dict()})
        if s == first:
            land.append(
                pd.DataFrame(
                    {
                        "problem": problem,
                        "mode": mode,
                        "coef": co["beta"],
                        "seed": s,
                        "a": A.ravel(),
                        "b": B.ravel(),
                        "loss": surf[r].ravel(),
                    }
                )
            )
    return (
        pd.concat(land, ignore_index=True) if land else pd.DataFrame(columns=LAND_COLUMNS),
        pd.DataFrame(stat_rows, columns=LSTAT_COLUMNS),
    )


# ---------------------------------------------------------------------------------------------------- summary
def _kind(mode: str) -> str:
    return {"curriculum": "curriculum_improves", "causal": "causal_improves"}.get(mode, "seq2seq_improves")


def per_seed(runs: pd.DataFrame, study: dict, budget: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (claim, seed): the within-seed effect (see the module docstring)."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    if "arm" not in runs:
        runs = runs.assign(arm="main")
    if "stages_at_cap" not in runs:
        runs = runs.assign(stages_at_cap=0)
    rows = []

    def add(cid, problem, mode, s, n, eff, capped=0):
        rows.append(
            {
                "claim_id": cid,
                "problem": problem,
                "mode": mode,
                "seed": int(s),
                "n_coefs": int(n),
                "effect": eff,
                "n_capped": int(capped),
            }
        )

    for problem, g in runs.groupby("problem", sort=False):
        large_from = float(study["problems"][problem]["large_from"])
        big = g[g.coef >= large_from]
        for arm, ga in big[big["mode"] == "plain"].groupby("arm", sort=False):
            cid = f"plain_fails:{problem}" + ("" if arm == "main" else f":{arm}")
            for s, gs in ga.groupby("seed"):
                add(cid, problem, "plain", s, len(gs), float(np.log10(gs.rel_l2.min() / cfg["fail_rel_error"])))
        main = big[big.arm == "main"]
        plain = main[main["mode"] == "plain"]
        for mode in [m for m in main["mode"].unique() if m != "plain"]:
            kind = _kind(mode)
            pair = plain.merge(main[main["mode"] == mode], on=["coef", "seed"], suffixes=("_plain", "_alt"))
            for s, gs in pair.groupby("seed"):
                cid = f"{kind}:{problem}" + (f":{mode}" if kind == "seq2seq_improves" else "")
                eff = float(np.mean(np.log10(gs.rel_l2_plain / gs.rel_l2_alt)))
                add(cid, problem, mode, s, len(gs), eff, (gs.stages_at_cap_alt > 0).sum())
        # secondary: every mode at the same total budget (the equal arm's cures vs plain's iterate at that count)
        eq = big[big.arm == "equal"]
        if budget is not None and len(eq):
            n_it = float(arm_config(study, "equal").get("iterations", study["iterations"]))
            bp = budget[
                (budget.problem == problem)
                & (budget["mode"] == "plain")
                & (budget.arm == "main")
                & (budget.budget == n_it)
                & (budget.coef >= large_from)
            ]
            for mode in [m for m in eq["mode"].unique() if m != "plain"]:
                pair = bp.merge(eq[eq["mode"] == mode], on=["coef", "seed"], suffixes=("_plain", "_alt"))
                for s, gs in pair.groupby("seed"):
                    cid = f"equal_budget_{_kind(mode)}:{problem}:{mode}"
                    add(cid, problem, mode, s, len(gs), float(np.mean(np.log10(gs.rel_l2_plain / gs.rel_l2_alt))))
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


#: columns of the per-seed effects (``seed_effects.csv``); ``n_capped``: the cure's replicas of that seed (one per
#: large coefficient) that hit the stage cap in some stage (:func:`cap_override`)
SEED_COLUMNS = ["claim_id", "problem", "mode", "seed", "n_coefs", "effect", "n_capped"]


def cap_override(g: pd.DataFrame, study: dict, verdict: str) -> tuple[str, str]:
    """(verdict, design_note) of a cure claim of the main arm (``budget: converge``) whose per-seed rows are ``g``
    (:func:`per_seed`): a *contradicted* cure whose replicas hit the stage cap in a majority of replicas (any
    stage) was not trained to convergence, so it becomes *inconclusive* with a design note naming the config key
    to raise; *supported* and *inconclusive* stay (a capped cure that still beats plain is evidence)."""
    n_rep = int(g["n_coefs"].sum())
    n_cap = int(g["n_capped"].sum()) if "n_capped" in g else 0
    if verdict != verdicts.CONTRADICTED or study.get("budget", "equal") != "converge" or 2 * n_cap <= n_rep:
        return verdict, ""
    mode = str(g["mode"].iloc[0])
    if mode == "causal":  # its cap is per round
        cap, key = (
            int({**pinn.causal_defaults(), **(study.get("causal") or {})}["round_max_iter"]),
            "causal.round_max_iter",
        )
    else:
        cap, key = stage_cap(study, mode), f"mode_max_iter.{mode}"
    key = f"pinn_failure.{key}"
    note = verdicts.design_note(
        f"{n_cap} of {n_rep} {mode} replicas hit the cap of {cap} L-BFGS iterations in some stage / window (not "
        "trained to convergence)",
        f"raise {key} (now {cap}; default for every mode: pinn_failure.stage_max_iter)",
    )
    return verdicts.INCONCLUSIVE, note


def budget_effects(budget: pd.DataFrame, study: dict) -> pd.DataFrame:
    """Descriptive (not claims): the plain_fails effect of the main arm at every budget of the budget axis --
    per seed min over the large coefficients of log10(error / fail_rel_error), mean over seeds with a 95%
    Student t interval (no multiplicity correction); ``budget = "final"``: each run at its end (converged or cap),
    the only budget that is claimed."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    cols = ["problem", "budget", "n_seeds", "median_iterations", "median_rel_l2", "effect", "ci_low", "ci_high"]
    out = []
    if budget is None or budget.empty:
        return pd.DataFrame(columns=cols)
    bp = budget[(budget["mode"] == "plain") & (budget.arm == "main")]
    for problem, g in bp.groupby("problem", sort=False):
        g = g[g.coef >= float(study["problems"][problem]["large_from"])]
        for label, gb in [(f"{b:g}", g[(g.budget == b) & ~g.final]) for b in sorted(g[~g.final].budget.unique())] + [
            ("final", g[g.final])
        ]:
            if gb.empty:
                continue
            x = gb.groupby("seed").rel_l2.min().pipe(lambda v: np.log10(v / cfg["fail_rel_error"])).to_numpy()
            eff, lo, hi = verdicts.t_or_sign_ci(x, 0.95)
            out.append(
                {
                    "problem": problem,
                    "budget": label,
                    "n_seeds": int(x.size),
                    "median_iterations": float(gb.iterations_used.median()),
                    "median_rel_l2": float(gb.rel_l2.median()),
                    "effect": eff,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return pd.DataFrame(out, columns=cols)


def paper_comparison(runs: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Our median error over seeds beside the paper's (``workflow/reference/pinn_failure_paper.csv``: a value at
    one coefficient, or a range over a coefficient range) for every (problem, mode, arm, coefficient) the paper
    reports; ratio = ours / paper (the range's geometric midpoint), within_3x = ours in [low / 3, 3 high]."""
    cols = [
        "problem",
        "mode",
        "arm",
        "coef",
        "n_seeds",
        "ours_median",
        "ours_min",
        "ours_max",
        "paper_low",
        "paper_high",
        "ratio",
        "within_3x",
    ]
    if "arm" not in runs:
        runs = runs.assign(arm="main")
    out = []
    g = runs.groupby(["problem", "mode", "arm", "coef"], sort=False).rel_l2
    for (p, m, a, c), v in g:
        if a == "equal":
            continue
        ref = reference[
            (reference.problem == p) & (reference["mode"] == m) & (reference.coef_min <= c) & (reference.coef_max >= c)
        ]
        if ref.empty:
            continue
        lo, hi = float(ref.paper_low.iloc[0]), float(ref.paper_high.iloc[0])
        med = float(v.median())
        out.append(
            {
                "problem": p,
                "mode": m,
                "arm": a,
                "coef": c,
                "n_seeds": int(v.size),
                "ours_median": med,
                "ours_min": float(v.min()),
                "ours_max": float(v.max()),
                "paper_low": lo,
                "paper_high": hi,
                "ratio": med / float(np.sqrt(lo * hi)),
                "within_3x": bool(lo / 3 <= med <= 3 * hi),
            }
        )
    return pd.DataFrame(out, columns=cols)


def claims(seed_table: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`)."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    alpha, thr_err, orders = float(cfg["alpha"]), float(cfg["fail_rel_error"]), float(cfg["min_orders"])
    n_seeds = len(study["seeds"])
    conv = (
        f"every stage / window to its L-BFGS stopping rules (tolerance_change "
        f"{(study.get('lbfgs') or {}).get('tolerance_change', 1e-9):g}) or {cap_text(study)} "
        "per stage / window"
        if study.get("budget", "equal") == "converge"
        else f"{study['iterations']} L-BFGS iterations per run in every mode"
    )
    what = (
        f"{n_seeds} seeds x coefficients "
        + "; ".join(f"{p} {SWEPT[p]} {s['coefs']} ({', '.join(s['modes'])})" for p, s in study["problems"].items())
        + f"; {conv}; {study['n_collocation']} residual points per mode"
    )
    rows = []
    for cid, g in seed_table.groupby("claim_id", sort=False):
        kind, problem = cid.split(":")[:2]
        rest = cid.split(":")[2:]
        key, lf = SWEPT[problem], study["problems"][problem]["large_from"]
        x = g["effect"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        fig = FIGURES.get(kind, "figures/pinn_failure/error_vs_budget.png")
        if kind == "plain_fails":
            arm = rest[0] if rest else "main"
            text = f"{problem}: a plain PINN fails (relative L2 error of order 1, >= {thr_err:g}) at {key} >= {lf:g}"
            if arm != "main":
                text += f" ({arm} arm: {_arm_text(study, arm)})"
                fig = "figures/pinn_failure/paper_comparison.png"
            ename = f"mean over seeds of min over {key} >= {lf:g} of log10(rel. L2 error / {thr_err:g})"
            shift = 0.0
        else:
            mode = g["mode"].iloc[0]
            text = (
                f"{problem}: {mode} training lowers the relative error of the plain PINN by at least "
                f"{orders:g} order(s) of magnitude at {key} >= {lf:g}"
            )
            if kind.startswith("equal_budget_"):
                n_it = arm_config(study, "equal").get("iterations", study["iterations"])
                text = f"SECONDARY (equal total budget, {n_it} L-BFGS iterations per run in both modes) -- " + text
            ename = f"mean over seeds of mean over {key} >= {lf:g} of log10(error plain / error {mode}) (orders)"
            shift = orders
        rows.append(
            {
                "study": STUDY,
                "claim_id": cid,
                "claim": text,
                "what_was_run": what,
                "unit": "seed (one initialization + collocation draw, shared by the modes; effect within seed)",
                "n_units": int(x.size),
                "effect_name": ename,
                "x": x,
                "shift": shift,
                "margin": shift,
                "p_value": verdicts.one_sample_p(x - shift),
                "figure": fig,
                "seeds": g,
            }
        )
    m = len(rows)
    p_adj, a = verdicts.holm_alphas([r["p_value"] for r in rows], alpha)
    out = []
    for i, r in enumerate(rows):
        x, shift, level = r.pop("x"), r.pop("shift"), float(1.0 - a[i])
        eff, lo, hi = verdicts.t_or_sign_ci(x, level) if x.size else (float("nan"),) * 3
        test = (
            f"one-sample t over seeds against {shift:g} (two-sided; sign test if all seeds agree exactly); Holm over "
            f"{m} claims, interval at the Holm step-down level; supported when the interval lies above {shift:g}, "
            "contradicted when below"
        )
        verdict = verdicts.superiority(lo - shift, hi - shift)
        g = r.pop("seeds")
        kind = r["claim_id"].split(":")[0]
        note = ""
        if kind in ("curriculum_improves", "seq2seq_improves", "causal_improves"):
            test += (
                "; a contradicted cure whose replicas hit the stage cap in a majority of replicas is inconclusive "
                "(not trained to convergence)"
            )
            verdict, note = cap_override(g, study, verdict)
        extra = {"design_note": note, "decision_rule": "none"} if note else {}
        r.update(effect=eff, ci_low=lo, ci_high=hi, ci_level=level, p_adjusted=float(p_adj[i]), verdict=verdict)
        out.append(verdicts.Claim(**r, test=test, **extra))
    return verdicts.claims_frame(out) if out else pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)


def _arm_text(study: dict, arm: str) -> str:
    spec = (study.get("arms") or {}).get(arm, {})
    return ", ".join(f"{k} {spec[k]}" for k in ARM_KEYS if k in spec) or "as the main arm"


def error_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Median and range over seeds of the relative L2 error per problem, mode, arm and coefficient, beside the
    median L-BFGS iterations and evaluations and the most stages that hit the cap (per-replica wall times:
    replica_timings.csv, not reproducible byte for byte)."""
    if "arm" not in runs:
        runs = runs.assign(arm="main")
    for c in ("iterations", "evaluations", "stages_at_cap"):
        if c not in runs:
            runs = runs.assign(**{c: np.nan})
    g = runs.groupby(["problem", "mode", "arm", "coef"], sort=False)
    return pd.DataFrame(
        {
            "n_seeds": g.size(),
            "median_rel_l2": g.rel_l2.median(),
            "min_rel_l2": g.rel_l2.min(),
            "max_rel_l2": g.rel_l2.max(),
            "median_iterations": g.iterations.median(),
            "median_evaluations": g.evaluations.median(),
            "max_stages_at_cap": g.stages_at_cap.max(),
        }
    ).reset_index()


CAUSAL_ROUND_COLUMNS = [
    "problem",
    "arm",
    "coef",
    "seed",
    "rounds",
    "iterations",
    "rounds_at_iteration_cap",
    "final_eps",
    "final_min_weight",
    "passed_schedule",
]


def causal_rounds(stages: pd.DataFrame, study: dict) -> pd.DataFrame:
    """One row per causal run (mode ``causal``): rounds trained, L-BFGS iterations and rounds that hit the
    per-round cap, the eps and min_i w_i after its last round and ``passed_schedule`` = that eps is the last of
    the schedule and min_i w_i > delta there (otherwise the run stopped at the round cap ``max_rounds``)."""
    cfg = {**pinn.causal_defaults(), **(study.get("causal") or {})}
    last_eps, delta = float(cfg["epsilons"][-1]), float(cfg["delta"])
    if stages is None or stages.empty or "causal_eps" not in stages:
        return pd.DataFrame(columns=CAUSAL_ROUND_COLUMNS)
    st = stages[stages["mode"] == "causal"]
    if "arm" not in st:
        st = st.assign(arm="main")
    rows = []
    for (p, a, c, s), g in st.groupby(["problem", "arm", "coef", "seed"], sort=False):
        g = g.sort_values("stage", kind="stable")
        end = g.iloc[-1]
        rows.append(
            {
                "problem": p,
                "arm": a,
                "coef": c,
                "seed": s,
                "rounds": int((~g.stop_reason.isin(["inactive", "none"])).sum()),
                "iterations": int(g.iterations.sum()),
                "rounds_at_iteration_cap": int((g.stop_reason == "max_iter").sum()),
                "final_eps": float(end.causal_eps),
                "final_min_weight": float(end.causal_min_weight_end),
                "passed_schedule": bool(end.causal_eps == last_eps and end.causal_min_weight_end > delta),
            }
        )
    return pd.DataFrame(rows, columns=CAUSAL_ROUND_COLUMNS)


def landscape_summary(lstats: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds of the slice statistics per mode and beta."""
    if lstats.empty:
        return pd.DataFrame(
            columns=["mode", "coef", "n_seeds", "median_loss_center", "median_sharpness", "median_hess_max"]
        )
    g = lstats.groupby(["mode", "coef"], sort=True)
    return pd.DataFrame(
        {
            "n_seeds": g.size(),
            "median_loss_center": g.loss_center.median(),
            "median_sharpness": g.sharpness.median(),
            "median_hess_max": g.hess_max.median(),
        }
    ).reset_index()


def _num(x: float, fmt: str = ".2g") -> str:
    return f"{x:{fmt}}" if np.isfinite(x) else "n/a"


def caption(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    lsum: pd.DataFrame,
    claims_table: pd.DataFrame,
    timings: pd.DataFrame,
    scale: str,
    study: dict,
    budget_eff: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    causal: pd.DataFrame | None = None,
) -> str:
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    cur = study.get("curriculum") or {}
    cau = {**pinn.causal_defaults(), **(study.get("causal") or {})}
    has_causal = any("causal" in s["modes"] for s in study["problems"].values())
    ls = study.get("landscape") or {}
    lbo = {"tolerance_change": 1e-9, "tolerance_grad": 1e-7, "history_size": 50, **(study.get("lbfgs") or {})}
    probs = "; ".join(
        f"*{p}* {SWEPT[p]} ∈ {s['coefs']}"
        + (f" (ρ = {s.get('rho', 5)})" if p == "reaction_diffusion" else "")
        + f", modes {', '.join(s['modes'])}"
        for p, s in study["problems"].items()
    )
    conv = study.get("budget", "equal") == "converge"
    budget_txt = (
        f"every stage / window trained until L-BFGS stops by itself (loss change or step < "
        f"{lbo['tolerance_change']:g}, gradient < {lbo['tolerance_grad']:g}) or at the cap of "
        f"{cap_text(study)} per stage / window (the runs table counts the stages that "
        "hit it: stages_at_cap)"
        if conv
        else f"{study['iterations']} L-BFGS iterations per run in every mode, split evenly over the stages / windows"
    )
    pts = (
        f"{study['n_collocation']} residual points per mode drawn "
        + ("uniformly in x and t" if study.get("sampling", "grid") == "uniform" else "from the 256 × 100 grid")
        + (
            " (the same number of distinct points in every mode: a seq2seq window of width Δt gets "
            f"round({study['n_collocation']} Δt) of them in its own time strip, up to its end time)"
            if study.get("points_per", "stage") == "mode"
            else " per stage / window"
        )
    )
    lines = [
        f"PINN failure modes, **{scale}** scale (Krishnapriyan et al., NeurIPS 2021): {probs}; seeds "
        f"{study['seeds']}. Main arm: MLP 2 → 4 × 50 tanh → 1"
        + (" on inputs scaled to [−1, 1]" if study.get("normalize_inputs", True) else "")
        + f"; loss = initial-condition MSE + periodic-boundary MSE (and u_x with diffusion) + residual MSE at "
        f"{pts}; {budget_txt}; L-BFGS with a strong-Wolfe line search, history {lbo['history_size']}, one "
        f"optimizer per replica, vectorized over the replicas. Curriculum: {cur.get('stages', 4)} stages, "
        f"coefficient linear from {cur.get('start', 1.0):g} to the target; seq2seq_<Δt>: each window starts from "
        "the previous window's weights and takes its prediction at the window's end as initial condition. "
        + (
            "Causal (Wang, Sankaran & Perdikaris 2022): the residual term is (1/N_t) Σ_i w_i L_r(t_i) over "
            f"N_t = {cau['chunks']} time chunks (the plain mode's residual points), w_i = exp(−ε Σ_(k<i) L_r(t_k)) "
            f"without gradient, per replica, ε schedule {', '.join(f'{e:g}' for e in cau['epsilons'])}, the next ε "
            f"once min_i w_i > {cau['delta']:g}; adapted to L-BFGS as rounds with the weights fixed in a round "
            f"({'at most ' + str(cau['round_max_iter']) + ' iterations' if conv else 'the equal budget split'} "
            f"each, at most {cau['max_rounds']} rounds; the paper uses Adam with weights recomputed every step). "
            if has_causal
            else ""
        )
        + "Errors "
        "are relative L2 and mean absolute errors on the full 256 × 100 grid against computed references (exact "
        "Fourier solution, closed-form logistic solution, Strang splitting), each tested against a method-of-lines "
        "solver; stages.csv holds every stage's / window's own loss and its error against its own reference.",
        "",
    ]
    for arm, spec in (study.get("arms") or {}).items():
        lines.append(
            f"* Arm *{arm}*: {_arm_text(study, arm)}; modes {spec.get('modes')}, coefficients "
            f"{spec.get('coefs') or 'as the main arm'}."
        )
    lines += [
        "",
        "Each dot in the error figure is one seed. The seed is the unit of every claim (runs of one seed share an "
        "initialization and collocation draw); intervals are Student t over seeds at Holm's step-down level over "
        f"the study's claims (α = {cfg['alpha']:g}); failure means relative error ≥ {cfg['fail_rel_error']:g}, "
        f"an improvement claim needs ≥ {cfg['min_orders']:g} order(s) of magnitude. Claims marked SECONDARY "
        "compare the modes at an equal total budget.",
        "",
    ]
    lines += [verdicts.claim_bullet(r, ".3g") for r in claims_table.itertuples()]
    lines.append("")
    if "arm" not in summary:
        summary = summary.assign(arm="main")
    for (p, m, a), g in summary.groupby(["problem", "mode", "arm"], sort=False):
        meds = ", ".join(f"{c:g}: {v:.2g}" for c, v in zip(g.coef, g.median_rel_l2))
        its = (
            f" (median iterations {', '.join(f'{v:.0f}' for v in g.median_iterations)})"
            if "median_iterations" in g and g.median_iterations.notna().all()
            else ""
        )
        lines.append(
            f"* {p}, {m}" + ("" if a == "main" else f" [{a}]") + f": median relative L2 error by "
            f"{SWEPT[p]} — {meds}{its}."
        )
    if causal is not None and len(causal):
        lines += [""]
        for (p, a, c), g in causal.groupby(["problem", "arm", "coef"], sort=False):
            lines.append(
                f"* Causal rounds, {p}" + ("" if a == "main" else f" [{a}]") + f" {SWEPT[p]} = {c:g}: "
                f"{int(g.passed_schedule.sum())} of {len(g)} seeds passed the whole ε schedule, the others stopped at "
                f"the cap of {cau['max_rounds']} rounds (final ε {', '.join(f'{e:g}' for e in g.final_eps)}; "
                f"min weight {', '.join(f'{w:.2g}' for w in g.final_min_weight)}); median {g.rounds.median():.0f} "
                f"rounds, {g.iterations.median():.0f} iterations, {int(g.rounds_at_iteration_cap.sum())} round(s) "
                "at the per-round iteration cap in all."
            )
    if budget_eff is not None and len(budget_eff):
        lines += [
            "",
            "Budget axis (descriptive, not claims; plain_fails is claimed only at the final budget): plain-PINN "
            "failure effect by budget, mean over seeds [95% t interval] — "
            + "; ".join(
                f"{r.problem} @ {r.budget}: {r.effect:.2g} [{_num(r.ci_low)}, {_num(r.ci_high)}], median error "
                f"{r.median_rel_l2:.2g}"
                for r in budget_eff.itertuples()
            )
            + ".",
        ]
    if comparison is not None and len(comparison):
        agree = comparison[comparison.within_3x]
        disagree = comparison[~comparison.within_3x]

        def fmt(d):
            return (
                "; ".join(
                    f"{r.problem} {r.mode}" + ("" if r.arm == "main" else f" [{r.arm}]") + f" {SWEPT[r.problem]} = "
                    f"{r.coef:g}: ours {r.ours_median:.2g} vs paper {r.paper_low:.2g}"
                    + ("" if r.paper_low == r.paper_high else f"–{r.paper_high:.2g}")
                    + f" (×{r.ratio:.2g})"
                    for r in d.itertuples()
                )
                or "none"
            )

        lines += [
            "",
            "Beside the paper (its Tables; workflow/reference/pinn_failure_paper.csv; ratio = our median / the "
            "paper's value or the geometric midpoint of its range over the coefficient range"
            + ("; the paper has no causal training, so the causal runs have no published number" if has_causal else "")
            + "). **Within 3×:** "
            + fmt(agree)
            + ". **Not within 3×:** "
            + fmt(disagree)
            + ".",
        ]
    if not lsum.empty:
        lines += [
            "",
            f"Loss landscapes (convection, β ∈ {ls.get('betas', [1, 20, 30, 40])}): slices of the loss "
            f"along two filter-normalized random directions (Li et al., NeurIPS 2018) on a "
            f"{ls.get('points', 11)} × {ls.get('points', 11)} grid of radius {ls.get('radius', 1.0):g}; "
            "sharpness = (max loss on the slice − loss at the centre) / (1 + loss at the centre), curvature = "
            "largest eigenvalue of the Hessian of a quadratic fitted to the slice; medians over seeds: "
            + "; ".join(
                f"{r.mode} β = {r.coef:g}: sharpness {r.median_sharpness:.3g}, curvature {r.median_hess_max:.3g}"
                for r in lsum.itertuples()
            )
            + ".",
        ]
    lines += [
        "",
        f"Training ran as {len(timings)} (problem, mode, arm) jobs; their wall times are in timings.csv and "
        "replica_timings.csv (per replica and stage: the batch's clock until the replica stopped); the caption "
        "holds no wall time, so it is byte-reproducible.",
    ]
    return "\n".join(lines) + "\n"


def summarize(
    runs: pd.DataFrame, lstats: pd.DataFrame, study: dict, budget: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-seed effects, error summary, landscape summary, claims)."""
    seed_table = per_seed(runs, study, budget)
    return seed_table, error_summary(runs), landscape_summary(lstats), claims(seed_table, study)


def heatmap_cases(runs: pd.DataFrame) -> pd.DataFrame:
    """The heat-map cases of every problem, at its largest coefficient and the first seed: the plain run
    (``failing`` when its error is >= the alternatives') and the other mode with the lowest error (``rescue``)."""
    rows = []
    first = runs.seed.min()
    for problem, g in runs.groupby("problem", sort=False):
        g = g[(g.coef == g.coef.max()) & (g.seed == first)]
        plain = g[g["mode"] == "plain"]
        alt = g[g["mode"] != "plain"].sort_values("rel_l2", kind="stable")
        for role, r in (("plain", plain), ("best alternative", alt)):
            if len(r):
                x = r.iloc[0]
                rows.append(
                    {
                        "problem": problem,
                        "coef": x.coef,
                        "seed": int(x.seed),
                        "mode": x["mode"],
                        "role": role,
                        "rel_l2": x.rel_l2,
                    }
                )
    return pd.DataFrame(rows, columns=["problem", "coef", "seed", "mode", "role", "rel_l2"])


BENCH_DEFAULTS = {
    "problem": "convection",
    "coefs": [1, 20, 30, 40],
    "seeds": [0, 1, 2, 3, 4],
    "iterations": 50,
    "n_collocation": 1000,
    "mode": "plain",
    "normalize_inputs": True,
    "sampling": "uniform",
    "threads": 1,
    "dtype": "float32",
    "drivers": ["vectorized", "generators"],
    "repeats": 3,
}


def batching_benchmark(overrides: dict | None = None) -> pd.DataFrame:
    """Time of training R = coefficients x seeds PINNs as one batch of replicas vs one at a time (same
    iterations, same per-replica L-BFGS), for each L-BFGS driver (``vectorized``: :func:`nnrds.lbfgs.minimize`;
    ``generators``: the previous per-replica driver :func:`nnrds.lbfgs.minimize_generators`), ``repeats`` times
    interleaved (the machine is shared: report medians); and the largest relative difference of a replica's
    error between batch and loop (replica independence). One row per (driver, way, repeat)."""
    cfg = {**BENCH_DEFAULTS, **(overrides or {})}
    torch.set_num_threads(int(cfg["threads"]))
    problem = cfg["problem"]
    spec = {"coefs": cfg["coefs"], "rho": 5.0}
    reps = [(co, int(s)) for co in coefficients(problem, spec) for s in cfg["seeds"]]
    dt = getattr(torch, cfg["dtype"])

    def train(sub, driver):
        _, setup = replica_setup(problem, sub, {**cfg, "budget": "equal"}, dt)
        net = ReplicaNet(Arch(**ARCH), [1000 * s for _, s in sub], dtype=dt)
        tr = pinn.train(net, setup, cfg["mode"], driver=driver)
        exact = np.stack([pde.reference_solution(problem, c, setup.x, setup.t) for c, _ in sub])
        return pinn.errors(tr.u, exact)[0]

    base = {
        "problem": problem,
        "mode": cfg["mode"],
        "replicas": len(reps),
        "iterations": cfg["iterations"],
        "n_collocation": cfg["n_collocation"],
        "threads": cfg["threads"],
        "dtype": cfg["dtype"],
    }
    rows = []
    for rep in range(int(cfg["repeats"])):
        for driver in cfg["drivers"]:
            out = {}
            for how in ("batched", "loop"):
                t0, c0 = time.perf_counter(), time.process_time()
                err = train(reps, driver) if how == "batched" else np.concatenate([train([r], driver) for r in reps])
                out[how] = (time.perf_counter() - t0, time.process_time() - c0, err)
            diff = float(np.max(np.abs(out["batched"][2] - out["loop"][2]) / out["loop"][2]))
            for how, (w, c, _) in out.items():
                rows.append(
                    {
                        **base,
                        "driver": driver,
                        "how": how,
                        "repeat": rep,
                        "wall_s": w,
                        "cpu_s": c,
                        "max_rel_diff_rel_l2": diff,
                    }
                )
    return pd.DataFrame(rows)
