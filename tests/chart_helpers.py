"""Reading Altair chart specs in the figure tests."""


def layers(spec):
    """Every layer of a chart's spec (nested layers, facets and concatenations walked)."""
    found = []
    if "mark" in spec:
        found.append(spec)
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            found += layers(child)
    if "spec" in spec:
        found += layers(spec["spec"])
    return found
