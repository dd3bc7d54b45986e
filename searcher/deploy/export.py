"""DeployNet -> the `model.pt` artifact dict of docs/ARTIFACT.md, and random artifacts for tests.

`export_artifact` writes exactly the tensors `DeployNet.deploy_tensors()` returns (the ones its
eval forward uses), lowered to the flat population / synapse-group graph of docs/SEMANTICS.md:

- populations in topological order: `stem`, per cell `cellK.pre0`, `cellK.pre1` (only those a
  node reads), `cellK.node0..3`, then `readout`;
- one synapse group per conv edge (`cellK.nodeJ.edgeE`), per skip edge (kind `identity`, one
  integer `n_P`), per preprocessing conv source (`cellK.preI.from_<src>`) and per readout
  source (`readout.from_<src>`, kind `dense`, the FC columns of that source repeated over its
  H*W positions, C-major). A consumer of a cell output (a channel concat) gets one group per
  node population: the *input*-channel slice of its weight; `dst_channel_offset` is 0;
- `weight = scale * w_int` (float32; |w_int| <= 255, so `weight / scale` is integral to ~1e-5),
  `bias = scale * bias_int` and `vth = scale * vth_int` in float64 (bias_int can reach ~1e5
  for the stem, where float32 could not keep `bias / scale` integral to the 1e-4 the contract
  asks), `delta = 2 * scale` (the grid step of the exported weights).

`random_artifact(genotype, seed)` builds a DeployNet with random weights, masks, BN statistics,
biases and thresholds calibrated on a random input so every population fires at a random
target rate in `rate_range` (default 5-30 %), and exports it; tiny shapes take well under 1 s.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from lsnn import __version__
from lsnn.contract.artifact import ARTIFACT_FORMAT, ARTIFACT_VERSION, validate_artifact
from lsnn.contract.chip import DEFAULT_DU, dv_for_tau
from lsnn.errors import ConfigError
from lsnn.searcher.deploy.layers import INPUT, Population
from lsnn.searcher.deploy.net import DeployNet
from lsnn.searcher.neuron import DSPIKE_TEMPERATURE, lava_lif
from lsnn.searcher.space.genotype import Genotype


def _lava_dl_version() -> str:
    try:
        from importlib.metadata import version

        return version("lava-dl")
    except Exception:  # not installed: the version the project pins
        return "0.6.0"


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).cpu().contiguous()


def _dataset_entry(net: DeployNet, dataset_info: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The artifact's "dataset" entry (defaults from the net), checked against the net."""
    K = net.num_classes
    ds = {"name": "unknown", "num_classes": K, "input_shape": list(net.input_shape),
          "classes": [str(i) for i in range(K)]}
    if dataset_info:
        ds.update(dataset_info)
    ds["input_shape"] = [int(v) for v in ds["input_shape"]]
    if int(ds["num_classes"]) != K or tuple(ds["input_shape"]) != tuple(net.input_shape):
        raise ConfigError(f"dataset_info (num_classes {ds['num_classes']}, input_shape {ds['input_shape']}) does "
                          f"not match the network ({K}, {list(net.input_shape)})")
    if len(ds["classes"]) != K:
        raise ConfigError(f"dataset_info has {len(ds['classes'])} class names for {K} classes")
    return ds


def _population_entries(dt: dict[str, Any]) -> list[dict[str, Any]]:
    """One artifact entry per population: biases and thresholds back in trained units (int * scale)."""
    pops: list[dict[str, Any]] = []
    for p in dt["populations"]:
        scale = float(p["scale"])
        bias = p["bias_int"].detach().double().cpu() * scale
        pops.append({"name": p["name"], "kind": p["kind"], "shape": [int(v) for v in p["shape"]], "scale": scale,
                     "vth": None if p["vth_int"] is None else float(p["vth_int"]) * scale,
                     "bias": bias.contiguous(), "tau": float(p["tau"])})
    return pops


def _synapse_entries(dt: dict[str, Any]) -> list[dict[str, Any]]:
    """One artifact entry per synapse group; a group reading a channel concat becomes one entry
    per source population, and the pooled FC a dense group repeated over the pooled positions."""
    channels = {p["name"]: int(p["shape"][0]) for p in dt["populations"]}
    syns: list[dict[str, Any]] = []
    for g in dt["groups"]:
        scale = float(g["scale"])
        dst = g["dst"]
        if g["kind"] == "identity":
            syns.append({"name": g["name"], "kind": "identity", "src": g["srcs"][0], "dst": dst,
                         "weight": torch.tensor(float(g["n"]) * scale, dtype=torch.float32), "mask": None,
                         "stride": int(g["stride"]), "padding": 0, "dst_channel_offset": 0, "bits": None,
                         "delta": None, "scale": scale})
            continue
        w_int = g["w_int"].detach().double().cpu()
        mask = None if g["mask"] is None else g["mask"].detach().cpu().bool()
        off = 0
        for src, c in zip(g["srcs"], g["src_channels"]):
            wi = w_int[:, off:off + c]
            mi = None if mask is None else mask[:, off:off + c].contiguous()
            if g["kind"] == "fc":
                hw = int(g["hw"][0]) * int(g["hw"][1])
                if channels.get(src, c) != c:
                    raise ConfigError(f"readout source '{src}' has {channels[src]} channels, expected {c}")
                wi = torch.repeat_interleave(wi, hw, dim=1)      # column c*HW + p = FC column c (C-major)
                kind, name, stride, padding = "dense", f"{dst}.from_{src}", 1, 0
            else:
                kind = "conv"
                # a reader of a cell output (preprocessing conv): one group per source population
                name = f"{dst}.from_{src}" if g.get("reads_cell_output") else g["name"]
                stride, padding = int(g["stride"]), int(g["padding"])
            syns.append({"name": name, "kind": kind, "src": src, "dst": dst, "weight": _f32(wi * scale),
                         "mask": mi, "stride": stride, "padding": padding, "dst_channel_offset": 0,
                         "bits": int(g["bits"]), "delta": 2.0 * scale, "scale": scale})
            off += c
    return syns


def export_artifact(net: DeployNet, genotype: Optional[Genotype] = None, dataset_info: Optional[dict[str, Any]] = None,
                    metrics: Optional[dict[str, Any]] = None, train_info: Optional[dict[str, Any]] = None,
                    validate: bool = True) -> dict[str, Any]:
    """The model.pt dict of docs/ARTIFACT.md for `net` (in its current state; its mode is not changed).

    dataset_info: name, num_classes, input_shape, classes (defaults from the genotype).
    metrics: any of test_accuracy, test_accuracy_int, model_size_bytes, synops, bit_synops,
        energy_pj, spike_rates; keys not given are None (spike_rates: {}), to be filled later.
    train_info: seed, epochs, batch_size, preset, l1, l2, p, ... (extra keys are kept).
    """
    genotype = net.genotype if genotype is None else genotype
    dt = net.deploy_tensors()
    ds = _dataset_entry(net, dataset_info)
    cin = net.input_shape[0]
    m = {"test_accuracy": None, "test_accuracy_int": None, "model_size_bytes": None, "synops": None,
         "bit_synops": None, "energy_pj": None, "spike_rates": {}}
    if metrics:
        m.update(metrics)
    m["spike_rates"] = {str(k): float(v) for k, v in (m.get("spike_rates") or {}).items()}
    tr = {"seed": None, "epochs": None, "batch_size": None, "preset": None, "l1": None, "l2": None,
          "p": float(genotype.prune_rate), "lava_dl": _lava_dl_version(), "torch": torch.__version__.split("+")[0],
          "lif_mode": net.lif_mode, "readout_axon_limit": getattr(net.readout, "axon_limit", None)}
    if train_info:
        tr.update(train_info)
    art = {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "created_by": f"lsnn {__version__}",
        "dataset": ds,
        "input_encoding": {"kind": "graded", "bits": int(net.in_bits), "offset": [0.0] * cin, "span": [1.0] * cin},
        "T": int(net.T),
        "neuron": {"model": "lif", "tau": float(net.tau), "v_reset": 0.0, "surrogate": "dspike",
                   "temperature": float(DSPIKE_TEMPERATURE), "du": DEFAULT_DU,
                   "dv": dv_for_tau(net.tau)},
        "genotype": genotype.to_dict(),
        "backbone": {"C": int(net.C), "cells": len(genotype.cells), "nodes": len(genotype.cells[0].nodes),
                     "reductions": list(genotype.reductions), "stem_bits": int(net.stem_bits),
                     "fc_bits": int(net.fc_bits), "in_bits": int(net.in_bits)},
        "populations": _population_entries(dt),
        "synapses": _synapse_entries(dt),
        "metrics": m,
        "train": tr,
    }
    if validate:
        validate_artifact(art, source="export_artifact")
    return art


# ------------------------------------------------------------------------------ random artifacts


def _uniform(gen: torch.Generator, shape: Sequence[int], lo: float, hi: float, dtype: torch.dtype) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)).to(dtype)


def _lif_rate(pop: Population, cur: torch.Tensor, units: torch.Tensor, scale: torch.Tensor, v: int) -> float:
    """Spike rate of `pop` at threshold v (integer units of its scale), in its own LIF mode."""
    if pop.lif_mode == "lava":
        return float(lava_lif(units, scale, torch.tensor(float(v), dtype=scale.dtype)).mean())
    return float(pop.lif(cur, vth=scale * v).mean())


def _calibration_hook(gen: torch.Generator, rate_range: tuple[float, float]):
    """Randomise BN statistics from the actual inputs, then choose vth_int for a random target rate."""
    lo_r, hi_r = rate_range

    def hook(net: DeployNet, pop: Population, acts: dict[str, torch.Tensor]) -> None:
        B = acts[INPUT].shape[0]
        T = net.T
        for conv in pop.convs:
            x = conv.gather(acts).double()
            if pop.input_levels != 1:
                x = x / pop.input_levels
            r = F.conv2d(x, conv.weight.detach().double(), None, conv.stride, conv.padding)
            mean = r.mean(dim=(0, 2, 3))
            var = r.var(dim=(0, 2, 3), unbiased=False).clamp_min(1e-4)
            n = mean.numel()
            dtype = conv.bn.running_mean.dtype
            noise = torch.randn(n, generator=gen, dtype=torch.float64)
            conv.bn.running_mean.copy_((mean + 0.2 * var.sqrt() * noise).to(dtype))
            conv.bn.running_var.copy_((var * _uniform(gen, (n,), 0.5, 2.0, torch.float64)).to(dtype))
            conv.bn.weight.data.copy_(_uniform(gen, (n,), 0.5, 1.5, dtype))
            conv.bn.bias.data.copy_((0.3 * torch.randn(n, generator=gen, dtype=torch.float64)).to(dtype))
        target = float(_uniform(gen, (1,), lo_r, hi_r, torch.float64))
        q = pop.quant()
        cur, units = pop.drive(acts, T, B, q)
        scale = q.scale
        top = float(cur.max())
        if top <= 0:
            v = 1
        else:
            lo, hi = 0, int(math.ceil(1.25 * top / float(scale))) + 1   # rate(hi) == 0
            while lo < hi:                                             # smallest v with rate(v) <= target
                mid = (lo + hi) // 2
                if _lif_rate(pop, cur, units, scale, mid) <= target:
                    hi = mid
                else:
                    lo = mid + 1
            v = lo
            # take the neighbour below when it is closer to the target
            if v > 0:
                below = _lif_rate(pop, cur, units, scale, v - 1)
                if abs(below - target) < abs(_lif_rate(pop, cur, units, scale, v) - target):
                    v -= 1
        pop.lif.vth.data.copy_((scale * v).to(pop.lif.vth.dtype))

    return hook


@torch.no_grad()
def random_deploy_net(genotype: Genotype, seed: int = 0, C: Optional[int] = None, batch: int = 4,
                      rate_range: tuple[float, float] = (0.05, 0.30), x: Optional[torch.Tensor] = None,
                      **net_kwargs: Any) -> tuple[DeployNet, torch.Tensor]:
    """A DeployNet (eval mode) with random weights, masks, BN statistics and calibrated thresholds.

    Returns (net, x) where x is the random calibration input [batch, *input_shape] in [0, 1].
    """
    if not 0.0 <= rate_range[0] <= rate_range[1] <= 1.0:
        raise ConfigError(f"rate_range must satisfy 0 <= lo <= hi <= 1, got {rate_range}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = DeployNet(genotype, C=C, aux=False, **net_kwargs)
    net.eval()
    for pop in net.pops:
        for conv in pop.convs:
            fan_in = conv.weight[0].numel()
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
            if conv.scores is not None:
                conv.scores.copy_(torch.randn(conv.scores.shape, generator=gen))
    r = net.readout
    r.weight.copy_(torch.randn(r.weight.shape, generator=gen) / math.sqrt(r.weight.shape[1]))
    r.bias.copy_(0.1 * torch.randn(r.bias.shape, generator=gen))
    if x is None:
        x = torch.rand((batch, *net.input_shape), generator=gen)
    net.forward_all(x, hook=_calibration_hook(gen, rate_range))
    return net, x


@contextmanager
def torch_threads(n: Optional[int]):
    """Temporarily run torch with `n` intra-op threads (None: unchanged)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def random_artifact(genotype: Genotype, seed: int = 0, C: Optional[int] = None, batch: int = 4,
                    rate_range: tuple[float, float] = (0.05, 0.30), dataset_info: Optional[dict[str, Any]] = None,
                    num_threads: Optional[int] = 1, **net_kwargs: Any) -> dict[str, Any]:
    """An exported random DeployNet (see `random_deploy_net`), for the compiler and runtime tests.

    metrics.spike_rates holds the rates measured on the calibration input. `num_threads=1`
    (default) runs the tiny convs single-threaded: on a busy 2-core machine torch's thread pool
    makes a 10 us conv take 10-20 ms; None leaves torch's setting alone.
    """
    with torch_threads(num_threads):
        net, x = random_deploy_net(genotype, seed=seed, C=C, batch=batch, rate_range=rate_range, **net_kwargs)
        with torch.no_grad():
            out = net.forward_all(x)
        rates = {k: float(v) for k, v in out["rates"].items()}
    info = {"name": "random", "num_classes": genotype.num_classes, "input_shape": list(genotype.input_shape),
            "classes": [str(i) for i in range(genotype.num_classes)]}
    if dataset_info:
        info.update(dataset_info)
    with torch_threads(num_threads):
        return export_artifact(net, genotype, dataset_info=info, metrics={"spike_rates": rates},
                               train_info={"seed": int(seed), "epochs": 0, "preset": "random"})
