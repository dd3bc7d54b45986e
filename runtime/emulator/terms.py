"""What each synapse group sends, kept as it comes out of its kernel until its destination runs.

A population's input at step t is the sum of what its incoming groups send (Lava's InPort sum,
in int32), each group into a slice of its channels. Instead of storing every group's output into
an int32 buffer of the destination (a full write and read per group, the largest memory cost of
the emulator), each output stays as the group's kernel wrote it, a `Term`: float32 integers or
uint8 integers + 128 (a fused convolution), uint8 spikes (an identity group: the source's own
spikes, subsampled by a view) or int32 (the NumPy groups). The compiled LIF (`kernels.lif_gather`)
sums a row of every term into a buffer in L1 just before it updates that row; the NumPy
reference sums them with `gather`. The integers are the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = (np.float32, np.uint8, np.int32)     # term dtypes, in the order `lif_gather` takes them
# kind, index within kind, channel offset, scale, zero, static, then the layout of the flat array:
# strides of a row, an image row and a pixel (elements), pixels per image row, channels
META_COLUMNS = 11


@dataclass(frozen=True)
class Term:
    """One group's output y [R, H, W, c] (rows: step x sample, or sample only if `static`),
    adding (y - zero) * scale to channels offset..offset+c of its destination."""

    y: np.ndarray
    offset: int
    scale: int = 1
    zero: int = 0
    static: bool = False        # the encoded input: one row per sample, sent at every step


def gather(terms: list[Term], T: int, bsz: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The NumPy sum of `terms` into a destination of shape (C, H, W): int32 [T, B, H, W, C],
    int32 additions wrapping like Lava's InPort."""
    c, h, w = shape
    a = np.zeros((T, bsz, h, w, c), np.int32)
    for term in terms:
        y = term.y.astype(np.int32)
        if term.zero:
            y -= np.int32(term.zero)
        if term.scale != 1:
            y *= np.int32(term.scale)
        y = y[None] if term.static else y.reshape((T, bsz) + y.shape[1:])
        a[..., term.offset:term.offset + y.shape[-1]] += y
    return a


def _flat(y: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """y [R, H, W, c] with unit channel stride as a 1-D view of the memory it spans, and its
    row, image-row and pixel strides in elements: the compiled kernel then reads channels
    contiguously (and vectorises) whatever slice of a wider array y is."""
    if y.strides[3] != y.itemsize or min(y.strides) < 0:
        y = np.ascontiguousarray(y)
    step = [st // y.itemsize for st in y.strides[:3]]
    if y.flags.c_contiguous:                    # the common case, without as_strided's cost
        return y.reshape(-1), (step[0], step[1], step[2])
    span = 1 + sum((n - 1) * st for n, st in zip(y.shape, step + [1]))
    return np.lib.stride_tricks.as_strided(y, shape=(span,), strides=(y.itemsize,)), (step[0], step[1], step[2])


def pack(terms: list[Term], T: int, bsz: int, shape: tuple[int, int, int], slots: int
         ) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """`terms` of a destination of shape (C, H, W) as `lif_gather` takes them: flat arrays by
    dtype (in `KINDS` order, at most `slots` each) and a meta table [K, META_COLUMNS] int64.
    Where a dtype has more terms than slots, all terms are summed first (`gather`: exact)."""
    # other dtypes (e.g. int16 from a graded input) are widened to int32
    ys = [t.y if t.y.dtype.type in KINDS else t.y.astype(np.int32) for t in terms]
    kinds = [KINDS.index(y.dtype.type) for y in ys]
    if any(kinds.count(k) > slots for k in range(len(KINDS))):
        a = gather(terms, T, bsz, shape)
        terms = [Term(a.reshape((T * bsz,) + a.shape[2:]), 0)]
        ys, kinds = [terms[0].y], [KINDS.index(np.int32)]
    by_kind: list[list[np.ndarray]] = [[] for _ in KINDS]
    meta = np.empty((len(terms), META_COLUMNS), np.int64)
    for k, (term, y, kind) in enumerate(zip(terms, ys, kinds)):
        flat, (sr, sh, sw) = _flat(y)
        meta[k] = (kind, len(by_kind[kind]), term.offset, term.scale, term.zero, term.static,
                   sr, sh, sw, y.shape[2], y.shape[3])
        by_kind[kind].append(flat)
    return by_kind, meta
