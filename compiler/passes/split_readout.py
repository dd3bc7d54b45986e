"""Pass 3b (after quantize): split a readout whose fan-in exceeds a core's input axons into parts.

The readout (global pool + FC) gives each class neuron every pooled source neuron as an input:
C * H * W axons, over the 4,096 a Loihi core has on a CIFAR-sized net. It is non-spiking and
read by the host, so it can be cut into G parts, each a copy of the K class neurons that reads
a contiguous slice of the source channels (at most `input_axons_per_core` source neurons);
the host adds the G partial potentials of each class before the argmax (`Graph.readout_parts`,
neuron g * K + k is part g of class k). The bias goes into part 0 only, so the sum is the
unsplit readout's potential exactly as long as no part reaches the 24-bit clip (the compile
report's readout headroom gives each part's worst case). Pieces are whole channels: a
channel's H * W positions larger than the limit cannot be split (check_rules reports it).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lsnn.compiler.ir import Graph, SynapseGroup
from lsnn.contract.readout import readout_partition
from lsnn.hw_profiles.profile import Profile


def readout_sources(graph: Graph) -> list[tuple[int, int]]:
    """(channels, H * W) of each population the readout reads, in order of first appearance
    (the same before and after the split: parts of one source are consecutive)."""
    srcs = list(dict.fromkeys(s.src for s in graph.synapses if s.dst == graph.readout))
    return [(c, h * w) for c, h, w in (graph.shape_of(src) for src in srcs)]


def split_readout(graph: Graph, profile: Profile) -> Graph:
    """The graph with its readout in parts if its dense inputs exceed the profile's input axons
    per core; unchanged otherwise (or if the readout is fed by anything but dense groups)."""
    ro = graph.population(graph.readout)
    incoming = [s for s in graph.synapses if s.dst == ro.name]
    limit = profile.input_axons_per_core
    if graph.readout_parts != 1 or not incoming or any(s.kind != "dense" or s.dst_channel_offset != 0
                                                       or s.weight.shape[0] != ro.shape[0] for s in incoming):
        return graph
    shapes = [graph.shape_of(s.src) for s in incoming]
    parts = readout_partition([(c, h * w) for c, h, w in shapes], limit)
    if parts is None:
        return graph
    k = ro.shape[0]
    new_syns: list[SynapseGroup] = []
    for g, part in enumerate(parts):
        for i, c0, c1 in part:
            s = incoming[i]
            c, h, w = shapes[i]
            cols = np.zeros((c, h * w), dtype=bool)
            cols[c0:c1] = True                                   # C-major (C, H, W) columns
            keep = np.broadcast_to(cols.reshape(1, -1), s.weight.shape)
            mask = keep if s.mask is None else (np.asarray(s.mask, dtype=bool) & keep)
            new_syns.append(dataclasses.replace(s, name=f"{s.name}.part{g}", mask=np.ascontiguousarray(mask),
                                                weight=np.where(mask, s.weight, 0).astype(s.weight.dtype),
                                                dst_channel_offset=g * k, stats=None))
    n = len(parts)
    bias = np.zeros(n * k, dtype=np.asarray(ro.bias_mant).dtype)
    bias[:k] = ro.bias_mant                                      # added once: part 0
    new_ro = dataclasses.replace(ro, shape=(n * k, 1, 1), bias_mant=bias)
    pops = tuple(new_ro if p.name == ro.name else p for p in graph.populations)
    syns: list[SynapseGroup] = []
    for s in graph.synapses:                                     # parts where the original was
        if s.dst == ro.name:
            if s is incoming[0]:
                syns.extend(new_syns)
            continue
        syns.append(s)
    return graph.replace(populations=pops, synapses=tuple(syns), readout_parts=n)
