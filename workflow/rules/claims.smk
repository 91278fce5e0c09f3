# The claims ledger (src/nnrds/commands/claims.py): every claim the DAG tests, in one checked table
# results/claims.csv, and the report's front page built from it (category "0 Claims ledger"): the verdict counts per
# study (rule claims_summary), the forest plot of every claim (rule claims_figures, src/nnrds/forest.py) and the
# compact ledger (the ledger's caption). Included after every study's rule file: each enabled study that tests claims
# calls declare_claims (common.smk), which appends its results/<study>/claims.csv to CLAIM_TABLES and records its
# report category; the ledger takes exactly those tables, and each such category opens with the study's panel of the
# forest plot and its claims summary (subcategory CLAIMS_SUBCATEGORY).

LEDGER = "results/claims.csv"
LEDGER_CAPTION = "results/claims_caption.rst"
LEDGER_CATEGORY = "0 Claims ledger"
CLAIMS_DIR = "results/claims"
CLAIMS_FIG_DIR = "figures/claims"
CLAIMS_SUBCATEGORY = "0 claims summary"
CLAIM_STUDIES = [os.path.basename(os.path.dirname(t)) for t in CLAIM_TABLES]


rule claims_ledger:
    input:
        tables=CLAIM_TABLES,
    output:
        ledger=report(LEDGER, category=LEDGER_CATEGORY, caption=f"../../{LEDGER_CAPTION}"),
        caption=LEDGER_CAPTION,
    log:
        "results/logs/claims_ledger.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE}),
        in_dirs=in_dirs_of("tables"),
        out_dir=out_dir_of("ledger"),
    shell:
        nnrds_shell("claims-ledger")


rule claims_summary:
    input:
        ledger=LEDGER,
    output:
        counts=report(
            f"{CLAIMS_DIR}/verdict_counts.csv",
            category=LEDGER_CATEGORY,
            caption=f"../../{CLAIMS_DIR}/verdict_counts.rst",
        ),
        counts_caption=f"{CLAIMS_DIR}/verdict_counts.rst",
        summaries=[f"{CLAIMS_DIR}/summary_{s}.rst" for s in CLAIM_STUDIES],
    log:
        "results/logs/claims_summary.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "studies": CLAIM_STUDIES}),
        in_dirs=in_dirs_of("ledger"),
        out_dir=out_dir_of("counts"),
    shell:
        nnrds_shell("claims-summary")


# the forest plot's caption embeds the figure (the front page shows it; Snakemake's embeddedimage does not embed)
rule claims_forest_caption:
    input:
        png=f"{CLAIMS_FIG_DIR}/forest.png",
    output:
        caption=f"{CLAIMS_DIR}/forest_caption.rst",
    log:
        "results/logs/claims_forest_caption.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE}),
        in_dirs=in_dirs_of("png"),
        out_dir=out_dir_of("caption"),
    shell:
        nnrds_shell("claims-forest-caption")


use rule study_figures as claims_figures with:
    input:
        notebook="workflow/notebooks/claims.ipynb",
        tables=[LEDGER, f"{CLAIMS_DIR}/verdict_counts.csv"],
    output:
        notebook="results/notebooks/claims.ipynb",
        png=[
            report(
                f"{CLAIMS_FIG_DIR}/forest.png",
                category=LEDGER_CATEGORY,
                caption=f"../../{CLAIMS_DIR}/forest_caption.rst",
            )
        ]
        + [
            report(
                f"{CLAIMS_FIG_DIR}/{s}.png",
                category=CLAIM_CATEGORIES.get(s, s),
                subcategory=CLAIMS_SUBCATEGORY,
                caption=f"../../{CLAIMS_DIR}/summary_{s}.rst",
            )
            for s in CLAIM_STUDIES
        ],
        pdf=[f"{CLAIMS_FIG_DIR}/{f}.pdf" for f in ["forest"] + CLAIM_STUDIES],
    log:
        "results/logs/claims_figures.log",


ALL_TARGETS += [LEDGER, f"{CLAIMS_FIG_DIR}/forest.png", f"{CLAIMS_DIR}/verdict_counts.csv"]
ALL_TARGETS += [
    f"{CLAIMS_DIR}/{f}.rst" for f in ["verdict_counts", "forest_caption"] + [f"summary_{s}" for s in CLAIM_STUDIES]
]
