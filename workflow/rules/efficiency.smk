# Prompt efficiency per experiment, every predictor and task in one job (each network loaded
# once): typical prompts drawn from the task against the optimal prompt of each length, and
# the experiment's token efficiency. The `efficiency` config reaches this rule only, so
# changing it reruns this stage and its figures and nothing else.


rule measure_efficiency:
    input:
        unpack(get_efficiency_inputs),
    output:
        efficiency=out("efficiency"),
        token_efficiency=out("token_efficiency"),
    log:
        logged("measure_efficiency/{experiment}.log"),
    benchmark:
        benchmarked("measure_efficiency/{experiment}.tsv")
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("measure_efficiency"),
    params:
        args=get_efficiency_args,
        code=code("measure_efficiency"),
        identity=input_stamps,
    script:
        "../../scripts/measure_efficiency.py"
