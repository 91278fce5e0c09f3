# Materials UQ study: interatomic potentials with uncertainty (src/nnrds/potentials/,
# src/nnrds/studies/materials.py, Bayes-by-backprop in src/nnrds/uq/bbb.py). Data: Al-EMT (generated here
# with ASE + EMT, a substitute for the non-public Al DFT set), the FitSNAP Ta DFT set and the FitSNAP W-Be
# DFT set (both acquired by rule data_acquire_fitsnap; W-Be: one network per element). One training job per
# set (every split; ensemble + BBB), one summary job, one papermill notebook for the figures.

MAT = config["materials"]
MAT_DIR = "results/materials"
MAT_TABLES = ["metrics", "predictions", "calibration", "ev", "history", "info", "config_errors"]
MAT_FIGS = ["parity", "calibration", "std_vs_error", "ev_curve", "group_errors"]
MAT_REFERENCE = "workflow/reference/snap_linear_fitsnap.csv"  # linear-SNAP errors from FitSNAP's example outputs
MAT_FITSNAP = [s for s in MAT["sets"] if s != "al_emt"]


rule materials_data:
    output:
        configs=f"{MAT_DIR}/data/al_emt/configs.csv",
        atoms=f"{MAT_DIR}/data/al_emt/atoms.csv",
        metadata=f"{MAT_DIR}/data/al_emt/metadata.json",
        provenance=f"{MAT_DIR}/data/al_emt/provenance.json",
    params:
        cfg=cfg_arg({"seed": config["seed"], "spec": MAT["al_emt"]}),
        out_dir=out_dir_of("provenance"),
    log:
        f"{MAT_DIR}/logs/data_al_emt.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m nnrds materials-data --config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule materials_train:
    input:
        configs=lambda wc: f"{materials_data_dir(wc.mset)}/configs.csv",
        atoms=lambda wc: f"{materials_data_dir(wc.mset)}/atoms.csv",
    output:
        [f"{MAT_DIR}/cells/{{mset}}/{t}.csv" for t in MAT_TABLES],
        timings=f"{MAT_DIR}/cells/{{mset}}/timings.csv",
        provenance=f"{MAT_DIR}/cells/{{mset}}/provenance.json",
    wildcard_constraints:
        mset="al_emt|fitsnap|wbe",
    params:
        cfg=cfg_arg({**job_env(), "study": MAT}),
        data_dir=lambda wc: materials_data_dir(wc.mset),
        tables=lambda wc: " ".join(f"--{t} {MAT_DIR}/cells/{wc.mset}/{t}.csv" for t in MAT_TABLES),
    log:
        f"{MAT_DIR}/logs/train_{{mset}}.log",
    threads: config["torch_threads"]
    resources:
        **train_resources(max(4000, 4 * MAT["al_emt"]["n_configs"], 2 * (MAT["wbe"]["max_configs"] or 25000))),
    shell:
        "$NNRDS_PYTHON -m nnrds materials-train --set {wildcards.mset} --data-dir {params.data_dir} --config-json {params.cfg} "
        "{params.tables} --timings {output.timings} --provenance {output.provenance} > {log} 2>&1"


rule materials_summarize:
    input:
        expand(f"{MAT_DIR}/cells/{{s}}/{{t}}.csv", s=MAT["sets"], t=MAT_TABLES + ["timings"]),
        provenance=expand(f"{MAT_DIR}/cells/{{s}}/provenance.json", s=MAT["sets"]),
        reference=MAT_REFERENCE,
        data_metadata=[f"{materials_data_dir(s)}/metadata.json" for s in MAT_FITSNAP],
    output:
        [f"{MAT_DIR}/{t}.csv" for t in MAT_TABLES if t != "metrics"],
        metrics=report(f"{MAT_DIR}/metrics.csv", category="Materials UQ", subcategory="tables",
                       caption=f"../../{MAT_DIR}/caption.rst"),
        group_metrics=report(f"{MAT_DIR}/group_metrics.csv", category="Materials UQ", subcategory="tables",
                             caption=f"../../{MAT_DIR}/caption.rst"),
        claims=f"{MAT_DIR}/claims.csv",
        ev_summary=f"{MAT_DIR}/ev_summary.csv",
        timings=f"{MAT_DIR}/timings.csv",
        caption=f"{MAT_DIR}/caption.rst",
        provenance=f"{MAT_DIR}/provenance.json",
    params:
        cfg=cfg_arg({"scale": SCALE, "seed": config["seed"], "study": MAT}),
        out_dir=out_dir_of("provenance"),
        tables=" ".join(f"--{t} " + " ".join(f"{MAT_DIR}/cells/{s}/{t}.csv" for s in MAT["sets"])
                        for t in MAT_TABLES + ["timings"]),
    log:
        f"{MAT_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m nnrds materials-summarize {params.tables} --provenance {input.provenance} "
        "--reference {input.reference} --data-metadata {input.data_metadata} "
        "--config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule materials_figures:
    input:
        notebook="workflow/notebooks/materials.ipynb",
        tables=[f"{MAT_DIR}/{t}.csv" for t in ("metrics", "predictions", "calibration", "ev", "info", "group_metrics")],
    output:
        notebook="results/notebooks/materials.ipynb",
        png=[report(f"figures/materials/{f}.png", category="Materials UQ", subcategory="figures",
                    caption=f"../../{MAT_DIR}/caption.rst") for f in MAT_FIGS],
        pdf=[f"figures/materials/{f}.pdf" for f in MAT_FIGS],
    params:
        fig_dir=fig_dir,
        scale=SCALE,
        results_dir=lambda wc, input: os.path.dirname(input.tables[0]),
    log:
        f"{MAT_DIR}/logs/figures.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m papermill {input.notebook} {output.notebook} --kernel python3 --no-progress-bar "
        "-p results_dir {params.results_dir} -p fig_dir {params.fig_dir} -p scale {params.scale} > {log} 2>&1"


if MAT["enabled"]:
    ALL_TARGETS += [f"figures/materials/{f}.png" for f in MAT_FIGS] + [f"{MAT_DIR}/provenance.json"]
    if "fitsnap" in MAT["sets"]:  # claims: Ta near-equilibrium groups vs linear SNAP
        CLAIM_TABLES.append(f"{MAT_DIR}/claims.csv")
