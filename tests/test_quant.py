"""Quantizers, metrics, the quantized executor, the checkpoint loader and the CLI."""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.functional import execute
from dlmsim.quant import (
    QuantNumerics,
    cosine,
    evaluate,
    fake_quant,
    kl_divergence,
    load_checkpoint,
    quantize_weights,
    sqnr_db,
    synthetic_weights,
    to_state_dict,
    top1_agreement,
)
from dlmsim.quant.quantize import channel_scales, check_bits, fixed_point, scale_for
from dlmsim.workloads import build_trace, load_workload_config

TINY = {"hidden": 32, "heads": 4, "cond_dim": 16, "vocab": 40, "freq_embed": 16, "depth": 1,
        "batch": 1,
            "seq_len": 16}


def tiny_trace(blocks=2):
    cfg = load_workload_config("mdlm-tiny", batch=1, seq_len=8)
    return build_trace(cfg.model_copy(update={"model": cfg.model.model_copy(update={
        "hidden": 32, "heads": 4, "blocks": blocks, "cond_dim": 16, "vocab": 40,
        "freq_embed": 16})}))


# ---- quantizer properties -------------------------------------------------------------------
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_fake_quant_idempotent_and_scales_positive(bits):
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    x[:, 3] = 0.0  # an all-zero channel still gets a positive scale
    s = channel_scales(x, bits, 1)
    assert np.all(s > 0)
    q = fake_quant(x, s, bits)
    assert np.array_equal(fake_quant(q, channel_scales(q, bits, 1), bits), q)
    assert np.all(q[:, 3] == 0)


def test_error_shrinks_with_bits():
    """Uniform quantization noise power is step^2/12 and the step halves per bit: the
    error falls by ~6 dB per bit, so more bits never means more error."""
    x = np.random.default_rng(1).standard_normal((256, 64)).astype(np.float32)
    err = [np.abs(fake_quant(x, channel_scales(x, b, 1), b) - x).mean() for b in (4, 8, 16)]
    assert err[0] > err[1] > err[2]
    sq = [sqnr_db(x, fake_quant(x, channel_scales(x, b, 1), b)) for b in (4, 8)]
    assert 20 < sq[1] - sq[0] < 28  # 4 bits x ~6.02 dB


def test_fixed_point_grid():
    """bits 8, range 3.0: ceil(log2 3) = 2 integer bits, step 2^(2-7) = 1/32."""
    y = fixed_point(np.array([0.01, 1.0 / 32, 2.99, 5.0], np.float32), 8, 3.0)
    assert np.allclose(y, [0.0, 1.0 / 32, 96 / 32, 127 / 32])


def test_unsigned_scale_doubles_resolution():
    assert math.isclose(float(scale_for(1.0, 8)), 1 / 127, rel_tol=1e-6)
    assert math.isclose(float(scale_for(1.0, 8, unsigned=True)), 1 / 255, rel_tol=1e-6)


@pytest.mark.parametrize("what,bits,allowed", [("weight bits", 3, (4, 8, 16, 32)),
                                               ("activation bits", 4, (8, 16, 32)),
                                               ("weight bits", "int8", (4, 8, 16, 32))])
def test_unknown_bit_width_is_named(what, bits, allowed):
    with pytest.raises(InputError, match=f"unknown {what} {bits!r}"):
        check_bits(what, bits, allowed)


# ---- metrics --------------------------------------------------------------------------------
def test_metrics_identity():
    x = np.random.default_rng(2).standard_normal((4, 10, 30))
    assert sqnr_db(x, x) == math.inf
    assert math.isclose(cosine(x, x), 1.0, abs_tol=1e-6)
    assert kl_divergence(x, x) == 0.0
    assert top1_agreement(x, x) == 1.0


def test_sqnr_formula():
    """ref = ones (power 1 per element), noise = +-0.1 (power 0.01): 10 log10(100) = 20 dB."""
    ref = np.ones(1000)
    noise = 0.1 * np.where(np.arange(1000) % 2, 1.0, -1.0)
    assert math.isclose(sqnr_db(ref, ref + noise), 20.0, rel_tol=1e-5)


def test_kl_formula():
    """Two classes, p = (1/2, 1/2), q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3)."""
    p, q = np.log([[0.5, 0.5]]), np.log([[0.25, 0.75]])
    want = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert math.isclose(kl_divergence(p, q), want, rel_tol=1e-9)


# ---- quantized execution ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    t = tiny_trace()
    w = synthetic_weights(t, seed=0)
    tokens = np.random.default_rng(3).integers(0, 39, (1, 8))
    tokens[0, ::3] = 39
    ins = {"tokens": tokens, "sigma": np.zeros(1, np.float32)}
    return t, w, ins, execute(t, w, ins)


def test_fp32_setting_is_exact(tiny):
    t, w, ins, ref = tiny
    env = execute(t, quantize_weights(t, w, 32), ins, numerics=QuantNumerics())
    assert sqnr_db(ref["final.linear"], env["final.linear"]) == math.inf


def test_more_bits_more_accuracy(tiny):
    """Dynamic scales (each tensor its own range): W16A16 is near-exact, W8A8 in between."""
    t, w, ins, ref = tiny
    sq = {}
    for wb, ab in ((4, 8), (8, 8), (16, 16)):
        env = execute(t, quantize_weights(t, w, wb), ins,
                      numerics=QuantNumerics(w_bits=wb, a_bits=ab))
        sq[wb] = sqnr_db(ref["blocks.1.residual2"], env["blocks.1.residual2"])
    assert sq[4] < sq[8] < sq[16]
    assert sq[16] > 60


def test_accumulator_saturates(tiny):
    t, w, ins, _ = tiny
    num = QuantNumerics(w_bits=8, a_bits=8, acc_bits=16)
    execute(t, quantize_weights(t, w, 8), ins, numerics=num)
    assert num.saturated > 0


def test_evaluate_proxy_orders_and_caches():
    """W8A8 beats W4A8 on every metric; fp32 x fp32 is exact; results are cached."""
    r8 = evaluate("mdlm-tiny", 8, 8, levels=(0.5,), **TINY)
    r4 = evaluate("mdlm-tiny", 4, 8, levels=(0.5,), **TINY)
    assert r8.summary["kl"] < r4.summary["kl"]
    assert r8.summary["block_sqnr_db"] > r4.summary["block_sqnr_db"]
    assert "synthetic" in r8.summary["weights"] and "blocks 8->1" in r8.summary["reduced"]
    exact = evaluate("mdlm-tiny", 32, 32, levels=(0.5,), **TINY).summary
    assert exact["kl"] == 0.0 and exact["top1"] == 1.0 and exact["block_sqnr_db"] == math.inf
    assert evaluate("mdlm-tiny", 8, 8, levels=(0.5,), **TINY) is r8
    approx = evaluate("mdlm-tiny", 8, 8, 16, True, levels=(0.5,), **TINY).summary
    assert approx["block_sqnr_db"] < r8.summary["block_sqnr_db"]


def test_evaluate_rejects_bad_input():
    with pytest.raises(InputError, match="unknown weight bits 2"):
        evaluate("mdlm-tiny", 2, 8, **TINY)
    with pytest.raises(InputError, match="unknown size 'width'"):
        evaluate("mdlm-tiny", 8, 8, width=3)
    with pytest.raises(InputError, match=r"vocab 1: a masked diffusion model needs at least "
                       r"one token besides \[MASK\]"):
        evaluate("mdlm-tiny", 8, 8, **{**TINY, "vocab": 1})
    with pytest.raises(InputError, match="reduced size of mdlm-tiny: model.vocab: Input should "
                       "be greater than 0"):
        evaluate("mdlm-tiny", 8, 8, **{**TINY, "vocab": 0})


def test_sizes_no_machine_holds_are_refused_up_front(monkeypatch):
    """Memory is estimated before any array exists: (3 levels + calibration + quantized
    run) x every tensor in fp32, + 3 copies of the weights, + 4 x the largest tensor; the
    refusal gives the figure (here against a machine with 1 kB available)."""
    import dlmsim.functional as F
    from dlmsim.quant.evaluate import reduced_config, scope_ops
    from dlmsim.workloads import build_trace

    cfg, _ = reduced_config("mdlm-tiny", **TINY)
    t = build_trace(cfg)
    made = [x.numel for op in t.ops for x in op.outputs] + [x.numel for x in t.inputs]
    need = 4.0 * (5 * sum(made) + 3 * t.params + 4 * max(made))
    assert F.execution_bytes(t, scope_ops(t, "forward"), 5, 3) == need
    monkeypatch.setattr(F, "available_memory_bytes", lambda: 1000.0)
    with pytest.raises(InputError, match=rf"evaluating mdlm-tiny \(batch \d+, seq_len \d+, 1 "
                       rf"block\) needs about {need / 2**10:.1f} KiB of memory, 1000 B is "
                       r"available; choose smaller --batch"):
        evaluate("mdlm-tiny", 8, 8, seed=123, **TINY)


# ---- checkpoints -----------------------------------------------------------------------------
def test_safetensors_round_trip(tiny, tmp_path):
    from safetensors.numpy import save_file

    t, w, _, _ = tiny
    sd = {f"backbone.{k}": v for k, v in to_state_dict(t, w).items()}
    sd["backbone.rotary_emb.inv_freq"] = np.ones(4, np.float32)  # a buffer: ignored
    save_file(sd, tmp_path / "m.safetensors")
    got = load_checkpoint(tmp_path / "m.safetensors", t)
    assert got.keys() == w.keys()
    assert all(np.array_equal(got[k], w[k]) for k in w)


def test_checkpoint_missing_and_misshaped_are_named(tiny, tmp_path):
    from safetensors.numpy import save_file

    t, w, _, _ = tiny
    sd = to_state_dict(t, w)
    del sd["blocks.0.mlp.2.bias"]
    save_file(sd, tmp_path / "a.safetensors")
    with pytest.raises(InputError, match=r"lacks tensor\(s\) blocks\.0\.mlp\.2\.bias"):
        load_checkpoint(tmp_path / "a.safetensors", t)
    sd = to_state_dict(t, w)
    sd["blocks.1.attn_qkv.weight"] = sd["blocks.1.attn_qkv.weight"][:, :5].copy()
    save_file(sd, tmp_path / "b.safetensors")
    with pytest.raises(InputError, match=r"blocks\.1\.attn_qkv\.weight is \[96, 5\], "
                       r"the model needs \[96, 32\]"):
        load_checkpoint(tmp_path / "b.safetensors", t)


class _Global:
    """Written as a GLOBAL opcode (a torch name) by _TorchPickler; torch is not needed."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *a):  # pickle requires reduce callables to be callable
        raise NotImplementedError


class _Storage:
    def __init__(self, key, n):
        self.key, self.n = key, n


class _Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, 0, self.shape, stride, False, collections.OrderedDict()))


class _TorchPickler(pickle._Pickler):
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", "FloatStorage"), obj.key, "cpu", obj.n)
        return None


def write_torch_zip(path, state: dict, wrap: bool = True):
    """torch.save's zip layout: archive/data.pkl plus one raw little-endian file per storage,
    here inside a Lightning-style {'state_dict': ..., 'hyper_parameters': ...} dict."""
    objs, files = {}, {}
    for i, (k, v) in enumerate(state.items()):
        files[f"archive/data/{i}"] = np.ascontiguousarray(v, "<f4").tobytes()
        objs[k] = _Tensor(_Storage(str(i), v.size), tuple(v.shape))
    top = {"state_dict": objs, "hyper_parameters": {"lr": 3e-4}} if wrap else objs
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(top)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/version", "3\n")
        for n, b in files.items():
            zf.writestr(n, b)


def test_torch_zip_round_trip(tiny, tmp_path):
    t, w, _, _ = tiny
    write_torch_zip(tmp_path / "m.ckpt", {f"backbone.{k}": v
                                          for k, v in to_state_dict(t, w).items()})
    got = load_checkpoint(tmp_path / "m.ckpt", t)
    assert all(np.array_equal(got[k], w[k]) for k in w)


def test_not_a_checkpoint(tiny, tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a safetensors file or a PyTorch zip"):
        load_checkpoint(p, tiny[0])


# ---- CLI ---------------------------------------------------------------------------------------
def test_cli_quant_table_and_bad_bits(tmp_path):
    runner = CliRunner()
    args = ["quant", "mdlm-tiny", "--depth", "1", "--seq-len", "16", "--vocab", "64",
            "--batch", "1"]
    r = runner.invoke(app, args + ["--w-bits", "4", "--a-bits", "8", "--sfu-bits", "16",
                                   "--approx"])
    assert r.exit_code == 0, r.output
    assert "synthetic (seed 0)" in r.output and "KL" in r.output
    r = runner.invoke(app, args + ["--w-bits", "5"])
    assert r.exit_code == 1 and "unknown weight bits 5" in r.output


def test_cli_checkpoint(tmp_path):
    from safetensors.numpy import save_file

    cfg = load_workload_config("mdlm-tiny", batch=1, seq_len=16)
    t = build_trace(cfg.model_copy(update={"model": cfg.model.model_copy(update={
        "blocks": 1, "vocab": 64})}))
    save_file(to_state_dict(t, synthetic_weights(t, 5)), tmp_path / "c.safetensors")
    r = CliRunner().invoke(app, ["quant", "mdlm-tiny", "--checkpoint",
                                 str(tmp_path / "c.safetensors"), "--depth", "1",
                                 "--seq-len", "16", "--vocab", "64", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert "checkpoint c.safetensors" in r.output
