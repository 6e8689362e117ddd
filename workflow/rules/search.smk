# Exhaustive prompt search per (experiment, selection, seed block), for every predictor,
# task and N of the experiment in one job (a search on a loss table costs milliseconds): on
# the tasks' D_N (selection random), or on the datasets a pooled selection method keeps from
# the block's pools (promptscape.selection), which it writes beside the search.


rule search_prompts:
    input:
        get_search_inputs,
        datasets=out("task_data"),
    output:
        search=out("search"),
    log:
        logged("search_prompts/{experiment}/{selection}/seeds{first}-{last}.log"),
    benchmark:
        benchmarked("search_prompts/{experiment}/{selection}/seeds{first}-{last}.tsv")
    wildcard_constraints:
        selection="random",
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("search_prompts"),
    params:
        args=get_search_args,
        code=code("search_prompts"),
        identity=input_stamps,
    script:
        "../../scripts/search_prompts.py"


rule search_selected:
    input:
        get_search_inputs,
        pool=out("selection_pool"),
    output:
        search=out("search"),
        selected=out("selected_data"),
    log:
        logged("search_selected/{experiment}/{selection}/seeds{first}-{last}.log"),
    benchmark:
        benchmarked("search_selected/{experiment}/{selection}/seeds{first}-{last}.tsv")
    wildcard_constraints:
        selection=POOLED_SELECTIONS,
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("search_selected"),
    params:
        args=get_selected_search_args,
        code=code("search_selected"),
        identity=input_stamps,
    script:
        "../../scripts/search_selected.py"


# Search strategies per (predictor, experiment, task, N, seed block) on the task's D_N
# (replicate 0; drawn in the job, as task_data holds them), scored against exhaustive
# search on the same D_N and the landscape (promptscape.strategies).
rule search_strategies:
    input:
        unpack(get_strategy_inputs),
        unpack(get_strategy_prior),
        landscape=get_strategy_landscape,
    output:
        runs=out("strategy_runs"),
        steps=out("strategy_steps"),
        hill_climb_ends=out("hill_climb_ends"),
    log:
        logged(
            "search_strategies/{experiment}/{predictor}/{task}/N{N}/seeds{first}-{last}.log"
        ),
    benchmark:
        benchmarked(
            "search_strategies/{experiment}/{predictor}/{task}/N{N}/seeds{first}-{last}.tsv"
        )
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("search_strategies"),
    params:
        args=get_strategy_args,
        code=code("search_strategies"),
        identity=input_stamps,
    script:
        "../../scripts/search_strategies.py"
