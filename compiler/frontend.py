"""The compiler's frontend: the model.pt dict -> a float-stage Graph (values in units of each
population's scale).

Weights, biases and thresholds are divided by the destination population's scale s_P but not
rounded (that is `quantize`'s job, which also checks integrality); depths are assigned
(input 0, population 1 + max source depth). Accepts torch tensors or numpy arrays, so tests
and the benchmark can build artifacts without torch. Structural problems raise ArtifactError
naming the key; graph-shape problems raise IRError.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from lsnn.compiler.ir import (
    DEFAULT_BIAS_EXP,
    DEFAULT_DU,
    V_MAX,
    BatchNorm,
    Graph,
    InputNode,
    Population,
    SynapseGroup,
    depths,
)
from lsnn.errors import MALFORMED, ArtifactError
from lsnn.io import jsonable, to_numpy

META_KEYS = ("dataset", "metrics", "backbone", "genotype", "train", "created_by", "version", "neuron")


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise ArtifactError(f"{where}: missing key '{key}'")
    return d[key]


def _dv_for(tau: float, neuron: Mapping[str, Any]) -> int:
    """dv for a LIF with retention `tau` (v *= (4096 - dv) / 4096): the artifact's dv when tau matches."""
    if "dv" in neuron and abs(float(neuron.get("tau", 0.2)) - tau) < 1e-12:
        return int(neuron["dv"])
    return int(round(4096 * (1.0 - tau)))


def _population(p: Mapping[str, Any], neuron: Mapping[str, Any], where: str) -> Population:
    name = _need(p, "name", where)
    where = f"{where.split(':')[0]}: population '{name}'"
    kind = _need(p, "kind", where)
    scale = float(_need(p, "scale", where))
    if not scale > 0:
        raise ArtifactError(f"{where}: scale must be > 0, got {scale}")
    bias = to_numpy(_need(p, "bias", where)).astype(np.float64) / scale
    if kind == "readout":
        vth: Any = V_MAX
        du, dv = DEFAULT_DU, 0
    else:
        raw = _need(p, "vth", where)
        if raw is None:
            raise ArtifactError(f"{where}: a lif population needs a 'vth'")
        vth = float(raw) / scale
        du = int(neuron.get("du", DEFAULT_DU))
        dv = _dv_for(float(p.get("tau", neuron.get("tau", 0.2))), neuron)
    return Population(name=name, kind=kind, shape=tuple(_need(p, "shape", where)), scale=scale, bias_mant=bias,
                      vth_mant=vth, du=du, dv=dv, bias_exp=DEFAULT_BIAS_EXP, depth=0)


def _batchnorm(bn: Any, where: str) -> BatchNorm | None:
    if bn is None:
        return None
    return BatchNorm(gamma=to_numpy(_need(bn, "gamma", where)), beta=to_numpy(_need(bn, "beta", where)),
                     mean=to_numpy(_need(bn, "mean", where)), var=to_numpy(_need(bn, "var", where)),
                     eps=float(bn.get("eps", 1e-5)))


def _synapse(s: Mapping[str, Any], scales: Mapping[str, float], source: str) -> SynapseGroup:
    name = _need(s, "name", f"{source}: synapse")
    where = f"{source}: synapse '{name}'"
    dst = _need(s, "dst", where)
    if dst not in scales:
        raise ArtifactError(f"{where}: dst '{dst}' is not a population")
    scale = scales[dst]
    if "scale" in s and abs(float(s["scale"]) - scale) > 1e-12 * max(1.0, scale):
        raise ArtifactError(f"{where}: scale {s['scale']} differs from dst population '{dst}' scale {scale}")
    kind = _need(s, "kind", where)
    w = to_numpy(_need(s, "weight", where)).astype(np.float64) / scale
    if kind == "identity":
        w = w.reshape(())
    mask = s.get("mask")
    mask = None if mask is None else to_numpy(mask).astype(bool)
    delta = s.get("delta")
    return SynapseGroup(name=name, kind=kind, src=_need(s, "src", where), dst=dst, weight=w, mask=mask,
                        stride=int(s.get("stride", 1)), padding=int(s.get("padding", 0)),
                        dst_channel_offset=int(s.get("dst_channel_offset", 0)),
                        bits=None if s.get("bits") is None else int(s["bits"]),
                        delta=None if delta is None else float(delta), bn=_batchnorm(s.get("bn"), where))


def read_artifact(artifact: Mapping[str, Any], source: str = "model.pt") -> Graph:
    """Build the float-stage Graph of an artifact dict (docs/ARTIFACT.md) with depths assigned."""
    if not isinstance(artifact, Mapping):
        raise ArtifactError(f"{source}: an artifact must be a dict, got {type(artifact).__name__}")
    try:
        return _read(artifact, source)
    except MALFORMED as exc:         # a value of the wrong type somewhere the schema does not check
        raise ArtifactError(f"{source}: malformed artifact ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())})") from None


def _read(artifact: Mapping[str, Any], source: str) -> Graph:
    neuron = artifact.get("neuron") or {}
    dataset = _need(artifact, "dataset", source)
    enc = _need(artifact, "input_encoding", source)
    in_shape = tuple(int(x) for x in _need(dataset, "input_shape", f"{source}: dataset"))
    kind = enc.get("kind", "graded")
    bits = int(_need(enc, "bits", f"{source}: input_encoding")) if kind == "graded" else 1
    inp = InputNode(shape=in_shape, encoding=kind, bits=bits,
                    offset=tuple(float(x) for x in enc.get("offset") or ()),
                    span=tuple(float(x) for x in enc.get("span") or ()))
    pops = [_population(p, neuron, f"{source}: populations[{i}]")
            for i, p in enumerate(_need(artifact, "populations", source))]
    scales = {p.name: p.scale for p in pops}
    syns = [_synapse(s, scales, source) for s in _need(artifact, "synapses", source)]
    readouts = [p.name for p in pops if p.kind == "readout"]
    if len(readouts) != 1:
        raise ArtifactError(f"{source}: expected exactly one readout population, found {len(readouts)}")
    meta = {k: jsonable(artifact[k]) for k in META_KEYS if k in artifact}
    meta["source"] = source
    graph = Graph(input=inp, populations=tuple(pops), synapses=tuple(syns), T=int(_need(artifact, "T", source)),
                  readout=readouts[0], stage="float", meta=meta)
    d = depths(graph)
    return graph.with_populations(replace(p, depth=d[p.name]) for p in graph.populations)
