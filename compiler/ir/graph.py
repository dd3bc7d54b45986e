"""The compiler's graph IR: frozen dataclasses for the input, populations and synapse groups.

Units and dynamics are those of docs/SEMANTICS.md: every number attached to a population or an
incoming synapse group is in *integer units of the population's scale* `s_P` (one unit of
membrane potential is `s_P` trained units), so `W_float = scale * weight`, `b_float = scale *
bias_mant`, `Vth = scale * vth_mant`. A graph has a `stage`:

- ``"float"`` (after `read_artifact` / `fold`): those values are float64 and not yet rounded,
- ``"integer"`` (after `quantize`): they are integers (weights int32, biases int32, vth int).

Every node validates itself in `__post_init__` and raises `IRError` (a `ValueError`); arrays are
stored as read-only copies so no pass can mutate a graph it was given (passes build new nodes
with `dataclasses.replace`). `to_dict` keeps numpy arrays (as NIR does) and `from_dict` accepts
arrays or nested lists; `lsnn.compiler.backend.netx` writes that dict to HDF5.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from lsnn.compiler.ir.checks import (
    DEFAULT_BIAS_EXP,
    DEFAULT_DU,
    DEFAULT_DV,
    INPUT_ENCODINGS,
    INPUT_NAME,
    IR_VERSION,
    POPULATION_KINDS,
    SIGN_MODES,
    STAGES,
    STATE_BITS,
    SYNAPSE_ENCODINGS,
    SYNAPSE_KINDS,
    V_MAX,
    _choice,
    _fail,
    _int,
    conv_out_hw,
    frozen_array,
    subsample_hw,
)
from lsnn.compiler.ir.nodes import BatchNorm, InputNode, Placement, Population, SparseStats, SynapseGroup
from lsnn.errors import IRError

# the constants and validators live in ir.checks, the nodes in ir.nodes; this module adds the
# Graph, and `lsnn.compiler.ir` re-exports all of it: `from lsnn.compiler.ir import ...`
__all__ = ["IR_VERSION", "INPUT_NAME", "POPULATION_KINDS", "SYNAPSE_KINDS", "SIGN_MODES", "INPUT_ENCODINGS",
           "SYNAPSE_ENCODINGS", "STAGES", "STATE_BITS", "V_MAX", "DEFAULT_DU", "DEFAULT_DV", "DEFAULT_BIAS_EXP",
           "IRError", "conv_out_hw", "subsample_hw", "frozen_array", "InputNode", "Population", "BatchNorm",
           "SparseStats", "SynapseGroup", "Placement", "Graph", "depths"]


@dataclass(frozen=True, eq=False)
class Graph:
    """The whole network: input, populations in topological order, synapse groups, timing.

    `T`: timesteps per sample; `latency`: pipeline depth of the readout (set by delay_balance,
    0 = unset); `readout`: the name of the output population; `readout_parts` G: the readout
    holds G partial copies of the K classes (neuron g * K + k), summed by the host before the
    argmax (set by split_readout); `meta`: JSON-able extras (artifact metrics, dataset, provenance).
    """

    input: InputNode
    populations: tuple[Population, ...]
    synapses: tuple[SynapseGroup, ...]
    T: int
    readout: str
    latency: int = 0
    stage: str = "float"
    placement: Optional[Placement] = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    version: int = IR_VERSION
    readout_parts: int = 1

    def __post_init__(self) -> None:
        """Validate the graph on construction: every failure is one GraphError line."""
        self._check_fields()
        index = self._population_index()
        self._check_synapses(index)
        self._check_placement()

    def _check_fields(self) -> None:
        """Types and ranges of the graph's own fields; node tuples and JSON-clean meta stored."""
        where = "graph"
        if self.version != IR_VERSION:
            _fail(where, f"IR version {self.version!r} is not supported (this lsnn reads {IR_VERSION})")
        if not isinstance(self.input, InputNode):
            _fail(where, "'input' must be an InputNode")
        pops = tuple(self.populations)
        syns = tuple(self.synapses)
        for p in pops:
            if not isinstance(p, Population):
                _fail(where, "'populations' must hold Population nodes")
        for s in syns:
            if not isinstance(s, SynapseGroup):
                _fail(where, "'synapses' must hold SynapseGroup nodes")
        object.__setattr__(self, "populations", pops)
        object.__setattr__(self, "synapses", syns)
        object.__setattr__(self, "T", _int(self.T, where, "T", lo=1))
        object.__setattr__(self, "latency", _int(self.latency, where, "latency", lo=0))
        _choice(self.stage, where, "stage", STAGES)
        if not isinstance(self.meta, Mapping):
            _fail(where, "'meta' must be a dict")
        try:
            meta = json.loads(json.dumps(dict(self.meta)))
        except (TypeError, ValueError) as exc:
            _fail(where, f"'meta' must be JSON-serialisable ({exc})")
        object.__setattr__(self, "meta", meta)

    def _population_index(self) -> dict[str, int]:
        """Position of each population by name (unique), with the readout and its parts checked."""
        where = "graph"
        pops = self.populations
        index: dict[str, int] = {}
        for i, p in enumerate(pops):
            if p.name in index:
                _fail(where, f"duplicate population name '{p.name}'")
            index[p.name] = i
        if not pops:
            _fail(where, "a graph needs at least one population")
        if self.readout not in index or pops[index[self.readout]].kind != "readout":
            _fail(where, f"readout '{self.readout}' is not a population of kind 'readout'")
        object.__setattr__(self, "readout_parts", _int(self.readout_parts, where, "readout_parts", lo=1))
        if pops[index[self.readout]].shape[0] % self.readout_parts:
            _fail(where, f"readout '{self.readout}' has {pops[index[self.readout]].shape[0]} neurons, "
                         f"not a multiple of readout_parts {self.readout_parts}")
        return index

    def _check_synapses(self, index: dict[str, int]) -> None:
        """Every synapse group: unique, its ends in topological order, its shape and channel
        slice inside its destination, integers where the stage needs them; every channel of
        every population fed."""
        pops = self.populations
        names = set()
        covered = {p.name: np.zeros(p.shape[0], dtype=bool) for p in pops}
        for s in self.synapses:
            w = f"synapse group '{s.name}'"
            if s.name in names:
                _fail("graph", f"duplicate synapse group name '{s.name}'")
            names.add(s.name)
            if s.dst not in index:
                _fail(w, f"dst '{s.dst}' is not a population")
            if s.src != INPUT_NAME:
                if s.src not in index:
                    _fail(w, f"src '{s.src}' is not a population")
                if index[s.src] >= index[s.dst]:
                    _fail(w, f"src '{s.src}' does not come before dst '{s.dst}': populations must be "
                             "in topological order (no recurrence)")
            out_ch = self._check_edge_shape(s, w)
            dst = pops[index[s.dst]]
            if s.dst_channel_offset + out_ch > dst.shape[0]:
                _fail(w, f"output channels [{s.dst_channel_offset}, {s.dst_channel_offset + out_ch}) "
                         f"exceed dst '{s.dst}' channels {dst.shape[0]}")
            covered[s.dst][s.dst_channel_offset:s.dst_channel_offset + out_ch] = True
            if self.stage == "integer":
                self._check_integer_group(s, w)
        for p in pops:
            if not covered[p.name].all():
                _fail("graph", f"population '{p.name}' has channels with no incoming synapse group")
            if self.stage == "integer" and not p.is_integer:
                _fail("graph", f"population '{p.name}': bias_mant and vth_mant must be integers in an "
                               "integer-stage graph")

    @staticmethod
    def _check_integer_group(s: SynapseGroup, where: str) -> None:
        """A group of an integer-stage graph: integer weights, chosen bits, no batchnorm left."""
        if not s.is_integer:
            _fail(where, "weights must be integers in an integer-stage graph")
        if s.weight_bits < 1:
            _fail(where, "weight_bits must be chosen (>= 1) in an integer-stage graph")
        if s.bn is not None:
            _fail(where, "an unfolded batchnorm is left in an integer-stage graph")

    def _check_placement(self) -> None:
        if self.placement is not None:
            if not isinstance(self.placement, Placement):
                _fail("graph", "'placement' must be a Placement or None")
            cp = self.placement.core_population
            if cp.size and (cp.min() < 0 or cp.max() >= len(self.populations)):
                _fail("graph", "placement refers to a population index out of range")

    # -- structure helpers ------------------------------------------------------------------

    def _check_edge_shape(self, s: SynapseGroup, where: str) -> int:
        """Check weight/stride/padding against src and dst shapes; return the output channels."""
        src = self.shape_of(s.src)
        dst = self.shape_of(s.dst)
        if s.kind == "conv":
            o, ci, kh, kw = s.weight.shape
            if ci != src[0]:
                _fail(where, f"conv weight has {ci} input channels, src '{s.src}' has {src[0]}")
            hw = conv_out_hw(src[1], src[2], kh, kw, s.stride, s.padding)
            if hw != dst[1:]:
                _fail(where, f"conv output {hw} != dst '{s.dst}' spatial size {dst[1:]}")
            return o
        if s.kind == "identity":
            hw = subsample_hw(src[1], src[2], s.stride)
            if hw != dst[1:]:
                _fail(where, f"identity output {hw} != dst '{s.dst}' spatial size {dst[1:]}")
            return src[0]
        o, n_in = s.weight.shape
        if n_in != src[0] * src[1] * src[2]:
            _fail(where, f"dense weight has {n_in} inputs, src '{s.src}' has {src[0] * src[1] * src[2]} neurons")
        if dst[1:] != (1, 1):
            _fail(where, f"a dense group's dst must have shape (C, 1, 1), got {dst}")
        return o

    def shape_of(self, name: str) -> tuple[int, int, int]:
        """Shape (C, H, W) of a population or of the input."""
        if name == INPUT_NAME:
            return self.input.shape
        return self.population(name).shape

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def population_index(self, name: str) -> int:
        for i, p in enumerate(self.populations):
            if p.name == name:
                return i
        raise KeyError(name)

    def synapse(self, name: str) -> SynapseGroup:
        for s in self.synapses:
            if s.name == name:
                return s
        raise KeyError(name)

    def incoming(self, name: str) -> list[SynapseGroup]:
        """Synapse groups into population `name`, in graph order."""
        return [s for s in self.synapses if s.dst == name]

    def outgoing(self, name: str) -> list[SynapseGroup]:
        """Synapse groups out of population (or input) `name`, in graph order."""
        return [s for s in self.synapses if s.src == name]

    def replace(self, **changes: Any) -> "Graph":
        """A new graph with some fields changed (validated again)."""
        return replace(self, **changes)

    def with_populations(self, pops: Iterable[Population]) -> "Graph":
        return replace(self, populations=tuple(pops))

    def with_synapses(self, syns: Iterable[SynapseGroup]) -> "Graph":
        return replace(self, synapses=tuple(syns))

    @property
    def num_classes(self) -> int:
        """K: readout neurons / readout_parts."""
        return self.population(self.readout).shape[0] // self.readout_parts

    def unsplit(self, s: SynapseGroup) -> SynapseGroup:
        """A dense group into a readout split into G parts (split_readout), seen as the unsplit
        readout's group: (K, N), the parts' rows added (each column feeds one part), so counts
        and pruning rates are not diluted by the parts' structural zeros. Other groups as they are."""
        if s.dst != self.readout or self.readout_parts == 1 or s.kind != "dense":
            return s
        g = self.readout_parts
        w = np.asarray(s.weight)
        weight = w.reshape(g, -1, w.shape[1]).sum(axis=0).astype(w.dtype)
        mask = None if s.mask is None else np.asarray(s.mask, dtype=bool).reshape(g, -1, w.shape[1]).any(axis=0)
        return replace(s, weight=weight, mask=mask, stats=None)

    def class_scores(self, v: np.ndarray) -> np.ndarray:
        """Per-class scores [N, K] (int64) from readout potentials v [N, G*K]: the host's sum of
        the G parts (neuron g * K + k is part g of class k)."""
        v = np.asarray(v).astype(np.int64)
        return v.reshape(v.shape[0], self.readout_parts, -1).sum(axis=1)

    def predictions(self, v: np.ndarray) -> np.ndarray:
        """argmax of `class_scores` (first index on ties), int64 [N]."""
        if len(v) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.argmax(self.class_scores(v), axis=1).astype(np.int64)

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "T": self.T, "latency": self.latency, "readout": self.readout,
                "stage": self.stage, "input": self.input.to_dict(),
                "populations": [p.to_dict() for p in self.populations],
                "synapses": [s.to_dict() for s in self.synapses],
                "placement": None if self.placement is None else self.placement.to_dict(),
                "meta": dict(self.meta), "readout_parts": self.readout_parts}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Graph":
        try:
            version = d["version"]
            if version != IR_VERSION:
                raise IRError(f"graph: IR version {version!r} is not supported (this lsnn reads {IR_VERSION})")
            return cls(input=InputNode.from_dict(d["input"]),
                       populations=tuple(Population.from_dict(p) for p in d["populations"]),
                       synapses=tuple(SynapseGroup.from_dict(s) for s in d["synapses"]),
                       T=d["T"], readout=d["readout"], latency=d["latency"], stage=d["stage"],
                       placement=None if d.get("placement") is None else Placement.from_dict(d["placement"]),
                       meta=d.get("meta") or {}, version=version, readout_parts=d.get("readout_parts", 1))
        except KeyError as exc:
            raise IRError(f"graph: missing key {exc}") from None


def depths(graph: Graph) -> dict[str, int]:
    """Pipeline depth of every population: input 0, population 1 + max depth of its sources."""
    out: dict[str, int] = {INPUT_NAME: 0}
    for p in graph.populations:
        srcs = [s.src for s in graph.synapses if s.dst == p.name]
        out[p.name] = 1 + max(out[s] for s in srcs)
    return out
