"""Small file helpers of the broker launcher: atomic writes and the tail of a log."""

from __future__ import annotations

import os
from pathlib import Path


def last_lines(text: str, count: int) -> str:
    """The last ``count`` lines of ``text``.

    >>> last_lines("a\\nb\\nc\\n", 2)
    'b\\nc'
    """
    return "\n".join(text.rstrip().splitlines()[-count:])


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a reader never sees half a config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
