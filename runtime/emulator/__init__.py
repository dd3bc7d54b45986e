"""The integer emulator of a compiled net, bit-exact to Lava fixed_pt: the engine (`engine`), its
synapse operations (`synapse_ops`), the exact fast LIF forms (`lif_fast`) and numba kernels (`kernels`)."""
from lsnn.runtime.emulator.engine import BACKENDS, Emulator, resolve_backend
from lsnn.runtime.results import EmulatorResult, PipelineTrace, first_difference

__all__ = ["BACKENDS", "Emulator", "EmulatorResult", "PipelineTrace", "first_difference", "resolve_backend"]
