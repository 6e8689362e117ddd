# Figures per experiment: reliability, landscape, choices and efficiency, as SVG, PNG and HTML.


rule plot_figure:
    input:
        tables=get_figure_tables,
    output:
        svg=report(
            "results/{experiment}/figures/{figure}.svg",
            caption="../report/figure.rst",
            category="{experiment}",
            subcategory="{figure}",
            # Columns of the report's results table; "config": the config file(s) of the run.
            labels={
                "experiment": "{experiment}",
                "figure": "{figure}",
                "config": ", ".join(map(str, workflow.configfiles)),
            },
        ),
        png="results/{experiment}/figures/{figure}.png",
        html="results/{experiment}/figures/{figure}.html",
    log:
        "logs/plot_figure/{experiment}/{figure}.log",
    params:
        args=get_figure_args,
        code=code("plot_figure"),
    conda:
        "../envs/promptscape.yaml"
    script:
        "../../scripts/plot_figure.py"
