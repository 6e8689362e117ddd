# The pretraining prior read back per (experiment, predictor, replicate), where the
# pretraining source is exchangeable: the predictor's next-symbol distribution after
# count-class contexts (no task data), fitted by a finite mixture and a Beta / Dirichlet
# (promptscape.prior). The surrogate search strategy reads it.


rule probe_prior:
    input:
        unpack(get_prior_inputs),
    output:
        prior=out("prior_fit"),
    log:
        logged("probe_prior/{experiment}/{predictor}/r{replicate}.log"),
    benchmark:
        benchmarked("probe_prior/{experiment}/{predictor}/r{replicate}.tsv")
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_prior_args,
        code=code("probe_prior"),
        identity=input_stamps,
    script:
        "../../scripts/probe_prior.py"
