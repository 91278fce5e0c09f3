"""The claims ledger (nnrds.commands.claims): concatenation, checks and caption, on synthetic claim tables."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nnrds import verdicts as V
from nnrds.commands import claims as L


def claim_table(study: str, n: int, nasty: bool = False) -> pd.DataFrame:
    """n claims of one study with every verdict, NaN intervals and margins; ``nasty`` puts RST/Jinja markup
    characters into the text fields."""
    rows = []
    for i in range(n):
        verdict = V.VERDICTS[i % 3]
        txt = f"claim {i} of {study}" + (
            " with |bars|, *stars*, trailing_ under_score, `tick`, {{ jinja }}, {# c #}" if nasty else ""
        )
        rows.append(
            V.Claim(
                study=study,
                claim_id=f"c{i}" if not nasty else f"robust/x_{i}/y",
                claim=txt + ".",
                what_was_run="- 3 seeds" if nasty else "3 seeds",
                unit="seed",
                n_units=3 + i,
                effect_name="Δ accuracy",
                effect=0.1 * (i - 1),
                ci_low=math.nan if i == 2 else 0.1 * (i - 1) - 0.05,
                ci_high=math.nan if i == 2 else 0.1 * i,
                ci_level=0.95,
                verdict=verdict,
                test="paired t-test",
                figure=f"figures/{study}/f{i}.png",
                margin=0.05 if i == 1 else math.nan,
                p_value=0.01 * (i + 1),
                p_adjusted=math.nan if i else 0.03,
            )
        )
    return V.claims_frame(rows)


def test_build_concatenates_in_order_with_claim_columns():
    led = L.build([claim_table("stiffness", 4), claim_table("noisy_rnn", 3)])
    assert list(led.columns) == V.CLAIM_COLUMNS
    assert led.study.tolist() == ["stiffness"] * 4 + ["noisy_rnn"] * 3
    assert led.verdict.value_counts().to_dict() == {"supported": 3, "contradicted": 2, "inconclusive": 2}
    assert L.build([]).columns.tolist() == V.CLAIM_COLUMNS and L.build([]).empty
    # a study without claims yet (header only) is fine
    assert len(L.build([claim_table("a", 2), claim_table("b", 1).iloc[:0]])) == 2


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: d.drop(columns="verdict"), "missing \\['verdict'\\]"),
        (lambda d: d.assign(extra=1), "unexpected \\['extra'\\]"),
        (lambda d: d[V.CLAIM_COLUMNS[::-1]], "wrong order"),
        (lambda d: d.assign(verdict=["held"] + d.verdict.tolist()[1:]), "verdict 'held'"),
        (lambda d: d.assign(study=["a"] + ["b"] * (len(d) - 1)), "exactly one study"),
        (lambda d: d.assign(claim_id="same"), "duplicate claim_id"),
        (lambda d: d.assign(claim=" "), "sentence"),
        (lambda d: d.assign(n_units_to_decide=1.0), "no smaller than n_units"),
        (lambda d: d.assign(n_units_to_decide="lots"), "expected a number"),
    ],
)
def test_bad_tables_fail_with_the_file_named(damage, message):
    with pytest.raises(L.LedgerError, match=message) as e:
        L.build([claim_table("stiffness", 3), damage(claim_table("noisy_rnn", 3))], ["s.csv", "results/nrn/claims.csv"])
    assert "results/nrn/claims.csv" in str(e.value)


def test_a_study_may_appear_once():
    with pytest.raises(L.LedgerError, match="already came from s.csv"):
        L.build([claim_table("stiffness", 2), claim_table("stiffness", 2)], ["s.csv", "t.csv"])


def test_caption_lists_every_claim_compactly():
    """The compact ledger: one row per claim with id and sentence, effect [interval], margin, verdict badge, n and a
    figure link; the long texts (what was run, test, p-values) are not on the front page."""
    led = L.build([claim_table("stiffness", 3), claim_table("noisy_rnn", 2)])
    text = L.caption(led, "smoke")
    assert "5 claims from 2 studies" in text and text.startswith(".. role:: raw-html(raw)")
    assert text.count("   * - ") == 1 + 5  # header + one row per claim
    for r in led.itertuples():
        assert f'data-result="{r.figure}"' in text and f'nnrds-{r.verdict}">{r.verdict}</span>' in text
        assert f"**{L.rst_text(r.claim_id)}** — {L.rst_text(r.claim)}" in text
    assert "-0.1 [-0.15, +0]" in text and "+0.1 (no interval)" in text and "\n     - 0.05\n" in text
    assert "adjusted p" not in text and "paired t-test" not in text and "3 seeds" not in text


def test_caption_shows_units_to_decide_and_marks_design_rows():
    """The n cell: n alone for a decided claim, 'n → k' / 'never' / '?' for an inconclusive one; a claim with a
    design note gets a *design* mark with the note as its tooltip."""
    rows = [
        dict(claim_id="ok", effect=0.5, ci_low=0.2, ci_high=0.8, verdict=V.SUPPORTED),
        dict(claim_id="open", effect=0.3, ci_low=-0.1, ci_high=0.7, verdict=V.INCONCLUSIVE),
        dict(claim_id="flat", effect=0.0, ci_low=-0.4, ci_high=0.4, verdict=V.INCONCLUSIVE),
        dict(claim_id="none", effect=0.3, ci_low=math.nan, ci_high=math.nan, verdict=V.INCONCLUSIVE),
    ]
    base = dict(study="s", claim="c.", what_was_run="w", unit="seed", n_units=5, effect_name="e", ci_level=0.95)
    led = L.build([V.claims_frame([V.Claim(**base, **r, test="t") for r in rows])])
    k = led.set_index("claim_id").loc["open", "n_units_to_decide"]
    text = L.caption(led)
    assert "4 claims from 1 study" in text
    assert f"5 → {k:.0f}" in text and "5 → never" in text and "5 → ?" in text and "\n     - 5\n" in text
    assert text.count('class="nnrds-design" title="cannot decide at this design: no 0.95 interval from 5 units') == 1


def test_verdict_counts_known_answer():
    rows = [
        dict(claim_id="s1", effect=0.5, ci_low=0.2, ci_high=0.8, verdict=V.SUPPORTED),
        dict(claim_id="c1", effect=-0.5, ci_low=-0.8, ci_high=-0.2, verdict=V.CONTRADICTED),
        dict(claim_id="i1", effect=0.3, ci_low=-0.1, ci_high=0.7, verdict=V.INCONCLUSIVE),  # more units decide
        dict(claim_id="i2", effect=0.0, ci_low=-0.4, ci_high=0.4, verdict=V.INCONCLUSIVE),  # never
        dict(claim_id="i3", effect=0.3, ci_low=math.nan, ci_high=math.nan, verdict=V.INCONCLUSIVE),  # design
    ]
    base = dict(claim="c.", what_was_run="w", unit="seed", n_units=5, effect_name="e", ci_level=0.95, test="t")
    a = V.claims_frame([V.Claim(study="a", **base, **r) for r in rows])
    b = V.claims_frame([V.Claim(study="b", **base, **rows[0])])
    led = L.build([a, b])
    c = L.verdict_counts(led, ["a", "b", "none"]).set_index("study")
    assert c.index.tolist() == ["a", "b", "none", "all"]
    assert c.loc["a", ["claims", "supported", "contradicted", "inconclusive"]].tolist() == [5, 1, 1, 3]
    assert c.loc["a", "more_units_decide"] == 1 and c.loc["a", "design_limited"] == 1
    k = a.set_index("claim_id").loc["i1", "n_units_to_decide"]
    assert c.loc["a", "units_factor_median"] == pytest.approx(k / 5)
    assert c.loc["none"].claims == 0 and math.isnan(c.loc["b", "units_factor_median"])
    assert c.loc["all", ["claims", "supported", "inconclusive"]].tolist() == [6, 2, 3]
    with pytest.raises(L.LedgerError, match="not declared"):
        L.verdict_counts(led, ["a"])
    text = L.counts_caption(L.verdict_counts(led, ["a", "b"]), "smoke")
    assert "**Verdicts at the smoke scale**: 6 claims from 2 studies" in text and f"1 (×{k / 5:.2g})" in text
    summary = L.study_summary(led, "a", "smoke")
    assert (
        "**Reproduces** (supported, 1): *s1*" in summary and "**Does not reproduce** (contradicted, 1): *c1*" in summary
    )
    assert f"*i1* (decides at about {k:.0f} units)" in summary and "*i2* (the effect sits on the threshold)" in summary
    assert "*i3* (no interval; design-limited)" in summary and "5 units each" in summary
    assert "no claims in the ledger" in L.study_summary(led, "none")


def test_rst_text_escapes_markup():
    s = L.rst_text("a |b| *c* d_ `e` {{ f }} [g]")
    assert "\\|b\\|" in s and "\\*c\\*" in s and "d\\_" in s and "\\`e\\`" in s and "{{ '{' }}" in s
    assert L.rst_text("- leading dash").startswith("\\-") and L.rst_text(float("nan")) == ""


def test_cli_writes_ledger_and_caption(tmp_path):
    paths = []
    for study, n in (("stiffness", 3), ("noisy_rnn", 2)):
        p = tmp_path / study / "claims.csv"
        p.parent.mkdir()
        claim_table(study, n).to_csv(p, index=False)
        paths.append(str(p))
    out, cap = tmp_path / "claims.csv", tmp_path / "claims_caption.rst"
    from nnrds.cli import main

    dirs = [str(Path(p).parent) for p in paths]
    assert (
        main(["claims-ledger", "--config-json", '{"scale": "x"}', "--in-dir", *dirs, "--out-dir", str(tmp_path)]) == 0
    )
    led = pd.read_csv(out)
    assert list(led.columns) == V.CLAIM_COLUMNS and len(led) == 5
    # n_units_to_decide stays parseable: the no-interval row (claim 2 of the 3-claim table) reads back as inf
    assert ",inf," in out.read_text() and (led.n_units_to_decide == math.inf).sum() == 1
    assert "Claims ledger" in cap.read_text()
    # a missing table is one clear error, nothing written
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnrds",
            "claims-ledger",
            "--config-json",
            "{}",
            "--in-dir",
            str(tmp_path / "nope"),
            "--out-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "nope/claims.csv does not exist" in r.stderr and not (tmp_path / "o").exists()


def test_cli_claims_summary_writes_counts_captions_and_summaries(tmp_path):
    from nnrds.cli import main

    led = L.build([claim_table("stiffness", 3), claim_table("noisy_rnn", 2)])
    led.to_csv(tmp_path / "claims.csv", index=False)
    out = tmp_path / "claims"
    cfg = '{"scale": "smoke", "studies": ["stiffness", "noisy_rnn", "wp_gap"]}'
    assert main(["claims-summary", "--config-json", cfg, "--in-dir", str(tmp_path), "--out-dir", str(out)]) == 0
    counts = pd.read_csv(out / "verdict_counts.csv")
    assert counts.study.tolist() == ["stiffness", "noisy_rnn", "wp_gap", "all"] and counts.claims.tolist() == [
        3,
        2,
        0,
        5,
    ]
    png = tmp_path / "forest.png"
    png.write_bytes(b"\x89PNG fake")
    assert main(["claims-forest-caption", "--config-json", "{}", "--in-dir", str(tmp_path), "--out-dir", str(out)]) == 0
    text = (out / "forest_caption.rst").read_text()
    assert "Forest plot of every claim" in text and 'src="data:image/png;base64,\n   iVBORyBmYWtl">' in text
    assert "Verdicts at the smoke scale" in (out / "verdict_counts.rst").read_text()
    assert "no claims in the ledger" in (out / "summary_wp_gap.rst").read_text()
    assert "**stiffness: its claims at the *smoke* scale**" in (out / "summary_stiffness.rst").read_text()
