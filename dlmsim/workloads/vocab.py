"""The names a trace may use: op kinds, phases, tensor roles, dtypes and SFU functions.

The bottom of the workloads package: `check` validates traces against these names and `ir`
derives FLOPs and bytes from them; this module imports neither.
"""

from __future__ import annotations

ROLES = ("weight", "activation", "cache", "index", "const")
PHASES = ("once", "forward", "step")
KINDS = ("gemm", "sfu", "gather")

# Bytes per element of each dtype name used in traces.
DTYPE_BYTES = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "int32": 4.0,
    "int16": 2.0,
    "int8": 1.0,
    "int4": 0.5,
    "idx": 4.0,  # token indices (int32)
}

# SFU functions and the element-wise operations per element each costs in FLOPs. These are
# the *model-level* FLOP counts of the trace (a textbook count: e.g. layernorm = mean, var,
# normalise, scale); the hardware cost of each function is a property of the SFU (arch).
SFU_FNS: dict[str, float] = {
    "layernorm": 8.0,        # mean, centre, square, var, rsqrt, normalise, (scale, shift)
    "rmsnorm": 5.0,          # square, mean, rsqrt, normalise, scale
    "modulate": 2.0,         # x * (1 + scale) + shift
    "gelu": 8.0,             # tanh or erf form, as a polynomial/tanh evaluation
    "silu": 4.0,             # x * sigmoid(x)
    "tanh": 4.0,
    "swiglu": 5.0,           # silu(gate) * up
    "softmax": 5.0,          # max, sub, exp, sum, divide
    "log_softmax": 5.0,      # max, sub, exp, sum, log/sub
    "rotary": 3.0,           # q*cos + rotate_half(q)*sin, per rotated element
    "split_heads": 0.0,      # layout only
    "merge_heads": 0.0,      # layout only
    "residual": 1.0,         # x + y, or x + gate * y (2 with a gate, see Op.flops)
    "add": 1.0,
    "timestep_embedding": 4.0,  # sinusoid: multiply, sin/cos
    "exp_scale": 2.0,        # exp then scale (MDLM's p_x0 -> q_xs)
    "gumbel_argmax": 5.0,    # rand, log, log, divide, compare
    "argmax": 1.0,
    "rowmax": 1.0,           # max over the last dim (LLaDA's confidence)
    "dist_argmin": 3.0,      # ||E||^2 + ||x||^2 - 2 x.E, compare
    "topk": 2.0,
    "masked_update": 1.0,    # keep unmasked tokens, write new ones
    "posterior_update": 4.0, # Diffusion-LM: a*x0 + b*xt + sigma*noise
    # Stable Diffusion's U-Net and its sampler.
    "groupnorm": 8.0,        # as layernorm, statistics over (C/groups, H, W) per sample
    "geglu": 4.5,            # per input element: half of [.., 2F] is gelu'd (8), then x * g (1)
    "mul": 1.0,              # x * y (or x * a constant)
    "cfg_combine": 1.5,      # per input element of [2B, ..]: u + s * (c - u) per output
    "ddim_step": 6.0,        # x0 = (x - a*eps) * b, x_prev = c*x0 + d*eps
    # SEDD's own sampler (score_entropy_discrete_diffusion model/transformer.py, sampling.py,
    # graph_lib.py: the absorbing graph).
    "score_scale": 1.0,      # log score - log(e^sigma - 1) - log(V - 1); 0 at the token
    "exp": 1.0,              # score = exp(log score)
    "reverse_rate": 4.0,     # Euler: transp_rate * score, minus the row sum on the diagonal,
                             # x dt * dsigma, + one-hot(x)
    "staggered_score": 3.0,  # score * e^dsigma, + (1 - e^dsigma) * row sum at the mask column
    "transp_transition": 1.0,  # x the transposed transition row of each token
    # Data movement: no arithmetic.
    "concat": 0.0,           # join along attr `axis` (skip connections)
    "transpose": 0.0,        # permute by attr `perm`; the output may be any view of the result
    "reshape": 0.0,          # a view: same elements, new shape
    "upsample": 0.0,         # nearest-neighbour, attr `scale` (each pixel repeated scale^2 times)
    # Caches of diffusion LLMs (Fast-dLLM, dLLM-Cache).
    "cosine": 3.0,           # dot and two squared norms over the last dim (dLLM-Cache V-verify)
    "slice": 0.0,            # rows start:stop along attr `axis` (the current block's rows)
    "take": 0.0,             # rows of x[B, N, D] at indices[B, S] -> [B, S, D]
    "put": 0.0,              # rows y[B, S, D] written into x[B, N, D] at indices[B, S]
    "cache_write": 0.0,      # a tensor stored for later forward passes (a KV or feature cache)
}

# Functions that permute their input's elements (rotary also splits the heads): an output
# row needs the whole input.
LAYOUT_FNS = {"split_heads", "merge_heads", "rotary", "transpose"}

# Functions that move elements without arithmetic and keep rows in order.
MOVE_FNS = {"concat", "reshape", "upsample", "slice", "take", "put", "cache_write"}

# Functions computed element by element (a broadcast second operand allowed): they may work
# on their input's elements in any order. (The others reduce a row, a channel group or a
# whole tensor, or move data.)
ELEMENTWISE_FNS = {
    "modulate", "gelu", "silu", "tanh", "swiglu", "residual", "add", "mul", "exp_scale",
    "masked_update", "posterior_update", "ddim_step", "score_scale", "exp",
    "transp_transition", "cache_write",
}

# Functions that reduce the last dim (output shape differs from the input's).
REDUCING_FNS = {"gumbel_argmax", "argmax", "rowmax", "dist_argmin", "topk", "cosine"}
