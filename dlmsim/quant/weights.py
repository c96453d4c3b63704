"""Weights for functional execution: seeded synthetic ones, or a real checkpoint.

Synthetic statistics (what quantization is sensitive to, after what trained transformers
show: a per-channel spread and a few outlier channels, e.g. Dettmers et al. 2022 for LLMs,
Bondarenko et al. 2021 for BERT):
- linear weights [in, out]: N(0, 1/in) times a per-output-channel gain, log-normal
  (sigma 0.3), with ~1% of output channels (at least one) x4 — the spread per-channel
  scales absorb; output heads get gain 4 so the token distributions are peaked, not flat;
- norm gains: 1 + 0.1 N(0, 1) with ~0.5% of channels (at least one) at 8-16: the
  activation outlier features that make per-tensor activation scales hard;
- biases N(0, 0.02^2); embedding tables N(0, 1) with a per-row gain like the linears.
Each tensor's generator is seeded by (seed, name), so a weight does not depend on depth.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from dlmsim.errors import InputError
from dlmsim.functional import rng_for
from dlmsim.workloads.ir import Trace

HEAD_NAMES = ("output_layer.linear.weight", "transformer.ff_out.weight", "lm_head.weight")


def linear_weight_names(trace: Trace) -> set[str]:
    """Weights stored [in, out] in the trace, i.e. transposed from PyTorch's [out, in]."""
    return {op.inputs[1].name for op in trace.ops
            if op.kind == "gemm" and op.fn == "linear" and not op.attr("transpose_b")
            and op.inputs[1].role == "weight"}


def _channel_gain(rng, n: int, outlier_frac: float, outlier: tuple[float, float]):
    g = rng.lognormal(0.0, 0.3, n)
    k = max(1, round(outlier_frac * n))
    g[rng.choice(n, k, replace=False)] = rng.uniform(*outlier, k)
    return g


def synthetic_weights(trace: Trace, seed: int = 0) -> dict[str, np.ndarray]:
    """Every weight of the trace, float32, seeded (see the module docstring)."""
    linear = linear_weight_names(trace)
    out: dict[str, np.ndarray] = {}
    for name, t in trace.weights.items():
        rng = rng_for(seed, name)
        if len(t.shape) == 1:
            if name.endswith("bias"):
                w = 0.02 * rng.standard_normal(t.shape)
            else:  # a norm gain
                w = 1.0 + 0.1 * rng.standard_normal(t.shape)
                k = max(1, round(0.005 * t.shape[0]))
                w[rng.choice(t.shape[0], k, replace=False)] = rng.uniform(8.0, 16.0, k)
            out[name] = w.astype(np.float32)
            continue
        w = rng.standard_normal(t.shape, dtype=np.float32)
        if name in linear:
            fan_in, n_out = t.shape
            gain = _channel_gain(rng, n_out, 0.01, (3.0, 5.0)) / np.sqrt(fan_in)
            gain *= 4.0 if name in HEAD_NAMES else 1.0
            w *= gain.astype(np.float32)[None, :]
        else:  # table [rows, dim], one channel per row
            w *= _channel_gain(rng, t.shape[0], 0.01, (3.0, 5.0)).astype(np.float32)[:, None]
        out[name] = w
    return out


# ---- checkpoints ------------------------------------------------------------------------
PREFIXES = ("backbone.", "model.", "module.", "_orig_mod.")


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if name.startswith(p):
                name, changed = name[len(p):], True
    return name


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a safetensors file or a PyTorch zip checkpoint (.pt/.pth/.bin/.ckpt) as
    numpy float32, without torch. A Lightning checkpoint's 'state_dict' is used."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            sd = load_file(str(path))
        except Exception as e:  # noqa: BLE001 (safetensors raises its own error types)
            raise InputError(f"cannot read safetensors file {path}: {e}") from None
    elif zipfile.is_zipfile(path):
        sd = _read_torch_zip(path)
    else:
        raise InputError(f"{path}: not a safetensors file or a PyTorch zip checkpoint "
                         "(legacy non-zip torch.save files are not supported)")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{path}: expected a state dict (name -> tensor)")
    return {k: np.asarray(v, np.float32) for k, v in sd.items() if isinstance(v, np.ndarray)}


def load_checkpoint(path: str | Path, trace: Trace) -> dict[str, np.ndarray]:
    """A PyTorch-layout state dict (MDLM, Diffusion-LM, LLaDA names) mapped onto the trace's
    weights: prefixes such as 'backbone.' dropped, linear weights transposed to [in, out].
    Tensors the trace does not use (deeper blocks, buffers) are ignored; a missing or
    mis-shaped tensor is an InputError naming it."""
    sd = {_strip(k): v for k, v in read_state_dict(path).items()}
    linear = linear_weight_names(trace)
    out: dict[str, np.ndarray] = {}
    missing = [n for n in trace.weights if n not in sd]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise InputError(f"checkpoint {path} lacks tensor(s) {', '.join(missing[:3])}{more}")
    for name, t in trace.weights.items():
        v = sd[name]
        v = v.T if name in linear and v.ndim == 2 else v
        if tuple(v.shape) != t.shape:
            want = t.shape[::-1] if name in linear else t.shape
            raise InputError(f"checkpoint {path}: tensor {name} is {list(sd[name].shape)}, "
                             f"the model needs {list(want)}")
        out[name] = np.ascontiguousarray(v, dtype=np.float32)
    return out


def to_state_dict(trace: Trace, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of load_checkpoint: PyTorch layout ([out, in] linear weights)."""
    linear = linear_weight_names(trace)
    return {k: np.ascontiguousarray(v.T if k in linear else v) for k, v in weights.items()}


# PyTorch zip checkpoints: data.pkl references storages in data/<key>; tensors are rebuilt by
# torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...). Everything else the
# pickle holds (hyper-parameters, optimizer classes) becomes an inert stub.
_STORAGE = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
            "BFloat16Storage": "bf16", "LongStorage": "<i8", "IntStorage": "<i4",
            "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
            "BoolStorage": "?"}


class _Stub(dict):
    """Stands in for any class a checkpoint pickles that is not a tensor."""

    def __new__(cls, *a, **k):
        return dict.__new__(cls)

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return _Stub()

    def __setstate__(self, state):
        pass

    def append(self, x):
        pass

    def extend(self, x):
        pass


class _StorageType:
    def __init__(self, dtype: str):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *rest):
    data, dtype = storage
    item = 2 if dtype == "bf16" else np.dtype(dtype).itemsize
    arr = np.frombuffer(data, "<u2" if dtype == "bf16" else dtype)
    arr = np.lib.stride_tricks.as_strided(arr[offset:], tuple(size),
                                          tuple(s * item for s in stride)).copy()
    if dtype == "bf16":  # bfloat16 is the top half of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, f, zf: zipfile.ZipFile, root: str):
        super().__init__(f)
        self.zf, self.root = zf, root

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *a: data
        if module == "torch._utils" and name == "_rebuild_from_type_v2":
            return lambda func, _type, args, _state: func(*args)
        if module == "torch" and name in _STORAGE:
            return _StorageType(_STORAGE[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        return _Stub

    def persistent_load(self, pid):
        _, stype, key, *_ = pid
        dtype = stype.dtype if isinstance(stype, _StorageType) else "<f4"
        return self.zf.read(f"{self.root}/data/{key}"), dtype


def _read_torch_zip(path: Path):
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise InputError(f"{path}: a zip file without data.pkl is not a torch checkpoint")
        root = pkl[0][: -len("/data.pkl")]
        with zf.open(pkl[0]) as f:
            try:
                return _TorchUnpickler(f, zf, root).load()
            except (pickle.UnpicklingError, EOFError, KeyError) as e:
                raise InputError(f"cannot read torch checkpoint {path}: {e}") from None
