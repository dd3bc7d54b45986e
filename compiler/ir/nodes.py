"""The IR's nodes: input, populations, batchnorm, sparse statistics, synapse groups, placement
(frozen, validated in `__post_init__`; see `lsnn.compiler.ir`)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import numpy as np

from lsnn.compiler.ir.checks import (
    DEFAULT_BIAS_EXP,
    DEFAULT_DU,
    DEFAULT_DV,
    INPUT_ENCODINGS,
    INPUT_NAME,
    POPULATION_KINDS,
    SIGN_MODES,
    STATE_BITS,
    SYNAPSE_ENCODINGS,
    SYNAPSE_KINDS,
    _choice,
    _fail,
    _float,
    _int,
    _numeric_array,
    _shape3,
    frozen_array,
)
from lsnn.contract.chip import DECAY_UNITY

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
        object.__setattr__(self, "du", _int(self.du, where, "du", 0, DECAY_UNITY - 1))
        object.__setattr__(self, "dv", _int(self.dv, where, "dv", 0, DECAY_UNITY - 1))
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
