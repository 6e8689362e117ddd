"""Summary tables that need no workflow run."""

import pandas as pd

from promptscape.report import summary


def test_the_regret_table_counts_the_steps_of_an_untrained_network_as_zero(monkeypatch):
    """An untrained network (`pretrained: false`) has an empty training curve: its row says
    0 training steps (the summary failed on the curve's NaN maximum)."""
    curves = {"trained": pd.DataFrame({"step": [0, 1, 2]}),
              "untrained": pd.DataFrame({"step": pd.Series([], dtype="int64")})}
    regret = pd.DataFrame({"regret": [0.01, 0.02]})
    monkeypatch.setattr(summary, "networks", lambda study: [
        ("bernmix", name, 0, {"predictor_regret": name, "training_curve": name})
        for name in curves])
    monkeypatch.setattr(summary, "_read", lambda study, path, artifact: (
        curves[path] if artifact == "training_curve" else regret))
    rows = summary.regret_table(None).splitlines()
    assert rows[2].endswith("| 3 |") and rows[3].endswith("| 0 |")
