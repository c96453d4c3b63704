"""Properties of the checkout itself: it must work from any directory on any machine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Absolute paths that only exist on some developer's machine: home directories, the build
# machines' work trees and virtual environments, pyenv installs.
MACHINE_PATH = re.compile(r"""(?<![\w.~$-])/(?:home|Users|root|work|tmp/bash_jobs)/[\w.-]+""")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:  # not a git checkout (e.g. an sdist): scan the source tree
        names = [str(p.relative_to(ROOT)) for d in ("dlmsim", "tests", "benchmarks")
                 for p in (ROOT / d).rglob("*.py")]
    else:
        names = out.stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt", ".json", "run")
    return [ROOT / n for n in names if n.endswith(keep) and (ROOT / n).is_file()]


def test_no_file_holds_an_absolute_path_of_a_developer_machine():
    hits = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue  # this file spells such paths out to test the pattern
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "machine-specific absolute paths:\n" + "\n".join(hits)


def test_the_pattern_catches_what_broke_ci():
    """The path that made a fresh checkout fail, and ones that must stay allowed."""
    # Built from parts, so this file holds no machine path of its own.
    assert MACHINE_PATH.search('DLMSIM = Path("' + "/".join(["", "work", "venv", "bin",
                                                             "dlmsim"]) + '")')
    assert MACHINE_PATH.search("see " + "/".join(["", "home", "alice", "dlmsim", "arch"]))
    assert not MACHINE_PATH.search("python -m venv .venv && .venv/bin/pip install -e .")
    assert not MACHINE_PATH.search("~/.cache/dlmsim-allo")
    assert not MACHINE_PATH.search("path = ROOT / 'work' / 'x'")
