"""The artifact tables: schema enforcement, canonical row order, determinism, atomic writes
and the generated documentation."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promptscape.study import identity, tables

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = list(tables.ARTIFACTS)
ROWS = 24

_KEY_VALUES = {  # small value sets for sort-key columns (their product holds >= ROWS combos)
    pa.string(): ["", "0", "01", "1", "10", "bayes", "lstm"],
    pa.int64(): [*range(30), 100, 1000],  # 2 < 10 < 100: numeric, not string, order
    pa.float64(): [0.0, 0.5, 1.0],
    pa.bool_(): [False, True],
}


def valid_frame(artifact: str, seed: int = 0) -> pd.DataFrame:
    """ROWS rows of plausible values for every column, with a unique sort key per row."""
    spec = tables.ARTIFACTS[artifact]
    rng = np.random.default_rng(seed)
    types = dict((name, typ) for name, typ, *_ in spec.fields)
    # ROWS distinct sort keys, drawn as mixed-radix indices into the product of the value
    # sets (never materialised: a long sort key has billions of combinations).
    values = [_KEY_VALUES[types[k]] for k in spec.sort_key]
    sizes = [len(v) for v in values]
    assert math.prod(sizes) >= ROWS, artifact
    picks: list[int] = []
    while len(picks) < ROWS:
        pick = int(rng.integers(math.prod(sizes)))
        if pick not in picks:
            picks.append(pick)
    digits = np.unravel_index(picks, sizes)  # one index array per sort-key column
    frame = {}
    for name, typ, *_ in spec.fields:
        if name in spec.sort_key:
            column = spec.sort_key.index(name)
            frame[name] = [values[column][i] for i in digits[column]]
        elif typ == pa.string():
            frame[name] = [str(v) for v in rng.integers(0, 3, size=ROWS)]
        elif typ == pa.int64():
            frame[name] = rng.integers(0, 50, size=ROWS)
        elif typ == pa.float64():
            frame[name] = rng.normal(size=ROWS)
        elif typ == pa.bool_():
            frame[name] = rng.random(ROWS) < 0.5
        elif typ == pa.list_(pa.int64()):
            frame[name] = [list(v) for v in rng.integers(0, 5, size=(ROWS, 3))]
        elif typ == pa.list_(pa.float64()):
            frame[name] = [list(v) for v in rng.random(size=(ROWS, 3))]
        elif typ == pa.list_(pa.string()):
            frame[name] = [[str(x) for x in v] for v in rng.integers(0, 5, size=(ROWS, 2))]
        else:  # pragma: no cover - a new type needs a generator here
            raise AssertionError(f"no generator for {typ}")
    return pd.DataFrame(frame)


def _as_input(frame: pd.DataFrame, kind: str):
    if kind == "dataframe":
        return frame
    return {c: frame[c].tolist() for c in frame.columns}


INPUTS = ["dataframe", "dict"]


# ------------------------------------------------------------------ schema enforcement
def _first_non_key_column(artifact: str) -> str:
    """The last non-nullable column (nullable columns accept missing values)."""
    spec = tables.ARTIFACTS[artifact]
    return [field[0] for field in spec.fields if field[0] not in spec.nullable][-1]


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_write_with_a_missing_column_names_artifact_path_and_column(tmp_path, artifact, kind):
    column = _first_non_key_column(artifact)
    frame = valid_frame(artifact).drop(columns=column)
    path = tmp_path / "out" / "table.parquet"
    with pytest.raises(ValueError) as info:
        tables.write(_as_input(frame, kind), artifact, path)
    message = str(info.value)
    assert artifact in message and str(path) in message
    assert re.search(r"missing columns \[" + re.escape(repr(column)) + r"\]", message), message
    assert not path.exists()


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_write_with_an_extra_column_names_artifact_path_and_column(tmp_path, artifact, kind):
    frame = valid_frame(artifact).assign(surplus_column=1.0)
    path = tmp_path / "table.parquet"
    with pytest.raises(ValueError) as info:
        tables.write(_as_input(frame, kind), artifact, path)
    message = str(info.value)
    assert artifact in message and str(path) in message
    assert re.search(r"extra columns \['surplus_column'\]", message), message
    assert not path.exists()


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
@pytest.mark.parametrize("which", ["key", "last"])
def test_write_with_a_null_names_artifact_path_and_column(tmp_path, artifact, kind, which):
    spec = tables.ARTIFACTS[artifact]
    column = spec.sort_key[0] if which == "key" else _first_non_key_column(artifact)
    frame = valid_frame(artifact)
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = None
    path = tmp_path / "table.parquet"
    with pytest.raises(ValueError) as info:
        tables.write(_as_input(frame, kind), artifact, path)
    message = str(info.value)
    assert artifact in message and str(path) in message and repr(column) in message, message
    assert not path.exists()


NULLABLE_ARTIFACTS = [name for name, spec in tables.ARTIFACTS.items() if spec.nullable]


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("artifact", NULLABLE_ARTIFACTS)
def test_nullable_columns_accept_none_and_nan_as_null(tmp_path, artifact, kind):
    spec = tables.ARTIFACTS[artifact]
    frame = valid_frame(artifact)
    floats = {c for c in spec.nullable if pa.types.is_floating(spec.schema.field(c).type)}
    for column in spec.nullable:
        frame[column] = frame[column].astype(object)
        frame.loc[3, column] = None
        if column in floats:
            frame.loc[5, column] = float("nan")  # NaN means missing where nulls are allowed
    path = tmp_path / "table.parquet"
    tables.write(_as_input(frame, kind), artifact, path)
    table = pq.read_table(path)
    for column in spec.nullable:
        assert table.column(column).null_count == (2 if column in floats else 1), column


def test_a_nullable_sort_key_column_is_refused():
    with pytest.raises(ValueError, match="sort-key columns \\['a'\\] are nullable"):
        tables.Artifact("x", "x.parquet", "doc", (("a", pa.int64(), "a", tables.NULLABLE),),
                        ("a",))


def test_write_with_a_value_of_the_wrong_type_names_the_column(tmp_path):
    frame = _as_input(valid_frame("task_data"), "dict")
    frame["sequence"] = list(range(ROWS))
    path = tmp_path / "t.parquet"
    with pytest.raises(ValueError, match=r"task_data table for .*t\.parquet: column 'sequence'"):
        tables.write(frame, "task_data", path)
    assert not path.exists()


def test_write_with_columns_of_different_lengths_is_refused(tmp_path):
    frame = _as_input(valid_frame("task_data"), "dict")
    frame["index"] = frame["index"][:-1]
    with pytest.raises(ValueError, match="columns of different lengths"):
        tables.write(frame, "task_data", tmp_path / "t.parquet")


# ------------------------------------------------------------------ canonical, deterministic files
@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_rows_are_written_in_sort_key_order_whatever_the_input_order(tmp_path, artifact, kind):
    spec = tables.ARTIFACTS[artifact]
    frame = valid_frame(artifact)
    expected = frame.sort_values(list(spec.sort_key), kind="stable").reset_index(drop=True)
    written = []
    for i, order in enumerate([np.arange(ROWS), np.arange(ROWS)[::-1],
                               np.random.default_rng(1).permutation(ROWS)]):
        path = tmp_path / f"t{i}.parquet"
        tables.write(_as_input(frame.iloc[order].reset_index(drop=True), kind), artifact, path)
        back = tables.read(path, artifact, columns=spec.schema.names)  # on-request ones too
        for name, typ, *_ in spec.fields:  # list cells read back as arrays
            if pa.types.is_list(typ):
                back[name] = back[name].map(list)
        pd.testing.assert_frame_equal(back, expected, check_dtype=False, check_exact=True)
        written.append(path.read_bytes())
    assert written[0] == written[1] == written[2]


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_written_file_has_the_schema_and_no_pandas_metadata(tmp_path, artifact):
    spec = tables.ARTIFACTS[artifact]
    path = tmp_path / "t.parquet"
    tables.write(valid_frame(artifact), artifact, path)  # a DataFrame: pandas would add metadata
    schema = pq.read_schema(path)
    assert schema.metadata.keys() == {b"artifact", identity.CHECKSUM}  # no job, no stamp
    assert schema.metadata[b"artifact"] == artifact.encode()
    assert b"pandas" not in (schema.metadata or {})
    assert schema.names == [name for name, *_ in spec.fields]
    for field, (name, typ, desc, *_) in zip(schema, spec.fields):
        assert field.type == typ and field.nullable == (name in spec.nullable), name
        assert field.metadata == {b"description": desc.encode()}, name
    # The file's key-value metadata: the Arrow schema, the artifact name and the data
    # checksum, nothing else (no pandas index metadata, no timestamps).
    file_meta = pq.ParquetFile(path).metadata.metadata
    assert set(file_meta) == {b"ARROW:schema", b"artifact", identity.CHECKSUM}
    assert file_meta[b"artifact"] == artifact.encode()


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_writing_twice_gives_identical_bytes(tmp_path, artifact, kind):
    frame = valid_frame(artifact, seed=4)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    tables.write(_as_input(frame, kind), artifact, first)
    tables.write(_as_input(frame, kind), artifact, second)
    assert first.read_bytes() == second.read_bytes()
    tables.write(_as_input(frame, kind), artifact, first)  # replacing an existing file
    assert first.read_bytes() == second.read_bytes()


def test_scalar_columns_are_broadcast(tmp_path):
    path = tmp_path / "t.parquet"
    tables.write({"experiment": "e", "task": "coin", "N": 3, "seed": [2, 0, 1], "index": np.zeros(3, dtype=int),
                  "sequence": ["01", "10", "11"]}, "task_data", path)
    back = tables.read(path, "task_data")
    assert back["task"].tolist() == ["coin"] * 3 and back["N"].tolist() == [3] * 3
    assert back["seed"].tolist() == [0, 1, 2] and back["sequence"].tolist() == ["10", "11", "01"]


def test_read_refuses_a_file_of_another_artifact(tmp_path):
    path = tmp_path / "t.parquet"
    tables.write(valid_frame("task_data"), "task_data", path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" is not a search table"):
        tables.read(path, "search")
    with pytest.raises(ValueError, match="no search files to read"):
        tables.read([], "search")


# ------------------------------------------------------------------ docs
def test_docs_artifacts_md_is_in_sync_with_the_schemas():
    docs = ROOT / "docs" / "artifacts.md"
    assert docs.exists(), "run: python -m promptscape.study.tables > docs/artifacts.md"
    assert docs.read_text(encoding="utf-8") == tables.markdown(), (
        "docs/artifacts.md is stale; run: python -m promptscape.study.tables > docs/artifacts.md")


def test_markdown_documents_every_column_of_every_artifact():
    text = tables.markdown()
    for name, spec in tables.ARTIFACTS.items():
        assert f"## `{name}`" in text and f"`{{results_dir}}/{spec.path}`" in text
        for column, _, desc, *_ in spec.fields:
            assert f"| `{column}` |" in text and desc in text


# ------------------------------------------------------------------ atomic replace
def _failing_write_table(error):
    def write_table(table, where, *args, **kwargs):
        # Write the beginning of a Parquet file, as a crash midway would leave it.
        with open(where, "wb") as handle:
            handle.write(b"PAR1" + b"\0" * 100)
        raise error
    return write_table


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()],
                         ids=["OSError", "KeyboardInterrupt"])
def test_failed_write_leaves_the_previous_file_untouched_and_no_temp_file(
        tmp_path, monkeypatch, error):
    path = tmp_path / "t.parquet"
    tables.write(valid_frame("task_data", seed=1), "task_data", path)
    before = path.read_bytes()
    monkeypatch.setattr(pq, "write_table", _failing_write_table(error))
    with pytest.raises(type(error)):
        tables.write(valid_frame("task_data", seed=2), "task_data", path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]
    monkeypatch.undo()
    key = list(tables.ARTIFACTS["task_data"].sort_key)
    expected = valid_frame("task_data", seed=1).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(tables.read(path, "task_data"), expected, check_dtype=False)


def test_failed_first_write_leaves_nothing_under_the_artifact_name(tmp_path, monkeypatch):
    monkeypatch.setattr(pq, "write_table", _failing_write_table(OSError("disk full")))
    target = tmp_path / "sub" / "t.parquet"
    with pytest.raises(OSError, match="disk full"):
        tables.write(valid_frame("task_data"), "task_data", target)
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_written_files_are_readable_by_others_under_the_usual_umask(tmp_path):
    import os
    import stat

    from promptscape.study import tables as tables_lib

    old = os.umask(0o022)
    try:
        path = tmp_path / "eval.parquet"
        tables_lib.write({"experiment": "e", "task": "t", "index": [0, 1],
                          "sequence": ["01", "10"], "stratum": [0, 0],
                          "weight": [0.5, 0.5]},
                         "evaluation_set", path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ------------------------------------------------------------------ dimensions convention
@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_dimension_columns_lead_the_sort_key_and_path_wildcards_are_columns(artifact):
    spec = tables.ARTIFACTS[artifact]
    columns = [field[0] for field in spec.fields]
    assert spec.sort_key[:len(spec.dimensions)] == spec.dimensions
    for name in spec.dimensions:
        assert spec.fields[columns.index(name)] == tables.DIMENSIONS[name]
    for wildcard in spec.wildcards:
        assert wildcard in columns or tables.PATH_RANGES[wildcard] in columns


@pytest.mark.parametrize("fields, key, message", [
    ((tables.DIMENSIONS["task"], ("index", pa.int64(), "i")), ("index",),
     "must start with its dimension columns"),
    ((tables.DIMENSIONS["task"], ("index", pa.int64(), "i")), ("index", "task"),
     "must start with its dimension columns"),
    ((("task", pa.string(), "another description"),), ("task",), "must be DIMENSIONS"),
    ((tables.DIMENSIONS["task"],), ("task", "index"), "not columns"),
])
def test_artifact_declarations_breaking_the_convention_are_refused(fields, key, message):
    with pytest.raises(ValueError, match=message):
        tables.Artifact("bad", "{task}.parquet", "", fields, key)


def test_a_path_wildcard_must_be_a_column():
    with pytest.raises(ValueError, match=r"path wildcard \{experiment\}"):
        tables.Artifact("bad", "{experiment}/{task}.parquet", "", (tables.DIMENSIONS["task"],),
                        ("task",))


# ------------------------------------------------------------------ across machines
def _rows(**columns):
    return pd.DataFrame(columns)


def test_floats_that_differ_in_their_last_bits_agree_across_hosts():
    # The failure a host with other SIMD kernels gave: 3e-15 relative in a regret mean.
    a = _rows(task=["coin_0.5"], correct=[31], regret_mean=[0.23661623183816005])
    b = _rows(task=["coin_0.5"], correct=[31], regret_mean=[0.23661623183815927])
    assert a["regret_mean"][0] != b["regret_mean"][0]
    assert tables.differences(a, b) == []


def test_a_kl_near_zero_agrees_by_its_columns_scale_not_its_own():
    # A KL below resolution is a loss minus an entropy of a few nats: its last-bit noise is
    # relative to that size, not to its own.
    a, b = _rows(kl=[6.2e-13, 2.5]), _rows(kl=[6.2e-13 + 4e-16, 2.5])
    assert tables.differences(a, b) == []
    assert not tables.floats_agree(6.2e-13, 6.2e-13 + 4e-16)


@pytest.mark.parametrize("column, left, right", [
    ("kl", [0.5, 1.0], [0.5, 1.0 + 1e-9]),  # a float beyond the tolerance
    ("prompt", ["11", "1"], ["11", "0"]),  # a decision
    ("rank", [0, 1], [0, 2]),
    ("chosen", [True, False], [False, False]),
    ("kl", [np.inf, 1.0], [1e300, 1.0]),  # infinity agrees only with itself
    ("losses", [np.array([0.1, 0.2]), np.array([0.1])], [np.array([0.1, 0.2]), np.array([0.2])]),
])
def test_any_other_difference_is_named_with_its_column_and_row(column, left, right):
    differ = tables.differences(_rows(**{column: left}), _rows(**{column: right}))
    assert len(differ) == 1 and differ[0].startswith(f"{column}: 1 values differ (first at row ")


def test_infinities_and_nans_agree_with_themselves():
    a = _rows(kl=[np.inf, np.nan, 1.0], losses=[np.array([np.inf, 1.0])] * 3)
    assert tables.differences(a, a.copy()) == []


def test_on_request_columns_are_read_only_when_asked_for(tmp_path):
    spec = tables.ARTIFACTS["landscape"]
    path = tmp_path / "l.parquet"
    tables.write(valid_frame("landscape"), "landscape", path)
    assert spec.on_request == ("kl_residuals",)
    assert list(tables.read(path, "landscape").columns) == [
        n for n in spec.schema.names if n not in spec.on_request]
    assert list(tables.read(path, "landscape", columns=spec.schema.names).columns) == list(
        spec.schema.names)
