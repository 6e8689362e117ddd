# Tuning per (experiment, network, replicate, task, N, seed block): every tuner of the
# experiment's tuning plan trained on each seed's D_N alone (promptscape.neural.tuners),
# scored by the landscape's rule beside the hard prompt search picked from the same D_N;
# each tuner's own optimum, trained on the task itself (tune_optimum); then the experiment's
# tuning table against the exact hard optimum and each tuner's own.


rule tune_network:
    input:
        unpack(get_tuning_inputs),
    output:
        runs=out("tuning_runs"),
    log:
        logged(
            "tune_network/{experiment}/{predictor}/r{replicate}/{task}/N{N}/seeds{first}-{last}.log"
        ),
    benchmark:
        benchmarked(
            "tune_network/{experiment}/{predictor}/r{replicate}/{task}/N{N}/seeds{first}-{last}.tsv"
        )
    conda:
        "../envs/promptscape.yaml"
    threads: STUDY.training["threads"]
    resources:
        mem_mb=mem_mb("tune_network"),
    params:
        args=get_tuning_args,
        code=code("tune_network"),
        identity=input_stamps,
    script:
        "../../scripts/tune_network.py"


# Each tuner's own optimum per (network, replicate, task): trained on the task itself (the
# population objective), never on a D_N; the landscape gives the hard start of length K.
rule tune_optimum:
    input:
        unpack(get_optimum_inputs),
    output:
        optimum=out("tuner_optima"),
    log:
        logged("tune_optimum/{experiment}/{predictor}/r{replicate}/{task}.log"),
    benchmark:
        benchmarked("tune_optimum/{experiment}/{predictor}/r{replicate}/{task}.tsv")
    conda:
        "../envs/promptscape.yaml"
    threads: STUDY.training["threads"]
    resources:
        mem_mb=mem_mb("tune_optimum"),
    params:
        args=get_optimum_args,
        code=code("tune_optimum"),
        identity=input_stamps,
    script:
        "../../scripts/tune_optimum.py"


rule aggregate_tuning:
    input:
        runs=lambda w: get_tuning_outputs(get_experiment(w)),
        landscapes=get_tuning_landscapes,
        optima=lambda w: layout.optimum_outputs(STUDY, get_experiment(w)),
    output:
        tuning=out("tuning"),
    log:
        logged("aggregate_tuning/{experiment}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_aggregate_args(),
        code=code("aggregate_tuning"),
        identity=input_stamps,
    script:
        "../../scripts/aggregate_tuning.py"
