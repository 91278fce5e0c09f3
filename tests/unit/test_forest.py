"""The forest plot's scale (nnrds.forest): known answers for every decision rule, and the figure itself."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nnrds import forest
from nnrds import verdicts as V


def row(effect, lo, hi, verdict, margin=math.nan, test="t test", **kw):
    return dict(
        study=kw.pop("study", "s"),
        claim_id=kw.pop("claim_id", "c"),
        effect=effect,
        ci_low=lo,
        ci_high=hi,
        verdict=verdict,
        margin=margin,
        test=test,
        design_note=kw.pop("design_note", ""),
        **kw,
    )


@pytest.mark.parametrize(
    "r,z,lo,hi,band,rule",
    [
        # superiority, no margin: t = 0, half-width 0.2
        (row(0.5, 0.3, 0.7, V.SUPPORTED), 2.5, 1.5, 3.5, 0.0, "superiority"),
        (row(-0.5, -0.7, -0.3, V.CONTRADICTED), -2.5, -3.5, -1.5, 0.0, "superiority"),
        (row(0.1, -0.1, 0.3, V.INCONCLUSIVE), 0.5, -0.5, 1.5, 0.0, "superiority"),
        # superiority with margin 0.4: contradicted below the margin -> band [0, 0.4 / 0.2]
        (row(0.1, -0.1, 0.3, V.CONTRADICTED, margin=0.4), 0.5, -0.5, 1.5, 2.0, "superiority"),
        (row(0.3, -0.1, 0.7, V.INCONCLUSIVE, margin=0.4), 0.75, -0.25, 1.75, 1.0, "superiority"),
        # non-superiority, margin 0.5: t = margin, axis flipped (the claim's side is below the margin)
        (row(0.1, -0.1, 0.3, V.SUPPORTED, margin=0.5, test="non-superiority"), 2.0, 1.0, 3.0, 0.0, "non_superiority"),
        (
            row(0.9, 0.7, 1.1, V.CONTRADICTED, margin=0.5, test="non-superiority"),
            -2.0,
            -3.0,
            -1.0,
            0.0,
            "non_superiority",
        ),
        (
            row(0.4, 0.2, 0.6, V.INCONCLUSIVE, margin=0.5, test="non-superiority"),
            0.5,
            -0.5,
            1.5,
            0.0,
            "non_superiority",
        ),
        # threshold rule from the test text: t = 1, asymmetric interval (half-width 0.5)
        (
            row(1.2, 1.1, 2.1, V.SUPPORTED, test="supported when the interval lies above 1, ..."),
            0.4,
            0.2,
            2.2,
            0.0,
            "threshold",
        ),
    ],
)
def test_standardize_known_answers(r, z, lo, hi, band, rule):
    f = forest.standardize_row(r)
    assert f["rule"] == rule and f["has_interval"] and f["consistent"]
    assert f["z"] == pytest.approx(z) and f["z_low"] == pytest.approx(lo) and f["z_high"] == pytest.approx(hi)
    assert f["band"] == pytest.approx(band)
    # the verdict reads off the scale: supported iff right of 0, contradicted iff left of the band
    read = V.SUPPORTED if f["z_low"] > 0 else V.CONTRADICTED if f["z_high"] < f["band"] else V.INCONCLUSIVE
    assert read == r["verdict"]


def test_verdict_not_from_the_interval_alone_is_flagged():
    """A row held back by a gate (interval above 0 but inconclusive) and a decided row without interval."""
    gated = forest.standardize_row(row(0.5, 0.3, 0.7, V.INCONCLUSIVE))
    assert gated["implied_verdict"] == V.SUPPORTED and not gated["consistent"]
    none = forest.standardize_row(row(0.5, math.nan, math.nan, V.SUPPORTED))
    assert not none["has_interval"] and math.isnan(none["z"]) and not none["consistent"]
    ok = forest.standardize_row(row(0.5, math.nan, math.nan, V.INCONCLUSIVE, design_note="cannot decide"))
    assert ok["consistent"] and ok["design"] and not ok["has_interval"]


def test_point_interval_sits_at_infinity_unless_on_the_threshold():
    f = forest.standardize_row(row(0.2, 0.2, 0.2, V.SUPPORTED))
    assert f["z"] == math.inf and f["z_low"] == math.inf and f["consistent"]
    f = forest.standardize_row(row(0.0, 0.0, 0.0, V.INCONCLUSIVE))
    assert f["z"] == 0.0 and f["consistent"]


def ledger():
    rows = [
        row(0.5, 0.3, 0.7, V.SUPPORTED, study="a", claim_id="a1"),
        row(-0.5, -0.7, -0.3, V.CONTRADICTED, study="a", claim_id="a2"),
        row(0.1, -0.1, 0.3, V.INCONCLUSIVE, study="a", claim_id="a3_with_a_very_long_identifier:and:parts"),
        row(0.1, -0.1, 0.3, V.SUPPORTED, margin=0.5, test="non-superiority", study="b", claim_id="b1"),
        row(900.0, 800.0, 1000.0, V.SUPPORTED, study="b", claim_id="b2_far"),
        row(0.5, math.nan, math.nan, V.INCONCLUSIVE, study="b", claim_id="b3", design_note="cannot decide"),
    ]
    return pd.DataFrame(rows)


def test_standardize_keeps_ledger_order_and_columns():
    f = forest.standardize(ledger())
    assert list(f.columns) == forest.FOREST_COLUMNS and f.claim_id.tolist()[0] == "a1" and len(f) == 6
    assert f.loc[4, "z"] == pytest.approx(9.0) and f.consistent.all()


def test_forest_figure_has_one_panel_per_study(tmp_path):
    import matplotlib.pyplot as plt

    fig = forest.plot_forest(ledger(), ["a", "b", "empty"])
    titles = [ax.get_title(loc="left") for ax in fig.get_axes()]
    assert titles[0].startswith("a: 3 claims — 1 supported, 1 contradicted, 1 inconclusive")
    assert titles[1].startswith("b: 3 claims") and titles[2] == "empty: no claims"
    plt.close(fig)
    written = forest.save_forest_figures(ledger(), ["a", "b"], tmp_path)
    assert {p.name for p in written} == {f"{s}.{e}" for s in ("forest", "a", "b") for e in ("png", "pdf")}
    assert all(p.stat().st_size > 1000 for p in written)
    forest.docs_figure(ledger(), tmp_path / "small.png")
    assert (tmp_path / "small.png").stat().st_size > 1000


def test_split_balances_columns_in_order():
    assert forest._split([10, 10, 10, 10], 2) == [[0, 1], [2, 3]]
    assert forest._split([30, 5, 5, 5, 5], 2) == [[0], [1, 2, 3, 4]]
    assert forest._split([3], 2) == [[0]]
