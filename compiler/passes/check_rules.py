"""Pass 6: design rules against a hardware profile; every violation collected, raised at once.

Each rule is a small named function `rule(graph, profile, plan) -> list[Violation]` in
`RULES` (a dispatch table, rockpool Xylo DRC / nengo-loihi validator style). `check_rules`
runs them all and raises `DesignRuleError` with the full list, or returns the graph unchanged.

Notes on what is checked:
- the readout is exempt from the threshold-mantissa rule: it must never spike; with the
  largest mantissa a target has, it could only fire within 2^6 units of the 24-bit clip,
  where its potential is already saturated (docs/SEMANTICS.md 3 writes vth = 2^23 - 1);
- fan-in: the most kept synapses into one neuron, or the input axons of one core (bounding box
  of the receptive field, see `place`), whichever is larger, against input axons per core;
- fan-out: destination cores one neuron reaches against output axons per core;
- capacity: cores of one population, and of the whole network, against cores * chips.
"""
from __future__ import annotations

from typing import Callable, Optional

from lsnn.compiler.ir import STATE_BITS, Graph
from lsnn.compiler.passes.place import PlacementPlan, plan_placement
from lsnn.compiler.rules import (
    RULE_BIAS_EXP,
    RULE_BIAS_MANT,
    RULE_DELAY,
    RULE_FAN_IN,
    RULE_FAN_OUT,
    RULE_GRADED_INPUT,
    RULE_NEURON_MEMORY,
    RULE_POPULATION_CORES,
    RULE_SIGN_MODE,
    RULE_STATE_BITS,
    RULE_TOTAL_CORES,
    RULE_VTH,
    RULE_WEIGHT_BITS,
    RULE_WEIGHT_EXP,
    Violation,
)
from lsnn.errors import DesignRuleError, IRError
from lsnn.hw_profiles.profile import Profile

Rule = Callable[[Graph, Profile, PlacementPlan], list[Violation]]


def _fmt_list(values: tuple) -> str:
    return ", ".join(str(v) for v in values)


def rule_weight_bits(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    out = []
    for s in g.synapses:
        if s.weight_bits not in pr.weight_bits:
            searched = f", searched {s.bits} bits" if s.bits is not None else ""
            out.append(Violation(RULE_WEIGHT_BITS, s.name, s.weight_bits, pr.max_weight_bits,
                                 f"{s.name}: needs {s.weight_bits}-bit {s.sign_mode} weights{searched}; "
                                 f"target allows {_fmt_list(pr.weight_bits)} bits"))
    return out


def rule_weight_exponent(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    out = []
    for s in g.synapses:
        if not pr.weight_exp_min <= s.weight_exp <= pr.weight_exp_max:
            out.append(Violation(RULE_WEIGHT_EXP, s.name, s.weight_exp, pr.weight_exp_max,
                                 f"{s.name}: weight exponent {s.weight_exp} outside the target's range "
                                 f"[{pr.weight_exp_min}, {pr.weight_exp_max}]"))
    return out


def rule_sign_mode(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    return [Violation(RULE_SIGN_MODE, s.name, s.sign_mode, _fmt_list(pr.sign_modes),
                      f"{s.name}: sign mode '{s.sign_mode}' not supported (target: {_fmt_list(pr.sign_modes)})")
            for s in g.synapses if s.sign_mode not in pr.sign_modes]


def rule_graded_input(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    inp = g.input
    if not inp.needs_graded or inp.bits <= pr.graded_spike_bits:
        return []
    what = "a binary-only target" if pr.graded_spike_bits == 0 else f"{pr.graded_spike_bits}-bit graded spikes"
    return [Violation(RULE_GRADED_INPUT, "input", inp.bits, pr.graded_spike_bits,
                      f"input: {inp.bits}-bit graded input spikes on {what}")]


def rule_fan_in(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    out = []
    cores_in = plan.placement.core_input_axons
    pop_of = plan.placement.core_population
    for i, p in enumerate(g.populations):
        pp = plan.plan_of(p.name)
        mask = pop_of == i
        core_max = int(cores_in[mask].max()) if mask.any() else 0
        need = max(pp.max_neuron_fan_in, core_max)
        if need > pr.input_axons_per_core:
            out.append(Violation(RULE_FAN_IN, p.name, need, pr.input_axons_per_core,
                                 f"{p.name}: input axons ({need}) exceed max ({pr.input_axons_per_core}) per core "
                                 f"(most synapses into one neuron: {pp.max_neuron_fan_in})"))
    return out


def rule_fan_out(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    out = []
    for p in g.populations:
        pp = plan.plan_of(p.name)
        if pp.max_neuron_fan_out > pr.output_axons_per_core:
            out.append(Violation(RULE_FAN_OUT, p.name, pp.max_neuron_fan_out, pr.output_axons_per_core,
                                 f"{p.name}: one neuron reaches {pp.max_neuron_fan_out} destination cores, "
                                 f"more than the {pr.output_axons_per_core} output axons of a core"))
    return out


def rule_delay(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    return [Violation(RULE_DELAY, s.name, s.delay, pr.max_delay,
                      f"{s.name}: needs a delay of {s.delay} steps to balance the pipeline; "
                      f"target max synaptic delay is {pr.max_delay}")
            for s in g.synapses if s.delay > pr.max_delay]


def rule_vth(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    out = []
    for p in g.populations:
        if p.kind == "readout":
            continue
        if not 0 <= p.vth_mant <= pr.vth_max:
            out.append(Violation(RULE_VTH, p.name, p.vth_mant, pr.vth_max,
                                 f"{p.name}: threshold mantissa {p.vth_mant} outside [0, {pr.vth_max}] "
                                 f"({pr.vth_mantissa_bits} bits)"))
    return out


def rule_bias_mantissa(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    lo, hi = pr.bias_range
    out = []
    for p in g.populations:
        b_lo, b_hi = int(p.bias_mant.min()), int(p.bias_mant.max())
        if b_lo < lo or b_hi > hi:
            worst = b_lo if (lo - b_lo) > (b_hi - hi) else b_hi
            out.append(Violation(RULE_BIAS_MANT, p.name, worst, hi,
                                 f"{p.name}: bias mantissa {worst} outside [{lo}, {hi}] "
                                 f"({pr.bias_mantissa_bits}-bit signed)"))
    return out


def rule_bias_exponent(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    return [Violation(RULE_BIAS_EXP, p.name, p.bias_exp, pr.bias_exp_max,
                      f"{p.name}: bias exponent {p.bias_exp} outside [0, {pr.bias_exp_max}] "
                      f"({pr.bias_exponent_bits} bits)")
            for p in g.populations if p.bias_exp > pr.bias_exp_max]


def rule_state_bits(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    if pr.state_bits >= STATE_BITS:
        return []
    return [Violation(RULE_STATE_BITS, p.name, STATE_BITS, pr.state_bits,
                      f"{p.name}: the LIF dynamics need {STATE_BITS}-bit u and v; target has {pr.state_bits} bits")
            for p in g.populations]


def rule_neuron_memory(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    out = []
    for p in g.populations:
        pp = plan.plan_of(p.name)
        if pp.max_neuron_memory_bits > pr.synaptic_memory_bits_per_core:
            out.append(Violation(RULE_NEURON_MEMORY, p.name, pp.max_neuron_memory_bits,
                                 pr.synaptic_memory_bits_per_core,
                                 f"{p.name}: one neuron needs {pp.max_neuron_memory_bits} bits of synaptic memory, "
                                 f"a core has {pr.synaptic_memory_bits_per_core}"))
    return out


def rule_population_cores(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    return [Violation(RULE_POPULATION_CORES, pp.name, pp.cores, pr.max_cores,
                      f"{pp.name}: {g.population(pp.name).size} neurons need {pp.cores} cores; the target has "
                      f"{pr.max_cores} ({pr.max_chips} chips x {pr.cores_per_chip} cores)")
            for pp in plan.populations if pp.cores > pr.max_cores]


def rule_total_cores(g: Graph, pr: Profile, plan: PlacementPlan) -> list[Violation]:
    total = plan.placement.total_cores
    if total <= pr.max_cores:
        return []
    chips = plan.placement.chips
    return [Violation(RULE_TOTAL_CORES, "network", total, pr.max_cores,
                      f"network: needs {total} cores on {chips} chips; the target has {pr.max_cores} cores "
                      f"({pr.max_chips} chips x {pr.cores_per_chip})")]


RULES: dict[str, Rule] = {
    RULE_WEIGHT_BITS: rule_weight_bits,
    RULE_WEIGHT_EXP: rule_weight_exponent,
    RULE_SIGN_MODE: rule_sign_mode,
    RULE_GRADED_INPUT: rule_graded_input,
    RULE_FAN_IN: rule_fan_in,
    RULE_FAN_OUT: rule_fan_out,
    RULE_DELAY: rule_delay,
    RULE_VTH: rule_vth,
    RULE_BIAS_MANT: rule_bias_mantissa,
    RULE_BIAS_EXP: rule_bias_exponent,
    RULE_STATE_BITS: rule_state_bits,
    RULE_NEURON_MEMORY: rule_neuron_memory,
    RULE_POPULATION_CORES: rule_population_cores,
    RULE_TOTAL_CORES: rule_total_cores,
}


def find_violations(graph: Graph, profile: Profile, plan: Optional[PlacementPlan] = None) -> list[Violation]:
    """Every violation of every rule, in RULES order."""
    if graph.stage != "integer" or any(s.stats is None for s in graph.synapses) or graph.latency == 0:
        raise IRError("check_rules: run quantize, sparsify and delay_balance first")
    plan = plan if plan is not None else plan_placement(graph, profile)
    out: list[Violation] = []
    for rule in RULES.values():
        out.extend(rule(graph, profile, plan))
    return out


def check_rules(graph: Graph, profile: Profile) -> Graph:
    """Raise DesignRuleError with all violations, else return the graph unchanged."""
    violations = find_violations(graph, profile)
    if violations:
        raise DesignRuleError(violations, target=profile.name)
    return graph
