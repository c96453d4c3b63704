"""numpy execution of the lowered program: what `accel` (kernel.py) computes, op by op.

This is the reference the Allo program is checked against (`run.py llvm`): integer GEMMs are
exact (float64 products of integer codes are exact below 2^53), the dequantize/requantize and
SFU arithmetic is float32 in the kernel's order of operations (sequential lane partial sums,
left-to-right products), so an Allo build of the program should match it up to the last bit
of its transcendental functions (LLVM's expf/tanhf against numpy's). fp32 designs sum a
GEMM's K in a different order than the PEs: they match to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from dlmsim.lower.kernel import SFU_CODES, KernelSpec

_FN = {v: k for k, v in SFU_CODES.items()}


class Machine:
    """The three DRAM buffers of the design and the accelerator that works on them."""

    def __init__(self, k: KernelSpec, act: np.ndarray, wts: np.ndarray, prm: np.ndarray):
        self.k = k
        self.act, self.wts, self.prm = act, wts, prm

    # ---- helpers -------------------------------------------------------------------------
    def _requant(self, u: np.ndarray) -> np.ndarray:
        if self.k.fp32:
            return u.astype(np.float32)
        q = np.float32(2 ** (self.k.a_bits - 1) - 1)
        u = np.where(u >= 0, u + np.float32(0.5), u - np.float32(0.5)).astype(np.float32)
        u = np.minimum(np.maximum(u, -q), q)
        return np.trunc(u).astype(self.act.dtype)

    def _rows(self, base: int, rs: int, m: int, n: int) -> np.ndarray:
        """The [m, n] matrix at `base` with row stride `rs` (a view of act)."""
        if m == 0 or n == 0:
            return np.zeros((m, n), self.act.dtype)
        return np.lib.stride_tricks.as_strided(
            self.act[base:], shape=(m, n), strides=(rs * self.act.itemsize,
                                                    self.act.itemsize))

    def _write(self, base: int, rs: int, y: np.ndarray) -> None:
        m, n = y.shape
        for r in range(m):
            self.act[base + r * rs: base + r * rs + n] = y[r]

    def _weights(self, d: dict, base: int, k: int, n: int) -> np.ndarray:
        """Weight codes [k, n] from the tiled words (program.tile_words: per panel, column
        group, k, the C/PACK words of PACK adjacent columns)."""
        pk, c = self.k.pack, self.k.cols
        pwp, cp = d["pw"] // pk, c // pk
        nw = -(-n // pk)  # words per k row
        npan = -(-nw // pwp)
        t = self.wts[base: base + npan * (pwp // cp) * k * cp]
        words = t.reshape(npan, pwp // cp, k, cp).transpose(2, 0, 1, 3).reshape(k, -1)
        if self.k.fp32 or pk == 1:
            return words[:, :n]
        words = words.astype(np.int64)
        wb = self.k.w_bits
        lo = ((words & ((1 << wb) - 1)) ^ (1 << (wb - 1))) - (1 << (wb - 1))
        hi = words >> wb
        out = np.empty((k, 2 * words.shape[1]), np.int64)
        out[:, 0::2], out[:, 1::2] = lo, hi
        return out[:, :n]

    # ---- one op --------------------------------------------------------------------------
    def run(self, d: dict) -> None:
        if d["op"] == 0:
            self._gemm(d)
        else:
            self._sfu(d)

    def _gemm(self, d: dict) -> None:
        m, k, n = d["M"], d["K"], d["N"]
        prm = self.prm
        for z in range(d["Z"]):
            zb, zh = divmod(z, d["H"])
            a = self._rows(d["a0"] + zb * d["a_zb"] + zh * d["a_zh"], d["a_rs"], m, k)
            bbase = d["b0"] + zb * d["b_zb"] + zh * d["b_zh"]
            if d["b_src"] == 0:
                b = self._weights(d, bbase, k, n)
            elif d["b_t"]:
                b = self._rows(bbase, d["b_rs"], n, k).T
            else:
                b = self._rows(bbase, d["b_rs"], k, n)
            sw = prm[d["sb"] + np.arange(n) * d["bstep"]].astype(np.float32)
            if self.k.fp32:
                u = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32) * sw
            else:
                a64 = a.astype(np.float64)
                if d["passes"] == 2:
                    b64 = b.astype(np.int64)
                    hi, lo = b64 >> 4, (b64 & 15) - 8
                    t = (16 * np.rint(a64 @ hi).astype(np.int64) + np.rint(a64 @ lo).astype(
                        np.int64) + 8 * a.astype(np.int64).sum(axis=1, keepdims=True))
                else:
                    t = np.rint(a64 @ b.astype(np.float64)).astype(np.int64)
                u = (t.astype(np.float32) * prm[d["sa"]]).astype(np.float32) * sw
            if d["bias"] >= 0:
                u = u + prm[d["bias"]: d["bias"] + n]
            u = u.astype(np.float32) * prm[d["sy"]]
            self._write(d["y0"] + zb * d["y_zb"] + zh * d["y_zh"], d["y_rs"], self._requant(u))

    def _sfu(self, d: dict) -> None:
        fn = _FN[d["op"]]
        m, n, lanes = d["M"], d["N"], self.k.sfu_lanes
        prm = self.prm
        f32 = np.float32
        x = self._rows(d["a0"], d["a_rs"], m, n).astype(f32) * prm[d["sa"]]
        x1 = (self._rows(d["b0"], d["b_rs"], m, n).astype(f32) * prm[d["sb"]]
              if fn in ("swiglu", "add", "gated") else None)

        nw = -(-n // lanes)
        pad = np.zeros((m, nw * lanes), f32)

        def lane_sum(v: np.ndarray) -> np.ndarray:
            """The kernel's reduction: partial l*4 + w % 4 over the words w of lane l in
            order (FADD = 4 partials per lane), then the partials in kernel.tree's tree."""
            pad[:, :n] = v
            pad[:, n:] = 0
            w = pad.reshape(m, nw, lanes)
            part = np.zeros((m, lanes, 4), f32)
            for jj in range(nw):
                part[:, :, jj % 4] = (part[:, :, jj % 4] + w[:, jj]).astype(f32)
            terms = [part[:, i // 4, i % 4] for i in range(lanes * 4)]
            while len(terms) > 1:
                nxt = [(terms[i] + terms[i + 1]).astype(f32) for i in range(0, len(terms) - 1, 2)]
                if len(terms) % 2:
                    nxt.append(terms[-1])
                terms = nxt
            return terms[0][:, None]

        rows = np.arange(m)
        bq, lq = rows // d["seq"], rows % d["seq"]
        cols = np.arange(n)
        if fn in ("layernorm", "rmsnorm"):
            eps = prm[d["pe"]]
            g = prm[d["p0"]: d["p0"] + n]
            ms = (lane_sum(x * x) / f32(n)).astype(f32)
            if fn == "layernorm":  # one pass: var = E[x^2] - mean^2, clamped at 0
                mu = (lane_sum(x) / f32(n)).astype(f32)
                var = np.maximum((ms - mu * mu).astype(f32), f32(0))
                inv = (f32(1.0) / np.sqrt(var + eps)).astype(f32)
                z = ((x - mu) * inv).astype(f32) * g
                if d["p1"] >= 0:
                    z = z + prm[d["p1"]: d["p1"] + n]
            else:
                inv = (f32(1.0) / np.sqrt(ms + eps)).astype(f32)
                z = (x * inv).astype(f32) * g
        elif fn == "softmax":  # the sum of the exps in 2^-23 fixed point (exact integers)
            mx = x.max(axis=1, keepdims=True)
            e = np.exp(x - mx).astype(f32)
            tot = np.trunc(e * f32(8388608.0)).astype(np.int64).sum(axis=1, keepdims=True)
            z = e * (f32(8388608.0) / tot.astype(f32)).astype(f32)
        elif fn == "gelu_tanh":
            z = f32(0.5) * x * (f32(1.0) + np.tanh(f32(0.7978845608028654) * (
                x + f32(0.044715) * x * x * x)))
        elif fn == "gelu_erf":
            u = x * f32(0.7071067811865476)
            a = np.abs(u)
            t = f32(1.0) / (f32(1.0) + f32(0.3275911) * a)
            q = t * (f32(0.254829592) + t * (f32(-0.284496736) + t * (f32(1.421413741) + t * (
                f32(-1.453152027) + t * f32(1.061405429)))))
            e = f32(1.0) - q * np.exp(-a * a)
            e = np.where(u < 0, -e, e)
            z = f32(0.5) * x * (f32(1.0) + e)
        elif fn == "silu":
            z = x / (f32(1.0) + np.exp(-x))
        elif fn == "swiglu":
            z = x / (f32(1.0) + np.exp(-x)) * x1
        elif fn == "add":
            z = x + x1
        elif fn == "gated":
            z = x + prm[d["p0"] + bq[:, None] * d["prs"] + cols] * x1
        elif fn == "modulate":
            sc = prm[d["p0"] + bq[:, None] * d["prs"] + cols]
            sh = prm[d["p1"] + bq[:, None] * d["prs"] + cols]
            z = x * (f32(1.0) + sc) + sh
        elif fn == "rotary":
            dh = d["dh"]
            half = dh // 2
            dd = cols % dh
            partner = np.where(dd < half, cols + half, cols - half)
            rh = np.where(dd < half, -x[:, partner], x[:, partner])
            cos = prm[d["p0"] + lq[:, None] * half + dd % half]  # the tables' first halves
            sin = prm[d["p1"] + lq[:, None] * half + dd % half]
            z = x * cos + rh * sin
        else:  # pragma: no cover - SFU_CODES and this chain list the same functions
            raise ValueError(fn)
        u = z.astype(f32) * prm[d["sy"]]
        self._write(d["y0"], d["y_rs"], self._requant(u.astype(f32)))
