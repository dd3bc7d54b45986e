"""Pass 3: float values in units of s_P -> the chip's integers, and each group's bit format.

Integrality: every weight, bias and threshold must be within 1e-4 of an integer (the exporter
guarantees it; docs/SEMANTICS.md 2); all offenders are reported at once as `integral`
violations naming the layer and its max residual. Bit format per group:

- sign mode from the kept weights: all >= 0 excitatory, all <= 0 inhibitory, else mixed;
- `weight_exp`: the shift e (0 <= e <= trailing zeros common to all weights, within the
  profile's exponent range) that needs the fewest mantissa bits (weight >> e), smallest e on
  ties (an identity weight 64 is mantissa 1, exponent 6);
- bits needed: mixed = two's complement width of the mantissa, otherwise its magnitude width;
  for a conv/dense group with searched bits b on the EdMIPS grid (odd integers, mixed sign)
  at least b + 1 (docs/DESIGN.md 3), whatever values the random draw happened to reach;
- `weight_bits` = the smallest width the profile allows that holds it (else the needed width,
  which `check_rules` then reports).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from lsnn.compiler.ir import Graph, SynapseGroup
from lsnn.compiler.rules import RULE_INTEGRAL, Violation
from lsnn.errors import DesignRuleError, IRError
from lsnn.hw_profiles.profile import Profile

INTEGRAL_TOL = 1e-4


def _residual(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    return float(np.max(np.abs(values - np.round(values))))


def sign_mode_of(w: np.ndarray) -> str:
    """mixed / excitatory / inhibitory from the signs of the weights."""
    if w.size == 0 or (w.min() >= 0):
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def bits_needed(w: np.ndarray, sign_mode: str) -> int:
    """Mantissa width: two's complement for mixed, magnitude otherwise (at least 1)."""
    if w.size == 0:
        return 1
    lo, hi = int(w.min()), int(w.max())
    if sign_mode == "mixed":
        n = 1
        while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
            n += 1
        return n
    return max(1, max(abs(lo), abs(hi)).bit_length())


def trailing_zeros(w: np.ndarray) -> int:
    """Largest e such that every weight is a multiple of 2^e (0 if all are zero)."""
    nz = np.abs(w[w != 0]).astype(np.int64)
    if nz.size == 0:
        return 0
    g = int(np.bitwise_or.reduce(nz))
    return (g & -g).bit_length() - 1


def choose_format(w: np.ndarray, bits: Optional[int], kind: str, profile: Optional[Profile]) -> tuple[int, int, str]:
    """(weight_bits, weight_exp, sign_mode) for integer weights `w` (see module doc)."""
    mode = sign_mode_of(w)
    e_lo = max(0, profile.weight_exp_min) if profile else 0
    e_hi = min(trailing_zeros(w), profile.weight_exp_max if profile else 32)
    candidates = list(range(e_lo, e_hi + 1)) or [0]
    best_e = min(candidates, key=lambda e: (bits_needed(w >> e, mode), e))
    best_n = bits_needed(w >> best_e, mode)
    if bits is not None and kind in ("conv", "dense"):
        floor = bits + 1 if mode == "mixed" else bits
        best_n = max(best_n, floor)
    if profile is not None:
        fitting = [b for b in profile.weight_bits if b >= best_n]
        if fitting:
            best_n = min(fitting)
    return best_n, best_e, mode


def quantize(graph: Graph, profile: Optional[Profile] = None) -> Graph:
    """Round to integers (integrality checked, all violations at once) and choose bit formats."""
    if graph.stage != "float":
        raise IRError("quantize: the graph is already integer")
    if any(s.bn is not None for s in graph.synapses):
        raise IRError("quantize: fold batchnorm first (run the fold pass)")
    violations: list[Violation] = []

    def check(layer: str, what: str, values: np.ndarray) -> None:
        r = _residual(values)
        if r > INTEGRAL_TOL:
            violations.append(Violation(
                RULE_INTEGRAL, layer, INTEGRAL_TOL, r,
                f"{layer}: {what} / scale is not integral (max residual {r:.3g} > {INTEGRAL_TOL:g}); "
                "the trained values are not on the chip's integer grid"))

    for p in graph.populations:
        check(p.name, "bias", np.asarray(p.bias_mant))
        check(p.name, "vth", np.asarray([p.vth_mant], dtype=np.float64))
    for s in graph.synapses:
        check(s.name, "weight", np.asarray(s.weight))
    if violations:
        raise DesignRuleError(violations, target=profile.name if profile else "")

    pops = [replace(p, bias_mant=np.round(p.bias_mant).astype(np.int32), vth_mant=int(round(float(p.vth_mant))))
            for p in graph.populations]
    syns: list[SynapseGroup] = []
    for s in graph.synapses:
        w = np.rint(np.asarray(s.weight))
        if w.size and (w.min() < np.iinfo(np.int32).min or w.max() > np.iinfo(np.int32).max):
            raise IRError(f"quantize: synapse group '{s.name}' has weights outside int32")
        w = w.astype(np.int32)
        kept = (w[s.mask] if s.mask is not None else w.reshape(-1)).astype(np.int64)
        wb, we, mode = choose_format(kept, s.bits, s.kind, profile)
        syns.append(replace(s, weight=w, weight_bits=wb, weight_exp=we, sign_mode=mode))
    return graph.replace(populations=tuple(pops), synapses=tuple(syns), stage="integer")
