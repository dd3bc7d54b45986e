"""lsnn.runtime: run model.net on Lava's CPU simulator (or Loihi) and the integer emulator."""
