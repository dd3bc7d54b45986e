"""Measured synaptic work of a run, next to what the search's cost model predicts for it.

Measured (exact, from the emulator's per-neuron spike counts, identical to Lava's):
  for each synapse group, the non-zero fan-out of every source neuron is computed once
  (`fanout_map`: kernel taps that land inside the destination, stride, mask and zero weights
  all accounted for); SynOps = sum over source neurons of (spikes it sent) x (its fan-out).
  For the input, an "event" is a non-zero graded value (a zero payload is not sent).

Predicted (LitE-SNN Eq. 12 through `lsnn.cost_model`, with the measured mean rate of
the group's source): (1 - p) * kh * kw * Cin * Cout * H_out * W_out * S, S = rate * T; p is the
nominal pruning rate of the group's mask. Skip (identity) edges cost nothing in the search's
model; here their measured work is shown, predicted as C * H_out * W_out * S (one synapse per
neuron) and flagged. The stem reads graded input: the cost model counts its work as
multiplications with every value sent every step (rate 1).

The gap measured / predicted is split into two factors:
  geometry = (SynOps with every weight kept) / (Eq. 12 without (1 - p)): padding taps that hit
             nothing at the borders, stride (positions read by fewer/more taps), and where the
             spikes fall; 1 for the dense readout.
  pruning  = (measured / SynOps with every weight kept) / (1 - p): actual vs nominal density of
             the weights that the spikes actually use.
NumPy only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from lsnn import cost_model as cm
from lsnn.compiler.ir import INPUT_NAME, Graph, SynapseGroup
from lsnn.runtime.netgraph import effective_weight, input_is_graded


def fanout_map(graph: Graph, s: SynapseGroup, *, all_kept: bool = False) -> np.ndarray:
    """Non-zero synapses out of each source neuron of group `s`: int64 [C_src, H_src, W_src].

    With `all_kept` every weight counts as non-zero (the group's geometry alone).
    """
    cs, hs, ws = graph.shape_of(s.src)
    _, hd, wd = graph.shape_of(s.dst)
    w = effective_weight(s)
    if s.kind == "identity":
        fan = np.zeros((cs, hs, ws), dtype=np.int64)
        if all_kept or int(w) != 0:
            fan[:, :s.stride * (hd - 1) + 1:s.stride, :s.stride * (wd - 1) + 1:s.stride] = 1
        return fan
    nz = np.ones(w.shape, dtype=bool) if all_kept else (w != 0)
    if s.kind == "dense":
        return nz.sum(axis=0).astype(np.int64).reshape(cs, hs, ws)
    o, ci, kh, kw = w.shape
    per_tap = nz.sum(axis=0).astype(np.int64)                    # [Ci, kh, kw]: outputs per tap
    fan = np.zeros((cs, hs, ws), dtype=np.int64)
    st, p = s.stride, s.padding
    for i in range(kh):
        ys = np.arange(hd) * st - p + i
        ys = ys[(ys >= 0) & (ys < hs)]
        for j in range(kw):
            xs = np.arange(wd) * st - p + j
            xs = xs[(xs >= 0) & (xs < ws)]
            if ys.size and xs.size:
                fan[:, ys[:, None], xs[None, :]] += per_tap[:, i, j][:, None, None]
    return fan


def nominal_prune(s: SynapseGroup) -> float:
    """The pruning rate the mask stands for (1 - kept fraction); 0 without a mask."""
    if s.mask is None or s.kind == "identity":
        return 0.0
    return 1.0 - float(np.mean(s.mask))


def actual_density(s: SynapseGroup) -> float:
    """Fraction of kernel entries that are non-zero (the weights that cost a synaptic op)."""
    w = effective_weight(s)
    return 1.0 if s.kind == "identity" and int(w) != 0 else float(np.count_nonzero(w)) / max(1, w.size)


@dataclass
class GroupCount:
    """One synapse group: measured and predicted work, per sample (averaged over the run)."""

    name: str
    kind: str
    src: str
    dst: str
    bits: Optional[int]
    weight_bits: int
    spike_bits: int
    src_rate: float                  # spikes (or events) per source neuron per step
    nominal_prune: float
    actual_density: float
    synapses: int                    # sum of the fan-out map: stored (pre, post) pairs in use
    macs_per_step: float             # dense MACs of one step (Eq. 12 without rate and pruning)
    measured_synops: float
    predicted_synops: float
    measured_bit_synops: float       # x searched bits (hardware bits if none were searched)
    measured_bit_synops_hw: float    # x hardware weight bits
    geometry_factor: float
    pruning_factor: float
    in_search_model: bool            # False for skip edges (free in Eq. 12)
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured_synops / self.predicted_synops if self.predicted_synops else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


@dataclass
class CountReport:
    """Whole-run counts, per sample. `spike_rates[pop]`: spikes per neuron per step;
    `spike_rates_per_step[pop]`: the same for each step t = 1..T."""

    num_samples: int
    T: int
    groups: list[GroupCount]
    spike_rates: dict[str, float]
    spike_rates_per_step: dict[str, list[float]]
    spikes_per_sample: float
    neuron_updates_per_sample: float
    totals: dict[str, float] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "T": self.T,
                "groups": [g.to_dict() for g in self.groups], "spike_rates": self.spike_rates,
                "spike_rates_per_step": self.spike_rates_per_step,
                "spikes_per_sample": self.spikes_per_sample,
                "neuron_updates_per_sample": self.neuron_updates_per_sample,
                "totals": self.totals, "energy": self.energy}


def _explain(g: GroupCount) -> str:
    parts = []
    if not g.in_search_model:
        parts.append("skip edge: free in the search's Eq. 12, real synaptic work on chip")
    if g.kind == "conv" or g.kind == "identity":
        if abs(g.geometry_factor - 1) > 0.005:
            parts.append(f"geometry x{g.geometry_factor:.3f} (padding taps at the borders, stride "
                         "and the spatial spread of the spikes)")
    if abs(g.pruning_factor - 1) > 0.005 and g.kind != "identity":
        parts.append(f"pruning x{g.pruning_factor:.3f} (kept weights the actual spikes reach vs the nominal "
                     f"1 - p = {1 - g.nominal_prune:.3f}; non-zero density {g.actual_density:.3f})")
    if g.src == INPUT_NAME:
        parts.append("graded input: only non-zero values are sent")
    return "; ".join(parts) or "as predicted"


def _group_count(graph: Graph, s: SynapseGroup, maps: dict[str, np.ndarray], rates: dict[str, float], n: int,
                 in_bits: int) -> GroupCount:
    """Measured vs predicted work of one synapse group (per sample)."""
    s = graph.unsplit(s)                 # a readout in parts counts as the one readout it is
    T = graph.T
    src_c, src_h, src_w = graph.shape_of(s.src)
    _, hd, wd = graph.shape_of(s.dst)
    fan = fanout_map(graph, s)
    fan_all = fanout_map(graph, s, all_kept=True)
    spk = maps[s.src]
    measured = float((spk * fan).sum()) / n
    geometric = float((spk * fan_all).sum()) / n
    p_nom = nominal_prune(s)
    spikes = rates[s.src] * T                               # Eq. 14 count per source neuron
    if s.kind == "conv":
        cout, _, kh, kw = s.weight.shape
        macs = float(cm.macs(kh, kw, src_c, cout, hd, wd))
        predicted = float(cm.synops(kh, kw, src_c, cout, hd, wd, spikes, p_nom))
    elif s.kind == "dense":
        cout = s.weight.shape[0]
        macs = float(cm.macs(1, 1, src_c, cout, 1, 1, pool=src_h * src_w))
        predicted = float(cm.synops(1, 1, src_c, cout, 1, 1, spikes, p_nom, pool=src_h * src_w))
    else:
        macs = float(src_c * hd * wd)
        predicted = macs * spikes
    dense_eq12 = predicted / (1.0 - p_nom) if p_nom < 1 else 0.0
    geometry = geometric / dense_eq12 if dense_eq12 else float("nan")
    pruning = (measured / geometric) / (1.0 - p_nom) if geometric and p_nom < 1 else float("nan")
    bits_searched = s.bits if s.bits is not None else s.weight_bits
    sb = in_bits if s.src == INPUT_NAME else 1
    g = GroupCount(name=s.name, kind=s.kind, src=s.src, dst=s.dst, bits=s.bits, weight_bits=s.weight_bits,
                   spike_bits=sb, src_rate=rates[s.src], nominal_prune=p_nom, actual_density=actual_density(s),
                   synapses=int(fan.sum()), macs_per_step=macs, measured_synops=measured,
                   predicted_synops=predicted, measured_bit_synops=measured * bits_searched,
                   measured_bit_synops_hw=measured * s.weight_bits, geometry_factor=geometry,
                   pruning_factor=pruning, in_search_model=s.kind != "identity")
    g.note = _explain(g)
    return g


def _totals(groups: list[GroupCount], T: int) -> dict[str, float]:
    """Per-sample totals: SynOps (search edges vs the prediction, skips, input events), Bit-SynOps,
    S-ACE (bit operations on event-driven hardware) and NS-ACE (on dense hardware)."""
    spiking = [g for g in groups if g.src != INPUT_NAME]
    stem = [g for g in groups if g.src == INPUT_NAME]
    model = [g for g in spiking if g.in_search_model]
    tot: dict[str, float] = {}
    tot["measured_synops"] = sum(g.measured_synops for g in spiking)
    tot["measured_synops_search_edges"] = sum(g.measured_synops for g in model)
    tot["predicted_synops"] = sum(g.predicted_synops for g in model)
    tot["ratio"] = (tot["measured_synops_search_edges"] / tot["predicted_synops"]
                    if tot["predicted_synops"] else float("nan"))
    tot["measured_skip_synops"] = sum(g.measured_synops for g in spiking if not g.in_search_model)
    tot["measured_input_events_synops"] = sum(g.measured_synops for g in stem)
    tot["predicted_stem_mults"] = sum(g.macs_per_step * T * (1 - g.nominal_prune) for g in stem)
    tot["measured_bit_synops"] = sum(g.measured_bit_synops for g in spiking)
    tot["predicted_bit_synops"] = sum(g.predicted_synops * (g.bits or g.weight_bits) for g in model)
    tot["measured_bit_synops_hw"] = sum(g.measured_bit_synops_hw for g in spiking)
    tot["measured_s_ace"] = sum(g.measured_synops * (g.bits or g.weight_bits) * g.spike_bits for g in groups)
    tot["predicted_s_ace"] = float(sum(cm.s_ace(g.macs_per_step, T, 1.0 if g.src == INPUT_NAME else g.src_rate,
                                                g.bits or g.weight_bits, g.spike_bits, g.nominal_prune)
                                       for g in groups if g.in_search_model))
    tot["ns_ace"] = float(sum(cm.ns_ace(g.macs_per_step, T, g.bits or g.weight_bits, g.spike_bits) for g in groups))
    return tot


def _energy(tot: dict[str, float], neuron_updates: float, total_spikes: float, profile: Any) -> dict[str, Any]:
    """Energy per sample: the paper's method (Table 5) and, with a profile, its per-op figures."""
    energy: dict[str, Any] = {
        "paper_measured_j": float(cm.energy_paper(tot["measured_synops"], tot["measured_input_events_synops"])),
        "paper_predicted_j": float(cm.energy_paper(tot["predicted_synops"], tot["predicted_stem_mults"])),
        "paper_method": "Table 5: 0.9 pJ per add (SynOp), 3.7 pJ per multiply (stem)",
    }
    if profile is None:
        return energy
    syn_all = tot["measured_synops"] + tot["measured_input_events_synops"]
    pj = float(cm.energy_hw(syn_all, neuron_updates, total_spikes, profile.energy_synop_pj,
                            profile.energy_neuron_update_pj, profile.energy_spike_pj))
    pj_pred = float(cm.energy_hw(tot["predicted_synops"] + tot["predicted_stem_mults"], neuron_updates,
                                 total_spikes, profile.energy_synop_pj, profile.energy_neuron_update_pj,
                                 profile.energy_spike_pj))
    energy.update({
        "profile": profile.name, "profile_source": getattr(profile, "source", ""),
        "synop_pj": profile.energy_synop_pj, "neuron_update_pj": profile.energy_neuron_update_pj,
        "spike_pj": profile.energy_spike_pj,
        "measured_pj": pj, "predicted_pj": pj_pred,
        "measured_breakdown_pj": {"synops": syn_all * profile.energy_synop_pj,
                                  "neuron_updates": neuron_updates * profile.energy_neuron_update_pj,
                                  "spikes": total_spikes * profile.energy_spike_pj},
    })
    return energy


def count(graph: Graph, result: Any, profile: Any = None) -> CountReport:
    """Measured vs predicted work of an emulator result (`EmulatorResult`) on `graph`.

    `profile` (a hardware `Profile`) adds energy from its per-op figures.
    """
    n = max(1, result.num_samples)
    T = graph.T
    in_bits = graph.input.bits if input_is_graded(graph) else 1
    sizes = {p.name: p.size for p in graph.populations}
    c0, h0, w0 = graph.input.shape
    sizes[INPUT_NAME] = c0 * h0 * w0
    maps = dict(result.spike_maps)
    maps[INPUT_NAME] = result.input_events
    rates = {name: float(maps[name].sum()) / (n * T * sizes[name]) for name in maps}
    groups = [_group_count(graph, s, maps, rates, n, in_bits) for s in graph.synapses]
    tot = _totals(groups, T)
    total_spikes = float(sum(result.spike_counts[p.name].sum() for p in graph.populations)) / n
    neuron_updates = float(sum(p.size for p in graph.populations) * T)
    rates_pop = {p.name: rates[p.name] for p in graph.populations}
    per_step = {p.name: (result.spike_counts[p.name] / (n * p.size)).tolist() for p in graph.populations}
    return CountReport(num_samples=result.num_samples, T=T, groups=groups, spike_rates=rates_pop,
                       spike_rates_per_step=per_step, spikes_per_sample=total_spikes,
                       neuron_updates_per_sample=neuron_updates, totals=tot,
                       energy=_energy(tot, neuron_updates, total_spikes, profile))
