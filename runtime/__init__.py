"""lsnn.runtime: run model.net on the integer emulator and Lava's CPU simulator (or Loihi).

- `emulator/`: vectorised integer emulator, bit-exact to Lava fixed_pt (ideal time + Lava's
  pipelined schedule), on the chip semantics of `lsnn.contract.chip`.
- `lava/`: the Lava process graph and its run (imports Lava lazily), delay lines, probes.
- `netgraph`: timing and input encoding both engines share.
- `counting`: measured SynOps, Bit-SynOps, S-ACE/NS-ACE, energy vs the cost model.
- `runner` / `report` / `cli`: `lsnn run`.

Nothing here imports torch except the emulator's fast backend; only `lava/` imports Lava.
"""
