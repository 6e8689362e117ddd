# Neural predictors: training per (pretraining source, family), evaluation against the
# exact Bayes predictor, and the table of prompt losses per (experiment, family).


rule train_predictor:
    output:
        model="results/models/{source}/{predictor}/model.pt",
        curve="results/models/{source}/{predictor}/training_curve.parquet",
    log:
        "logs/train_predictor/{source}/{predictor}.log",
    params:
        # Not an output: it survives an interrupted run, which the next run resumes from.
        checkpoint="results/models/{source}/{predictor}/checkpoint.pt",
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
        model="results/models/{source}/{predictor}/model.pt",
    output:
        regret="results/models/{source}/{predictor}/regret.parquet",
    log:
        "logs/evaluate_predictor/{source}/{predictor}.log",
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
        table="results/{experiment}/prompt_losses/{predictor}.parquet",
    log:
        "logs/score_prompts/{experiment}/{predictor}.log",
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
