"""The one exception type the CLI turns into a single line and exit code 1."""

from __future__ import annotations

import re


class InputError(ValueError):
    """Bad user input: a config, a file, a value. The message names the problem."""


# What libraries put around their message: "(sqlite3.OperationalError) ...", "[Errno 2] ...".
_LIBRARY_TAGS = re.compile(r"^\s*(\([\w.]+(Error|Exception|Warning)\)|\[Errno \d+\])\s*")


def reason(e: BaseException) -> str:
    """An exception as a user reads it: its first line, without the class name or errno tag
    a library puts in front (`(sqlite3.OperationalError) unable to open database file` ->
    `unable to open database file`); an OSError's strerror and file name."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    text = _LIBRARY_TAGS.sub("", lines[0]) if lines else ""
    if not text:  # a bare exception: say what kind of failure, in words
        text = re.sub(r"(?<!^)(?=[A-Z])", " ", type(e).__name__).lower()
    return text[:200]
