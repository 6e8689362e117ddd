# Neural predictors: training per (pretraining source, model), post-training of a trained
# network on another source (models.<name>.post_training), evaluation against the
# exact Bayes predictor, and the table of prompt losses per (experiment, model). A model's
# folder carries its identity (layout.model_dir), so configs never overwrite each other's.


rule train_predictor:
    output:
        model=in_model_dir("model.pt"),
        curve=out("training_curve"),
    log:
        logged("train_predictor/{source}/{predictor}-{identity}.log"),
    benchmark:
        benchmarked("train_predictor/{source}/{predictor}-{identity}.tsv")
    wildcard_constraints:
        predictor=TRAINED,
    conda:
        "../envs/promptscape.yaml"
    threads: STUDY.training["threads"]
    resources:
        mem_mb=mem_mb("train_predictor"),
        gpu=STUDY.training["gpus"],
    params:
        # Not an output: it survives an interrupted run, which the next run resumes from.
        checkpoint=in_model_dir("checkpoint.pt"),
        args=get_training_args,
        code=code("train_predictor"),
        identity=input_stamps,
    script:
        "../../scripts/train_predictor.py"


rule post_train_predictor:
    input:
        base=get_post_training_base,
    output:
        model=in_model_dir("model.pt"),
        curve=out("training_curve"),
    log:
        logged("post_train_predictor/{source}/{predictor}-{identity}.log"),
    benchmark:
        benchmarked("post_train_predictor/{source}/{predictor}-{identity}.tsv")
    wildcard_constraints:
        predictor=POST_TRAINED,
    conda:
        "../envs/promptscape.yaml"
    threads: STUDY.training["threads"]
    resources:
        mem_mb=mem_mb("post_train_predictor"),
        gpu=STUDY.training["gpus"],
    params:
        args=get_post_training_args,
        code=code("post_train_predictor"),
        identity=input_stamps,
    script:
        "../../scripts/post_train_predictor.py"


rule evaluate_predictor:
    input:
        model=in_model_dir("model.pt"),
    output:
        regret=out("predictor_regret"),
    log:
        logged("evaluate_predictor/{source}/{predictor}-{identity}.log"),
    benchmark:
        benchmarked("evaluate_predictor/{source}/{predictor}-{identity}.tsv")
    conda:
        "../envs/promptscape.yaml"
    threads: STUDY.training["threads"]
    resources:
        mem_mb=mem_mb("evaluate_predictor"),
    params:
        args=get_evaluation_args,
        code=code("evaluate_predictor"),
        identity=input_stamps,
    script:
        "../../scripts/evaluate_predictor.py"


rule score_prompts:
    input:
        model=get_model,
    output:
        table=out("prompt_losses"),
    log:
        logged("score_prompts/{experiment}/{predictor}/r{replicate}.log"),
    benchmark:
        benchmarked("score_prompts/{experiment}/{predictor}/r{replicate}.tsv")
    conda:
        "../envs/promptscape.yaml"
    threads: STUDY.training["threads"]
    resources:
        mem_mb=mem_mb("score_prompts"),
        gpu=STUDY.training["gpus"],
    params:
        args=get_scoring_args,
        code=code("score_prompts"),
        identity=input_stamps,
    script:
        "../../scripts/score_prompts.py"
