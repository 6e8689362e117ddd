# Why search fails, predicted: the probability that exhaustive search on D_N returns an
# optimal prompt, per (predictor, experiment, task) from the landscape's loss table (set
# beside the measured reliability by aggregate_search). Only this rule sees the
# `prediction` config.


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
        identity=input_stamps,
    script:
        "../../scripts/predict_reliability.py"
