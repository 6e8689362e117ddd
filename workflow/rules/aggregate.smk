# Reliability of the search per experiment: selections, reliability and choices tables, and
# the predicted reliability beside the measured one.


rule aggregate_search:
    input:
        searches=lambda w: get_search_outputs(get_experiment(w)),
        landscapes=lambda w: get_landscape_outputs(get_experiment(w)),
        predictions=lambda w: get_prediction_outputs(get_experiment(w)),
    output:
        selections=out("selections"),
        reliability=out("reliability"),
        choices=out("choices"),
        prediction=out("reliability_prediction"),
    log:
        logged("aggregate_search/{experiment}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_aggregate_args(layout.search_grid, within_epsilon=True),
        code=code("aggregate_search"),
        identity=input_stamps,
    script:
        "../../scripts/aggregate_search.py"


# Search strategies per experiment: the strategies table (only where a strategy besides
# exhaustive runs).
rule aggregate_strategies:
    input:
        runs=lambda w: get_strategy_outputs(get_experiment(w)),
    output:
        strategies=out("strategies"),
    log:
        logged("aggregate_strategies/{experiment}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_aggregate_args(layout.strategy_grid, within_epsilon=True),
        code=code("aggregate_strategies"),
        identity=input_stamps,
    script:
        "../../scripts/aggregate_strategies.py"
