# Figures per experiment, as SVG, PNG and HTML in its figures/ folder: those of
# promptscape.report.catalog.FIGURES that apply to the experiment, all drawn by one
# job (one start of Altair and vl-convert); each entry says what it reads and its report
# caption. The folder is the job's output; the report shows each figure in it (patterns) with
# its own caption, category and labels.


rule plot_figures:
    input:
        tables=get_figure_tables,
    output:
        figures=report(
            directory(results("{experiment}/figures")),
            patterns=["{figure}.svg"],
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
    log:
        logged("plot_figures/{experiment}.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=get_figure_args,
        entries=get_figure_entries,
        code=code("plot_figures"),
        identity=input_stamps,
    script:
        "../../scripts/plot_figures.py"


# Figures of the whole study, across experiments (promptscape.report.catalog.STUDY_FIGURES),
# in results_dir/figures/, all drawn by one job.
rule plot_study_figures:
    input:
        tables=get_study_figure_tables,
    output:
        figures=report(
            directory(results("figures")),
            patterns=["{figure}.svg"],
            caption="../report/study_figure.rst",
            category="study",
            subcategory="{figure}",
            labels={
                "experiment": "all",
                "figure": "{figure}",
                "config": ", ".join(map(str, workflow.configfiles)),
            },
        ),
    log:
        logged("plot_study_figures/study.log"),
    conda:
        "../envs/promptscape.yaml"
    params:
        args=dict(
            figures=list(STUDY_FIGURES),
            experiments=list(EXPERIMENTS),
            style={**STUDY.figures, "predictor_colors": STUDY.predictor_colors()},
        ),
        # Derived from the input, so Snakemake does not compare them: the entries, whose
        # captions workflow/report/study_figure.rst shows (editing a caption redraws
        # nothing), and the config files that draw the figures, which their subtitles name
        # (another file with the same settings redraws nothing).
        entries=lambda w, input: STUDY_FIGURES,
        configfiles=lambda w, input: CONFIGFILES,
        code=code("plot_study_figures"),
        identity=input_stamps,
    script:
        "../../scripts/plot_study_figures.py"
