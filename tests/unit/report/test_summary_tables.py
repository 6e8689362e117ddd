"""Summary tables that need no workflow run."""

import pandas as pd

from promptscape.report import summary


def test_the_regret_table_counts_the_steps_of_an_untrained_network_as_zero(monkeypatch):
    """An untrained network (`pretrained: false`) has an empty training curve: its row says
    0 training steps (the summary failed on the curve's NaN maximum)."""
    def curve(steps, on=("bernmix",)):
        return pd.DataFrame({"step": [s for _ in on for s in range(steps)],
                             "source": "bernmix", "evaluated_on": [o for o in on
                                                                   for _ in range(steps)]})

    # A post-trained network has rows on its post-training source and on bernmix: its steps
    # are counted once.
    curves = {"trained": curve(3), "untrained": curve(0), "tuned": curve(2, ("coin", "bernmix"))}
    regret = pd.DataFrame({"regret": [0.01, 0.02]})
    monkeypatch.setattr(summary, "networks", lambda study: [
        ("bernmix", name, 0, {"predictor_regret": name, "training_curve": name})
        for name in curves])
    monkeypatch.setattr(summary, "_read", lambda study, path, artifact: (
        curves[path] if artifact == "training_curve" else regret))
    rows = summary.regret_table(None).splitlines()
    assert rows[2].endswith("| 3 |") and rows[3].endswith("| 0 |")
    assert rows[4].endswith("| 2 |")


def test_prior_lines_count_the_queries_to_the_first_close_fit():
    """The fewest queries at which the family of least held-out error lies within W1 0.01
    of the truth, the selected fit, and the tasks whose optimal class differs from Bayes's."""
    from types import SimpleNamespace

    exp = SimpleNamespace(predictors=["bayes", "lstm"],
                          tasks=[SimpleNamespace(name="a"), SimpleNamespace(name="b")])
    rows = []
    for predictor, w1s in (("bayes", (0.2, 0.0, 0.0)), ("lstm", (0.3, 0.05, 0.008))):
        for d, (w1, queries) in enumerate(zip(w1s, (3, 6, 10)), start=1):
            for family, error, distance in (("mixture", 0.01, w1), ("dirichlet", 0.02, 0.001)):
                rows.append({"predictor": predictor, "replicate": 0, "probe_length": d,
                             "family": family, "queries": queries, "components": 2,
                             "heldout_error": error, "w1": distance, "w1_resolution": 0.0,
                             "selected": d == 3 and family == "mixture"})
    # On task a the network keeps one of Bayes's tied optima (no difference); on b its
    # optimum is not Bayes's.
    land = pd.DataFrame({"predictor": ["bayes", "bayes", "bayes", "lstm", "lstm"],
                         "task": ["a", "a", "b", "a", "b"], "prompt": ["01", "10", "0", "10", "00"],
                         "optimal": [True] * 5})
    lines = summary.prior_lines(exp, pd.DataFrame(rows), land)
    assert lines[4] == "| bayes | 6 | mixture | 2 | 1.00e-02 | 0 |  |"
    assert lines[5] == "| lstm | 10 | mixture | 2 | 1.00e-02 | 0.008 | b |"
