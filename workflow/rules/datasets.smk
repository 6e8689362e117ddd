# Task datasets D_N per (experiment, task, N, seed block), and one evaluation set per task.


rule simulate_tasks:
    output:
        data=out("task_data"),
    log:
        LOGS + "/simulate_tasks/{experiment}/{task}/N{N}/seeds{first}-{last}.log",
    params:
        args=lambda w: dict(
            experiment=w.experiment,
            task_name=w.task,
            task=get_task(w).source.to_dict(),
            task_length=get_experiment(w).task_length,
            N=int(w.N),
            first=int(w.first),
            last=int(w.last),
        ),
        code=code("simulate_tasks"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/simulate_tasks.py"


rule simulate_evaluation:
    output:
        data=out("evaluation_set"),
    log:
        LOGS + "/simulate_evaluation/{experiment}/{task}.log",
    params:
        args=lambda w: dict(
            experiment=w.experiment,
            task_name=w.task,
            task=get_task(w).source.to_dict(),
            task_length=get_experiment(w).task_length,
            size=get_experiment(w).evaluation_size,
        ),
        code=code("simulate_evaluation"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/simulate_evaluation.py"
