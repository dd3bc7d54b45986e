"""Pass 2: fold any per-channel BatchNorm left in a synapse group into its weights and the
destination's bias.

The searcher's retrained artifact has BN folded already (docs/SEMANTICS.md 2), so this pass is
normally the identity; it exists for third-party artifacts whose synapse entries carry a
``bn`` block. For a group writing dst channels [o0, o0 + O): with k = gamma / sqrt(var + eps),
``W'[o] = k[o] * W[o]`` and ``bias[o0 + o] += beta[o] - k[o] * mean[o]`` (in the population's
units, i.e. divided by s_P). Folded values are usually off the integer grid; `quantize` then
reports them.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from lsnn.compiler.ir import Graph
from lsnn.errors import IRError


def fold(graph: Graph, profile: object = None) -> Graph:
    """Return a graph with every BatchNorm folded (the same graph object if there is none)."""
    if not any(s.bn is not None for s in graph.synapses):
        return graph
    if graph.stage != "float":
        raise IRError("fold: batchnorm can only be folded in a float-stage graph")
    bias = {p.name: np.array(p.bias_mant, dtype=np.float64) for p in graph.populations}
    syns = []
    for s in graph.synapses:
        if s.bn is None:
            syns.append(s)
            continue
        bn = s.bn
        k = bn.gamma / np.sqrt(bn.var + bn.eps)
        shape = (-1,) + (1,) * (s.weight.ndim - 1)
        w = s.weight * k.reshape(shape)
        scale = graph.population(s.dst).scale
        o0 = s.dst_channel_offset
        bias[s.dst][o0:o0 + k.shape[0]] += (bn.beta - k * bn.mean) / scale
        syns.append(replace(s, weight=w, bn=None))
    pops = [replace(p, bias_mant=bias[p.name]) if any(s.bn is not None and s.dst == p.name for s in graph.synapses)
            else p for p in graph.populations]
    return graph.replace(populations=tuple(pops), synapses=tuple(syns))
