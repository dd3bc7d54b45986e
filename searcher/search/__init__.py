"""The search: two-step joint optimisation (`loop`), its loss, timestep search, decode, run state."""
