"""model.net: lava-dl NetX's HDF5 layer schema plus our exact graph in a group NetX ignores.

Layout (format "lsnn.net", version NET_VERSION):

- root attrs: ``format``, ``format_version``, ``ir_version``, ``created_by``, ``netx_loadable``,
  ``content_sha256`` (`backend.verify`: a digest of everything else, checked by `read_net`).
- ``/layer/<i>``: NetX's per-layer schema (lava-dl 0.6 ``netx/hdf5.py``). Layer 0 is
  ``type='input'`` with only ``shape`` (C, H, W): NetX then takes it as the input shape and makes
  no input neuron, so the encoded image goes straight into the first synapse (graded spikes:
  pass ``input_message_bits`` to ``Network``). Then one layer per population in topological
  order: ``type`` conv | dense, ``shape`` (C, H, W), ``weight`` (OIHW / (out, in)), ``bias``
  (per channel; NetX's ``bias_mant`` with ``bias_exp = 6``), conv geometry (``inChannels``,
  ``outChannels``, ``kernelSize``, ``stride``, ``padding``, ``dilation``, ``groups``, each (H, W)),
  and ``neuron/{type='CUBA', iDecay = du + 1, vDecay = dv, vThMant, refDelay, gradedSpike}``. A
  ``type='flatten'`` layer precedes a dense layer (NetX flattens C-major, as our dense weights
  are). An identity group is a grouped 1x1 conv (``groups = C``).
  NetX reads only chains. A population that is not a plain chain step (several incoming
  groups, a source other than the previous layer, a channel slice, a delay) is written with
  ``type='concat'`` and no weight: NetX refuses that type loudly (NotImplementedError) instead of
  wiring the network wrongly. Its exact wiring is in ``/lsnn``.
- ``/lsnn``: `Graph.to_dict()` written generically (dicts -> groups with scalars in a JSON
  attribute ``__fields__``, arrays -> datasets, lists of nodes -> groups "0".."n-1"): the
  explicit edge list (``/lsnn/synapses/<k>`` with src, dst, per-edge delay, bit format, mask,
  sparse stats), populations, input encoding, T, latency, readout, placement and meta (with
  ``meta.profile``, the hardware profile compiled for, against which `read_net` re-checks the rules).
  `read_net` rebuilds the Graph from it exactly.

Writes are atomic (`lsnn.io.atomic_path`): a failed write leaves no file behind.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lsnn import __version__
from lsnn.compiler.backend.verify import DIGEST_ATTR, content_digest, recheck_rules
from lsnn.compiler.ir import INPUT_NAME, IR_VERSION, Graph, Population
from lsnn.errors import ArtifactError
from lsnn.io import atomic_path, jsonable

NET_FORMAT = "lsnn.net"
NET_VERSION = 1
_TYPE = "__type__"
_FIELDS = "__fields__"
_BOOL_SHAPE = "__bool_shape__"
_COMPRESS_BYTES = 1 << 20        # datasets larger than this are written gzip-compressed


# ----------------------------------------------------------------------------------------------
# NetX layer plan


@dataclass(frozen=True)
class NetxLayer:
    """One entry of /layer: its NetX type and the population / synapse group it holds."""

    type: str
    population: Optional[str] = None
    synapse: Optional[str] = None


def netx_plan(graph: Graph) -> list[NetxLayer]:
    """The /layer list for `graph`: input, then per population its NetX layer (see module doc)."""
    plan = [NetxLayer("input")]
    prev = INPUT_NAME
    for p in graph.populations:
        groups = graph.incoming(p.name)
        g = groups[0] if len(groups) == 1 else None
        chain = (g is not None and g.src == prev and g.dst_channel_offset == 0 and g.delay == 0)
        if chain and g.kind == "dense":
            plan.append(NetxLayer("flatten"))
            plan.append(NetxLayer("dense", p.name, g.name))
        elif chain:
            plan.append(NetxLayer("conv", p.name, g.name))  # conv or identity (grouped 1x1 conv)
        else:
            plan.append(NetxLayer("concat", p.name, None))
        prev = p.name
    return plan


def is_netx_chain(graph: Graph) -> bool:
    """True if an unmodified NetX `Network` can load the file written for `graph`."""
    return all(layer.type != "concat" for layer in netx_plan(graph))


def _dataset(group: Any, key: str, data: np.ndarray) -> Any:
    """A dataset, gzip-compressed when large (a readout split into parts is mostly zeros);
    h5py and NetX read compressed datasets transparently."""
    big = data.nbytes > _COMPRESS_BYTES
    return group.create_dataset(key, data=data, compression="gzip" if big else None)


def _smallest_int(arr: np.ndarray) -> np.ndarray:
    """Store integer arrays in the narrowest signed dtype (NetX reads them with astype(int))."""
    if arr.dtype.kind != "i" or arr.size == 0:
        return arr
    lo, hi = int(arr.min()), int(arr.max())
    for dt in (np.int8, np.int16, np.int32):
        if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max:
            return arr.astype(dt)
    return arr


def _write_str(group: Any, key: str, value: str) -> None:
    group.create_dataset(key, data=np.bytes_(value))


def _write_neuron(group: Any, p: Population) -> None:
    n = group.create_group("neuron")
    _write_str(n, "type", "CUBA")
    n.create_dataset("iDecay", data=np.int64(p.du + 1))
    n.create_dataset("vDecay", data=np.int64(p.dv))
    n.create_dataset("vThMant", data=np.int64(p.vth_mant))
    n.create_dataset("refDelay", data=np.int64(1))
    n.create_dataset("gradedSpike", data=np.bool_(False))


def _write_netx_layers(f: Any, graph: Graph) -> None:
    root = f.create_group("layer")
    for i, layer in enumerate(netx_plan(graph)):
        g = root.create_group(str(i))
        _write_str(g, "type", layer.type)
        if layer.type == "input":
            g.create_dataset("shape", data=np.asarray(graph.input.shape, dtype=np.int64))
            continue
        if layer.type == "flatten":
            continue
        p = graph.population(layer.population)
        g.attrs["population"] = p.name
        g.create_dataset("shape", data=np.asarray(p.shape, dtype=np.int64))
        if p.is_integer:
            g.create_dataset("bias", data=_smallest_int(p.bias_mant))
            _write_neuron(g, p)
        if layer.type == "concat" or layer.synapse is None:
            continue
        s = graph.synapse(layer.synapse)
        g.attrs["synapse"] = s.name
        if not s.is_integer:
            continue
        if s.kind == "dense":
            _dataset(g, "weight", _smallest_int(s.weight))
            continue
        if s.kind == "conv":
            weight = s.weight
            in_ch, groups = weight.shape[1], 1
        else:  # identity as a grouped 1x1 conv
            c = graph.shape_of(s.src)[0]
            weight = np.full((c, 1, 1, 1), int(s.weight), dtype=np.int32)
            in_ch, groups = c, c
        _dataset(g, "weight", _smallest_int(weight))
        g.create_dataset("inChannels", data=np.int64(in_ch))
        g.create_dataset("outChannels", data=np.int64(weight.shape[0]))
        g.create_dataset("kernelSize", data=np.asarray(weight.shape[2:], dtype=np.int64))
        g.create_dataset("stride", data=np.asarray([s.stride, s.stride], dtype=np.int64))
        g.create_dataset("padding", data=np.asarray([s.padding, s.padding], dtype=np.int64))
        g.create_dataset("dilation", data=np.asarray([1, 1], dtype=np.int64))
        g.create_dataset("groups", data=np.int64(groups))


# ----------------------------------------------------------------------------------------------
# generic dict <-> HDF5 (exact: arrays as datasets, scalars as JSON, which round-trips float64)


def _is_node_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, dict) for v in value)


def _write_array(group: Any, key: str, arr: np.ndarray) -> None:
    if arr.dtype == np.bool_:
        ds = _dataset(group, key, np.packbits(arr.reshape(-1)))
        ds.attrs[_BOOL_SHAPE] = np.asarray(arr.shape, dtype=np.int64)
    else:
        _dataset(group, key, _smallest_int(arr) if arr.dtype == np.int32 else arr)


def _write_tree(group: Any, value: dict[str, Any]) -> None:
    group.attrs[_TYPE] = "dict"
    scalars: dict[str, Any] = {}
    for key, v in value.items():
        if isinstance(v, np.ndarray):
            _write_array(group, key, v)
        elif isinstance(v, dict) and any(isinstance(x, (np.ndarray, dict, list)) for x in v.values()) \
                and key != "meta":
            _write_tree(group.create_group(key), v)
        elif _is_node_list(v):
            sub = group.create_group(key)
            sub.attrs[_TYPE] = "list"
            sub.attrs["length"] = len(v)
            for i, item in enumerate(v):
                _write_tree(sub.create_group(str(i)), item)
        else:
            scalars[key] = v
    group.attrs[_FIELDS] = json.dumps(jsonable(scalars))


def _read_array(ds: Any) -> np.ndarray:
    data = np.asarray(ds[()])
    if _BOOL_SHAPE in ds.attrs:
        shape = tuple(int(x) for x in ds.attrs[_BOOL_SHAPE])
        n = int(np.prod(shape)) if shape else 1
        return np.unpackbits(data)[:n].astype(bool).reshape(shape)
    if data.dtype.kind == "i" and data.dtype.itemsize < 4:
        return data.astype(np.int32)  # narrowed on write (_smallest_int); the IR holds int32
    return data


def _read_tree(group: Any) -> Any:
    kind = group.attrs.get(_TYPE)
    if kind == "list":
        return [_read_tree(group[str(i)]) for i in range(int(group.attrs["length"]))]
    out: dict[str, Any] = json.loads(group.attrs[_FIELDS])
    for key, item in group.items():
        if hasattr(item, "attrs") and _TYPE in item.attrs:
            out[key] = _read_tree(item)
        else:
            out[key] = _read_array(item)
    return out


# ----------------------------------------------------------------------------------------------
# public API


def write_net(graph: Graph, path: str | os.PathLike) -> Path:
    """Write `graph` to `path` (NetX layers + /lsnn), atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write_net_file(graph, tmp)
    return path


def write_net_file(graph: Graph, path: str | os.PathLike) -> None:
    """Write `graph` into the file `path` as it is (the caller makes the write atomic)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["format"] = NET_FORMAT
        f.attrs["format_version"] = NET_VERSION
        f.attrs["ir_version"] = IR_VERSION
        f.attrs["created_by"] = f"lsnn {__version__}"
        f.attrs["netx_loadable"] = is_netx_chain(graph)
        _write_netx_layers(f, graph)
        _write_tree(f.create_group("lsnn"), graph.to_dict())
        f.attrs[DIGEST_ATTR] = content_digest(f)


def _read_verified(f: Any, path: Path) -> Any:
    """The /lsnn tree of open file `f`, after checking format, version and content digest."""
    if f.attrs.get("format") != NET_FORMAT or "lsnn" not in f:
        raise ArtifactError(f"{path}: not an lsnn compiled net (expected format '{NET_FORMAT}')")
    version = int(f.attrs.get("format_version", -1))
    if version != NET_VERSION:
        raise ArtifactError(f"{path}: compiled-net version {version} is not supported "
                            f"(this lsnn reads version {NET_VERSION})")
    stored = f.attrs.get(DIGEST_ATTR)
    if stored is None:
        raise ArtifactError(f"{path}: no content digest ('{DIGEST_ATTR}'): compile it again with this lsnn")
    if content_digest(f) != (stored.decode() if isinstance(stored, bytes) else str(stored)):
        raise ArtifactError(f"{path}: its content differs from what was compiled (content digest mismatch): "
                            f"a weight, delay, threshold or attribute was altered; compile it again")
    return _read_tree(f["lsnn"])


def read_net(path: str | os.PathLike, verify_rules: bool = True) -> Graph:
    """Read a model.net written by `write_net` back into the exact Graph: ArtifactError if foreign
    or altered since compiling (content digest), DesignRuleError if it breaks the rules of the
    profile it was compiled for (`backend.verify`)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such compiled net")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ArtifactError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())})") from None
    try:
        with f:
            d = _read_verified(f, path)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{path}: a damaged compiled net ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]})") from None
    graph = Graph.from_dict(d)
    if verify_rules:
        recheck_rules(graph, str(path))
    return graph
