# Stiffness study (src/nnrds/studies/stiffness.py, commands/stiffness.py; Jacobians, spectra and penalties in
# src/nnrds/dynamics/). One training job per dataset x parameterization: every seed x {none, L2 grid, penalty grid}
# trains as one batch of replicas, with Jacobian-spectrum metrics tracked during training. Then one summary job
# (claims (a) and (b) with numbers) and one papermill notebook for the figures. Rules name folders; the commands
# write fixed table names.

STF = config["stiffness"]
STF_DIR = "results/stiffness"
STF_CELLS = expand("{dataset}/{param}", dataset=STF["datasets"], param=STF["parameterizations"])
STF_FIGS = ["metrics_vs_epoch", "test_vs_strength", "stiffness_vs_gap", "eigenvalues"]
STF_CELL_TABLES = ["runs", "metrics", "eigenvalues", "timings"]
STF_CAPTION = f"../../{STF_DIR}/caption.rst"


rule stiffness_train:
    input:
        data=lambda wc: dataset_inputs(wc.dataset),
    output:
        **table_outputs(f"{STF_DIR}/cells/{{dataset}}/{{param}}", STF_CELL_TABLES),
    log:
        f"{STF_DIR}/logs/train_{{dataset}}_{{param}}.log",
    benchmark:
        f"{STF_DIR}/benchmarks/train_{{dataset}}_{{param}}.tsv"
    group:
        "stiffness_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1500, rule_name="stiffness_train"),
    params:
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study(STF),
                "dataset": dataset_spec(wc.dataset),
                "parameterization": config["parameterizations"][wc.param],
                "cell": {"dataset": wc.dataset, "param": wc.param},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stiffness-train")


rule stiffness_summarize:
    input:
        cells=expand(
            f"{STF_DIR}/cells/{{cell}}/{{t}}",
            cell=STF_CELLS,
            t=[f"{t}.csv" for t in STF_CELL_TABLES] + ["provenance.json"],
        ),
    output:
        **report_tables(STF_DIR, ["claims", "claim_a", "claim_b", "selected", "runs"], "Stiffness", STF_CAPTION),
        **table_outputs(STF_DIR, ["metrics", "eigenvalues", "timings", "gap_correlation", "eigenvalue_panels"]),
        caption=f"{STF_DIR}/caption.rst",
    log:
        f"{STF_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "study": STF, "datasets": {d: dataset_spec(d) for d in STF["datasets"]}}),
        in_dirs=in_dirs_of("cells"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stiffness-summarize")


use rule study_figures as stiffness_figures with:
    input:
        notebook="workflow/notebooks/stiffness.ipynb",
        tables=[
            f"{STF_DIR}/{t}.csv"
            for t in ("runs", "metrics", "eigenvalues", "selected", "claims", "gap_correlation", "eigenvalue_panels")
        ],
    output:
        **figure_outputs("stiffness", STF_FIGS, "Stiffness", STF_CAPTION),
    log:
        f"{STF_DIR}/logs/figures.log",


if STF["enabled"]:
    ALL_TARGETS += [f"figures/stiffness/{f}.png" for f in STF_FIGS] + [f"{STF_DIR}/provenance.json"]
    declare_claims(STF_DIR, "Stiffness")
