"""Functional execution against independent textbook numpy implementations.

Each reference below is written from the public model code (MDLM's models/dit.py,
Diffusion-LM's TransformerNetModel2 with HF BertLayer, LLaDA's modeling_llada.py), in
float64 and with PyTorch-layout weights ([out, in], y = x W^T), independent of the trace.
The executor runs the trace in float32; agreement is measured relative to the output's scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlmsim.errors import InputError
from dlmsim.functional import (
    erf,
    execute,
    exp2_fixed,
    gelu,
    silu,
    softmax,
)
from dlmsim.quant.weights import synthetic_weights, to_state_dict
from dlmsim.workloads import build_trace, load_workload_config


def small(name, model, **run):
    cfg = load_workload_config(name, **run)
    return build_trace(cfg.model_copy(update={"model": cfg.model.model_copy(update=model)}))


def rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


# ---- textbook pieces (float64) ------------------------------------------------------------
def lin(sd, x, name, bias=True):
    y = x @ sd[f"{name}.weight"].astype(np.float64).T
    return y + sd[f"{name}.bias"] if bias else y


def ln(x, w=None, b=None, eps=1e-5):
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def sm(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sinus(t, dim):
    half = dim // 2
    f = np.exp(-math.log(10000) * np.arange(half) / half)
    return np.concatenate([np.cos(t[:, None] * f), np.sin(t[:, None] * f)], -1)


def rope(x, theta):  # x [B, H, L, dh]
    dh, L = x.shape[-1], x.shape[-2]
    fr = np.outer(np.arange(L), 1.0 / theta ** (np.arange(0, dh, 2) / dh))
    emb = np.concatenate([fr, fr], -1)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return x * np.cos(emb) + np.concatenate([-x2, x1], -1) * np.sin(emb)


def attention(q, k, v):  # [B, H, L, dh]
    p = sm(q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]))
    o = p @ v
    return o.transpose(0, 2, 1, 3).reshape(o.shape[0], o.shape[2], -1)


def heads(x, h):
    b, seq, d = x.shape
    return x.reshape(b, seq, h, d // h).transpose(0, 2, 1, 3)


# ---- MDLM DDiT -----------------------------------------------------------------------------
def ddit_reference(sd, tokens, sigma, H, mask):
    """MDLM DIT.forward + SUBS: returns (block outputs, log-probs)."""
    silu64 = lambda z: z / (1 + np.exp(-z))
    x = sd["vocab_embed.embedding"][tokens].astype(np.float64)
    c = silu64(lin(sd, silu64(lin(sd, sinus(sigma, sd["sigma_map.mlp.0.weight"].shape[1]),
                                  "sigma_map.mlp.0")), "sigma_map.mlp.2"))
    B, L, D = x.shape
    outs = []
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        p = f"blocks.{i}"
        mod = lin(sd, c, f"{p}.adaLN_modulation")[:, None, :]
        sh1, sc1, g1, sh2, sc2, g2 = np.split(mod, 6, -1)
        h = ln(x) * sd[f"{p}.norm1.weight"] * (1 + sc1) + sh1
        qkv = lin(sd, h, f"{p}.attn_qkv", bias=False).reshape(B, L, 3, H, D // H)
        q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
        x = x + g1 * lin(sd, attention(rope(q, 1e4), rope(k, 1e4), v), f"{p}.attn_out", False)
        h = ln(x) * sd[f"{p}.norm2.weight"] * (1 + sc2) + sh2
        u = lin(sd, h, f"{p}.mlp.0")
        u = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))
        x = x + g2 * lin(sd, u, f"{p}.mlp.2")
        outs.append(x)
        i += 1
    sh, sc = np.split(lin(sd, c, "output_layer.adaLN_modulation")[:, None, :], 2, -1)
    logits = lin(sd, ln(x) * sd["output_layer.norm_final.weight"] * (1 + sc) + sh,
                 "output_layer.linear")
    logits[..., mask] += -1e6
    logits = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                             keepdims=True)) - logits.max(-1, keepdims=True)
    return outs, logits


@pytest.fixture(scope="module")
def mdlm():
    t = small("mdlm-tiny", {"hidden": 32, "heads": 4, "blocks": 2, "cond_dim": 16, "vocab": 40,
                                "freq_embed": 16}, batch=2, seq_len=8, time_conditioning=True)
    w = synthetic_weights(t, seed=1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 39, (2, 8))
    tokens[:, ::2] = 39  # [MASK] = V - 1
    ins = {"tokens": tokens, "sigma": np.array([0.3, 1.2], np.float32)}
    return t, w, ins, execute(t, w, ins, seed=3)


def test_ddit_matches_textbook(mdlm):
    """Block outputs and masked-position log-probs agree with the reference to ~1e-5."""
    t, w, ins, env = mdlm
    outs, logp = ddit_reference(to_state_dict(t, w), ins["tokens"],
                                ins["sigma"].astype(np.float64), 4, 39)
    for i, ref in enumerate(outs):
        assert rel_err(env[f"blocks.{i}.residual2"], ref) < 1e-5
    masked = ins["tokens"] == 39
    assert rel_err(env["final.log_softmax"][masked], logp[masked]) < 1e-5
    # unmasked positions are forced to one-hot at their token (SUBS)
    keep = ~masked
    assert np.all(np.argmax(env["final.log_softmax"][keep], -1) == ins["tokens"][keep])


def test_mdlm_sampler_ops_are_deterministic(mdlm):
    """Same seed, same draw; the update keeps every unmasked token."""
    t, w, ins, env = mdlm
    again = execute(t, w, ins, seed=3)
    assert np.array_equal(env["sample.draw"], again["sample.draw"])
    keep = ins["tokens"] != 39
    assert np.array_equal(env["tokens.next"][keep], ins["tokens"][keep])
    assert np.array_equal(env["tokens.final"], np.argmax(env["final.log_softmax"], -1))


@pytest.mark.parametrize("predictor", ["euler", "analytic"])
def test_sedd_sampler_ops(predictor):
    """SEDD's own sampler on a tiny model: the log score is the output shifted by
    log(e^sigma - 1) + log(V - 1) and 0 at the current token; the absorbing graph's reverse
    process never changes an unmasked token (Euler: its rate row is 0, so the sampled row is
    its one-hot; analytic: the transposed transition keeps only its column); the Euler rows
    (one-hot + rate) sum to 1, a rate matrix's rows summing to 0."""
    t = small("sedd-small", {"hidden": 32, "heads": 4, "blocks": 2, "cond_dim": 16,
                             "vocab": 40, "freq_embed": 16}, batch=2, seq_len=8,
              predictor=predictor)
    w = synthetic_weights(t, seed=1)
    tokens = np.random.default_rng(0).integers(0, 39, (2, 8))
    tokens[:, ::2] = 39
    sigma = np.array([0.3, 1.2], np.float32)
    env = execute(t, w, {"tokens": tokens, "sigma": sigma}, seed=3)
    logs = env["final.score_scale"]
    want = env["final.linear"] - np.log(np.expm1(sigma))[:, None, None] - np.log(39)
    np.put_along_axis(want, tokens[..., None], 0.0, axis=-1)
    assert rel_err(logs, want) < 1e-6
    keep = tokens != 39
    assert np.array_equal(env["tokens.next"][keep], tokens[keep])
    assert np.array_equal(env["tokens.final"][keep], tokens[keep])
    if predictor == "euler":
        r = env["sample.reverse_rate"].astype(np.float64)
        assert np.all(np.abs(r.sum(-1) - 1.0) <= 1e-5 * np.abs(r).sum(-1))
    assert {o.fn for o in t.phase_ops("step")} == (
        {"exp", "reverse_rate", "gumbel_argmax"} if predictor == "euler"
        else {"exp", "staggered_score", "transp_transition", "gumbel_argmax"})


# ---- Diffusion-LM (BERT layers) ----------------------------------------------------------
def test_bert_layers_match_textbook():
    """Diffusion-LM forward to the x0 estimate (time embed, up-proj, BERT layers with erf
    GELU and post-LN eps 1e-12, down-proj), then clamp rounding = nearest embedding."""
    t = small("diffusion-lm-e2e", {"hidden": 32, "heads": 4, "layers": 2, "ffn": 64, "embed_dim": 8,
                                       "vocab": 30, "max_positions": 16, "freq_embed": 16,
                                       "time_hidden": 24}, batch=2, seq_len=6)
    w = synthetic_weights(t, seed=2)
    rng = np.random.default_rng(1)
    ins = {"x_t": rng.standard_normal((2, 6, 8)).astype(np.float32),
           "t": np.array([5.0, 900.0], np.float32), "positions": np.arange(6)}
    env = execute(t, w, ins)
    sd = to_state_dict(t, w)
    silu64 = lambda z: z / (1 + np.exp(-z))
    gelu_erf = np.vectorize(lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2))))
    temb = lin(sd, silu64(lin(sd, sinus(ins["t"].astype(np.float64), 16), "time_embed.0")),
               "time_embed.2")
    h = lin(sd, np.tanh(lin(sd, ins["x_t"].astype(np.float64), "input_up_proj.0")),
            "input_up_proj.2")
    x = h + sd["position_embeddings.weight"][:6][None] + temb[:, None]
    x = ln(x, sd["LayerNorm.weight"], sd["LayerNorm.bias"], 1e-12)
    for i in range(2):
        p = f"input_transformers.layer.{i}"
        q, k, v = (heads(lin(sd, x, f"{p}.attention.self.{n}"), 4)
                   for n in ("query", "key", "value"))
        a = lin(sd, attention(q, k, v), f"{p}.attention.output.dense")
        x = ln(x + a, sd[f"{p}.attention.output.LayerNorm.weight"],
               sd[f"{p}.attention.output.LayerNorm.bias"], 1e-12)
        f = lin(sd, gelu_erf(lin(sd, x, f"{p}.intermediate.dense")), f"{p}.output.dense")
        x = ln(x + f, sd[f"{p}.output.LayerNorm.weight"], sd[f"{p}.output.LayerNorm.bias"],
               1e-12)
        assert rel_err(env[f"layers.{i}.norm2"], x) < 1e-5
    x0 = lin(sd, np.tanh(lin(sd, x, "output_down_proj.0")), "output_down_proj.2")
    assert rel_err(env["down_proj.fc2"], x0) < 1e-5
    table = sd["word_embedding.weight"].astype(np.float64)
    d2 = ((env["down_proj.fc2"][..., None, :] - table) ** 2).sum(-1)
    assert np.array_equal(env["round.ids"], d2.argmin(-1))


# ---- LLaDA ----------------------------------------------------------------------------------
def test_llada_layers_match_textbook():
    """LLaDA: RMSNorm (eps 1e-5), RoPE theta 5e5 rotate-half, SwiGLU, untied head."""
    t = small("llada-8b", {"hidden": 32, "heads": 2, "layers": 2, "ffn": 48, "vocab": 64,
                           "max_len": 64},
              seq_len=16, gen_len=8, block_len=4, steps=4)
    w = synthetic_weights(t, seed=4)
    tokens = np.random.default_rng(2).integers(0, 63, (1, 16))
    tokens[0, 8:] = 63
    env = execute(t, w, {"tokens": tokens})
    sd = to_state_dict(t, w)
    rms = lambda z, g: z / np.sqrt((z * z).mean(-1, keepdims=True) + 1e-5) * g
    x = sd["transformer.wte.weight"][tokens].astype(np.float64)
    for i in range(2):
        p = f"transformer.blocks.{i}"
        h = rms(x, sd[f"{p}.attn_norm.weight"])
        q, k, v = (heads(lin(sd, h, f"{p}.{n}_proj", False), 2) for n in "qkv")
        x = x + lin(sd, attention(rope(q, 5e5), rope(k, 5e5), v), f"{p}.attn_out", False)
        h = rms(x, sd[f"{p}.ff_norm.weight"])
        g = lin(sd, h, f"{p}.ff_proj", False)
        x = x + lin(sd, g / (1 + np.exp(-g)) * lin(sd, h, f"{p}.up_proj", False),
                    f"{p}.ff_out", False)
        assert rel_err(env[f"blocks.{i}.residual2"], x) < 1e-5
    logits = lin(sd, rms(x, sd["transformer.ln_f.weight"]), "transformer.ff_out", False)
    assert rel_err(env["final.lm_head"], logits) < 1e-5
    assert np.array_equal(env["sample.x0"], env["final.lm_head"].argmax(-1))
    sel = env["sample.select"]
    conf = env["sample.confidence"]
    assert np.all(conf[0, sel[0]] >= np.delete(conf[0], sel[0]).max())


# ---- functions and errors -----------------------------------------------------------------
def test_erf_and_approximations():
    """A&S erf within 1.5e-7 of math.erf; hard GELU/SiLU within 0.1 of the exact ones
    (their known worst case: the hard sigmoid's corners); the quadratic fixed-point exp2
    within its 2.7e-3 relative bound where representable; approximate softmax rows sum to 1
    and stay within 1e-2 of the exact softmax."""
    x = np.linspace(-6, 6, 2001)
    assert np.abs(erf(x) - np.vectorize(math.erf)(x)).max() < 1.5e-7
    assert np.abs(gelu(x, approx=True) - gelu(x)).max() < 0.1
    assert np.abs(silu(x, approx=True) - silu(x)).max() < 0.15
    z = np.linspace(-8, 0, 1001)
    assert np.abs(exp2_fixed(z, 24) / 2.0**z - 1).max() < 2.8e-3
    logits = np.random.default_rng(0).standard_normal((4, 50)) * 3
    s = softmax(logits, approx=True)
    assert np.allclose(s.sum(-1), 1.0)
    assert np.abs(s - softmax(logits)).max() < 1e-2


def test_missing_weight_is_named(mdlm):
    t, w, ins, _ = mdlm
    w = dict(w)
    del w["blocks.1.attn_qkv.weight"]
    with pytest.raises(InputError, match=r"blocks\.1\.attn_qkv\.weight"):
        execute(t, w, ins)


def test_misshaped_input_is_named(mdlm):
    t, w, ins, _ = mdlm
    with pytest.raises(InputError, match="tokens"):
        execute(t, w, {**ins, "tokens": ins["tokens"][:, :4]})
