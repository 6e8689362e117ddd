# Prompt efficiency per (predictor, experiment, task): typical prompts drawn from the task
# against the optimal prompt of each length; token efficiency per experiment. The
# `efficiency` config reaches these rules only, so changing it reruns this stage and its
# figure and nothing else.


rule measure_efficiency:
    input:
        landscape=out("landscape"),
        evaluation=out("evaluation_set"),
        model=get_efficiency_model,
    output:
        efficiency=out("efficiency"),
    log:
        logged("measure_efficiency/{experiment}/{predictor}/r{replicate}/{task}.log"),
    benchmark:
        benchmarked(
            "measure_efficiency/{experiment}/{predictor}/r{replicate}/{task}.tsv"
        )
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("measure_efficiency"),
    params:
        args=get_efficiency_args,
        code=code("measure_efficiency"),
    script:
        "../../scripts/measure_efficiency.py"


rule summarize_efficiency:
    input:
        efficiencies=lambda w: get_efficiency_outputs(get_experiment(w)),
        landscapes=lambda w: get_landscape_outputs(get_experiment(w)),
    output:
        token_efficiency=out("token_efficiency"),
    log:
        logged("summarize_efficiency/{experiment}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_efficiency_summary_args,
        code=code("summarize_efficiency"),
    script:
        "../../scripts/summarize_efficiency.py"
