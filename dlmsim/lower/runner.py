"""Run a lowered program's driver with an Allo interpreter and collect what it produced."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from dlmsim.errors import InputError

STEPS = ("llvm", "vhls", "csyn")


def steps_for(run: str) -> list[str]:
    """--run: none, all (llvm, vhls, csyn), or a comma list of steps, run in that order."""
    if run == "none":
        return []
    if run == "all":
        return list(STEPS)
    steps = [s.strip() for s in run.split(",")]
    bad = [s for s in steps if s not in STEPS]
    if bad or not steps:
        raise InputError(f"unknown --run step '{bad[0] if bad else run}'; known: none, all, "
                         f"or a comma list of {', '.join(STEPS)}")
    return [s for s in STEPS if s in steps]


def check_python(python: str) -> None:
    """The interpreter exists and can import allo (one line naming the problem otherwise)."""
    try:
        r = subprocess.run([python, "-c", "import allo, sys; print(sys.version.split()[0])"],
                           capture_output=True, text=True, timeout=300, check=False)
    except FileNotFoundError:
        raise InputError(f"--allo-python {python}: no such interpreter") from None
    except OSError as e:
        raise InputError(f"--allo-python {python}: {e.strerror or e}") from None
    if r.returncode != 0:
        raise InputError(f"--allo-python {python}: cannot import allo ({last_error(r.stderr)})"
                         "; Allo needs Python >= 3.12 and an MLIR build")


def last_error(text: str) -> str:
    """The line that says what failed: the driver's own `error:` line, else an MLIR or LLVM
    `error:` / assertion line, else the last exception line. Never LLVM's crash banner
    ("PLEASE submit a bug report ...") or a stack frame."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pick in (lambda ln: ln.startswith("error:"),
                 lambda ln: "error:" in ln or "Assertion" in ln,
                 lambda ln: "Error" in ln.split(":")[0]):
        for ln in reversed(lines):
            if pick(ln) and "PLEASE submit" not in ln:
                return ln
    return lines[-1] if lines else "no output"


def run_driver(out_dir: str | Path, python: str, steps: list[str],
               timeout_s: float | None = None) -> list[dict]:
    """Run `python run.py STEP` in the lowered directory for each step, in turn.

    Returns one dict per step: step, ok, returncode, error (the failing line), result (the
    driver's results/<step>.json if written), log (the log file under logs/).
    Stops at the first failing step.
    """
    d = Path(out_dir)
    (d / "logs").mkdir(exist_ok=True)
    out = []
    for step in steps:
        try:
            r = subprocess.run([python, "run.py", step], cwd=d, capture_output=True, text=True,
                               timeout=timeout_s, check=False)
            code, so, se = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            code, so, se = -1, e.stdout or "", (e.stderr or "") + f"\nerror: timeout {timeout_s} s"
            so = so.decode() if isinstance(so, bytes) else so
            se = se.decode() if isinstance(se, bytes) else se
        log = d / "logs" / f"{step}.log"
        log.write_text(so + ("\n--- stderr ---\n" + se if se else ""))
        res_path = d / "results" / f"{step}.json"
        result = json.loads(res_path.read_text()) if res_path.is_file() else None
        ok = code == 0 and bool(result and result.get("ok"))
        row = {"step": step, "ok": ok, "returncode": code, "log": str(log), "result": result,
               "error": "" if ok else (result or {}).get("error") or last_error(se or so)}
        out.append(row)
        if not ok:
            break
    return out
