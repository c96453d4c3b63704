"""The accelerator as an Allo program: kernels.py text for one temporal design.

The design is the simulator's temporal accelerator, as SDA builds it: ONE kernel `accel` that
the host calls once per op with the op's descriptor (scalar arguments). Its body is a dataflow
region of seven processes connected by FIFO streams:

    fetch_a --a_s--> array_unit --y_s--> store                        (GEMM ops)
    fetch_b --b_s-->
    fetch_a --x0_s-> sfu_a --> sfu_b --> sfu_c --z_s--> store         (SFU ops)
    fetch_b --x1_s->

- `fetch_a`/`fetch_b` are the DMA engines: they read DRAM (`act`, `wts`) through m_axi ports in
  contiguous runs of WE elements (one port beat) and stream operands to the units.
- `array_unit` holds the tile buffer (an A row block [R, K] and a weight panel [K, PW]) and
  runs every GEMM tile through ONE call site of `mesh`, the R x C systolic array: R x C/PACK
  PE functions after `schedule_hls` unfolds it, each PE one DSP multiply per cycle giving PACK
  products (DSP packing), output-stationary with the whole K reduced in the PE.
- `sfu_a`, `sfu_b`, `sfu_c` are the special function unit, three streaming stages of L =
  lanes x elems_per_lane elements per cycle (`_sfu_stages` says what each does).
- `store` writes results back through m_axi.

The loop order of a GEMM is the simulator's: one weight panel [K, PW] at a time, A row blocks
streamed through it, the panel reused by every row block. Products of two activations on a
4-bit weight port take two passes (high nibble, then low nibble - 8; SDA's attention path).

Numerics: activations are stored as A-bit codes with per-tensor scales (the simulator stores
every activation at the activation width), weights as W-bit codes with per-channel scales;
products accumulate exactly; the array's output path dequantizes (float32) and requantizes to
the output's scale, rounding half away from zero. The SFU computes in float32 on dequantized
codes (see `numerics` in the manifest: the arch's SFU width is not emulated).

fp32 designs (`bits: fp32`) store float32 everywhere, without quantization.

Nothing here imports allo: this module writes text; the program imports allo when run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# SFU function codes of the descriptor's `op` field (0 is a GEMM).
SFU_CODES = {"layernorm": 1, "rmsnorm": 2, "softmax": 3, "gelu_tanh": 4, "gelu_erf": 5,
             "silu": 6, "swiglu": 7, "add": 8, "gated": 9, "modulate": 10, "rotary": 11}
TWO_INPUT = ("swiglu", "add", "gated")
VEC_FNS = ("layernorm", "rmsnorm", "gated", "modulate", "rotary")  # parameter vectors

# The descriptor: accel's scalar arguments in order (all int32). See program.py for their use.
DESC = ("op", "M", "K", "N", "Z", "H", "order", "nout", "nin", "mtr", "pw", "passes",
        "a0", "a_zb", "a_zh", "a_rs", "b0", "b_zb", "b_zh", "b_rs", "b_src", "b_t",
        "y0", "y_zb", "y_zh", "y_rs", "sa", "sb", "bstep", "sy", "bias",
        "p0", "p1", "prs", "seq", "dh", "pe")


@dataclass(frozen=True)
class KernelSpec:
    """Everything kernels.py depends on: the arch's array, SFU and ports, and the maxima of
    the program it runs (buffer sizes are static in HLS)."""

    rows: int
    cols: int
    pack: int  # products per PE (DSP packing): 1 or 2
    a_bits: int | str  # activation code width, or "fp32"
    w_bits: int | str
    acc_bits: int | str
    sfu_lanes: int  # elements per cycle
    we: int  # elements of one memory port beat (port_bits / activation bits)
    k_max: int
    pw_max: int
    mt_max: int  # rows of the A tile (output-row order), a multiple of rows
    wpan_words: int  # the tile buffer's weight panel (passes x K x pw / PACK words)
    bt_rows: int  # staging of an activation operand (K^T, or its K rows): pw x K codes
    bt_cols: int
    n_max: int  # longest SFU row
    passes_max: int
    act_words: int  # elements of the activation memory
    wts_words: int
    prm_words: int
    t_max: int  # most tiles of one op (passes counted)
    tk_max: int  # most tiles x K of one op: per-lane length of the A and B streams
    y_stream: int  # llvm buffer sizes of the output streams (HLS: FIFOs of depth `fifo_depth`)
    x_stream: int
    sfu_rows: int  # rows of the SFU op with the most rows
    fns: tuple[str, ...]  # SFU functions the program uses
    fifo_depth: int = 4
    rot_dh: int = 0  # longest head of a rotary op (0: none)
    v_max: int = 1  # longest parameter vector of an SFU op (sfu_c reads it first)
    wp: int = 1  # prm floats per port beat
    wports: int = 1  # weight ports: CP / wports words of a weight row through each
    aports: int = 1  # A ports: 2 loads a GEMM's A rows in pairs through two bundles

    @property
    def fp32(self) -> bool:
        return self.a_bits == "fp32"

    @property
    def pe_cols(self) -> int:
        return self.cols // self.pack

    @property
    def rot_ring(self) -> tuple[int, int]:
        """Rotary's (RD, RB): an element's partner is at most RD words away (dh/2
        elements), so the ring holds the word out and RD words either side (elements)."""
        rd = -(-self.rot_dh // 2 // self.sfu_lanes)
        return rd, (2 * rd + 1) * self.sfu_lanes


def weight_names(k: KernelSpec) -> list[str]:
    """accel's weight arguments: one per weight port (the DRAM image split by columns)."""
    return ["wts"] if k.wports == 1 else [f"wts{q}" for q in range(k.wports)]


def act_reads(k: KernelSpec) -> list[str]:
    """accel's activation read arguments: `act_in`, and `act_in2` for a second A port."""
    return ["act_in", "act_in2"][:k.aports]


def a_ports(k: KernelSpec) -> list[str]:
    """fetch_a's names of the activation read arguments (accel's act_reads)."""
    return ["act", "act2"][:k.aports]


def weight_params(k: KernelSpec) -> str:
    return ", ".join(f"{w}: TyW[NWQ]" for w in weight_names(k))


def _ty(bits) -> str:
    return "float32" if bits == "fp32" else (f"int{bits}" if bits in (8, 16, 32) else
                                             f"Int({bits})")


def kernel_text(k: KernelSpec, header: str) -> str:
    """The whole kernels.py: header docstring, constants, the processes, `accel`,
    `schedule_hls`."""
    return "".join([header, _constants(k), _pe(k), _fetch_a(k), _fetch_b(k),
                    _array_unit(k), _sfu_stages(k), _store(k), _accel(k), _schedule(k)])


def _constants(k: KernelSpec) -> str:
    if k.fp32:
        types = ("TyA = float32  # activations in DRAM\n"
                 "TyW = float32  # a weight word\n"
                 "TyC = float32  # accumulator\n")
    else:
        wword = 2 * k.w_bits if k.pack == 2 else k.w_bits
        types = (f"TyA = {_ty(k.a_bits)}  # activation codes ({k.a_bits} bits)\n"
                 f"TyW = {_ty(max(8, wword))}  # a weight word: {k.pack} x {k.w_bits}-bit "
                 "codes of adjacent columns\n"
                 f"TyC = {_ty(k.acc_bits)}  # accumulator ({k.acc_bits} bits)\n")
    qmax = 0 if k.fp32 else 2 ** (k.a_bits - 1) - 1
    codes = "\n".join(f"{n.upper()} = {c}" for n, c in SFU_CODES.items())
    ring = "" if "rotary" not in k.fns else (
        "RD, RB = {}, {}  # rotary: output delay (words); its ring (elements)\n"
        .format(*k.rot_ring))
    return f'''
import allo
from allo.ir.types import Int, float32, index, int8, int16, int32, int64  # noqa: F401
from allo.customize import Partition
from allo.ir.utils import MockBuffer

# ---- the design
R, C, PACK = {k.rows}, {k.cols}, {k.pack}  # array rows x cols MACs; products per PE (DSP)
CP = C // PACK  # PE columns
WB = {0 if k.fp32 else k.w_bits}  # weight code bits (a packed word holds PACK of them)
QMAX = {qmax}.0  # largest activation code
L = {k.sfu_lanes}  # SFU elements per cycle
WE = {k.we}  # elements per memory port beat
WPORTS = {k.wports}  # weight ports (m_axi bundles): each streams CPQ words of a row
APORTS = {k.aports}  # A ports: the A rows of a GEMM are read APORTS at a time
CPQ = {k.pe_cols // k.wports}
{types}
# ---- what the program needs (static sizes in HLS)
KMAX, MTMAX, NMAX, PASSES = {k.k_max}, {k.mt_max}, {k.n_max}, {k.passes_max}
WPAN = {k.wpan_words}  # the tile buffer's weight panel (its A tile is MTMAX x KMAX)
BTR, BTC = {k.bt_rows}, {k.bt_cols}  # staging of an activation operand: [pw, K]
NACT, NWTS, NPRM = {k.act_words}, {k.wts_words}, {k.prm_words}
NWQ = NWTS // WPORTS  # words of one weight port's share
TT, TK, CT = {k.t_max}, {k.tk_max}, {k.t_max * k.pack}  # tiles; stream lengths (llvm)
YS, XS, SR = {k.y_stream}, {k.x_stream}, {k.sfu_rows}  # SR: rows of the longest SFU op
FIFO = {k.fifo_depth}  # FIFO depth of every stream in HLS (words)
ROWFIFO = NMAX // L + FIFO  # the SFU's row streams hold a row ahead of its statistics
WP, VMAX = {k.wp}, {k.v_max}  # prm floats per port beat; longest parameter vector
FADD = 4  # float adder latency in cycles (Vitis HLS fadd core, 4 stages at 300 MHz)
{ring}
GEMM = 0
{codes}
'''


def _pe(k: KernelSpec) -> str:
    """The PE: persistent over the op's T tiles (each the whole K of one output, then the
    next tile's operands follow at once: fold overlap `full`); its result per tile leaves
    through its own FIFO to the collector."""
    head = '''

def pe(A_in: TyA[TK], B_in: TyW[TK], A_out: TyA[TK], B_out: TyW[TK], C_out: TyC[CT],
       T: int32, kn: int32):
'''
    if k.fp32:
        return head + '''    """One float multiply-add per cycle. A float adder takes FADD cycles, so the PE keeps
    FADD interleaved partial sums (product k goes to sum k % FADD): each sum's next add
    waits exactly its adder latency; the partial sums are added at the tile's end."""
    vp: TyC[FADD]
    ik: int32 = 0
    for t in range(T):
        for f in range(FADD):
            vp[f] = 0.0
        for k in range(kn, name="reduction", pipeline=True):
            a: TyA = A_in[ik]
            b: TyW = B_in[ik]
            vp[k % FADD] += a * b
            A_out[ik] = a
            B_out[ik] = b
            ik += 1
        v: TyC = 0.0
        for f1 in range(FADD):
            v += vp[f1]
        C_out[t] = v
'''
    if k.pack == 1:
        return head + '''    """One multiply-accumulate per cycle."""
    ik: int32 = 0
    for t in range(T):
        v: TyC = 0
        for k in range(kn, name="reduction", pipeline=True):
            a: TyA = A_in[ik]
            b: TyW = B_in[ik]
            v += a * b
            A_out[ik] = a
            B_out[ik] = b
            ik += 1
        C_out[t] = v
'''
    return head + '''    """One DSP48E2 multiply per cycle giving two products (DSP packing, UG579 / WP486):
    the 27-bit port takes w1 * 2^18 + w0, the 18-bit port a; the low 18 bits of the product
    are a*w0 (two's complement), the rest a*w1. Exact for 8-bit a and 4/8-bit w."""
    ik: int32 = 0
    for t in range(T):
        v0: TyC = 0
        v1: TyC = 0
        for k in range(kn, name="reduction", pipeline=True):
            a: TyA = A_in[ik]
            w: TyW = B_in[ik]
            w0: Int(18) = (w << WB) >> WB
            w1: Int(27) = w >> WB
            op: Int(27) = (w1 << 18) + w0
            p: Int(45) = op * a
            lo: Int(18) = p
            hi: Int(45) = (p - lo) >> 18
            v0 += lo
            v1 += hi
            A_out[ik] = a
            B_out[ik] = w
            ik += 1
        C_out[2 * t] = v0
        C_out[2 * t + 1] = v1
'''


def _word_of(k: KernelSpec, src: str, ps: str) -> str:
    """Text of a weight word built from PACK activation codes `src.format(q=...)` for pass
    `ps` (the attention path: both operands are activations)."""
    if k.fp32 or k.pack == 1:
        return src.format(q=0)
    if k.w_bits == 4:  # two passes: high nibble, then low nibble - 8 (both fit 4 signed bits)
        parts = []
        for q in range(2):
            c = src.format(q=q)
            parts.append(f"(({c} >> 4) if {ps} == 0 else (({c} & 15) - 8))")
        return f"((({parts[1]}) << 4) | (({parts[0]}) & 15))"
    return "(c1 << 8) | (c0 & 255)"  # c0, c1: the two codes widened to TyW (fetch_b)


def _indent(lines: list[str], n: int) -> str:
    return "".join(" " * n + ln + "\n" for ln in lines)


def _sfu_rows(j: str, count: str, body: list[str]) -> str:
    """The DMA of an SFU op's rows (fetch_a's X0, fetch_b's X1, store's results): M rows x
    nw words in one pipelined stream (the memory latency once), L elements a word: `body`
    for element `j` of row `row1`, then the stream index `count` steps."""
    return _indent(["nw: int32 = (N + L - 1) // L", "row1: int32 = 0", "jj: int32 = 0",
                    'for t1 in range(M * nw, name="row", pipeline=True):',
                    "    for l in range(L):", f"        {j}: int32 = jj * L + l",
                    *[f"        {x}" for x in body], f"    {count} += 1", "    jj += 1",
                    "    if jj == nw:", "        jj = 0", "        row1 += 1"], 8)


def _requant(k: KernelSpec, var: str) -> list[str]:
    """Lines that round float `var` half away from zero and clamp to the code range."""
    if k.fp32:
        return []
    return [f"if {var} >= 0.0:", f"    {var} = {var} + 0.5", "else:",
            f"    {var} = {var} - 0.5", f"if {var} > QMAX:", f"    {var} = QMAX",
            f"if {var} < -QMAX:", f"    {var} = -QMAX"]


# The tiles of a GEMM, in the order every process walks them (so each stream is written and
# read in one order):
#   for z (batch) / o in nout / i in nin / rb in nrb / g in ng / ps in passes:
#     weight-panel order (0): o = panel, i = row block (nrb = 1): the panel stays in fetch_b
#       and is replayed for every row block; each row block stays in fetch_a for the ng
#       column groups of the panel;
#     output-row order (1): o = row group of mtr rows (nrb = mtr / R row blocks), i = panel
#       of C columns (ng = 1): the row group stays in fetch_a for every panel; each panel
#       stays in fetch_b for the nrb row blocks.
# One tile = one R x C output block over the whole K, one pass. No condition depends on a
# loop variable (a loop-nest estimate resolves every branch).


def _a_load(k: KernelSpec, tag: str, rows: str, row0: str) -> list[str]:
    """fetch_a: `rows` rows of A from DRAM into the tile buffer in port beats, one
    pipelined loop over rows x beats (one burst stream: the memory latency once); with two
    A ports a row pair a time, the even row through `act`, the odd one through `act2`."""
    r, kk = f"lr{tag}", f"lk{tag}"
    pair = k.aports == 2
    reads = []
    for i, src in enumerate(a_ports(k)):
        rr = f"{r} + {i}" if pair else r
        reads += [f"        if row{tag} + {i} < M and kq{tag} < K:",
                  (f"            abuf[{rr}, kq{tag}] = {src}[base + (row{tag} + {i}) * a_rs"
                   f" + kq{tag}]"),
                  "        else:", f"            abuf[{rr}, kq{tag}] = 0"]
    return [f"{r}: int32 = 0", f"{kk}: int32 = 0",
            f'for t{tag} in range({rows} // APORTS * kw, name="burst", pipeline=True):',
            f"    row{tag}: int32 = {row0} + {r}",
            f"    for e{tag} in range(WE):",
            f"        kq{tag}: int32 = {kk} * WE + e{tag}",
            *reads,
            f"    {kk} += 1", f"    if {kk} == kw:", f"        {kk} = 0",
            f"        {r} += APORTS"]


def _fetch_a(k: KernelSpec) -> str:
    a_params = "".join(f"{x}: TyA[NACT], " for x in a_ports(k))
    return f'''

def fetch_a({a_params}op: int32, M: int32, K: int32, N: int32, Z: int32, H: int32,
            order: int32, nout: int32, nin: int32, mtr: int32, pw: int32, passes: int32,
            a0: int32, a_zb: int32, a_zh: int32, a_rs: int32, a_s: TyA[R, TK],
            x0_s: TyA[L, XS]):
    """DMA and A side of the tile buffer. GEMM: the rows of A a tile needs, read from DRAM
    in port beats once (a row block per panel in the weight-panel order, a row group in the
    output-row order) and replayed to the array column by column (R codes per cycle) for
    every tile that uses them. SFU: the rows of X0, L elements per cycle."""
    abuf: TyA[MTMAX, KMAX]
    ia: int32 = 0
    ix: int32 = 0
    if op == GEMM:
        kw: int32 = (K + WE - 1) // WE
        nrb: int32 = 1 if order == 0 else mtr // R
        ng: int32 = pw // C
        for z in range(Z):
            base: int32 = a0 + (z // H) * a_zb + (z % H) * a_zh
            for o in range(nout):
                if order == 1:
{_indent(_a_load(k, "g", "mtr", "o * mtr"), 20)}                for i in range(nin):
                    if order == 0:
{_indent(_a_load(k, "b", "R", "i * R"), 24)}                    k: int32 = 0
                    rb: int32 = 0
                    it: int32 = 0
                    for t in range(nrb * ng * passes * K, name="feed", pipeline=True):
                        for q in range(R):
                            a_s[q, ia] = abuf[rb * R + q, k]
                        ia += 1
                        k += 1
                        if k == K:  # the next tile: pass, column group, then row block
                            k = 0
                            it += 1
                            if it == ng * passes:
                                it = 0
                                rb += 1
    else:
{_sfu_rows("j", "ix", ["if j < N:", "    x0_s[l, ix] = act[a0 + row1 * a_rs + j]",
                             "else:", "    x0_s[l, ix] = 0"])}'''


def _b_first(k: KernelSpec, tag: str, pc: str) -> list[str]:
    """fetch_b, the first use of weight panel `pc` [K, pw]: every pass's words go to the
    array (CP per cycle, in tile order: column group, pass, k) and into the tile buffer for
    the later uses. Weights come straight from DRAM, where they are stored in that order,
    CP / WPORTS words of each row through each weight port; an activation operand is
    staged first (read in port beats: K^T row by row, or the operand's K rows) and packed
    from the stage."""
    # "@" stands for the port loop's suffix
    word = _word_of(k, f"bt[col@ + {{q}} - pc{tag} * pw, k{tag}]", f"ps{tag}")
    pre = []
    if not k.fp32 and k.pack == 2 and k.w_bits == 8:  # widen the 8-bit codes, then shift
        word = word.replace("c0", "c0@").replace("c1", "c1@")
        pre = [f"c0@: TyW = bt[col@ - pc{tag} * pw, k{tag}]",
               f"c1@: TyW = bt[col@ + 1 - pc{tag} * pw, k{tag}]"]
    ports = []
    for q, wsrc in enumerate(weight_names(k)):  # a loop per weight port: its words of a row
        s, j0 = (f"{tag}{q}" if k.wports > 1 else tag), q * k.pe_cols // k.wports
        ports += [
            f"    for j{s} in range(CPQ):",
            f"        col{s}: int32 = pc{tag} * pw + g{tag} * C + ({j0} + j{s}) * PACK",
            f"        w{s}: TyW = 0",
            "        if b_src == 0:",
            f"            w{s} = {wsrc}[wq{tag} + j{s}]",
            f"        elif col{s} < N:", *[f"            {x.replace('@', s)}" for x in pre],
            f"            w{s} = {word.replace('@', s)}",
            f"        wpan[(ps{tag} * K + k{tag}) * pwp + g{tag} * CP + {j0} + j{s}] = w{s}",
            f"        b_s[{j0} + j{s}, ib] = w{s}"]
    return [
        f"pc{tag}: int32 = {pc}",
        "if b_src == 1:  # the panel's rows below N (the rest is never read)",
        f"    nv{tag}: int32 = pw if N - pc{tag} * pw > pw else N - pc{tag} * pw",
        f"    n{tag}: int32 = 0", f"    kk{tag}: int32 = 0",
        "    if b_t == 1:  # K^T: a row of K codes per column",
        f'        for u{tag} in range(nv{tag} * kw, name="burst", pipeline=True):',
        f"            for e{tag} in range(WE):",
        f"                kt{tag}: int32 = kk{tag} * WE + e{tag}",
        f"                if kt{tag} < K:",
        (f"                    bt[n{tag}, kt{tag}] = act[base + (pc{tag} * pw + n{tag}) * b_rs"
         f" + kt{tag}]"),
        "                else:", f"                    bt[n{tag}, kt{tag}] = 0",
        f"            kk{tag} += 1", f"            if kk{tag} == kw:",
        f"                kk{tag} = 0",
        f"                n{tag} += 1",
        "    else:  # the operand's K rows, a beat of its columns at a time",
        f"        nb{tag}: int32 = (nv{tag} + WE - 1) // WE",
        f'        for v{tag} in range(K * nb{tag}, name="rows", pipeline=True):',
        f"            for f{tag} in range(WE):",
        f"                nt{tag}: int32 = n{tag} * WE + f{tag}",
        f"                if nt{tag} < nv{tag}:",
        (f"                    bt[nt{tag}, kk{tag}] = act[base + kk{tag} * b_rs + pc{tag} * pw"
         f" + nt{tag}]"),
        f"            n{tag} += 1", f"            if n{tag} == nb{tag}:",
        f"                n{tag} = 0",
        f"                kk{tag} += 1",
        f"g{tag}: int32 = 0", f"ps{tag}: int32 = 0", f"k{tag}: int32 = 0",
        f'for t{tag} in range(ng * passes * K, name="first", pipeline=True):',
        f"    wq{tag}: int32 = (base + iw) // WPORTS  # the row's words in each weight port",
        *ports,
        "    ib += 1", "    iw += CP", f"    k{tag} += 1",
        f"    if k{tag} == K:  # tile order: k, pass, column group",
        f"        k{tag} = 0", f"        ps{tag} += 1", f"        if ps{tag} == passes:",
        f"            ps{tag} = 0", f"            g{tag} += 1"]


def _b_again(tag: str) -> list[str]:
    """fetch_b: a later use of the panel in the tile buffer, replayed in tile order."""
    return [f"g{tag}: int32 = 0", f"ps{tag}: int32 = 0", f"k{tag}: int32 = 0",
            f'for t{tag} in range(ng * passes * K, name="feed", pipeline=True):',
            f"    for j{tag} in range(CP):",
            (f"        b_s[j{tag}, ib] = wpan[(ps{tag} * K + k{tag}) * pwp + g{tag} * CP"
             f" + j{tag}]"),
            "    ib += 1", f"    k{tag} += 1", f"    if k{tag} == K:", f"        k{tag} = 0",
            f"        ps{tag} += 1", f"        if ps{tag} == passes:", f"            ps{tag} = 0",
            f"            g{tag} += 1"]


def _fetch_b(k: KernelSpec) -> str:
    return f'''

def fetch_b({weight_params(k)}, act: TyA[NACT], op: int32, K: int32, N: int32, Z: int32,
            H: int32, order: int32, nout: int32, nin: int32, mtr: int32, pw: int32,
            passes: int32, b0: int32, b_zb: int32, b_zh: int32, b_rs: int32, b_src: int32,
            b_t: int32, M: int32, b_s: TyW[CP, TK], x1_s: TyA[L, XS]):
    """DMA and weight side of the tile buffer. GEMM: each weight panel [K, pw] (words of
    PACK adjacent columns) is fetched once per use the loop order makes of it: in the
    weight-panel order (0) once, for the first row block, and replayed from the buffer for
    the others; in the output-row order (1) once per row group, for its first row block.
    SFU: the rows of X1 for two-input functions."""
    wpan: TyW[WPAN]
    bt: TyA[BTR, BTC]
    ib: int32 = 0
    ix: int32 = 0
    iw: int32 = 0
    if op == GEMM:
        ng: int32 = pw // C
        nrb: int32 = 1 if order == 0 else mtr // R
        pwp: int32 = pw // PACK
        kw: int32 = (K + WE - 1) // WE
        for z in range(Z):
            base: int32 = b0 + (z // H) * b_zb + (z % H) * b_zh
            iw = 0
            for o in range(nout):
                if order == 0:
{_indent(_b_first(k, "o", "o"), 20)}                    for i in range(1, nin):
{_indent(_b_again("a"), 24)}                if order == 1:
                    iw = 0  # the row group's panels, from the first again
                    for i1 in range(nin):
{_indent(_b_first(k, "i", "i1"), 24)}                        for rb in range(1, nrb):
{_indent(_b_again("b"), 28)}    elif op == SWIGLU or op == ADD or op == GATED:
{_sfu_rows("j1", "ix", ["if j1 < N:", "    x1_s[l, ix] = act[b0 + row1 * b_rs + j1]",
                              "else:", "    x1_s[l, ix] = 0"])}'''


def _array_unit(k: KernelSpec) -> str:
    if k.fp32:
        take = ["acc[ps, q, j * PACK] = C_fifo[q, j, ic]"]
        combine = ["t: TyC = acc[0, r1, c]"]
        deq = ["u = t * cs[c]"]
    else:
        take = [f"acc[ps, q, j * PACK + {p}] = C_fifo[q, j, ic + {p}]" for p in range(k.pack)]
        combine = ["t: int64 = 0", "for p in range(PASSES):", "    if p < passes:",
                   "        t = t * 16 + acc[p, r1, c]", "if passes == 2:",
                   "    t = t + 8 * rsum[r1]"]
        deq = ["u = float(t) * s_a * cs[c]"]
    out = (_indent(combine, 32) + _indent(["u: float32 = 0.0", "if n < N:"], 32)
           + _indent(deq, 36) + _indent(["if bias >= 0:", "    u = u + cb[c]",
                                         "u = u * inv_y"], 36)
           + _indent(_requant(k, "u"), 32) + _indent(["y_s[c, iy] = u"], 32))
    return f'''

def array_unit(prm: float32[NPRM], op: int32, M: int32, K: int32, N: int32, Z: int32,
               order: int32, nout: int32, nin: int32, mtr: int32, pw: int32, passes: int32,
               sa: int32, sb: int32, bstep: int32, sy: int32, bias: int32,
               a_s: TyA[R, TK], b_s: TyW[CP, TK], y_s: TyA[C, YS]):
    """The systolic array: A codes enter the R rows from the left, weight words the CP
    columns from the top; R x CP PEs, each reducing the whole K of its outputs, tile after
    tile (the next tile's operands follow the last ones at once); the collector takes every
    PE's results through its FIFO and runs the output path (dequantize, bias, requantize).
    Called once per op: its T tiles (0 for an SFU op)."""
    A_fifo: TyA[R, CP + 1, TK]
    B_fifo: TyW[CP, R + 1, TK]
    C_fifo: TyC[R, CP, CT]
    S_fifo: int32[R, TT]
    A_drain: TyA[R]
    B_drain: TyW[CP]
    acc: TyC[PASSES, R, C]
    rs: int32[R]
    rsum: int32[R]
    cs: float32[C]  # the column group's weight scales and bias, in registers
    cb: float32[C]
    nrb: int32 = 1 if order == 0 else mtr // R
    ng: int32 = pw // C
    T: int32 = Z * nout * nin * nrb * ng * passes  # an SFU op's descriptor has Z = 0
    il: int32 = 0
    for t in range(T, name="data_load"):
        for m0 in range(R):
            rs[m0] = 0
        for k in range(K, pipeline=True):
            for m in range(R):
                v: TyA = a_s[m, il]
                A_fifo[m, 0, il] = v
                rs[m] += v
            for n in range(CP):
                B_fifo[n, 0, il] = b_s[n, il]
            il += 1
        for m1 in range(R):
            S_fifo[m1, t] = rs[m1]
    for i, j in allo.grid(R, CP, name="PE"):
        pe(A_fifo[i, j], B_fifo[j, i], A_fifo[i, j + 1], B_fifo[j, i + 1], C_fifo[i, j], T, K)
    idr: int32 = 0
    for t1 in range(T, name="data_drain"):
        for k1 in range(K, pipeline=True):
            for m2 in range(R):
                A_drain[m2] = A_fifo[m2, CP, idr]
            for n1 in range(CP):
                B_drain[n1] = B_fifo[n1, R, idr]
            idr += 1
    s_a: float32 = prm[sa]
    inv_y: float32 = prm[sy]
    ic: int32 = 0
    it: int32 = 0
    iy: int32 = 0
    for z in range(Z, name="collect"):
        for o in range(nout):
            for i1 in range(nin):
                pc: int32 = o if order == 0 else i1
                for rb in range(nrb):
                    for g in range(ng):
                        for ps in range(passes, pipeline=True):
                            for q in range(R):
                                rsum[q] = S_fifo[q, it]
                                for j in range(CP):
{_indent(take, 36)}                            ic += PACK
                            it += 1
                        for c0 in range(C, name="cols", pipeline=True):  # 2 words a cycle
                            n0: int32 = pc * pw + g * C + c0
                            cs[c0] = prm[sb + n0 * bstep]
                            cb[c0] = 0.0
                            if bias >= 0:
                                cb[c0] = prm[bias + n0]
                        for r1 in range(R, name="out", pipeline=True):
                            for c in range(C):
                                n: int32 = pc * pw + g * C + c
{out}                            iy += 1
'''


def _store(k: KernelSpec) -> str:
    return """

def store(act: TyA[NACT], op: int32, M: int32, N: int32, Z: int32, H: int32, order: int32,
          nout: int32, nin: int32, mtr: int32, pw: int32, y0: int32, y_zb: int32,
          y_zh: int32, y_rs: int32, y_s: TyA[C, YS], z_s: TyA[L, XS]):
    \"\"\"DMA of results: GEMM output tiles row by row, in the array's loop order; SFU rows.\"\"\"
    iy: int32 = 0
    iz: int32 = 0
    if op == GEMM:
        ng: int32 = pw // C
        nrb: int32 = 1 if order == 0 else mtr // R
        for z in range(Z):
            base: int32 = y0 + (z // H) * y_zb + (z % H) * y_zh
            for o in range(nout):
                for i in range(nin):
                    pc: int32 = o if order == 0 else i
                    gr: int32 = i * R if order == 0 else o * mtr
                    rb: int32 = 0
                    g: int32 = 0
                    r: int32 = 0
                    for t in range(nrb * ng * R, name="out", pipeline=True):
                        row: int32 = gr + rb * R + r
                        for c in range(C):
                            n: int32 = pc * pw + g * C + c
                            v: TyA = y_s[c, iy]
                            if row < M and n < N:
                                act[base + row * y_rs + n] = v
                        iy += 1
                        r += 1
                        if r == R:  # the array's order: rows, column group, row block
                            r = 0
                            g += 1
                            if g == ng:
                                g = 0
                                rb += 1
    else:
""" + _sfu_rows("j", "iz", ["v1: TyA = z_s[l, iz]", "if j < N:",
                              "    act[y0 + row1 * y_rs + j] = v1"])


def tree(op: str, terms: list[str]) -> str:
    """A balanced tree of `op` over `terms` (the emulator adds in the same tree)."""
    while len(terms) > 1:
        nxt = [f"({terms[i]} {op} {terms[i + 1]})" for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def tree_max(terms: list[str]) -> str:
    """max over `terms` as a tree of selects (exact in any order)."""
    while len(terms) > 1:
        nxt = [f"({a} if {a} > {b} else {b})" for a, b in zip(terms[::2], terms[1::2])]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def _sfu_stages(k: KernelSpec) -> str:
    """The SFU as three processes of the dataflow, one row after another, so a row's later
    stages overlap the next row's earlier ones (the pass counts of the simulator's SFU, with
    one row of latency):
      sfu_a: dequantize X0 (and X1), forward the values, gather the row's first statistics
             (layernorm: sum and sum of squares; rmsnorm: sum of squares; softmax: max);
      sfu_b: softmax's exp and its sum; rotary's rotation partners, from a ring of
             registers the words shift through (an element's partner is dh/2 away, so
             the output runs RD words behind the input); the others pass through;
      sfu_c: the function itself, requantize, stream the codes out.
    Each statistic keeps FADD partial sums per lane (word w adds to partial w % FADD: its
    next add waits exactly the adder's latency, so the word loop runs at one word per
    cycle), added at the row's end in a fixed tree (emulate.py adds in the same tree).
    L = lanes x elems_per_lane elements per word, one word per cycle."""
    fns = set(k.fns)
    two = [f for f in k.fns if f in TWO_INPUT]
    n_part = k.sfu_lanes * 4  # FADD = 4 partials per lane
    psum = lambda a: tree("+", [f"{a}[{i}]" for i in range(n_part)])
    pmax = tree_max([f"pm[{i}]" for i in range(k.sfu_lanes)])
    ones = " or ".join(f"op == {f.upper()}" for f in two) or "False"

    def br(name, lines):
        return [f"elif op == {name.upper()}:", *[f"    {x}" for x in lines]] if name in fns \
            else []

    # ---- stage a
    a_stats = []
    if "layernorm" in fns or "rmsnorm" in fns:
        a_stats += ["if j < N:", "    ps[l * 4 + js % 4] += x",
                    "    pq[l * 4 + js % 4] += x * x"]
    a_end = []
    if "layernorm" in fns:
        a_end += ["if op == LAYERNORM:", f"    mu: float32 = ({psum('ps')}) / float(N)",
                  f"    var: float32 = ({psum('pq')}) / float(N) - mu * mu",
                  "    if var < 0.0:", "        var = 0.0",
                  "    st_a[0, ist] = mu", "    st_a[1, ist] = 1.0 / allo.sqrt(var + prm[pe])",
                  "    ist += 1"]
    if "rmsnorm" in fns:
        a_end += ["if op == RMSNORM:", f"    ms: float32 = ({psum('pq')}) / float(N)",
                  "    st_a[0, ist] = 0.0", "    st_a[1, ist] = 1.0 / allo.sqrt(ms + prm[pe])",
                  "    ist += 1"]
    stat_fns = [f for f in ("layernorm", "rmsnorm") if f in fns]
    a_soft = [] if "softmax" not in fns else [
        "elif op == SOFTMAX:  # rows x words in one stream: the max compares in one cycle",
        "    jm: int32 = 0",
        '    for t0 in range(M * nw, name="max", pipeline=True):',
        "        for l2 in range(L):", "            j2: int32 = jm * L + l2",
        "            x2: float32 = float(x0_s[l2, ix]) * s0", "            xa_s[l2, ix] = x2",
        "            v: float32 = -3.0e38", "            if j2 < N:", "                v = x2",
        "            if jm == 0 or v > pm[l2]:", "                pm[l2] = v",
        "        ix += 1", "        if jm == nw - 1:", f"            st_a[0, ist] = {pmax}",
        "            st_a[1, ist] = 0.0", "            ist += 1", "        jm += 1",
        "        if jm == nw:", "            jm = 0"]
    norms = "layernorm" in fns or "rmsnorm" in fns
    # Only the buffers a used function needs (an unused one is removed before scheduling).
    decl_a = _indent(([f"ps: float32[{n_part}]", f"pq: float32[{n_part}]"] if norms else [])
                     + (["pm: float32[L]"] if "softmax" in fns else []), 4)
    reset_a = _indent(["if js == 0:  # a new row: this lane's four partials from zero",
                       "    for p0 in range(4):", "        ps[l * 4 + p0] = 0.0",
                       "        pq[l * 4 + p0] = 0.0"] if norms else [], 16)
    stat_cond = " or ".join(f"op == {f.upper()}" for f in stat_fns) or "False"
    stage_a = f'''

def sfu_a(prm: float32[NPRM], op: int32, M: int32, N: int32, sa: int32, sb: int32,
          pe: int32, x0_s: TyA[L, XS], x1_s: TyA[L, XS], xa_s: float32[L, XS],
          xa1_s: float32[L, XS], st_a: float32[2, SR]):
    """SFU stage a: dequantize, forward, first row statistics (see _sfu_stages)."""
{decl_a}    ix: int32 = 0
    ist: int32 = 0
    nw: int32 = (N + L - 1) // L
    s0: float32 = prm[sa]
    s1: float32 = prm[sb]
    if {stat_cond}:  # rows x words in one stream: a row's statistics close in its last word
        js: int32 = 0
        for t in range(M * nw, name="stats", pipeline=True):
            for l in range(L):
                j: int32 = js * L + l
                x: float32 = float(x0_s[l, ix]) * s0
                xa_s[l, ix] = x
{reset_a}{_indent(a_stats, 16)}            ix += 1
            if js == nw - 1:
{_indent(a_end, 16)}            js += 1
            if js == nw:
                js = 0
{_indent(a_soft, 4)}    elif op != GEMM:  # no statistics: rows x words in one stream
        for t in range(M * nw, name="forward", pipeline=True):
            for l1 in range(L):
                xa_s[l1, ix] = float(x0_s[l1, ix]) * s0
                if {ones}:
                    xa1_s[l1, ix] = float(x1_s[l1, ix]) * s1
            ix += 1
'''
    # ---- stage b
    qsum = tree("+", [f"qs[{i}]" for i in range(k.sfu_lanes)])
    b_soft = [] if "softmax" not in fns else [
        "elif op == SOFTMAX:  # rows x words in one stream; the sum of the exps in 2^-23",
        "    je: int32 = 0",   # fixed point, whose integer adds take one cycle
        "    mx: float32 = 0.0",
        '    for t0 in range(M * nw, name="exp", pipeline=True):',
        "        if je == 0:", "            mx = st_a[0, ist]", "            ist += 1",
        "        for l in range(L):", "            j: int32 = je * L + l",
        "            e: float32 = 0.0", "            if j < N:",
        "                e = allo.exp(xa_s[l, ix] - mx)",
        "            eq: int64 = e * 8388608.0", "            if je == 0:",
        "                qs[l] = eq", "            else:", "                qs[l] = qs[l] + eq",
        "            xb_s[l, ix] = e", "        ix += 1", "        if je == nw - 1:",
        f"            tot: int64 = {qsum}", "            st_b[0, isb] = 8388608.0 / float(tot)",
        "            st_b[1, isb] = 0.0", "            isb += 1", "        je += 1",
        "        if je == nw:", "            je = 0"]
    b_rot = [] if "rotary" not in fns else [
        "elif op == ROTARY:  # rows x words in one stream, RD words behind the input",
        "    jo: int32 = 0  # the output word's place in its row",
        '    for t1 in range(M * nw + RD, name="rotate", pipeline=True):',
        "        for i in range(RB - L):  # the ring shifts one word",
        "            rbuf[i] = rbuf[i + L]",
        "        if t1 < M * nw:",
        "            for l0 in range(L):", "                rbuf[RB - L + l0] = xa_s[l0, ix]",
        "            ix += 1",
        "        if t1 >= RD:  # the word that came in RD words ago, and its partners",
        "            for l1 in range(L):", "                j1: int32 = jo * L + l1",
        "                xb_s[l1, ixb] = rbuf[RB - L - RD * L + l1]",
        "                rh: float32 = 0.0", "                if j1 < N:",
        "                    if j1 % dh < dh // 2:",
        "                        rh = -rbuf[RB - L - RD * L + l1 + dh // 2]",
        "                    else:",
        "                        rh = rbuf[RB - L - RD * L + l1 - dh // 2]",
        "                xb1_s[l1, ixb] = rh", "            ixb += 1", "            jo += 1",
        "            if jo == nw:", "                jo = 0"]
    stats_fns = [f for f in ("layernorm", "rmsnorm") if f in fns]
    b_stats = [] if not stats_fns else [
        f"elif {' or '.join(f'op == {f.upper()}' for f in stats_fns)}:",
        "    jb: int32 = 0  # rows x words in one stream; a row's statistics with its first word",
        '    for t2 in range(M * nw, name="pass", pipeline=True):',
        "        if jb == 0:", "            st_b[0, isb] = st_a[0, ist]",
        "            st_b[1, isb] = st_a[1, ist]", "            ist += 1", "            isb += 1",
        "        for l2 in range(L):", "            xb_s[l2, ix] = xa_s[l2, ix]",
        "        ix += 1", "        jb += 1", "        if jb == nw:", "            jb = 0"]
    b_chain = [*b_stats, *b_soft, *b_rot,
               "elif op != GEMM:  # pass through: rows x words in one stream",
               '    for t in range(M * nw, name="forward", pipeline=True):',
               "        for l3 in range(L):", "            xb_s[l3, ix] = xa_s[l3, ix]",
               f"            if {ones}:", "                xb1_s[l3, ix] = xa1_s[l3, ix]",
               "        ix += 1"]
    b_chain[0] = b_chain[0].removeprefix("el")
    decl_b = _indent((["qs: int64[L]"] if "softmax" in fns else [])
                     + (["rbuf: float32[RB]"] if "rotary" in fns else []), 4)
    stage_b = f'''

def sfu_b(op: int32, M: int32, N: int32, dh: int32, xa_s: float32[L, XS],
          xa1_s: float32[L, XS], st_a: float32[2, SR], xb_s: float32[L, XS],
          xb1_s: float32[L, XS], st_b: float32[2, SR]):
    """SFU stage b: softmax's exp and sum, rotary's rotation partners (see _sfu_stages)."""
{decl_b}    ix: int32 = 0
    ixb: int32 = 0
    ist: int32 = 0
    isb: int32 = 0
    nw: int32 = (N + L - 1) // L
{_indent(b_chain, 4)}'''
    # ---- stage c
    c_fn = {
        "layernorm": ["z = (x - s_0) * s_1 * vb0[j]", "if p1 >= 0:",
                      "    z = z + vb1[j]"],
        "rmsnorm": ["z = x * s_1 * vb0[j]"],
        "softmax": ["z = x * s_0"],
        "gelu_tanh": [("z = 0.5 * x * (1.0 + allo.tanh(0.7978845608028654 * (x + 0.044715 "
                       "* x * x * x)))")],
        "gelu_erf": ["u: float32 = x * 0.7071067811865476", "a: float32 = u", "if u < 0.0:",
                     "    a = -u", "t: float32 = 1.0 / (1.0 + 0.3275911 * a)",
                     ("q: float32 = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + "
                      "t * (-1.453152027 + t * 1.061405429))))"),
                     "e: float32 = 1.0 - q * allo.exp(-a * a)", "if u < 0.0:", "    e = -e",
                     "z = 0.5 * x * (1.0 + e)"],
        "silu": ["z = x / (1.0 + allo.exp(-x))"],
        "swiglu": ["z = x / (1.0 + allo.exp(-x)) * x1"],
        "add": ["z = x + x1"],
        "gated": ["z = x + vb0[bq * prs + j] * x1"],
        "modulate": ["z = x * (1.0 + vb0[bq * prs + j]) + vb1[bq * prs + j]"],
        "rotary": [("z = x * vb0[lq * (dh // 2) + j % (dh // 2)]"
                    " + x1 * vb1[lq * (dh // 2) + j % (dh // 2)]")],
    }
    chain = []
    for i, f in enumerate(x for x in SFU_CODES if x in fns):
        # names a branch declares get its suffix (x, x1, z, j come from the word loop)
        body = [re.sub(r"\b(u|a|t|q|e)\b(?![\"(])", lambda m, i=i: f"{m.group(0)}_{i}", ln)
                for ln in c_fn[f]]
        chain += [f"{'if' if i == 0 else 'elif'} op == {f.upper()}:", *[f"    {x}" for x in body]]
    reads = [f for f in ("layernorm", "rmsnorm", "softmax") if f in fns]
    x1_cond = " or ".join(f"op == {f.upper()}" for f in [*two, *(["rotary"] if "rotary" in fns
                                                                  else [])]) or "False"
    rd = (" or ".join(f"op == {f.upper()}" for f in reads)) if reads else "False"
    # The op's parameter vectors, read from DRAM in port beats before its rows (per-element
    # reads of prm in the word loop would move 4 x L bytes a cycle through one port).
    vec = [f for f in VEC_FNS if f in fns]
    pre = [] if not vec else [
        "vb0: float32[VMAX]", "vb1: float32[VMAX]",
        "vl: int32 = N  # the span read: a row (norms), a row per batch, half tables (rotary)",
        *(["if op == GATED or op == MODULATE:", "    vl = (M // seq - 1) * prs + N"]
          if {"gated", "modulate"} & fns else []),
        *(["if op == ROTARY:", "    vl = seq * (dh // 2)"] if "rotary" in fns else []),
        f"if {' or '.join(f'op == {f.upper()}' for f in vec)}:",
        '    for u in range((vl + WP - 1) // WP, name="vectors", pipeline=True):',
        "        for e in range(WP):", "            iv: int32 = u * WP + e",
        "            if iv < vl:", "                vb0[iv] = prm[p0 + iv]",
        "                if p1 >= 0:", "                    vb1[iv] = prm[p1 + iv]"]
    stage_c = f'''

def sfu_c(prm: float32[NPRM], op: int32, M: int32, N: int32, sy: int32, p0: int32,
          p1: int32, prs: int32, seq: int32, dh: int32, xb_s: float32[L, XS],
          xb1_s: float32[L, XS], st_b: float32[2, SR], z_s: TyA[L, XS]):
    """SFU stage c: the function, requantized to the output's codes (see _sfu_stages)."""
    iz: int32 = 0
    isb: int32 = 0
    nw: int32 = (N + L - 1) // L
    inv_y: float32 = prm[sy]
    bq: int32 = 0  # batch of the row (gated, modulate)
    lq: int32 = 0  # position of the row in its sequence (rotary)
    jj: int32 = 0
    s_0: float32 = 0.0
    s_1: float32 = 0.0
{_indent(pre, 4)}    if op != GEMM:
        for t in range(M * nw, name="apply", pipeline=True):
            if jj == 0 and ({rd}):
                s_0 = st_b[0, isb]
                s_1 = st_b[1, isb]
                isb += 1
            for l in range(L):
                j: int32 = jj * L + l
                x: float32 = xb_s[l, iz]
                x1: float32 = 0.0
                if {x1_cond}:
                    x1 = xb1_s[l, iz]
                z: float32 = 0.0
                if j < N:
{_indent(chain, 20)}                uq: float32 = z * inv_y
{_indent(_requant(k, "uq"), 16)}                z_s[l, iz] = uq
            iz += 1
            jj += 1
            if jj == nw:
                jj = 0
                lq += 1
                if lq == seq:
                    lq = 0
                    bq += 1
'''
    return stage_a + stage_b + stage_c


def _accel(k: KernelSpec) -> str:
    args = ", ".join(f"{d}: int32" for d in DESC)
    reads = ", ".join(f"{x}: TyA[NACT]" for x in act_reads(k))
    return f'''

def accel({weight_params(k)}, prm: float32[NPRM], {reads}, {args},
          act: TyA[NACT]):
    """One op of the program: the descriptor selects a GEMM (op == 0) or an SFU function.
    `act_in` (and `act_in2`, the second A port) and `act` are the same DRAM buffer (read
    by the fetch engines, written by `store`); weights and parameters stay in DRAM. fetch_b
    reads through the last A port, so an SFU op's X0 and X1 rows come through two bundles."""
    a_s: TyA[R, TK]
    b_s: TyW[CP, TK]
    y_s: TyA[C, YS]
    x0_s: TyA[L, XS]
    x1_s: TyA[L, XS]
    xa_s: float32[L, XS]
    xa1_s: float32[L, XS]
    xb_s: float32[L, XS]
    xb1_s: float32[L, XS]
    st_a: float32[2, SR]
    st_b: float32[2, SR]
    z_s: TyA[L, XS]
    fetch_a({", ".join(act_reads(k))}, op, M, K, N, Z, H, order, nout, nin, mtr, pw, passes, a0, a_zb, a_zh,
            a_rs, a_s, x0_s)
    fetch_b({", ".join(weight_names(k))}, {act_reads(k)[-1]}, op, K, N, Z, H, order, nout, nin,
            mtr, pw, passes, b0, b_zb, b_zh, b_rs, b_src, b_t, M, b_s, x1_s)
    array_unit(prm, op, M, K, N, Z, order, nout, nin, mtr, pw, passes, sa, sb, bstep, sy,
               bias, a_s, b_s, y_s)
    sfu_a(prm, op, M, N, sa, sb, pe, x0_s, x1_s, xa_s, xa1_s, st_a)
    sfu_b(op, M, N, dh, xa_s, xa1_s, st_a, xb_s, xb1_s, st_b)
    sfu_c(prm, op, M, N, sy, p0, p1, prs, seq, dh, xb_s, xb1_s, st_b, z_s)
    store(act, op, M, N, Z, H, order, nout, nin, mtr, pw, y0, y_zb, y_zh, y_rs, y_s, z_s)
'''


def _schedule(k: KernelSpec) -> str:
    fns = set(k.fns)
    bufs = ([("sfu_a", "ps", 0, None, 0), ("sfu_a", "pq", 0, None, 0)]
            if {"layernorm", "rmsnorm"} & fns else [])
    bufs += [("sfu_a", "pm", 0, None, 0), ("sfu_b", "qs", 0, None, 0)] if "softmax" in fns \
        else []
    bufs += [("sfu_b", "rbuf", 0, None, 0)] if "rotary" in fns else []  # registers
    bufs += [("sfu_c", v, 1, "Partition.Cyclic", "L") for v in ("vb0", "vb1")] \
        if set(VEC_FNS) & fns else []
    listed = ", ".join("(" + ", ".join(repr(x) if i < 2 else str(x) for i, x in enumerate(b))
                       + ")" for b in bufs)
    return f'''

# SFU buffers of the functions this program uses: (process, buffer, dim, kind, factor)
SFU_BUFFERS = [{listed}]


def schedule_array():
    """The array as hardware: R x CP PE functions (Allo's `unfold`) with FIFOs between them
    (A along rows, weight words down columns, each PE's results to the collector); the
    collector's accumulators in registers."""
    sa = allo.customize(array_unit)
    if TyC is float32:
        sa.partition(MockBuffer("pe", "vp"), dim=0)  # FADD partial sums in registers
    for buf in ("acc", "rs", "rsum", "cs", "cb"):
        sa.partition(MockBuffer("array_unit", buf), dim=0)
    pes = sa.unfold("array_unit:PE", [0, 1])
    sa.to(MockBuffer("array_unit", "A_fifo"), pes, axis=1, depth=R + 1)
    sa.to(MockBuffer("array_unit", "B_fifo"), pes, axis=0, depth=CP + 1)
    sa.to(MockBuffer("array_unit", "C_fifo"), pes, axis=0, depth=FIFO)
    sa.to(MockBuffer("array_unit", "S_fifo"), [0], axis=0, depth=FIFO)
    return sa


def schedule_hls(s):
    """The hardware schedule (vhls / Vitis HLS; Allo's llvm backend cannot build after it):
    the array unfolded, the five processes as one dataflow region with FIFO streams, the
    tile buffer banked for its access patterns. Every step must succeed: a failure is an
    error."""
    # The partitions first: each one analyses the whole module, which the unfolded array
    # makes rows x cols/PACK functions larger.
    cyc = Partition.Cyclic
    for fn, buf, dim, kind, factor in (
            ("fetch_a", "abuf", 1, cyc, R), ("fetch_a", "abuf", 2, cyc, WE),
            ("fetch_b", "wpan", 1, cyc, CP), ("fetch_b", "bt", 1, cyc, C),
            ("fetch_b", "bt", 2, cyc, WE), *SFU_BUFFERS):
        if kind is None:
            s.partition(MockBuffer(fn, buf), dim=dim)
        elif factor > 1:
            s.partition(MockBuffer(fn, buf), partition_type=kind, dim=dim, factor=factor)
    s.compose(schedule_array())
    for buf in ("a_s", "b_s", "y_s", "x0_s", "x1_s", "z_s", "st_a", "st_b"):
        s.to(getattr(s, buf), [0], axis=0, depth=FIFO)
    for buf in ("xa_s", "xa1_s", "xb_s", "xb1_s"):  # a whole row: statistics come after it
        s.to(getattr(s, buf), [0], axis=0, depth=ROWFIFO)
    s.dataflow("accel")
    return s
'''
