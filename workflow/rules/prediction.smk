# Why search fails, predicted: the probability that exhaustive search on D_N returns an
# optimal prompt, per (predictor, experiment, task) from the landscape's loss table, and
# per experiment beside the measured reliability. Only these rules see the `prediction`
# config.


rule predict_reliability:
    input:
        unpack(get_prediction_inputs),
        landscape=out("landscape"),
        evaluation=out("evaluation_set"),
    output:
        prediction=out("predicted_reliability"),
    log:
        logged("predict_reliability/{experiment}/{predictor}/r{replicate}/{task}.log"),
    benchmark:
        benchmarked(
            "predict_reliability/{experiment}/{predictor}/r{replicate}/{task}.tsv"
        )
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("predict_reliability"),
    params:
        args=get_reliability_prediction_args,
        code=code("predict_reliability"),
    script:
        "../../scripts/predict_reliability.py"


rule aggregate_prediction:
    input:
        predictions=lambda w: get_prediction_outputs(get_experiment(w)),
        reliability=out("reliability"),
    output:
        prediction=out("reliability_prediction"),
    log:
        logged("aggregate_prediction/{experiment}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        expected=lambda w: layout.search_grid(STUDY, get_experiment(w)),
        code=code("aggregate_prediction"),
    script:
        "../../scripts/aggregate_prediction.py"
