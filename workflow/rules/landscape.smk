# The landscape of every prompt per (predictor, experiment, task).


rule compute_landscape:
    input:
        unpack(get_prediction_inputs),
        evaluation=out("evaluation_set"),
    output:
        landscape=out("landscape"),
    log:
        LOGS + "/compute_landscape/{experiment}/{predictor}/{task}.log",
    benchmark:
        BENCHMARKS + "/compute_landscape/{experiment}/{predictor}/{task}.tsv",
    params:
        args=get_landscape_args,
        code=code("compute_landscape"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/compute_landscape.py"
