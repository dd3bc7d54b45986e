"""Where a readout too wide for one core is cut into parts: the compiler's `split_readout` pass
cuts it there, and the lava-mode retraining models the same parts, so both read this one plan.

A pooled readout gives each class neuron all C * H * W source neurons as inputs. A part is a
copy of the K class neurons reading a run of whole source channels of at most `limit` source
neurons (a core's input axons); the host adds the parts' potentials per class before the argmax.
"""
from __future__ import annotations

from typing import Optional

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
    for cores of `limit` input axons; None when it leaves the readout whole (no limit, the
    sources fit, or one channel alone is too wide). The lava-mode retrain models the same parts."""
    if limit is None or sum(c * p for c, p in sources) <= limit:
        return None
    return plan_parts(sources, limit)
