"""The chip's convolution of binary spikes as oneDNN's int8 kernel, exact and ~2x float32's speed.

A conv group fed by spikes multiplies 0/1 inputs by integer weights and sums integers. oneDNN's
quantised convolution (`torch.ops.onednn.qconv2d_pointwise`, the kernel behind PyTorch's x86 int8
inference) does exactly that: uint8 activations (the spikes as they are stored, channels-last,
no conversion), int8 weights, an int32 accumulator, and, with every scale 1 and every zero point
0, a float32 output equal to the integer sum wherever it is below 2^24 (the groups' bounds
guarantee it: `synapse_ops.FusedConv.fusable`). With 0/1 inputs the kernels that pair u8 x s8
products into int16 cannot saturate (|2 * 128| < 2^15).

The op is internal to PyTorch: `Int8Conv.build` returns None where it is missing, where a
weight does not fit int8, or where a self-check on random spikes differs from the float32
convolution by a single integer, and the caller keeps the float32 form. The outputs never depend
on which form runs.

Where every output is known to lie in a range of at most 256 integers, the output is uint8 with
a zero point instead of float32: oneDNN writes a quarter of the bytes (measured 2.8x faster on a
32x32, 24 -> 48 channel layer) and every integer is still exact (y - zero). With 0/1 inputs an
output lies in [-(its negative weights' magnitudes summed), its positive weights summed]
(`spike_output_range`), about half the symmetric bound sum |w| for mixed-sign weights, so
groups with sum |w| up to ~255 fit (measured on the CIFAR-size benchmark net: 8 more of 55
convolutions than with [-128, 127]).

Strided 1x1 kernels are refused: on AVX2 CPUs without AVX-512 (seen on an AMD EPYC, torch 2.15)
oneDNN's int8 1x1 kernel with stride 2 returns wrong integers that change from call to call when
it runs on more than one thread (its "reduce to unit stride" copy of the input races; oneDNN issue
#6035 reports the same copy writing out of bounds in another direction). A 1x1 conv with stride s
and no padding is a stride-1 conv of the input subsampled by s, which `FusedConv` runs instead.
The self-check runs on a batch large enough for the kernels' threads to split it, twice.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
U8_LEVELS = 256             # integers the uint8 output form holds
_CHECK_SAMPLES = 16         # random spike maps in the self-check (enough to split across threads)
_CHECK_RUNS = 2             # a kernel that races gives different integers from run to run


def spike_output_range(weight: np.ndarray) -> tuple[int, int]:
    """(lo, hi): every output of a convolution of 0/1 inputs with `weight` (O, C, kh, kw) lies
    in [lo, hi] (lo: the most negative channel's negative weights summed; hi: the most positive
    channel's positive weights summed; padding only drops terms)."""
    w = weight.reshape(weight.shape[0], -1).astype(np.int64)
    return -int(np.clip(-w, 0, None).sum(axis=1).max()), int(np.clip(w, 0, None).sum(axis=1).max())


class Int8Conv:
    """One convolution x [M, H, W, C] (uint8 0/1) -> [M, Ho, Wo, O]: float32 integers, or uint8
    integers + `zero` where `spike_output_range` spans at most 256 integers."""

    def __init__(self, weight: np.ndarray, stride: int, padding: int) -> None:
        import torch

        o = weight.shape[0]
        ops = torch.ops.onednn
        self._conv = ops.qconv2d_pointwise
        self._geom = ([stride] * 2, [padding] * 2, [1, 1])
        self._w_scale = torch.ones(o, dtype=torch.float32)
        self._w_zero = torch.zeros(o, dtype=torch.int64)
        w8 = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.int8))
        self._packed = ops.qconv_prepack(w8, self._w_scale, 1.0, 0, *self._geom, 1, None)
        lo, hi = spike_output_range(weight)
        small = hi - lo < U8_LEVELS
        self.zero = -lo if small else 0                      # what to subtract from an output
        self._out = (None if small else torch.float32, self.zero)    # None: quantised uint8

    @staticmethod
    def build(weight: np.ndarray, stride: int, padding: int, in_hw: tuple[int, int],
              seed: int = 0) -> Optional["Int8Conv"]:
        """An `Int8Conv` of `weight` (O, C, kh, kw integers), or None where this PyTorch has no
        oneDNN int8 convolution, a weight is outside int8, the kernel is a strided 1x1, or the
        self-check fails. The caller keeps every output below 2^24 (float32-exact)."""
        if weight.size == 0 or weight.min() < INT8_MIN or weight.max() > INT8_MAX:
            return None
        if weight.shape[2:] == (1, 1) and stride > 1:        # oneDNN's strided 1x1 int8 races on AVX2
            return None
        try:
            conv = Int8Conv(weight, stride, padding)
            ok = conv._agrees_with_float(weight, stride, padding, in_hw, seed)
        except (AttributeError, RuntimeError, TypeError, ValueError):
            return None
        return conv if ok else None

    def _agrees_with_float(self, weight: np.ndarray, stride: int, padding: int,
                           in_hw: tuple[int, int], seed: int) -> bool:
        """True if this kernel gives the float32 convolution's integers on random spike maps
        (spike rates 0.5 and 1: the all-ones map reaches every output's largest sum), on every
        one of `_CHECK_RUNS` runs."""
        import torch

        rng = np.random.default_rng(seed)
        c = weight.shape[1]
        x = (rng.random((_CHECK_SAMPLES, *in_hw, c)) < 0.5).astype(np.uint8)
        x[-1] = 1
        ref = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2).float(),
                                         torch.from_numpy(weight.astype(np.float32)),
                                         stride=stride, padding=padding)
        want = ref.permute(0, 2, 3, 1).numpy().astype(np.int32)
        return all(np.array_equal(self(x).astype(np.int32) - self.zero, want) for _ in range(_CHECK_RUNS))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x [M, H, W, C] uint8 spikes -> [M, Ho, Wo, O] (a view of a fresh tensor): float32, or
        uint8 holding output + `zero`."""
        import torch

        xt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)     # NCHW view, channels-last
        stride, padding, dilation = self._geom
        dtype, zero = self._out
        y = self._conv(xt, 1.0, 0, self._packed, self._w_scale, self._w_zero, None, stride, padding,
                       dilation, 1, 1.0, zero, dtype, "none", [], "")
        return y.permute(0, 2, 3, 1).numpy()
