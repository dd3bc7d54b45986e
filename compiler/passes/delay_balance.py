"""Pass 5: pipeline depths, per-edge delays and latency (docs/SEMANTICS.md 4, docs/DESIGN.md 3).

On Lava every synapse delays by one step and LIF by none, so a population at depth d receiving
from depth d' < d - 1 needs d - 1 - d' extra steps on that edge for its inputs to line up:
input depth 0, population depth 1 + max source depth, edge delay = depth(dst) - 1 - depth(src),
latency = depth of the readout.
"""
from __future__ import annotations

from dataclasses import replace

from lsnn.compiler.ir import Graph, depths


def delay_balance(graph: Graph, profile: object = None) -> Graph:
    """Set every population's depth, every edge's delay and the graph latency."""
    d = depths(graph)
    pops = tuple(p if p.depth == d[p.name] else replace(p, depth=d[p.name]) for p in graph.populations)
    syns = tuple(s if s.delay == d[s.dst] - 1 - d[s.src] else replace(s, delay=d[s.dst] - 1 - d[s.src])
                 for s in graph.synapses)
    return graph.replace(populations=pops, synapses=syns, latency=d[graph.readout])
