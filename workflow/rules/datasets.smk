# Task datasets D_N of every task and N per (experiment, seed block), the pools of the
# pooled dataset-selection methods likewise, and one evaluation set per task.


rule simulate_tasks:
    output:
        data=out("task_data"),
    log:
        logged("simulate_tasks/{experiment}/seeds{first}-{last}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_dataset_args,
        code=code("simulate_tasks"),
        identity=input_stamps,
    script:
        "../../scripts/simulate_tasks.py"


rule simulate_pool:
    output:
        data=out("selection_pool"),
    log:
        logged("simulate_pool/{experiment}/seeds{first}-{last}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_pool_args,
        code=code("simulate_pool"),
        identity=input_stamps,
    script:
        "../../scripts/simulate_pool.py"


rule simulate_evaluation:
    output:
        data=out("evaluation_set"),
    log:
        logged("simulate_evaluation/{experiment}/{task}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=lambda w: job_args(
            w,
            "experiment",
            "task_name",
            "task",
            "task_length",
            "size",
            size=get_experiment(w).evaluation_size,
        ),
        code=code("simulate_evaluation"),
        identity=input_stamps,
    script:
        "../../scripts/simulate_evaluation.py"
