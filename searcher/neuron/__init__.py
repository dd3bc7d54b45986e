"""The LIF neuron, norse-style: pure step functions (`functional.lif_step`, float with the
Dspike surrogate; `integer.lava_lif_step`, the chip's integer LIF run differentiably), one fused
recurrence for the hot path (`fused`), and thin modules that pick a variant (`module`)."""
from lsnn.searcher.neuron.functional import (
                                             DSPIKE_TEMPERATURE,
                                             TAU_DEFAULT,
                                             VTH_INIT,
                                             LIFParams,
                                             dspike_grad,
                                             lif_step,
                                             spike,
)
from lsnn.searcher.neuron.fused import fused_lava_lif, fused_lif
from lsnn.searcher.neuron.integer import lava_lif, lava_lif_step, lava_readout_increments
from lsnn.searcher.neuron.module import LIF, FusedLIF

__all__ = ["DSPIKE_TEMPERATURE", "TAU_DEFAULT", "VTH_INIT", "LIFParams", "dspike_grad", "lif_step", "spike",
           "fused_lif", "fused_lava_lif", "lava_lif", "lava_lif_step", "lava_readout_increments", "LIF", "FusedLIF"]
