"""The compile report: model.report.json and the table `lsnn compile` prints.

Per synapse group ("layer"): kind, src -> dst, destination shape, searched / hardware bits,
exponent, sign mode, encoding, sparsity, kept kernel entries, expanded synapses, synaptic
memory bits, delay, and the cores of its destination population. Per population: shape,
neurons, depth, cores. Totals: cores, chips, neurons, synapses, synaptic memory, model size
(kept kernel entries x hardware bits / 8: what model.net stores per weight; the paper's MEM
uses searched bits and is reported beside it), latency and T. `predicted` copies the
artifact's cost-model metrics (SynOps, Bit-SynOps, energy, accuracy) when present, and
`energy_estimate` prices the artifact's SynOps and spike rates with the target's energies.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from lsnn.compiler.ir import Graph
from lsnn.compiler.passes.split_readout import readout_part_limit, readout_sources
from lsnn.contract.chip import ACC_LIMIT, ACT_SHIFT, V_MAX
from lsnn.contract.readout import readout_partition
from lsnn.hw_profiles.profile import Profile

REPORT_FORMAT = "lsnn.compile_report"
REPORT_VERSION = 1
PREDICTED_KEYS = ("synops", "bit_synops", "energy_pj", "model_size_bytes", "test_accuracy", "test_accuracy_int")


def _energy_estimate(graph: Graph, profile: Profile, metrics: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """Per-sample energy on the target from the artifact's SynOps and spike rates, if it has them."""
    synops = metrics.get("synops")
    if not isinstance(synops, (int, float)):
        return None
    neurons = sum(p.size for p in graph.populations)
    updates = neurons * graph.T
    rates = metrics.get("spike_rates")
    rates = rates if isinstance(rates, Mapping) else {}
    spikes = sum(float(rates[p.name]) * p.size * graph.T for p in graph.populations
                 if isinstance(rates.get(p.name), (int, float)))
    e_syn = float(synops) * profile.energy_synop_pj
    e_neu = updates * profile.energy_neuron_update_pj
    e_spk = spikes * profile.energy_spike_pj
    return {"formula": "synops * E_synop + neurons * T * E_neuron + spikes * E_spike (per sample)",
            "synops": float(synops), "neuron_updates": updates, "spikes": spikes,
            "synaptic_pj": e_syn, "neuron_pj": e_neu, "spike_pj": e_spk, "total_pj": e_syn + e_neu + e_spk}


def readout_headroom(graph: Graph) -> Optional[dict[str, Any]]:
    """Worst case of the readout's potential (every input spiking at every step): the largest
    per-step input sum_f |w| into one readout neuron, and T * (64 * that + |bias|), against the
    chip's 24-bit clip. Past it, saturated classes tie and the prediction can differ from an
    unclipped float readout; models retrained with lif_mode "lava" include the clip. None before
    the integer stage."""
    if graph.stage != "integer":
        return None
    ro = graph.population(graph.readout)
    per = np.zeros(ro.shape[0], dtype=np.int64)
    for s in graph.synapses:
        if s.dst != ro.name:
            continue
        w = np.abs(np.asarray(s.weight).astype(np.int64))
        if s.mask is not None:
            w = np.where(s.mask, w, 0)
        if s.kind == "identity":
            rows = np.full(graph.shape_of(s.src)[0], int(w))
        else:
            rows = w.reshape(w.shape[0], -1).sum(axis=1)
        per[s.dst_channel_offset:s.dst_channel_offset + len(rows)] += rows
    bias = np.abs(np.asarray(ro.bias_mant).astype(np.int64))
    bias = bias << ro.bias_exp if ro.bias_exp >= 0 else bias >> -ro.bias_exp
    worst = graph.T * ((per << ACT_SHIFT) + bias)
    return {"max_input_per_step": int(per.max()), "worst_case_potential": int(worst.max()), "clip": V_MAX,
            "may_saturate": bool(worst.max() > V_MAX), "current_may_wrap": bool(int(per.max()) >= ACC_LIMIT),
            "neurons_that_may_saturate": int((worst > V_MAX).sum())}


def readout_parts_info(graph: Graph, profile: Profile) -> dict[str, Any]:
    """How the readout was split (split_readout) and whether training modelled the same split:
    a lava-mode artifact records the input-axon limit its readout was trained for."""
    train = graph.meta.get("train") if isinstance(graph.meta, Mapping) else None
    trained = train.get("readout_axon_limit") if isinstance(train, Mapping) else None
    limit = profile.input_axons_per_core
    lif_mode = train.get("lif_mode") if isinstance(train, Mapping) else None
    same = None
    if lif_mode == "lava":     # the parts training modelled vs the parts this target gets
        sources = readout_sources(graph)
        same = (readout_partition(sources, readout_part_limit(graph, trained))
                == readout_partition(sources, readout_part_limit(graph, limit)))
    return {"parts": graph.readout_parts, "classes": graph.num_classes, "input_axons_per_core": limit,
            "part_limit": readout_part_limit(graph, limit),
            "trained_axon_limit": trained, "matches_training": same}


def build_report(graph: Graph, profile: Profile, timings: Optional[Mapping[str, float]] = None,
                 net_path: Optional[str] = None) -> dict[str, Any]:
    """The report dict of a placed graph (JSON-serialisable)."""
    pl = graph.placement
    cores_of = {p.name: (pl.cores_of(i) if pl is not None else None) for i, p in enumerate(graph.populations)}
    layers = []
    for s in graph.synapses:
        st = s.stats
        layers.append({
            "name": s.name, "type": s.kind, "src": s.src, "dst": s.dst, "shape": list(graph.shape_of(s.dst)),
            "searched_bits": s.bits, "hardware_bits": s.weight_bits, "exponent": s.weight_exp,
            "sign_mode": s.sign_mode, "encoding": st.encoding if st else None,
            "sparsity": round(st.sparsity, 6) if st else None, "nnz": st.nnz if st else None,
            "synapses": st.synapses if st else None, "memory_bits": st.memory_bits if st else None,
            "delay": s.delay, "cores": cores_of[s.dst],
        })
    pops = [{"name": p.name, "kind": p.kind, "shape": list(p.shape), "neurons": p.size, "depth": p.depth,
             "cores": cores_of[p.name], "vth_mant": p.vth_mant,
             "bias_mant_range": [int(p.bias_mant.min()), int(p.bias_mant.max())]} for p in graph.populations]
    size_bits = sum(s.stats.nnz * s.weight_bits for s in graph.synapses if s.stats)
    mem_bits = sum(s.stats.nnz * (s.bits if s.bits is not None else s.weight_bits) for s in graph.synapses if s.stats)
    totals = {
        "cores": pl.total_cores if pl else None, "chips": pl.chips if pl else None,
        "neurons": sum(p.size for p in graph.populations),
        "synapses": sum(s.stats.synapses for s in graph.synapses if s.stats),
        "synaptic_memory_bits": sum(s.stats.memory_bits for s in graph.synapses if s.stats),
        "model_size_bytes": size_bits / 8, "model_size_bytes_searched_bits": mem_bits / 8,
        "latency_steps": graph.latency, "T": graph.T, "steps_per_sample": graph.T + graph.latency,
    }
    metrics = graph.meta.get("metrics") or {}
    predicted = {k: metrics[k] for k in PREDICTED_KEYS if k in metrics}
    report: dict[str, Any] = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION,
        "model": graph.meta.get("source"), "net": net_path,
        "target": {"name": profile.name, "source": profile.source, "cores_per_chip": profile.cores_per_chip,
                   "max_chips": profile.max_chips},
        "input": graph.input.to_dict(), "readout": graph.readout,
        "layers": layers, "populations": pops, "totals": totals,
        "predicted": predicted or None,
        "energy_estimate": _energy_estimate(graph, profile, metrics),
        "readout_headroom": readout_headroom(graph),
        "readout_parts": readout_parts_info(graph, profile),
    }
    if pl is not None:
        report["per_core_max"] = {"neurons": int(pl.core_neurons.max()), "memory_bits": int(pl.core_memory_bits.max()),
                                  "input_axons": int(pl.core_input_axons.max()),
                                  "output_axons": int(pl.core_output_axons.max())}
    if timings is not None:
        report["timings_s"] = {k: round(float(v), 4) for k, v in timings.items()}
    return report


def format_table(report: Mapping[str, Any]) -> str:
    """A fixed-width table of the report's layers and totals (what the CLI prints)."""
    head = ("layer", "type", "shape", "bits s/hw", "exp", "sign", "enc", "sparsity", "synapses", "mem KiB",
            "delay", "cores")
    rows = []
    for L in report["layers"]:
        sb = "-" if L["searched_bits"] is None else str(L["searched_bits"])
        rows.append((L["name"], L["type"], "x".join(str(x) for x in L["shape"]), f"{sb}/{L['hardware_bits']}",
                     str(L["exponent"]), L["sign_mode"][:3], (L["encoding"] or "-")[:3],
                     "-" if L["sparsity"] is None else f"{100 * L['sparsity']:.1f}%",
                     "-" if L["synapses"] is None else f"{L['synapses']:,}",
                     "-" if L["memory_bits"] is None else f"{L['memory_bits'] / 8192:.1f}",
                     str(L["delay"]), "-" if L["cores"] is None else str(L["cores"])))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    left = {0, 1, 5, 6}

    def fmt(r: tuple) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    t = report["totals"]
    tgt = report["target"]
    lines.append("")
    lines.append(f"target {tgt['name']}: {t['cores']} cores on {t['chips']} chip(s) "
                 f"(max {tgt['max_chips']} x {tgt['cores_per_chip']}); {t['neurons']:,} neurons, "
                 f"{t['synapses']:,} synapses, {t['synaptic_memory_bits'] / 8192:.1f} KiB synaptic memory")
    lines.append(f"model size {t['model_size_bytes']:,.0f} B at hardware bits "
                 f"({t['model_size_bytes_searched_bits']:,.0f} B at searched bits); "
                 f"T = {t['T']}, latency {t['latency_steps']} steps, {t['steps_per_sample']} steps per sample")
    pred = report.get("predicted")
    if pred:
        lines.append("predicted (artifact): " + ", ".join(f"{k} {v:,.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                                          for k, v in pred.items() if v is not None))
    parts = report.get("readout_parts")
    if parts and parts["parts"] > 1:
        why = ("a core's input axons" if parts["part_limit"] == parts["input_axons_per_core"]
               else "so that no part can saturate")
        lines.append(f"readout split into {parts['parts']} parts of {parts['classes']} classes (at most "
                     f"{parts['part_limit']:,} inputs each, {why}); the host adds them before the argmax")
    if parts and parts.get("matches_training") is False:
        trained = ("unsplit" if parts["trained_axon_limit"] is None
                   else f"for cores of {parts['trained_axon_limit']} input axons")
        lines.append(f"note: the model's readout was trained {trained}, this target has "
                     f"{parts['input_axons_per_core']}: where a part saturates, predictions can differ from the "
                     "trained model's")
    head = report.get("readout_headroom")
    if head and head["may_saturate"]:
        wrap = "; its per-step current can even wrap" if head["current_may_wrap"] else ""
        lines.append(f"note: readout worst case {head['worst_case_potential']:,} exceeds the chip's 24-bit clip "
                     f"({head['clip']:,}) for {head['neurons_that_may_saturate']} readout neurons{wrap}: dense inputs "
                     f"saturate it (retraining with lif_mode 'lava' includes the clip)")
    est = report.get("energy_estimate")
    if est:
        lines.append(f"energy on {tgt['name']} (per sample, from the artifact's SynOps and rates): "
                     f"{est['total_pj'] / 1e6:,.3f} uJ")
    return "\n".join(lines)
