# The claims ledger (src/nnrds/commands/claims.py): every claim the DAG tests, in one checked table
# results/claims.csv and the report section shown first ("0 Claims ledger"). Included after every study's
# rule file: each enabled study that tests claims appends its results/<study>/claims.csv to CLAIM_TABLES
# (defined in common.smk), and the ledger takes exactly those tables.

LEDGER = "results/claims.csv"
LEDGER_CAPTION = "results/claims_caption.rst"


rule claims_ledger:
    input:
        tables=CLAIM_TABLES,
    output:
        ledger=report(LEDGER, category="0 Claims ledger", caption=f"../../{LEDGER_CAPTION}"),
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


ALL_TARGETS += [LEDGER]
