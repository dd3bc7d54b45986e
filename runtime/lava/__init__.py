"""Lava behind a worker process (docs/DESIGN.md 1a). The core imports `client` (run_lava, probe)
and `protocol` (the versioned request/result files); `worker` is the process the client starts
under Lava's CPython 3.10, and only it imports `run`, `build`, `delay` and `probes`, which import
Lava. `cleanup` removes what a run leaves behind (processes, /dev/shm files)."""
