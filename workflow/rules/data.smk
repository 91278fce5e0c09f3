# Raw-data layer (src/nnrds/data/, commands in src/nnrds/commands/data.py): simulator ensembles, the generated
# Al-EMT set and verified acquisition of the real datasets, each in results/data/<name>/ with timings.csv. Config: `data` (workflow/schemas/studies/data.schema.yaml): `data.elm`,
# `data.chem`, `data.acquire`, and `data.mirror` (null = download from the pinned origin). Rules name folders; the
# commands write fixed file names.
RAW = config["data"]
RAW_DIR = "results/data"
RAW_TABLES = ["ptrain", "ytrain", "ptest", "ytest"]


rule data_elm:
    output:
        **table_outputs(f"{RAW_DIR}/elm", RAW_TABLES + ["trajectories"] + ["timings"]),
        metadata=f"{RAW_DIR}/elm/metadata.json",
    log:
        f"{RAW_DIR}/logs/elm.log",
    benchmark:
        f"{RAW_DIR}/benchmarks/elm.tsv"
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg(RAW["elm"]),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("data-elm")


rule data_chem:
    output:
        **table_outputs(f"{RAW_DIR}/chem", RAW_TABLES + ["timings"]),
        metadata=f"{RAW_DIR}/chem/metadata.json",
    log:
        f"{RAW_DIR}/logs/chem.log",
    benchmark:
        f"{RAW_DIR}/benchmarks/chem.tsv"
    threads: RAW["chem"]["n_jobs"]
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg(RAW["chem"]),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("data-chem")


rule data_al_emt:
    output:
        **table_outputs(f"{RAW_DIR}/al_emt", ["configs", "atoms", "timings"]),
        metadata=f"{RAW_DIR}/al_emt/metadata.json",
    log:
        f"{RAW_DIR}/logs/al_emt.log",
    benchmark:
        f"{RAW_DIR}/benchmarks/al_emt.tsv"
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"seed": config["seed"], "spec": config["materials"]["al_emt"]}),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("data-al-emt")


rule data_figure:
    input:
        ytrain=f"{RAW_DIR}/{{ens}}/ytrain.csv",
    output:
        png=report(
            f"figures/data/{{ens}}.png",
            category="Raw data",
            subcategory="figures",
            caption="../report/data_figure.rst",
        ),
        pdf=f"figures/data/{{ens}}.pdf",
    log:
        f"{RAW_DIR}/logs/figure_{{ens}}.log",
    wildcard_constraints:
        ens="elm|chem",
    resources:
        **cluster_resources(),
    params:
        cfg=lambda wc: cfg_arg({"cell": {"ensemble": wc.ens}}),
        in_dirs=in_dirs_of("ytrain"),
        out_dir=out_dir_of("png"),
    shell:
        nnrds_shell("data-figure")


rule data_acquire_fitsnap:
    output:
        configs=f"{RAW_DIR}/{{dataset}}/configs.csv",
        atoms=f"{RAW_DIR}/{{dataset}}/atoms.csv",
        metadata=f"{RAW_DIR}/{{dataset}}/metadata.json",
        timings=f"{RAW_DIR}/{{dataset}}/timings.csv",
        provenance=f"{RAW_DIR}/{{dataset}}/provenance.json",
    log:
        f"{RAW_DIR}/logs/acquire_{{dataset}}.log",
    wildcard_constraints:
        dataset="fitsnap_Ta|fitsnap_WBe",
    resources:
        **cluster_resources(),
    params:
        cfg=acquire_cfg,
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("data-acquire")


rule data_acquire_ecg5000:
    output:
        train=f"{RAW_DIR}/{{dataset}}/train.csv",
        metadata=f"{RAW_DIR}/{{dataset}}/metadata.json",
        timings=f"{RAW_DIR}/{{dataset}}/timings.csv",
        provenance=f"{RAW_DIR}/{{dataset}}/provenance.json",
    log:
        f"{RAW_DIR}/logs/acquire_{{dataset}}.log",
    wildcard_constraints:
        dataset="ecg5000",
    resources:
        **cluster_resources(),
    params:
        cfg=acquire_cfg,
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("data-acquire")


rule data_acquire_ucr:
    output:
        train=f"{RAW_DIR}/{{dataset}}/train.csv",
        test=f"{RAW_DIR}/{{dataset}}/test.csv",
        metadata=f"{RAW_DIR}/{{dataset}}/metadata.json",
        timings=f"{RAW_DIR}/{{dataset}}/timings.csv",
        provenance=f"{RAW_DIR}/{{dataset}}/provenance.json",
    log:
        f"{RAW_DIR}/logs/acquire_{{dataset}}.log",
    wildcard_constraints:
        dataset="italy_power",
    resources:
        **cluster_resources(),
    params:
        cfg=acquire_cfg,
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("data-acquire")


if RAW["elm"]["enabled"]:
    ALL_TARGETS += [f"{RAW_DIR}/elm/ytrain.csv", "figures/data/elm.png"]
if RAW["chem"]["enabled"]:
    ALL_TARGETS += [f"{RAW_DIR}/chem/ytrain.csv", "figures/data/chem.png"]
ALL_TARGETS += [f"{RAW_DIR}/{d}/metadata.json" for d in RAW["acquire"]["datasets"]]
