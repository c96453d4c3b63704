"""Every bundled preset x MDLM-small / Diffusion-LM E2E / LLaDA-8B at several commits:
latency and DRAM traffic per forward pass, and which stage moved each figure.

    python benchmarks/presets_table.py                       # before (750516a) vs this checkout
    python benchmarks/presets_table.py --stage before=750516a --stage p1=<commit> ... \
        --stage after=HEAD -o table.md

Each stage is a commit (or `.` for this working tree, the default last stage). A commit is
exported with `git archive` into a scratch directory and measured by a child interpreter
with that tree first on PYTHONPATH (so its own dlmsim, arch/ and workloads/ are used); the
child prints JSON. The workloads run at their bundled run parameters. A preset that was
renamed is matched through RENAMED; a design that cannot run (e.g. weights that do not fit
the board's DRAM) shows the reason in place of the figures. "moved by" lists the stages
whose figure differs from the previous stage's by more than TOLERANCE.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

WORKLOADS = ("mdlm-small", "diffusion-lm-e2e", "llada-8b")
RENAMED = {"sda-w4a8-zcu102": "sda-style-2048-zcu102"}  # old name -> name today
TOLERANCE = 0.01
REPO = Path(__file__).resolve().parent.parent


def measure() -> dict:
    """{preset: {workload: {forward_s, forward_dram_bytes} or {error}}} of the dlmsim on
    sys.path (run in the child)."""
    import dlmsim
    from dlmsim.config import bundled_names

    out: dict = {}
    for name in bundled_names("arch"):
        arch = dlmsim.load_arch(name)
        row = out.setdefault(RENAMED.get(name, name), {})
        for wl in WORKLOADS:
            try:
                r = dlmsim.simulate(arch, dlmsim.load_workload(wl))
                row[wl] = {"forward_s": r.forward_s, "forward_dram_bytes": r.forward.dram_bytes}
            except dlmsim.InputError as e:
                row[wl] = {"error": str(e)}
    return out


def _export(commit: str, dest: Path) -> Path:
    """The tree of `commit` unpacked under `dest` (no worktree, no branch touched)."""
    dest.mkdir(parents=True)
    with tempfile.TemporaryFile() as f:
        subprocess.run(["git", "-C", str(REPO), "archive", commit], stdout=f, check=True)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(dest, filter="data")
    return dest


def run_stage(commit: str, scratch: Path) -> dict:
    root = REPO if commit == "." else _export(commit, scratch / commit.replace("/", "_"))
    env = {**os.environ, "PYTHONPATH": str(root), "DLMSIM_HOME": str(root)}
    done = subprocess.run([sys.executable, __file__, "--measure"], env=env, check=True,
                          capture_output=True, text=True, cwd=root)
    return json.loads(done.stdout)


def _fmt(cell: dict | None, key: str, notes: list[str]) -> str:
    if cell is None:
        return "-"
    if "error" in cell:
        reason = cell["error"].split(": ", 1)[-1]
        if reason not in notes:
            notes.append(reason)
        return f"infeasible [{notes.index(reason) + 1}]"
    v = cell[key]
    if key == "forward_s":
        return f"{v:.4g} s" if v >= 1 else f"{v * 1e3:.4g} ms"
    return f"{v / 2**30:.4g} GiB" if v >= 2**30 else f"{v / 2**20:.4g} MiB"


def table(stages: list[tuple[str, dict]]) -> str:
    labels = [s for s, _ in stages]
    head = ["preset", "workload"]
    for key in ("latency / forward", "DRAM / forward"):
        head += [f"{key} {label}" for label in labels] + [f"{key} moved by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    presets = sorted({p for _, d in stages for p in d})
    notes: list[str] = []
    for p in presets:
        for wl in WORKLOADS:
            cells = [d.get(p, {}).get(wl) for _, d in stages]
            row = [p, wl]
            for key in ("forward_s", "forward_dram_bytes"):
                row += [_fmt(c, key, notes) for c in cells]
                row.append(", ".join(labels[i] for i in range(1, len(cells))
                                     if _moved(cells[i - 1], cells[i], key)) or "-")
            lines.append("| " + " | ".join(row) + " |")
    lines += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def _moved(a: dict | None, b: dict | None, key: str) -> bool:
    if a is None or b is None:
        return False
    if ("error" in a) != ("error" in b):
        return True
    if "error" in a:
        return False
    return abs(b[key] - a[key]) > TOLERANCE * max(abs(a[key]), 1e-30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", action="append", default=[],
                    help="LABEL=COMMIT (COMMIT '.' = this working tree); in order")
    ap.add_argument("-o", "--output", type=Path, help="write the Markdown table here")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure()))
        return
    specs = a.stage or ["before=750516a", "after=."]
    stages = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(specs):
            label, _, commit = spec.partition("=")
            print(f"[{i + 1}/{len(specs)}] measuring {label} ({commit or label})",
                  file=sys.stderr)
            stages.append((label, run_stage(commit or label, Path(tmp))))
    text = table(stages)
    if a.output:
        tmp_out = a.output.with_suffix(a.output.suffix + ".tmp")
        tmp_out.write_text(text)
        tmp_out.replace(a.output)
    print(text, end="")


if __name__ == "__main__":
    main()
