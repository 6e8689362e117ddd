# Reliability of the search per experiment: selections, reliability and choices tables.


rule aggregate_search:
    input:
        searches=lambda w: get_search_outputs(get_experiment(w)),
        landscapes=lambda w: get_landscape_outputs(get_experiment(w)),
    output:
        selections="results/{experiment}/aggregate/selections.parquet",
        reliability="results/{experiment}/aggregate/reliability.parquet",
        choices="results/{experiment}/aggregate/choices.parquet",
    log:
        "logs/aggregate_search/{experiment}.log",
    params:
        imd=lambda w: {t.name: t.in_meta_distribution for t in get_experiment(w).tasks},
        code=code("aggregate_search"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/aggregate_search.py"
