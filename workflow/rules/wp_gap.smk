# Weight-parameterization generalization-gap study (src/nnrds/studies/wp_gap.py).
# One training job per dataset x parameterization; all depths, widths and seeds of a cell train in that
# job, seeds batched as replicas. Then one summary job (per-seed effects, claims.csv with verdicts) and one
# papermill notebook for the figures.

WPG = config["wp_gap"]
WPG_DIR = "results/wp_gap"
WPG_CELLS = expand("{dataset}/{param}", dataset=WPG["datasets"], param=WPG["parameterizations"])
WPG_FIGS = ["gap_vs_nparams", "gap_wp_vs_nonpar", "nparams_vs_depth", "test_vs_depth"]


rule wp_gap_train:
    input:
        data=lambda wc: dataset_inputs(wc.dataset),
    output:
        runs=f"{WPG_DIR}/cells/{{dataset}}/{{param}}/runs.csv",
        timings=f"{WPG_DIR}/cells/{{dataset}}/{{param}}/timings.csv",
        provenance=f"{WPG_DIR}/cells/{{dataset}}/{{param}}/provenance.json",
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": WPG, "dataset": dataset_spec(wc.dataset),
                                "parameterization": config["parameterizations"][wc.param]}),
        data_dir=data_dir_arg,
    log:
        f"{WPG_DIR}/logs/train_{{dataset}}_{{param}}.log",
    threads: config["torch_threads"]
    resources:
        **train_resources(1000),
    group:
        "wp_gap_train"
    shell:
        "$NNRDS_PYTHON -m nnrds wp-gap-train --dataset {wildcards.dataset} --param {wildcards.param} {params.data_dir} "
        "--config-json {params.cfg} --runs {output.runs} --timings {output.timings} "
        "--provenance {output.provenance} > {log} 2>&1"


rule wp_gap_summarize:
    input:
        runs=expand(f"{WPG_DIR}/cells/{{cell}}/runs.csv", cell=WPG_CELLS),
        timings=expand(f"{WPG_DIR}/cells/{{cell}}/timings.csv", cell=WPG_CELLS),
        provenance=expand(f"{WPG_DIR}/cells/{{cell}}/provenance.json", cell=WPG_CELLS),
    output:
        runs=report(f"{WPG_DIR}/runs.csv", category="WP generalization gap", subcategory="tables",
                    caption="../report/wp_gap_runs.rst"),
        timings=f"{WPG_DIR}/timings.csv",
        corr=report(f"{WPG_DIR}/gap_correlation.csv", category="WP generalization gap", subcategory="tables",
                    caption=f"../../{WPG_DIR}/caption.rst"),
        med=report(f"{WPG_DIR}/gap_by_parameterization.csv", category="WP generalization gap",
                   subcategory="tables", caption=f"../../{WPG_DIR}/caption.rst"),
        claims=report(f"{WPG_DIR}/claims.csv", category="WP generalization gap", subcategory="tables",
                      caption=f"../../{WPG_DIR}/caption.rst"),
        caption=f"{WPG_DIR}/caption.rst",
        provenance=f"{WPG_DIR}/provenance.json",
    params:
        cfg=cfg_arg({"scale": SCALE, "study": WPG,
                     "datasets": {d: dataset_spec(d) for d in WPG["datasets"]}}),
        out_dir=out_dir_of("provenance"),
    log:
        f"{WPG_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m nnrds wp-gap-summarize --runs {input.runs} --timings {input.timings} "
        "--provenance {input.provenance} --config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule wp_gap_figures:
    input:
        notebook="workflow/notebooks/wp_gap.ipynb",
        runs=f"{WPG_DIR}/runs.csv",
        med=f"{WPG_DIR}/gap_by_parameterization.csv",
        corr=f"{WPG_DIR}/gap_correlation.csv",
        claims=f"{WPG_DIR}/claims.csv",
    output:
        notebook="results/notebooks/wp_gap.ipynb",
        png=[report(f"figures/wp_gap/{f}.png", category="WP generalization gap", subcategory="figures",
                    caption=f"../../{WPG_DIR}/caption.rst") for f in WPG_FIGS],
        pdf=[f"figures/wp_gap/{f}.pdf" for f in WPG_FIGS],
    params:
        fig_dir=fig_dir,
        scale=SCALE,
    log:
        f"{WPG_DIR}/logs/figures.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m papermill {input.notebook} {output.notebook} --kernel python3 --no-progress-bar "
        "-p runs_csv {input.runs} -p median_csv {input.med} -p corr_csv {input.corr} -p claims_csv {input.claims} "
        "-p fig_dir {params.fig_dir} -p scale {params.scale} > {log} 2>&1"


if WPG["enabled"]:
    ALL_TARGETS += [f"figures/wp_gap/{f}.png" for f in WPG_FIGS] + [f"{WPG_DIR}/provenance.json"]
    CLAIM_TABLES.append(f"{WPG_DIR}/claims.csv")
