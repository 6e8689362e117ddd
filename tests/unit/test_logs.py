"""`logs.Progress`: long loops report progress, short ones stay quiet."""

from __future__ import annotations

import logging

from promptscape import logs


def test_progress_is_silent_for_a_loop_shorter_than_its_interval(caplog):
    caplog.set_level(logging.INFO)
    progress = logs.Progress(logging.getLogger("promptscape.test"), 3, "items", every=3600)
    for done in range(1, 4):
        progress.update(done)
    assert caplog.records == []


def test_progress_reports_each_interval_and_the_end(caplog):
    caplog.set_level(logging.INFO)
    progress = logs.Progress(logging.getLogger("promptscape.test"), 3, "items", every=0)
    for done in range(1, 4):
        progress.update(done)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[-1].startswith("items 3/3 (100%, ")

