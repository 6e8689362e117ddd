# Neural predictors: training per (pretraining source, model), evaluation against the
# exact Bayes predictor, and the table of prompt losses per (experiment, model). A model's
# folder carries its identity (layout.model_dir), so configs never overwrite each other's.


rule train_predictor:
    output:
        model=MODEL_DIR + "/model.pt",
        curve=out("training_curve"),
    log:
        LOGS + "/train_predictor/{source}/{predictor}-{identity}.log",
    benchmark:
        BENCHMARKS + "/train_predictor/{source}/{predictor}-{identity}.tsv",
    params:
        # Not an output: it survives an interrupted run, which the next run resumes from.
        checkpoint=MODEL_DIR + "/checkpoint.pt",
        args=get_training_args,
        code=code("train_predictor"),
    threads: STUDY.training["threads"]
    resources:
        gpu=STUDY.training["gpus"],
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/train_predictor.py"


rule evaluate_predictor:
    input:
        model=MODEL_DIR + "/model.pt",
    output:
        regret=out("predictor_regret"),
    log:
        LOGS + "/evaluate_predictor/{source}/{predictor}-{identity}.log",
    benchmark:
        BENCHMARKS + "/evaluate_predictor/{source}/{predictor}-{identity}.tsv",
    params:
        args=get_evaluation_args,
        code=code("evaluate_predictor"),
    threads: STUDY.training["threads"]
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/evaluate_predictor.py"


rule score_prompts:
    input:
        model=get_model,
    output:
        table=out("prompt_losses"),
    log:
        LOGS + "/score_prompts/{experiment}/{predictor}.log",
    benchmark:
        BENCHMARKS + "/score_prompts/{experiment}/{predictor}.tsv",
    params:
        args=get_scoring_args,
        code=code("score_prompts"),
    threads: STUDY.training["threads"]
    resources:
        gpu=STUDY.training["gpus"],
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/score_prompts.py"
