"""Snakemake entry point of rule aggregate_prediction."""
from promptscape import logs
from promptscape.stages import prediction

logs.setup(snakemake.log[0])
prediction.aggregate_prediction(
    predictions=list(snakemake.input.predictions),
    reliability=snakemake.input.reliability,
    output=snakemake.output.prediction,
    expected=snakemake.params.expected,
)
