"""The CLI against a generated corpus of bad and edge inputs: seeded mutations of every
bundled file (arch/, arch/devices/, workloads/, sweeps/, the HLS report fixtures, a
manifest, trace files, a `simulate -o` directory) and of CLI flags and --set values.

Every case runs `dlmsim` in-process and must end one of two ways:
- exit 1 with exactly one stderr line `error: ...` (sweep and calibrate may print status
  lines, progress and warnings before it, never a second error line);
- exit 0 with a sane result: every number it prints as JSON finite and non-negative
  (percent errors may be negative), every figure it writes a non-empty file.
Flag cases may also end in exit 2, a usage error (typer refusing the flag's value). Anything else fails the test naming the
case: another exit code, an exception escaping the command, a traceback in the output, or
a case running longer than CASE_S seconds (a timer interrupts it: slowness is a failure,
not a timing assertion).

Mutations: type swaps, bools, inf/NaN, huge and tiny numbers, negatives, zeros, empty
values, deleted and unknown keys, deep nesting, larger/smaller valid sizes, binary
garbage and truncation. The corpus is deterministic: each case draws from a Random
seeded with its own name. The module prints the corpus size and outcome counts.
"""

from __future__ import annotations

import collections
import json
import math
import random
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dlmsim.arch import load_device
from dlmsim.cli import app
from dlmsim.config import bundled_dir

ROOT = Path(__file__).resolve().parent.parent
HLS = Path(__file__).parent / "fixtures" / "hls"
CASE_S = 10.0  # per case, on a busy machine; a healthy case takes well under a second
SMALL = ["-b", "1", "-l", "32", "-t", "4"]  # mdlm-tiny at a size that simulates in ~0.1 s
OUTCOMES: collections.Counter = collections.Counter()


class CaseTimeout(BaseException):
    """Raised by the timer; BaseException so no handler in the CLI can swallow it."""


# ---- mutations -------------------------------------------------------------------------
def _nodes(tree, path=()):
    """Every (path, value) of a YAML/JSON tree, containers included (depth first)."""
    yield path, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else ()
    for k, v in items:
        yield from _nodes(v, (*path, k))


def _set(tree, path, value):
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _bigger(v):
    return v * 1000 if isinstance(v, int | float) and not isinstance(v, bool) else v


def _smaller(v):
    return v // 1000 if isinstance(v, int) and not isinstance(v, bool) else \
        v / 1000 if isinstance(v, float) else v


VALUES = {
    "type-text": lambda v: "text",
    "type-number": lambda v: 7,
    "type-list": lambda v: [v, v],
    "type-map": lambda v: {"x": v},
    "true": lambda v: True,
    "false": lambda v: False,
    "inf": lambda v: math.inf,
    "-inf": lambda v: -math.inf,
    "nan": lambda v: math.nan,
    "huge": lambda v: 10**100,
    "2^63": lambda v: 2**63,
    "2^31": lambda v: 2**31,
    "1e300": lambda v: 1e300,
    "denormal": lambda v: 1e-310,
    "negative": lambda v: -1,
    "negative-of": lambda v: -v if isinstance(v, int | float) and not isinstance(v, bool)
    else -3,
    "zero": lambda v: 0,
    "empty-text": lambda v: "",
    "empty-list": lambda v: [],
    "empty-map": lambda v: {},
    "null": lambda v: None,
    "deep": lambda v: json.loads("[" * 200 + "1" + "]" * 200),
    "bigger": _bigger,
    "smaller": _smaller,
}
TREE_OPS = [*VALUES, "delete", "unknown-key"]


def mutate_tree(tree, rng: random.Random, op: str):
    """A copy of `tree` with one node changed by `op`; (new tree, description)."""
    t = json.loads(json.dumps(tree))  # a deep copy (the bundled trees are plain JSON)
    nodes = [(p, v) for p, v in _nodes(t) if p]
    if op == "unknown-key":
        maps = [p for p, v in [((), t), *nodes] if isinstance(v, dict)]
        p = rng.choice(maps)
        node = t
        for k in p:
            node = node[k]
        node["zz_unknown"] = 1
        return t, f"unknown key under {'.'.join(map(str, p)) or 'top'}"
    path, value = rng.choice(nodes)
    where = ".".join(map(str, path))
    if op == "delete":
        parent = t
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
        return t, f"delete {where}"
    _set(t, path, VALUES[op](value))
    return t, f"{where} -> {op}"


def mutate_bytes(data: bytes, rng: random.Random, op: str) -> tuple[bytes, str]:
    if op == "truncate":
        n = rng.randrange(len(data))
        return data[:n], f"truncated at byte {n}"
    if op == "binary":
        n = rng.randrange(len(data))
        junk = bytes(rng.randrange(256) for _ in range(16)) + b"\xff\xfe\x00"
        return data[:n] + junk + data[n:], f"binary bytes at {n}"
    return bytes(rng.randrange(256) for _ in range(200)), "all garbage"


BYTE_OPS = ["truncate", "binary", "garbage"]

# Text mutations of report-like files (XML, .rpt, CSV): numbers and structure.
NUMBER_SWAPS = ["0", "-1", "9" * 5000, "1e309", "²", "١٢", "nan", "", "3.5", "99999999999"]
_NUMBER = re.compile(r"(?<![\w.])\d+(\.\d+)?(?![\w.])")


def mutate_text(text: str, rng: random.Random, op: str) -> tuple[str, str]:
    if op == "number":
        spots = list(_NUMBER.finditer(text))
        m = rng.choice(spots)
        new = rng.choice(NUMBER_SWAPS)
        return text[:m.start()] + new + text[m.end():], f"{m.group()} -> {new[:12]}"
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if op == "drop-line":
        return "".join(lines[:i] + lines[i + 1:]), f"line {i + 1} dropped"
    if op == "repeat-line":
        return "".join(lines[:i] + [lines[i]] * 50 + lines[i + 1:]), f"line {i + 1} x50"
    if op == "deep":  # nested elements (XML) / brackets deep inside the file
        k = text.find(">", text.find("<profile")) + 1 if "<profile" in text else len(text) // 2
        return text[:k] + "<a>" * 5000 + "</a>" * 5000 + text[k:], "5000 nested elements"
    raise AssertionError(op)


TEXT_OPS = ["number"] * 5 + ["drop-line", "repeat-line", "deep"]


def pick(rng, ops):
    return rng.choice(ops)


# ---- running a case --------------------------------------------------------------------
def _numbers(x, key=""):
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return
    if isinstance(x, int | float):
        yield key, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, str(k))
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v, key)


def sane_json(out: str) -> str | None:
    """Why printed JSON is not a sane result (None when it is)."""
    try:
        data = json.loads(out)
    except json.JSONDecodeError as e:
        return f"exit 0 but stdout is not JSON ({e.msg})"
    for k, v in _numbers(data):
        signed = k.endswith("_pct") or k.startswith("run_")  # errors; the trace's own params
        if not math.isfinite(v) or (v < 0 and not signed):
            return f"exit 0 with {k} = {v}"
    return None


def run_case(case_id: str, args: list[str], check=None, usage_ok: bool = False,
             status_lines: bool = False) -> str | None:
    """Run one case; None if it ended well, else what went wrong."""
    def alarm(*_):
        raise CaseTimeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_S)
    try:
        r = CliRunner().invoke(app, args, catch_exceptions=True)
    except CaseTimeout:
        OUTCOMES["other"] += 1
        return f"{case_id}: took longer than {CASE_S:g} s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    code, out, err = r.exit_code, r.stdout, r.stderr
    OUTCOMES[f"exit {code}" if code in (0, 1, 2) else "other"] += 1
    if isinstance(r.exception, CaseTimeout):
        return f"{case_id}: took longer than {CASE_S:g} s"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return f"{case_id}: {type(r.exception).__name__}: {str(r.exception)[:200]}"
    if "Traceback" in out + err:
        return f"{case_id}: a traceback in the output"
    if code == 1:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error: ")]
        if not lines or len(errors) != 1 or lines[-1] != errors[0] or (
                len(lines) > 1 and not status_lines):
            return f"{case_id}: exit 1 without exactly one error line: {err[-300:]!r}"
        if len(errors[0]) < 12:
            return f"{case_id}: the error line names nothing: {errors[0]!r}"
        return None
    if code == 2 and usage_ok:
        return None
    if code != 0:
        return f"{case_id}: exit {code}: {(out + err)[-300:]!r}"
    return check(out) if check else None


def assert_all_ok(problems: list[str | None]) -> None:
    bad = [p for p in problems if p]
    assert not bad, f"{len(bad)} of {len(problems)} cases failed:\n" + "\n".join(bad[:30])


@pytest.fixture(scope="module", autouse=True)
def _tally():
    import optuna  # noqa: F401

    import dlmsim.plots  # noqa: F401  (first imports are not a case's time)

    OUTCOMES.clear()
    yield
    total = sum(OUTCOMES.values())
    print(f"\nfuzz corpus: {total} cases; " + ", ".join(
        f"{k}: {OUTCOMES[k]}" for k in ("exit 0", "exit 1", "exit 2", "other")))


def _yaml(tree) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(tree, Dumper=dumper, sort_keys=False, width=1000)


def _cases(name: str, n: int):
    """n deterministic Randoms for the cases of `name`."""
    return [(f"{name}#{i}", random.Random(f"{name}#{i}")) for i in range(n)]


def _file_mutants(path: Path, tmp: Path, n: int, dump=_yaml, load=None):
    """(case id, mutated file) for n tree or byte mutations of a YAML/JSON file."""
    raw = path.read_bytes()
    tree = (load or yaml.safe_load)(raw.decode())
    for cid, rng in _cases(path.name, n):
        op = pick(rng, TREE_OPS * 3 + BYTE_OPS)
        if op in BYTE_OPS:
            data, what = mutate_bytes(raw, rng, op)
        else:
            t, what = mutate_tree(tree, rng, op)
            data = dump(t).encode()
        f = tmp / cid.replace("#", "_")
        f = f.with_suffix(path.suffix)
        f.write_bytes(data)
        yield f"{cid} ({what})", f


# ---- configs ---------------------------------------------------------------------------
ARCHS = sorted((ROOT / "arch").glob("*.yaml"))
WORKLOADS = sorted((ROOT / "workloads").glob("*.yaml"))
DEVICES = sorted((ROOT / "arch" / "devices").glob("*.yaml"))
SPECS = sorted((ROOT / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_arch_mutants(path, tmp_path):
    assert_all_ok([run_case(cid, ["simulate", "-a", str(f), "-w", "mdlm-tiny", *SMALL,
                                  "-f", "json"], sane_json)
                   for cid, f in _file_mutants(path, tmp_path, 30)])


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.stem)
def test_workload_mutants(path, tmp_path):
    """The model as written (its own run sizes), on a design that fits any of them."""
    assert_all_ok([run_case(cid, ["simulate", "-a", "int8-u280", "-w", str(f), "-f", "json"],
                            sane_json) for cid, f in _file_mutants(path, tmp_path, 24)])


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.stem)
def test_workload_mutants_traced(path, tmp_path):
    (tmp_path / "t").mkdir()
    assert_all_ok([run_case(cid, ["trace", str(f), "-f", "json"], sane_json)
                   for cid, f in _file_mutants(path, tmp_path / "t", 8)])


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A DLMSIM_HOME copy of the bundled configs whose devices a case may replace."""
    h = tmp_path / "home"
    shutil.copytree(bundled_dir("arch"), h / "arch")
    shutil.copytree(bundled_dir("workloads"), h / "workloads")
    monkeypatch.setenv("DLMSIM_HOME", str(h))
    load_device.cache_clear()
    yield h
    load_device.cache_clear()


@pytest.mark.parametrize("path", DEVICES, ids=lambda p: p.stem)
def test_device_mutants(path, tmp_path, home):
    """A small design (8x8, 64 KiB buffer) on the mutated device, simulated anyway."""
    arch = yaml.safe_load((ROOT / "arch" / "int8-zcu102.yaml").read_text())
    arch.pop("memory", None)
    arch.update(name="fuzz", device=path.stem, allow_overfull=True,
                array={"rows": 8, "cols": 8, "dataflows": ["os", "ws"], "policy": "auto"},
                buffer={"kib": 64, "banks": 4, "bytes_per_cycle": 32, "memory": "auto"})
    a = tmp_path / "fuzz.yaml"
    a.write_text(_yaml(arch))
    target = home / "arch" / "devices" / path.name
    problems = []
    for cid, f in _file_mutants(path, tmp_path, 14):
        shutil.copy(f, target)
        load_device.cache_clear()
        problems.append(run_case(cid, ["simulate", "-a", str(a), "-w", "mdlm-tiny", *SMALL,
                                       "-f", "json"], sane_json))
    assert_all_ok(problems)


def _fast_spec(path: Path) -> dict:
    """The bundled spec at a size a test can sweep: each workload mdlm-tiny (B1 L32 T4)
    under its label, the first parameter cut to two settings and the others to one (the
    structure of each kept)."""
    s = yaml.safe_load(path.read_text())
    s["workloads"] = [{"name": "mdlm-tiny", "batch": 1, "seq_len": 32, "steps": 4,
                       "label": (w.get("label") or w["name"]) if isinstance(w, dict) else w}
                      for w in s["workloads"]]
    for i, (k, p) in enumerate(s["parameters"].items()):
        n = 2 if i == 0 else 1
        if isinstance(p, list):
            s["parameters"][k] = p[:n]
        elif p.get("log"):
            p.update(high=p["low"] * n)
            p.pop("num", None)
        elif p.get("num"):
            p["num"] = n
        else:
            p["high"] = p["low"] + (n - 1) * (p.get("step") or 1)
    return s


def _accuracy_stand_in(workload, w_bits, a_bits, *a, **k) -> dict:
    """The accuracy proxy's keys at plausible values (its numerics, seconds per setting,
    are test_quant's; here the spec around the metric is what is mutated)."""
    loss = 1 / (w_bits * a_bits)
    return {"top1": 1 - loss, "kl": loss, "output_sqnr_db": 6.0 * w_bits,
            "block_sqnr_db": 6.0 * w_bits, "output_cosine": 1 - loss,
            "block_cosine": 1 - loss}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_mutants(path, tmp_path, monkeypatch):
    import dlmsim.quant
    from dlmsim.explore.evaluate import _accuracy

    monkeypatch.setattr(dlmsim.quant, "accuracy_proxy", _accuracy_stand_in)
    _accuracy.cache_clear()
    src = tmp_path / path.name
    src.write_text(_yaml(_fast_spec(path)))
    assert run_case("fast spec", ["sweep", str(src), "-o", str(tmp_path / "base"),
                                  "--no-plots"], status_lines=True) is None
    problems = []
    for cid, f in _file_mutants(src, tmp_path, 16):
        problems.append(run_case(cid, ["sweep", str(f), "-o", str(tmp_path / f.stem),
                                       "--no-plots"], status_lines=True))
    _accuracy.cache_clear()
    assert_all_ok(problems)


# ---- traces ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trace_files(tmp_path_factory):
    """Trace files as `dlmsim trace -o` writes them: MDLM and LLaDA blocks, small."""
    d = tmp_path_factory.mktemp("traces")
    out = []
    for name, args in (("mdlm-tiny", SMALL), ("llada-8b", ["--set", "model.layers=2",
                                                          "--set", "model.hidden=256",
                                                          "--set", "model.heads=4",
                                                          "--set", "model.ffn=512",
                                                          "--set", "model.vocab=1000"])):
        f = d / f"{name}.trace.yaml"
        r = CliRunner().invoke(app, ["trace", name, *args, "-o", str(f)])
        assert r.exit_code == 0, r.output
        out.append(f)
    return out


def test_trace_file_mutants(trace_files, tmp_path):
    problems = []
    for path in trace_files:
        for cid, f in _file_mutants(path, tmp_path, 30):
            problems.append(run_case(cid, ["simulate", "-a", "int8-zcu102", "-w", str(f),
                                           "-f", "json"], sane_json))
    assert_all_ok(problems)


# ---- HLS reports, manifests ------------------------------------------------------------
REPORTS = sorted(p for p in HLS.iterdir() if p.suffix in (".xml", ".rpt"))


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_hls_report_mutants(path, tmp_path):
    raw = path.read_bytes()
    problems = []
    for cid, rng in _cases(path.name, 14):
        op = pick(rng, TEXT_OPS * 2 + BYTE_OPS)
        if op in BYTE_OPS:
            data, what = mutate_bytes(raw, rng, op)
        else:
            text, what = mutate_text(raw.decode(), rng, op)
            data = text.encode()
        f = tmp_path / f"{cid.replace('#', '_')}{path.suffix}"
        f.write_bytes(data)
        problems.append(run_case(f"{cid} ({what})", ["hls-report", str(f), "-f", "json"],
                                 sane_json))
    assert_all_ok(problems)


HLS4ML = HLS / "hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.xml"
MANIFEST = {"manifest_version": 1,
            "arch": {"name": "fuzz", "design_hash": "abc", "source": ""},
            "workload": {"name": "mdlm-tiny"}, "program": {"top": "myproject"},
            "hls": {"part": "xc7z020clg400-1", "device": "zcu102", "clock_mhz": 200.0},
            "numerics": {}, "prediction": {"cycles": 1000.0, "clock_mhz": 200.0,
                                           "resources": {"dsp": 100.0, "bram36": 50.0,
                                                         "uram": 0.0, "lut": 1000.0,
                                                         "ff": 2000.0}}}


def test_manifest_mutants(tmp_path):
    src = tmp_path / "manifest.json"
    src.write_text(json.dumps(MANIFEST))
    problems = [run_case("valid manifest", ["calibrate", str(HLS4ML), "-m", str(src),
                                            "--dry-run", "-f", "json"],
                         lambda out: sane_json(out.split("factors")[0]), status_lines=True)]
    for cid, f in _file_mutants(src, tmp_path, 40, dump=json.dumps, load=json.loads):
        problems.append(run_case(cid, ["calibrate", str(HLS4ML), "-m", str(f), "--dry-run",
                                       "-f", "json"],
                                 lambda out: sane_json(out.split("factors")[0]),
                                 status_lines=True))
    assert_all_ok(problems)


# ---- a `simulate -o` directory -----------------------------------------------------------
@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "run"
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", *SMALL,
                                 "-o", str(d), "-f", "json"])
    assert r.exit_code == 0, r.output
    return d


def _figure(path: Path):
    return lambda out: None if path.is_file() and path.stat().st_size > 0 else \
        f"exit 0 but {path} was not written"


def test_plot_directory_mutants(sim_dir, tmp_path):
    """Mutated summary.json, ops.csv and timeline.csv under `dlmsim plot`."""
    problems = []
    files = {"summary.json": ("roofline", "tree"), "ops.csv": ("breakdown", "text"),
             "timeline.csv": ("timeline", "text")}
    for name, (kind, how) in files.items():
        raw = (sim_dir / name).read_bytes()
        for cid, rng in _cases(name, 5):
            d = tmp_path / cid.replace("#", "_")
            shutil.copytree(sim_dir, d)
            op = pick(rng, (TREE_OPS if how == "tree" else TEXT_OPS) + BYTE_OPS)
            if op in BYTE_OPS:
                data, what = mutate_bytes(raw, rng, op)
            elif how == "tree":
                t, what = mutate_tree(json.loads(raw), rng, op)
                data = json.dumps(t).encode()
            else:
                text, what = mutate_text(raw.decode(), rng, op)
                data = text.encode()
            (d / name).write_bytes(data)
            fig = d / "fig.png"
            problems.append(run_case(f"{cid} ({what})", ["plot", kind, str(d), "-o", str(fig)],
                                     _figure(fig)))
    assert_all_ok(problems)


# ---- CLI flags and --set values ---------------------------------------------------------
FLAG_VALUES = ["0", "-1", "1.5", "abc", "", "true", "1e3", "99999999999999999999", ".inf",
               ".nan", "[1, 2]", "{a: 1}", "null", "-0", "1e-310"]


def _arch_keys() -> list[str]:
    tree = yaml.safe_load((ROOT / "arch" / "int8-zcu102.yaml").read_text())
    keys = [".".join(map(str, p)) for p, v in _nodes(tree) if p and not isinstance(v, dict)
            and not isinstance(p[-1], int)]
    return keys + ["calibration.cycles", "calibration.clock_mhz", "allow_overfull",
                   "sfu.passes.softmax", "memory.peak_gbps"]


def test_set_values(tmp_path):
    """Every arch key of a preset under --set with every kind of bad value."""
    problems = []
    for key in _arch_keys():
        for cid, rng in _cases(f"--set {key}", 3):
            v = rng.choice(FLAG_VALUES)
            problems.append(run_case(f"{cid} ({v!r})", [
                "simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", *SMALL, "-f", "json",
                "--set", f"{key}={v}"], sane_json, usage_ok=True))
    assert_all_ok(problems)


def test_workload_set_and_run_flags(tmp_path):
    problems = []
    model = yaml.safe_load((ROOT / "workloads" / "mdlm-tiny.yaml").read_text())
    keys = [f"{s}.{k}" for s in ("model", "run") for k in model[s]]
    for key in keys:
        for cid, rng in _cases(f"--workload-set {key}", 2):
            v = rng.choice(FLAG_VALUES)
            problems.append(run_case(f"{cid} ({v!r})", [
                "simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", "-f", "json",
                "--workload-set", f"{key}={v}"], sane_json, usage_ok=True))
    for flag in ("--batch", "--seq-len", "--steps", "--top"):
        for v in FLAG_VALUES:
            problems.append(run_case(f"{flag} {v!r}", [
                "simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", *SMALL, flag, v],
                None, usage_ok=True))
    for flag in ("--gpu-efficiency", "--gpu-measured-s", "--gpu-precision", "--baseline"):
        for v in FLAG_VALUES + ["a100", "bf16"]:
            base = [] if flag == "--baseline" else ["--baseline", "a100"]
            problems.append(run_case(f"{flag} {v!r}", [
                "simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", *SMALL, "-f", "json",
                *base, flag, v], sane_json, usage_ok=True))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag, v in (("-o", str(blocker)), ("-o", "/proc/fuzz"), ("--timeline", "/proc/t.png"),
                    ("--timeline", str(blocker / "t.png")), ("--format", "xml"),
                    ("--set", "no_equals"), ("--set", "=1"), ("--workload-set", "zz=1"),
                    ("--set", "array.rows.x=1"), ("-a", str(blocker)), ("-w", str(tmp_path))):
        args = ["simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", *SMALL, flag, v]
        problems.append(run_case(f"{flag} {v}", args, None, usage_ok=True))
    assert_all_ok(problems)


def test_explore_report_and_plot_flags(tmp_path, sim_dir):
    """Flags of sweep, search, plot, hls-report and calibrate around valid inputs."""
    spec = tmp_path / "fast.yaml"
    spec.write_text(_yaml(_fast_spec(ROOT / "sweeps" / "zcu102-mdlm-shape-bits.yaml")))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = str(tmp_path / "sweep")
    fig = tmp_path / "f.png"
    cases = [
        (["sweep", str(spec), "-o", out, "-j", "0"]), (["sweep", str(spec), "-o", out,
                                                        "-f", "xlsx"]),
        (["sweep", str(spec), "-o", str(blocker), "--no-plots"]),
        (["sweep", str(spec), "-o", out, "--no-plots"]),
        (["search", str(spec), "-o", out, "--trials", "0"]),
        (["search", str(spec), "-o", out, "--workers", "0"]),
        (["search", str(spec), "-o", out, "--storage", "bogus://x"]),
        (["search", str(spec), "-o", out, "--sampler", "annealing"]),
        (["search", str(spec), "-o", out, "--seed", "-1"]),
        (["search", str(spec), "-o", out, "--seed", str(2**33)]),
        (["search", str(spec), "-o", out, "--storage", "sqlite://"]),
        (["plot", "pareto", out, "--x", "nope"]), (["plot", "pareto", out, "--y", "reason"]),
        (["plot", "pareto", out, "--color", "nope"]), (["plot", "sweep", out, "--y", "point"]),
        (["plot", "pareto", out, "-o", str(tmp_path / "f.jpg")]),
        (["plot", "pareto", out, "-o", str(blocker / "f.png")]),
        (["plot", "roofline", out]), (["plot", "breakdown", str(tmp_path / "nowhere")]),
        (["plot", "gantt", str(sim_dir)]), (["plot", "timeline", str(blocker)]),
        (["hls-report", str(tmp_path)]), (["hls-report", str(HLS4ML), "-f", "csv"]),
        (["hls-report", str(tmp_path / "none.xml")]), (["hls-report", str(blocker)]),
        (["calibrate", str(HLS4ML), "--dry-run"]), (["calibrate", str(tmp_path / "none.xml")]),
        (["calibrate", str(HLS4ML), "-m", str(blocker)]),
        (["calibrate", str(HLS4ML), "-m", str(tmp_path)]),
        (["trace", "mdlm-tiny", "-o", str(blocker / "t.yaml")]),
        (["trace", "mdlm-tiny", "--precision", "fp8"]), (["trace", str(blocker)]),
    ]
    problems = [run_case(" ".join(a), a, None, usage_ok=True, status_lines=True)
                for a in cases]
    problems.append(run_case("plot pareto -o", ["plot", "pareto", out, "-o", str(fig)],
                             _figure(fig)))
    assert_all_ok(problems)


def test_quant_flags():
    """A few precision and size flags of `dlmsim quant` (each run executes a model)."""
    base = ["quant", "mdlm-tiny", "--depth", "1", "--seq-len", "16", "--vocab", "64"]
    problems = [run_case(f"quant {' '.join(extra)}", [*base, *extra], None, usage_ok=True)
                for extra in (["--w-bits", "3"], ["--a-bits", "0"], ["--acc-bits", "-8"],
                              ["--sfu-bits", "999"], ["--vocab", "1"], ["--batch", "0"],
                              ["--seq-len", "99999999999"], ["--depth", "0"],
                              ["--checkpoint", str(HLS4ML)], ["--w-bits", "4", "-f", "json"])]
    assert_all_ok(problems)


def test_the_harness_catches_failures(monkeypatch):
    """The checks above can fail: an escaping exception, a hang, two error lines, an
    infinite figure are each reported."""
    import time

    import dlmsim

    monkeypatch.setattr(sys.modules[__name__], "OUTCOMES", collections.Counter())  # untallied
    args = ["simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", *SMALL, "-f", "json"]
    monkeypatch.setattr(dlmsim, "simulate", lambda *a, **k: {}["missing"])
    assert "KeyError" in run_case("keyerror", args, sane_json)
    monkeypatch.setattr(dlmsim, "simulate", lambda *a, **k: time.sleep(30))
    monkeypatch.setattr(sys.modules[__name__], "CASE_S", 0.3)
    assert "took longer than 0.3 s" in run_case("hang", args, sane_json)
    assert "exit 0 with x = inf" in sane_json('{"x": Infinity}')
    assert "exit 0 with y = -1" in sane_json('{"a": {"y": -1}}')
    assert sane_json('{"run_t": -1, "error_pct": -3}') is None
