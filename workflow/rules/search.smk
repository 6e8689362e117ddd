# Exhaustive prompt search per (predictor, experiment, task, N, seed block).


rule search_prompts:
    input:
        unpack(get_prediction_inputs),
        datasets=out("task_data"),
    output:
        search=out("search"),
    log:
        LOGS + "/search_prompts/{experiment}/{predictor}/{task}/N{N}/seeds{first}-{last}.log",
    benchmark:
        BENCHMARKS + "/search_prompts/{experiment}/{predictor}/{task}/N{N}/seeds{first}-{last}.tsv",
    params:
        args=get_search_args,
        code=code("search_prompts"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/search_prompts.py"
