# PINN failure-mode study (src/nnrds/studies/pinn_failure.py, commands/pinn_failure.py).
# One training job per problem x training mode; every coefficient and seed of a cell trains in that job as
# replicas of one batch (per-replica L-BFGS). Then one summary job (per-seed effects, claims.csv with verdicts)
# and one papermill notebook for the figures. Rules name folders; the commands write fixed table names.

PINN = config["pinn_failure"]
PINN_DIR = "results/pinn_failure"
PINN_CELLS = [f"{p}/{m}" for p, spec in PINN["problems"].items() for m in spec["modes"]] + [
    f"{p}/{m}@{arm}"
    for arm, spec in (PINN.get("arms") or {}).items()
    for p, modes in (spec.get("modes") or {}).items()
    if p in PINN["problems"]
    for m in modes
]
PINN_CELL_TABLES = [
    "runs",
    "stages",
    "budget",
    "history",
    "fields",
    "landscape",
    "landscape_stats",
    "replica_timings",
    "timings",
]
PINN_FIGS = [
    "error_vs_coefficient",
    "heatmaps",
    "loss_curves",
    "landscapes",
    "error_vs_budget",
    "paper_comparison",
]
PINN_REFERENCE = "workflow/reference/pinn_failure_paper.csv"  # the paper's relative errors (issue 21)
PINN_CAPTION = f"../../{PINN_DIR}/caption.rst"
PINN_CAT = "PINN failure modes"


rule pinn_failure_train:
    output:
        **table_outputs(f"{PINN_DIR}/cells/{{problem}}/{{mode}}", PINN_CELL_TABLES),
    log:
        f"{PINN_DIR}/logs/train_{{problem}}_{{mode}}.log",
    benchmark:
        f"{PINN_DIR}/benchmarks/train_{{problem}}_{{mode}}.tsv"
    wildcard_constraints:
        problem=r"[a-z_]+",
        mode=r"[a-z0-9_.]+(@[a-z0-9_]+)?",
    priority: LONG_JOB_PRIORITY
    group:
        "pinn_failure_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="pinn_failure_train"),
    params:
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study({**PINN, "problems": {wc.problem: PINN["problems"][wc.problem]}}),
                "cell": {"problem": wc.problem, "mode": wc.mode},
            }
        ),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("pinn-failure-train")


rule pinn_failure_summarize:
    input:
        cells=expand(
            f"{PINN_DIR}/cells/{{cell}}/{{t}}",
            cell=PINN_CELLS,
            t=[f"{t}.csv" for t in PINN_CELL_TABLES] + ["provenance.json"],
        ),
        reference=PINN_REFERENCE,
    output:
        **{
            t: f"{PINN_DIR}/{t}.csv"
            for t in (
                "timings",
                "replica_timings",
                "stages",
                "causal_rounds",
                "budget",
                "history",
                "fields",
                "landscape",
                "landscape_stats",
                "seed_effects",
                "heatmap_cases",
            )
        },
        **report_tables(
            PINN_DIR,
            ["runs", "claims", "error_summary", "budget_effects", "paper_comparison", "landscape_summary"],
            PINN_CAT,
            PINN_CAPTION,
        ),
        caption=f"{PINN_DIR}/caption.rst",
        provenance=f"{PINN_DIR}/provenance.json",
    log:
        f"{PINN_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "study": PINN, "reference": PINN_REFERENCE}),
        in_dirs=in_dirs_of("cells"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("pinn-failure-summarize")


use rule study_figures as pinn_failure_figures with:
    input:
        notebook="workflow/notebooks/pinn_failure.ipynb",
        tables=[
            f"{PINN_DIR}/{t}.csv"
            for t in (
                "runs",
                "claims",
                "history",
                "fields",
                "heatmap_cases",
                "landscape",
                "landscape_summary",
                "budget",
                "paper_comparison",
            )
        ],
    output:
        **figure_outputs("pinn_failure", PINN_FIGS, PINN_CAT, PINN_CAPTION),
    log:
        f"{PINN_DIR}/logs/figures.log",


if PINN["enabled"]:
    ALL_TARGETS += [f"figures/pinn_failure/{f}.png" for f in PINN_FIGS] + [f"{PINN_DIR}/provenance.json"]
    declare_claims(PINN_DIR, PINN_CAT)
