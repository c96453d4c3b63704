"""Plain trace files (YAML): write a trace, read one back, or write one by hand.

Format (version 1):

    version: 1
    trace: my-model                    # a name
    schedule: {steps: 128, forward_passes: 129}  # + variants: {refresh: 4, cached: 124}
    run: {batch: 1, seq_len: 64}       # optional, informational
    inputs:                            # graph inputs (optional)
      - {name: x, shape: [1, 64, 256]}
    ops:
      - name: blocks.0.qkv
        kind: gemm                     # gemm | sfu | gather
        fn: linear                     # linear | matmul | an sfu function | embedding
        phase: forward                 # once | forward | step   (default forward)
        block: 0                       # optional: ops of one repeated block share a number
        variant: cached                # optional: the kind of forward pass it belongs to
        inputs:
          - {name: h, shape: [1, 64, 256]}            # dtype bf16, role activation by default
          - {name: w_qkv, shape: [256, 768], role: weight}
        outputs:
          - {name: qkv, shape: [1, 64, 768]}
        attrs: {}                      # optional: transpose_b, scale, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, NonNegativeFloat, NonNegativeInt, model_validator

from dlmsim.config import Strict, Version, validate, write_atomic
from dlmsim.workloads.ir import Op, Schedule, Tensor, Trace, TraceError


class _TensorSpec(Strict):
    name: str
    shape: list[int]
    dtype: str = "bf16"
    role: Literal["weight", "activation", "cache", "index", "const"] = "activation"


class _OpSpec(Strict):
    name: str
    kind: str
    fn: str
    phase: str = "forward"
    block: int | None = None
    variant: str = ""
    inputs: list[_TensorSpec]
    outputs: list[_TensorSpec]
    attrs: dict[str, Any] = Field(default_factory=dict)


class _ScheduleSpec(Strict):
    steps: NonNegativeInt
    forward_passes: NonNegativeFloat
    variants: dict[str, NonNegativeFloat] = Field(default_factory=dict)  # name -> passes


class TraceFile(Strict):
    version: Version
    trace: str
    schedule: _ScheduleSpec
    run: dict[str, Any] = Field(default_factory=dict)
    inputs: list[_TensorSpec] = Field(default_factory=list)
    ops: list[_OpSpec]

    @model_validator(mode="after")
    def _run_sizes(self):
        # The simulator counts tokens per run from these (batch x gen_len or seq_len).
        for k in ("batch", "seq_len", "gen_len", "steps"):
            v = self.run.get(k)
            if v is not None and not (type(v) is int and v > 0):
                raise ValueError(f"run.{k} must be a positive integer, got {v!r}")
        return self


def _tensor(t: _TensorSpec) -> Tensor:
    return Tensor(t.name, tuple(t.shape), t.dtype, t.role)


def _attr_value(v):
    """Lists in a file (a stride pair, a permutation) are tuples in an Op (hashable)."""
    return tuple(_attr_value(x) for x in v) if isinstance(v, list) else v


def _file_value(v):
    return [_file_value(x) for x in v] if isinstance(v, tuple) else v


def trace_from_data(data: dict, source: str) -> Trace:
    spec = validate(TraceFile, data, source)
    ops = tuple(
        Op(o.name, o.kind, o.fn, tuple(map(_tensor, o.inputs)), tuple(map(_tensor, o.outputs)),
           o.phase, o.block, tuple(sorted((k, _attr_value(v)) for k, v in o.attrs.items())),
           o.variant)
        for o in spec.ops
    )
    sched = spec.schedule
    try:
        return Trace(spec.trace, ops,
                     Schedule(sched.steps, sched.forward_passes, tuple(sched.variants.items())),
                     tuple(spec.run.items()), tuple(map(_tensor, spec.inputs)))
    except TraceError as e:
        raise TraceError(f"{source}: {e}") from None


def _tensor_data(t: Tensor) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "role": t.role}


def trace_to_data(trace: Trace) -> dict:
    ops = []
    for op in trace.ops:
        d = {"name": op.name, "kind": op.kind, "fn": op.fn, "phase": op.phase}
        if op.block is not None:
            d["block"] = op.block
        if op.variant:
            d["variant"] = op.variant
        d["inputs"] = [_tensor_data(t) for t in op.inputs]
        d["outputs"] = [_tensor_data(t) for t in op.outputs]
        if op.attrs:
            d["attrs"] = {k: _file_value(v) for k, v in op.attrs}
        ops.append(d)
    schedule = {"steps": trace.steps, "forward_passes": trace.forward_passes}
    if trace.schedule.variants:
        schedule["variants"] = dict(trace.schedule.variants)
    return {
        "version": 1,
        "trace": trace.model,
        "schedule": schedule,
        "run": dict(trace.run),
        "inputs": [_tensor_data(t) for t in trace.inputs],
        "ops": ops,
    }


class _FlowLists(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """Short lists (shapes) in flow style: one tensor per line stays readable."""


def _repr_list(dumper, data):
    flow = all(isinstance(x, (int, float, str)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowLists.add_representer(list, _repr_list)


def write_trace(trace: Trace, path: str | Path) -> None:
    text = yaml.dump(trace_to_data(trace), Dumper=_FlowLists, sort_keys=False, width=100)
    write_atomic(path, text)


def is_trace_file(name_or_path) -> bool:
    """Whether a workload name or path is a trace file (ops as written) rather than a model
    config (built for a batch, length and steps)."""
    from dlmsim.config import read_yaml, resolve

    data = read_yaml(resolve("workloads", name_or_path, "workload"))
    return isinstance(data, dict) and "ops" in data
