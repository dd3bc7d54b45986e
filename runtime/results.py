"""What an engine run measured, in one form for the emulator and Lava: the ideal-time result
(`EmulatorResult`), the Lava-step-aligned trains (`PipelineTrace`) and their comparison."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from lsnn.runtime.netgraph import Timing


@dataclass
class EmulatorResult:
    """What `Emulator.run` measured on N samples (ideal time, steps t = 1..T).

    `readout_v` [N, G*K]: the readout's v after step T (the prediction is the argmax of the
    per-class sum over the G readout parts, `Graph.predictions`, first index on ties);
    `readout_trace` [N, T, G*K]: v after every step. `spike_counts[pop]` [T]: spikes per step
    summed over samples and neurons; `spike_maps[pop]` [C, H, W]: spikes per neuron summed over
    steps and samples; `input_events` [C, H, W]: (sample, step) pairs with a non-zero input value
    (graded events; = spikes for binary input); `spikes[pop]` [N, T, C, H, W] uint8 if recorded.
    """

    predictions: np.ndarray
    readout_v: np.ndarray
    readout_trace: np.ndarray
    spike_counts: dict[str, np.ndarray]
    spike_maps: dict[str, np.ndarray]
    input_events: np.ndarray
    num_samples: int
    T: int
    spikes: Optional[dict[str, np.ndarray]] = None
    per_sample_spikes: Optional[np.ndarray] = None    # [N] total spikes of all populations

    def spike_rate(self, pop: str, size: int) -> float:
        """Mean spikes per neuron per step of population `pop` (of `size` neurons)."""
        denom = self.num_samples * self.T * size
        return float(self.spike_counts[pop].sum()) / denom if denom else 0.0


@dataclass
class PipelineTrace:
    """Lava-step-aligned trains: `spikes[pop]` [S, C, H, W] uint8 (row s-1 = Lava step s),
    `readout_v` [S, K] int32 (the readout's v after each step), `num_steps` S = N*T + max depth."""

    spikes: dict[str, np.ndarray]
    readout_v: Optional[np.ndarray]
    num_steps: int
    num_samples: int
    timing: Timing = field(repr=False, default=None)  # type: ignore[assignment]

    def window_v(self) -> np.ndarray:
        """[N, K]: the readout's v at the end of each sample's window (step k*T + T + latency)."""
        t = self.timing
        rows = [k * t.T + t.T + t.latency - 1 for k in range(self.num_samples)]
        return self.readout_v[rows]


def first_difference(a: PipelineTrace, b: PipelineTrace, pops: Optional[Iterable[str]] = None) -> Optional[str]:
    """None if the two traces are identical (every population, every step, and the readout v
    where both hold it);
    else a one-line description of the first difference (population, Lava step, neuron)."""
    names = list(pops) if pops is not None else sorted(set(a.spikes) | set(b.spikes))
    if a.num_steps != b.num_steps:
        return f"different lengths: {a.num_steps} vs {b.num_steps} steps"
    for name in names:
        x, y = a.spikes.get(name), b.spikes.get(name)
        if x is None or y is None:
            return f"population '{name}' missing in one trace"
        if x.shape != y.shape:
            return f"population '{name}': shapes {x.shape} vs {y.shape}"
        diff = np.argwhere(x != y)
        if diff.size:
            s, *idx = diff[0]
            return (f"population '{name}' differs at Lava step {s + 1}, neuron (c,h,w)={tuple(int(i) for i in idx)}: "
                    f"{int(x[tuple(diff[0])])} vs {int(y[tuple(diff[0])])} ({len(diff)} differences)")
    if a.readout_v is None or b.readout_v is None:
        return None
    if a.readout_v.shape != b.readout_v.shape or not np.array_equal(a.readout_v, b.readout_v):
        rows = np.argwhere(a.readout_v != b.readout_v) if a.readout_v.shape == b.readout_v.shape else [[0]]
        return f"readout v differs (first at Lava step {int(rows[0][0]) + 1})"
    return None
