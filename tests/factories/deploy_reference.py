"""A reference forward of a model.pt artifact dict, written from docs/SEMANTICS.md only.

It reads nothing but the artifact (weights, masks, biases, vth, scales, strides, offsets) and
recovers the integers by `round(x / scale)`, as the compiler does. Per population and step:
`I = scale * (sum_groups a_g + bias_int)` with `a_g` the exact integer accumulation of the group,
`u = tau * u * (1 - y) + I`, `y = u > vth`; the readout's per-step logits are
`scale * (a + bias_int)` (float64), averaged over T. With the same dtype as the network this
must equal `DeployNet`'s eval forward bit for bit.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def ints(t: Any, scale: float) -> torch.Tensor:
    """round(t / scale) as float64, after checking it is integral (the contract's 1e-4)."""
    a = torch.as_tensor(t).double() / float(scale)
    r = torch.round(a)
    assert float((a - r).abs().max()) <= 1e-4 if a.numel() else True
    return r


def encode(art: dict, x: torch.Tensor) -> torch.Tensor:
    """x_int = round(clip((x - offset) / span, 0, 1) * (2^bits - 1)), evaluated in float64 (exact for float32 x)."""
    enc = art["input_encoding"]
    levels = 2 ** int(enc["bits"]) - 1
    c = x.shape[1]
    x = x.double()
    off = torch.tensor(enc["offset"], dtype=torch.float64).view(1, c, 1, 1)
    span = torch.tensor(enc["span"], dtype=torch.float64).view(1, c, 1, 1)
    return torch.round(torch.clamp((x - off) / span, 0.0, 1.0) * levels)


def reference_forward(art: dict, x: torch.Tensor, dtype: torch.dtype = torch.float32,
                      return_spikes: bool = False):
    """Time-averaged logits [B, K] (and the spikes {population: [T, B, C, H, W]})."""
    T = int(art["T"])
    B = x.shape[0]
    x_int = encode(art, x)
    x_t = x_int.unsqueeze(0).expand(T, *x_int.shape).reshape(T * B, *x_int.shape[1:])
    acts: dict[str, torch.Tensor] = {"input": x_t}
    by_dst: dict[str, list[dict]] = {}
    for s in art["synapses"]:
        by_dst.setdefault(s["dst"], []).append(s)
    spikes: dict[str, torch.Tensor] = {}
    logits = None
    for p in art["populations"]:
        C, H, W = (int(v) for v in p["shape"])
        scale = float(p["scale"])
        acc = torch.zeros(T * B, C, H, W, dtype=torch.float64)
        for s in by_dst.get(p["name"], []):
            src = acts[s["src"]]
            off = int(s["dst_channel_offset"])
            if s["kind"] == "conv":
                w = ints(s["weight"], s["scale"])
                if s["mask"] is not None:
                    assert torch.all(w[~torch.as_tensor(s["mask"]).bool()] == 0)
                a = F.conv2d(src, w, None, int(s["stride"]), int(s["padding"]))
            elif s["kind"] == "identity":
                n = float(ints(s["weight"], s["scale"]))
                st = int(s["stride"])
                a = n * src[:, :, ::st, ::st]
            elif s["kind"] == "dense":
                w = ints(s["weight"], s["scale"])
                a = (src.reshape(T * B, -1) @ w.t()).view(T * B, -1, 1, 1)
            else:
                raise AssertionError(s["kind"])
            acc[:, off:off + a.shape[1]] += a
        bias_int = ints(p["bias"], scale).view(1, C, 1, 1)
        total = acc + bias_int
        if p["kind"] == "readout":
            logits = (scale * total.double().view(T, B, C).sum(0) / T).to(dtype)   # exact sum, one rounding
            continue
        cur = torch.tensor(scale, dtype=dtype) * total.to(dtype)
        cur = cur.view(T, B, C, H, W)
        vth = torch.tensor(float(p["vth"]), dtype=dtype)
        tau = float(p["tau"])
        u = torch.zeros(B, C, H, W, dtype=dtype)
        y = torch.zeros(B, C, H, W, dtype=dtype)
        ys = []
        for t in range(T):
            u = tau * u * (1.0 - y) + cur[t]
            y = (u > vth).to(dtype)
            ys.append(y)
        sp = torch.stack(ys, 0)
        spikes[p["name"]] = sp
        acts[p["name"]] = sp.reshape(T * B, C, H, W).double()
    if return_spikes:
        return logits, spikes
    return logits


def integer_checks(art: dict) -> list[str]:
    """Every weight/scale, bias/scale, vth/scale integral; conv ints odd or 0 with |w| <= 2^bits - 1."""
    bad = []
    for p in art["populations"]:
        s = float(p["scale"])
        b = torch.as_tensor(p["bias"]).double() / s
        if float((b - b.round()).abs().max()) > 1e-6:
            bad.append(f"{p['name']}: bias/scale")
        if p["vth"] is not None:
            v = float(p["vth"]) / s
            if abs(v - round(v)) > 1e-6:
                bad.append(f"{p['name']}: vth/scale")
    for sy in art["synapses"]:
        w = torch.as_tensor(sy["weight"]).double() / float(sy["scale"])
        if float((w - w.round()).abs().max()) > 1e-4:
            bad.append(f"{sy['name']}: weight/scale")
        wi = w.round().numpy().astype(np.int64)
        if sy["kind"] in ("conv", "dense"):
            bits = int(sy["bits"])
            nz = wi[wi != 0]
            if np.any(nz % 2 == 0):
                bad.append(f"{sy['name']}: even integer")
            if np.any(np.abs(wi) > 2 ** bits - 1):
                bad.append(f"{sy['name']}: |w_int| > 2^{bits} - 1")
            if sy["mask"] is not None and np.any(wi[~np.asarray(sy["mask"], dtype=bool)] != 0):
                bad.append(f"{sy['name']}: pruned weight not zero")
        elif sy["kind"] == "identity":
            if wi.shape != () or int(wi) < 1:
                bad.append(f"{sy['name']}: identity weight")
    return bad


def integer_reference(art: dict, x: torch.Tensor):
    """The integer dynamics of docs/SEMANTICS.md section 3 (Lava's PyLifModelBitAcc with du = 4095),
    pipeline delays removed (population P at step t = Lava's step t + depth(P)), in int64.

    Returns (readout v after T steps [B, K] int64, spikes {population: [T, B, C, H, W] bool},
    max |a_t| per population). Assumes no 24-bit wrap of `a << 6` (checked by the caller via max |a|).
    """
    T = int(art["T"])
    B = x.shape[0]
    dv = int(art["neuron"]["dv"])
    x_int = encode(art, x)
    acts = {"input": x_int.unsqueeze(0).expand(T, *x_int.shape).reshape(T * B, *x_int.shape[1:])}
    by_dst: dict[str, list[dict]] = {}
    for s in art["synapses"]:
        by_dst.setdefault(s["dst"], []).append(s)
    spikes, max_a = {}, {}
    v_out = None
    vmax = 2 ** 23 - 1
    for p in art["populations"]:
        C, H, W = (int(v) for v in p["shape"])
        scale = float(p["scale"])
        acc = torch.zeros(T * B, C, H, W, dtype=torch.float64)
        for s in by_dst.get(p["name"], []):
            src = acts[s["src"]]
            off = int(s["dst_channel_offset"])
            w = ints(s["weight"], s["scale"])
            if s["kind"] == "conv":
                a = F.conv2d(src, w, None, int(s["stride"]), int(s["padding"]))
            elif s["kind"] == "identity":
                a = float(w) * src[:, :, ::int(s["stride"]), ::int(s["stride"])]
            else:
                a = (src.reshape(T * B, -1) @ w.t()).view(T * B, -1, 1, 1)
            acc[:, off:off + a.shape[1]] += a
        a_int = acc.numpy().astype(np.int64).reshape(T, B, C, H, W)
        max_a[p["name"]] = int(np.abs(a_int).max()) if a_int.size else 0
        bias = ints(p["bias"], scale).numpy().astype(np.int64).reshape(C, 1, 1)
        v = np.zeros((B, C, H, W), dtype=np.int64)
        if p["kind"] == "readout":                       # du = 4095, dv = 0, never fires
            for t in range(T):
                v = np.clip(v + (a_int[t] << 6) + (bias << 6), -vmax, vmax)
            v_out = v.reshape(B, C)
            continue
        vth = int(round(float(p["vth"]) / scale))
        ys = []
        for t in range(T):
            y_ = v * (4096 - dv)
            v = np.sign(y_) * (np.abs(y_) >> 12)
            v = np.clip(v + (a_int[t] << 6) + (bias << 6), -vmax, vmax)
            fire = v > (vth << 6)
            v = np.where(fire, 0, v)
            ys.append(fire)
        sp = np.stack(ys, 0)
        spikes[p["name"]] = sp
        acts[p["name"]] = torch.from_numpy(sp.reshape(T * B, C, H, W).astype(np.float64))
    return v_out, spikes, max_a
