"""Artifact identities (issue 26 item 1): what a stamp holds, that `tables.write` stores it as
metadata only, and that every check names the file, the parameter and both values."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promptscape.study import arguments, identity, layout, tables
from promptscape.study import config as config_lib
from workflow_helpers import TINY, load_config, write_config


def frame():
    return pd.DataFrame({"predictor": "bayes", "replicate": 0, "source": "s",
                         "identity": "abcdef0123", "evaluated_on": "s", "step": [1, 0],
                         "loss": 0.7,
                         "bayes_loss": 0.69, "regret": 0.01})


def args(theta=0.5, root="results"):
    return {"task": {"kind": "coin", "theta": theta}, "max_prompt_length": 3,
            "landscapes": [f"{root}/e/landscape/bayes/r0/t.parquet"]}


def test_a_stamp_is_canonical_json_with_paths_relative_to_results_dir():
    a = identity.stamp("compute_landscape", "c0de", args(root="/data/x/results"),
                       "/data/x/results")
    b = identity.stamp("compute_landscape", "c0de", args(root="elsewhere/results"),
                       "elsewhere/results/")
    assert a == b and identity.encode(a) == identity.encode(b)
    assert a["args"]["landscapes"] == ["{results_dir}/e/landscape/bayes/r0/t.parquet"]
    assert json.loads(identity.encode(a)) == a


def test_an_argument_that_cannot_be_stored_is_an_error():
    with pytest.raises(TypeError, match="object"):
        identity.canonical({"x": object()})
    with pytest.raises(TypeError, match="key 1"):
        identity.canonical({1: "x"})


def test_tables_write_stores_the_running_jobs_stamp_as_metadata_only(tmp_path):
    plain, stamped = tmp_path / "plain.parquet", tmp_path / "stamped.parquet"
    tables.write(frame(), "training_curve", plain)
    value = identity.stamp("train_predictor", "c0de", args(), "results")
    with identity.stamping(value):
        tables.write(frame(), "training_curve", stamped)
    assert identity.current() is None  # only inside the block
    assert identity.stored(plain) is None and identity.stored(stamped) == value
    # The data are the same table, row for row.
    assert pq.read_table(plain).equals(pq.read_table(stamped))


def test_check_names_the_file_the_parameter_and_both_values(tmp_path):
    path = tmp_path / "landscape.parquet"
    with identity.stamping(identity.stamp("compute_landscape", "c0de", args(0.5), "results")):
        tables.write(frame(), "training_curve", path)
    identity.check(path, identity.stamp("compute_landscape", "c0de", args(0.5), "results"))
    with pytest.raises(identity.StaleArtifactError) as error:
        identity.check(path, identity.stamp("compute_landscape", "c0de", args(0.4), "results"))
    message = str(error.value)
    assert str(path) in message and "args.task.theta = 0.5" in message and "0.4" in message
    assert "--forcerun compute_landscape" in message
    with pytest.raises(identity.StaleArtifactError, match="code identity = \"c0de\""):
        identity.check(path, identity.stamp("compute_landscape", "beef", args(0.5), "results"))


def test_a_file_without_a_stamp_is_refused_as_written_by_hand(tmp_path):
    path = tmp_path / "edited.parquet"
    frame().to_parquet(path)  # as a hand edit with pandas writes it
    with pytest.raises(identity.StaleArtifactError, match="carries no identity.*by hand"):
        identity.check(path, identity.stamp("r", "c", {}, "results"))


def test_differences_walks_mappings_and_lists():
    old = {"a": {"b": [1, 2, 3]}, "c": 1, "gone": 0}
    new = {"a": {"b": [1, 5, 3]}, "c": 1.0, "new": 2}
    assert identity.differences(old, new) == [
        ("a.b[1]", 2, 5), ("c", 1, 1.0), ("gone", 0, "<absent>"), ("new", "<absent>", 2)]
    assert identity.differences({"a": [1]}, {"a": [1, 2]}) == [("a", [1], [1, 2])]


def test_wildcards_of_inverts_an_artifacts_pattern(tmp_path):
    study = config_lib.load_file(TINY)
    path = layout.pattern(study, "landscape").format(
        experiment="bernmix", predictor="bayes", replicate=0, task="coin_0.7")
    assert layout.wildcards_of(study, "landscape", path) == dict(
        experiment="bernmix", predictor="bayes", replicate="0", task="coin_0.7")
    with pytest.raises(ValueError, match="not a path of artifact landscape"):
        layout.wildcards_of(study, "landscape", "results/bernmix/aggregate/x.parquet")


def test_check_config_holds_stored_arguments_to_the_config(tmp_path):
    """The summary's check: a landscape built under coin_0.5 = coin(0.5) is stale once the
    config gives coin_0.5 theta 0.4 (the copied-folder case of issue 26)."""
    config = load_config()
    config["results_dir"] = str(tmp_path / "results")
    first = config_lib.load_file(write_config(tmp_path / "a.yaml", config))
    path = layout.per_task(first, first.experiments["bernmix"], "landscape")[-1]
    wildcards = layout.wildcards_of(first, "landscape", path)
    assert wildcards["task"] == "coin_0.5"
    built = arguments.config_arguments(first, wildcards)
    with identity.stamping(identity.stamp("compute_landscape", "c0de",
                                          dict(built, family="bayes"), first.results_dir)):
        tables.write(frame(), "training_curve", tmp_path / "x.parquet")
    identity.check_config(tmp_path / "x.parquet", built, first.results_dir)
    config["sources"]["coin_0.5"]["theta"] = 0.4
    second = config_lib.load_file(write_config(tmp_path / "b.yaml", config))
    with pytest.raises(identity.StaleArtifactError,
                       match=r"args.task.theta = 0.5.*now build it with 0.4"):
        identity.check_config(tmp_path / "x.parquet",
                              arguments.config_arguments(second, wildcards),
                              second.results_dir)


def test_config_arguments_are_the_ones_the_workflow_passes():
    """The config's arguments for a job's wildcards (the workflow's job_args reads them)."""
    study = config_lib.load_file(TINY)
    wildcards = dict(experiment="bernmix", predictor="bayes", replicate="0", task="coin_0.7")
    values = arguments.config_arguments(study, wildcards)
    assert values["task"] == {"kind": "coin", "theta": 0.7}
    assert values["replicate"] == 0 and values["family"] == "bayes"
    assert values["dataset_sizes"] == [1, 10]
    with pytest.raises(ValueError, match="replicates 0..0 in this config, not 3"):
        arguments.replicate(study, dict(wildcards, replicate="3"))


def test_every_job_script_checks_its_inputs_and_stamps_its_outputs():
    """A script that set up its log without `identity.job` would write unstamped artifacts,
    which every reader then refuses (analyse_edits did, before the merge that caught it)."""
    scripts = sorted((TINY.parents[3] / "scripts").glob("*.py"))
    assert len(scripts) >= 20
    for script in scripts:
        text = script.read_text()
        assert "with identity.job(snakemake)" in text and "logs.setup" not in text, script
    rules = "".join(p.read_text() for p in (TINY.parents[3] / "workflow" / "rules").glob("*.smk"))
    assert rules.count("script:") == rules.count("identity=input_stamps,") == len(scripts)


# ---------------------------------------------------------------- upstream and data
def test_a_stamp_holds_the_digest_of_every_upstream_stamp():
    network = identity.stamp("train_predictor", "c0de", {"hidden_size": 6}, "results")
    other = identity.stamp("train_predictor", "c0de", {"hidden_size": 8}, "results")
    curve = "results/models/m/lstm-0123456789/training_curve.parquet"
    a = identity.stamp("score_prompts", "c0de", args(), "results",
                       {curve: identity.digest(network)})
    b = identity.stamp("score_prompts", "c0de", args(), "results",
                       {curve: identity.digest(other)})
    # The scoring's own arguments are equal; the network it read is not.
    assert a["args"] == b["args"] and a != b
    (name, _, _), = identity.differences(a, b)
    assert name == "inputs.{results_dir}/models/m/lstm-0123456789/training_curve.parquet"
    assert identity.digest(a) == identity.digest(json.loads(identity.encode(a)))
    assert len(identity.digest(a)) == 16


def test_a_value_edited_with_its_metadata_kept_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "curve.parquet"
    with identity.stamping(identity.stamp("train_predictor", "c0de", args(), "results")):
        tables.write(frame(), "training_curve", path)
    table = pq.read_table(path)
    edited = table.set_column(table.column_names.index("loss"), "loss",
                              pa.array([0.7, 0.1]))
    assert edited.schema.metadata == table.schema.metadata  # stamp and checksum kept
    pq.write_table(edited, path)
    with pytest.raises(identity.CorruptArtifactError,
                       match=rf"{re.escape(str(path))}: the data of column\(s\) loss"):
        tables.read(path, "training_curve")
    # A column not edited still reads (a reader of some columns checks those).
    assert list(tables.read(path, "training_curve", columns=("step",))["step"]) == [0, 1]


def test_a_stamped_file_rewritten_without_its_checksum_is_refused(tmp_path):
    path = tmp_path / "curve.parquet"
    with identity.stamping(identity.stamp("train_predictor", "c0de", args(), "results")):
        tables.write(frame(), "training_curve", path)
    table = pq.read_table(path)
    metadata = {k: v for k, v in table.schema.metadata.items() if k != identity.CHECKSUM}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.raises(identity.CorruptArtifactError, match="no data checksum"):
        tables.read(path)


def test_checksums_do_not_depend_on_chunks_or_dictionary_encoding(tmp_path):
    path = tmp_path / "curve.parquet"
    tables.write(frame(), "training_curve", path)
    whole = pq.read_table(path)
    chunked = pa.concat_tables([whole.slice(0, 1), whole.slice(1)])
    encoded = pq.read_table(path, read_dictionary=["predictor", "source"])
    assert chunked.column("loss").num_chunks == 2
    assert identity.checksums(whole) == identity.checksums(chunked) \
        == identity.checksums(encoded)
    stored_value = json.loads(whole.schema.metadata[identity.CHECKSUM])
    assert stored_value == identity.checksums(whole)
    changed = whole.set_column(0, "predictor", pa.array(["bayes", "bayez"]))
    assert identity.checksums(changed)["predictor"] != stored_value["predictor"]


def test_a_truncated_file_is_a_named_error_for_every_reader(tmp_path):
    path = tmp_path / "curve.parquet"
    tables.write(frame(), "training_curve", path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for read in (lambda: tables.read(path, "training_curve"), lambda: tables.read(path),
                 lambda: identity.stored(path), lambda: tables.artifact_of(path)):
        with pytest.raises(identity.CorruptArtifactError,
                           match=rf"{re.escape(str(path))} is not a readable Parquet file"):
            read()
