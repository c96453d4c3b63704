"""One-line reasons from library exceptions: no class names, no errno tags."""

from __future__ import annotations

from dlmsim.errors import reason


def test_reason_drops_what_libraries_put_in_front():
    class OperationalError(Exception):
        pass

    e = OperationalError("(sqlite3.OperationalError) unable to open database file\n"
                         "(Background on this error at: https://sqlalche.me/e/20/e3q8)")
    assert reason(e) == "unable to open database file"
    assert reason(OSError(13, "Permission denied", "/x/y")) == "Permission denied: /x/y"
    assert reason(OSError("[Errno 5] Input/output error")) == "Input/output error"
    assert reason(TimeoutError()) == "timeout error"
    assert reason(ValueError("x" * 500)) == "x" * 200
