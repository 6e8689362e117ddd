# Exhaustive prompt search per (predictor, experiment, task, N, seed block).


rule search_prompts:
    input:
        unpack(get_prediction_inputs),
        datasets=out("task_data"),
    output:
        search=out("search"),
    log:
        logged(
            "search_prompts/{experiment}/{predictor}/r{replicate}/{task}/N{N}/seeds{first}-{last}.log"
        ),
    benchmark:
        benchmarked(
            "search_prompts/{experiment}/{predictor}/r{replicate}/{task}/N{N}/seeds{first}-{last}.tsv"
        )
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("search_prompts"),
    params:
        args=get_search_args,
        code=code("search_prompts"),
    script:
        "../../scripts/search_prompts.py"
