"""T LIF steps of one population for a whole batch, on the sum of its terms, and its spike
totals, on either backend.

The compiled kernel (`kernels.lif_gather`) sums the terms row by row as it runs the LIF and counts
the spikes while it writes them; the NumPy reference sums them (`terms.gather`), runs `lif_step`
(or its exact no-decay form) and sums the spikes afterwards. Both give the same spikes, voltages
and totals.
"""
from __future__ import annotations

from types import ModuleType
from typing import Optional

import numpy as np

from lsnn.contract.chip import LifParams, lif_step
from lsnn.runtime.emulator.lif_fast import lif_run_fast
from lsnn.runtime.emulator.terms import Term, gather, pack

_LIF_CHUNK = 2 ** 16            # neurons per NumPy LIF update call (cache-sized, ~1.3x faster)


def run_lif(kernels: Optional[ModuleType], par: LifParams, nodecay: bool, terms: list[Term], s: np.ndarray,
            per_neuron: np.ndarray, want_trace: bool) -> tuple[Optional[np.ndarray], np.ndarray]:
    """T LIF steps from rest on the sum of `terms`, spikes into s [T, B, H, W, C] (uint8), each
    neuron's spikes over B and T added to per_neuron [H*W*C] (int64); returns (v after every
    step [T, B, H, W, C] if `want_trace`, spikes per sample and step [B, T]). `kernels`: the
    compiled kernels, or None for the NumPy reference; `nodecay`: `lif_fast.fast_path_ok`
    holds for this population."""
    T, bsz, h, w, c = s.shape
    tr = np.empty(s.shape, np.int32) if want_trace else None
    if kernels is not None:
        tb = np.empty((bsz, T), np.int64)
        bias = np.ascontiguousarray(par.bias.reshape(-1), dtype=np.int32)
        by_kind, meta = pack(terms, T, bsz, (c, h, w), kernels.SLOTS)
        rows = (T, bsz, h * w * c)
        trace = tr.reshape(rows) if tr is not None else np.empty((0, 0, 0), np.int32)
        kernels.gather_lif(by_kind, meta, par.du, par.dv, bias, par.vth_eff, nodecay, s.reshape(rows),
                           trace, want_trace, tb, per_neuron)
        return tr, tb
    a = gather(terms, T, bsz, (c, h, w))
    par = LifParams(par.du, par.dv, par.bias.reshape(1, 1, 1, c), par.vth_eff)
    if nodecay:
        step = max(1, _LIF_CHUNK // (h * w * c))
        for i0 in range(0, bsz, step):
            i1 = min(bsz, i0 + step)
            lif_run_fast(a[:, i0:i1], par, s[:, i0:i1], None if tr is None else tr[:, i0:i1])
    else:
        u = np.zeros((bsz, h, w, c), dtype=np.int32)
        v = np.zeros((bsz, h, w, c), dtype=np.int32)
        for t in range(T):
            s[t] = lif_step(u, v, a[t], par)
            if tr is not None:
                tr[t] = v
    per_neuron += s.reshape(T * bsz, -1).sum(axis=0, dtype=np.int64)
    return tr, s.reshape(T, bsz, -1).sum(axis=2, dtype=np.int64).T
