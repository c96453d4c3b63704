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
}

# Functions that only re-arrange their input's elements (rotary also splits the heads).
LAYOUT_FNS = {"split_heads", "merge_heads", "rotary"}

# Functions that reduce the last dim (output shape differs from the input's).
REDUCING_FNS = {"gumbel_argmax", "argmax", "rowmax", "dist_argmin", "topk"}
