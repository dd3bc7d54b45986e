"""Memory, compute and energy cost of a (super)network: LitE-SNN Eq. 12-14 and 18-20, Table 5, S-ACE/NS-ACE.

No torch at import: every formula is plain arithmetic, so it works on Python floats, NumPy arrays
and torch tensors alike (the search loss differentiates through it; the compiler and the runtime
reuse it without torch to print the same numbers).

Conventions (one per-layer row = one synapse group: a conv, or the readout FC):
- `bits`: weight bitwidth b_w; in the supernet the softmax(beta)-expected value (Eq. 19).
- `prune`: pruning rate p in [0, 1); the kept fraction is (1 - p).
- `in_rate`: spikes per input neuron per step (firing rate of the layer's input). Over `T` steps
  the Eq. 14 count is S = in_rate * T; in the supernet T is the psi-expected timestep count
  sum_t w_t and in_rate = S / T, so in_rate * T is exactly the Eq. 14 weighted spike count.
- `weight`: multiplier on every quantity of the row (softmax(alpha)_conv of a supernet edge; 1 else).
- `pool`: input positions summed into one output position (global average pool before the FC: H*W;
  1 for convs). The chip runs pool + FC as one dense group with the weights repeated over the
  positions, so each input spike still costs `cout` synaptic operations.
- kind "stem": reads the real-valued (graded, `in_bits`-bit) input, not spikes. Its work counts as
  multiplications (Table 5), not as SynOps; `in_rate` = 1 (every input sends a value every step).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Sequence

import numpy as np

from lsnn.errors import ConfigError

BIT_CANDIDATES = (1, 2, 4)
E_ADD_PJ = 0.9    # 45 nm, 32-bit float add (Horowitz 2014; the paper's Table 5)
E_MULT_PJ = 3.7   # 45 nm, 32-bit float multiply
LAYER_KINDS = ("stem", "conv", "fc")


def _is_torch(x: Any) -> bool:
    return hasattr(x, "flip") and hasattr(x, "detach") and not isinstance(x, np.ndarray)


def expected_bits(probs: Any, candidates: Sequence[float] = BIT_CANDIDATES) -> Any:
    """Eq. 19: b_w = sum_j softmax(beta)_j * q_j (probs over the bit candidates)."""
    if len(probs) != len(candidates):
        raise ConfigError(f"expected {len(candidates)} bit probabilities, got {len(probs)}")
    return sum(probs[j] * float(b) for j, b in enumerate(candidates))


def timestep_weights(probs: Any) -> Any:
    """Eq. 14 rewritten per step: w_t = sum_{t' >= t} softmax(psi)_{t'}.

    Step t contributes to every candidate count >= t, so its spikes weigh w_t.
    Example: probs [0, 0, 0, 0, 0.6, 0.4] -> [1, 1, 1, 1, 1, 0.4].
    """
    if _is_torch(probs):
        return probs.flip(-1).cumsum(-1).flip(-1)
    a = np.asarray(probs, dtype=np.float64)
    return np.flip(np.cumsum(np.flip(a, -1), -1), -1).copy()


def expected_timesteps(probs: Any) -> Any:
    """sum_t t * softmax(psi)_t (equals sum_t w_t): the psi-weighted number of steps."""
    return timestep_weights(probs).sum(-1)


def weighted_spike_count(rates: Any, probs: Any) -> Any:
    """Eq. 14: S = sum_t softmax(psi)_t * sum_{t' <= t} s(t') = sum_t w_t s(t).

    rates: per-step firing rate s(t) (spikes per neuron) over the last axis, length T.
    """
    if not _is_torch(rates):
        rates = np.asarray(rates, dtype=np.float64)
    return (timestep_weights(probs) * rates).sum(-1)


def mem_bits(bits: Any, kh: Any, kw: Any, cin: Any, cout: Any, prune: Any = 0.0) -> Any:
    """Eq. 18: MEM = b_w * kh * kw * Cin * Cout * (1 - p) bits of weight storage."""
    return bits * kh * kw * cin * cout * (1.0 - prune)


def macs(kh: Any, kw: Any, cin: Any, cout: Any, h_out: Any, w_out: Any, pool: Any = 1) -> Any:
    """Dense multiply-accumulates of one step: kh * kw * Cin * Cout * H_out * W_out (* pool)."""
    return kh * kw * cin * cout * h_out * w_out * pool


def synops(kh: Any, kw: Any, cin: Any, cout: Any, h_out: Any, w_out: Any, spikes: Any,
           prune: Any = 0.0, pool: Any = 1) -> Any:
    """Eq. 12: SynOps = (1 - p) * kh * kw * Cin * Cout * H_out * W_out * S, S from Eq. 14."""
    return (1.0 - prune) * macs(kh, kw, cin, cout, h_out, w_out, pool) * spikes


def bit_synops(bits: Any, syn: Any) -> Any:
    """Eq. 20: Bit-SynOps = b_w * SynOps (the COMP term of Eq. 15)."""
    return bits * syn


def s_ace(n_macs: Any, T: Any, in_rate: Any, bits: Any, spike_bits: Any, prune: Any = 0.0) -> Any:
    """S-ACE (Bit Budget paper, seed 003; our reading of its summary): bit-operations of
    event-driven hardware, MACs * T * firing rate * b_w * b_spike, only for kept (1 - p) weights."""
    return n_macs * T * in_rate * bits * spike_bits * (1.0 - prune)


def ns_ace(n_macs: Any, T: Any, bits: Any, spike_bits: Any) -> Any:
    """NS-ACE (our reading, as s_ace): dense hardware does every MAC every step, MACs * T * b_w * b_spike."""
    return n_macs * T * bits * spike_bits


def energy_paper(adds: Any, mults: Any, e_add_pj: float = E_ADD_PJ, e_mult_pj: float = E_MULT_PJ) -> Any:
    """Table 5 method, in joules: adds (SynOps of spiking layers) * 0.9 pJ + mults (stem MACs) * 3.7 pJ."""
    return (adds * e_add_pj + mults * e_mult_pj) * 1e-12


def energy_hw(n_synops: Any, neuron_updates: Any, spikes: Any, e_synop: float, e_neuron: float,
              e_spike: float) -> Any:
    """Hardware-profile energy: SynOps * e_synop + neuron updates * e_neuron + spikes * e_spike
    (in the unit of the e_* figures, e.g. pJ from a hw_profiles YAML)."""
    return n_synops * e_synop + neuron_updates * e_neuron + spikes * e_spike


@dataclass(frozen=True)
class LayerCost:
    """One synapse group of the cost table (see the module docstring for the fields' meaning)."""

    name: str
    kind: str
    kh: int
    kw: int
    cin: int
    cout: int
    h_out: int
    w_out: int
    bits: float
    prune: float
    in_rate: float
    in_bits: int = 1
    pool: int = 1
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ConfigError(f"layer '{self.name}': kind '{self.kind}' is not one of {', '.join(LAYER_KINDS)}")
        if not 0.0 <= self.prune < 1.0:
            raise ConfigError(f"layer '{self.name}': prune rate must be in [0, 1), got {self.prune}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class LayerMetrics:
    """Per-layer numbers for T steps (all already multiplied by the row's `weight`)."""

    mem_bits: float
    macs: float          # dense MACs over T steps
    synops: float        # Eq. 12 (0 for the stem)
    bit_synops: float    # Eq. 20 (0 for the stem)
    mults: float         # stem: MACs on the real-valued input over T steps (kept weights)
    s_ace: float
    ns_ace: float


def layer_metrics(layer: LayerCost, T: float) -> LayerMetrics:
    """All cost numbers of one layer over T steps (T may be fractional: the psi-expected count)."""
    L = layer
    m = macs(L.kh, L.kw, L.cin, L.cout, L.h_out, L.w_out, L.pool)
    spikes = L.in_rate * T
    syn = synops(L.kh, L.kw, L.cin, L.cout, L.h_out, L.w_out, spikes, L.prune, L.pool)
    stem = L.kind == "stem"
    w = L.weight
    return LayerMetrics(
        mem_bits=w * mem_bits(L.bits, L.kh, L.kw, L.cin, L.cout, L.prune),
        macs=w * m * T,
        synops=0.0 if stem else w * syn,
        bit_synops=0.0 if stem else w * bit_synops(L.bits, syn),
        mults=w * syn if stem else 0.0,
        s_ace=w * s_ace(m, T, L.in_rate, L.bits, L.in_bits, L.prune),
        ns_ace=w * ns_ace(m, T, L.bits, L.in_bits),
    )


@dataclass(frozen=True)
class CostTotals:
    """Whole-network totals. Model size counts weights only (MEM / 8): stem and FC at 8 bits,
    every searched conv at its (expected) bits and (1 - p) density; biases, thresholds and BN
    statistics (folded into per-channel biases at deployment) are not counted, as in the paper."""

    T: float
    mem_bits: float
    model_size_bytes: float
    macs: float
    synops: float
    bit_synops: float
    adds: float
    mults: float
    energy_j: float
    s_ace: float
    ns_ace: float

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def totals(layers: Iterable[LayerCost], T: float) -> CostTotals:
    """Sum the per-layer metrics; adds = SynOps of spiking layers, mults = stem MACs (Table 5)."""
    ms = [layer_metrics(L, T) for L in layers]
    tot = {k: float(sum(getattr(m, k) for m in ms)) for k in ("mem_bits", "macs", "synops", "bit_synops",
                                                               "mults", "s_ace", "ns_ace")}
    return CostTotals(T=float(T), mem_bits=tot["mem_bits"], model_size_bytes=tot["mem_bits"] / 8.0,
                      macs=tot["macs"], synops=tot["synops"], bit_synops=tot["bit_synops"],
                      adds=tot["synops"], mults=tot["mults"],
                      energy_j=float(energy_paper(tot["synops"], tot["mults"])),
                      s_ace=tot["s_ace"], ns_ace=tot["ns_ace"])


def format_table(layers: Sequence[LayerCost], T: float) -> str:
    """A fixed-width per-layer table plus the totals line (what search, compile and run print)."""
    head = (f"{'layer':<22}{'kind':<6}{'k':>4}{'cin':>6}{'cout':>6}{'out':>9}{'bits':>6}{'p':>6}"
            f"{'rate':>7}{'MEM(b)':>11}{'SynOps':>12}{'BitSynOps':>12}")
    rows = [head, "-" * len(head)]
    for L in layers:
        m = layer_metrics(L, T)
        rows.append(f"{L.name:<22}{L.kind:<6}{f'{L.kh}x{L.kw}':>4}{L.cin:>6}{L.cout:>6}"
                    f"{f'{L.h_out}x{L.w_out}':>9}{L.bits:>6.2f}{L.prune:>6.2f}{L.in_rate:>7.3f}"
                    f"{m.mem_bits:>11.0f}{m.synops:>12.4g}{m.bit_synops:>12.4g}")
    t = totals(layers, T)
    rows.append("-" * len(head))
    rows.append(f"T={t.T:.2f}  model size {t.model_size_bytes / 1e3:.2f} kB  SynOps {t.synops / 1e6:.3f} M  "
                f"Bit-SynOps {t.bit_synops / 1e6:.3f} M  stem mults {t.mults / 1e6:.3f} M  "
                f"energy {t.energy_j * 1e3:.4f} mJ  S-ACE {t.s_ace:.4g}  NS-ACE {t.ns_ace:.4g}")
    return "\n".join(rows)
