"""The `dlmsim` command line: one entry point, one subcommand module per pipeline stage.

Exit codes: 0 ok, 1 bad input (one line naming the problem, no traceback), 2 usage.
Each subcommand lives in its own module here and registers itself on `app` when imported.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys

from dlmsim.cli.common import app, err, fail
from dlmsim.errors import InputError, reason

# Every module of this package other than `common` defines subcommands on `app`.
for _m in pkgutil.iter_modules(__path__):
    if _m.name != "common":
        importlib.import_module(f"{__name__}.{_m.name}")


def _one_line_errors(fn):
    """Bad input inside a command: one line and exit code 1, also for in-process runners.

    Besides InputError: an OSError is always about the user's files or machine (a path that
    cannot be read or written, a full disk), and running out of memory is a size the user
    chose; both are one line too, in words, never a traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            fail(str(e))
        except OSError as e:
            fail(reason(e))
        except MemoryError:
            fail("out of memory: the sizes asked for need more memory than this machine has")

    return wrapper


for _cmd in app.registered_commands:
    _cmd.callback = _one_line_errors(_cmd.callback)

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: bad input becomes one line on stderr and exit code 1."""
    try:
        app()
    except InputError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(1)
    except OSError as e:
        err.print(f"error: {reason(e)}", markup=False, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)

