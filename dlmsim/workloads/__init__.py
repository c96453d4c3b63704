"""Workloads: model configs -> operator traces (and trace files)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import TypeAdapter, ValidationError

from dlmsim.config import read_yaml, resolve, set_dotted, shown, validation_message
from dlmsim.errors import InputError
from dlmsim.workloads import build
from dlmsim.workloads.ir import Op, Schedule, Tensor, Trace, TraceError
from dlmsim.workloads.llada import build_llada
from dlmsim.workloads.schema import WorkloadConfig
from dlmsim.workloads.tracefile import trace_from_data, write_trace
from dlmsim.workloads.unet import build_unet

__all__ = [
    "Op",
    "Schedule",
    "Tensor",
    "Trace",
    "TraceError",
    "build_trace",
    "load_workload",
    "load_workload_config",
    "write_trace",
]

_ADAPTER = TypeAdapter(WorkloadConfig)
BUILDERS = {**build.BUILDERS, "llada": build_llada, "sd_unet": build_unet}


def load_workload_config(name_or_path: str | os.PathLike, **overrides: Any):
    """The validated model config, with run parameters overridden (batch=..., steps=...)
    or any dotted path (**{"model.blocks": 2}); unknown keys are errors naming them."""
    path = resolve("workloads", name_or_path, "workload")
    data = read_yaml(path)
    if "ops" in data:
        raise InputError(f"{path} is a trace file, not a model config")
    run = data.get("run")
    if run is not None and not isinstance(run, dict):
        raise InputError(f"{path}: run: expected a mapping of run parameters "
                         f"(batch: 16, ...), got {shown(run)}")
    data["run"] = dict(run or {})
    for k, v in overrides.items():
        if v is None:
            continue
        # A plain key is a run parameter; a dotted one a path (model.blocks, run.gen_len).
        try:
            set_dotted(data, k if "." in k else f"run.{k}", v, data)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise InputError(validation_message(e, str(path), tuple(BUILDERS))) from None


def build_trace(cfg) -> Trace:
    return BUILDERS[cfg.family](cfg)


def load_workload(name_or_path: str | os.PathLike, **overrides: Any) -> Trace:
    """A bundled model name, a model-config YAML, a trace file or an ONNX file -> Trace.

    Run overrides (batch, seq_len, steps, cache, precision, ...) apply to model configs;
    a trace file is taken as written, so overrides are an error there; an ONNX file takes
    steps, batch, seq_len, dim.<name> and map.<OpType> (`workloads.onnxfile`).
    """
    path = resolve("workloads", name_or_path, "workload")
    if path.suffix.lower() == ".onnx":
        from dlmsim.workloads.onnxfile import trace_from_onnx

        return trace_from_onnx(path, **overrides)
    data = read_yaml(path)
    if "ops" in data:
        given = {k: v for k, v in overrides.items() if v is not None}
        if given:
            raise InputError(f"{path} is a trace file: run overrides "
                             f"({', '.join(given)}) do not apply")
        return trace_from_data(data, str(path))
    return build_trace(load_workload_config(path, **overrides))

