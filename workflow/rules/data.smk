# Raw-data layer (src/nnrds/data/, commands in src/nnrds/commands/data.py): simulator ensembles and
# verified acquisition of the real datasets. Config: `data` (workflow/schemas/studies/data.schema.yaml): `data.elm`,
# `data.chem`, `data.acquire`, and `data.mirror` (null = download from the pinned origin).
RAW = config["data"]
RAW_DIR = "results/data"
RAW_TABLES = ["ptrain.csv", "ytrain.csv", "ptest.csv", "ytest.csv", "metadata.json", "provenance.json"]


rule data_elm:
    output:
        [f"{RAW_DIR}/elm/{f}" for f in RAW_TABLES],
        traj=f"{RAW_DIR}/elm/trajectories.csv",
        timing=f"{RAW_DIR}/elm/timing.json",
    params:
        cfg=cfg_arg(RAW["elm"]),
        out_dir=out_dir_of("timing"),
    log:
        f"{RAW_DIR}/logs/elm.log",
    shell:
        "$NNRDS_PYTHON -m nnrds data-elm --config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule data_chem:
    output:
        [f"{RAW_DIR}/chem/{f}" for f in RAW_TABLES],
        timing=f"{RAW_DIR}/chem/timing.json",
    params:
        cfg=cfg_arg(RAW["chem"]),
        out_dir=out_dir_of("timing"),
    threads: RAW["chem"]["n_jobs"]
    log:
        f"{RAW_DIR}/logs/chem.log",
    shell:
        "$NNRDS_PYTHON -m nnrds data-chem --config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule data_figure:
    input:
        ytrain=f"{RAW_DIR}/{{ens}}/ytrain.csv",
    output:
        png=f"figures/data/{{ens}}.png",
        pdf=f"figures/data/{{ens}}.pdf",
    wildcard_constraints:
        ens="elm|chem",
    params:
        ens_dir=in_dir_of("ytrain"),
    log:
        f"{RAW_DIR}/logs/figure_{{ens}}.log",
    shell:
        "$NNRDS_PYTHON -m nnrds data-figure --ensemble-dir {params.ens_dir} --out {output.png} > {log} 2>&1"


rule data_acquire_fitsnap:
    output:
        configs=f"{RAW_DIR}/{{dataset}}/configs.csv",
        atoms=f"{RAW_DIR}/{{dataset}}/atoms.csv",
        metadata=f"{RAW_DIR}/{{dataset}}/metadata.json",
        provenance=f"{RAW_DIR}/{{dataset}}/provenance.json",
    wildcard_constraints:
        dataset="fitsnap_Ta|fitsnap_WBe",
    params:
        cfg=lambda wc: cfg_arg({"mirror": mirror_path(), "timeout_s": RAW["acquire"]["timeout_s"]}),
        out_dir=lambda wc: f"{RAW_DIR}/{wc.dataset}",
    log:
        f"{RAW_DIR}/logs/acquire_{{dataset}}.log",
    shell:
        "$NNRDS_PYTHON -m nnrds data-acquire --dataset {wildcards.dataset} --config-json {params.cfg} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule data_acquire_ecg5000:
    output:
        train=f"{RAW_DIR}/ecg5000/train.csv",
        metadata=f"{RAW_DIR}/ecg5000/metadata.json",
        provenance=f"{RAW_DIR}/ecg5000/provenance.json",
    params:
        cfg=cfg_arg({"mirror": mirror_path(), "timeout_s": RAW["acquire"]["timeout_s"]}),
        out_dir=out_dir_of("provenance"),
    log:
        f"{RAW_DIR}/logs/acquire_ecg5000.log",
    shell:
        "$NNRDS_PYTHON -m nnrds data-acquire --dataset ecg5000 --config-json {params.cfg} "
        "--out-dir {params.out_dir} > {log} 2>&1"


if RAW["elm"]["enabled"]:
    ALL_TARGETS += [f"{RAW_DIR}/elm/ytrain.csv", "figures/data/elm.png"]
if RAW["chem"]["enabled"]:
    ALL_TARGETS += [f"{RAW_DIR}/chem/ytrain.csv", "figures/data/chem.png"]
ALL_TARGETS += [f"{RAW_DIR}/{d}/metadata.json" for d in RAW["acquire"]["datasets"]]
