"""Writing files so that a crash never leaves a partial file under the final name, and the
folder of promptscape's own caches (`cache_dir`).

Every artifact (`tables.write`) and every checkpoint goes through `atomic_write`: the content is
written to a hidden temporary file in the target's folder, given the mode a plain ``open()``
would give it, and renamed over the target in one step (`os.replace`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable


def default_mode() -> int:
    """The mode a plain ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Call ``write(tmp)`` on a temporary path beside `path`, then move it onto `path`.

    On any failure the temporary file is removed and the target is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=suffix)
    os.close(handle)
    os.chmod(tmp, default_mode())  # mkstemp's 0600 would hide results from collaborators
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def cache_dir() -> str | None:
    """The folder of promptscape's caches of pure functions of installed code (code
    identities, vl-convert's script bundle): ``$PROMPTSCAPE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/promptscape``, else ``~/.cache/promptscape``; None when
    ``PROMPTSCAPE_CACHE_DIR`` is set to the empty string (the caches are off). Nothing in
    it is a result: deleting it only costs time."""
    chosen = os.environ.get("PROMPTSCAPE_CACHE_DIR")
    if chosen is not None:
        return chosen or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "promptscape")
