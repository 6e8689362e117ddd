"""promptscape: prompts on binary sequence predictors, as a reproducible pipeline."""

__version__ = "0.1.0"
