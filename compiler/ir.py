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
arrays or nested lists; `lsnn.compiler.hdf5_io` writes that dict to HDF5.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from lsnn.compiler.errors import IRError

IR_VERSION = 1
INPUT_NAME = "input"
POPULATION_KINDS = ("lif", "readout")
SYNAPSE_KINDS = ("conv", "dense", "identity")
SIGN_MODES = ("mixed", "excitatory", "inhibitory")
INPUT_ENCODINGS = ("graded", "binary")
SYNAPSE_ENCODINGS = ("dense", "sparse")
STAGES = ("float", "integer")
STATE_BITS = 24                     # u and v are 24-bit signed in Lava's bit-accurate LIF
V_MAX = 2 ** (STATE_BITS - 1) - 1   # clip bound of v; a readout's threshold ("never fires")
DEFAULT_DU = 4095                   # current passes straight through (docs/SEMANTICS.md 3)
DEFAULT_DV = 3277                   # round(4096 * (1 - 0.2))
DEFAULT_BIAS_EXP = 6


# ----------------------------------------------------------------------------------------------
# small validators


def _fail(where: str, msg: str) -> None:
    raise IRError(f"{where}: {msg}")


def _int(value: Any, where: str, key: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        _fail(where, f"'{key}' must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        _fail(where, f"'{key}' must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        _fail(where, f"'{key}' must be <= {hi}, got {value}")
    return value


def _float(value: Any, where: str, key: str, positive: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        _fail(where, f"'{key}' must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        _fail(where, f"'{key}' must be finite, got {value}")
    if positive and not value > 0:
        _fail(where, f"'{key}' must be > 0, got {value}")
    return value


def _choice(value: Any, where: str, key: str, options: Sequence[str]) -> str:
    if value not in options:
        _fail(where, f"'{key}' must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def _shape3(value: Any, where: str, key: str = "shape") -> tuple[int, int, int]:
    try:
        shape = tuple(value)
    except TypeError:
        _fail(where, f"'{key}' must be (C, H, W), got {value!r}")
    if len(shape) != 3:
        _fail(where, f"'{key}' must have 3 entries (C, H, W), got {shape}")
    return tuple(_int(s, where, key, lo=1) for s in shape)  # type: ignore[return-value]


def frozen_array(value: Any, where: str, key: str, dtype: Any = None) -> np.ndarray:
    """A read-only ndarray of `value` (no copy if it already is one of the right dtype)."""
    if isinstance(value, np.ndarray) and not value.flags.writeable and (dtype is None or value.dtype == dtype):
        return value
    try:
        arr = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        _fail(where, f"'{key}' is not a numeric array ({exc})")
    if arr.dtype == object:
        _fail(where, f"'{key}' is not a numeric array")
    arr.setflags(write=False)
    return arr


def _numeric_array(value: Any, where: str, key: str) -> np.ndarray:
    """Integer arrays stay int32, anything else becomes float64 (and must be finite)."""
    arr = np.asarray(value)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            _fail(where, f"'{key}' has integers outside int32")
        return frozen_array(arr, where, key, np.int32)
    if arr.dtype.kind not in "fb":
        _fail(where, f"'{key}' must be numeric, got dtype {arr.dtype}")
    out = frozen_array(arr, where, key, np.float64)
    if not np.all(np.isfinite(out)):
        _fail(where, f"'{key}' has non-finite values")
    return out


def conv_out_hw(h: int, w: int, k_h: int, k_w: int, stride: int, padding: int) -> tuple[int, int]:
    """Output spatial size of a 2-D convolution (torch's formula, dilation 1)."""
    return (h + 2 * padding - k_h) // stride + 1, (w + 2 * padding - k_w) // stride + 1


def subsample_hw(h: int, w: int, stride: int) -> tuple[int, int]:
    """Output spatial size of a stride-s 1x1 identity (= conv 1x1, padding 0)."""
    return (h - 1) // stride + 1, (w - 1) // stride + 1


# ----------------------------------------------------------------------------------------------
# nodes


@dataclass(frozen=True)
class InputNode:
    """The encoded input: `x_int = round(clip((x - offset) / span, 0, 1) * (2^bits - 1))` per channel.

    `encoding="graded"` sends `bits`-bit integer payloads (Loihi 2 graded spikes);
    `encoding="binary"` sends unit spikes (`bits` must be 1).
    """

    shape: tuple[int, int, int]
    encoding: str = "graded"
    bits: int = 8
    offset: tuple[float, ...] = ()
    span: tuple[float, ...] = ()

    name = INPUT_NAME  # class constant, not a field

    def __post_init__(self) -> None:
        where = "input"
        object.__setattr__(self, "shape", _shape3(self.shape, where))
        _choice(self.encoding, where, "encoding", INPUT_ENCODINGS)
        bits = _int(self.bits, where, "bits", lo=1, hi=STATE_BITS)
        if self.encoding == "binary" and bits != 1:
            _fail(where, f"binary input must have bits = 1, got {bits}")
        object.__setattr__(self, "bits", bits)
        c = self.shape[0]
        offset = tuple(_float(x, where, "offset") for x in (self.offset or (0.0,) * c))
        span = tuple(_float(x, where, "span", positive=True) for x in (self.span or (1.0,) * c))
        if len(offset) != c or len(span) != c:
            _fail(where, f"offset and span need {c} entries (one per channel), got {len(offset)}, {len(span)}")
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "span", span)

    @property
    def needs_graded(self) -> bool:
        """True if the payload has more than one bit (a binary-only target cannot carry it)."""
        return self.encoding == "graded" and self.bits > 1

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "encoding": self.encoding, "bits": self.bits,
                "offset": list(self.offset), "span": list(self.span)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InputNode":
        return cls(shape=tuple(d["shape"]), encoding=d["encoding"], bits=d["bits"],
                   offset=tuple(d["offset"]), span=tuple(d["span"]))


@dataclass(frozen=True, eq=False)
class Population:
    """A group of neurons of one shape (C, H, W) with scalar threshold and decays, bias per channel.

    Integer fixed point of Lava's `PyLifModelBitAcc` (docs/SEMANTICS.md 3): `vth_mant` (spike iff
    v > vth_mant << 6), `du`, `dv` in 1/4096, per-channel `bias_mant` added as `bias_mant <<
    bias_exp` per step. `scale` is s_P. `depth` is the pipeline depth (input 0; 0 here = unset).
    """

    name: str
    kind: str
    shape: tuple[int, int, int]
    scale: float
    bias_mant: np.ndarray
    vth_mant: Any
    du: int = DEFAULT_DU
    dv: int = DEFAULT_DV
    bias_exp: int = DEFAULT_BIAS_EXP
    depth: int = 0

    def __post_init__(self) -> None:
        where = f"population '{self.name}'"
        if not isinstance(self.name, str) or not self.name or self.name == INPUT_NAME or "/" in self.name:
            _fail(where, "name must be a non-empty string without '/' and not 'input'")
        _choice(self.kind, where, "kind", POPULATION_KINDS)
        object.__setattr__(self, "shape", _shape3(self.shape, where))
        object.__setattr__(self, "scale", _float(self.scale, where, "scale", positive=True))
        bias = _numeric_array(self.bias_mant, where, "bias_mant")
        if bias.shape != (self.shape[0],):
            _fail(where, f"'bias_mant' must have shape ({self.shape[0]},), got {bias.shape}")
        object.__setattr__(self, "bias_mant", bias)
        if isinstance(self.vth_mant, (int, np.integer)) and not isinstance(self.vth_mant, (bool, np.bool_)):
            object.__setattr__(self, "vth_mant", int(self.vth_mant))
        else:
            object.__setattr__(self, "vth_mant", _float(self.vth_mant, where, "vth_mant"))
        object.__setattr__(self, "du", _int(self.du, where, "du", 0, 4095))
        object.__setattr__(self, "dv", _int(self.dv, where, "dv", 0, 4095))
        object.__setattr__(self, "bias_exp", _int(self.bias_exp, where, "bias_exp", 0, STATE_BITS))
        object.__setattr__(self, "depth", _int(self.depth, where, "depth", lo=0))

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    @property
    def is_integer(self) -> bool:
        return self.bias_mant.dtype.kind == "i" and isinstance(self.vth_mant, int)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "scale": self.scale,
                "bias_mant": self.bias_mant, "vth_mant": self.vth_mant, "du": self.du, "dv": self.dv,
                "bias_exp": self.bias_exp, "depth": self.depth}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Population":
        return cls(name=d["name"], kind=d["kind"], shape=tuple(d["shape"]), scale=d["scale"],
                   bias_mant=np.asarray(d["bias_mant"]), vth_mant=d["vth_mant"], du=d["du"], dv=d["dv"],
                   bias_exp=d["bias_exp"], depth=d["depth"])


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """A per-output-channel BatchNorm still to be folded into its synapse group (third-party input)."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def __post_init__(self) -> None:
        where = "batchnorm"
        arrays = {}
        for key in ("gamma", "beta", "mean", "var"):
            arr = frozen_array(getattr(self, key), where, key, np.float64)
            if arr.ndim != 1:
                _fail(where, f"'{key}' must be 1-D (one value per output channel), got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                _fail(where, f"'{key}' has non-finite values")
            arrays[key] = arr
        n = {a.shape[0] for a in arrays.values()}
        if len(n) != 1:
            _fail(where, "gamma, beta, mean and var must have the same length")
        if np.any(arrays["var"] < 0):
            _fail(where, "'var' must be >= 0")
        for key, arr in arrays.items():
            object.__setattr__(self, key, arr)
        object.__setattr__(self, "eps", _float(self.eps, where, "eps", positive=True))

    def to_dict(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "beta": self.beta, "mean": self.mean, "var": self.var, "eps": self.eps}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BatchNorm":
        return cls(gamma=d["gamma"], beta=d["beta"], mean=d["mean"], var=d["var"], eps=d["eps"])


@dataclass(frozen=True)
class SparseStats:
    """How a synapse group is stored (set by the `sparsify` pass).

    `nnz`: kept entries of the stored kernel; `synapses`: expanded (pre, post) pairs with a kept
    weight (a conv kernel is replicated at every output position); `dense_synapses`: the same
    with no pruning. `fan_in_max` / `fan_out_max`: most synapses into one destination neuron / out
    of one source neuron. Memory per encoding, in bits: dense = dense_synapses * weight_bits,
    sparse = synapses * (weight_bits + index_bits); `encoding` is the smaller one.
    """

    encoding: str
    nnz: int
    synapses: int
    dense_synapses: int
    fan_in_max: int
    fan_out_max: int
    index_bits: int
    dense_bits: int
    sparse_bits: int

    def __post_init__(self) -> None:
        where = "sparse stats"
        _choice(self.encoding, where, "encoding", SYNAPSE_ENCODINGS)
        for f in fields(self):
            if f.name != "encoding":
                object.__setattr__(self, f.name, _int(getattr(self, f.name), where, f.name, lo=0))
        if self.synapses > self.dense_synapses:
            _fail(where, f"synapses ({self.synapses}) > dense_synapses ({self.dense_synapses})")

    @property
    def memory_bits(self) -> int:
        return self.dense_bits if self.encoding == "dense" else self.sparse_bits

    @property
    def sparsity(self) -> float:
        return 1.0 - self.synapses / self.dense_synapses if self.dense_synapses else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SparseStats":
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True, eq=False)
class SynapseGroup:
    """A connection from one source (a population or the input) into a channel slice of `dst`.

    `weight`: conv OIHW (O = output channels of the group), dense (out, C*H*W of src, C-major),
    identity a 0-d array (one weight for every channel). `mask` (conv/dense, same shape, True =
    kept) or None. The group's output lands in dst channels [dst_channel_offset, +O).
    `bits`: searched bits (None for identity); `weight_bits`/`weight_exp`/`sign_mode`: the
    hardware format chosen by `quantize` (weight_bits 0 = not chosen yet): the value stored in a
    synapse is `weight >> weight_exp` and the chip applies `<< weight_exp`. `delay`: extra steps
    added on this edge by `delay_balance`. `delta`: the EdMIPS step of the trained group (info).
    """

    name: str
    kind: str
    src: str
    dst: str
    weight: np.ndarray
    mask: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    dst_channel_offset: int = 0
    bits: Optional[int] = None
    weight_bits: int = 0
    weight_exp: int = 0
    sign_mode: str = "mixed"
    delay: int = 0
    delta: Optional[float] = None
    bn: Optional[BatchNorm] = None
    stats: Optional[SparseStats] = None

    def __post_init__(self) -> None:
        where = f"synapse group '{self.name}'"
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            _fail(where, "name must be a non-empty string without '/'")
        _choice(self.kind, where, "kind", SYNAPSE_KINDS)
        for key in ("src", "dst"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                _fail(where, f"'{key}' must be a population name")
        if self.dst == INPUT_NAME:
            _fail(where, "'dst' cannot be the input")
        w = _numeric_array(self.weight, where, "weight")
        want_ndim = {"conv": 4, "dense": 2, "identity": 0}[self.kind]
        if w.ndim != want_ndim:
            _fail(where, f"{self.kind} weight must have {want_ndim} dimensions, got shape {w.shape}")
        if w.size == 0:
            _fail(where, "weight is empty")
        object.__setattr__(self, "weight", w)
        if self.mask is not None:
            if self.kind == "identity":
                _fail(where, "an identity group has no mask")
            m = np.asarray(self.mask)
            if m.dtype != np.bool_:
                _fail(where, f"'mask' must be a bool array, got dtype {m.dtype}")
            m = frozen_array(m, where, "mask", np.bool_)
            if m.shape != w.shape:
                _fail(where, f"mask shape {m.shape} != weight shape {w.shape}")
            if np.any(w[~m] != 0):
                _fail(where, "weights outside the mask are not zero")
            object.__setattr__(self, "mask", m)
        object.__setattr__(self, "stride", _int(self.stride, where, "stride", lo=1))
        object.__setattr__(self, "padding", _int(self.padding, where, "padding", lo=0))
        if self.kind == "identity" and self.padding != 0:
            _fail(where, "an identity group has padding 0")
        if self.kind == "dense" and (self.stride != 1 or self.padding != 0):
            _fail(where, "a dense group has stride 1 and padding 0")
        object.__setattr__(self, "dst_channel_offset", _int(self.dst_channel_offset, where, "dst_channel_offset", lo=0))
        if self.bits is not None:
            object.__setattr__(self, "bits", _int(self.bits, where, "bits", lo=1, hi=32))
        object.__setattr__(self, "weight_bits", _int(self.weight_bits, where, "weight_bits", lo=0, hi=32))
        object.__setattr__(self, "weight_exp", _int(self.weight_exp, where, "weight_exp", lo=-32, hi=32))
        _choice(self.sign_mode, where, "sign_mode", SIGN_MODES)
        object.__setattr__(self, "delay", _int(self.delay, where, "delay", lo=0))
        if self.delta is not None:
            object.__setattr__(self, "delta", _float(self.delta, where, "delta", positive=True))
        if self.bn is not None:
            if not isinstance(self.bn, BatchNorm):
                _fail(where, "'bn' must be a BatchNorm or None")
            if self.kind == "identity" or self.bn.gamma.shape[0] != w.shape[0]:
                _fail(where, f"batchnorm length {self.bn.gamma.shape[0]} does not match the group's output channels")
        if self.stats is not None and not isinstance(self.stats, SparseStats):
            _fail(where, "'stats' must be SparseStats or None")

    @property
    def is_integer(self) -> bool:
        return self.weight.dtype.kind == "i"

    @property
    def kept(self) -> np.ndarray:
        """Bool array of stored (non-pruned, non-zero-by-mask) entries of the kernel."""
        if self.mask is not None:
            return self.mask
        return np.ones(self.weight.shape, dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "src": self.src, "dst": self.dst,
                "weight": self.weight, "mask": self.mask, "stride": self.stride, "padding": self.padding,
                "dst_channel_offset": self.dst_channel_offset, "bits": self.bits,
                "weight_bits": self.weight_bits, "weight_exp": self.weight_exp, "sign_mode": self.sign_mode,
                "delay": self.delay, "delta": self.delta,
                "bn": None if self.bn is None else self.bn.to_dict(),
                "stats": None if self.stats is None else self.stats.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SynapseGroup":
        mask = d.get("mask")
        return cls(name=d["name"], kind=d["kind"], src=d["src"], dst=d["dst"], weight=np.asarray(d["weight"]),
                   mask=None if mask is None else np.asarray(mask, dtype=bool), stride=d["stride"],
                   padding=d["padding"], dst_channel_offset=d["dst_channel_offset"], bits=d["bits"],
                   weight_bits=d["weight_bits"], weight_exp=d["weight_exp"], sign_mode=d["sign_mode"],
                   delay=d["delay"], delta=d["delta"],
                   bn=None if d.get("bn") is None else BatchNorm.from_dict(d["bn"]),
                   stats=None if d.get("stats") is None else SparseStats.from_dict(d["stats"]))


@dataclass(frozen=True, eq=False)
class Placement:
    """Populations split onto cores (set by the `place` pass); one entry per core, in order.

    `core_population[k]` indexes `Graph.populations`. Memory in bits, axons as counts.
    """

    core_population: np.ndarray
    core_neurons: np.ndarray
    core_synapses: np.ndarray
    core_memory_bits: np.ndarray
    core_input_axons: np.ndarray
    core_output_axons: np.ndarray
    cores_per_chip: int
    chips: int

    _ARRAYS = ("core_population", "core_neurons", "core_synapses", "core_memory_bits",
               "core_input_axons", "core_output_axons")

    def __post_init__(self) -> None:
        where = "placement"
        n = None
        for key in self._ARRAYS:
            arr = frozen_array(np.asarray(getattr(self, key)), where, key, np.int64)
            if arr.ndim != 1:
                _fail(where, f"'{key}' must be 1-D")
            if n is not None and arr.shape[0] != n:
                _fail(where, f"'{key}' has {arr.shape[0]} cores, expected {n}")
            if arr.size and arr.min() < 0:
                _fail(where, f"'{key}' has negative entries")
            n = arr.shape[0]
            object.__setattr__(self, key, arr)
        object.__setattr__(self, "cores_per_chip", _int(self.cores_per_chip, where, "cores_per_chip", lo=1))
        object.__setattr__(self, "chips", _int(self.chips, where, "chips", lo=0))

    @property
    def total_cores(self) -> int:
        return int(self.core_population.shape[0])

    def cores_of(self, population_index: int) -> int:
        return int(np.count_nonzero(self.core_population == population_index))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {key: getattr(self, key) for key in self._ARRAYS}
        d["cores_per_chip"] = self.cores_per_chip
        d["chips"] = self.chips
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Placement":
        return cls(**{key: np.asarray(d[key], dtype=np.int64) for key in cls._ARRAYS},
                   cores_per_chip=d["cores_per_chip"], chips=d["chips"])


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
        names = set()
        covered = {p.name: np.zeros(p.shape[0], dtype=bool) for p in pops}
        incoming = {p.name: 0 for p in pops}
        for s in syns:
            w = f"synapse group '{s.name}'"
            if s.name in names:
                _fail(where, f"duplicate synapse group name '{s.name}'")
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
            incoming[s.dst] += 1
            if self.stage == "integer":
                if not s.is_integer:
                    _fail(w, "weights must be integers in an integer-stage graph")
                if s.weight_bits < 1:
                    _fail(w, "weight_bits must be chosen (>= 1) in an integer-stage graph")
                if s.bn is not None:
                    _fail(w, "an unfolded batchnorm is left in an integer-stage graph")
        for p in pops:
            if not covered[p.name].all():
                _fail(where, f"population '{p.name}' has channels with no incoming synapse group")
            if self.stage == "integer" and not p.is_integer:
                _fail(where, f"population '{p.name}': bias_mant and vth_mant must be integers in an "
                             "integer-stage graph")
        if self.placement is not None:
            if not isinstance(self.placement, Placement):
                _fail(where, "'placement' must be a Placement or None")
            cp = self.placement.core_population
            if cp.size and (cp.min() < 0 or cp.max() >= len(pops)):
                _fail(where, "placement refers to a population index out of range")

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
