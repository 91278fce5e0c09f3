"""Verdicts on the program's claims: effect sizes with intervals, multiplicity, and the claims table.

Every claim the DAG tests gets one of three verdicts, decided from the *interval* of an effect that is
oriented so that a positive value is what the claim asserts:

* :func:`superiority` -- "A is better than B" (effect = advantage of A):
  *supported* when the interval lies above 0, *contradicted* when it lies below 0 -- or below the
  smallest effect of interest ``margin`` when one is given (then a meaningful advantage is excluded) --
  and *inconclusive* otherwise.
* :func:`non_superiority` -- the null claim "A is no better than B" (effect = advantage of A):
  *supported* when the interval lies below the stated margin (an advantage larger than the margin is
  excluded; with a (1 - 2 alpha) interval this is the TOST / non-superiority test at level alpha),
  *contradicted* when it lies above the margin (an advantage larger than the margin is shown -- the mirror
  of :func:`superiority`), *inconclusive* otherwise, in particular when the interval lies above 0 but
  reaches below the margin (A is better, but not shown to be better by more than the margin). "Not
  significant" is never enough.

Intervals: :func:`mean_ci` (Student t), :func:`median_ci` (distribution-free, from order statistics and
the binomial distribution -- the sign-test interval, exact coverage >= level), and
:func:`hodges_lehmann_ci` (paired Wilcoxon / Walsh-average interval); :func:`t_or_sign_ci` (Student t, or the
median interval when every unit agrees) with its test :func:`one_sample_p`. Multiplicity: :func:`holm`
(Holm-Bonferroni step-down adjusted p-values, familywise error control) and :func:`holm_alphas` (the level of
each comparison's interval at Holm's step-down, so interval and adjusted p-value agree). :func:`verdict_table` puts
these together: a claims table from per-unit effects (superiority: :func:`one_sample_p`; non-superiority:
:func:`non_superiority_p`), Holm over the family, each interval at its Holm step-down level.

Every study writes its claims as a table with :data:`CLAIM_COLUMNS` (use :func:`claims_frame`); the
ledger rule concatenates them into ``results/claims.csv``.

Power in the ledger: :func:`claims_frame` adds to every row ``n_units_to_decide`` (:func:`units_to_decide`),
the number of units at which, with the row's observed per-unit spread and effect, its interval -- at its own
(multiplicity-adjusted) level -- would exclude the decision threshold(s): ``n_units`` when the row is decided,
an integer k > n_units when more units would decide it, ``inf`` when no number does (the effect sits on the
threshold, or the row has no interval and so no spread). It needs only columns every row has (effect, ci_low,
ci_high, ci_level, n_units, margin) and the rule that decided the row (:func:`decision_rule`: the optional
field ``decision_rule`` of :class:`Claim`, else inferred from the ``test`` text). *Approximation*: the spread
is recovered from the interval's half-widths through the Student t quantile at n - 1 degrees of freedom, the
two half-widths scale like t_(k-1)/sqrt(k) (an asymmetric interval keeps its shape), and the level (e.g. the
Holm step-down level) is kept fixed. Rows whose interval is not t-like (counts, binomial rates, a Bonferroni
quantile of held-out units) may give ``n_units_to_decide`` themselves. ``design_note`` marks a claim that its
design cannot decide at the scale it runs (:func:`design_note`; automatic when the row has no interval, or when
it needs more units than the optional field ``n_units_max`` allows); the ledger shows these rows apart from the
ordinary *inconclusive* ones, without a fourth verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)

#: columns of every study's ``claims.csv`` and of the ledger ``results/claims.csv``
CLAIM_COLUMNS = [
    "study",
    "claim_id",
    "claim",
    "what_was_run",
    "unit",
    "n_units",
    "n_units_to_decide",
    "effect_name",
    "effect",
    "ci_low",
    "ci_high",
    "ci_level",
    "margin",
    "p_value",
    "p_adjusted",
    "test",
    "verdict",
    "figure",
    "design_note",
]


def _finite_interval(lo: float, hi: float) -> bool:
    return bool(np.isfinite(lo) and np.isfinite(hi))


def superiority(ci_low: float, ci_high: float, margin: float | None = None) -> str:
    """Verdict on "A is better than B" from the interval of A's advantage (positive = claim)."""
    if not _finite_interval(ci_low, ci_high):
        return INCONCLUSIVE
    if ci_low > 0:
        return SUPPORTED
    if ci_high < 0 or (margin is not None and ci_high < margin):
        return CONTRADICTED
    return INCONCLUSIVE


def non_superiority(ci_low: float, ci_high: float, margin: float) -> str:
    """Verdict on "A is no better than B" (A's advantage is below ``margin`` > 0): *supported* when the interval
    lies below the margin, *contradicted* when it lies above it, *inconclusive* otherwise (also for an interval
    inside (0, ...) that reaches below the margin: an advantage is shown, one larger than the margin is not)."""
    if margin <= 0:
        raise ValueError(f"an equivalence / non-superiority margin must be > 0, got {margin}")
    if not _finite_interval(ci_low, ci_high):
        return INCONCLUSIVE
    if ci_high < margin:
        return SUPPORTED
    if ci_low > margin:
        return CONTRADICTED
    return INCONCLUSIVE


def _clean(x: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=float).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError("effect samples contain NaN or inf; a verdict needs finite data")
    return a


def mean_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean (NaN interval for fewer than 2 values)."""
    a = _clean(x)
    m = float(a.mean()) if a.size else float("nan")
    if a.size < 2:
        return m, float("nan"), float("nan")
    if np.all(a == a[0]):
        return m, m, m
    ci = stats.ttest_1samp(a, 0.0).confidence_interval(confidence_level=level)
    return m, float(ci.low), float(ci.high)


def median_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): distribution-free interval of the median from order statistics.

    The interval [x_(k), x_(n-k+1)] with the largest k such that P(Binom(n, 1/2) < k) <= (1-level)/2;
    its coverage is >= ``level`` for any continuous distribution. Too few values for the level
    (n = 5 at 95%) give the NaN interval, i.e. an *inconclusive* verdict.
    """
    a = np.sort(_clean(x))
    n = a.size
    med = float(np.median(a)) if n else float("nan")
    alpha = 1.0 - level
    # k = number of order statistics cut from each end (1-based lower index k)
    k = int(stats.binom.ppf(alpha / 2, n, 0.5)) if n else 0
    while k > 0 and stats.binom.cdf(k - 1, n, 0.5) > alpha / 2:
        k -= 1
    if k < 1:
        return med, float("nan"), float("nan")
    return med, float(a[k - 1]), float(a[n - k])


def hodges_lehmann_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high): Hodges-Lehmann estimate of the pseudo-median of paired differences and
    its Wilcoxon signed-rank interval (Walsh averages; normal approximation of the rank statistic's
    quantile for n > 25, exact distribution via scipy otherwise). NaN interval when n is too small."""
    a = _clean(x)
    n = a.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    i, j = np.triu_indices(n)
    walsh = np.sort((a[i] + a[j]) / 2.0)
    est = float(np.median(walsh))
    alpha = 1.0 - level
    m = walsh.size  # n (n + 1) / 2
    # critical count c: largest c with P(T <= c - 1) <= alpha/2, T the signed-rank statistic under H0
    if n <= 25:
        cdf = _signed_rank_cdf(n)
        ok = np.nonzero(cdf <= alpha / 2)[0]
        c = int(ok[-1]) + 1 if ok.size else 0
    else:
        mu, sd = m / 2.0, np.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
        c = int(np.floor(mu - stats.norm.ppf(1 - alpha / 2) * sd))
    if c < 1:
        return est, float("nan"), float("nan")
    return est, float(walsh[c - 1]), float(walsh[m - c])


def _signed_rank_cdf(n: int) -> np.ndarray:
    """Exact null CDF of the Wilcoxon signed-rank statistic T+ for n untied values (dynamic programming)."""
    m = n * (n + 1) // 2
    counts = np.zeros(m + 1)
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r]  # right side is evaluated before the assignment
    return np.cumsum(counts) / 2.0**n


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def holm_alphas(pvalues: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(Holm-adjusted p-values, per-comparison level alpha_j of Holm's step-down): the j-th smallest p-value
    (0-based) gets alpha / (m - j) while it and all smaller ones are rejected; from the first non-rejection on, every
    comparison keeps the Bonferroni alpha / m. An interval at level 1 - alpha_j then excludes the null exactly when
    the adjusted p-value is <= alpha. NaN p-values sort last."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    p_adj = holm(p) if m else p
    a = np.full(m, alpha / max(m, 1))
    for j, i in enumerate(np.argsort(np.where(np.isfinite(p), p, np.inf), kind="stable")):
        if not (np.isfinite(p_adj[i]) and p_adj[i] <= alpha):
            break  # Holm stops at the first non-rejection: the rest keep the Bonferroni level
        a[i] = alpha / (m - j)
    return p_adj, a


def one_sample_p(x: np.ndarray) -> float:
    """Two-sided one-sample t-test of mean 0 (the dual of :func:`mean_ci`); when all values are identical, the
    exact sign test (the dual of :func:`median_ci`, see :func:`t_or_sign_ci`). NaN for fewer than 2 values."""
    if x.size < 2:
        return float("nan")
    if np.all(x == x[0]):
        return 1.0 if x[0] == 0 else float(min(1.0, 2.0 * 0.5**x.size))
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def non_superiority_p(x: np.ndarray, margin: float) -> float:
    """One-sided t-test of H0: mean >= margin against mean < margin (dual of the upper end of the (1 - 2 alpha)
    t interval of :func:`t_or_sign_ci`); identical values: exact sign test. NaN for fewer than 2 values."""
    if x.size < 2:
        return float("nan")
    if np.all(x == x[0]):
        return float(0.5**x.size) if x[0] < margin else 1.0
    return float(stats.ttest_1samp(x, margin, alternative="less").pvalue)


def t_or_sign_ci(x: np.ndarray, level: float) -> tuple[float, float, float]:
    """(mean, low, high): :func:`mean_ci`; identical values (zero spread says nothing about the population's
    spread) get their value and the distribution-free :func:`median_ci` instead (NaN, i.e. inconclusive, when
    there are too few units for the level)."""
    if x.size >= 2 and np.all(x == x[0]):
        _, lo, hi = median_ci(x, level=level)
        return float(x[0]), lo, hi
    return mean_ci(x, level=level)


@dataclass
class Claim:
    """One row of a claims table (see :data:`CLAIM_COLUMNS`)."""

    study: str
    claim_id: str
    claim: str
    what_was_run: str
    unit: str
    n_units: int
    effect_name: str
    effect: float
    ci_low: float
    ci_high: float
    ci_level: float
    verdict: str
    test: str
    figure: str = ""
    margin: float = float("nan")
    p_value: float = float("nan")
    p_adjusted: float = float("nan")
    #: the rule that decided the row (:data:`DECISION_RULES`); "" = inferred (:func:`decision_rule`). Not a column.
    decision_rule: str = ""
    #: threshold of the rule "threshold" (supported above it, contradicted below); NaN = ``margin``. Not a column.
    decision_threshold: float = float("nan")
    #: the most units this design can supply at its scale (e.g. every configuration of a group); NaN = no limit.
    #: A row that needs more gets a :func:`design_note` automatically. Not a column.
    n_units_max: float = float("nan")
    #: override of the computed ``n_units_to_decide`` (for intervals that are not t-like); None = computed
    n_units_to_decide: float | None = None
    #: why the design cannot decide this claim at this scale and what would (:func:`design_note`); "" = none
    design_note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def claim_bullet(r, ci_fmt: str = ".2g") -> str:
    """One row ``r`` of a claims table (:data:`CLAIM_COLUMNS`, e.g. from ``itertuples``) as a caption bullet (RST):
    id, claim, effect with its interval (ends formatted ``ci_fmt``; "n/a" when not finite), level, units (seeds),
    Holm-adjusted p-value and verdict; for an *inconclusive* row with ``n_units_to_decide``, what would decide it
    (:func:`decision_text`, with its ``design_note``)."""

    def num(x: float, fmt: str = ".2g") -> str:
        return format(x, fmt) if np.isfinite(x) else "n/a"

    why = decision_text(r, "seeds")
    return (
        f"* Claim ``{r.claim_id}`` — {r.claim}: effect {r.effect:.3g} [{num(r.ci_low, ci_fmt)}, {num(r.ci_high, ci_fmt)}] "
        f"({100 * r.ci_level:.1f}% interval, {r.n_units} seeds, Holm-adjusted p = {num(r.p_adjusted)}): **{r.verdict}**"
        + (f" — {why}." if why else ".")
    )


def claims_frame(rows: Iterable[Claim | dict]) -> pd.DataFrame:
    """A claims table with exactly :data:`CLAIM_COLUMNS`, validated verdicts; ``n_units_to_decide`` (unless a
    row gives it) and ``design_note`` (unless a row gives one) are computed here (:func:`units_to_decide`,
    :func:`auto_design_note`), so every study's table gets them from the columns it already has."""
    recs = [asdict(r) if isinstance(r, Claim) else dict(r) for r in rows]
    for r in recs:
        if r.get("verdict") not in VERDICTS:
            raise ValueError(
                f"claim {r.get('claim_id')!r}: verdict must be one of {VERDICTS}, got {r.get('verdict')!r}"
            )
        rule = decision_rule(r)  # a wrong decision_rule raises here
        if r.get("n_units_to_decide") is None:
            try:
                r["n_units_to_decide"] = units_to_decide(
                    r.get("effect", np.nan),
                    r.get("ci_low", np.nan),
                    r.get("ci_high", np.nan),
                    r.get("ci_level", np.nan),
                    r.get("n_units", 0),
                    r["verdict"],
                    rule,
                    r.get("margin", np.nan),
                    r.get("decision_threshold", np.nan),
                )
            except (TypeError, ValueError):  # a row without numbers (e.g. a missing column, reported below)
                r["n_units_to_decide"] = np.nan
        r["n_units_to_decide"] = float(r["n_units_to_decide"])
        note = r.get("design_note")
        r["design_note"] = note if isinstance(note, str) and note else auto_design_note(r)
    df = pd.DataFrame.from_records(recs)
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"claims table lacks columns {missing}")
    return df[CLAIM_COLUMNS]


# ------------------------------------------------------------------------------------------ power
#: rules a verdict can come from: :func:`superiority` (supported above 0, contradicted below 0 or below the
#: margin), :func:`non_superiority` (supported below the margin, contradicted above it), "threshold" (supported
#: above ``decision_threshold``, contradicted below it; e.g. superiority of effect - t, or non-inferiority at
#: t = -margin), "none" (the verdict does not come from the interval alone: ``n_units_to_decide`` is not computed)
DECISION_RULES = ("superiority", "non_superiority", "threshold", "none")
_ABOVE = re.compile(r"supported when the interval lies above (-?\d+(?:\.\d*)?(?:e[-+]?\d+)?)", re.IGNORECASE)


def decision_rule(row: dict) -> tuple[str, float]:
    """(rule, threshold) of a claims row: its field ``decision_rule`` when given (with ``decision_threshold``,
    default ``margin``, for "threshold"); else inferred from the ``test`` text -- "non-superiority" (or
    "non_superiority") -> non-superiority, "supported when the interval lies above X" -> threshold X -- with
    the safe default superiority (with the row's margin). A wrong inference is caught where it matters:
    :func:`units_to_decide` returns NaN when the rule would decide an *inconclusive* row."""
    rule = str(row.get("decision_rule") or "")
    thr = float(row.get("decision_threshold", np.nan))
    if rule:
        if rule not in DECISION_RULES:
            raise ValueError(f"claim {row.get('claim_id')!r}: decision_rule must be one of {DECISION_RULES}")
        return rule, thr
    test = str(row.get("test") or "")
    if re.search(r"non[-_ ]superiority", test, re.IGNORECASE):
        return "non_superiority", thr
    m = _ABOVE.search(test)
    if m:
        return "threshold", float(m.group(1))
    return "superiority", thr


def _decides(rule: str, margin: float, threshold: float):
    """lo, hi -> True when that interval decides the claim under ``rule``; None when it cannot be said."""
    margin = float(margin) if margin is not None else np.nan
    if rule == "superiority":
        m = margin if np.isfinite(margin) else None
        return lambda lo, hi: superiority(lo, hi, margin=m) != INCONCLUSIVE
    if rule == "non_superiority":
        if not (np.isfinite(margin) and margin > 0):
            return None
        return lambda lo, hi: non_superiority(lo, hi, margin) != INCONCLUSIVE
    if rule == "threshold":
        t = float(threshold) if np.isfinite(threshold) else margin
        if not np.isfinite(t):
            return None
        return lambda lo, hi: bool(lo > t or hi < t)
    return None


def units_to_decide(
    effect: float,
    ci_low: float,
    ci_high: float,
    ci_level: float,
    n_units: int,
    verdict: str,
    rule: str | tuple[str, float] = "superiority",
    margin: float = float("nan"),
    threshold: float = float("nan"),
) -> float:
    """Units at which the row's interval would decide its claim (the ``n_units_to_decide`` column).

    ``n_units`` when ``verdict`` is decided; for an *inconclusive* row the smallest integer k > n_units at which
    the interval [effect - f(k)(effect - ci_low), effect + f(k)(ci_high - effect)], f(k) = (t_(k-1)/sqrt(k)) /
    (t_(n-1)/sqrt(n)) with t_d the two-sided ``ci_level`` quantile of Student's t at d degrees of freedom, is
    decided by ``rule`` (:data:`DECISION_RULES`, threshold of "threshold": ``threshold``, default ``margin``) --
    i.e. the observed spread and effect kept, the level kept fixed; ``inf`` when no k decides (the effect sits on
    the threshold) or the row has no finite interval / fewer than 2 units (no spread to go by); NaN when the rule
    cannot say (rule "none", no valid margin) or would decide the row already (the verdict did not come from the
    interval by this rule, e.g. a gate)."""
    if isinstance(rule, tuple):
        rule, threshold = rule
    if verdict in (SUPPORTED, CONTRADICTED):
        return float(n_units)
    decides = _decides(rule, margin, threshold)
    if decides is None:
        return float("nan")
    vals = np.array([effect, ci_low, ci_high, ci_level], dtype=float)
    n = int(n_units)
    if not np.all(np.isfinite(vals)) or n < 2 or not 0 < ci_level < 1:
        return float("inf")
    if decides(ci_low, ci_high):
        return float("nan")
    d_lo, d_hi = max(effect - ci_low, 0.0), max(ci_high - effect, 0.0)
    q = 1.0 - (1.0 - ci_level) / 2.0
    g_n = stats.t.ppf(q, n - 1) / np.sqrt(n)

    def at(k: int) -> bool:
        f = stats.t.ppf(q, k - 1) / np.sqrt(k) / g_n
        return decides(effect - f * d_lo, effect + f * d_hi)

    # as k grows the interval shrinks (nested) onto the effect: some k decides iff a small enough interval does
    eps = 1e-12 * max(1.0, abs(effect))
    if not decides(effect - eps * (d_lo > 0), effect + eps * (d_hi > 0)) or (d_lo == 0 and d_hi == 0):
        return float("inf")
    lo, hi = n, n + 1  # at(lo) is False
    while not at(hi):
        lo, hi = hi, 2 * hi
        if hi > 2**50:
            return float("inf")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if at(mid) else (mid, hi)
    return float(hi)


def min_units_rank_interval(level: float) -> int:
    """Fewest units for which the sign-test (:func:`median_ci`) or Wilcoxon (:func:`hodges_lehmann_ci`) interval
    exists at ``level``: the extreme order statistic / Walsh average has coverage 1 - 2^(1-n), so n >=
    log2(2 / (1 - level))."""
    return int(np.ceil(np.log2(2.0 / (1.0 - level)) - 1e-12))


def design_note(reason: str, would_decide: str = "") -> str:
    """The ``design_note`` of a claim its design cannot decide at this scale: "cannot decide at this design:
    <reason>[; would decide: <would_decide>]". Give it as the row's ``design_note`` (the ledger and the captions
    show such rows apart from ordinary *inconclusive* ones)."""
    return f"cannot decide at this design: {reason}" + (f"; would decide: {would_decide}" if would_decide else "")


def auto_design_note(r: dict) -> str:
    """The automatic ``design_note`` of an *inconclusive* row (else ""): no interval at its level from its
    units, or more units needed (``n_units_to_decide``) than the design supplies (field ``n_units_max``)."""
    if r.get("verdict") != INCONCLUSIVE:
        return ""
    n, k = r.get("n_units", 0), float(r.get("n_units_to_decide", np.nan))
    n_max = float(r.get("n_units_max", np.nan))
    lo, hi, lev = (float(r.get(c, np.nan)) for c in ("ci_low", "ci_high", "ci_level"))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lv = f"{lev:.4g} " if np.isfinite(lev) else ""
        return design_note(f"no {lv}interval from {n} units", "more units (at least enough for an interval)")
    if np.isfinite(n_max) and k > n_max:
        need = "no number of units (the effect sits on the threshold)" if np.isinf(k) else f"about {k:.0f} units"
        return design_note(f"needs {need} with the observed spread, the design has at most {n_max:.0f}")
    return ""


def decision_text(r, unit: str = "units") -> str:
    """For captions: what would decide the row ``r`` (a claims-table row with ``n_units_to_decide``): "" when it
    is decided (or has no such field); else "would decide at about k <unit> with the observed spread and effect
    (runs n)", or why no number is given, then its ``design_note`` if any."""
    if getattr(r, "verdict", None) != INCONCLUSIVE or not hasattr(r, "n_units_to_decide"):
        return ""
    k = float(r.n_units_to_decide)
    if np.isfinite(k):
        s = f"would decide at about {k:.0f} {unit} with the observed spread and effect (runs {int(r.n_units)})"
    elif np.isnan(k):
        s = "units to decide not computed (the verdict does not come from its interval alone)"
    elif np.isfinite(float(r.ci_low)) and np.isfinite(float(r.ci_high)):
        s = f"more {unit} of this spread would not decide it (the effect sits on the threshold)"
    else:
        s = "no interval, so no spread to say how many units would decide it"
    note = getattr(r, "design_note", "")
    return s + (f"; {note}" if isinstance(note, str) and note else "")


def verdict_table(specs: list[dict], alpha: float) -> pd.DataFrame:
    """Claims table from per-unit effects. Each spec: claim fields of :class:`Claim` (without the
    numbers) plus ``x`` (the per-unit effects), ``kind`` ("superiority" or "non_superiority") and ``margin``.

    p-values: superiority, two-sided t-test of mean 0; non-superiority, one-sided t-test of mean >= margin. Holm
    over all specs; the interval of the j-th smallest p-value is taken at Holm's step-down level alpha_j =
    alpha/(m - j + 1) while the previous ones were rejected (alpha/m after the first non-rejection): two-sided
    (1 - alpha_j) for superiority, (1 - 2 alpha_j) for non-superiority (its upper end is the one-sided bound),
    so the interval and the adjusted p-value agree. Verdicts: :func:`superiority` /
    :func:`non_superiority`."""
    specs = [dict(s) for s in specs]
    for s in specs:
        x = np.asarray(s["x"], dtype=float)
        s["x"] = x[np.isfinite(x)]
        s["p_value"] = one_sample_p(s["x"]) if s["kind"] == "superiority" else non_superiority_p(s["x"], s["margin"])
    m = len(specs)
    if m == 0:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    p_adj, a_j = holm_alphas([s["p_value"] for s in specs], alpha)
    out = []
    for i, s in enumerate(specs):
        x, kind, margin = s.pop("x"), s.pop("kind"), float(s["margin"])
        level = 1.0 - (a_j[i] if kind == "superiority" else 2.0 * a_j[i])
        eff, lo, hi = t_or_sign_ci(x, level)
        v = superiority(lo, hi, margin=margin) if kind == "superiority" else non_superiority(lo, hi, margin)
        test = (
            f"{'two-sided one-sample t test of mean 0' if kind == 'superiority' else f'one-sided t test of mean >= {margin:.3g} (non-superiority)'}"
            f" over {x.size} units; Holm over {m} claims, interval at the Holm step-down level; "
            f"{kind.replace('_', '-')} with margin {margin:.3g}"
        )
        out.append(
            Claim(
                **{k: v_ for k, v_ in s.items() if k != "p_value"},
                n_units=int(x.size),
                effect=float(eff),
                ci_low=float(lo),
                ci_high=float(hi),
                ci_level=float(level),
                p_value=float(s["p_value"]),
                p_adjusted=float(p_adj[i]),
                verdict=v,
                test=test,
                decision_rule=kind,
            )
        )
    return claims_frame(out)
