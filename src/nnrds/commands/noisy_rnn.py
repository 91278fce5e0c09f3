"""Commands of the noisy-RNN regularization study (src/nnrds/studies/noisy_rnn.py; rules: workflow/rules/noisy_rnn.smk).

``noisy-rnn-train``: one dataset x model cell (config ``cell: {dataset, model}``); ECG5000 and ItalyPowerDemand are
read from the folder the rule gives (``--in-dir``, file ``ecg_file`` / ``train.csv`` of the raw-data layer);
writes :data:`CELL_TABLES`, ``timings.csv`` and ``provenance.json`` to ``--out-dir``. ``noisy-rnn-summarize``: reads
the cells' folders (``--in-dir``), writes :data:`SUMMARY_TABLES`, ``caption.rst`` and ``provenance.json``.
"""

from __future__ import annotations

from .common import add_commands, in_tables, read_tables, run_cell_job, write_summary

#: tables of a training cell (besides timings.csv and provenance.json)
CELL_TABLES = ["runs"]
#: tables of the summary
SUMMARY_TABLES = [
    "runs",
    "timings",
    "summary",
    "noise_selection",
    "robustness_comparison",
    "claims",
    "clean_vs_training_noise",
]
RUN_KEYS = ["dataset", "model", "variant", "perturbation", "strength", "seed", "fold"]


def register(sub) -> None:
    add_commands(sub, {"noisy-rnn-train": _train, "noisy-rnn-summarize": _summarize})


def _train(args) -> int:
    """train one dataset x model cell (all seeds and noise levels as replicas) and evaluate it under every
    test-time perturbation

    Config: {seed, device, dtype, torch_threads, study, data: {mirror}, ecg_file, cell: {dataset: digits |
    digits_permuted | ecg5000 | italy_power, model: lipschitz | noisy | antisymmetric | lstm | cornn}}"""
    from ..studies import noisy_rnn

    c = args.config_json
    study = dict(c["study"])
    if args.in_dir and c["cell"]["dataset"] == "ecg5000":  # the file the rule gives (its folder), not a config path
        study["ecg_path"] = str(in_tables(args, c.get("ecg_file", "train.csv"))[0])
    if args.in_dir and c["cell"]["dataset"] == "italy_power":
        study["italy_path"] = str(in_tables(args, "train.csv")[0])
    return run_cell_job(args, "noisy_rnn", noisy_rnn.run_cell, study=study)


def _summarize(args) -> int:
    """concatenate cells; pool folds per seed; choose the noise level on validation data; paired noisy-vs-Lipschitz
    robustness (normalized drop; primary family of one claim per dataset, secondary family; Holm within each);
    writes runs, timings, summary, noise_selection, robustness_comparison, claims, clean_vs_training_noise,
    caption.rst, provenance.json

    Config: {scale, study}"""
    from ..studies import noisy_rnn

    c = args.config_json
    runs = read_tables(args, "runs", RUN_KEYS)
    seeds = noisy_rnn.seed_runs(runs)
    sel = noisy_rnn.select_levels(seeds, c["study"])
    claims = noisy_rnn.claims(seeds, c["study"])
    write_summary(
        args,
        "noisy_rnn/summarize",
        {
            "runs": runs,
            "timings": read_tables(args, "timings"),
            "summary": noisy_rnn.summarize(seeds),
            "noise_selection": sel,
            "robustness_comparison": noisy_rnn.compare(seeds, claims, c["study"]),
            "claims": claims,
            "clean_vs_training_noise": noisy_rnn.clean_vs_training_noise(seeds),
        },
        noisy_rnn.caption(seeds, sel, claims, c["scale"], c["study"]),
    )
    return 0
