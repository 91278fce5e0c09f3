# Stiffness study (src/nnrds/studies/stiffness.py; Jacobians, spectra and penalties in src/nnrds/dynamics/).
# One training job per dataset x parameterization: every seed x {none, L2 grid, penalty grid} trains as
# one batch of replicas, with Jacobian-spectrum metrics tracked during training. Then one summary job
# (claims (a) and (b) with numbers) and one papermill notebook for the figures.

STF = config["stiffness"]
STF_DIR = "results/stiffness"
STF_CELLS = expand("{dataset}/{param}", dataset=STF["datasets"], param=STF["parameterizations"])
STF_FIGS = ["metrics_vs_epoch", "test_vs_strength", "stiffness_vs_gap", "eigenvalues"]
STF_TABLES = ["runs", "metrics", "eigenvalues", "timings"]
STF_CAPTION = f"../../{STF_DIR}/caption.rst"


rule stiffness_train:
    input:
        data=lambda wc: dataset_inputs(wc.dataset),
    output:
        **{t: f"{STF_DIR}/cells/{{dataset}}/{{param}}/{t}.csv" for t in STF_TABLES},
        provenance=f"{STF_DIR}/cells/{{dataset}}/{{param}}/provenance.json",
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": STF, "dataset": dataset_spec(wc.dataset),
                                "parameterization": config["parameterizations"][wc.param]}),
        data_dir=data_dir_arg,
    log:
        f"{STF_DIR}/logs/train_{{dataset}}_{{param}}.log",
    threads: config["torch_threads"]
    resources:
        **train_resources(1500),
    group:
        "stiffness_train"
    shell:
        "$NNRDS_PYTHON -m nnrds stiffness-train --dataset {wildcards.dataset} --param {wildcards.param} {params.data_dir} "
        "--config-json {params.cfg} --runs {output.runs} --metrics {output.metrics} "
        "--eigenvalues {output.eigenvalues} --timings {output.timings} "
        "--provenance {output.provenance} > {log} 2>&1"


rule stiffness_summarize:
    input:
        **{t: expand(f"{STF_DIR}/cells/{{cell}}/{t}.csv", cell=STF_CELLS) for t in STF_TABLES},
        provenance=expand(f"{STF_DIR}/cells/{{cell}}/provenance.json", cell=STF_CELLS),
    output:
        claims=report(f"{STF_DIR}/claims.csv", category="Stiffness", subcategory="tables", caption=STF_CAPTION),
        claim_a=report(f"{STF_DIR}/claim_a.csv", category="Stiffness", subcategory="tables", caption=STF_CAPTION),
        claim_b=report(f"{STF_DIR}/claim_b.csv", category="Stiffness", subcategory="tables", caption=STF_CAPTION),
        selected=report(f"{STF_DIR}/selected.csv", category="Stiffness", subcategory="tables", caption=STF_CAPTION),
        runs=report(f"{STF_DIR}/runs.csv", category="Stiffness", subcategory="tables", caption=STF_CAPTION),
        metrics=f"{STF_DIR}/metrics.csv",
        eigenvalues=f"{STF_DIR}/eigenvalues.csv",
        timings=f"{STF_DIR}/timings.csv",
        gap_correlation=f"{STF_DIR}/gap_correlation.csv",
        eigenvalue_panels=f"{STF_DIR}/eigenvalue_panels.csv",
        caption=f"{STF_DIR}/caption.rst",
        provenance=f"{STF_DIR}/provenance.json",
    params:
        cfg=cfg_arg({"scale": SCALE, "study": STF,
                     "datasets": {d: dataset_spec(d) for d in STF["datasets"]}}),
        out_dir=out_dir_of("provenance"),
    log:
        f"{STF_DIR}/logs/summarize.log",
    shell:
        "$NNRDS_PYTHON -m nnrds stiffness-summarize --runs {input.runs} --metrics {input.metrics} "
        "--eigenvalues {input.eigenvalues} --timings {input.timings} --provenance {input.provenance} "
        "--config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule stiffness_figures:
    input:
        notebook="workflow/notebooks/stiffness.ipynb",
        runs=f"{STF_DIR}/runs.csv",
        metrics=f"{STF_DIR}/metrics.csv",
        eigenvalues=f"{STF_DIR}/eigenvalues.csv",
        selected=f"{STF_DIR}/selected.csv",
        claims=f"{STF_DIR}/claims.csv",
    output:
        notebook="results/notebooks/stiffness.ipynb",
        png=[report(f"figures/stiffness/{f}.png", category="Stiffness", subcategory="figures",
                    caption=STF_CAPTION) for f in STF_FIGS],
        pdf=[f"figures/stiffness/{f}.pdf" for f in STF_FIGS],
    params:
        fig_dir=fig_dir,
        scale=SCALE,
        primary=STF["primary_metric"],
        eig_param=STF["parameterizations"][0],
    log:
        f"{STF_DIR}/logs/figures.log",
    shell:
        "$NNRDS_PYTHON -m papermill {input.notebook} {output.notebook} --kernel python3 --no-progress-bar "
        "-p runs_csv {input.runs} -p metrics_csv {input.metrics} -p eig_csv {input.eigenvalues} "
        "-p selected_csv {input.selected} -p claims_csv {input.claims} -p primary {params.primary} "
        "-p eig_param {params.eig_param} -p fig_dir {params.fig_dir} -p scale {params.scale} > {log} 2>&1"


if STF["enabled"]:
    ALL_TARGETS += [f"figures/stiffness/{f}.png" for f in STF_FIGS] + [f"{STF_DIR}/provenance.json"]
    CLAIM_TABLES.append(f"{STF_DIR}/claims.csv")
