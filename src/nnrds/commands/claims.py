"""The claims ledger: every claim the DAG tests, from the studies' own claim tables, in one table and one
report section (rule ``claims_ledger`` in workflow/rules/claims.smk).

``results/claims.csv`` is the concatenation of every enabled study's ``results/<study>/claims.csv``
(columns :data:`nnrds.verdicts.CLAIM_COLUMNS`), checked: exact columns, a verdict from
:data:`nnrds.verdicts.VERDICTS` in every row, one study per table, unique claim ids. Its caption (RST,
:func:`caption`) is the compact ledger of the report's front page: study, claim id with its sentence, effect with
its interval, margin, verdict (a *design* mark for a claim its design cannot decide), n (and the units that would
decide an inconclusive claim), a link to the figure. The long texts (what was run, unit, test, p-values) stay in
the CSV and in each study's category.

``nnrds claims-summary`` (rule ``claims_summary``) writes what the front page shows before that and what each
study's category opens with: the verdict counts per study (:func:`verdict_counts`, ``results/claims/
verdict_counts.csv`` and its caption), the caption of the forest plot (:func:`forest_caption`; the figure is
``figures/claims/forest.png``, :mod:`nnrds.forest`, rule ``claims_figures``) and one summary per study
(:func:`study_summary`, the caption of its panel ``figures/claims/<study>.png``).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import store, verdicts
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


def has_design_note(r) -> bool:
    """Whether a ledger row carries a ``design_note`` (a claim its design cannot decide at this scale)."""
    note = getattr(r, "design_note", "")
    return isinstance(note, str) and bool(note.strip())


def _html(x) -> str:
    """Text for a raw-HTML fragment of a caption: HTML-escaped, and safe through the report's Jinja pass and inside
    an RST interpreted-text role (no braces, no backticks)."""
    s = html.escape(" ".join(str(x).split()), quote=True)
    return s.replace("{", "&#123;").replace("}", "&#125;").replace("`", "&#96;")


_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")

#: the raw-HTML role every caption with verdict badges or figure links declares first
RAW_ROLE = ".. role:: raw-html(raw)\n   :format: html\n"


def verdict_badge(r) -> str:
    """The verdict of a ledger row as a coloured badge (raw HTML role; CSS classes of workflow/report/workflow.rst),
    with a *design* mark (its ``design_note`` as tooltip) for a claim its design cannot decide at this scale."""
    v = str(r.verdict)
    s = f':raw-html:`<span class="nnrds-v nnrds-{_html(v)}">{_html(v)}</span>`'
    if has_design_note(r):
        s += f' :raw-html:`<span class="nnrds-design" title="{_html(r.design_note)}">design</span>`'
    return s


def figure_link(path) -> str:
    """A link that opens the figure ``path`` in the report (its result panel); "" when there is no figure."""
    if not isinstance(path, str) or not path or not _SAFE_PATH.match(path):
        return ""
    return (
        f':raw-html:`<a class="nnrds-fig" href="javascript:app.showResultInfo(\'{path}\')" '
        f'data-result="{path}">{_html(Path(path).stem)}</a>`'
    )


def short_effect(r) -> str:
    """'+0.12 [+0.03, +0.2]' (no interval: '+0.12 (no interval)')."""
    est = _num(r.effect)
    if not (math.isfinite(float(r.ci_low)) and math.isfinite(float(r.ci_high))):
        return f"{est} (no interval)"
    return f"{est} [{_num(r.ci_low)}, {_num(r.ci_high)}]"


def short_units(r) -> str:
    """'9' for a decided claim; '9 → 23' (units at which the interval would decide it), '9 → never' (effect on the
    threshold), '9 → ?' (no interval) or '9 → n/a' (not computed) for an inconclusive one."""
    n = int(r.n_units)
    if r.verdict != verdicts.INCONCLUSIVE:
        return f"{n}"
    k = float(r.n_units_to_decide)
    if math.isnan(k):
        return f"{n} → n/a"
    if math.isinf(k):
        finite = math.isfinite(float(r.ci_low)) and math.isfinite(float(r.ci_high))
        return f"{n} → never" if finite else f"{n} → ?"
    return f"{n} → {k:.0f}"


def caption(ledger: pd.DataFrame, scale: str = "") -> str:
    """The compact ledger (RST list-table, what the report's front page shows after the forest plot): study, claim
    id with its sentence, effect with interval, margin, verdict, n (and units to decide), figure link. The long
    texts (what was run, unit, test, p-values, design notes) stay in ``results/claims.csv``."""
    n = len(ledger)
    studies = list(dict.fromkeys(ledger.study)) if n else []
    lines = [
        RAW_ROLE,
        f"**Claims ledger**{f' ({scale} scale)' if scale else ''}: {n} claims from {len(studies)} "
        f"{'study' if len(studies) == 1 else 'studies'}, one row each. *Effect*: the estimate of the effect "
        "(oriented so that a positive value is what the claim asserts) with its interval at the row's level (often "
        "multiplicity-adjusted); *margin*: the smallest effect of interest where the claim states one; *n*: the "
        "units run, and for an inconclusive claim → the units at which its interval would decide it (*never*: the "
        "effect sits on the threshold; *?*: no interval to take a spread from); *design* marks a claim its design "
        "cannot decide at this scale (the reason is its tooltip). What was run, the unit, the test and the "
        "p-values are in ``results/claims.csv`` and in each study's category.",
        "",
    ]
    if not n:
        lines.append("No enabled study declares a claims table.")
        return "\n".join(lines) + "\n"
    lines += [
        ".. list-table::",
        "   :header-rows: 1",
        "   :class: nnrds-ledger",
        "   :widths: 10 40 16 7 12 7 8",
        "",
        "   * - Study",
        "     - Claim",
        "     - Effect [interval]",
        "     - Margin",
        "     - Verdict",
        "     - n",
        "     - Figure",
    ]
    for r in ledger.itertuples():
        margin = float(r.margin)
        cells = [
            rst_text(r.study),
            f"**{rst_text(r.claim_id)}** — {rst_text(r.claim)}",
            rst_text(short_effect(r)),
            rst_text(_num(margin, ".3g")) if math.isfinite(margin) else "",
            verdict_badge(r),
            rst_text(short_units(r)),
            figure_link(r.figure),
        ]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" if c else "     -" for c in cells[1:]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ verdict counts
COUNT_COLUMNS = [
    "study",
    "claims",
    "supported",
    "contradicted",
    "inconclusive",
    "more_units_decide",
    "units_factor_median",
    "design_limited",
]


def verdict_counts(ledger: pd.DataFrame, studies: list[str] | None = None) -> pd.DataFrame:
    """Verdicts per study (``studies``: which and in which order, a study without claims gets zeros; default the
    ledger's studies) and a last row ``all``: claims, supported, contradicted, inconclusive; of the inconclusive
    ones, ``more_units_decide`` -- a finite ``n_units_to_decide`` (more units of the observed spread would decide
    them), with ``units_factor_median`` the median of n_units_to_decide / n_units over those rows (NaN: none) --
    and ``design_limited`` (a ``design_note``: the design cannot decide them at this scale; may overlap)."""
    studies = list(dict.fromkeys(ledger.study)) if studies is None else list(studies)
    extra = [s for s in dict.fromkeys(ledger.study) if s not in studies]
    if extra:
        raise LedgerError(f"ledger holds claims of studies {extra} that are not declared ({studies})")

    def row(name: str, d: pd.DataFrame) -> dict:
        inc = d[d.verdict == verdicts.INCONCLUSIVE]
        k = pd.to_numeric(inc.n_units_to_decide, errors="coerce").astype(float)
        more = inc[np.isfinite(k.to_numpy()) & (k.to_numpy() > inc.n_units.to_numpy())]
        factor = (more.n_units_to_decide.astype(float) / more.n_units.astype(float)).median() if len(more) else np.nan
        return {
            "study": name,
            "claims": len(d),
            "supported": int((d.verdict == verdicts.SUPPORTED).sum()),
            "contradicted": int((d.verdict == verdicts.CONTRADICTED).sum()),
            "inconclusive": len(inc),
            "more_units_decide": len(more),
            "units_factor_median": float(factor),
            "design_limited": int(sum(has_design_note(r) for r in inc.itertuples())),
        }

    rows = [row(s, ledger[ledger.study == s]) for s in studies] + [row("all", ledger)]
    return pd.DataFrame(rows, columns=COUNT_COLUMNS)


def counts_caption(counts: pd.DataFrame, scale: str = "") -> str:
    """The verdict-count table (RST list-table) the report's front page shows first."""
    tot = counts.iloc[-1]
    lines = [
        f"**Verdicts{f' at the {scale} scale' if scale else ''}**: {int(tot.claims)} claims from "
        f"{len(counts) - 1} studies. *More units decide*: inconclusive claims whose interval would decide them at "
        "a finite number of units with the observed spread and effect (column ``n_units_to_decide``; × the median "
        "factor over the units run); *design-limited*: inconclusive claims the design cannot decide at this scale "
        "(a ``design_note``; the two may overlap).",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :class: nnrds-counts",
        "",
        "   * - Study",
        "     - Claims",
        "     - Supported",
        "     - Contradicted",
        "     - Inconclusive",
        "     - More units decide",
        "     - Design-limited",
    ]
    for r in counts.itertuples():
        f = r.units_factor_median
        more = f"{r.more_units_decide}" + (f" (×{f:.2g})" if math.isfinite(f) else "")
        cells = [
            rst_text(r.study) if r.study != "all" else "**all**",
            str(r.claims),
            str(r.supported),
            str(r.contradicted),
            str(r.inconclusive),
            more,
            str(r.design_limited),
        ]
        if r.study == "all":
            cells = [cells[0]] + [f"**{c}**" for c in cells[1:]]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    return "\n".join(lines) + "\n"


def forest_caption(scale: str = "", png: bytes | None = None) -> str:
    """Caption of the forest plot (``figures/claims/forest.png``): the figure itself (``png``, embedded as a data URI,
    so the report's front page shows it; Snakemake's ``embeddedimage`` directive does not embed) and how to read
    its scale."""
    import base64

    from .. import forest

    img = ""
    if png:
        # base64 in lines of 76 (docutils limits a line to 10000 characters; a URL parser drops the line breaks)
        b64 = base64.encodebytes(png).decode("ascii").strip().replace("\n", "\n   ")
        img = (
            '.. raw:: html\n\n   <img class="nnrds-forest" alt="forest plot of every claim" src="data:image/png;base64,'
            f'\n   {b64}">\n\n'
        )
    return img + (
        f"**Forest plot of every claim**{f' ({scale} scale)' if scale else ''}, one panel per study, rows in "
        "ledger order (``figures/claims/forest.png``, from ``results/claims.csv``). The effects come in many units, "
        "so each claim's estimate (dot) and interval (bar) are drawn as (value − t) / h: t is the threshold that "
        "decides *supported* (0 for a superiority claim, the stated threshold of a threshold rule, the margin of a "
        "non-superiority claim), h is the interval's half-width, and the axis is oriented so that right of 0 is the "
        "claim's side (a non-superiority claim's axis is flipped: below its margin is its side). Every interval is "
        "then 2 wide, and a claim is **supported exactly when its interval lies right of 0**, **contradicted "
        "exactly when it lies left of the grey band** (a superiority claim with a margin m is contradicted once its "
        "interval lies below m, the band [0, m/h]; without a band, left of 0), inconclusive when it covers the band "
        "(or the line 0). Colour: the ledger's verdict; open diamonds: design-limited claims (a ``design_note``); "
        "open squares: no interval; ``*`` after a claim: its verdict does not come from this interval alone (see the "
        f"study's caption); arrowheads: beyond ±{forest.CLIP:g} half-widths. The axis is linear within "
        f"±{forest.LINTHRESH:g} and logarithmic beyond. Each study's category opens with its own panel.\n"
    )


def study_summary(ledger: pd.DataFrame, study: str, scale: str = "") -> str:
    """The short summary a study's category opens with (caption of its forest-plot panel): which claims hold at
    this scale, which do not, which are undecided and what would decide them."""
    d = ledger[ledger.study == study]
    where = f" at the *{scale}* scale" if scale else ""
    if d.empty:
        return f"**{rst_text(study)}**{where}: no claims in the ledger.\n"
    n_lo, n_hi = int(d.n_units.min()), int(d.n_units.max())
    units = f"{n_lo}" if n_lo == n_hi else f"{n_lo}–{n_hi}"

    def ids(v: str) -> list:
        return list(d[d.verdict == v].itertuples())

    def names(rows) -> str:
        return ", ".join(f"*{rst_text(r.claim_id)}*" for r in rows) if rows else "none"

    inc = []
    for r in ids(verdicts.INCONCLUSIVE):
        why = short_units(r).split("→")[-1].strip()
        note = "design-limited" if has_design_note(r) else ""
        if why.isdigit():
            why = f"decides at about {why} units"
        else:
            why = {"never": "the effect sits on the threshold", "?": "no interval", "n/a": ""}.get(why, why)
        extra = "; ".join(x for x in (why, note) if x)
        inc.append(f"*{rst_text(r.claim_id)}*" + (f" ({extra})" if extra else ""))
    sup, con = ids(verdicts.SUPPORTED), ids(verdicts.CONTRADICTED)
    return (
        f"**{rst_text(study)}: its claims{where}** ({len(d)} claims, {units} units each; the panel is the study's "
        "part of the forest plot on the report's front page, same scale). "
        f"**Reproduces** (supported, {len(sup)}): {names(sup)}. "
        f"**Does not reproduce** (contradicted, {len(con)}): {names(con)}. "
        f"**Not decided at this scale** (inconclusive, {len(inc)}): {', '.join(inc) if inc else 'none'}. "
        "Effects, intervals and tests: ``results/claims.csv`` and the study's own caption (its figures and tables "
        "follow).\n"
    )


# ------------------------------------------------------------------------------------------ command
#: fixed names of the ledger and its report caption in the job's --out-dir
LEDGER_TABLE, LEDGER_CAPTION = "claims.csv", "claims_caption.rst"


#: fixed names of the claims summary's outputs in its --out-dir (results/claims/)
COUNTS_TABLE, COUNTS_CAPTION, FOREST_CAPTION = "verdict_counts.csv", "verdict_counts.rst", "forest_caption.rst"


def summary_name(study: str) -> str:
    """File name of a study's claims summary (the caption of its forest-plot panel) in results/claims/."""
    return f"summary_{study}.rst"


def register(sub) -> None:
    add_commands(sub, {"claims-ledger": _ledger, "claims-summary": _summary, "claims-forest-caption": _forest_caption})


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
    store.write_table(out / LEDGER_TABLE, led)
    store.write_text(out / LEDGER_CAPTION, caption(led, args.config_json.get("scale", "")))
    return 0


def _summary(args) -> int:
    """verdict counts per study (results/claims/verdict_counts.csv and its front-page caption) and each study's
    claims summary (the caption its category opens with), from the ledger

    Config: {scale, studies: the keys of the studies whose claims tables the ledger takes, in order}; --in-dir: the
    folder of the ledger (results/)"""
    cfg = args.config_json
    scale, studies = cfg.get("scale", ""), list(cfg.get("studies", []))
    (src,) = in_tables(args, LEDGER_TABLE)
    led = pd.read_csv(src, keep_default_na=True)
    if list(led.columns) != verdicts.CLAIM_COLUMNS:
        raise LedgerError(f"{src}: columns must be nnrds.verdicts.CLAIM_COLUMNS in order")
    counts = verdict_counts(led, studies)
    out = Path(args.out_dir)
    store.write_table(out / COUNTS_TABLE, counts)
    store.write_text(out / COUNTS_CAPTION, counts_caption(counts, scale))
    for s in studies:
        store.write_text(out / summary_name(s), study_summary(led, s, scale))
    return 0


def _forest_caption(args) -> int:
    """the forest plot's caption with the figure embedded (results/claims/forest_caption.rst), from
    figures/claims/forest.png

    Config: {scale}; --in-dir: the folder of forest.png"""
    (png,) = in_tables(args, "forest.png")
    text = forest_caption(args.config_json.get("scale", ""), png.read_bytes())
    store.write_text(Path(args.out_dir) / FOREST_CAPTION, text)
    return 0
