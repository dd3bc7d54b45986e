"""The search's cost model applied to a deployable model.pt: per-layer rows and totals.

Torch-free (works on the tensors of a loaded artifact through NumPy), so `lsnn compile` and
`lsnn run` can print the numbers the search optimised. Skip (identity) groups are not in the
paper's cost (Eq. 12, 18 count convolutions), so they are left out here; `lsnn run` counts
them among the operations that really happen and reports the difference.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from lsnn.contract.artifact import INPUT_NAME
from lsnn.cost_model import LayerCost, format_table, totals
from lsnn.io import to_numpy


def artifact_layers(artifact: Mapping[str, Any], spike_rates: Mapping[str, float]) -> list[LayerCost]:
    """One LayerCost per conv / dense synapse group; in_rate = firing rate of the source population
    (spikes per neuron per step); the stem reads the graded input every step (in_rate 1)."""
    pops = {p["name"]: p for p in artifact["populations"]}
    in_bits = int(artifact["input_encoding"]["bits"])
    rows: list[LayerCost] = []
    for s in artifact["synapses"]:
        kind = s["kind"]
        if kind == "identity":
            continue
        w = to_numpy(s["weight"])
        mask = s.get("mask")
        kept = float(np.mean(to_numpy(mask))) if mask is not None else float(np.mean(w != 0))
        prune = min(max(1.0 - kept, 0.0), 0.999999)
        dst = pops[s["dst"]]
        bits = float(s["bits"]) if s.get("bits") is not None else 8.0
        if kind == "conv":
            cout, cin, kh, kw = (int(v) for v in w.shape)
            from_input = s["src"] == INPUT_NAME
            rows.append(LayerCost(
                name=s["name"], kind="stem" if from_input else "conv", kh=kh, kw=kw, cin=cin, cout=cout,
                h_out=int(dst["shape"][1]), w_out=int(dst["shape"][2]), bits=bits, prune=prune,
                in_rate=1.0 if from_input else float(spike_rates.get(s["src"], 0.0)),
                in_bits=in_bits if from_input else 1))
        else:  # dense readout: global pool + FC, weights repeated over the source positions
            src = pops[s["src"]]
            c, h, wd = (int(v) for v in src["shape"])
            rows.append(LayerCost(
                name=s["name"], kind="fc", kh=1, kw=1, cin=c, cout=int(w.shape[0]), h_out=1, w_out=1,
                bits=bits, prune=prune, in_rate=float(spike_rates.get(s["src"], 0.0)), pool=h * wd))
    return rows


def artifact_cost(artifact: Mapping[str, Any], spike_rates: Mapping[str, float] | None = None) -> dict[str, float]:
    """Totals of the cost model for the artifact (rates default to those recorded in its metrics)."""
    rates = spike_rates if spike_rates is not None else (artifact.get("metrics", {}) or {}).get("spike_rates", {})
    t = totals(artifact_layers(artifact, rates or {}), float(artifact["T"]))
    d = t.to_dict()
    d["energy_pj"] = d["energy_j"] * 1e12
    return d


def artifact_cost_table(artifact: Mapping[str, Any], spike_rates: Mapping[str, float] | None = None) -> str:
    """The cost model's per-layer table for the artifact."""
    rates = spike_rates if spike_rates is not None else (artifact.get("metrics", {}) or {}).get("spike_rates", {})
    return format_table(artifact_layers(artifact, rates or {}), float(artifact["T"]))
