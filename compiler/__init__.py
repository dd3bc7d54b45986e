"""lsnn.compiler: lower model.pt to NetX HDF5 under a hardware profile (no torch/lava at import)."""
