# Weight-parameterization generalization-gap study (src/nnrds/studies/wp_gap.py, commands/wp_gap.py).
# One training job per dataset x parameterization (a dataset's own sweep: wp_gap.per_dataset); all depths, widths
# and seeds of a cell train in that job, seeds batched as replicas. One loss-landscape job (wp_gap.landscape). Then one summary job (per-seed effects, claims.csv with verdicts) and one
# papermill notebook for the figures. Rules name folders; the commands write fixed table names.

from nnrds.studies.wp_gap import study_for

WPG = config["wp_gap"]
WPG_DIR = "results/wp_gap"
WPG_CELLS = [f"{d}/{p}" for d in WPG["datasets"] for p in study_for(WPG, d)["parameterizations"]]
WPG_LAND = WPG["landscape"]
WPG_FIGS = ["gap_vs_nparams", "gap_wp_vs_nonpar", "nparams_vs_depth", "test_vs_depth", "gap_vs_depth"] + (
    ["landscape"] if WPG_LAND["enabled"] else []
)
WPG_CAPTION = f"../../{WPG_DIR}/caption.rst"


rule wp_gap_train:
    input:
        data=lambda wc: dataset_inputs(wc.dataset),
    output:
        **table_outputs(f"{WPG_DIR}/cells/{{dataset}}/{{param}}", ["runs", "timings"]),
    log:
        f"{WPG_DIR}/logs/train_{{dataset}}_{{param}}.log",
    benchmark:
        f"{WPG_DIR}/benchmarks/train_{{dataset}}_{{param}}.tsv"
    group:
        "wp_gap_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="wp_gap_train"),
    params:
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study(study_for(WPG, wc.dataset), drop=("landscape",)),
                "dataset": dataset_spec(wc.dataset),
                "parameterization": config["parameterizations"][wc.param],
                "cell": {"dataset": wc.dataset, "param": wc.param},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("wp-gap-train")


rule wp_gap_landscape:
    input:
        data=dataset_inputs(WPG_LAND["dataset"]),
    output:
        **table_outputs(f"{WPG_DIR}/landscape", ["landscape", "landscape_stats", "timings"]),
    log:
        f"{WPG_DIR}/logs/landscape.log",
    benchmark:
        f"{WPG_DIR}/benchmarks/landscape.tsv"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="wp_gap_landscape"),
    params:
        cfg=cfg_arg(
            {
                **job_env(),
                "study": job_study(
                    study_for(WPG, WPG_LAND["dataset"]), drop=("parameterizations", "depths", "widths")
                ),
                "dataset": dataset_spec(WPG_LAND["dataset"]),
                "parameterizations": {p: config["parameterizations"][p] for p in WPG_LAND["nets"]},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("wp-gap-landscape")


rule wp_gap_summarize:
    input:
        cells=expand(
            f"{WPG_DIR}/cells/{{cell}}/{{t}}", cell=WPG_CELLS, t=["runs.csv", "timings.csv", "provenance.json"]
        ),
        landscape=(
            [f"{WPG_DIR}/landscape/{t}" for t in ("landscape.csv", "landscape_stats.csv", "provenance.json")]
            if WPG_LAND["enabled"]
            else []
        ),
    output:
        runs=report(
            f"{WPG_DIR}/runs.csv",
            category="WP generalization gap",
            subcategory="tables",
            caption="../report/wp_gap_runs.rst",
        ),
        timings=f"{WPG_DIR}/timings.csv",
        corr=report(
            f"{WPG_DIR}/gap_correlation.csv",
            category="WP generalization gap",
            subcategory="tables",
            caption=WPG_CAPTION,
        ),
        med=report(
            f"{WPG_DIR}/gap_by_parameterization.csv",
            category="WP generalization gap",
            subcategory="tables",
            caption=WPG_CAPTION,
        ),
        claims=report(
            f"{WPG_DIR}/claims.csv", category="WP generalization gap", subcategory="tables", caption=WPG_CAPTION
        ),
        landscape=f"{WPG_DIR}/landscape.csv",
        landscape_stats=report(
            f"{WPG_DIR}/landscape_stats.csv",
            category="WP generalization gap",
            subcategory="tables",
            caption=WPG_CAPTION,
        ),
        landscape_effects=f"{WPG_DIR}/landscape_effects.csv",
        caption=f"{WPG_DIR}/caption.rst",
        provenance=f"{WPG_DIR}/provenance.json",
    log:
        f"{WPG_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "study": WPG, "datasets": {d: dataset_spec(d) for d in WPG["datasets"]}}),
        in_dirs=in_dirs_of("cells", "landscape"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("wp-gap-summarize")


use rule study_figures as wp_gap_figures with:
    input:
        notebook="workflow/notebooks/wp_gap.ipynb",
        tables=[
            f"{WPG_DIR}/{t}.csv"
            for t in (
                "runs",
                "gap_by_parameterization",
                "gap_correlation",
                "claims",
                "landscape",
                "landscape_stats",
                "landscape_effects",
            )
        ],
    output:
        **figure_outputs("wp_gap", WPG_FIGS, "WP generalization gap", WPG_CAPTION),
    log:
        f"{WPG_DIR}/logs/figures.log",


if WPG["enabled"]:
    ALL_TARGETS += [f"figures/wp_gap/{f}.png" for f in WPG_FIGS] + [f"{WPG_DIR}/provenance.json"]
    declare_claims(WPG_DIR, "WP generalization gap")
