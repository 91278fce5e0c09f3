# Materials UQ study: interatomic potentials with uncertainty (src/nnrds/potentials/,
# src/nnrds/studies/materials.py, Bayes-by-backprop in src/nnrds/uq/bbb.py). Data: Al-EMT (generated here
# with ASE + EMT, a substitute for the non-public Al DFT set), the FitSNAP Ta DFT set and the FitSNAP W-Be
# DFT set (both acquired by rule data_acquire_fitsnap; W-Be: one network per element). One training job per
# set (every split; ensemble + BBB), one summary job, one papermill notebook for the figures. Rules name
# folders; the commands write fixed table names (src/nnrds/commands/materials.py).

MAT = config["materials"]
MAT_DIR = "results/materials"
MAT_TABLES = ["metrics", "predictions", "calibration", "ev", "history", "info", "config_errors"]
MAT_FIGS = ["parity", "calibration", "std_vs_error", "ev_curve", "group_errors"]
MAT_REFERENCE = "workflow/reference/snap_linear_fitsnap.csv"  # linear-SNAP errors from FitSNAP's example outputs
MAT_FITSNAP = [s for s in MAT["sets"] if s != "al_emt"]
MAT_CAPTION = f"../../{MAT_DIR}/caption.rst"


rule materials_data:
    output:
        **table_outputs(f"{MAT_DIR}/data/al_emt", ["configs", "atoms"]),
        metadata=f"{MAT_DIR}/data/al_emt/metadata.json",
    log:
        f"{MAT_DIR}/logs/data_al_emt.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"seed": config["seed"], "spec": MAT["al_emt"]}),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("materials-data")


rule materials_train:
    input:
        data=lambda wc: [f"{materials_data_dir(wc.mset)}/{t}.csv" for t in ("configs", "atoms")],
    output:
        **table_outputs(f"{MAT_DIR}/cells/{{mset}}", MAT_TABLES + ["timings"]),
    log:
        f"{MAT_DIR}/logs/train_{{mset}}.log",
    benchmark:
        f"{MAT_DIR}/benchmarks/train_{{mset}}.tsv"
    wildcard_constraints:
        mset="al_emt|fitsnap|wbe",
    threads: config["torch_threads"]
    resources:
        **train_resources(max(4000, 4 * MAT["al_emt"]["n_configs"], 2 * (MAT["wbe"]["max_configs"] or 25000))),
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": MAT, "cell": {"set": wc.mset}}),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("materials-train")


rule materials_summarize:
    input:
        cells=expand(
            f"{MAT_DIR}/cells/{{s}}/{{t}}",
            s=MAT["sets"],
            t=[f"{t}.csv" for t in MAT_TABLES + ["timings"]] + ["provenance.json"],
        ),
        reference=MAT_REFERENCE,
        data_metadata=[f"{materials_data_dir(s)}/metadata.json" for s in MAT_FITSNAP],
    output:
        [f"{MAT_DIR}/{t}.csv" for t in MAT_TABLES if t != "metrics"],
        metrics=report(f"{MAT_DIR}/metrics.csv", category="Materials UQ", subcategory="tables", caption=MAT_CAPTION),
        group_metrics=report(
            f"{MAT_DIR}/group_metrics.csv", category="Materials UQ", subcategory="tables", caption=MAT_CAPTION
        ),
        claims=f"{MAT_DIR}/claims.csv",
        ev_summary=f"{MAT_DIR}/ev_summary.csv",
        timings=f"{MAT_DIR}/timings.csv",
        caption=f"{MAT_DIR}/caption.rst",
        provenance=f"{MAT_DIR}/provenance.json",
    log:
        f"{MAT_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "seed": config["seed"], "study": MAT}),
        in_dirs=in_dirs_of("cells", "reference", "data_metadata"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("materials-summarize")


use rule study_figures as materials_figures with:
    input:
        notebook="workflow/notebooks/materials.ipynb",
        tables=[f"{MAT_DIR}/{t}.csv" for t in ("metrics", "predictions", "calibration", "ev", "info", "group_metrics")],
    output:
        **figure_outputs("materials", MAT_FIGS, "Materials UQ", MAT_CAPTION),
    log:
        f"{MAT_DIR}/logs/figures.log",


if MAT["enabled"]:
    ALL_TARGETS += [f"figures/materials/{f}.png" for f in MAT_FIGS] + [f"{MAT_DIR}/provenance.json"]
    if "fitsnap" in MAT["sets"]:  # claims: Ta near-equilibrium groups vs linear SNAP
        CLAIM_TABLES.append(f"{MAT_DIR}/claims.csv")
