"""Design rules: their stable ids and the `Violation` record each rule function returns.

`lsnn.errors.DesignRuleError` carries *every* violation found against a hardware profile at
once (rockpool's Xylo DRC, nengo-loihi's validators), each a small frozen `Violation` with the
rule id, the layer, what it needs and what the target has.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Number = Union[int, float, str]

# Rule ids (stable strings: tests, reports and users key on them).
RULE_INTEGRAL = "integral"                    # weight/bias/vth not on the population's integer grid
RULE_WEIGHT_BITS = "weight_bits"              # hardware weight bits not allowed by the target
RULE_WEIGHT_EXP = "weight_exponent"           # weight exponent outside the target's range
RULE_SIGN_MODE = "sign_mode"                  # sign mode not supported by the target
RULE_GRADED_INPUT = "graded_input"            # graded input spikes on a binary-only (or too narrow) target
RULE_FAN_IN = "fan_in"                        # one neuron's input synapses exceed a core's input axons
RULE_FAN_OUT = "fan_out"                      # one neuron's destination cores exceed a core's output axons
RULE_DELAY = "delay"                          # an edge delay above the target's max synaptic delay
RULE_VTH = "vth_mantissa"                     # threshold mantissa out of range
RULE_BIAS_MANT = "bias_mantissa"              # bias mantissa out of range
RULE_BIAS_EXP = "bias_exponent"               # bias exponent out of range
RULE_STATE_BITS = "state_bits"                # the dynamics need more state bits than the target has
RULE_NEURON_MEMORY = "neuron_memory"          # one neuron's synapses do not fit one core's memory
RULE_POPULATION_CORES = "population_cores"    # one population needs more cores than all chips have
RULE_TOTAL_CORES = "total_cores"              # the whole network needs more cores than all chips have

ALL_RULES = (
    RULE_INTEGRAL, RULE_WEIGHT_BITS, RULE_WEIGHT_EXP, RULE_SIGN_MODE, RULE_GRADED_INPUT, RULE_FAN_IN,
    RULE_FAN_OUT, RULE_DELAY, RULE_VTH, RULE_BIAS_MANT, RULE_BIAS_EXP, RULE_STATE_BITS,
    RULE_NEURON_MEMORY, RULE_POPULATION_CORES, RULE_TOTAL_CORES,
)


@dataclass(frozen=True)
class Violation:
    """One design-rule violation: `layer` needs `required`, the target offers `available`."""

    rule: str
    layer: str
    required: Number
    available: Number
    message: str

    def __post_init__(self) -> None:
        if self.rule not in ALL_RULES:
            raise ValueError(f"unknown design rule '{self.rule}' (known: {', '.join(ALL_RULES)})")

    def to_dict(self) -> dict:
        return {"rule": self.rule, "layer": self.layer, "required": self.required,
                "available": self.available, "message": self.message}
