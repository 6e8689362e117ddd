# The landscape of every prompt per (predictor, experiment, task).


rule compute_landscape:
    input:
        unpack(get_prediction_inputs),
        evaluation="results/{experiment}/evaluation/{task}.parquet",
    output:
        landscape="results/{experiment}/landscape/{predictor}/{task}.parquet",
    log:
        "logs/compute_landscape/{experiment}/{predictor}/{task}.log",
    params:
        args=get_landscape_args,
        code=code("compute_landscape"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/compute_landscape.py"
