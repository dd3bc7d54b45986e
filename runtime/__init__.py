"""lsnn.runtime: run model.net on Lava's CPU simulator (or Loihi) and the integer emulator.

- `emulator`: vectorised integer emulator, bit-exact to Lava fixed_pt (ideal time + Lava's
  pipelined schedule); `lif_fixed`: Lava's bit-accurate LIF in NumPy.
- `lava_graph` / `lava_run`: the Lava process graph and its run (imports Lava lazily);
  `lava_delay`: the dendritic delay line; `lava_probes`: memmap spike/voltage probes.
- `counting`: measured SynOps, Bit-SynOps, S-ACE/NS-ACE, energy vs the search's cost model.
- `runner` / `report` / `cli`: `lsnn run`.

Nothing here imports torch; only the lava_* modules import Lava.
"""
