"""Lava's side of `lsnn run`: the process graph (`build`) with delay lines (`delay`) and probes
(`probes`), and its run (`run`). Only these modules import Lava, and only when a run starts."""
