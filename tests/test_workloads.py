"""Model configs -> operator traces: shapes, FLOPs, parameters, sampler schedule, API.

Expected numbers are derived by hand in each test's docstring, from the model facts in the
reference notes (shared/reference/workloads.md), not from the builder code. The per-element
SFU costs are the trace's definition of model-level FLOPs (dlmsim.workloads.vocab.SFU_FNS):
layernorm 8, rmsnorm 5, modulate 2, gelu 8, silu 4, tanh 4, swiglu 5, softmax 5,
log_softmax 5, rotary 3 per rotated element, residual 1 (2 when gated: x + gate*y), add 1 per
extra operand, timestep_embedding 4 per output element, exp_scale 2, gumbel_argmax 5,
argmax 1, rowmax 1, dist_argmin 3, topk 2, masked_update 1, posterior_update 4; layout ops
(split/merge heads) and gathers 0. A GEMM costs 2*M*K*N (+ M*N with a bias).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import dlmsim
from dlmsim.config import bundled_dir, bundled_names
from dlmsim.errors import InputError
from dlmsim.workloads import (
    Op,
    Schedule,
    Tensor,
    Trace,
    TraceError,
    load_workload,
    load_workload_config,
)
from dlmsim.workloads.build import mdlm_forward_passes

REPO = Path(__file__).resolve().parents[1]
WORKLOAD_FILES = sorted(p for p in (REPO / "workloads").iterdir() if not p.name.startswith("."))
BUNDLED = [
    "diffusion-lm-e2e",
    "diffusion-lm-roc",
    "llada-8b",
    "mdlm-medium",
    "mdlm-small",
    "mdlm-tiny",
    "sd15-unet",
    "sedd-small",
]

# Small run settings per model, so traces stay tiny (the model dims stay as published).
SMALL = {
    "mdlm-tiny": {"batch": 1, "seq_len": 8},
    "mdlm-small": {"batch": 1, "seq_len": 8},
    "mdlm-medium": {"batch": 2, "seq_len": 8},
    "sedd-small": {"batch": 1, "seq_len": 8},
    "diffusion-lm-e2e": {"batch": 2, "seq_len": 8},
    "diffusion-lm-roc": {"batch": 2, "seq_len": 8},
    "llada-8b": {"batch": 1, "seq_len": 32, "gen_len": 32, "block_len": 32, "steps": 32},
    "sd15-unet": {"batch": 1, "image_size": 64, "steps": 2},
}


def _small(name: str) -> Trace:
    return load_workload(name, **SMALL[name])


def _op(t: Trace, name: str):
    (op,) = [o for o in t.ops if o.name == name]
    return op


def _block_flops(t: Trace, block: int = 0, phase: str = "forward") -> float:
    return sum(o.flops for o in t.ops if o.block == block and o.phase == phase)


# ---- every bundled file loads; shapes chain ------------------------------------------


def test_bundled_names_are_the_files():
    assert bundled_names("workloads") == BUNDLED
    assert [p.name for p in WORKLOAD_FILES] == [f"{n}.yaml" for n in BUNDLED]


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.name)
def test_every_workload_file_loads(path):
    """Each file loads at its published run settings, by path and by bundled name."""
    t = load_workload(path)
    assert t.model == path.stem
    assert t.ops and t.params > 0 and t.flops_per_forward > 0
    assert 1 <= t.forward_passes <= t.steps + 1
    assert load_workload(path.stem) == t


def _chain_problems(t: Trace) -> list[str]:
    """Independent re-check of chaining: every activation/cache input has the shape of the
    latest op output (or graph input) of that name, and every name is produced before use."""
    seen = {x.name: x.shape for x in t.inputs}
    problems = []
    for op in t.ops:
        for x in op.inputs:
            if x.role in ("weight", "const", "index"):
                continue
            if x.name not in seen:
                problems.append(f"{op.name}: {x.name} used before it is produced")
            elif seen[x.name] != x.shape:
                problems.append(f"{op.name}: {x.name} {x.shape} != {seen[x.name]}")
        for x in op.outputs:
            seen[x.name] = x.shape
    return problems


@pytest.mark.parametrize("name", BUNDLED)
@pytest.mark.parametrize("size", ["small", "published"])
def test_shapes_chain(name, size):
    t = _small(name) if size == "small" else load_workload(name)
    assert _chain_problems(t) == []
    # Op names are unique, kinds and phases are from the known sets.
    assert len({o.name for o in t.ops}) == len(t.ops)
    assert {o.kind for o in t.ops} <= {"gemm", "sfu", "gather"}
    assert {o.phase for o in t.ops} <= {"once", "forward", "step"}


@pytest.mark.parametrize("name", [n for n in BUNDLED if n != "sd15-unet"])
def test_blocks_are_identical(name):
    """Repeated blocks have the same op signatures, so one block can be simulated once.
    (The U-Net's stages differ in shape: it has no repeated block.)"""
    t = _small(name)
    sigs = {}
    for o in t.ops:
        if o.block is not None:
            sigs.setdefault(o.block, []).append(o.signature())
    n = {"mdlm-tiny": 8, "mdlm-small": 12, "mdlm-medium": 24, "sedd-small": 12,
         "diffusion-lm-e2e": 12, "diffusion-lm-roc": 12, "llada-8b": 32}[name]
    assert t.n_blocks == n == len(sigs)
    assert all(s == sigs[0] for s in sigs.values())


# ---- parameter counts ----------------------------------------------------------------


def test_mdlm_small_params():
    """MDLM small: D 768, 12 blocks, cond 128, MLP 4D = 3072, V 50258, sinusoid 256.

    vocab_embed            V*D = 50258*768                                  = 38,598,144
    sigma_map  fc1 256*128 + 128 = 32,896;  fc2 128*128 + 128 = 16,512      =     49,408
    per block:
      adaLN   128*6D + 6D = 128*4608 + 4608 = 589,824 + 4,608              =    594,432
      norm1, norm2 weights 2*768                                            =      1,536
      qkv     768*2304 (no bias)                                            =  1,769,472
      attn_out 768*768 (no bias)                                            =    589,824
      mlp.0   768*3072 + 3072 = 2,359,296 + 3,072                           =  2,362,368
      mlp.2   3072*768 + 768  = 2,359,296 + 768                             =  2,360,064
      block total                                                           =  7,677,696
      x 12 blocks                                                           = 92,132,352
    output layer: adaLN 128*1536 + 1536 = 198,144; norm 768;
      linear 768*50258 + 50258 = 38,598,144 + 50,258 = 38,648,402          = 38,847,314
    total 38,598,144 + 49,408 + 92,132,352 + 38,847,314                    = 169,627,218
    (about 169.6 M: untied input embedding and output head.)
    """
    t = _small("mdlm-small")
    assert sum(w.numel for n, w in t.weights.items() if n.startswith("blocks.0.")) == 7_677_696
    assert t.params == 169_627_218
    # The parameter count does not depend on the run settings.
    assert load_workload("mdlm-small").params == 169_627_218
    # Weight bytes at bf16: 2 per parameter.
    assert sum(w.bytes for w in t.weights.values()) == 2 * 169_627_218


def test_sedd_small_has_the_mdlm_small_backbone():
    """SEDD uses the same DDiT backbone: same parameter count (169,627,218)."""
    assert _small("sedd-small").params == 169_627_218


def test_llada_8b_params():
    """LLaDA-8B: D 4096, 32 layers, SwiGLU FFN 12288, V 126464, no biases, untied.

    wte                 126464*4096                                       =   517,996,544
    per layer: q, k, v, attn_out 4*4096*4096 = 4*16,777,216               =    67,108,864
               ff_proj, up_proj, ff_out 3*4096*12288 = 3*50,331,648       =   150,994,944
               attn_norm + ff_norm weights 2*4096                         =         8,192
               layer total                                                =   218,112,000
               x 32 layers                                                = 6,979,584,000
    ln_f 4096 + ff_out (lm head) 4096*126464 = 4,096 + 517,996,544        =   518,000,640
    total 517,996,544 + 6,979,584,000 + 518,000,640                       = 8,015,581,184
    (about 8.0 B.)
    """
    t = _small("llada-8b")
    assert sum(w.numel for n, w in t.weights.items() if ".blocks.0." in n) == 218_112_000
    assert t.params == 8_015_581_184


def test_diffusion_lm_e2e_params():
    """Diffusion-LM E2E: BERT-base D 768, 12 layers, FFN 3072, e 16, V 821, 512 positions,
    time embedding 128 -> 512 -> 768. Every Linear and LayerNorm has a bias.

    time_embed  128*512 + 512 = 66,048;  512*768 + 768 = 393,984             =    460,032
    input_up_proj  16*768 + 768 = 13,056;  768*768 + 768 = 590,592          =    603,648
    position_embeddings 512*768                                             =    393,216
    LayerNorm weight + bias 2*768                                           =      1,536
    per layer: Q, K, V, attention dense 4*(768*768 + 768) = 4*590,592       =  2,362,368
               intermediate 768*3072 + 3072                                 =  2,362,368
               output 3072*768 + 768                                        =  2,360,064
               2 LayerNorms 2*2*768                                         =      3,072
               layer total                                                  =  7,087,872
               x 12 layers                                                  = 85,054,464
    output_down_proj  768*768 + 768 = 590,592;  768*16 + 16 = 12,304         =    602,896
    word_embedding (tied lm head) 821*16                                    =     13,136
    total 460,032 + 603,648 + 393,216 + 1,536 + 85,054,464 + 602,896 + 13,136
                                                                            = 87,128,928
    """
    t = _small("diffusion-lm-e2e")
    per_layer = sum(w.numel for n, w in t.weights.items() if ".layer.0." in n)
    assert per_layer == 7_087_872
    assert t.params == 87_128_928
    # fp32 weights: 4 bytes per parameter.
    assert sum(w.bytes for w in t.weights.values()) == 4 * 87_128_928


# ---- FLOPs -----------------------------------------------------------------------------


def test_mdlm_small_flops():
    """MDLM small at B 1, L 8 (T 128, cache on, time conditioning off, final denoise on).

    Tokens M = B*L = 8; D 768, H 12, dh 64, V 50258. Elements of [B,L,D]: 6,144.
    One block, forward phase (adaLN runs once per run, see below):
      norm1            8 * 6,144                                   =      49,152
      modulate1        2 * 6,144                                   =      12,288
      qkv              2*8*768*2304                                =  28,311,552
      rotary (q, k)    3 * 2*6,144                                 =      36,864
      scores           2 * (B*H=12) * 8*64*8                       =      98,304
      softmax          5 * 12*8*8                                  =       3,840
      P.V              2 * 12 * 8*8*64                             =      98,304
      attn_out         2*8*768*768                                 =   9,437,184
      residual1 gated  2 * 6,144                                   =      12,288
      norm2, modulate2 49,152 + 12,288                             =      61,440
      mlp1             2*8*768*3072 + 8*3072 = 37,748,736 + 24,576 =  37,773,312
      gelu             8 * 8*3072                                  =     196,608
      mlp2             2*8*3072*768 + 8*768  = 37,748,736 + 6,144  =  37,754,880
      residual2 gated  2 * 6,144                                   =      12,288
      block                                                        = 113,858,304
    Per forward: 12 blocks = 1,366,299,648; final norm 49,152; final modulate 12,288;
      final linear 2*8*768*50258 + 8*50258 = 617,570,304 + 402,064 = 617,972,368;
      log_softmax 5 * 402,064 = 2,010,320; embedding gather 0
      forward = 1,366,299,648 + 49,152 + 12,288 + 617,972,368 + 2,010,320 = 1,986,343,776
    Per step (sampler): exp_scale 2*402,064 = 804,128; Gumbel argmax 5*402,064 = 2,010,320;
      masked update 1*8 = 8                                         -> 2,814,456
    Once per run: sinusoid 4*256 = 1,024; fc1 2*256*128 + 128 = 65,664; silu 4*128 = 512;
      fc2 2*128*128 + 128 = 32,896; silu 512; 12 adaLN (2*128*4608 + 4608 = 1,184,256)
      = 14,211,072; final adaLN 2*128*1536 + 1536 = 394,752; final argmax 402,064
      once = 1,024 + 65,664 + 512 + 32,896 + 512 + 14,211,072 + 394,752 + 402,064
           = 15,108,496
    Forward passes: 2 + 127*(1 - (127/128)^8); (127/128)^8 = exp(8 * -0.0078432) = 0.939182,
      so 2 + 127*0.060818 = 9.7239.
    Run = 15,108,496 + 9.7239*1,986,343,776 + 128*2,814,456
        = 15,108,496 + 19,314,844,049 + 360,250,368 = 1.96902e10.
    """
    t = _small("mdlm-small")
    assert _block_flops(t) == 113_858_304
    assert all(_block_flops(t, b) == 113_858_304 for b in range(12))
    assert t.flops_per_forward == 1_986_343_776
    assert t.flops_per_step == 2_814_456
    assert t.flops_once == 15_108_496
    assert t.forward_passes == pytest.approx(9.7239, rel=1e-4)
    assert t.flops_per_run == pytest.approx(1.96902e10, rel=1e-5)
    assert t.flops_per_run == pytest.approx(
        t.flops_once + t.forward_passes * t.flops_per_forward + t.steps * t.flops_per_step)


def test_llada_8b_flops():
    """LLaDA-8B at B 1, L 32 (gen 32, block 32, steps 32). M = 32 tokens, [B,L,D] = 131,072.

    One block:
      attn_norm rmsnorm   5 * 131,072                              =       655,360
      q, k, v             3 * 2*32*4096*4096 = 3 * 1,073,741,824   = 3,221,225,472
      rotary q and k      2 * 3 * 131,072                          =       786,432
      scores              2 * (B*H=32) * 32*128*32                 =     8,388,608
      softmax             5 * 32*32*32                             =       163,840
      P.V                 2 * 32 * 32*32*128                       =     8,388,608
      attn_out            2*32*4096*4096                           = 1,073,741,824
      residual1           131,072
      ff_norm             655,360
      ff_gate, ff_up      2 * 2*32*4096*12288 = 2 * 3,221,225,472  = 6,442,450,944
      swiglu              5 * 32*12288                             =     1,966,080
      ff_down             2*32*12288*4096                          = 3,221,225,472
      residual2           131,072
      block = GEMMs 13,975,420,928 + SFU 4,489,216                 = 13,979,910,144
    Forward: 32 blocks = 447,357,124,608; final rmsnorm 655,360;
      lm head 2*32*4096*126464 = 33,151,778,816
      forward = 480,509,558,784   (about 2 * 7.50 G params outside wte * 32 tokens)
    Step: argmax 32*126464 = 4,046,848; softmax 5x = 20,234,240; rowmax 4,046,848;
      top-k 2*32 = 64; masked update 32           -> 28,328,032
    No once-per-run ops; a full forward every step: 32 passes.
    Run = 32 * (480,509,558,784 + 28,328,032) = 15,377,212,378,112.
    """
    t = _small("llada-8b")
    assert _block_flops(t) == 13_979_910_144
    assert t.flops_per_forward == 480_509_558_784
    assert t.flops_per_step == 28_328_032
    assert t.flops_once == 0
    assert t.forward_passes == 32
    assert t.flops_per_run == 15_377_212_378_112


def test_diffusion_lm_e2e_flops():
    """Diffusion-LM E2E at B 2, L 8 (T 2000, rounding on). M = 16 tokens, [B,L,D] = 12,288.

    Before the layers: sinusoid 4 * 2*128 = 1,024; time fc1 2*2*128*512 + 2*512 = 263,168;
      silu 4*2*512 = 4,096; time fc2 2*2*512*768 + 2*768 = 1,574,400;
      up fc1 2*16*16*768 + 16*768 = 405,504; tanh 4*12,288 = 49,152;
      up fc2 2*16*768*768 + 12,288 = 18,886,656; position gather 0;
      add of three operands 2*12,288 = 24,576; LayerNorm 8*12,288 = 98,304  -> 21,306,880
    One layer: Q, K, V 3*18,886,656 = 56,659,968; scores 2*(B*H=24)*8*64*8 = 196,608;
      softmax 5*24*8*8 = 7,680; P.V 196,608; dense 18,886,656; residual 12,288; LN 98,304;
      ffn1 2*16*768*3072 + 16*3072 = 75,546,624; gelu 8*16*3072 = 393,216;
      ffn2 2*16*3072*768 + 16*768 = 75,509,760; residual 12,288; LN 98,304
      layer = 227,618,304;  12 layers = 2,731,419,648
    After: down fc1 18,886,656; tanh 49,152; down fc2 2*16*768*16 + 16*16 = 393,472
      -> 19,329,280
    Forward = 21,306,880 + 2,731,419,648 + 19,329,280 = 2,772,055,808
    Step: rounding GEMM 2*16*16*821 = 420,352; argmin 3*16*821 = 39,408;
      posterior update 4*16*16 = 1,024                 -> 460,784
    Once: decode lm head 420,352 + argmax 13,136 = 433,488
    Run = 2000 * (2,772,055,808 + 460,784) + 433,488 = 5,545,033,617,488
    """
    t = _small("diffusion-lm-e2e")
    assert _block_flops(t) == 227_618_304
    assert t.flops_per_forward == 2_772_055_808
    assert t.flops_per_step == 460_784
    assert t.flops_once == 433_488
    assert t.forward_passes == 2000
    assert t.flops_per_run == 5_545_033_617_488


def test_flops_scale_with_tokens():
    """GEMM FLOPs of a linear are linear in the token count: mlp1 at B 2, L 8 is twice
    mlp1 at B 1, L 8 (2*16*768*3072 + 16*3072 = 75,546,624)."""
    a = _op(load_workload("mdlm-small", batch=1, seq_len=8), "blocks.0.mlp1")
    b = _op(load_workload("mdlm-small", batch=2, seq_len=8), "blocks.0.mlp1")
    assert b.flops == 2 * a.flops == 75_546_624
    assert b.gemm_dims == (1, 16, 768, 3072) and b.macs == 16 * 768 * 3072


# ---- sampler schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "batch", "seq_len", "expected"),
    [
        # (1 - 1/128)^16384 = exp(16384 * -0.0078432) = exp(-128.5) ~ 1e-56, so
        # 2 + 127 * 1 = 129: every step changes some token.
        (128, 16, 1024, 129.0),
        # ln(1 - 1e-4) = -1.00005e-4; * 1024 = -0.102405; exp = 0.902663;
        # 2 + 9999 * 0.097337 = 2 + 973.26 = 975.26.
        (10000, 1, 1024, 975.26),
        # 0.999^64 = exp(64 * -0.0010005) = exp(-0.064032) = 0.937975;
        # 2 + 999 * 0.062025 = 2 + 61.963 = 63.963.
        (1000, 1, 64, 63.963),
        # One token, T 4: the first step always runs; exactly one later step runs iff the
        # token is unmasked at step 1, 2 or 3 (prob 3/4): 1 + 3/4, + final = 2.75.
        # Formula: 2 + 3 * (1 - 3/4) = 2.75.
        (4, 1, 1, 2.75),
        # T 1: one step, nothing before it to change: 1 + 0, + final = 2.
        (1, 4, 4, 2.0),
    ],
)
def test_mdlm_cache_forward_passes(steps, batch, seq_len, expected):
    """MDLM ddpm_cache: E[forward passes] = 2 + (T-1)(1 - (1-1/T)^(B*L)) with the final
    denoise forward (arithmetic per case above)."""
    t = load_workload("mdlm-tiny", batch=batch, seq_len=seq_len, steps=steps)
    assert t.forward_passes == pytest.approx(expected, rel=1e-4)
    assert t.steps == steps
    assert mdlm_forward_passes(steps, batch, seq_len, cache=True) + 1 == t.forward_passes


def test_mdlm_without_cache_or_final_denoise():
    """No cache: every step runs the model, T = 128, + final denoise = 129, even at B 1 L 8
    (with the cache it is 9.72, see test_mdlm_small_flops). No final denoise: 128."""
    assert load_workload("mdlm-tiny", batch=1, seq_len=8, cache=False).forward_passes == 129
    t = load_workload("mdlm-tiny", batch=1, seq_len=8, cache=False, final_denoise=False)
    assert t.forward_passes == 128
    assert "final.argmax" not in {o.name for o in t.ops}
    assert load_workload("sedd-small", batch=1, seq_len=8).forward_passes == 129


def test_time_conditioning_phases():
    """Conditioning off (MDLM default): sigma_map and every adaLN linear run once per run.
    On (SEDD): they run every forward. 12 block adaLNs + final adaLN + sigma_map fc1/fc2."""
    off = _small("mdlm-small")
    on = _small("sedd-small")
    for t, phase in ((off, "once"), (on, "forward")):
        cond = [o for o in t.ops if o.name.startswith("sigma_map.") or o.name.endswith("adaLN")]
        assert len([o for o in cond if o.kind == "gemm"]) == 2 + 12 + 1
        assert {o.phase for o in cond} == {phase}
    # Moving the conditioning into the forward adds exactly its FLOPs there:
    # once(off) - final argmax = 15,108,496 - 402,064 = 14,706,432; SEDD's output is a
    # shifted log score (1 per element of [1, 8, 50258] = 402,064 elements) where MDLM has a
    # log-softmax (5): 14,706,432 - 4 * 402,064 = 13,098,176.
    assert on.flops_per_forward - off.flops_per_forward == 13_098_176


@pytest.mark.parametrize("predictor", ["euler", "analytic"])
def test_sedd_sampler_ops(predictor):
    """SEDD's own sampler over [1, 8, 50258] = 402,064 elements, per step: score = exp (1),
    Euler's reverse rate (4) or the analytic step's staggered score (3) x transposed
    transition (1), Gumbel-argmax sampling (5): 10 per element = 4,020,640 FLOPs either way;
    once per run the noise removal (an analytic step at the last time), also 4,020,640. No
    masked update: the sample is the next state."""
    t = load_workload("sedd-small", batch=1, seq_len=8, predictor=predictor)
    assert t.flops_per_step == 4_020_640 and t.flops_once == 4_020_640
    assert [o.fn for o in t.phase_ops("once")] == ["exp", "staggered_score",
                                                    "transp_transition", "gumbel_argmax"]
    assert _op(t, "final.score_scale").phase == "forward"
    assert "final.log_softmax" not in {o.name for o in t.ops}


# ---- per-step sampler ops --------------------------------------------------------------


def test_mdlm_sampler_ops():
    """Every step: Gumbel argmax over the whole [B, L, V] = [1, 8, 50258] -> [1, 8] tokens."""
    t = _small("mdlm-small")
    step = {o.name: o for o in t.phase_ops("step")}
    g = step["sample.gumbel_argmax"]
    assert (g.kind, g.fn) == ("sfu", "gumbel_argmax")
    assert g.inputs[0].shape == (1, 8, 50258) and g.outputs[0].shape == (1, 8)
    assert step["sample.update"].fn == "masked_update"
    assert _op(t, "final.linear").gemm_dims == (1, 8, 768, 50258)


def test_llada_sampler_ops():
    """Every step: softmax over [B, L, V] = [1, 32, 126464], confidence, top-k of
    gen_len / steps = 32 / 32 = 1 position; at published settings 128 / 128 = 1 too."""
    t = _small("llada-8b")
    step = {o.name: o for o in t.phase_ops("step")}
    assert step["sample.softmax"].fn == "softmax"
    assert step["sample.softmax"].inputs[0].shape == (1, 32, 126464)
    topk = step["sample.topk"]
    assert topk.fn == "topk" and topk.outputs[0].shape == (1, 1) and topk.attr("k") == 1
    assert t.forward_passes == t.steps == 32  # no cache: a full forward every step


def test_diffusion_lm_rounding_ops():
    """Rounding every step: [B*L, e] x [e, V] = [16, 16] x [16, 821] GEMM against the tied
    embedding table, a row-wise argmin over V, then the noise update on [B, L, e]."""
    t = _small("diffusion-lm-e2e")
    step = {o.name: o for o in t.phase_ops("step")}
    dot = step["round.dot"]
    assert dot.kind == "gemm" and dot.gemm_dims == (1, 16, 16, 821)
    assert dot.inputs[1].name == "word_embedding.weight" and dot.inputs[1].role == "weight"
    assert step["round.argmin"].fn == "dist_argmin"
    assert step["round.argmin"].outputs[0].shape == (2, 8)
    assert step["sample.posterior"].fn == "posterior_update"
    assert step["sample.posterior"].inputs[0].shape == (2, 8, 16)
    # Rounding off: only the noise update runs per step (4 * 2*8*16 = 1,024 FLOPs).
    plain = load_workload("diffusion-lm-e2e", batch=2, seq_len=8, rounding=False)
    assert [o.fn for o in plain.phase_ops("step")] == ["posterior_update"]
    assert plain.flops_per_step == 1_024
    # The ROC config: e 128, V 11043 -> [16, 128] x [128, 11043].
    roc = _small("diffusion-lm-roc")
    assert _op(roc, "round.dot").gemm_dims == (1, 16, 128, 11043)


# ---- attention ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "prefix", "bh", "seq", "dh"),
    [
        ("mdlm-small", "blocks.0.attn", 1 * 12, 8, 64),
        ("sedd-small", "blocks.0.attn", 1 * 12, 8, 64),
        ("mdlm-medium", "blocks.0.attn", 2 * 16, 8, 64),
        ("diffusion-lm-e2e", "layers.0.attn", 2 * 12, 8, 64),
        ("llada-8b", "blocks.0.attn", 1 * 32, 32, 128),
    ],
)
def test_attention_is_batched_gemms_plus_softmax(name, prefix, bh, seq, dh):
    """Scores: B*H products [L, dh] x [dh, L] scaled by 1/sqrt(dh); softmax over
    [B, H, L, L]; P.V: B*H products [L, L] x [L, dh]."""
    t = _small(name)
    s, sm, pv = (_op(t, f"{prefix}.{n}") for n in ("scores", "softmax", "pv"))
    assert (s.kind, s.fn, s.gemm_dims) == ("gemm", "matmul", (bh, seq, dh, seq))
    assert s.attr("transpose_b") is True
    assert s.attr("scale") == pytest.approx(1 / math.sqrt(dh))
    assert (sm.kind, sm.fn, sm.elements) == ("sfu", "softmax", bh * seq * seq)
    assert (pv.kind, pv.fn, pv.gemm_dims) == ("gemm", "matmul", (bh, seq, seq, dh))
    assert s.weight_operand is None and pv.weight_operand is None
    idx = [o.name for o in t.ops]
    assert idx.index(s.name) < idx.index(sm.name) < idx.index(pv.name)


# ---- Python API --------------------------------------------------------------------------


def test_python_api():
    """dlmsim.load_workload(name, **overrides) and the Trace totals and dataframe."""
    t = dlmsim.load_workload("mdlm-small", batch=1, seq_len=8, steps=1000)
    assert isinstance(t, dlmsim.Trace)
    assert all(isinstance(o, dlmsim.Op) for o in t.ops)
    assert t.params == 169_627_218
    assert t.flops_per_forward == 1_986_343_776
    # 2 + 999 * (1 - 0.999^8); 0.999^8 = 0.992028, so 2 + 999 * 0.007972 = 9.9640.
    assert t.forward_passes == pytest.approx(9.9640, rel=1e-4)
    assert t.flops_per_run == pytest.approx(
        t.flops_once + t.forward_passes * t.flops_per_forward + 1000 * t.flops_per_step)
    assert t.run_param("steps") == 1000 and t.run_param("batch") == 1
    df = t.to_dataframe()
    assert len(df) == len(t.ops)
    assert list(df.name) == [o.name for o in t.ops]
    assert {"name", "kind", "fn", "phase", "dims", "macs", "flops", "bytes"} <= set(df.columns)
    assert df[df.phase == "forward"].flops.sum() == t.flops_per_forward
    # Overrides left as None mean "the config's value".
    assert dlmsim.load_workload("mdlm-small", batch=None) == dlmsim.load_workload("mdlm-small")


def test_run_overrides_are_validated():
    cfg = load_workload_config("mdlm-small", batch=3, precision="fp32")
    assert (cfg.run.batch, cfg.run.precision, cfg.run.seq_len) == (3, "fp32", 1024)
    t = load_workload("mdlm-tiny", batch=1, seq_len=8, precision="fp32")
    assert {w.dtype for w in t.weights.values()} == {"fp32"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch": 0}, "run.batch: Input should be greater than 0"),
        ({"seq_len": -4}, "run.seq_len: Input should be greater than 0"),
        ({"steps": 1.5}, "run.steps: Input should be a valid integer"),
        ({"batch": "abc"}, "run.batch: Input should be a valid integer"),
        ({"precision": "fp8"}, "run.precision: Input should be"),
        ({"colour": "red"}, "unknown key 'run.colour'"),
        # a trace holds every block: 2^31 blocks would never finish building
        ({"model.blocks": 2**31}, "model.blocks: Input should be less than or equal to 1024"),
    ],
)
def test_bad_run_overrides(overrides, message):
    with pytest.raises(InputError, match=f"mdlm-small.yaml: {message}"):
        load_workload("mdlm-small", **overrides)


def test_schema_cross_checks():
    with pytest.raises(InputError, match="gen_len 128 exceeds seq_len 64"):
        load_workload("llada-8b", seq_len=64)
    with pytest.raises(InputError, match="gen_len 100 is not a multiple of block_len 32"):
        load_workload("llada-8b", gen_len=100)
    with pytest.raises(InputError, match="steps 6 is not a multiple of the 4 generation"):
        load_workload("llada-8b", steps=6)
    with pytest.raises(InputError, match="seq_len 1024 exceeds max_positions 512"):
        load_workload("diffusion-lm-e2e", seq_len=1024)
    with pytest.raises(InputError, match="Diffusion-LM has no sampler cache"):
        load_workload("diffusion-lm-e2e", cache=True)


def test_unknown_workload_lists_known_names():
    with pytest.raises(InputError) as e:
        load_workload("mdlm-smal")
    msg = str(e.value)
    assert "unknown workload 'mdlm-smal'" in msg and "did you mean 'mdlm-small'" in msg
    assert "known: " + ", ".join(BUNDLED) in msg


# ---- IR FLOP rules (regressions of counting fixes) ----------------------------------------


def test_sfu_flop_rules():
    """rotary on MDLM's fused qkv rotates q and k only: 3 * 2 * (1*8*768) = 36,864, not
    3 * 3 * 6,144; the timestep sinusoid costs 4 per output element: 4 * 1*256 = 1,024;
    Diffusion-LM adds three operands (h + pos + time): 2 adds * 2*8*768 = 24,576."""
    m = _small("mdlm-small")
    assert _op(m, "blocks.0.rotary").flops == 36_864
    assert _op(m, "sigma_map.sinusoid").flops == 1_024
    assert _op(_small("diffusion-lm-e2e"), "embed.add").flops == 24_576


def test_run_must_be_a_mapping(tmp_path):
    text = (bundled_dir("workloads") / "mdlm-tiny.yaml").read_text()
    p = tmp_path / "m.yaml"
    p.write_text("".join("run: [1, 2]\n" if ln.startswith("run:") else ln
                         for ln in text.splitlines(keepends=True)))
    with pytest.raises(InputError, match="run: expected a mapping of run parameters"):
        load_workload(p)


def test_ir_and_check_import_one_way():
    """vocab <- check <- ir: the checks never import the IR they check (no cycle)."""
    import ast

    import dlmsim.workloads as pkg

    def imports(module: str) -> set[str]:
        tree = ast.parse((Path(pkg.__file__).parent / f"{module}.py").read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert "dlmsim.workloads.ir" not in imports("check")
    assert not {m for m in imports("vocab") if m.startswith("dlmsim")}
    assert "dlmsim.workloads.check" in imports("ir")


# ---- convolution and the U-Net's functions ------------------------------------------------


def _conv(x, w, out, bias=None, **attrs):
    ins = (Tensor("x", x), Tensor("w", w, role="weight")) + (
        (Tensor("b", bias, role="weight"),) if bias else ())
    return Op("c", "gemm", "conv2d", ins, (Tensor("y", out),), attrs=tuple(sorted(attrs.items())))


def _one_op_trace(op, inputs=()):
    return Trace("t", (op,), Schedule(1, 1.0), (), tuple(inputs) or (op.inputs[0],))


def test_conv2d_is_an_implicit_gemm():
    """conv 3x3, stride 2, padding 1 of x[2, 8, 9, 9] to 16 channels in 2 groups:
    Ho = floor((9 + 2 - 2 - 1) / 2) + 1 = 5; per group M = 2*5*5 = 50 output pixels,
    K = 8/2 * 3*3 = 36, N = 16/2 = 8: MACs 2 * 50*36*8 = 28,800; FLOPs 2 x MACs plus one
    bias add per output element (2*16*5*5 = 800) = 58,400. The operands read are x and W
    themselves (2*8*9*9 + 16*4*3*3 elements), not the 9x larger im2col matrix."""
    op = _conv((2, 8, 9, 9), (16, 4, 3, 3), (2, 16, 5, 5), bias=(16,), stride=2, padding=1,
               groups=2)
    _one_op_trace(op)  # the shape rules accept it
    assert op.gemm_dims == (2, 50, 36, 8)
    assert op.macs == 28_800 and op.flops == 58_400
    assert op.input_bytes == 2 * (2 * 8 * 9 * 9 + 16 * 4 * 3 * 3 + 16)
    assert op.dims == "3x3/2 2x [50,36]x[36,8]"
    # Pairs and dilation: 3x3 dilated by 2 needs padding 2 to keep 9x9.
    _one_op_trace(_conv((1, 4, 9, 7), (4, 4, 3, 3), (1, 4, 9, 7), padding=(2, 2),
                        dilation=2))


@pytest.mark.parametrize("x, w, out, attrs, message", [
    ((2, 8, 9, 9), (16, 8, 3, 3), (2, 16, 9, 9), {}, "the convolution gives [2,16,7,7]"),
    ((2, 8, 9, 9), (16, 8, 3, 3), (2, 16, 9, 9), {"groups": 3}, "groups 3 must divide"),
    ((2, 8, 9, 9), (16, 3, 3, 3), (2, 16, 7, 7), {}, "expects 3 input channels, x has 8"),
    ((2, 8, 9), (16, 8, 3, 3), (2, 16, 7, 7), {}, "conv2d takes x[B,Cin,H,W]"),
    ((2, 8, 2, 2), (16, 8, 3, 3), (2, 16, 1, 1), {}, "does not fit an input of 2"),
    ((2, 8, 9, 9), (16, 8, 3, 3), (2, 16, 9, 9), {"stride": 0}, "stride and dilation"),
])
def test_conv2d_shape_errors(x, w, out, attrs, message):
    with pytest.raises(TraceError, match=re.escape(message)):
        _one_op_trace(_conv(x, w, out, **attrs))


def _sfu(fn, ins, out, **attrs):
    tensors = tuple(Tensor(f"i{k}", s, role=r) for k, (s, r) in enumerate(ins))
    return Op("f", "sfu", fn, tensors, (Tensor("o", out),), attrs=tuple(sorted(attrs.items())))


@pytest.mark.parametrize("op, flops", [
    (_sfu("groupnorm", [((2, 64, 4, 4), "activation")], (2, 64, 4, 4), groups=32), 8 * 2048),
    (_sfu("geglu", [((2, 5, 16), "activation")], (2, 5, 8)), 4.5 * 160),
    (_sfu("upsample", [((1, 3, 2, 2), "activation")], (1, 3, 4, 4), scale=2), 0),
    (_sfu("concat", [((1, 3, 2, 2), "activation"), ((1, 5, 2, 2), "activation")],
          (1, 8, 2, 2), axis=1), 0),
    (_sfu("transpose", [((1, 3, 2, 2), "activation")], (1, 4, 3), perm=(0, 2, 3, 1)), 0),
    (_sfu("cfg_combine", [((2, 4, 8, 8), "activation")], (1, 4, 8, 8)), 1.5 * 512),
])
def test_new_sfu_shapes_and_flops(op, flops):
    """Per-element costs (ir.SFU_FNS): groupnorm 8, geglu 4.5 per input element (gelu on
    half, a product per output), cfg_combine 1.5 per input element (3 per output); data
    movement 0. The elements a concat streams are all its inputs'; an upsample's are its
    output's."""
    _one_op_trace(op, [t for t in op.inputs if t.role == "activation"])
    assert op.flops == flops
    if op.fn == "concat":
        assert op.elements == 3 * 4 + 5 * 4
    if op.fn == "upsample":
        assert op.elements == op.outputs[0].numel


@pytest.mark.parametrize("op, message", [
    (_sfu("groupnorm", [((2, 60, 4, 4), "activation")], (2, 60, 4, 4), groups=32),
     "groups dividing the 60 channels"),
    (_sfu("groupnorm", [((2, 64, 16), "activation")], (2, 64, 16), groups=32), "NCHW"),
    (_sfu("upsample", [((1, 3, 2, 2), "activation")], (1, 3, 4, 4), scale=3), "scale 3"),
    (_sfu("concat", [((1, 3, 2, 2), "activation"), ((1, 5, 3, 2), "activation")],
          (1, 8, 2, 2), axis=1), "joined along axis 1"),
    (_sfu("transpose", [((1, 3, 2, 2), "activation")], (1, 4, 3), perm=(0, 1, 1, 2)),
     "a permutation of 0..3"),
    (_sfu("geglu", [((2, 5, 15), "activation")], (2, 5, 7)), "the last dim halves"),
])
def test_new_sfu_shape_errors(op, message):
    with pytest.raises(TraceError, match=re.escape(message)):
        _one_op_trace(op, [t for t in op.inputs if t.role == "activation"])
