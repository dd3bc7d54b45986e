"""The synaptic inputs of every population for one batch, zeroed only where nothing writes.

Each population's input is the sum of what its incoming synapse groups send (Lava's InPort sum),
each group into a slice of its channels. Zeroing every buffer before each batch costs a full
memory pass; instead the first group to reach a channel slice stores its output there and later
ones add to it, and `take` zeroes only the channels no group wrote. The integers are the same.
"""
from __future__ import annotations

import numpy as np

INT16_LIMIT = 2 ** 15


def input_dtype(bound: int, compiled_lif: bool) -> type:
    """The dtype of a population's input buffer: int16 where `bound` (the largest |input| of one
    step, the sum of its groups' bounds) keeps every value inside it and the compiled LIF reads
    it, which halves the bytes that storing the groups' outputs and the LIF's read move; int32
    (Lava's InPort width, with its wrap) otherwise."""
    return np.int16 if compiled_lif and bound < INT16_LIMIT else np.int32


class PendingInputs:
    """Input buffers [rows, H, W, C] (int32, or int16 by `input_dtype`) by population, with the
    channels written so far."""

    def __init__(self, buffers: dict[str, np.ndarray]) -> None:
        self.buffers = buffers
        self._written = {name: np.zeros(buf.shape[-1], bool) for name, buf in buffers.items()}

    @staticmethod
    def scratch_like(buffers: dict[str, np.ndarray]) -> "PendingInputs":
        """Scratch buffers of the same shapes (for measuring a form); uninitialised, which the
        lazy zeroing makes the same as zeros."""
        return PendingInputs({k: np.empty_like(v) for k, v in buffers.items()})

    def slot(self, dst: str, offset: int, channels: int) -> tuple[np.ndarray, bool]:
        """The buffer of `dst` and whether channels offset..offset+channels are fresh (never
        written this batch: store, don't add). A slice written in part has its rest zeroed."""
        done = self._written[dst][offset:offset + channels]
        buf = self.buffers[dst]
        if done.all():
            return buf, False
        if done.any():
            buf[..., offset:offset + channels][..., ~done] = 0
            done[:] = True
            return buf, False
        done[:] = True
        return buf, True

    def zeroed(self, dst: str, offset: int, channels: int) -> np.ndarray:
        """The buffer of `dst` with channels offset..offset+channels ready to add into (zeroed
        first if fresh): for kernels that only accumulate."""
        buf, fresh = self.slot(dst, offset, channels)
        if fresh:
            buf[..., offset:offset + channels] = 0
        return buf

    def take(self, dst: str) -> np.ndarray:
        """The finished input of `dst` (channels no group wrote are zeroed)."""
        buf = self.buffers[dst]
        done = self._written[dst]
        if not done.all():
            buf[..., ~done] = 0
            done[:] = True
        return buf
