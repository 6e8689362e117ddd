# Exact edit effects, local optima and transfer regret per experiment (tables edits,
# local_optima and transfer, docs/artifacts.md): read from
# the landscapes only (and the selections table, for the prompts search picks).


rule analyse_edits:
    input:
        unpack(get_edits_inputs),
    output:
        edits=out("edits"),
        local_optima=out("local_optima"),
        transfer=out("transfer"),
    log:
        logged("analyse_edits/{experiment}.log"),
    benchmark:
        benchmarked("analyse_edits/{experiment}.tsv")
    conda:
        "../envs/promptscape.yaml"
    resources:
        mem_mb=mem_mb("analyse_edits"),
    params:
        args=get_edits_args,
        code=code("analyse_edits"),
        identity=input_stamps,
    script:
        "../../scripts/analyse_edits.py"
