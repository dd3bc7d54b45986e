"""Pass 7: split populations onto cores, count cores and chips, per-core resources.

Model (documented upper bounds, not a vendor mapper):

- A population (C, H, W) is cut into *units*: one spatial position x one block of channels
  (block = all C channels unless C neurons, their synaptic memory or their output axons
  exceed one core).
  Units are ordered position-major (raster), block-minor; each core takes a contiguous run.
- Per unit: neurons, synapses and synaptic memory summed over incoming groups, counted
  exactly per position (border taps are no synapses) in each group's chosen encoding.
- Input axons of a run: distinct source neurons it reads. Conv: the bounding box of the run's
  receptive field (rows spanned, full width when it spans rows) times all input channels;
  dense: the source neurons with a kept synapse into the run's channels; identity: one per
  neuron. A readout split into parts (split_readout) is cut between any two neurons.
- Output axons: a source neuron needs one per destination core it reaches (Loihi routes spikes
  per core). For a conv edge the reached cores are those spanned by the neuron's target window
  (an upper bound); a core needs the sum over its neurons. Populations are placed in reverse
  topological order so the destinations' cores are known.
- Greedy: extend the current core while neurons, memory, input and output axons fit; a unit
  that alone exceeds a limit is placed alone (check_rules reports it).
- Chips: cores packed in population order, `ceil(cores / cores_per_chip)`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lsnn.compiler.ir import Graph, Placement, Population, SynapseGroup
from lsnn.compiler.passes.sparsify import conv_position_counts, kept_mask
from lsnn.errors import IRError
from lsnn.hw_profiles.profile import Profile


@dataclass(frozen=True, eq=False)
class PopulationPlan:
    """How one population was cut: block size, units, and the core of each unit."""

    name: str
    block: int
    blocks: int
    unit_neurons: np.ndarray      # (units,)
    unit_core: np.ndarray         # (units,) core index within the population
    cores: int
    max_neuron_memory_bits: int   # synaptic memory of the most expensive single neuron
    max_neuron_fan_in: int        # kept input synapses of the most connected neuron (all groups)
    max_neuron_fan_out: int       # destination cores reached by the most connected neuron


@dataclass(frozen=True, eq=False)
class PlacementPlan:
    """The placement and the per-population details check_rules needs."""

    placement: Placement
    populations: tuple[PopulationPlan, ...]

    def plan_of(self, name: str) -> PopulationPlan:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)


def _bits_per_synapse(s: SynapseGroup) -> int:
    st = s.stats
    return s.weight_bits + (st.index_bits if st.encoding == "sparse" else 0)


def _neuron_costs(graph: Graph, p: Population) -> tuple[np.ndarray, np.ndarray]:
    """Per dst channel: worst-case memory bits and kept fan-in of one neuron, over all groups."""
    mem = np.zeros(p.shape[0], dtype=np.int64)
    fan = np.zeros(p.shape[0], dtype=np.int64)
    for s in graph.incoming(p.name):
        st = s.stats
        off = s.dst_channel_offset
        if s.kind == "identity":
            n = graph.shape_of(s.src)[0]
            mem[off:off + n] += s.weight_bits
            fan[off:off + n] += st.fan_in_max
            continue
        o = s.weight.shape[0]
        potential = int(np.prod(s.weight.shape[1:]))
        # dense: each row's own kept inputs (a readout part's rows read only its channels)
        rows = kept_mask(s).sum(axis=1) if s.kind == "dense" else np.full(o, st.fan_in_max, dtype=np.int64)
        mem[off:off + o] += potential * s.weight_bits if st.encoding == "dense" else rows * _bits_per_synapse(s)
        fan[off:off + o] += rows
    return mem, fan


class _Axons:
    """Input axons of a run of units [a, b] of one population (see module doc)."""

    def __init__(self, graph: Graph, p: Population, blocks: int, block: int) -> None:
        self.W = p.shape[2]
        self.nb = blocks
        self.convs: list[tuple[int, int, int, int, int, int, int]] = []
        self.dense: list[tuple[int, np.ndarray]] = []     # (dst channel offset, kept [O, F])
        self.block = block
        self.C = p.shape[0]
        units = p.shape[1] * p.shape[2] * blocks
        ident = np.zeros(units, dtype=np.int64)
        for s in graph.incoming(p.name):
            src = graph.shape_of(s.src)
            if s.kind == "conv":
                _, ci, kh, kw = s.weight.shape
                self.convs.append((ci, kh, kw, s.stride, s.padding, src[1], src[2]))
            elif s.kind == "dense":
                self.dense.append((s.dst_channel_offset, kept_mask(s)))
            else:
                lo, hi = s.dst_channel_offset, s.dst_channel_offset + src[0]
                for b in range(blocks):
                    ov = max(0, min(hi, (b + 1) * block) - max(lo, b * block))
                    ident[b::blocks] += ov
        self.ident_cum = np.concatenate([[0], np.cumsum(ident)])
        self._last: Optional[tuple[int, int, list[np.ndarray]]] = None

    def _dense_union(self, a: int, b: int, union: Optional[list[np.ndarray]]) -> list[np.ndarray]:
        """Per dense group, the source neurons with a kept synapse into units a..b (units are
        channel blocks), grown from `union` (that of a..b-1) when given."""
        lo, hi = (b if union is not None else a) * self.block, min(self.C, (b + 1) * self.block)
        out = []
        for j, (off, kept) in enumerate(self.dense):
            r0, r1 = max(lo, off) - off, min(hi, off + kept.shape[0]) - off
            cur = union[j] if union is not None else np.zeros(kept.shape[1], dtype=bool)
            out.append(cur | kept[r0:r1].any(axis=0) if r1 > r0 else cur)
        return out

    def _dense_count(self, a: int, b: int) -> int:
        """Source neurons read by units a..b through dense groups; the greedy placement extends a
        run one unit at a time, so the union of the previous call is grown, not recomputed."""
        prev = self._last if self._last is not None and self._last[0] == a and self._last[1] == b - 1 else None
        union = self._dense_union(a, b, prev[2] if prev is not None else None)
        self._last = (a, b, union)
        return int(sum(int(u.sum()) for u in union))

    @staticmethod
    def _span(lo: int, hi: int, k: int, stride: int, pad: int, n_in: int) -> int:
        a = max(0, lo * stride - pad)
        b = min(n_in - 1, hi * stride - pad + k - 1)
        return max(0, b - a + 1)

    def count(self, a: int, b: int) -> int:
        pa, pb = a // self.nb, b // self.nb
        ya, xa, yb, xb = pa // self.W, pa % self.W, pb // self.W, pb % self.W
        total = int(self.ident_cum[b + 1] - self.ident_cum[a])
        if self.dense:              # dense dst is (C, 1, 1): units are channel blocks
            total += self._dense_count(a, b)
        for ci, kh, kw, st, pad, h_in, w_in in self.convs:
            rows = self._span(ya, yb, kh, st, pad, h_in)
            cols = self._span(xa, xb, kw, st, pad, w_in) if ya == yb else self._span(0, self.W - 1, kw, st, pad, w_in)
            total += rows * cols * ci
        return total


def _unit_costs(graph: Graph, p: Population, block: int, blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit: neurons, synapses, memory bits."""
    C, H, W = p.shape
    npos = H * W
    neurons = np.zeros((npos, blocks), dtype=np.int64)
    syn = np.zeros((npos, blocks), dtype=np.int64)
    mem = np.zeros((npos, blocks), dtype=np.int64)
    for b in range(blocks):
        neurons[:, b] = min(C, (b + 1) * block) - b * block
    for s in graph.incoming(p.name):
        src = graph.shape_of(s.src)
        off = s.dst_channel_offset
        o_total = src[0] if s.kind == "identity" else s.weight.shape[0]
        bits_dense, bits_sparse = s.weight_bits, _bits_per_synapse(s)
        sparse = s.stats.encoding == "sparse"
        kept = kept_mask(s) if s.kind != "identity" else None
        for b in range(blocks):
            lo, hi = max(off, b * block), min(off + o_total, (b + 1) * block)
            if hi <= lo:
                continue
            ol, oh = lo - off, hi - off
            if s.kind == "identity":
                n = (oh - ol) * int(int(s.weight) != 0)
                syn[:, b] += n
                mem[:, b] += n * bits_dense
            elif s.kind == "dense":
                k = int(kept[ol:oh].sum())
                syn[:, b] += k
                mem[:, b] += k * bits_sparse if sparse else (oh - ol) * kept.shape[1] * bits_dense
            else:
                per_tap = kept[ol:oh].sum(axis=(0, 1)).astype(np.int64)
                counts = conv_position_counts(per_tap, src[1:], (H, W), s.stride, s.padding).reshape(-1)
                syn[:, b] += counts
                if sparse:
                    mem[:, b] += counts * bits_sparse
                else:
                    full = np.full(per_tap.shape, (oh - ol) * kept.shape[1], dtype=np.int64)
                    dense_counts = conv_position_counts(full, src[1:], (H, W), s.stride, s.padding).reshape(-1)
                    mem[:, b] += dense_counts * bits_dense
    return neurons.reshape(-1), syn.reshape(-1), mem.reshape(-1)


def _place_population(graph: Graph, p: Population, profile: Profile, reach_fn):
    """Greedy split of one population; `reach_fn(block, blocks)` gives dst cores per position."""
    neuron_mem, neuron_fan = _neuron_costs(graph, p)
    max_mem = int(neuron_mem.max())
    C = p.shape[0]
    block = min(C, profile.neurons_per_core)
    if max_mem > 0:
        block = max(1, min(block, profile.synaptic_memory_bits_per_core // max_mem))
    reach = reach_fn()
    max_reach = int(reach.max()) if reach.size else 0
    if max_reach > 0:  # a unit's output axons (neurons x cores reached) must fit one core too
        block = max(1, min(block, profile.output_axons_per_core // max_reach))
    if p.name == graph.readout and graph.readout_parts > 1:
        block = 1               # parts read disjoint source slices: cut between any two neurons
    blocks = math.ceil(C / block)
    neurons, syn, mem = _unit_costs(graph, p, block, blocks)
    out = np.repeat(reach, blocks) * neurons
    axons = _Axons(graph, p, blocks, block)
    n_units = neurons.shape[0]
    unit_core = np.zeros(n_units, dtype=np.int64)
    cores: list[tuple[int, int, int, int, int]] = []  # neurons, synapses, memory, input axons, output axons
    N, M, A = profile.neurons_per_core, profile.synaptic_memory_bits_per_core, profile.input_axons_per_core
    O = profile.output_axons_per_core
    start, cur = 0, (0, 0, 0, 0, 0)
    for i in range(n_units):
        n, s_, m, o = cur[0] + int(neurons[i]), cur[1] + int(syn[i]), cur[2] + int(mem[i]), cur[4] + int(out[i])
        a = axons.count(start, i)
        if i > start and (n > N or m > M or a > A or o > O):
            cores.append(cur)
            start = i
            n, s_, m, o, a = int(neurons[i]), int(syn[i]), int(mem[i]), int(out[i]), axons.count(i, i)
        cur = (n, s_, m, a, o)
        unit_core[i] = len(cores)
    cores.append(cur)
    plan = PopulationPlan(name=p.name, block=block, blocks=blocks, unit_neurons=neurons, unit_core=unit_core,
                          cores=len(cores), max_neuron_memory_bits=max_mem,
                          max_neuron_fan_in=int(neuron_fan.max()),
                          max_neuron_fan_out=int(reach.max()) if reach.size else 0)
    return plan, cores


def _dense_column_reach(mask: np.ndarray, offset: int, blk: int, core: np.ndarray) -> np.ndarray:
    """Cores spanned by the rows each column of a masked dense group feeds (0 for a column that
    feeds none): a readout part's source neuron reaches only the core(s) of its part."""
    used = mask.any(axis=0)
    first = offset + np.argmax(mask, axis=0)
    last = offset + mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0)
    span = core[last // blk] - core[first // blk] + 1
    return np.where(used, span, 0).astype(np.int64)


def _reach(graph: Graph, s: SynapseGroup, plans: dict[str, PopulationPlan]) -> np.ndarray:
    """Destination cores reached by a neuron of `s.src` at each source position, shape (H_in*W_in,),
    or per channel and position (C_in, H_in*W_in) for a masked dense group (a readout part reads
    only its own channels)."""
    src = graph.shape_of(s.src)
    dst = graph.population(s.dst)
    q = plans[s.dst]
    _, H, W = dst.shape
    nb, blk = q.blocks, q.block
    o_total = src[0] if s.kind == "identity" else s.weight.shape[0]
    b_lo, b_hi = s.dst_channel_offset // blk, (s.dst_channel_offset + o_total - 1) // blk
    core = q.unit_core
    if s.kind == "dense":
        if s.mask is None:
            return np.full(src[1] * src[2], int(core[b_hi] - core[b_lo] + 1), dtype=np.int64)
        return _dense_column_reach(np.asarray(s.mask, dtype=bool), s.dst_channel_offset, blk, core).reshape(
            src[0], src[1] * src[2])
    if s.kind == "identity":
        ys, xs = np.arange(src[1]), np.arange(src[2])
        hit = ((ys % s.stride == 0)[:, None] & (xs % s.stride == 0)[None, :])
        return hit.reshape(-1).astype(np.int64)
    _, _, kh, kw = s.weight.shape

    def rng(n_in: int, n_out: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.arange(n_in)
        lo = np.maximum(0, -((-(r + s.padding - k + 1)) // s.stride))
        hi = np.minimum(n_out - 1, (r + s.padding) // s.stride)
        return lo, hi

    ylo, yhi = rng(src[1], H, kh)
    xlo, xhi = rng(src[2], W, kw)
    ok = (ylo <= yhi)[:, None] & (xlo <= xhi)[None, :]
    xl = np.clip(xlo, 0, W - 1)[None, :]
    xh = np.clip(xhi, 0, W - 1)[None, :]
    reach = np.zeros((src[1], src[2]), dtype=np.int64)
    prev_last = None
    for r in range(-(-kh // s.stride) + 1):     # target rows of the window, one interval of cores each
        row = ylo + r
        valid = (row <= yhi)[:, None] & ok
        rr = np.clip(row, 0, H - 1)[:, None]
        first = core[(rr * W + xl) * nb + b_lo]
        last = core[(rr * W + xh) * nb + b_hi]
        size = last - first + 1
        if prev_last is not None:               # intervals are increasing: drop a core shared with the row above
            size = size - np.maximum(0, prev_last - first + 1)
        reach += np.where(valid, size, 0)
        prev_last = np.where(valid, last, prev_last if prev_last is not None else -1)
    return reach.reshape(-1)


def plan_placement(graph: Graph, profile: Profile) -> PlacementPlan:
    """Place every population (pure; used by check_rules and by the place pass).

    Graphs are immutable and hash by identity, so the last plan is cached: check_rules and
    place, run on the same graph object, compute it once.
    """
    return _plan_cached(graph, profile)


@functools.lru_cache(maxsize=1)
def _plan_cached(graph: Graph, profile: Profile) -> PlacementPlan:
    if graph.stage != "integer" or any(s.stats is None for s in graph.synapses):
        raise IRError("place: run quantize and sparsify first")
    plans: dict[str, PopulationPlan] = {}
    rows: dict[str, list[tuple[int, int, int, int, int]]] = {}
    # reverse topological order: a population's destinations are placed before it, so the
    # destination cores each of its neurons reaches (its output axons) are known
    for p in reversed(graph.populations):
        def reach_fn(p: Population = p) -> np.ndarray:
            r = np.zeros((p.shape[0], p.shape[1] * p.shape[2]), dtype=np.int64)
            for s in graph.outgoing(p.name):
                r += _reach(graph, s, plans)        # per position broadcasts over the channels
            return r.max(axis=0)                    # per position: the most-connected channel

        plans[p.name], rows[p.name] = _place_population(graph, p, profile, reach_fn)
    final = [plans[p.name] for p in graph.populations]
    core_rows = [rows[p.name] for p in graph.populations]
    pop_idx = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(core_rows)])
    arr = np.asarray([c for r in core_rows for c in r], dtype=np.int64).reshape(-1, 5)
    total = int(arr.shape[0])
    placement = Placement(core_population=pop_idx, core_neurons=arr[:, 0], core_synapses=arr[:, 1],
                          core_memory_bits=arr[:, 2], core_input_axons=arr[:, 3], core_output_axons=arr[:, 4],
                          cores_per_chip=profile.cores_per_chip, chips=math.ceil(total / profile.cores_per_chip))
    return PlacementPlan(placement=placement, populations=tuple(final))


def place(graph: Graph, profile: Profile) -> Graph:
    """Attach the Placement to the graph."""
    return graph.replace(placement=plan_placement(graph, profile).placement)

