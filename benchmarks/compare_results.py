"""Compare two results folders artifact by artifact: byte for byte where a file lies at the
same path in both, and row for row after reading where an artifact's files are laid out
differently (every file of the artifact, concatenated and sorted by its sort key).

    python benchmarks/compare_results.py BEFORE/results AFTER/results [--across-hosts]

Exits non-zero when any artifact's rows differ. Used to check that a change of job layout
changed no data. Where the artifact's schema gained columns since BEFORE was written (its
files there lack some of today's columns, and have none today's lacks), the rows are
compared on BEFORE's columns and the new columns are named. With `--across-hosts` (two runs on different machines, where SIMD kernels
round differently), rows agree when every non-float value is equal and every float is equal
within `tables.ACROSS_HOSTS_RTOL` (`tables.differences`; docs/caching.md, "Reproducibility
across machines"); the byte-identical count is printed all the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from promptscape.study import tables


def by_artifact(root: Path) -> dict[str, list[Path]]:
    """Every Parquet file under `root` by the artifact its schema metadata names."""
    out: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.parquet")):
        if "benchmarks" in path.relative_to(root).parts:
            continue
        meta = pq.read_schema(path).metadata or {}
        name = meta.get(b"artifact", b"?").decode()
        out.setdefault(name, []).append(path)
    return out


def rows(paths: list[Path], artifact: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The artifact's rows in its sort order: checked against today's schema, or, with
    `columns` (an older layout), read as they are and restricted to those columns."""
    if columns is None:
        frame = tables.read([str(p) for p in paths], artifact)
    else:
        frame = pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)
        frame = frame[columns]
    key = list(tables.ARTIFACTS[artifact].sort_key)
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


def older_columns(paths: list[Path], artifact: str) -> tuple[list[str] | None, list[str]]:
    """(BEFORE's columns, the columns added since) where `paths` hold a strict subset of
    today's columns; (None, []) where they hold today's."""
    names = pq.read_schema(paths[0]).names
    today = list(tables.ARTIFACTS[artifact].schema.names)
    if names == today or not set(names) < set(today):
        return None, []
    skip = tables.ARTIFACTS[artifact].on_request  # what tables.read leaves out
    return [c for c in names if c not in skip], [c for c in today if c not in names]


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    across_hosts = "--across-hosts" in args
    a, b = map(Path, [x for x in args if x != "--across-hosts"][:2])
    left, right = by_artifact(a), by_artifact(b)
    failed = 0
    for artifact in sorted(set(left) | set(right)):
        if artifact not in left or artifact not in right:
            print(f"{artifact}: only in {a if artifact in left else b}")
            failed += 1
            continue
        same_paths = {p.relative_to(a) for p in left[artifact]} & {
            p.relative_to(b) for p in right[artifact]}
        identical = sum((a / p).read_bytes() == (b / p).read_bytes() for p in same_paths)
        old, added = older_columns(left[artifact], artifact)
        x, y = rows(left[artifact], artifact, old), rows(right[artifact], artifact, old)
        if across_hosts:
            differ = tables.differences(x, y)
            equal = not differ
            verdict = "agree" if equal else "DIFFER: " + "; ".join(differ)
        else:
            equal = x.shape == y.shape and x.equals(y)
            verdict = "equal" if equal else "DIFFER"
        failed += not equal
        print(f"{artifact}: {len(left[artifact])} -> {len(right[artifact])} files, "
              f"{identical}/{len(same_paths)} at the same path byte-identical; {len(x)} rows "
              f"{verdict}" + (f" (on the earlier columns; new: {', '.join(added)})"
                              if added else ""))
    print("all artifacts equal row for row" if not failed else f"{failed} artifacts differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
