# Figures per experiment, as SVG, PNG and HTML: those of promptscape.pipeline.stages.figures.FIGURES
# that apply to the experiment; each entry says what it reads and its report caption.


rule plot_figure:
    input:
        tables=get_figure_tables,
    output:
        svg=report(
            results("{experiment}/figures/{figure}.svg"),
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
        png=results("{experiment}/figures/{figure}.png"),
        html=results("{experiment}/figures/{figure}.html"),
    log:
        logged("plot_figure/{experiment}/{figure}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_figure_args,
        entry=get_figure_entry,
        code=code("plot_figure"),
        identity=input_stamps,
    script:
        "../../scripts/plot_figure.py"


# Figures of the whole study, across experiments (promptscape.pipeline.stages.figures.STUDY_FIGURES).
rule plot_study_figure:
    input:
        tables=get_study_figure_tables,
    output:
        svg=report(
            results("figures/{figure}.svg"),
            caption="../report/study_figure.rst",
            category="study",
            subcategory="{figure}",
            labels={
                "experiment": "all",
                "figure": "{figure}",
                "config": ", ".join(map(str, workflow.configfiles)),
            },
        ),
        png=results("figures/{figure}.png"),
        html=results("figures/{figure}.html"),
    log:
        logged("plot_study_figure/{figure}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=lambda w: dict(
            figure=w.figure,
            experiments=list(EXPERIMENTS),
            style={**STUDY.figures, "predictor_colors": STUDY.predictor_colors()},
        ),
        entry=lambda w: STUDY_FIGURES[w.figure],
        # The config files that draw the figure, which its subtitle names: a param derived
        # from the input, so Snakemake does not compare it (another file with the same
        # settings redraws nothing).
        configfiles=lambda w, input: CONFIGFILES,
        code=code("plot_study_figure"),
        identity=input_stamps,
    script:
        "../../scripts/plot_study_figure.py"
