"""Ctrl-C under `interrupts.deferred()`: raised at once only in our own code (see the module)."""

from __future__ import annotations

import signal

import pytest

from dlmsim.explore.interrupts import deferred


@pytest.fixture(autouse=True)
def python_handler():
    """Python's own SIGINT handler, even where pytest started with SIGINT ignored (a
    background job of a non-interactive shell)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)  # its handler runs before the next line


def test_kept_outside_interruptible_raised_at_check():
    with pytest.raises(KeyboardInterrupt), deferred() as intr:
        ctrl_c()  # as if inside a storage commit: nothing happens here
        reached = True
        intr.check()
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_raised_at_once_inside_interruptible_and_then_spent():
    with deferred() as intr:
        with pytest.raises(KeyboardInterrupt), intr.interruptible():
            ctrl_c()
            pytest.fail("not interrupted")
        intr.check()  # the one Ctrl-C was delivered: nothing left to raise
        assert not intr.pending


def test_swallowed_inside_interruptible_is_raised_later():
    with deferred() as intr:
        with intr.interruptible():
            try:  # what a weakref callback does with an exception: prints it and goes on
                ctrl_c()
            except KeyboardInterrupt:
                pass
        with pytest.raises(KeyboardInterrupt):
            intr.check()


def test_kept_one_raised_when_the_block_ends():
    with pytest.raises(KeyboardInterrupt), deferred():
        ctrl_c()


def test_an_ignored_sigint_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred() as intr, intr.interruptible():
            ctrl_c()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
