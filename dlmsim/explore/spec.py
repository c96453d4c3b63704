"""Sweep and search specs (`sweeps/*.yaml`): what to vary, what to optimise, what must hold.

A spec names a base arch, one or more workloads with run parameters, the parameters to vary
by dotted arch path, the objectives and the constraints:

```yaml
version: 1
name: zcu102-mdlm-shape-bits
base: sda-style-2048-zcu102                       # bundled arch name or a path
set: {array.policy: auto}                   # fixed overrides applied to every point
workloads:
  - {name: mdlm-small, batch: 1, seq_len: 1024, steps: 128}
parameters:
  array.rows: [16, 32, 64]                          # a list: categorical values
  array.cols: {type: int, low: 16, high: 128, step: 16}
  buffer.kib: {type: int, low: 256, high: 4096, log: true}   # grid: 256, 512, ... 4096
  clock_mhz: {type: float, low: 200, high: 300, step: 25}
  array.dataflow: [os, ws, auto]            # alias of array.policy
  run.batch: [1, 4]                         # run parameters of every workload (run.KEY)
objectives: [latency_run_s, dsp_used]       # or {metric, direction, workload}
constraints: {fits: true, max_frac: {dsp: 0.75, bram36: 0.75}}
```

`Problem` is a loaded spec plus the resolved base arch data: everything a worker process
needs to evaluate a point (it pickles). Grids are never built whole: `grid_size()` counts
the points and `point(i)` decodes the i-th one (a sweep of a huge space is refused, a
search samples it).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, FiniteFloat, PositiveInt, field_validator, model_validator

from dlmsim.config import Strict, Version, config_hash, read_yaml, resolve, set_dotted
from dlmsim.errors import InputError

# Aliases accepted in specs for arch keys.
ALIASES = {"array.dataflow": "array.policy"}
# A parameter naming the base arch of each point (a list of bundled names or paths): to
# compare designs of different kinds (temporal and spatial) in one sweep.
BASE_PARAM = "base"
RUN_PREFIX = "run."  # parameters named run.KEY set a run parameter of every workload
MAX_AXIS = 1_000_000  # grid values of one parameter (num)
MAX_SWEEP_POINTS = 1_000_000  # a sweep evaluates every point; beyond this, search
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# Per-workload metrics (from SimResult.summary()); geometric mean over workloads unprefixed.
WORKLOAD_METRICS = ("latency_run_s", "latency_forward_s", "latency_step_s", "tokens_per_s",
                    "total_cycles", "util_array", "util_sfu", "util_memory_bw",
                    "dram_bytes_per_run", "power_w", "power_peak_w", "energy_run_j",
                    "energy_forward_j", "energy_step_j", "energy_per_token_j",
                    "tokens_per_j")
RESOURCES = ("dsp", "bram36", "uram", "lut", "ff")
RESOURCE_METRICS = tuple(f"{k}_used" for k in RESOURCES) + tuple(f"{k}_frac" for k in RESOURCES)
# Accuracy proxy (dlmsim.quant.accuracy_proxy) keys usable as accuracy_<key>.
ACCURACY_KEYS = ("top1", "kl", "output_sqnr_db", "block_sqnr_db", "output_cosine",
                 "block_cosine")
ACCURACY_METRICS = tuple(f"accuracy_{k}" for k in ACCURACY_KEYS)
MAXIMIZE = {"tokens_per_s", "tokens_per_j", "util_array", "util_sfu", "util_memory_bw",
            "accuracy_top1", "accuracy_output_sqnr_db", "accuracy_block_sqnr_db",
            "accuracy_output_cosine", "accuracy_block_cosine"}


def accuracy_available() -> bool:
    """True when the quantization work provides `dlmsim.quant.accuracy_proxy`."""
    try:
        from dlmsim.quant import accuracy_proxy  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- parameters
class IntRange(Strict):
    type: Literal["int"]
    low: int
    high: int
    step: PositiveInt | None = None  # grid and search step (default 1; not with log)
    log: bool = False  # grid: low, 2 low, 4 low, ... (or `num` geometric points)
    num: PositiveInt | None = Field(None, le=MAX_AXIS)

    @model_validator(mode="after")
    def _check(self):
        _check_range(self)
        if self.log and self.step not in (None, 1):
            raise ValueError("a log range takes no step (use num for the grid)")
        return self

    def size(self) -> int:
        if self.num:
            return len(self._listed())
        if self.log:
            return (self.high // self.low).bit_length()  # low * 2**i <= high
        return (self.high - self.low) // (self.step or 1) + 1

    def at(self, i: int):
        if self.num:
            return self._listed()[i]
        if self.log:
            return self.low * 2**i
        return self.low + i * (self.step or 1)

    def _listed(self) -> list[int]:
        """The `num` grid values (deduplicated after rounding)."""
        if self.log:
            return sorted({round(v) for v in _geom(self.low, self.high, self.num)})
        return sorted({round(self.low + i * (self.high - self.low) / max(self.num - 1, 1))
                       for i in range(self.num)})

    def grid(self) -> list:
        return [self.at(i) for i in range(self.size())]


class FloatRange(Strict):
    type: Literal["float"]
    low: FiniteFloat
    high: FiniteFloat
    step: FiniteFloat | None = Field(None, gt=0)
    log: bool = False
    num: PositiveInt | None = Field(None, le=MAX_AXIS)  # grid points (a sweep: step or num)

    @model_validator(mode="after")
    def _check(self):
        _check_range(self)
        if self.step is not None and self.num is not None:
            raise ValueError("give step or num, not both")
        if self.log and self.step is not None:
            raise ValueError("a log range takes no step (use num for the grid)")
        return self

    def size(self) -> int:
        if self.num:
            return self.num
        if self.step:
            n = (self.high - self.low) / self.step
            if not math.isfinite(n):
                raise ValueError(f"step {self.step:g} is too small for the range")
            return math.floor(n + 1e-9) + 1
        raise ValueError("a float range needs step or num to be swept")

    def at(self, i: int) -> float:
        if self.num:
            if self.log:
                return _geom(self.low, self.high, self.num, i)
            return self.low + i * (self.high - self.low) / max(self.num - 1, 1)
        return round(self.low + i * self.step, 12)

    def grid(self) -> list:
        return [self.at(i) for i in range(self.size())]


class Categorical(Strict):
    type: Literal["categorical"]
    values: list[int | float | str | bool]

    @field_validator("values")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("empty list of values")
        dup = sorted({str(x) for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"repeated values: {', '.join(dup)}")
        return v

    def size(self) -> int:
        return len(self.values)

    def at(self, i: int):
        return self.values[i]

    def grid(self) -> list:
        return list(self.values)


def _check_range(r) -> None:
    if r.low > r.high:
        raise ValueError(f"empty range: low {r.low:g} > high {r.high:g}")
    if r.log and r.low <= 0:
        raise ValueError(f"a log range needs low > 0 (got {r.low:g})")


def _geom(lo: float, hi: float, n: int, i: int | None = None):
    """n geometric points from lo to hi (or the i-th of them)."""
    if i is not None:
        return lo if n == 1 else lo * (hi / lo) ** (i / (n - 1))
    return [_geom(lo, hi, n, k) for k in range(n)]


Param = Annotated[IntRange | FloatRange | Categorical, Field(discriminator="type")]


# ---------------------------------------------------------------------- objectives, limits
class Objective(Strict):
    metric: str
    direction: Literal["minimize", "maximize"] | None = None  # default by metric
    workload: str | None = None  # a workload label; default: geometric mean over workloads

    @property
    def sense(self) -> str:
        return self.direction or ("maximize" if self.metric in MAXIMIZE else "minimize")

    @property
    def column(self) -> str:
        return f"{self.workload}/{self.metric}" if self.workload else self.metric


class Constraints(Strict):
    fits: bool = True  # the design fits the device
    max_frac: dict[str, FiniteFloat] = Field(default_factory=dict)  # {dsp: 0.75}: caps
    max: dict[str, FiniteFloat] = Field(default_factory=dict)  # any metric <= bound
    min: dict[str, FiniteFloat] = Field(default_factory=dict)  # any metric >= bound

    @model_validator(mode="after")
    def _check(self):
        for k, v in self.max_frac.items():
            if k not in RESOURCES:
                raise ValueError(f"max_frac.{k}: unknown resource{_near(k, RESOURCES)}")
            if not v > 0:
                raise ValueError(f"max_frac.{k}: a cap must be > 0 (got {v:g})")
        for k in set(self.max) & set(self.min):
            if self.min[k] > self.max[k]:
                raise ValueError(f"{k}: min {self.min[k]:g} > max {self.max[k]:g} "
                                 "(no design can meet both)")
        return self


# ---------------------------------------------------------------------------- workloads
class WorkloadRun(Strict):
    name: str  # bundled model name or a model-config path
    label: str | None = None  # column prefix when there are several (default: name)
    batch: PositiveInt | None = None
    seq_len: PositiveInt | None = None
    steps: PositiveInt | None = None
    cache: bool | None = None
    precision: str | None = None
    run: dict[str, Any] = Field(default_factory=dict)  # any other run parameter

    @property
    def key(self) -> str:
        return self.label or Path(self.name).stem

    def overrides(self) -> dict[str, Any]:
        o = {k: getattr(self, k) for k in ("batch", "seq_len", "steps", "cache", "precision")
             if getattr(self, k) is not None}
        return {**self.run, **o}


class SearchOptions(Strict):
    trials: PositiveInt = 100
    sampler: Literal["auto", "nsga2", "tpe", "random"] = "auto"
    population: PositiveInt | None = None  # NSGA-II population (default: fits the budget)
    # None: each process draws its own (shared studies); a number: reproducible, one process
    seed: int | None = Field(None, ge=0, lt=2**32)


class Spec(Strict):
    version: Version
    name: str
    description: str = ""
    base: str
    set: dict[str, Any] = Field(default_factory=dict)
    workloads: list[WorkloadRun] = Field(min_length=1)
    parameters: dict[str, Param] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=1)
    constraints: Constraints = Constraints()
    search: SearchOptions = SearchOptions()

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v):
        if not NAME_RE.fullmatch(v):
            raise ValueError(f"'{v}': a name is letters, digits, '.', '_' and '-' (up to 100, "
                             "not starting with '.' or '-'): it names the results directory")
        return v

    @field_validator("workloads", mode="before")
    @classmethod
    def _workload_names(cls, v):
        return [{"name": w} if isinstance(w, str) else w for w in v] if isinstance(v, list) \
            else v

    @field_validator("parameters", mode="before")
    @classmethod
    def _lists(cls, v):
        if isinstance(v, dict):
            return {k: {"type": "categorical", "values": p} if isinstance(p, list) else p
                    for k, p in v.items()}
        return v

    @field_validator("objectives", mode="before")
    @classmethod
    def _names(cls, v):
        return [{"metric": o} if isinstance(o, str) else o for o in v] if isinstance(v, list) \
            else v


def _near(name: str, known) -> str:
    near = difflib.get_close_matches(name, list(known), n=3)
    return f" (nearest: {', '.join(near)})" if near else ""


# ------------------------------------------------------------------------------ problem
@dataclass
class Problem:
    """A validated spec with its base arch data resolved (what workers need; pickles)."""

    spec: Spec
    source: str
    base_data: dict
    base_source: str
    arch_params: dict[str, str] = field(default_factory=dict)  # spec name -> arch path
    # The base archs a `base` parameter names: value -> arch data.
    bases: dict[str, dict] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def labels(self) -> list[str]:
        return [w.key for w in self.spec.workloads]

    @cached_property
    def accuracy_keys(self) -> list[str]:
        used = [o.metric for o in self.spec.objectives] + list(self.spec.constraints.max) \
            + list(self.spec.constraints.min)
        return [m.removeprefix("accuracy_") for m in used if m.startswith("accuracy_")]

    def arch_data(self, params: dict[str, Any]) -> dict:
        """The full arch YAML data of a point: base, then the spec's `set`, then params
        (run parameters left out)."""
        from dlmsim.arch import _defaults_tree

        data = _copy(self.bases[params[BASE_PARAM]] if BASE_PARAM in params
                     else self.base_data)
        tree = _defaults_tree(data)
        for k, v in {**self.spec.set, **params}.items():
            if not k.startswith(RUN_PREFIX) and k != BASE_PARAM:
                set_dotted(data, ALIASES.get(k, k), v, tree)
        return data

    def run_overrides(self, w: WorkloadRun, params: dict[str, Any]) -> dict[str, Any]:
        """A workload's run parameters at a point: the spec's, then run.KEY parameters."""
        return {**w.overrides(), **{k.removeprefix(RUN_PREFIX): v for k, v in params.items()
                                    if k.startswith(RUN_PREFIX)}}

    def grid_size(self) -> int:
        """Points in the grid, counted without building it."""
        return math.prod(self._axis(n).size() for n in self.spec.parameters)

    def _axis(self, name: str):
        p = self.spec.parameters[name]
        try:
            p.size()
        except ValueError as e:
            raise InputError(f"{self.source}: parameters.{name}: {e}") from None
        return p

    def point(self, index: int) -> dict[str, Any]:
        """The grid point of an index (the first parameter varies slowest)."""
        out = {}
        for n in reversed(self.spec.parameters):
            p = self._axis(n)
            index, i = divmod(index, p.size())
            out[n] = p.at(i)
        return dict(reversed(list(out.items())))

    def sweep_size(self) -> int:
        """The grid size, refused with one line when it is empty or too big to sweep."""
        n = self.grid_size()
        if n > MAX_SWEEP_POINTS:
            raise InputError(f"{self.source}: the grid has {n:,} points; a sweep evaluates "
                             f"every one (at most {MAX_SWEEP_POINTS:,}): narrow the ranges "
                             "or run `dlmsim search`, which samples the space")
        return n

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the grid, in index order (a sweep-sized grid only)."""
        return [self.point(i) for i in range(self.sweep_size())]

    def point_id(self, params: dict[str, Any]) -> str:
        """Hash of everything a point's metrics depend on (resumed sweeps skip known ids)."""
        ws = [{"name": w.name, **self.run_overrides(w, params)} for w in self.spec.workloads]
        return config_hash({"arch": self.arch_data(params), "workloads": ws,
                            "accuracy": sorted(self.accuracy_keys), "eval": 1}, n=12)

    def spec_hash(self) -> str:
        """Hash of what the study's trials depend on (not the description or search
        options)."""
        dump = self.spec.model_dump(mode="json", exclude={"search", "description"})
        blob = {"spec": dump, "base": self.base_data}
        if self.bases:
            blob["bases"] = self.bases
        return config_hash(blob, n=8)


def _copy(d):
    if isinstance(d, dict):
        return {k: _copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_copy(v) for v in d]
    return d


def known_metrics(problem_labels: list[str]) -> list[str]:
    out = list(WORKLOAD_METRICS) + list(RESOURCE_METRICS) + ["clock_mhz"]
    if accuracy_available():
        out += list(ACCURACY_METRICS)
    for lab in problem_labels:
        out += [f"{lab}/{m}" for m in WORKLOAD_METRICS]
    return out


def load_spec(name_or_path: str | Path) -> Problem:
    """A bundled spec name or a YAML path -> validated Problem (one-line InputError if not)."""
    path = resolve("sweeps", name_or_path, "sweep spec")
    src = str(path)
    return check_spec(_validate(read_yaml(path), src), src)


def spec_from_data(data: dict, source: str = "spec") -> Problem:
    return check_spec(_validate(data, source), source)


def _validate(data: dict, src: str) -> Spec:
    """The spec schema with one-line errors (parameter type tags left out of the key)."""
    from pydantic import ValidationError

    from dlmsim.config import validation_message

    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        err["loc"] = tuple(x for x in err["loc"] if x not in ("int", "float", "categorical"))
        err["msg"] = str(err["msg"]).removeprefix("Value error, ")

        msg = validation_message(_Shim(err, len(e.errors())), src)
        raise InputError(msg) from None


class _Shim:
    """Quacks like a ValidationError for `validation_message` (one edited error)."""

    def __init__(self, err: dict, n: int):
        self._errs = [err] + [err] * (n - 1)

    def errors(self):
        return self._errs


def check_spec(spec: Spec, src: str) -> Problem:
    """Cross checks: arch paths exist, values are valid for their keys (on every base a
    `base` parameter names), metrics are known."""
    base_path = resolve("arch", spec.base, "arch")
    base = read_yaml(base_path)
    problem = Problem(spec=spec, source=src, base_data=base, base_source=str(base_path))
    if BASE_PARAM in spec.parameters:
        bp = spec.parameters[BASE_PARAM]
        if not isinstance(bp, Categorical) or not all(isinstance(v, str) for v in bp.values):
            raise InputError(f"{src}: parameters.{BASE_PARAM}: a list of arch names or paths")
        for v in bp.values:
            try:
                problem.bases[v] = read_yaml(resolve("arch", v, "arch"))
            except InputError as e:
                raise InputError(f"{src}: parameters.{BASE_PARAM}: {e}") from None
    for name, b in (problem.bases or {"": base}).items():
        _check_on_base(spec, f"{src} (base {name})" if name else src, problem, b)
    return _check_rest(spec, src, problem, problem.labels)


def _check_on_base(spec: Spec, src: str, problem: Problem, base: dict) -> None:
    """Every `set` key and parameter is a key of the base arch, with valid values on it."""
    from pydantic import ValidationError

    from dlmsim.arch import Accelerator, _defaults_tree, load_device

    tree = _defaults_tree(base)
    names = [n for n in spec.parameters if not n.startswith(RUN_PREFIX) and n != BASE_PARAM]
    targets: dict[str, str] = {}
    for n in list(spec.set) + names:
        real = ALIASES.get(n, n)
        try:
            set_dotted(_copy(base), real, None, tree)
        except InputError as e:
            where = "parameters" if n in spec.parameters else "set"
            raise InputError(f"{src}: {where}: {e}") from None
        if real in targets and n in spec.parameters:
            other = targets[real]
            raise InputError(f"{src}: parameters.{n}: the same arch key as '{other}' "
                             f"({real}); give it once")
        targets[real] = n
    problem.arch_params = {n: ALIASES.get(n, n) for n in names}

    # Each value alone on the base must be a valid value for its key (type, allowed set);
    # invalid combinations are left to the points (infeasible, with the reason).
    checks = [(f"set.{n}", n, [v]) for n, v in spec.set.items()]
    checks += [(f"parameters.{n}", n, _sample(spec.parameters[n])) for n in names]
    if "device" not in spec.set and "device" not in names:
        checks.append(("base", "device", [base.get("device")]))
    for where, n, vals in checks:
        real = ALIASES.get(n, n)
        for v in vals:
            data = _copy(base)
            set_dotted(data, real, v, tree)
            try:
                Accelerator.model_validate(data)
                if real == "device":
                    load_device(v)
            except InputError as e:
                raise InputError(f"{src}: {where}: value {v!r}: {e}") from None
            except ValidationError as e:
                for er in e.errors():
                    loc = ".".join(str(x) for x in er["loc"] if not str(x).startswith("func"))
                    if loc == real or loc.startswith(real + "."):
                        raise InputError(f"{src}: {where}: value {v!r}: {er['msg']}") from None


def _check_rest(spec: Spec, src: str, problem: Problem, labels: list[str]) -> Problem:
    """Workloads, run parameters, objectives and constraints."""
    from dlmsim.workloads import load_workload_config

    if len(set(labels)) != len(labels):
        raise InputError(f"{src}: workloads: two workloads share a label; give each a "
                         "distinct `label`")
    runs = [n for n in spec.parameters if n.startswith(RUN_PREFIX)]
    for w in spec.workloads:
        load_workload_config(w.name, **w.overrides())
        for n in runs:
            for v in _sample(spec.parameters[n]):
                try:
                    load_workload_config(w.name, **problem.run_overrides(w, {n: v}))
                except InputError as e:
                    raise InputError(f"{src}: parameters.{n}: value {v!r}: {e}") from None

    known = known_metrics(labels)
    for o in spec.objectives:
        if o.metric.startswith("accuracy_") and not accuracy_available():
            raise InputError(f"{src}: objectives: {o.metric} needs dlmsim.quant."
                             "accuracy_proxy, which this install does not have")
        if o.metric not in known:
            raise InputError(f"{src}: objectives: unknown metric '{o.metric}'"
                             f"{_near(o.metric, known)}")
        if o.workload is not None:
            if o.workload not in labels:
                raise InputError(f"{src}: objectives: unknown workload label '{o.workload}'"
                                 f"; labels: {', '.join(labels)}")
            if o.metric not in WORKLOAD_METRICS:
                raise InputError(f"{src}: objectives: {o.metric} does not depend on the "
                                 "workload; drop `workload`")
    cols = [o.column for o in spec.objectives]
    if len(set(cols)) != len(cols):
        raise InputError(f"{src}: objectives: an objective is listed twice")
    for k in list(spec.constraints.max) + list(spec.constraints.min):
        if k not in known:
            raise InputError(f"{src}: constraints: unknown metric '{k}'{_near(k, known)}")
    return problem


def _sample(p, every: int = 64) -> list:
    """The values of a parameter checked at load: all of a short axis, else its ends and
    middle (a huge range is never listed)."""
    try:
        n = p.size()
    except ValueError:
        return [p.low, p.high]
    idx = range(n) if n <= every else sorted({0, 1, n // 2, n - 2, n - 1})
    return [p.at(i) for i in idx]


# ---------------------------------------------------------------------- labels with units
_RESOURCE_UNITS = {"dsp": "DSP slices", "bram36": "BRAM36 blocks", "uram": "URAM blocks",
                   "lut": "LUTs", "ff": "flip-flops"}
_PARAM_UNITS = {"array.rows": "PE rows", "array.cols": "PE columns", "bits.weights": "bits",
                "bits.activations": "bits", "bits.accumulator": "bits", "buffer.kib": "KiB",
                "buffer.banks": "banks", "buffer.bytes_per_cycle": "B/cycle",
                "sfu.lanes": "lanes", "sfu.elems_per_lane": "elements/lane/cycle",
                "sfu.bits": "bits", "clock_mhz": "MHz", "memory.ports": "ports",
                "memory.port_bits": "bits", "memory.peak_gbps": "GB/s",
                "array.switch_cycles": "cycles", "memory.latency_ns": "ns",
                "run.batch": "sequences", "run.seq_len": "tokens", "run.steps": "steps",
                "run.gen_len": "tokens"}


def metric_label(name: str) -> str:
    """A column name as an axis/header label with its unit: 'latency_run_s' -> 'latency
    per run (s)', 'dsp_used' -> 'DSP (DSP slices)', 'array.rows' -> 'array.rows (PE rows)'."""
    prefix, _, m = name.rpartition("/")
    pre = f"{prefix}: " if prefix else ""
    fixed = {
        "latency_run_s": "latency per run (s)", "latency_forward_s": "latency per forward (s)",
        "latency_step_s": "latency per step (s)", "tokens_per_s": "throughput (tokens/s)",
        "total_cycles": "cycles per run (cycles)", "dram_bytes_per_run": "DRAM traffic (B/run)",
        "util_array": "array utilisation (fraction)", "util_sfu": "SFU utilisation (fraction)",
        "util_memory_bw": "memory-bandwidth utilisation (fraction)",
        "power_w": "average power (W)", "power_peak_w": "peak power (W)",
        "energy_run_j": "energy per run (J)", "energy_forward_j": "energy per forward (J)",
        "energy_step_j": "energy per step (J)",
        "energy_per_token_j": "energy per token (J)", "tokens_per_j": "tokens per joule",
        "accuracy_top1": "top-1 agreement (fraction)", "accuracy_kl": "KL divergence (nats)",
        "accuracy_output_sqnr_db": "output SQNR (dB)", "accuracy_block_sqnr_db":
        "block SQNR (dB)", "accuracy_output_cosine": "output cosine (1)",
        "accuracy_block_cosine": "block cosine (1)", "eval_s": "evaluation time (s)",
        "dataflow": "dataflow", "bits": "bit widths", "base": "design (base arch)",
    }
    if m in fixed:
        return pre + fixed[m]
    if m.endswith("_used") and m[:-5] in _RESOURCE_UNITS:
        return f"{pre}{m[:-5].upper()} ({_RESOURCE_UNITS[m[:-5]]})"
    if m.endswith("_frac") and m[:-5] in _RESOURCE_UNITS:
        return f"{pre}{m[:-5].upper()} (fraction of device)"
    unit = _PARAM_UNITS.get(ALIASES.get(m, m))
    if unit:
        return f"{pre}{m} ({unit})"
    for suf, u in (("_s", "s"), ("_mhz", "MHz"), ("_kib", "KiB"), ("_bytes", "B"),
                   ("_cycles", "cycles"), ("_gbps", "GB/s"), ("_db", "dB")):
        if m.endswith(suf):
            return f"{pre}{m} ({u})"
    return pre + m
