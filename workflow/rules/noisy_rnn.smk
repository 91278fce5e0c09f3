# Noisy-RNN regularization study (src/nnrds/studies/noisy_rnn.py, commands/noisy_rnn.py; models in src/nnrds/rnn.py,
# data in src/nnrds/data/sequences.py). One training job per dataset x model; its (seed, CV fold) replicas (and the
# noisy RNN's training-noise levels) train as replicas of one batched network, then every perturbation is evaluated
# in the same job. One summary job (claims.csv: normalized drop, noise level chosen on validation data, a primary
# family of one claim per dataset and a secondary family, Holm within each; appended to the claims ledger), one
# papermill notebook for the figures. ECG5000 and ItalyPowerDemand come from the raw-data layer (rules
# data_acquire_ecg5000 / data_acquire_ucr in data.smk: verified mirror copy, or a download when data.mirror is null)
# unless `noisy_rnn.ecg_path` names a file; the job gets the folder (--in-dir).

NRN = config["noisy_rnn"]
NRN_DIR = "results/noisy_rnn"
NRN_CELLS = [  # a task may run fewer models (noisy_rnn.task_training.<task>.models)
    f"{d}/{m}" for d in NRN["tasks"] for m in (NRN["task_training"].get(d) or {}).get("models", NRN["models"])
]
NRN_FIGS = ["robustness_advantage", "accuracy_vs_strength", "clean_vs_training_noise"]
NRN_ECG = NRN["ecg_path"] or "results/data/ecg5000/train.csv"
NRN_DATA = {
    "ecg5000": [NRN_ECG],
    "italy_power": ["results/data/italy_power/train.csv", "results/data/italy_power/test.csv"],
}
NRN_CAPTION = f"../../{NRN_DIR}/caption.rst"


rule noisy_rnn_train:
    input:
        data=lambda wc: NRN_DATA.get(wc.dataset, []),
    output:
        **table_outputs(f"{NRN_DIR}/cells/{{dataset}}/{{model}}", ["runs", "timings"]),
    log:
        f"{NRN_DIR}/logs/train_{{dataset}}_{{model}}.log",
    benchmark:
        f"{NRN_DIR}/benchmarks/train_{{dataset}}_{{model}}.tsv"
    wildcard_constraints:
        dataset="digits|digits_permuted|ecg5000|italy_power",
        model="lipschitz|noisy|antisymmetric|lstm|cornn",
    priority: LONG_JOB_PRIORITY
    group:
        "noisy_rnn_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="noisy_rnn_train"),
    params:
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study(NRN),
                "data": {"mirror": mirror_path()},
                "ecg_file": os.path.basename(NRN_ECG),
                "cell": {"dataset": wc.dataset, "model": wc.model},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("noisy-rnn-train")


rule noisy_rnn_summarize:
    input:
        cells=expand(
            f"{NRN_DIR}/cells/{{cell}}/{{t}}", cell=NRN_CELLS, t=["runs.csv", "timings.csv", "provenance.json"]
        ),
    output:
        **report_tables(NRN_DIR, ["runs", "summary", "robustness_comparison", "claims"], "Noisy RNN", NRN_CAPTION),
        **table_outputs(NRN_DIR, ["timings", "noise_selection", "clean_vs_training_noise"]),
        caption=f"{NRN_DIR}/caption.rst",
    log:
        f"{NRN_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "study": NRN}),
        in_dirs=in_dirs_of("cells"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("noisy-rnn-summarize")


use rule study_figures as noisy_rnn_figures with:
    input:
        notebook="workflow/notebooks/noisy_rnn.ipynb",
        tables=[f"{NRN_DIR}/{t}.csv" for t in ("summary", "robustness_comparison", "clean_vs_training_noise", "claims")],
    output:
        **figure_outputs("noisy_rnn", NRN_FIGS, "Noisy RNN", NRN_CAPTION),
    log:
        f"{NRN_DIR}/logs/figures.log",


if NRN["enabled"]:
    ALL_TARGETS += [f"figures/noisy_rnn/{f}.png" for f in NRN_FIGS] + [f"{NRN_DIR}/provenance.json"]
    declare_claims(NRN_DIR, "Noisy RNN")
