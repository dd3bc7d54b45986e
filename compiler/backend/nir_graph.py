"""The compiled network as a NIR graph (Neuromorphic Intermediate Representation, nir >= 1.0),
for simulators and chips that read NIR (Norse, snnTorch, Rockpool, SpiNNaker2, Xylo, ...).

What is written is the integer-stage Graph in ideal time (the trained model's schedule, no
pipeline delays), in its integer units, with dt = 1 step:

- ``input``: nir.Input of the encoded image x_int (C, H, W), integers in [0, 2^bits - 1];
- every LIF population: nir.LIF with tau = 4096 / dv, r = tau, v_leak = bias_int * tau,
  v_threshold = vth_int, v_reset = 0, so that forward Euler at dt = 1 gives the chip's update
  ``v <- (1 - dv/4096) v + I + bias_int`` (spike when v > v_threshold, then v = 0);
- the readout: nir.I (r = 1, no decay), its bias as the bias of its first incoming nir.Affine,
  then (with readout parts) a nir.Linear that adds the parts per class, then nir.Output (the
  chip's v is 2^bias_exp = 64 times these units: its states carry 6 fraction bits);
- every synapse group: a node named after it. conv: nir.Conv2d whose weight is padded with zero
  output channels to the whole destination (NIR sums the edges into a node, so the channel
  slice becomes the group's nonzero rows); identity: a 1x1 nir.Conv2d (stride 1 or 2) with the
  group's one integer weight on the diagonal; dense: nir.Flatten (C-major) and nir.Affine.

Not expressible in NIR and so left out: the chip's truncation of the decay to 1/64 of a unit,
the 24-bit clip of v, the readout parts' own clip, the input's offset / span (in the Input
node's metadata) and Lava's pipeline delays. Each node's metadata keeps the chip's integers
(du, dv, bias_exp, scale, vth_mant), so the exact network can be rebuilt from the file.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from lsnn.compiler.ir import INPUT_NAME, Graph, Population, SynapseGroup
from lsnn.contract.chip import DECAY_UNITY, DEFAULT_DU
from lsnn.errors import IRError
from lsnn.io import atomic_path

OUTPUT = "output"
PARTS_SUM = "readout_parts_sum"


def _meta(**items: Any) -> dict[str, Any]:
    """Node metadata as nir.write can store it: no None, lists as arrays, empty lists left out."""
    out = {}
    for key, value in items.items():
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        out[key] = np.asarray(value) if isinstance(value, (list, tuple)) else value
    return out


def _lif(p: Population) -> Any:
    """A hidden population as nir.LIF (module docstring); IRError where NIR's LIF cannot say it."""
    import nir

    where = f"population '{p.name}'"
    if p.du != DEFAULT_DU:
        raise IRError(f"{where}: du = {p.du}: NIR export supports du = {DEFAULT_DU} (no synaptic current state)")
    if p.dv == 0:
        raise IRError(f"{where}: dv = 0 (no leak) is not a NIR LIF; only the readout may integrate")
    shape = p.shape
    tau = np.full(shape, DECAY_UNITY / p.dv)
    bias = np.broadcast_to(p.bias_mant.astype(np.float64)[:, None, None], shape)
    return nir.LIF(tau=tau, r=tau.copy(), v_leak=bias * tau, v_threshold=np.full(shape, float(p.vth_mant)),
                   v_reset=np.zeros(shape), metadata=_chip_meta(p))


def _chip_meta(p: Population) -> dict[str, Any]:
    return _meta(lsnn_kind=p.kind, du=p.du, dv=p.dv, bias_exp=p.bias_exp, scale=p.scale, vth_mant=int(p.vth_mant),
                 bias_mant=np.asarray(p.bias_mant, np.int64))


def _conv(s: SynapseGroup, src_shape: tuple[int, int, int], dst: Population) -> Any:
    """A conv or identity group as one nir.Conv2d over all of dst's channels."""
    import nir

    c_src = src_shape[0]
    if s.kind == "conv":
        w, pad = np.asarray(s.weight, np.float64), s.padding
    else:                                          # identity: one weight on the diagonal, 1x1
        w, pad = np.zeros((c_src, c_src, 1, 1)), 0
        w[np.arange(c_src), np.arange(c_src), 0, 0] = float(s.weight)
    full = np.zeros((dst.shape[0],) + w.shape[1:])
    full[s.dst_channel_offset:s.dst_channel_offset + w.shape[0]] = w
    return nir.Conv2d(input_shape=src_shape[1:], weight=full, stride=s.stride, padding=pad, dilation=1,
                      groups=1, bias=np.zeros(dst.shape[0]),
                      metadata=_meta(lsnn_kind=s.kind, bits=s.bits, weight_bits=s.weight_bits,
                                     dst_channel_offset=s.dst_channel_offset))


def _dense(s: SynapseGroup, src_shape: tuple[int, int, int], bias: np.ndarray) -> tuple[Any, Any]:
    """A dense group as nir.Flatten (C-major, whole source) and nir.Affine (with `bias`)."""
    import nir

    flat = nir.Flatten(input_type={"input": np.array(src_shape)}, start_dim=0, end_dim=-1)
    aff = nir.Affine(weight=np.asarray(s.weight, np.float64), bias=bias,
                     metadata=_meta(lsnn_kind="dense", bits=s.bits, weight_bits=s.weight_bits))
    return flat, aff


def to_nir(graph: Graph) -> Any:
    """The nir.NIRGraph of an integer-stage Graph (module docstring)."""
    import nir

    if graph.stage != "integer":
        raise IRError(f"graph: NIR export needs the integer stage (after quantize), got '{graph.stage}'")
    shapes = {INPUT_NAME: graph.input.shape, **{p.name: p.shape for p in graph.populations}}
    nodes: dict[str, Any] = {INPUT_NAME: nir.Input(
        input_type={"input": np.array(graph.input.shape)},
        metadata=_meta(encoding=graph.input.encoding, bits=graph.input.bits, offset=list(graph.input.offset),
                       span=list(graph.input.span)))}
    edges: list[tuple[str, str]] = []
    ro = graph.population(graph.readout)
    for p in graph.populations:
        nodes[p.name] = _lif(p) if p.name != graph.readout else nir.I(r=np.ones(ro.shape[0]), metadata=_chip_meta(p))
    readout_bias = np.asarray(ro.bias_mant, np.float64)
    for s in graph.synapses:
        if s.name in nodes:
            raise IRError(f"synapse group '{s.name}': its name is also a population's")
        if s.kind == "dense":
            flat, aff = _dense(s, shapes[s.src], readout_bias)
            readout_bias = np.zeros_like(readout_bias)            # the bias enters once
            nodes[f"{s.name}.flatten"], nodes[s.name] = flat, aff
            edges += [(s.src, f"{s.name}.flatten"), (f"{s.name}.flatten", s.name)]
        else:
            nodes[s.name] = _conv(s, shapes[s.src], graph.population(s.dst))
            edges.append((s.src, s.name))
        edges.append((s.name, s.dst))
    k = ro.shape[0] // graph.readout_parts
    last = graph.readout
    if graph.readout_parts > 1:
        nodes[PARTS_SUM] = nir.Linear(weight=np.tile(np.eye(k), (1, graph.readout_parts)))
        edges.append((graph.readout, PARTS_SUM))
        last = PARTS_SUM
    nodes[OUTPUT] = nir.Output(output_type={"output": np.array([k])})
    edges.append((last, OUTPUT))
    meta = {"created_by": "lsnn", "dt": 1.0, "T": graph.T, "units": "integer (docs/SEMANTICS.md)",
            "readout": graph.readout, "readout_parts": graph.readout_parts,
            "prediction": "argmax over classes of the output after T steps"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)     # nir checks every edge's types


def write_nir(graph: Graph, path: str | os.PathLike) -> None:
    """Write `to_nir(graph)` to `path` (HDF5, nir.write; atomic: no file on failure)."""
    import nir

    g = to_nir(graph)
    with atomic_path(path) as tmp:
        nir.write(tmp, g)
