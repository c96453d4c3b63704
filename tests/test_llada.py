"""LLaDA's inference tricks as run parameters: kinds of forward pass, FLOPs, cache traffic.

A small LLaDA (D 64, 2 layers, 4 heads of 16, SwiGLU 128, V 100) at batch 1, prompt P = 16,
gen_len G = 32 in blocks of Bl = 16 (nb = 2), L = 48, 32 steps (spb = 16). Expected numbers
are derived by hand in each docstring from Fast-dLLM's and dLLM-Cache's published code
(NVlabs/Fast-dLLM llada/generate.py, maomaocun/dLLM-cache hooks/cache_hook_LLaDA.py).
"""

from __future__ import annotations

import pytest

import dlmsim
from dlmsim.engine import _forward
from dlmsim.errors import InputError
from dlmsim.mapping import Mapper
from dlmsim.workloads import build_trace, load_workload, load_workload_config

D, F, V, LAYERS = 64, 128, 100, 2
P, G, BL, L = 16, 32, 16, 48


def _trace(**run):
    cfg = load_workload_config("llada-8b", seq_len=L, gen_len=G, block_len=BL, steps=32, **run)
    model = cfg.model.model_copy(update={"hidden": D, "layers": LAYERS, "heads": 4, "ffn": F,
                                         "vocab": V})
    return build_trace(cfg.model_copy(update={"model": model}))


def layer_macs(q: int, keys: int) -> int:
    """GEMM MACs of one block computing q rows attending to `keys` keys: q, k, v and the
    attention output projections 4 q D^2, scores and P.V 2 q keys D, SwiGLU 3 q D F."""
    return 4 * q * D * D + 2 * q * keys * D + 3 * q * D * F


def macs(t, variant: str) -> int:
    return sum(o.macs for o in t.phase_ops("forward") if o.variant == variant)


def test_no_trick_is_llada_as_published():
    """Every step a full forward over L = 48 rows (one kind of pass, 32 of them), logits and
    sampling over all 48 positions, one token per step (G / steps = 1)."""
    t = _trace()
    assert t.schedule.variants == () and t.forward_passes == 32 and t.steps == 32
    assert macs(t, "") == LAYERS * layer_macs(L, L) + L * D * V
    assert next(o for o in t.ops if o.name == "sample.softmax").inputs[0].shape == (1, L, V)
    assert t.cache_bytes == 0


def test_dual_cache():
    """Fast-dLLM DualCache: per block one refresh over all 48 rows that stores every layer's
    K and V (2 x 2 layers x 48 x 64 elements), then spb - 1 = 15 passes over the block's 16
    rows that read the other 32 rows' K/V. 2 refreshes + 30 cached passes = 32. The
    lm_head and the sampler see the block's 16 rows only. GEMM MACs of a cached pass:
    2 layer_macs(16, 48) + 16 D V; of a refresh: 2 layer_macs(48, 48) + 16 D V."""
    t = _trace(kv_cache="dual")
    assert t.schedule.variants == (("refresh", 2.0), ("cached", 30.0))
    assert macs(t, "cached") == LAYERS * layer_macs(BL, L) + BL * D * V
    assert macs(t, "refresh") == LAYERS * layer_macs(L, L) + BL * D * V
    assert t.flops_per_run == pytest.approx(
        2 * sum(o.flops for o in t.ops if o.variant == "refresh")
        + 30 * sum(o.flops for o in t.ops if o.variant == "cached") + 32 * t.flops_per_step)
    stores = [o for o in t.ops if o.fn == "cache_write"]
    assert len(stores) == 2 * LAYERS and all(o.variant == "refresh" for o in stores)
    assert t.cache_bytes == 2 * LAYERS * L * D * 2  # bf16: every row's K and V
    assert next(o for o in t.ops if o.name == "sample.softmax").inputs[0].shape == (1, BL, V)


def test_prefix_cache():
    """Fast-dLLM PrefixCache recomputes the block and everything after it: in block 0 the
    cached passes compute 32 rows (block 0 + block 1) over P = 16 cached prefix rows, in
    block 1 16 rows over 32 cached ones; keys are always all 48."""
    t = _trace(kv_cache="prefix")
    assert t.schedule.variants == (("refresh", 2.0), ("cached0", 15.0), ("cached1", 15.0))
    assert macs(t, "cached0") == LAYERS * layer_macs(32, L) + BL * D * V
    assert macs(t, "cached1") == LAYERS * layer_macs(16, L) + BL * D * V
    cache = {o.inputs[1].shape for o in t.ops if o.name.startswith("cached0.")
             and o.fn == "concat"}
    assert cache == {(1, 4, P, 16)}


def test_semi_ar_truncation():
    """Semi-AR decoding that feeds only the prompt and the blocks so far: block 0's 16 passes
    run 32 rows, block 1's 48."""
    t = _trace(semi_ar=True)
    assert t.schedule.variants == (("block0", 16.0), ("block1", 16.0))
    assert macs(t, "block0") == LAYERS * layer_macs(32, 32) + BL * D * V
    assert macs(t, "block1") == LAYERS * layer_macs(48, 48) + BL * D * V
    both = _trace(semi_ar=True, kv_cache="dual")
    assert both.schedule.variants == (("refresh0", 1.0), ("cached0", 15.0), ("refresh1", 1.0),
                                      ("cached1", 15.0))
    assert macs(both, "cached0") == LAYERS * layer_macs(BL, 32) + BL * D * V


def test_parallel_decoding():
    """Confidence-threshold parallel decoding at an expected 3 tokens per step: each block
    takes ceil(16 / 3) = 6 steps, 12 in all (steps = 32 is not used), each selecting
    ceil(3) = 3 positions; with DualCache 2 refreshes + 2 x 5 cached passes."""
    t = _trace(unmask_per_step=3.0)
    assert t.steps == 12 and t.forward_passes == 12 and t.run_param("steps") == 12
    assert next(o for o in t.ops if o.name == "sample.topk").attr("k") == 3
    d = _trace(unmask_per_step=3.0, kv_cache="dual")
    assert d.schedule.variants == (("refresh", 2.0), ("cached", 10.0))


def test_dllm_cache():
    """dLLM-Cache with prompt refresh every 100 steps, response refresh every 7, ratio 0.25
    over 32 steps: a full refresh at step 0, response refreshes at 7, 14, 21, 28, and 27
    cached steps. A response refresh computes the 32 response rows over the 16 cached prompt
    rows and stores K, V, attention and FFN outputs. A cached step, per layer: the response
    rows' V (32 D^2), their cosine to the cached V, and S = int(0.25 x 32) = 8 rows
    recomputed: q, k (2 S D^2), attention over 48 keys (2 S 48 D), attention output (S D^2),
    SwiGLU (3 S D F); then 16 block rows' lm_head."""
    t = _trace(dllm_cache=True)
    assert t.schedule.variants == (("refresh", 1.0), ("response", 4.0), ("cached", 27.0))
    assert macs(t, "response") == LAYERS * layer_macs(G, L) + BL * D * V
    s = 8
    per_layer = G * D * D + 2 * s * D * D + 2 * s * L * D + s * D * D + 3 * s * D * F
    assert macs(t, "cached") == LAYERS * per_layer + BL * D * V
    fns = [o.fn for o in t.ops if o.variant == "cached" and o.block == 0]
    assert fns.count("cosine") == 1 and fns.count("take") == 2 and fns.count("put") == 2
    kinds = {o.outputs[0].name.rsplit(".", 1)[1] for o in t.ops
             if o.variant == "response" and o.fn == "cache_write"}
    assert kinds == {"k", "v", "attn", "mlp"}


def test_cache_traffic_of_a_cached_pass():
    """The dual cache's cached pass reads, per layer, the K and V of the 32 rows it does not
    compute: 2 x 32 x 64 bytes at 8-bit activations = 4096 B per layer; the refresh writes
    2 x 48 x 64 = 6144 B per layer."""
    t = _trace(kv_cache="dual")
    m = Mapper(dlmsim.load_arch("int8-zcu102"))
    cached = [o for o in t.phase_ops("forward") if o.variant == "cached"]
    plans = m.plan(cached)
    reads = sum(p.dram_read_bytes for p in plans for o in [p.op]
                if any(x.role == "cache" for x in o.inputs))
    assert reads == LAYERS * 2 * 32 * D
    refresh = m.plan([o for o in t.phase_ops("forward") if o.variant == "refresh"])
    assert sum(p.dram_write_bytes for p in refresh if p.op.fn == "cache_write") == (
        LAYERS * 2 * L * D)


def test_simulated_run_is_the_sum_of_its_passes():
    """A run's cycles = once + sum over kinds of passes x (that kind's pass) + steps x step;
    SimResult.forward is the mean pass."""
    arch = dlmsim.load_arch("int8-zcu102")
    t = _trace(kv_cache="dual", unmask_per_step=2.0)
    res = dlmsim.simulate(arch, t)
    m = Mapper(arch)
    per_kind = {name: sum(r["cycles"] * r["n"] for r in _forward(m, list(ops), False)[0])
                for name, _, ops in t.forward_variants()}
    fwd = sum(p * per_kind[n] for n, p, _ in t.forward_variants())
    assert res.forward.cycles * t.forward_passes == pytest.approx(fwd)
    assert res.total_cycles == pytest.approx(
        res.once.cycles + fwd + t.steps * res.step.cycles)
    plain = dlmsim.simulate(arch, _trace())
    assert res.total_cycles < plain.total_cycles
    assert (res.ops.span_cycles >= res.ops.roofline_cycles * (1 - 1e-9)).all()


def test_trace_file_round_trip(tmp_path):
    """Variants and their passes survive a trace file."""
    t = _trace(kv_cache="prefix")
    path = tmp_path / "t.yaml"
    dlmsim.workloads.write_trace(t, path)
    back = load_workload(path)
    assert back.schedule.variants == t.schedule.variants
    assert back.flops_per_run == pytest.approx(t.flops_per_run)


@pytest.mark.parametrize("run, message", [
    ({"dllm_cache": True, "kv_cache": "dual"}, "dllm_cache is modelled alone"),
    ({"unmask_per_step": 0.5}, "unmask_per_step"),
    ({"unmask_per_step": 20.0}, "exceeds block_len 16"),
    ({"kv_cache": "full"}, "kv_cache"),
    ({"update_ratio": 0.0}, "update_ratio"),
])
def test_bad_settings(run, message):
    with pytest.raises(InputError, match=message):
        _trace(**run)


def test_dram_footprint_counts_each_kind_of_pass_once():
    """The footprint takes the largest live set of any kind of pass, not of all of them in a
    row (every refresh stores under the same cache names): the refresh holds at most one
    layer's K and V (2 x 48 x 64 B at 8 bits) longer than a plain pass, until they are
    stored after the attention. State, by hand: the cached K/V (2 layers x K, V x 32 rows x
    64 = 8192 B), the block's logits read by the sampler (16 x 100 = 1600 B) and the token
    ids at 4 B (tokens 48, tokens.16 and tokens.block 16 each: 320 B) = 10,112 B."""
    from dlmsim.resources import dram_footprint

    arch = dlmsim.load_arch("int8-zcu102")
    plain, dual = dram_footprint(arch, _trace()), dram_footprint(arch, _trace(kv_cache="dual"))
    assert dual.activations_bytes <= plain.activations_bytes + 2 * L * D
    assert dual.state_bytes == 10_112
