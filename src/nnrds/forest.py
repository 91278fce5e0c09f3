"""Forest plot of the claims ledger: every claim's effect and interval on one standardized scale.

The effects of the ledger (``results/claims.csv``, columns :data:`nnrds.verdicts.CLAIM_COLUMNS`) come in many units
(accuracy differences, log ratios, orders of convergence, ...). :func:`standardize` puts every row on one axis on
which its verdict can be read off directly:

    z = sign * (value - t) / h,   h = (ci_high - ci_low) / 2 (the interval's half-width),

applied to the effect and to both ends of its interval, with ``t`` the threshold that decides *supported* and
``sign`` orienting the axis so that z > 0 is the claim's side. Per decision rule (:func:`nnrds.verdicts.
decision_rule`, inferred from the row as the ledger does): superiority, t = 0; a threshold rule, t = that
threshold; non-superiority ("A is no better than B by more than the margin"), t = margin and sign = -1 (the claim's
side is below the margin). So on this axis every finite interval is 2 wide, and:

* *supported* exactly when the interval lies right of 0;
* *contradicted* exactly when it lies left of ``band`` -- 0 for every rule except superiority with a margin m > 0,
  where a claim is contradicted once its interval lies below the smallest effect of interest (``band`` = m / h,
  drawn as a grey band [0, band]);
* *inconclusive* when the interval covers [0, band].

The verdict the interval implies (:func:`implied_verdict`) is compared with the ledger's: a row whose verdict does
not come from this interval alone (a gate, a second condition) is flagged (``consistent`` False) and marked in the
figure. Rows without a finite interval are drawn as an open square at 0. :func:`plot_forest` draws one panel per
study, coloured by verdict (:data:`nnrds.plotting.VERDICT_COLORS`), design-limited rows (a ``design_note``) with open
markers; the axis is linear within +-:data:`LINTHRESH` and logarithmic beyond, clipped at +-:data:`CLIP`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import verdicts

#: the axis is linear in [-LINTHRESH, LINTHRESH] (interval half-widths) and logarithmic beyond
LINTHRESH = 3.0
#: values beyond +-CLIP half-widths are drawn at the edge with an arrowhead
CLIP = 100.0

FOREST_COLUMNS = [
    "study",
    "claim_id",
    "verdict",
    "design",
    "rule",
    "threshold",
    "sign",
    "has_interval",
    "z",
    "z_low",
    "z_high",
    "band",
    "implied_verdict",
    "consistent",
]


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _design(r: dict) -> bool:
    note = r.get("design_note", "")
    return isinstance(note, str) and bool(note.strip())


def decision(r: dict) -> tuple[str, float, float, int]:
    """(rule, t, t_contradict, sign) of a ledger row: the rule (:func:`nnrds.verdicts.decision_rule`), the
    threshold that decides *supported*, the one that decides *contradicted* (both in effect units) and the
    orientation (+1: the claim's side is above the threshold, -1: below)."""
    rule, thr = verdicts.decision_rule(r)
    m = _f(r.get("margin"))
    if rule == "non_superiority":
        return rule, m, m, -1
    if rule == "threshold":
        t = thr if math.isfinite(thr) else m
        return rule, t, t, 1
    # superiority (and "none", which the ledger cannot tell apart): supported above 0, contradicted below 0 or
    # below the margin when one is given (verdicts.superiority)
    return rule, 0.0, max(0.0, m) if math.isfinite(m) else 0.0, 1


def implied_verdict(r: dict) -> str:
    """The verdict that the row's interval gives by its decision rule (:func:`decision`), recomputed with
    :mod:`nnrds.verdicts` -- equal to the ledger's verdict unless something besides the interval decided it."""
    rule, t, _, _ = decision(r)
    lo, hi, m = _f(r.get("ci_low")), _f(r.get("ci_high")), _f(r.get("margin"))
    if rule == "non_superiority":
        if not (math.isfinite(m) and m > 0):
            return verdicts.INCONCLUSIVE
        return verdicts.non_superiority(lo, hi, m)
    if rule == "threshold":
        if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(t)):
            return verdicts.INCONCLUSIVE
        return verdicts.SUPPORTED if lo > t else verdicts.CONTRADICTED if hi < t else verdicts.INCONCLUSIVE
    return verdicts.superiority(lo, hi, margin=m if math.isfinite(m) else None)


def standardize_row(r: dict) -> dict:
    """One ledger row on the forest plot's scale (see the module docstring): z, z_low, z_high, band."""
    rule, t, t_c, sign = decision(r)
    x, lo, hi = _f(r.get("effect")), _f(r.get("ci_low")), _f(r.get("ci_high"))
    out = {
        "study": r.get("study"),
        "claim_id": r.get("claim_id"),
        "verdict": r.get("verdict"),
        "design": _design(r),
        "rule": rule,
        "threshold": t,
        "sign": sign,
        "has_interval": bool(math.isfinite(lo) and math.isfinite(hi) and math.isfinite(t)),
        "z": math.nan,
        "z_low": math.nan,
        "z_high": math.nan,
        "band": 0.0,
    }
    if out["has_interval"]:
        h = (hi - lo) / 2.0
        if h > 0:
            ends = sorted(sign * (v - t) / h for v in (lo, hi))
            z = sign * (x - t) / h if math.isfinite(x) else (ends[0] + ends[1]) / 2.0
            band = (t_c - t) / h
        else:  # a point interval: infinitely many half-widths from the threshold unless it sits on it
            d = sign * (lo - t)
            ends = [math.copysign(math.inf, d) if d else 0.0] * 2
            z = ends[0]
            band = math.inf if t_c != t else 0.0
        out.update(z=z, z_low=ends[0], z_high=ends[1], band=band)
    out["implied_verdict"] = implied_verdict(r)
    out["consistent"] = out["implied_verdict"] == r.get("verdict")
    return out


def standardize(ledger: pd.DataFrame) -> pd.DataFrame:
    """Every ledger row on the forest plot's scale (:data:`FOREST_COLUMNS`), in the ledger's order."""
    rows = [standardize_row(r) for r in ledger.to_dict("records")]
    return pd.DataFrame(rows, columns=FOREST_COLUMNS)


# ------------------------------------------------------------------------------------------ figure
def _clip(v: float) -> float:
    return float(np.clip(v, -CLIP, CLIP)) if not math.isnan(v) else v


def _label(r, width: int) -> str:
    s = str(r.claim_id)
    if len(s) > width:  # keep both ends: ids differ at the end as often as at the start
        head = (width - 1) // 2
        s = s[:head] + "…" + s[len(s) - (width - 1 - head) :]
    return s + ("  *" if not r.consistent else "")


def _panel(ax, f: pd.DataFrame, title: str, labels: bool, label_width: int, fontsize: float) -> None:
    from matplotlib.ticker import NullLocator

    from .plotting import VERDICT_COLORS

    n = len(f)
    ys = np.arange(n)[::-1]
    ax.axvline(0.0, color="black", lw=1.0, zorder=1)
    for y, r in zip(ys, f.itertuples()):
        c = VERDICT_COLORS.get(r.verdict, "black")
        face = "white" if r.design else c
        marker = "D" if r.design else "o"
        if not r.has_interval:
            ax.plot([0.0], [y], marker="s", ms=4.5, mfc="white", mec=c, mew=1.2, ls="none", zorder=4)
            ax.annotate("no interval", (0.0, y), xytext=(6, 0), textcoords="offset points", va="center",
                        fontsize=fontsize - 1, color="#555555", style="italic")  # fmt: skip
            continue
        if r.band > 0:
            ax.fill_between([0.0, _clip(r.band)], y - 0.32, y + 0.32, color="#bbbbbb", alpha=0.7, lw=0, zorder=1)
        lo, hi, z = _clip(r.z_low), _clip(r.z_high), _clip(r.z)
        ax.plot([lo, hi], [y, y], color=c, lw=1.8, solid_capstyle="butt", zorder=2)
        for end, raw, m in ((lo, r.z_low, "<"), (hi, r.z_high, ">")):
            if abs(raw) > CLIP:
                ax.plot([end], [y], marker=m, ms=4, color=c, ls="none", zorder=3)
        if abs(r.z) <= CLIP:
            ax.plot([z], [y], marker=marker, ms=4.5, mfc=face, mec=c, mew=1.2, ls="none", zorder=4)
    ax.set_xscale("symlog", linthresh=LINTHRESH, linscale=1.5)
    ax.set_xlim(-CLIP * 1.15, CLIP * 1.15)
    ticks = [-100, -10, -3, -1, 0, 1, 3, 10, 100]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(ys)
    ax.set_yticklabels([_label(r, label_width) for r in f.itertuples()] if labels else [], fontsize=fontsize)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="y", alpha=0.25, lw=0.4)  # one faint line per claim, from its label across
    counts = f.verdict.value_counts()
    parts = [f"{counts.get(v, 0)} {v}" for v in verdicts.VERDICTS]
    ax.set_title(f"{title}: {len(f)} claims — " + ", ".join(parts), loc="left", fontsize=fontsize + 1)


def _legend_handles():
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .plotting import VERDICT_COLORS

    h = [Line2D([], [], color=VERDICT_COLORS[v], marker="o", lw=1.8, ms=4.5, label=v) for v in verdicts.VERDICTS]
    h.append(Line2D([], [], color="#555555", marker="D", mfc="white", lw=0, ms=4.5, label="design-limited"))
    h.append(Patch(color="#bbbbbb", alpha=0.7, label="0 … margin (superiority)"))
    h.append(Line2D([], [], color="#555555", marker="s", mfc="white", lw=0, ms=4.5, label="no interval"))
    return h


XLABEL = "(effect − decision threshold) / interval half-width; > 0: the claim's side (linear within ±3, log beyond)"


def plot_forest(
    ledger: pd.DataFrame,
    studies: list[str] | None = None,
    labels: bool = True,
    width: float = 8.5,
    row_height: float = 0.16,
    ncols: int = 1,
    fontsize: float = 7.5,
    label_width: int = 44,
    legend: bool = True,
):
    """The forest plot of ``ledger`` (a claims table): one panel per study (``studies``: which and in which
    order; default every study in ledger order), rows in ledger order, on the scale of :func:`standardize`.
    ``ncols`` > 1 spreads the panels over columns (the README's small version: ``labels=False``)."""
    import matplotlib.pyplot as plt

    f = standardize(ledger)
    studies = list(dict.fromkeys(ledger.study)) if studies is None else list(studies)
    sizes = [max(int((f.study == s).sum()), 1) for s in studies]
    cols = _split(sizes, ncols)
    extra = 0.62 if labels else 0.42  # title and axis of a panel, inches
    col_h = [sum(sizes[i] for i in c) * row_height + extra * len(c) for c in cols]
    height = max(col_h + [0.8]) + (0.55 if legend else 0.0) + 0.35
    fig = plt.figure(figsize=(width, height), layout="constrained")
    subs = fig.subfigures(1, len(cols), squeeze=False)[0] if len(cols) > 1 else [fig]
    for sub, c in zip(subs, cols):
        if not c:
            continue
        ratios = [sizes[i] * row_height + extra for i in c]
        axes = sub.subplots(len(c), 1, gridspec_kw={"height_ratios": ratios}, squeeze=False)[:, 0]
        for ax, i in zip(axes, c):
            s = studies[i]
            rows = f[f.study == s]
            if rows.empty:
                ax.set_axis_off()
                ax.set_title(f"{s}: no claims", loc="left", fontsize=fontsize + 1)
                continue
            _panel(ax, rows, s, labels, label_width, fontsize)
            ax.tick_params(axis="x", labelsize=fontsize)
        axes[-1].set_xlabel(XLABEL if ncols == 1 else "(effect − threshold) / half-width", fontsize=fontsize)
    if legend:
        fig.legend(
            handles=_legend_handles(),
            loc="outside upper center",
            ncol=6,
            fontsize=fontsize,
            frameon=False,
            handlelength=1.6,
        )
    return fig


def _split(sizes: list[int], ncols: int) -> list[list[int]]:
    """Panel indices in order, cut into at most ``ncols`` consecutive columns of balanced total size."""
    ncols = max(1, min(ncols, len(sizes)))
    total, cols, cur, acc = sum(sizes), [], [], 0
    for i, s in enumerate(sizes):
        left = ncols - len(cols)
        if cur and left > 1 and acc + s / 2 > total * (len(cols) + 1) / ncols:
            cols.append(cur)
            cur = []
        cur.append(i)
        acc += s
    cols.append(cur)
    return cols


def save_forest_figures(ledger: pd.DataFrame, studies: list[str], fig_dir) -> list:
    """``forest.png`` (every study) and ``<study>.png`` (that study's panel) under ``fig_dir``, PNG + PDF each."""
    import matplotlib.pyplot as plt

    from .plotting import savefig

    written = []
    fig = plot_forest(ledger, studies)
    written += savefig(fig, f"{fig_dir}/forest.png")
    plt.close(fig)
    for s in studies:
        fig = plot_forest(ledger[ledger.study == s], [s])
        written += savefig(fig, f"{fig_dir}/{s}.png")
        plt.close(fig)
    return written


def docs_figure(ledger: pd.DataFrame, path, dpi: int = 80) -> None:
    """The README's small forest plot (no claim labels, two columns of panels) as one PNG at ``dpi``."""
    import matplotlib.pyplot as plt

    from .plotting import style
    from .store import atomic_path

    style()
    fig = plot_forest(ledger, labels=False, width=10.5, row_height=0.075, ncols=2, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
