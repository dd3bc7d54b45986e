"""Where a readout too wide for one core is cut into parts: the compiler's `split_readout` pass
cuts it there, and the lava-mode retraining models the same parts, so both read this one plan.

A pooled readout gives each class neuron all C * H * W source neurons as inputs. A part is a
copy of the K class neurons reading a run of whole source channels of at most `limit` source
neurons; the host adds the parts' potentials per class before the argmax. The limit is a core's
input axons and, where one channel allows it, the fan-in at which no part's potential can reach
the 24-bit clip within the window (`part_limit`): a readout summing thousands of spikes over
H * W positions and T steps otherwise saturates, and saturated classes cap the logits (on
Speech Commands at about +-0.7, where a float readout reaches +-5) and tie.
"""
from __future__ import annotations

from typing import Optional

from lsnn.contract.chip import ACT_SHIFT, BIAS_MANT_MAX, V_MAX

Piece = tuple[int, int, int]          # (index of the incoming group, first channel, end channel)


def plan_parts(sources: list[tuple[int, int]], limit: int) -> Optional[list[list[Piece]]]:
    """Greedy packing of source channels into parts of at most `limit` source neurons.

    `sources[i] = (channels, positions)` of incoming group i; a part is a list of pieces
    (group, c0, c1) in source order. None if one channel alone exceeds `limit`."""
    parts: list[list[Piece]] = [[]]
    used = 0
    for i, (channels, positions) in enumerate(sources):
        if positions > limit:
            return None
        c = 0
        while c < channels:
            room = (limit - used) // positions
            if room == 0:
                parts.append([])
                used = 0
                continue
            take = min(room, channels - c)
            parts[-1].append((i, c, c + take))
            used += take * positions
            c += take
    return [p for p in parts if p]


def readout_partition(sources: list[tuple[int, int]], limit: Optional[int]) -> Optional[list[list[Piece]]]:
    """The parts `split_readout` cuts a readout with these sources [(channels, positions)] into
    when a part may read `limit` source neurons (`part_limit`); None when it leaves the readout
    whole (no limit, the sources fit, or one channel alone is too wide). The lava-mode retrain
    models the same parts."""
    if limit is None or sum(c * p for c, p in sources) <= limit:
        return None
    return plan_parts(sources, limit)


def saturation_free_inputs(T: int, w_max: int) -> int:
    """Most source neurons one part may read so that its potential cannot reach the clip in T
    steps even with every input spiking at every step at weight `w_max` and the largest bias:
    `T * ((n * w_max + 4096) << 6) <= 2^23 - 1`."""
    return max(0, (V_MAX // (int(T) << ACT_SHIFT) - (BIAS_MANT_MAX + 1)) // max(1, int(w_max)))


def part_limit(axons: Optional[int], T: int, w_max: int, positions: int) -> int:
    """Source neurons per readout part: the saturation-free fan-in (at least one whole channel of
    `positions` neurons, the largest source's), and at most a core's `axons` (None: no limit)."""
    safe = max(saturation_free_inputs(T, w_max), int(positions))
    return safe if axons is None else min(int(axons), safe)
