"""``python -m promptscape.sources``: every registered source kind as Markdown
(docs/sources.md), from the kinds' own docstrings and fields."""

from promptscape.sources.base import markdown

print(markdown(), end="")
