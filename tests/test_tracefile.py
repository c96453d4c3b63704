"""Trace files: write a trace, read it back identical; hand-written files; bad files."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.workloads import load_workload, write_trace
from dlmsim.workloads.tracefile import trace_from_data, trace_to_data

# Small run settings (LLaDA's gen_len/block_len have no CLI option: keep its defaults).
SMALL = {n: {"batch": 1, "seq_len": 8} for n in ("mdlm-tiny", "mdlm-small", "mdlm-medium",
                                                  "sedd-small", "diffusion-lm-e2e",
                                                  "diffusion-lm-roc")}
BUNDLED = [
    "diffusion-lm-e2e",
    "diffusion-lm-roc",
    "llada-8b",
    "mdlm-medium",
    "mdlm-small",
    "mdlm-tiny",
    "sedd-small",
]

# The README's example: x [1,16,64] -> linear 64->256 -> gelu.
TOY = {
    "version": 1,
    "trace": "toy",
    "schedule": {"steps": 10, "forward_passes": 10},
    "inputs": [{"name": "x", "shape": [1, 16, 64]}],
    "ops": [
        {
            "name": "ffn1",
            "kind": "gemm",
            "fn": "linear",
            "inputs": [
                {"name": "x", "shape": [1, 16, 64]},
                {"name": "w1", "shape": [64, 256], "role": "weight"},
            ],
            "outputs": [{"name": "h", "shape": [1, 16, 256]}],
        },
        {
            "name": "act",
            "kind": "sfu",
            "fn": "gelu",
            "inputs": [{"name": "h", "shape": [1, 16, 256]}],
            "outputs": [{"name": "y", "shape": [1, 16, 256]}],
        },
    ],
}


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _toy(changes):
    """A deep copy of TOY with op fields changed: changes = {(op index, key): value}."""
    data = yaml.safe_load(yaml.safe_dump(TOY))
    for (i, key), value in changes.items():
        data["ops"][i][key] = value
    return data


# ---- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_round_trip_data(name):
    """trace -> file data -> trace gives the identical trace, for every bundled model."""
    t = load_workload(name, **SMALL.get(name, {}))
    assert trace_from_data(trace_to_data(t), "test") == t


# One model per family and conditioning variant: the file round trip is YAML-bound (~1 s
# for LLaDA's 616 ops), and the other bundled models differ only in sizes.
@pytest.mark.parametrize("name", ["mdlm-tiny", "sedd-small", "diffusion-lm-e2e", "llada-8b"])
def test_round_trip_through_cli(name, tmp_path):
    """`dlmsim trace X -o file` then reading the file gives the identical trace: same ops
    (names, kinds, fns, phases, blocks, tensors, attrs), schedule, run and inputs."""
    opts = [x for k, v in SMALL.get(name, {}).items() for x in (f"--{k.replace('_', '-')}",
                                                                 str(v))]
    out = tmp_path / f"{name}.trace.yaml"
    res = CliRunner().invoke(app, ["trace", name, *opts, "-o", str(out)])
    assert res.exit_code == 0, res.output
    original = load_workload(name, **SMALL.get(name, {}))
    back = load_workload(out)
    assert back.ops == original.ops
    assert back == original
    assert back.flops_per_run == original.flops_per_run and back.params == original.params


def test_written_file(tmp_path):
    """Plain YAML of the documented layout; parent directories are created; no temp file
    is left; MDLM's fractional expected forward passes (9.7238 at B 1, L 8) survive."""
    t = load_workload("mdlm-tiny", batch=1, seq_len=8)
    assert t.forward_passes != int(t.forward_passes)
    path = tmp_path / "sub" / "t.yaml"
    write_trace(t, path)
    data = yaml.safe_load(path.read_text())
    assert data == trace_to_data(t)
    assert data["version"] == 1 and data["trace"] == "mdlm-tiny"
    assert data["schedule"] == {"steps": 128, "forward_passes": t.forward_passes}
    first = data["ops"][0]
    assert first["name"] == "embed" and first["kind"] == "gather"
    assert first["inputs"][0] == {"name": "vocab_embed.embedding", "shape": [50258, 512],
                                  "dtype": "bf16", "role": "weight"}
    assert [p.name for p in path.parent.iterdir()] == ["t.yaml"]
    assert trace_from_data(data, str(path)) == t


def test_hand_written_trace(tmp_path):
    """The README example: defaults fill in (dtype bf16, role activation, phase forward).

    ffn1: 2 * 16*64*256 = 524,288 FLOPs; gelu: 8 * 16*256 = 32,768. Forward 557,056;
    10 forward passes -> 5,570,560 per run. Parameters: 64*256 = 16,384.
    """
    t = load_workload(_write(tmp_path / "toy.yaml", TOY))
    assert t.model == "toy" and [o.name for o in t.ops] == ["ffn1", "act"]
    x = t.ops[0].inputs[0]
    assert (x.dtype, x.role, t.ops[0].phase, t.ops[0].block) == ("bf16", "activation",
                                                                  "forward", None)
    assert t.flops_per_forward == 557_056
    assert t.flops_per_run == 5_570_560
    assert t.params == 16_384


# ---- bad trace files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # The case: an op whose input shape is not what its producer made.
        ({(1, "inputs"): [{"name": "h", "shape": [1, 16, 128]}],
          (1, "outputs"): [{"name": "y", "shape": [1, 16, 128]}]},
         "op 'act': input 'h' is [1,16,128] but op 'ffn1' made it [1,16,256]"),
        ({(1, "inputs"): [{"name": "z", "shape": [1, 16, 256]}]},
         "op 'act': input 'z' is produced by no earlier op and is not a trace input"),
        ({(0, "outputs"): [{"name": "h", "shape": [1, 16, 128]}]},
         "op 'ffn1': output 'h' is [1,16,128], the operands give [1,16,256]"),
        ({(0, "inputs"): [{"name": "x", "shape": [1, 16, 64]},
                          {"name": "w1", "shape": [32, 256], "role": "weight"}]},
         "op 'ffn1': inner dims differ: 'x' [1,16,64] and 'w1' [32,256]"),
        ({(0, "inputs"): [{"name": "x", "shape": [1, 16, 64]},
                          {"name": "w1", "shape": [64, 0], "role": "weight"}]},
         "op 'ffn1': tensor 'w1' has shape [64, 0]; every dim must be a positive integer"),
        ({(1, "name"): "ffn1"}, "op name 'ffn1' appears twice"),
        ({(1, "kind"): "conv"}, "op 'act': unknown kind 'conv'"),
        ({(1, "fn"): "sparkle"}, "op 'act': unknown sfu fn 'sparkle'"),
        ({(1, "phase"): "sometimes"}, "op 'act': unknown phase 'sometimes'"),
        ({(0, "fn"): "conv3d"}, "op 'ffn1': gemm fn must be 'linear', 'matmul' or 'conv2d'"),
        ({(0, "fn"): "conv2d"}, "op 'ffn1': conv2d takes x[B,Cin,H,W]"),
        # dims beyond an int32 index are refused, not simulated in lossy floats
        ({(0, "inputs"): [{"name": "x", "shape": [1, 16, 64]},
                          {"name": "w1", "shape": [64, 2**31], "role": "weight"}]},
         "op 'ffn1': tensor 'w1' of shape [64,2147483648] is too large"),
        ({(1, "attrs"): {"transpose_b": "yes"}},
         "op 'act': attr transpose_b must be true or false, got 'yes'"),
        ({(0, "attrs"): {"scale": True}}, "op 'ffn1': attr scale must be a finite number"),
    ],
)
def test_bad_trace_file(tmp_path, changes, message):
    """Each problem is one InputError line naming the file, the op and the tensor."""
    path = _write(tmp_path / "bad.trace.yaml", _toy(changes))
    with pytest.raises(InputError) as e:
        load_workload(path)
    assert str(e.value) == f"{path}: {message}" or (
        str(e.value).startswith(f"{path}: ") and message in str(e.value))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**TOY, "colour": "red"}, "colour: unknown key"),
        ({**TOY, "version": 2}, "version: Input should be 1"),
        ({k: v for k, v in TOY.items() if k != "schedule"}, "schedule: required key is missing"),
        ({**TOY, "schedule": {"steps": 10, "forward_passes": -1}},
         "schedule.forward_passes: Input should be greater than or equal to 0"),
        (_toy({(1, "colour"): "red"}), "ops.1.colour: unknown key"),
        (_toy({(0, "inputs"): [{"name": "x", "shape": [1, 16, 64], "role": "bias"}]}),
         "ops.0.inputs.0.role: Input should be"),
        (_toy({(0, "inputs"): [{"name": "x", "shape": [1, True, 64]}]}),
         r"ops.0.inputs.0.shape.1: Input should be a valid integer \(got true\)"),
        ({**TOY, "schedule": {"steps": True, "forward_passes": 1}},
         "schedule.steps: Input should be a valid integer"),
        ({**TOY, "ops": []}, "the trace has no ops"),
        ({**TOY, "run": {"batch": "two"}}, "run.batch must be a positive integer"),
        ({**TOY, "inputs": [{"name": "x", "shape": [1, 0, 64]}]},
         "trace inputs: tensor 'x' has shape"),
    ],
)
def test_bad_trace_file_schema(tmp_path, data, message):
    path = _write(tmp_path / "bad.trace.yaml", data)
    with pytest.raises(InputError, match=f"^{path}: {message}"):
        load_workload(path)


def test_trace_file_takes_no_run_overrides(tmp_path):
    path = _write(tmp_path / "toy.yaml", TOY)
    with pytest.raises(InputError, match=r"is a trace file: run overrides \(batch\) do not"):
        load_workload(path, batch=2)


def test_one_weight_name_is_one_tensor(tmp_path):
    """Two ops reading weight w1 at different shapes would count parameters wrong (the
    trace keeps the first): the trace is refused, naming both ops."""
    data = _toy({})
    data["ops"].append({"name": "ffn2", "kind": "gemm", "fn": "linear",
                        "inputs": [{"name": "y", "shape": [1, 16, 256]},
                                   {"name": "w1", "shape": [256, 64], "role": "weight"}],
                        "outputs": [{"name": "z", "shape": [1, 16, 64]}]})
    path = _write(tmp_path / "two.trace.yaml", data)
    with pytest.raises(InputError, match="op 'ffn2': weight 'w1' is \\[256,64\\] bf16 but op "
                       "'ffn1' uses a \\[64,256\\] bf16 weight of that name"):
        load_workload(path)
    data["ops"][-1]["inputs"][1]["name"] = "w2"  # a distinct name: 2 x 16384 parameters
    assert load_workload(_write(tmp_path / "ok.trace.yaml", data)).params == 32_768
