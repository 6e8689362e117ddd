# The landscape of every prompt per (predictor, experiment, task).


rule compute_landscape:
    input:
        unpack(get_prediction_inputs),
        evaluation=out("evaluation_set"),
    output:
        landscape=out("landscape"),
    log:
        logged("compute_landscape/{experiment}/{predictor}/r{replicate}/{task}.log"),
    benchmark:
        benchmarked(
            "compute_landscape/{experiment}/{predictor}/r{replicate}/{task}.tsv"
        )
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("compute_landscape"),
    params:
        args=get_landscape_args,
        code=code("compute_landscape"),
        identity=input_stamps,
    script:
        "../../scripts/compute_landscape.py"
