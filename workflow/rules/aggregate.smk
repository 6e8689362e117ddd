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


# The observational estimate of edit effects from the strategies' steps, judged against the
# landscapes, and how often hill climbing ends on local optima (only where a strategy
# besides exhaustive runs; tables edit_effects and hill_climb_ends, docs/artifacts.md).
rule edit_effects:
    input:
        steps=lambda w: layout.strategy_outputs(
            STUDY, get_experiment(w), "strategy_steps"
        ),
        hill_climb_ends=lambda w: layout.strategy_outputs(
            STUDY, get_experiment(w), "hill_climb_ends"
        ),
        landscapes=lambda w: [
            path
            for tasks in layout.strategy_landscapes(STUDY, get_experiment(w)).values()
            for path in tasks.values()
        ],
    output:
        edit_effects=out("edit_effects"),
        hill_climb_optima=out("hill_climb_optima"),
    log:
        logged("edit_effects/{experiment}.log"),
    benchmark:
        benchmarked("edit_effects/{experiment}.tsv")
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_edit_effects_args,
        code=code("edit_effects"),
        identity=input_stamps,
    script:
        "../../scripts/edit_effects.py"
