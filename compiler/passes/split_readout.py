"""Pass 3b (after quantize): split a readout whose fan-in exceeds a part's limit into parts.

The readout (global pool + FC) gives each class neuron every pooled source neuron as an input:
C * H * W axons, over the 4,096 a Loihi core has on a CIFAR-sized net. It is non-spiking and
read by the host, so it can be cut into G parts, each a copy of the K class neurons that reads
a contiguous slice of the source channels (at most `input_axons_per_core` source neurons, and
few enough that the part cannot reach the 24-bit clip within the window where one channel
allows: `contract.readout.part_limit`, the rule the lava-mode retraining models);
the host adds the G partial potentials of each class before the argmax (`Graph.readout_parts`,
neuron g * K + k is part g of class k). The bias goes into part 0 only, so the sum is the
unsplit readout's potential exactly as long as no part reaches the 24-bit clip (the compile
report's readout headroom gives each part's worst case). Each incoming group stays one group
(same name) into all G * K neurons, its rows stacked by part and masked off outside the part's
channels (`_stacked_groups`; `Graph.unsplit` adds them back). Pieces are whole channels: a
channel's H * W positions larger than the limit cannot be split (check_rules reports it).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from lsnn.compiler.ir import Graph, SynapseGroup
from lsnn.contract.readout import Piece, part_limit, readout_partition
from lsnn.hw_profiles.profile import Profile


def readout_sources(graph: Graph) -> list[tuple[int, int]]:
    """(channels, H * W) of each population the readout reads, in order of first appearance
    (the same before and after the split: parts of one source are consecutive)."""
    srcs = list(dict.fromkeys(s.src for s in graph.synapses if s.dst == graph.readout))
    return [(c, h * w) for c, h, w in (graph.shape_of(src) for src in srcs)]


def readout_part_limit(graph: Graph, axons: Optional[int]) -> int:
    """`part_limit` for this graph's readout: its T, its widest source channel and the largest
    weight its dense groups' format allows (2^bits - 1; the largest |weight| if bits is unset)."""
    incoming = [s for s in graph.synapses if s.dst == graph.readout]
    w_max = max([(1 << int(s.bits)) - 1 if s.bits else int(np.abs(np.asarray(s.weight)).max(initial=1))
                 for s in incoming] or [1])
    positions = max([h * w for _, h, w in (graph.shape_of(s.src) for s in incoming)] or [1])
    return part_limit(axons, graph.T, w_max, positions)


def _stacked_groups(incoming: list[SynapseGroup], shapes: list[tuple[int, int, int]],
                    parts: list[list[Piece]], k: int) -> dict[str, SynapseGroup]:
    """Each incoming group as one group into all G * K part neurons: rows g * K .. g * K + K - 1
    hold the group's weights on the channels part g reads and are masked off elsewhere."""
    out: dict[str, SynapseGroup] = {}
    n = len(parts)
    for i, s in enumerate(incoming):
        c, h, w = shapes[i]
        hw = h * w
        kept = np.ones(s.weight.shape, dtype=bool) if s.mask is None else np.asarray(s.mask, dtype=bool)
        weight = np.zeros((n * k, c * hw), dtype=np.int32)
        mask = np.zeros((n * k, c * hw), dtype=bool)
        for g, part in enumerate(parts):
            for j, c0, c1 in part:
                if j == i:                                       # C-major (C, H, W) columns
                    cols = slice(c0 * hw, c1 * hw)
                    mask[g * k:(g + 1) * k, cols] = kept[:, cols]
                    weight[g * k:(g + 1) * k, cols] = np.where(kept[:, cols], s.weight[:, cols], 0)
        out[s.name] = dataclasses.replace(s, weight=weight, mask=mask, stats=None)
    return out


def split_readout(graph: Graph, profile: Profile) -> Graph:
    """The graph with its readout in parts if its dense inputs exceed `readout_part_limit`;
    unchanged otherwise (or if the readout is fed by anything but dense groups)."""
    ro = graph.population(graph.readout)
    incoming = [s for s in graph.synapses if s.dst == ro.name]
    if graph.readout_parts != 1 or not incoming or any(s.kind != "dense" or s.dst_channel_offset != 0
                                                       or s.weight.shape[0] != ro.shape[0] for s in incoming):
        return graph
    limit = readout_part_limit(graph, profile.input_axons_per_core)
    shapes = [graph.shape_of(s.src) for s in incoming]
    parts = readout_partition([(c, h * w) for c, h, w in shapes], limit)
    if parts is None:
        return graph
    stacked = _stacked_groups(incoming, shapes, parts, ro.shape[0])
    n, k = len(parts), ro.shape[0]
    bias = np.zeros(n * k, dtype=np.asarray(ro.bias_mant).dtype)
    bias[:k] = ro.bias_mant                                      # added once: part 0
    new_ro = dataclasses.replace(ro, shape=(n * k, 1, 1), bias_mant=bias)
    pops = tuple(new_ro if p.name == ro.name else p for p in graph.populations)
    syns = tuple(stacked.get(s.name, s) for s in graph.synapses)
    return graph.replace(populations=pops, synapses=syns, readout_parts=n)
