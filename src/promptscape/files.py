"""Writing files so that a crash never leaves a partial file under the final name.

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
