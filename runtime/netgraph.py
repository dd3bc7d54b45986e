"""What the runtime needs from a compiled `Graph`: checks, pipeline timing, effective weights, input.

Shared by the emulator, the Lava builder and the SynOps counter, so all three read the graph the
same way. NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from lsnn.compiler.ir import INPUT_NAME, Graph, SynapseGroup, depths
from lsnn.errors import RuntimeGraphError


@dataclass(frozen=True)
class Timing:
    """Pipeline timing (docs/SEMANTICS.md section 4): depth per population (input 0), extra delay
    per synapse group, latency = depth of the readout; population P at Lava step k*T + t + depth(P)
    is step t of sample k."""

    depth: Mapping[str, int]
    delay: Mapping[str, int]
    latency: int
    T: int

    @property
    def max_depth(self) -> int:
        """Deepest population (> latency only for populations that do not feed the readout)."""
        return max(self.depth.values())

    def reset_offset(self, pop: str) -> int:
        """LIFReset's offset: P's state is zeroed at steps s with s % T == (1 + depth) % T."""
        return (1 + self.depth[pop]) % self.T

    def num_steps(self, num_samples: int) -> int:
        """Lava steps to stream `num_samples` samples through every population of the pipeline."""
        return num_samples * self.T + self.max_depth


def timing(graph: Graph) -> Timing:
    """Depths and delays of `graph`; computed (delay-balanced) if the graph has none set.

    A graph whose populations all have depth 0 has not been through the compiler's
    `delay_balance` pass: the runtime then balances it itself (depth = 1 + max source depth,
    delay = depth(dst) - 1 - depth(src)). Otherwise every edge must satisfy
    depth(dst) == depth(src) + 1 + delay, or the layers would be misaligned.
    """
    if all(p.depth == 0 for p in graph.populations):
        d = depths(graph)
        delay = {s.name: d[s.dst] - 1 - d[s.src] for s in graph.synapses}
    else:
        d = {INPUT_NAME: 0}
        d.update({p.name: p.depth for p in graph.populations})
        delay = {}
        for s in graph.synapses:
            if d[s.dst] != d[s.src] + 1 + s.delay:
                raise RuntimeGraphError(
                    f"synapse group '{s.name}' is misaligned: depth({s.dst})={d[s.dst]} but "
                    f"depth({s.src})={d[s.src]} + 1 + delay {s.delay} = {d[s.src] + 1 + s.delay}")
            delay[s.name] = s.delay
    latency = d[graph.readout]
    if graph.latency and graph.latency != latency:
        raise RuntimeGraphError(f"graph latency {graph.latency} != depth of readout '{graph.readout}' "
                                f"({latency})")
    return Timing(depth=d, delay=delay, latency=latency, T=graph.T)


def check_runnable(graph: Graph) -> Timing:
    """Raise RuntimeGraphError unless `graph` is integer, aligned and within Lava's value ranges."""
    if not isinstance(graph, Graph):
        raise RuntimeGraphError(f"expected a compiler Graph, got {type(graph).__name__}")
    if graph.stage != "integer":
        raise RuntimeGraphError(f"graph stage is '{graph.stage}': run the compiler's quantize pass "
                                "first (the runtime needs integer weights, biases and thresholds)")
    for p in graph.populations:
        if p.bias_mant.size and (p.bias_mant.min() < -2 ** 15 or p.bias_mant.max() >= 2 ** 15):
            raise RuntimeGraphError(f"population '{p.name}': bias_mant outside int16 (Lava stores it as int16)")
        if not 0 <= p.vth_mant < 2 ** 24:
            raise RuntimeGraphError(f"population '{p.name}': vth_mant {p.vth_mant} outside [0, 2^24)")
    return timing(graph)


def effective_weight(s: SynapseGroup) -> np.ndarray:
    """The integer weight the chip applies (int64): the stored `weight >> weight_exp`, shifted back
    by `<< weight_exp` (docs: SynapseGroup). Equal to `weight` whenever the compiler's quantize
    pass chose an exponent the weights are divisible by; masked entries are zero."""
    w = np.asarray(s.weight).astype(np.int64)
    if s.weight_exp > 0:
        w = np.left_shift(np.right_shift(w, s.weight_exp), s.weight_exp)
    if s.mask is not None:
        w = np.where(s.mask, w, 0)
    return w


SPARSE_DENSITY = 0.25      # a dense group with fewer non-zero weights than this runs sparse


def runs_sparse(w: np.ndarray) -> bool:
    """True if a dense group's integer weights are mostly zero (a readout split into parts: each
    source neuron feeds one part), so the backends apply it as a sparse matrix (same integers)."""
    return np.count_nonzero(w) < SPARSE_DENSITY * np.asarray(w).size


def input_is_graded(graph: Graph) -> bool:
    return graph.input.encoding == "graded" and graph.input.bits > 1


def encode_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """x float [N, C, H, W] -> int32 x_int = rint(clip((x - offset) / span, 0, 1) * (2^bits - 1)).

    Computed in float64 per channel; `np.rint` rounds halves to even, as `torch.round` does.
    """
    x = np.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(graph.input.shape):
        raise RuntimeGraphError(f"input shape {tuple(x.shape[1:])} does not match the net's input "
                                f"shape {tuple(graph.input.shape)} (C, H, W)")
    off = np.asarray(graph.input.offset, dtype=np.float64).reshape(1, -1, 1, 1)
    span = np.asarray(graph.input.span, dtype=np.float64).reshape(1, -1, 1, 1)
    levels = (1 << graph.input.bits) - 1
    q = np.clip((x.astype(np.float64) - off) / span, 0.0, 1.0) * levels
    return np.rint(q).astype(np.int32)


def check_input_int(graph: Graph, x_int: np.ndarray) -> np.ndarray:
    """Validate an already-encoded input batch [N, C, H, W] of integers in [0, 2^bits - 1]."""
    x_int = np.asarray(x_int)
    if x_int.ndim != 4 or tuple(x_int.shape[1:]) != tuple(graph.input.shape):
        raise RuntimeGraphError(f"input shape {tuple(x_int.shape[1:])} does not match the net's input "
                                f"shape {tuple(graph.input.shape)} (C, H, W)")
    if x_int.dtype.kind not in "iub":
        raise RuntimeGraphError(f"encoded input must be integers, got {x_int.dtype}")
    levels = (1 << graph.input.bits) - 1
    if x_int.size and (x_int.min() < 0 or x_int.max() > levels):
        raise RuntimeGraphError(f"encoded input outside [0, {levels}]")
    return x_int.astype(np.int32)
