"""What every artifact was built from, stored in the artifact, and checked by its readers.

Snakemake decides what to rerun from metadata it keeps beside the workflow
(``.snakemake/metadata``), keyed by path. A results folder that is copied, restored from a
backup, synced from a cluster or shared by a colleague arrives without that metadata, and
Snakemake then trusts its files by modification time alone: a config that changes a
source's parameter but keeps its name would read the old landscapes silently. So every
artifact carries its own identity.

The stamp
---------
A job's **stamp** is ``{"rule", "code", "args", "inputs"}``: the rule, the code identity of
what the job runs (`provenance`), the arguments the workflow passed it (its
``params.args``), with paths under results_dir written as ``{results_dir}/...`` so that a
folder keeps its identity when it moves, and for every file the job reads the `digest` of
the stamp that file must hold: a stamp covers everything upstream of it (a landscape's, the
network its prompt losses came from). `tables.write` stores the stamp of the running job in
every Parquet file's key-value metadata (key ``promptscape.identity``, canonical JSON), and a
checksum of every column (``promptscape.checksum``, `checksums`): the data, and so the rows,
stay bit-identical. A network's checkpoint (model.pt) is identified by the training curve
its job writes beside it, and by its folder name (`layout.model_dir`).

Who checks
----------
* **Snakemake, before any job runs**: while it builds the DAG, every job's existing
  Parquet outputs have their stored stamp (the footer alone) compared with the one the
  workflow would write now (workflow/rules/common.smk, ``check_outputs``); a stale one is
  rebuilt, or refused by ``--report``; a missing one is rebuilt.
* **Every job**, before it runs (`job`): the workflow computes, for each of the job's
  inputs, the stamp of the job that makes it (``input_stamps``) and passes them as a param
  derived from the input, which Snakemake leaves out of the params it compares. A stored
  stamp that differs is a `StaleArtifactError` naming the file, the first differing
  parameter and both values; a Parquet input without a stamp is one too.
* **Every reader** (`tables.read_table`): the columns it reads against their checksums
  (`verify`); an edited value, or a file pyarrow cannot read, is a `CorruptArtifactError`
  naming the file.
* **The summary** (`report.summary`) and so docs/results.md: each file it reads has a stamp
  whose config arguments (`ARGUMENTS`: the experiment's pretraining source, tasks, T, N, L_max,
  ...) equal the config's (`check_config`).

docs/caching.md ("Artifact identities") has the whole mechanism and what it costs.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
from collections.abc import Mapping

KEY = b"promptscape.identity"
CHECKSUM = b"promptscape.checksum"
RESULTS_DIR = "{results_dir}"

# The stamp `tables.write` stores: that of the running job (`job`, `stamping`), else none.
_CURRENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("stamp", default=None)


class StaleArtifactError(Exception):
    """An input was not built from what the workflow would build it from now."""


class CorruptArtifactError(StaleArtifactError):
    """An artifact that cannot be read (truncated or not Parquet), or whose data are not
    those its checksum was computed from (edited by hand)."""


def unreadable(path, error) -> CorruptArtifactError:
    """The named error of a Parquet file pyarrow cannot read."""
    return CorruptArtifactError(
        f"{path} is not a readable Parquet file ({error}): it is truncated or corrupt (an "
        "interrupted copy or job?). Delete it and run snakemake again, which rebuilds it")


# ------------------------------------------------------------------------ stamps
def canonical(value, results_dir: str | None = None):
    """`value` as plain JSON data: mappings with string keys, lists, str, int, float, bool,
    None; strings under `results_dir` rewritten as ``{results_dir}/...``. Anything else is a
    TypeError (an argument that cannot be stored cannot be checked)."""
    prefix = None if results_dir is None else os.path.normpath(results_dir) + os.sep
    return _canonical(value, prefix)


def _canonical(value, prefix):
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"argument key {key!r} is not a string")
            out[key] = _canonical(item, prefix)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, prefix) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        if prefix is not None and os.path.normpath(value).startswith(prefix):
            return f"{RESULTS_DIR}/{os.path.normpath(value)[len(prefix):]}"
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)  # JSON has no inf or nan
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        return _canonical(value.item(), prefix)
    raise TypeError(f"argument value {value!r} of type {type(value).__name__} cannot be "
                    "stored in an artifact's identity")


def stamp(rule: str, code: str, args, results_dir: str,
          inputs: Mapping[str, str] | None = None) -> dict:
    """The identity of a job of `rule` (see the module doc); `inputs` maps each stamped
    input file to the `digest` of the stamp it must hold, so a stamp covers everything
    upstream of the job (a landscape's covers the network its prompt losses came from)."""
    return {"rule": rule, "code": code, "args": canonical(args, results_dir),
            "inputs": {canonical(str(path), results_dir): value
                       for path, value in sorted((inputs or {}).items())}}


def digest(value: dict) -> str:
    """A short hash of a stamp (16 hex digits): what a downstream stamp records of it."""
    import hashlib

    return hashlib.sha256(encode(value)).hexdigest()[:16]


def encode(value: dict) -> bytes:
    """A stamp as canonical JSON bytes (sorted keys, no spaces): equal stamps, equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode()


@contextlib.contextmanager
def stamping(value: dict | None):
    """Within the block, `tables.write` stores `value` in every artifact it writes."""
    token = _CURRENT.set(value)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> dict | None:
    """The stamp of the running job (`stamping`), or None outside a job."""
    return _CURRENT.get()


def stored(path) -> dict | None:
    """The stamp stored in a Parquet file's metadata, or None where it has none. Reads the
    footer only."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise unreadable(path, error) from None
    raw = metadata.get(KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise StaleArtifactError(f"{path}: its identity metadata is not valid JSON") from None


# ------------------------------------------------------------------------ checks
def differences(old, new, where: str = "") -> list[tuple[str, object, object]]:
    """(parameter, old value, new value) of every leaf at which two stamps (or parts of
    them) differ; parameters written as dotted paths (``args.tasks.coin_0.5.theta``), list
    items as ``[i]``, a key only one side has as ``<absent>`` on the other."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            name = f"{where}.{key}" if where else key
            if key not in old:
                out.append((name, "<absent>", new[key]))
            elif key not in new:
                out.append((name, old[key], "<absent>"))
            else:
                out.extend(differences(old[key], new[key], name))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out.extend(differences(a, b, f"{where}[{i}]"))
        return out
    return [] if old == new and type(old) is type(new) else [(where or "(stamp)", old, new)]


def _describe(path, found: list[tuple[str, object, object]], rule: str) -> str:
    name, old, new = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    what = "code identity" if name == "code" else f"parameter {name}"
    return (f"{path} was built with {what} = {json.dumps(old)}, but the workflow would now "
            f"build it with {json.dumps(new)}{more}: it is stale (copied, restored or edited "
            f"results?). Delete it, or rerun its job with `snakemake --forcerun {rule}`")


def _stored_or_refused(path, fix: str) -> dict:
    """The stamp of `path`; a file without one is refused (`fix`: how to rebuild it)."""
    found = stored(path)
    if found is None:
        raise StaleArtifactError(
            f"{path} carries no identity (promptscape.identity metadata): it was not written "
            f"by a promptscape job, or was edited by hand. {fix}")
    return found


def check(path, expected: dict) -> None:
    """Raise `StaleArtifactError` unless `path` stores exactly the stamp `expected`."""
    rule = expected.get("rule", "?")
    found = _stored_or_refused(
        path, f"Delete it, or rerun its job with `snakemake --forcerun {rule}`")
    found_diff = differences(found, expected)
    if found_diff:
        raise StaleArtifactError(_describe(path, found_diff, rule))


def check_inputs(expected: Mapping[str, dict]) -> None:
    """`check` every (path, expected stamp) of a job's inputs."""
    for path, value in expected.items():
        check(path, value)


@contextlib.contextmanager
def job(snakemake):
    """A workflow job's script: set up its log, check every input's stamp against the one
    the workflow computed for it (``params.identity``), and stamp everything the block
    writes with the job's own (rule, ``params.code``, ``params.args``)."""
    from promptscape import logs

    logs.setup(snakemake.log[0])
    given = snakemake.params.identity
    check_inputs(given["inputs"])
    own = stamp(snakemake.rule, snakemake.params.code, snakemake.params.args,
                given["results_dir"],
                {path: digest(value) for path, value in given["inputs"].items()})
    with stamping(own):
        yield snakemake.params.args


# ------------------------------------------------------------------------ config check
def check_config(path, expected_args: Mapping[str, object], results_dir: str) -> None:
    """For a reader outside the workflow (the summary): `path` has a stamp, and every
    argument of `expected_args` that the stamp's args hold has the expected value."""
    found = _stored_or_refused(path, "Rebuild it with snakemake")
    args = found.get("args", {})
    expected = canonical(dict(expected_args), results_dir)
    shared = {k: v for k, v in expected.items() if k in args}
    found_diff = differences({k: args[k] for k in shared}, shared, "args")
    if found_diff:
        raise StaleArtifactError(_describe(path, found_diff, found.get("rule", "?")))


# ------------------------------------------------------------------------ data checksums
def checksums(table) -> dict[str, str]:
    """A checksum (16 hex digits) of each column of a pyarrow Table: of its values, nulls and
    type, independent of how the column is chunked or encoded (a dictionary-encoded column
    has the checksum of its values), so the table `tables.write` writes and the one a
    reader reads back from the file have the same."""
    import hashlib

    out = {}
    for name, column in zip(table.column_names, table.columns):
        h = hashlib.sha256()
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        _hash_array(h, array)
        out[name] = h.hexdigest()[:16]
    return out


def _hash_array(h, array) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    # A list's type names its item field, which Parquet renames ("item" -> "element").
    kind = "list" if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
        else str(array.type)
    h.update(f"{kind}|{len(array)}|".encode())
    h.update(np.packbits(array.is_null().to_numpy(zero_copy_only=False)).tobytes())
    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        lengths = pc.list_value_length(array).fill_null(0)
        h.update(np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64).tobytes())
        _hash_array(h, array.flatten())
    elif (pa.types.is_string(kind) or pa.types.is_large_string(kind)
          or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        binary = array.cast(pa.large_binary())
        offsets = np.frombuffer(binary.buffers()[1], dtype=np.int64)[
            binary.offset:binary.offset + len(binary) + 1]
        h.update(np.diff(offsets).tobytes())
        data = binary.buffers()[2]
        if data is not None and len(offsets):
            h.update(memoryview(data)[int(offsets[0]):int(offsets[-1])])
    elif pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        filled = array.fill_null(False if pa.types.is_boolean(kind) else 0)
        h.update(np.ascontiguousarray(filled.to_numpy(zero_copy_only=False)).tobytes())
    else:  # no artifact has other types today; slow but exact
        h.update(json.dumps(array.to_pylist(), default=str).encode())


def encode_checksums(table) -> bytes:
    """The checksum metadata `tables.write` stores (key ``promptscape.checksum``)."""
    return json.dumps(checksums(table), sort_keys=True, separators=(",", ":")).encode()


def verify(path, table) -> None:
    """Raise `CorruptArtifactError` unless every column of `table` (read from `path`, whose
    key-value metadata it carries) has the checksum stored with it. A file with a stamp but
    no checksum is refused; one with neither (written outside promptscape) is not checked
    here (the stamp checks refuse it where it must have one)."""
    metadata = table.schema.metadata or {}
    raw = metadata.get(CHECKSUM)
    if raw is None:
        if KEY in metadata:
            raise CorruptArtifactError(
                f"{path} has an identity stamp but no data checksum "
                f"({CHECKSUM.decode()} metadata): it was rewritten by hand. Delete it and "
                "run snakemake again, which rebuilds it")
        return
    try:
        expected = json.loads(raw)
    except ValueError:
        raise CorruptArtifactError(f"{path}: its checksum metadata is not valid JSON") from None
    found = checksums(table)
    bad = sorted(name for name, value in found.items() if expected.get(name) != value)
    if bad:
        raise CorruptArtifactError(
            f"{path}: the data of column(s) {', '.join(bad)} are not those the job that "
            "wrote it stored (its checksum differs): the file was edited after it was "
            "built. Delete it and run snakemake again, which rebuilds it")
