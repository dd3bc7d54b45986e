"""The chip's integer LIF over all T steps as compiled loops (numba), forward and BPTT, for the fused op.

`_FusedLavaLIFFn` ran the recurrence as ~8 whole-tensor torch ops per step, each a pass over
memory in float64; here every neuron runs its T steps in registers, reading the float32
accumulator once and writing the spikes and the saved u once. The arithmetic is the same
float64 operations in the same order (`v = trunc(v (1 - y) f) + 64 a`, clip, `u = v s / 64`,
`y = u > vth`), without fast-math, so the spikes are bit for bit those of the torch path
(tests/searcher/neuron/test_lava_kernel.py). The backward is `fused._lif_backward`'s BPTT,
per neuron in float64 (the torch path runs it in float32: the gradients agree to float32
rounding, not bit for bit; the threshold's gradient is summed per block in a fixed order, so
it is deterministic). Used on CPU tensors with a scalar scale and threshold; anything else
takes the torch path.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lsnn.contract.chip import ACT_SHIFT

_BLOCK = 4096                        # neurons per parallel task
_ACT_MUL = float(1 << ACT_SHIFT)     # the accumulator enters v as a << 6


def _threads() -> None:
    """Run the kernels on as many threads as torch (a job of one torch thread stays on one core)."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _kernel():
    """The compiled kernels (compiled on first use, cached on disk)."""
    global _KERNEL
    if _KERNEL is None:
        from numba import njit, prange

        @njit(parallel=True, cache=True)
        def lava_lif_forward(units, T, factor, c, th, vmax, U, Y, out):  # pragma: no cover (compiled)
            M = U.shape[1]
            const = units.shape[0] == 1
            for blk in prange((M + _BLOCK - 1) // _BLOCK):
                lo = blk * _BLOCK
                hi = min(M, lo + _BLOCK)
                for i in range(lo, hi):
                    v = 0.0
                    y = False
                    for t in range(T):
                        x = np.float64(units[0, i] if const else units[t, i]) * _ACT_MUL
                        if t == 0:
                            v = x
                        else:
                            if y:
                                v = 0.0
                            v = np.trunc(v * factor) + x
                        if v > vmax:
                            v = vmax
                        elif v < -vmax:
                            v = -vmax
                        uc = v * c
                        y = uc > th
                        U[t, i] = np.float32(uc)
                        Y[t, i] = y
                        out[t, i] = 1.0 if y else 0.0

        @njit(parallel=True, cache=True)
        def lif_backward(G, U, Y, T, tau, twob, neg2bth, four_c, edge, constant, gI, gv):  # pragma: no cover
            M = U.shape[1]
            for blk in prange((M + _BLOCK - 1) // _BLOCK):
                lo = blk * _BLOCK
                hi = min(M, lo + _BLOCK)
                acc = 0.0
                for i in range(lo, hi):
                    gn = 0.0
                    tot = 0.0
                    for k in range(T):
                        t = T - 1 - k
                        u = np.float64(U[t, i])
                        s = 1.0 / (1.0 + np.exp(-(twob * u + neg2bth)))
                        sg = four_c * (s - s * s)
                        if not sg > edge:
                            sg = 0.0
                        g = np.float64(G[t, i]) * sg if k == 0 else (np.float64(G[t, i]) - tau * u * gn) * sg
                        acc -= g
                        if k > 0 and not Y[t, i]:
                            g += tau * gn
                        if constant:
                            tot += g
                        else:
                            gI[t, i] = g
                        gn = g
                    if constant:
                        gI[0, i] = tot
                gv[blk] = acc

        _KERNEL = (lava_lif_forward, lif_backward)
    return _KERNEL


_KERNEL = None


def usable(units: torch.Tensor, scale: torch.Tensor, vth_int: torch.Tensor, out_dtype: torch.dtype) -> bool:
    """Whether `lava_lif_forward` can run these tensors (numba imports; CPU, scalar scale and
    threshold, float32 or float64 accumulator, float32 spikes)."""
    if not (units.device.type == "cpu" and units.dtype in (torch.float32, torch.float64)
            and scale.numel() == 1 and vth_int.numel() == 1 and out_dtype == torch.float32):
        return False
    try:
        _kernel()
    except ImportError:
        return False
    return True


def lava_lif_forward(units_tm: torch.Tensor, T: int, factor: float, scale: float, vth_int: float,
                     vmax: float, out_tm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence on the [T or 1, M] accumulator view `units_tm`; writes the spikes into
    the [T, M] float32 view `out_tm`; returns (u as float32 [T, M], spikes as bool [T, M])."""
    m = units_tm.shape[1]
    U = torch.empty((T, m), dtype=torch.float32)
    Y = torch.empty((T, m), dtype=torch.bool)
    c = float(scale) / _ACT_MUL
    th = float(vth_int) * float(scale)
    _threads()
    _kernel()[0](units_tm.detach().numpy(), int(T), float(factor), c, th, float(vmax), U.numpy(), Y.numpy(),
                 out_tm.numpy())
    return U, Y


def lif_backward(G: torch.Tensor, U: torch.Tensor, Y: torch.Tensor, T: int, tau: float, temperature: float,
                 vth: float, constant: bool) -> tuple[torch.Tensor, float]:
    """BPTT of the fused LIF (`fused._lif_backward`) for the [T, M] upstream gradient `G`, saved u
    `U` and spikes `Y`: (dL/dI as float32 [T or 1, M], dL/dvth)."""
    b = float(temperature)
    c = b / (2.0 * math.tanh(b / 2.0))
    edge = c * (1.0 - math.tanh(b / 2.0) ** 2)          # the surrogate at |u - vth| = 1/2
    m = U.shape[1]
    gI = torch.empty((1 if constant else T, m), dtype=torch.float32)
    gv = np.zeros((m + _BLOCK - 1) // _BLOCK, dtype=np.float64)
    _threads()
    _kernel()[1](G.detach().numpy(), U.numpy(), Y.numpy(), int(T), float(tau), 2.0 * b, -2.0 * b * float(vth),
                 4.0 * c, edge, bool(constant), gI.numpy(), gv)
    return gI, float(gv.sum())
