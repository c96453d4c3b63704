"""Ctrl-C that stops a search or sweep at once, but never inside a storage call.

Python raises KeyboardInterrupt wherever the main thread happens to be. In a storage call
that is Optuna's or SQLAlchemy's code, which cannot take it: inside a commit of Optuna's
`tell` it ends in Optuna's own `AssertionError` (a traceback, exit 1, 1 run in 40), and in
3 runs in 40 it was lost, the search going on for its full count of trials, with nothing in
its log (where exactly was not found; a KeyboardInterrupt raised in a callback Python
cannot propagate from, such as a weakref callback of SQLAlchemy's connection pool, is
dropped so). Under `deferred()` a Ctrl-C is raised at once only inside `interruptible()`
blocks, which hold our own computation (the simulation of a point, which is where the time
goes); anywhere else it is kept and raised at the next `check()`, at the next
`interruptible()`, or when `deferred()` ends. One raised in an `interruptible()` block that
something swallows anyway is kept too.

Where SIGINT does not have Python's default handler (ignored, as in a background job, or
replaced by the caller) or off the main thread, `deferred()` changes nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupts:
    """A Ctrl-C kept for later (`pending`) unless it came inside an `interruptible()` block."""

    def __init__(self) -> None:
        self.pending = False
        self._armed = 0

    def _handler(self, signum, frame) -> None:
        self.pending = True  # kept even when raised: the raise may be swallowed
        if self._armed:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise the kept Ctrl-C, if there is one."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Our own code, which a KeyboardInterrupt may leave at any point."""
        self.check()
        self._armed += 1
        try:
            yield
        except KeyboardInterrupt:
            self.pending = False  # delivered; one the block swallowed stays for check()
            raise
        finally:
            self._armed -= 1


@contextmanager
def deferred() -> Iterator[Interrupts]:
    """Install the deferring SIGINT handler for the block (see the module's docstring)."""
    intr = Interrupts()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield intr  # nothing installed: Ctrl-C does what it did
        return
    signal.signal(signal.SIGINT, intr._handler)
    try:
        yield intr
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    intr.check()
