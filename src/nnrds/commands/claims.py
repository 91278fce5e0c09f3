"""The claims ledger: every claim the DAG tests, from the studies' own claim tables, in one table and one
report section (rule ``claims_ledger`` in workflow/rules/claims.smk).

``results/claims.csv`` is the concatenation of every enabled study's ``results/<study>/claims.csv``
(columns :data:`nnrds.verdicts.CLAIM_COLUMNS`), checked: exact columns, a verdict from
:data:`nnrds.verdicts.VERDICTS` in every row, one study per table, unique claim ids. Its caption (RST) is the
ledger the report shows first: study, claim, what was run, units (``n_units`` and ``n_units_to_decide``), effect
with its interval, verdict (with the ``design_note`` of a claim its design cannot decide), figure.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from .. import io, verdicts
from .common import add_commands, in_tables

TEXT_COLUMNS = [
    "study",
    "claim_id",
    "claim",
    "what_was_run",
    "unit",
    "effect_name",
    "test",
    "verdict",
    "figure",
    "design_note",
]


class LedgerError(ValueError):
    """A claim table that the ledger cannot take (names the file and what is wrong)."""


def check_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """One study's claims table, validated; raises :class:`LedgerError` naming ``source``."""
    cols = list(df.columns)
    if cols != verdicts.CLAIM_COLUMNS:
        missing = [c for c in verdicts.CLAIM_COLUMNS if c not in cols]
        extra = [c for c in cols if c not in verdicts.CLAIM_COLUMNS]
        raise LedgerError(
            f"{source}: columns must be nnrds.verdicts.CLAIM_COLUMNS in order"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + ("" if missing or extra else "; same names, wrong order")
        )
    if df.empty:
        return df
    bad = df[~df.verdict.isin(verdicts.VERDICTS)]
    if len(bad):
        raise LedgerError(
            f"{source}: claim {bad.claim_id.iloc[0]!r} has verdict {bad.verdict.iloc[0]!r}; "
            f"expected one of {verdicts.VERDICTS}"
        )
    if df.study.isna().any() or df.study.nunique() != 1:
        raise LedgerError(
            f"{source}: a claims table holds the claims of exactly one study, got {sorted(df.study.dropna().unique())}"
        )
    dup = df.claim_id[df.claim_id.duplicated()]
    if len(dup):
        raise LedgerError(f"{source}: duplicate claim_id {dup.iloc[0]!r}")
    if df.claim.isna().any() or (df.claim.astype(str).str.strip() == "").any():
        raise LedgerError(f"{source}: every claim needs its sentence (column `claim`)")
    k = pd.to_numeric(df.n_units_to_decide, errors="coerce")
    bad = df[(k.isna() & df.n_units_to_decide.notna()) | (k < df.n_units)]
    if len(bad):
        raise LedgerError(
            f"{source}: claim {bad.claim_id.iloc[0]!r} has n_units_to_decide {bad.n_units_to_decide.iloc[0]!r}; "
            "expected a number (inf allowed) no smaller than n_units"
        )
    return df


def build(tables: list[pd.DataFrame], sources: list[str] | None = None) -> pd.DataFrame:
    """Concatenate the studies' claim tables in the given order (each checked; a study may appear once)."""
    sources = sources or [f"table {i}" for i in range(len(tables))]
    seen: dict[str, str] = {}
    parts = []
    for df, src in zip(tables, sources):
        df = check_table(df, src)
        if len(df):
            s = df.study.iloc[0]
            if s in seen:
                raise LedgerError(f"{src}: study {s!r} already came from {seen[s]}")
            seen[s] = src
            parts.append(df)
    if not parts:
        return pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)
    return pd.concat(parts, ignore_index=True)[verdicts.CLAIM_COLUMNS]


# ------------------------------------------------------------------------------------------ caption
_RST_SPECIAL = re.compile(r"([\\`*_|])")


def rst_text(x) -> str:
    """Plain text safe inside an RST table cell and through the report's Jinja pass: RST markup characters
    backslash-escaped, Jinja delimiters broken up, line breaks folded, no leading list/enumeration marker."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    s = " ".join(str(x).split())
    s = _RST_SPECIAL.sub(r"\\\1", s)
    s = s.replace("{", "{{ '{' }}") if ("{{" in s or "{%" in s or "{#" in s) else s
    if re.match(r"^([-+•]|\d+[.)]|#\.)(\s|$)", s):
        s = "\\" + s
    return s


def _num(x: float, fmt: str = "+.3g") -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):{fmt}}"


def effect_text(r) -> str:
    """'effect name: +0.12 [+0.03, +0.2] (95%), margin 0.049' for one ledger row."""
    if not math.isfinite(float(r.effect)):
        est = "n/a"
    else:
        est = _num(r.effect)
    ci = (
        "no interval (too few units)"
        if not (math.isfinite(float(r.ci_low)) and math.isfinite(float(r.ci_high)))
        else f"[{_num(r.ci_low)}, {_num(r.ci_high)}] ({float(r.ci_level):.1%} interval)".replace(".0%", "%")
    )
    s = f"{r.effect_name}: {est} {ci}"
    if math.isfinite(float(r.margin)):
        s += f", margin {_num(r.margin, '.3g')}"
    p = [f"p = {_num(r.p_value, '.2g')}"] if math.isfinite(float(r.p_value)) else []
    if math.isfinite(float(r.p_adjusted)):
        p.append(f"adjusted p = {_num(r.p_adjusted, '.2g')}")
    return s + ("; " + ", ".join(p) if p else "")


def has_design_note(r) -> bool:
    """Whether a ledger row carries a ``design_note`` (a claim its design cannot decide at this scale)."""
    note = getattr(r, "design_note", "")
    return isinstance(note, str) and bool(note.strip())


def units_text(r) -> str:
    """'9; decides at 23' -- ``n_units`` and ``n_units_to_decide`` of one ledger row ('never' for inf, 'n/a' for
    not computed; just n when the row is decided)."""
    n = int(r.n_units)
    k = float(r.n_units_to_decide)
    if r.verdict != verdicts.INCONCLUSIVE:
        return f"{n}"
    if math.isnan(k):
        return f"{n}; to decide: n/a"
    if math.isinf(k):
        finite = math.isfinite(float(r.ci_low)) and math.isfinite(float(r.ci_high))
        return f"{n}; to decide: " + ("never at this spread" if finite else "unknown (no interval)")
    return f"{n}; to decide: {k:.0f}"


def caption(ledger: pd.DataFrame, scale: str = "") -> str:
    """The ledger as an RST list-table (what the report shows first)."""
    n = len(ledger)
    counts = ledger.verdict.value_counts() if n else pd.Series(dtype=int)
    studies = list(dict.fromkeys(ledger.study)) if n else []
    n_design = sum(has_design_note(r) and r.verdict == verdicts.INCONCLUSIVE for r in ledger.itertuples())
    lines = [
        f"**Claims ledger**{f' ({scale} scale)' if scale else ''}: every claim of the program that the workflow "
        f"tests, {n} in all from {len(studies)} "
        f"{'study' if len(studies) == 1 else 'studies'} ({', '.join(studies) if studies else 'none'}): "
        f"{counts.get(verdicts.SUPPORTED, 0)} supported, {counts.get(verdicts.CONTRADICTED, 0)} contradicted, "
        f"{counts.get(verdicts.INCONCLUSIVE, 0)} inconclusive ({n_design} of them claims the design cannot decide at "
        "this scale, marked *design*). Each verdict comes from the interval of an effect "
        "oriented so that a positive value is what the claim asserts: *supported* when the interval lies on the "
        "claim's side (for a null claim: below its stated margin), *contradicted* when it lies on the other side "
        "(for a null claim: above its margin), *inconclusive* otherwise (a non-significant test never supports a "
        "claim). *Units* gives n and, for an inconclusive claim, the number of units at which its interval (same "
        "level, observed spread and effect) would decide it (column ``n_units_to_decide``: *never* when the "
        "effect sits on the threshold, *unknown* when there is no interval to take a spread from). The table is "
        "``results/claims.csv``, concatenated from each study's ``results/<study>/claims.csv``; the study's caption "
        "explains its test, unit of replication and multiplicity correction.",
        "",
    ]
    if not n:
        lines.append("No enabled study declares a claims table.")
        return "\n".join(lines) + "\n"
    lines += [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 8 24 20 7 22 10 9",
        "",
        "   * - Study",
        "     - Claim",
        "     - What was run",
        "     - Units",
        "     - Effect with interval",
        "     - Verdict",
        "     - Figure",
    ]
    for r in ledger.itertuples():
        run = f"{r.what_was_run}. Unit: {r.unit}. Test: {r.test}."
        verdict = f"**{rst_text(r.verdict)}**"
        if has_design_note(r):
            verdict += f" (*design*: {rst_text(r.design_note)})"
        cells = [
            rst_text(r.study) + f" ({rst_text(r.claim_id)})",
            rst_text(r.claim),
            rst_text(run),
            rst_text(units_text(r)),
            rst_text(effect_text(r)),
            verdict,
            f"``{r.figure}``" if isinstance(r.figure, str) and r.figure and "`" not in r.figure else "",
        ]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" if c else "     -" for c in cells[1:]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ command
#: fixed names of the ledger and its report caption in the job's --out-dir
LEDGER_TABLE, LEDGER_CAPTION = "claims.csv", "claims_caption.rst"


def register(sub) -> None:
    add_commands(sub, {"claims-ledger": _ledger})


def _ledger(args) -> int:
    """concatenate the studies' claims.csv into the checked ledger results/claims.csv and write its report caption
    (RST table)

    Config: {scale}; --in-dir: each enabled study's results folder (its claims.csv)"""
    tables = [str(p) for p in in_tables(args, "claims.csv")]
    for t in tables:
        if not Path(t).exists():
            raise LedgerError(f"claims table {t} does not exist")
    frames = [pd.read_csv(t, keep_default_na=True) for t in tables]
    led = build(frames, tables)
    out = Path(args.out_dir)
    io.write_table(out / LEDGER_TABLE, led)
    io.write_text(out / LEDGER_CAPTION, caption(led, args.config_json.get("scale", "")))
    return 0
