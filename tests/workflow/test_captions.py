"""Every caption the summaries can produce renders cleanly in the report.

The report (``snakemake --report``) passes each caption through Jinja and then docutils; a docutils problem
shows up as a red "System Message" box in results/report.html. These tests render captions the same way and
fail on any docutils system message (report level 1 = info and above):

* fast: the caption builders of the stiffness and noisy-RNN studies and of the claims ledger, on synthetic
  tables that exercise every branch (verdicts, missing intervals, unmatched clean accuracy, ...);
* slow: every ``results/*/caption.rst`` that the smoke-scale DAG writes (wp_gap, stiffness, noisy_rnn, uq_elm,
  materials: each study's own builder through its summarize command), the ledger caption, and the report.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers.captions import assert_clean, rst_problems


def test_checker_catches_the_known_defects():
    """The check itself can fail: the old noisy-RNN caption's |Δclean| and an indented continuation line."""
    assert rst_problems("equal clean accuracy (|Δclean| ≤ 0.02), counted")
    assert rst_problems("* item one\n  continued\n    indented more\n* item two\n")
    assert rst_problems("a `broken reference`_ here")
    assert not rst_problems("plain *emphasis* and ``literal`` text, λ = 0.1.\n")


# ------------------------------------------------------------------------------- stiffness captions
STIFF_STUDY = {
    "depth": 3,
    "width": 4,
    "T": 1.0,
    "parameterizations": ["p1", "p2"],
    "seeds": [0, 1, 2, 3, 4],
    "epochs": 10,
    "lr": 0.01,
    "track_every": 5,
    "track_samples": None,
    "l2_grid": [0.1],
    "penalty_grid": [10.0],
    "penalty": {"kind": "spectral_norm", "power_iters": 3},
    "val_fraction": 0.5,
    "primary_metric": "stiffness_ratio",
    "claims": {"alpha": 0.05, "margin_rel": 0.05},
}


@pytest.mark.parametrize(
    "kw",
    [
        dict(growth=0.5, noise=0.05),
        dict(growth=-0.3, pen_vs_l2=0.3, noise=0.02),
        dict(noise=0.5),
        dict(datasets=1, seeds=3),
    ],
)
def test_stiffness_caption_renders_cleanly(kw):
    from test_stiffness import synth_runs

    from nnrds.studies import stiffness as S

    runs = synth_runs(**kw)
    sel = S.select_strengths(runs)
    claims = S.claims(runs, sel, STIFF_STUDY)
    text = S.caption(
        claims,
        S.claim_a(runs),
        S.claim_b(runs, sel),
        sel,
        "smoke",
        STIFF_STUDY,
        {"d0": "a synthetic *test* set | with odd_characters_"},
    )
    assert_clean(text, "stiffness caption")
    assert text.count("* **(") == len(claims)


# ------------------------------------------------------------------------------- noisy-RNN captions
NRN_STUDY = {
    "hidden": 8,
    "eps": 0.1,
    "beta": 0.75,
    "gamma_A": 1e-3,
    "gamma_W": 1e-3,
    "epochs": 2,
    "lr": 0.01,
    "batch_size": 50,
    "seeds": list(range(8)),
    "eps_noise": 1.0,
    "noise_sqrt_dt": True,
    "equal_clean_tol": 0.02,
    "claims": {"alpha": 0.05, "margin": 0.05},
    "cornn_dt": 0.042,
    "cornn_gamma": 2.7,
    "cornn_epsilon": 4.7,
    "cv_folds": 2,
    "val_fraction": 0.2,
    "noise_levels": [{"add": 0.1, "mult": 0.0}],
}


@pytest.mark.parametrize(
    "kw",
    [
        dict(drop_l=0.3, drop_n=0.15),
        dict(drop_l=0.1, drop_n=0.3),
        dict(clean_l=0.8, clean_n=0.9),
        dict(seeds=1),
        dict(variants=()),
        dict(clean_l=0.4, clean_n=0.4),  # nothing above chance: normalized drops undefined
    ],
)
def test_noisy_rnn_caption_renders_cleanly(kw):
    from test_noisy_rnn import synth_seeds

    from nnrds.studies import noisy_rnn as nr

    seeds = synth_seeds(**kw, datasets=("digits", "ecg5000"))
    claims = nr.claims(seeds, NRN_STUDY)
    sel = nr.select_levels(seeds, NRN_STUDY)
    assert_clean(nr.caption(seeds, sel, claims, "smoke", NRN_STUDY), "noisy_rnn caption")


# ------------------------------------------------------------------------------- ledger caption
def test_ledger_caption_renders_cleanly():
    from test_ledger import claim_table

    from nnrds.commands import claims as L

    led = L.build([claim_table("stiffness", 3), claim_table("noisy_rnn", 4, nasty=True)])
    assert_clean(L.caption(led, "smoke"), "ledger caption")
    assert_clean(L.caption(L.build([]), "smoke"), "empty ledger caption")
    counts = L.verdict_counts(led, ["stiffness", "noisy_rnn", "empty"])
    assert_clean(L.counts_caption(counts, "smoke"), "verdict counts caption")
    assert_clean(L.forest_caption("smoke"), "forest caption")
    for s in ("stiffness", "noisy_rnn", "empty"):
        assert_clean(L.study_summary(led, s, "smoke"), f"{s} claims summary")


def test_report_front_page_renders_cleanly(repo):
    assert_clean((repo / "workflow/report/workflow.rst").read_text(), "workflow/report/workflow.rst")


def test_report_front_page_embeds_counts_forest_and_ledger(repo, tmp_path):
    """workflow.rst puts, in this order, the verdict counts, the forest plot (an embedded image) with its caption and
    the compact ledger (the captions of category '0 Claims ledger') on the report's front page."""
    import matplotlib.pyplot as plt
    from docutils.core import publish_parts
    from jinja2 import Environment
    from test_ledger import claim_table

    from nnrds.commands import claims as L

    png = tmp_path / "forest.png"
    plt.figure(figsize=(1, 1)).savefig(png)
    plt.close("all")
    led = L.build([claim_table("stiffness", 2)])

    class Cat:
        def __init__(self, name):
            self.name = name

        def __lt__(self, other):
            return self.name < other.name

    class Res:
        def __init__(self, name, path, rst):
            self.name, self.path = name, path
            self.caption = publish_parts(rst, writer="html")["body"]

    ress = [
        Res("claims.csv", "results/claims.csv", L.caption(led, "smoke")),
        Res("forest.png", str(png), L.forest_caption("smoke", png.read_bytes())),
        Res(
            "verdict_counts.csv", "results/claims/verdict_counts.csv", L.counts_caption(L.verdict_counts(led), "smoke")
        ),
    ]
    text = (repo / "workflow/report/workflow.rst").read_text()
    rendered = (
        Environment(trim_blocks=True, lstrip_blocks=True)
        .from_string(text)
        .render(
            snakemake=type("S", (), {"config": {"scale": "smoke"}}),
            categories={Cat("0 Claims ledger"): {Cat("t"): ress}, Cat("Stiffness"): {Cat("figures"): []}},
            files=[],
        )
    )
    assert ".. raw:: html" in rendered and "smoke scale" in rendered
    assert not rst_problems(rendered, jinja=False)
    html = publish_parts(rendered, writer="html")["body"]
    assert "System Message" not in html and 'id="nnrds-front"' in html
    i_counts, i_img, i_ledger = (
        html.index(k) for k in ('class="nnrds-counts', '<img class="nnrds-forest', 'class="nnrds-ledger')
    )
    assert i_counts < i_img < html.index("Forest plot of every claim") < i_ledger


# ------------------------------------------------------------------------------- every study, smoke DAG
STUDIES = ["wp_gap", "stiffness", "noisy_rnn", "uq_elm", "materials", "continuous_depth", "stable_arch"]


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_smoke_captions_render_cleanly(smoke_run, study):
    """The caption each study's summarize command wrote at smoke scale (its own caption builder)."""
    path = smoke_run / f"results/{study}/caption.rst"
    assert path.exists(), f"{study}: no caption at smoke scale"
    assert_clean(path.read_text(), f"results/{study}/caption.rst")


@pytest.mark.slow
def test_smoke_ledger_and_report_have_no_system_message(smoke_run, smoke_report):

    led = pd.read_csv(smoke_run / "results/claims.csv")
    # (the ledger rule validated columns and verdicts) every claim points to a figure the run made, and its effect
    # lies inside its interval where it has one
    assert [f for f in led.figure.unique() if not (smoke_run / f).is_file()] == []
    ok = led[["effect", "ci_low", "ci_high"]].notna().all(axis=1)
    outside = led[ok & ((led.effect < led.ci_low - 1e-12) | (led.effect > led.ci_high + 1e-12))]
    assert outside.empty, outside.claim_id.tolist()
    declared = {p.parent.name for p in (smoke_run / "results").glob("*/claims.csv")}
    assert set(led.study) == declared and {"stiffness", "noisy_rnn"} <= declared
    assert_clean((smoke_run / "results/claims_caption.rst").read_text(), "results/claims_caption.rst")
    for p in sorted((smoke_run / "results/claims").glob("*.rst")):  # verdict counts, forest caption, study summaries
        assert_clean(p.read_text(), str(p.relative_to(smoke_run)))
    html = smoke_report.read_text(errors="replace")
    assert "System Message" not in html and "system-message" not in html
    assert "Claims ledger" in html
