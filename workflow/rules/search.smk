# Exhaustive prompt search per (predictor, experiment, task, N, seed block).


rule search_prompts:
    input:
        unpack(get_prediction_inputs),
        datasets="results/{experiment}/datasets/{task}/N{N}/seeds{first}-{last}.parquet",
    output:
        search="results/{experiment}/search/{predictor}/{task}/N{N}/seeds{first}-{last}.parquet",
    log:
        "logs/search_prompts/{experiment}/{predictor}/{task}/N{N}/seeds{first}-{last}.log",
    params:
        args=get_search_args,
        code=code("search_prompts"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/search_prompts.py"
