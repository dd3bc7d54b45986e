"""The decoded LitE-SNN in deployable form: what is trained is what the compiler writes.

`DeployNet(genotype, C)` builds the searched topology (shared/DESIGN.md section 2) as a flat,
topologically ordered list of *populations* (stem, per cell `pre0`/`pre1` and one per node,
then the readout), each fed by *synapse groups* (conv groups with their own BN, skip edges).
That is exactly the graph of docs/SEMANTICS.md section 1, so the exporter only has to slice.

Deployable quantization (docs/SEMANTICS.md section 2), per population P:

- every conv group g into P folds its BN into the weight with the running statistics,
  `W_fold = W * gamma / sqrt(var + eps)`, `b_fold = beta - mean * gamma / sqrt(var + eps)`;
- all groups into P share one `Delta_P = edmips_delta(concat(W_fold_g), bits_P)` (EdMIPS std rule
  for 1/2/4 bits, range rule for the fixed 8-bit stem and FC), so one scale `s_P = Delta_P / 2`
  (stem: `/ (2^in_bits - 1)` because it reads integer graded input). The 1x1 preprocessing
  convs are CompConvs of their cell, as in the search space (cell bits, pruned at p);
- `w_int_g = round(edmips_quantize(W_fold_g, bits, Delta_P) * mask_g / s_P)`: odd or 0,
  `|w_int| <= 2^bits - 1`; skip edges carry `n_P = max(1, round(1 / s_P))`; a population with
  only skips has `s_P = 1/64`;
- `bias_int = round(sum_g b_fold_g / s_P)`, `vth_int = max(0, round(Vth / s_P))`
  (straight-through); readout: `s_R = s_FC / (H*W)`, `b_int = round(b_fc / s_R)`.

The eval forward computes, per population and step,
`I = s_P * (sum_g conv(x_g, w_int_g) + n_P * sum_skips x + bias_int)` with `x` binary spikes (stem:
the integer image `x_int`), so every accumulator is an exact integer in float32 (|.| < 2^24),
and the LIF of Eq. 1 runs on `I` with threshold `s_P * vth_int`. The readout accumulates in
float64 (it can exceed 2^24). `deploy_tensors()` returns exactly these tensors; the exporter
writes them; a reference forward that reads only the artifact reproduces the eval forward bit
for bit (tests/test_deploy_net.py).

BN folding in training (the standard QAT fold of torch.ao's ConvBn, `_forward_approximate`):
the weight is folded with the *running* statistics and quantized (so the integers seen in
training are on the deployed grid), the conv runs once, its output is divided back by the fold
factor and passed through BatchNorm in training mode (batch statistics, running statistics
updated). In eval mode, and in training once `set_bn_frozen(True)` (the last retraining epochs),
BN is replaced by the folded bias rounded to the s_P grid: the training forward is then exactly
the deployed forward. Dataflow is time-major [T, B, C, H, W]; convs run batched over T*B in
channels_last; the stem conv runs once on the static image and is broadcast over T.

`lif_mode="lava"` (option; default "float" = Eq. 1 with tau = 0.2 as docs/SEMANTICS.md 3 says)
runs the LIF on the integer accumulator exactly as Lava's `PyLifModelBitAcc` does (decay
819/4096 with truncation in units of s_P/64, 24-bit clip), straight-through for training: the
PyTorch model and the chip then agree spike for spike (tests/test_deploy_net.py), instead of
differing where a membrane lands within ~s_P/64 of the threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsnn.errors import ConfigError
from lsnn.searcher.genotype import Genotype
from lsnn.searcher.mask import topk_mask
from lsnn.searcher.neuron import LIF, TAU_DEFAULT, VTH_INIT
from lsnn.searcher.quant import edmips_delta, edmips_quantize, round_ste, trunc_ste


INPUT = "input"
SKIP_ONLY_SCALE = 1.0 / 64.0
LIF_MODES = ("float", "lava")
_SF_MIN = 1e-12
_CL = torch.channels_last


LAVA_ACC_LIMIT = 2 ** 17  # Lava's LIF adds `a << 6` to a 24-bit current: |a| >= 2^17 wraps
VTH_INT_MAX = 2 ** 17 - 1  # 17-bit unsigned threshold mantissa


def max_safe_stem_bits(in_channels: int, in_bits: int = 8, kernel: int = 3) -> int:
    """The widest stem weight width b whose worst-case accumulator
    `kernel^2 * in_channels * (2^b - 1) * (2^in_bits - 1)` stays below 2^17 (no wrap on Lava).
    CIFAR (3 channels, 8-bit input): 4; one-channel inputs (digits, MFCC): 5. 0 if none fits."""
    per_weight = kernel * kernel * in_channels * (2 ** in_bits - 1)
    b = 0
    while per_weight * (2 ** (b + 1) - 1) < LAVA_ACC_LIMIT:
        b += 1
    return b


def out_size(n: int, stride: int) -> int:
    """Spatial size after a stride-s conv3x3/pad1, conv1x1/pad0 or `x[::s]` (all agree): ceil(n / s)."""
    return (n - 1) // stride + 1


# ------------------------------------------------------------------------------------------ groups


class ConvGroup(nn.Module):
    """A conv synapse group (+ its own BN) into one population; its input may be a channel concat.

    `srcs` are population names (or "input"); the conv reads their channel concatenation in order.
    The mask (HYDRA top-k of `scores`, initialised equal to W) exists only when `prune_rate > 0`.
    """

    def __init__(self, name: str, srcs: Sequence[str], src_channels: Sequence[int], out_channels: int,
                 kernel: int, stride: int, padding: int, prune_rate: float = 0.0,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= prune_rate < 1.0:
            raise ConfigError(f"{name}: prune rate must be in [0, 1), got {prune_rate}")
        self.name = name
        self.srcs = tuple(srcs)
        self.src_channels = tuple(int(c) for c in src_channels)
        self.kernel, self.stride, self.padding = int(kernel), int(stride), int(padding)
        self.prune_rate = float(prune_rate)
        w = torch.empty(out_channels, sum(self.src_channels), kernel, kernel)
        nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
        self.weight = nn.Parameter(w)
        self.scores = nn.Parameter(w.clone()) if self.prune_rate > 0 else None
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.reads_cell_output = False  # set for preprocessing convs (their input is a cell output)

    def fold_factor(self) -> torch.Tensor:
        """gamma / sqrt(running_var + eps) per output channel."""
        return self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)

    def fold(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_fold, b_fold, fold factor) with the running statistics."""
        sf = self.fold_factor()
        w = self.weight * sf.view(-1, 1, 1, 1)
        b = self.bn.bias - self.bn.running_mean * sf
        return w, b, sf

    def mask(self) -> Optional[torch.Tensor]:
        return None if self.scores is None else topk_mask(self.scores, self.prune_rate)

    def gather(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        xs = [acts[s] for s in self.srcs]
        x = xs[0] if len(xs) == 1 else torch.cat(xs, 1)
        return x.contiguous(memory_format=_CL)


@dataclass
class Skip:
    """A skip (identity) edge: `src` subsampled by `stride` (x[..., ::s, ::s]), weight n_P * s_P."""

    name: str
    src: str
    stride: int = 1


@dataclass
class PopQuant:
    """Everything the deployed forward of one population uses (tensors keep their autograd graph)."""

    scale: torch.Tensor                      # s_P, 0-d
    delta: Optional[torch.Tensor]            # Delta_P of the groups' weights in trained units
    w_int: list[torch.Tensor]                # per conv group: integer-valued weights (masked)
    masks: list[Optional[torch.Tensor]]      # per conv group
    fold_factors: list[torch.Tensor]         # per conv group: gamma / sqrt(var + eps)
    bias_int: torch.Tensor                   # [C] integer-valued
    vth_int: Optional[torch.Tensor]          # 0-d integer-valued (None for the readout)
    skip_n: int = 0                          # n_P for the skip edges
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def vth(self) -> Optional[torch.Tensor]:
        return None if self.vth_int is None else self.scale * self.vth_int


class Population(nn.Module):
    """One LIF population: sums its conv groups (BN folded, shared Delta) and skip edges."""

    def __init__(self, name: str, channels: int, hw: tuple[int, int], bits: int, convs: Sequence[ConvGroup],
                 skips: Sequence[Skip], input_levels: int = 1, tau: float = TAU_DEFAULT,
                 vth_init: float = VTH_INIT, broadcast_time: bool = False, lif_mode: str = "float",
                 bias_limit: Optional[int] = None) -> None:
        super().__init__()
        self.bias_limit = bias_limit
        if lif_mode not in LIF_MODES:
            raise ConfigError(f"unknown lif_mode '{lif_mode}' (supported: {', '.join(LIF_MODES)})")
        self.lif_mode = lif_mode
        self.name = name
        self.kind = "lif"
        self.channels = int(channels)
        self.hw = (int(hw[0]), int(hw[1]))
        self.bits = int(bits)
        self.convs = nn.ModuleList(convs)
        self.skips = list(skips)
        self.input_levels = int(input_levels)  # stem: 2^in_bits - 1 (it reads x_int, not x_q)
        self.broadcast_time = broadcast_time  # stem: static input, one conv broadcast over T
        self.lif = LIF(tau=tau, vth_init=vth_init)
        self.bn_frozen = False
        if not convs and not skips:
            raise ConfigError(f"population '{name}' has no incoming edge")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.hw)

    def quant(self) -> PopQuant:
        """The deployable (integer) parameters; differentiable (straight-through) w.r.t. W, BN, Vth, scores."""
        folds = [c.fold() for c in self.convs]
        if folds:
            flat = torch.cat([w.detach().reshape(-1) for w, _, _ in folds])
            if flat.numel() > 1:
                delta = edmips_delta(flat, self.bits).to(flat.dtype)
            else:  # a single weight has no std: range rule at the same width
                delta = flat.abs().max().clamp_min(1e-8) / (2 ** self.bits / 2 - 0.5)
            scale = delta / 2.0
            if self.input_levels != 1:
                scale = scale / float(self.input_levels)
            scale = scale.detach()
        else:
            delta = None
            scale = torch.tensor(SKIP_ONLY_SCALE, dtype=self.lif.vth.dtype, device=self.lif.vth.device)
        w_int, masks = [], []
        for conv, (wf, _, _) in zip(self.convs, folds):
            q = edmips_quantize(wf, self.bits, delta)
            m = conv.mask()
            if m is not None:
                q = q * m
            w_int.append(round_ste(q / (delta / 2.0)))
            masks.append(m)
        if folds:
            b = folds[0][1]
            for _, bf, _ in folds[1:]:
                b = b + bf
            bias_int = _clamp_bias(round_ste(b / scale), self.bias_limit)
        else:
            bias_int = torch.zeros(self.channels, dtype=scale.dtype, device=scale.device)
        skip_n = max(1, int(round(1.0 / float(scale)))) if self.skips else 0
        vth_int = torch.clamp(round_ste(self.lif.vth / scale), min=0.0, max=VTH_INT_MAX)
        return PopQuant(scale=scale, delta=delta, w_int=w_int, masks=masks,
                        fold_factors=[sf for _, _, sf in folds], bias_int=bias_int, vth_int=vth_int,
                        skip_n=skip_n)

    def _drive_flat(self, acts: dict[str, torch.Tensor], q: PopQuant, need_units: bool
                    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(I, I / s_P or None) as [N, C, H, W] with N = T*B (stem: N = B, the same at every step)."""
        deploy = (not self.training) or self.bn_frozen
        if deploy:
            acc = None
            for conv, w in zip(self.convs, q.w_int):
                a = F.conv2d(conv.gather(acts), w, None, conv.stride, conv.padding)
                acc = a if acc is None else acc + a
            for sk in self.skips:
                a = q.skip_n * _sub(acts[sk.src], sk.stride)
                acc = a if acc is None else acc + a
            units = acc + q.bias_int.view(1, -1, 1, 1)
            return q.scale * units, units
        cur = None
        for conv, w, sf in zip(self.convs, q.w_int, q.fold_factors):
            # BN(conv(x, W_q) / sf) with W_q = s_P * w_int: one per-channel multiply
            sf_safe = torch.where(sf.abs() < _SF_MIN, torch.full_like(sf, _SF_MIN), sf)
            a = F.conv2d(conv.gather(acts), w, None, conv.stride, conv.padding)
            y = conv.bn(a * (q.scale / sf_safe).view(1, -1, 1, 1))
            cur = y if cur is None else cur + y
        for sk in self.skips:
            a = (q.skip_n * q.scale) * _sub(acts[sk.src], sk.stride)
            cur = a if cur is None else cur + a
        return cur, (cur / q.scale if need_units else None)

    def _time(self, x: torch.Tensor, T: int, B: int) -> torch.Tensor:
        """[N, C, H, W] -> [T, B, C, H, W] (the stem's single current broadcast over T)."""
        if self.broadcast_time:
            return x.unsqueeze(0).expand(T, *x.shape)
        return x.view(T, B, *self.shape)

    def drive(self, acts: dict[str, torch.Tensor], T: int, B: int, q: Optional[PopQuant] = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(I, I / s_P) of every step, [T, B, C, H, W] each. In the deployed path (eval, or BN
        frozen) `I / s_P` is the exact integer accumulator `sum_g a_g + bias_int`."""
        cur, units = self._drive_flat(acts, self.quant() if q is None else q, True)
        return self._time(cur, T, B), self._time(units, T, B)

    def current(self, acts: dict[str, torch.Tensor], T: int, B: int, q: Optional[PopQuant] = None) -> torch.Tensor:
        """The input current I of every step, [T, B, C, H, W]."""
        cur, _ = self._drive_flat(acts, self.quant() if q is None else q, False)
        return self._time(cur, T, B)

    def forward(self, acts: dict[str, torch.Tensor], T: int, B: int) -> torch.Tensor:
        """Spikes [T*B, C, H, W] (channels_last)."""
        q = self.quant()
        C, H, W = self.shape
        if self.lif_mode == "lava":
            cur, units = self._drive_flat(acts, q, True)
            y = lava_lif(self._time(units, T, B), q.scale, q.vth_int, self.lif.params.temperature).to(cur.dtype)
        else:
            cur, _ = self._drive_flat(acts, q, False)
            if _fused_lif is not None:   # same forward values as neuron.LIF, a fraction of its autograd memory
                y = _fused_lif(cur, q.vth, T, self.lif.params.tau, self.lif.params.temperature, self.broadcast_time)
            else:
                y = self.lif(self._time(cur, T, B), vth=q.vth)
        return y.reshape(T * B, C, H, W).contiguous(memory_format=_CL)


def _clamp_bias(b: torch.Tensor, limit: Optional[int]) -> torch.Tensor:
    return b if limit is None else torch.clamp(b, min=-float(limit) - 1.0, max=float(limit))


def _sub(x: torch.Tensor, stride: int) -> torch.Tensor:
    return x if stride == 1 else x[:, :, ::stride, ::stride]


class _FusedLIFFn(torch.autograd.Function):
    """neuron.LIF over all steps of a channels_last [N, C, H, W] current (N = T*B, or B fed at every
    step when `constant`), bit-identical forward (`u_t = tau * u_{t-1} * (1 - y_{t-1}) + I_t`,
    `y_t = [u_t > vth]`), saving only u. Backward = autograd of neuron.lif_step (BPTT through the
    reset too): `a_t = dL/dy_t - tau u_t g_{t+1}`, `g_t = a_t sg(u_t) + tau (1 - y_t) g_{t+1}`,
    `dL/dI_t = g_t`, `dL/dvth = -sum_t a_t sg(u_t)`, sg = neuron.dspike_grad."""

    @staticmethod
    def forward(ctx, cur: torch.Tensor, vth: torch.Tensor, T: int, tau: float,  # type: ignore[override]
                temperature: float, constant: bool) -> torch.Tensor:
        cur = cur.contiguous(memory_format=_CL)
        n, c, h, w = cur.shape
        I = cur.permute(0, 2, 3, 1).reshape(1 if constant else T, -1)          # NHWC storage: a view
        out = torch.empty((n * T if constant else n, c, h, w), dtype=cur.dtype, device=cur.device,
                          memory_format=_CL)
        Y = out.permute(0, 2, 3, 1).reshape(T, -1)
        U = torch.empty((T, I.shape[1]), dtype=cur.dtype, device=cur.device)
        th = vth.detach()
        U[0].copy_(I[0])
        for t in range(1, T):
            prev = U[t - 1]
            # (tau * u) * (1 - y) + I with y in {0, 1}: the same roundings as neuron.lif_step
            torch.add(torch.where(prev > th, 0.0, prev).mul_(tau), I[0 if constant else t], out=U[t])
        Y.copy_(U > th)
        ctx.save_for_backward(U, vth)
        ctx.meta = (T, tau, temperature, constant, (n, c, h, w))
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        # g_t = a_t sg_t + tau (1 - y_t) g_{t+1} = P_t + Q_t g_{t+1} with P = G sg and
        # Q = tau (1 - y) - tau u sg, all batched over the steps: one addcmul per step.
        U, vth = ctx.saved_tensors
        T, tau, b, constant, (n, c, h, w) = ctx.meta
        G = grad_out.contiguous(memory_format=_CL).permute(0, 2, 3, 1).reshape(T, -1)
        th = vth.detach()
        k = b / (2.0 * math.tanh(b / 2.0))
        z = U - th
        sg = torch.tanh(z * b)
        sg.mul_(sg).neg_().add_(1.0).mul_(k)
        sg.masked_fill_(z.abs_() >= 0.5, 0.0)                    # Dspike window |u - vth| < 1/2
        del z
        P = G * sg
        a_sg = (U * tau).mul_(sg)                                # tau u sg
        del sg
        Q = torch.full_like(U, tau).masked_fill_(U > th, 0.0).sub_(a_sg)
        gI = torch.empty_like(U)
        gI[T - 1].copy_(P[T - 1])
        for t in range(T - 2, -1, -1):
            torch.addcmul(P[t], Q[t], gI[t + 1], out=gI[t])
        gvth = None
        if ctx.needs_input_grad[1]:
            gvth = (a_sg[:-1] * gI[1:]).sum() - P.sum()
            gvth = gvth.reshape(vth.shape)
        if constant:
            gI = gI.sum(0)
        grad_cur = gI.reshape(n, h, w, c).permute(0, 3, 1, 2)                 # channels_last strides
        return grad_cur, gvth, None, None, None, None


def _fused_lif(cur: torch.Tensor, vth: torch.Tensor, T: int, tau: float, temperature: float,
               constant: bool = False) -> torch.Tensor:
    """Spikes [T*B, C, H, W] (channels_last) of Eq. 1; see _FusedLIFFn."""
    return _FusedLIFFn.apply(cur, vth, int(T), float(tau), float(temperature), bool(constant))


LAVA_DV = 3277            # round(4096 * (1 - 0.2)): Lava's v decay, v <- trunc(v * (4096 - dv) / 4096)
LAVA_ACT_SHIFT = 6        # a_in << 6, bias << 6, vth << 6
LAVA_V_MAX = 2 ** 23 - 1  # v is clipped to +-(2^23 - 1)
LAVA_ACT_SHIFT_MUL = float(1 << LAVA_ACT_SHIFT)


def lava_lif(units: torch.Tensor, scale: torch.Tensor, vth_int: torch.Tensor,
             temperature: float = 3.0, dv: int = LAVA_DV) -> torch.Tensor:
    """Lava's fixed-point LIF (du = 4095) run on the integer accumulator, differentiably.

    `units` [T, ...] = a_t + bias_int (integers in the deployed path). In units of s_P / 64:
    `v = trunc(v * (4096 - dv) / 4096) + 64 * units_t`, clipped to +-(2^23 - 1), spike iff
    `v > 64 * vth_int`, reset to 0; bit-exact with `PyLifModelBitAcc` as long as the compiler's
    current `a << 6` does not wrap (|a| < 2^17). Float64 state (exact integers). Gradients:
    truncation straight-through, spike via the Dspike surrogate on `u = v * s_P / 64` against
    `Vth = s_P * vth_int` (the same window and slope as the float LIF).
    """
    from lsnn.searcher.neuron import spike

    factor = (4096 - int(dv)) / 4096.0                    # 819 / 4096: exact in float64
    s = scale.double()
    c = s / 64.0
    vth = vth_int.double() * s
    u_in = units.double() * 64.0
    v = None
    out = []
    for t in range(units.shape[0]):
        if v is None:
            v = u_in[t]
        else:
            v = trunc_ste(v * (1.0 - y) * factor) + u_in[t]
        v = torch.clamp(v, -LAVA_V_MAX, LAVA_V_MAX)
        y = spike(v * c, vth, temperature)
        out.append(y)
    return torch.stack(out, 0)


def lava_readout_increments(a: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The chip's readout on per-step synaptic input a [T, B, K] and bias [K] (integers, units of
    s_R), Lava's LIF with du = 4095, dv = 0: current u_t = a_t << 6 with Lava's one-sided 24-bit
    wrap, potential v_t = clip(v_{t-1} + u_t + 64 * bias, +-(2^23 - 1)). Returns the increments
    (v_t - v_{t-1}) / 64, so their sum over t is v_T / 64 and argmax is what Lava predicts,
    saturation included. Gradients go straight through the wrap and the clip (a saturated wrong
    class is still pushed down)."""
    m = LAVA_ACT_SHIFT_MUL
    half = float(2 ** 23)
    v = torch.zeros_like(a[0])
    out = []
    for t in range(a.shape[0]):
        u = m * a[t]
        u = u + ((u > half).double() * -2 * half + (u <= -half).double() * 2 * half).to(u.dtype).detach()
        raw = v + u + m * bias
        nv = raw + (torch.clamp(raw, -LAVA_V_MAX, LAVA_V_MAX) - raw).detach()
        out.append((nv - v) / m)
        v = nv
    return torch.stack(out, 0)


def readout_parts(src_channels: Sequence[int], hw: tuple[int, int], axon_limit: Optional[int]) -> list[torch.Tensor]:
    """Channel indices (into the concatenated readout input) of each part the compiler's
    split_readout pass will cut a readout with this input into for a core of `axon_limit` input
    axons (one part, all channels, if None or if it fits)."""
    total = sum(int(c) for c in src_channels)
    positions = int(hw[0]) * int(hw[1])
    if axon_limit is None or total * positions <= axon_limit:
        return [torch.arange(total)]
    from lsnn.compiler.passes.split_readout import plan_parts

    plan = plan_parts([(int(c), positions) for c in src_channels], int(axon_limit))
    if plan is None:                       # one channel alone is too wide: the compiler cannot split
        return [torch.arange(total)]
    offsets = [0]
    for c in src_channels:
        offsets.append(offsets[-1] + int(c))
    return [torch.cat([torch.arange(offsets[i] + c0, offsets[i] + c1) for i, c0, c1 in part]) for part in plan]


class Readout(nn.Module):
    """Global average pool + FC at `bits` (range rule), per step: logits_t = s_R * (w_int @ sum_hw x + b_int);
    with `clip_lava` (lif_mode "lava") the chip's 24-bit current wrap and potential clip are applied
    to the running sum (`lava_readout_increments`), per part when the readout's fan-in exceeds
    `axon_limit` input axons (the compiler's split_readout cuts it there; the host adds the
    parts), so the prediction is exactly the chip's."""

    def __init__(self, name: str, srcs: Sequence[str], src_channels: Sequence[int], hw: tuple[int, int],
                 num_classes: int, bits: int = 7, bias_limit: Optional[int] = None, clip_lava: bool = False,
                 axon_limit: Optional[int] = None) -> None:
        super().__init__()
        self.name = name
        self.kind = "readout"
        self.clip_lava = bool(clip_lava)
        self.axon_limit = None if axon_limit is None else int(axon_limit)
        self.parts = readout_parts(src_channels, hw, self.axon_limit)
        self.bias_limit = bias_limit
        self.srcs = tuple(srcs)
        self.src_channels = tuple(int(c) for c in src_channels)
        self.hw = (int(hw[0]), int(hw[1]))
        self.bits = int(bits)
        self.num_classes = int(num_classes)
        cin = sum(self.src_channels)
        bound = 1.0 / math.sqrt(cin)
        self.weight = nn.Parameter(torch.empty(num_classes, cin).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.bn_frozen = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.num_classes, 1, 1)

    def quant(self) -> PopQuant:
        delta = edmips_delta(self.weight, self.bits).to(self.weight.dtype).detach()
        s_fc = delta / 2.0
        q = edmips_quantize(self.weight, self.bits, delta)
        w_int = round_ste(q / s_fc)
        scale = (s_fc / float(self.hw[0] * self.hw[1])).detach()
        bias_int = _clamp_bias(round_ste(self.bias / scale), self.bias_limit)
        return PopQuant(scale=scale, delta=delta, w_int=[w_int], masks=[None], fold_factors=[],
                        bias_int=bias_int, vth_int=None, extra={"s_fc": s_fc})

    def forward(self, acts: dict[str, torch.Tensor], T: int, B: int) -> torch.Tensor:
        """Per-step logits [T, B, K] (float64 accumulation, cast to the spikes' dtype)."""
        q = self.quant()
        feats = [acts[s].sum(dim=(2, 3)) for s in self.srcs]   # exact spike counts per channel
        f = feats[0] if len(feats) == 1 else torch.cat(feats, 1)
        if self.clip_lava:
            w = q.w_int[0].double()
            acc = 0.0
            for g, idx in enumerate(self.parts):       # each part clips on its own; the host adds them
                a = (f.double()[:, idx] @ w[:, idx].t()).view(T, B, self.num_classes)
                bias = q.bias_int.double() if g == 0 else torch.zeros_like(q.bias_int, dtype=torch.float64)
                acc = acc + lava_readout_increments(a, bias)
        else:
            acc = f.double() @ q.w_int[0].double().t() + q.bias_int.double()
        logits = (q.scale.double() * acc).to(f.dtype)
        return logits.view(T, B, self.num_classes)


# ------------------------------------------------------------------------------------------ network


class DeployNet(nn.Module):
    """The decoded network (stem, cells of preprocessing + node populations, pooled FC readout).

    Args:
        genotype: the decoded architecture (cells, bits per cell, T, prune rate, input shape).
        C: initial channels (default genotype.C); doubled at every reduction cell.
        in_bits: graded input bits (x_int = round(clip(x, 0, 1) * (2^in_bits - 1))).
        stem_bits: fixed width of the (dense) stem conv; None (default) = the widest that cannot
            overflow Lava's 24-bit current, `min(7, max_safe_stem_bits(C_in, in_bits))` (CIFAR 4,
            one-channel inputs 5). 8 bits gives integers up to +-255, i.e. 9 hardware bits, which
            Loihi's 8-bit weights cannot hold, and 8-bit x 8-bit stems overflow `a << 6`.
        fc_bits: fixed width of the (dense) FC readout; 7 (default) = 8 hardware bits.
            Widths > 4 use the range rule, 1/2/4 the EdMIPS std rule.
        pre_bits: None (default, as in the search space: the 1x1 preprocessing convs are
            CompConvs at the cell's bits, pruned at the genotype's rate) or a fixed width (dense).
        aux: build the auxiliary head on `genotype.aux_cell` (training only, never exported).
        bias_limit: |bias_int| clamp (the bias is trained clamped): 4095 = Loihi's signed 13-bit
            bias mantissa at the SEMANTICS exponent; None: no clamp. vth_int is clamped to
            [0, 2^17 - 1] (17-bit unsigned threshold mantissa; `vth << 6` fits 24 bits).
        lif_mode: "float" (Eq. 1, tau = 0.2; docs/SEMANTICS.md 3) or "lava" (Lava's integer LIF).
        readout_axon_limit: input axons per core of the deploy target; with lif_mode "lava" the
            readout is modelled in the parts the compiler splits it into (None: one part).
    """

    def __init__(self, genotype: Genotype, C: Optional[int] = None, in_bits: int = 8, stem_bits: Optional[int] = None,
                 fc_bits: int = 7, pre_bits: Optional[int] = None, tau: float = TAU_DEFAULT, vth_init: float = VTH_INIT,
                 aux: bool = True, bn_eps: float = 1e-5, bn_momentum: float = 0.1, lif_mode: str = "float",
                 bias_limit: Optional[int] = 4095, readout_axon_limit: Optional[int] = None) -> None:
        super().__init__()
        if lif_mode not in LIF_MODES:
            raise ConfigError(f"unknown lif_mode '{lif_mode}' (supported: {', '.join(LIF_MODES)})")
        if lif_mode == "lava" and abs(tau - TAU_DEFAULT) > 1e-12:
            raise ConfigError("lif_mode 'lava' implements dv = 3277 (tau = 0.2) only")
        self.lif_mode = lif_mode
        self.genotype = genotype
        self.C = int(genotype.C if C is None else C)
        self.T = int(genotype.T)
        if stem_bits is None:
            stem_bits = max(1, min(7, max_safe_stem_bits(int(genotype.input_shape[0]), int(in_bits))))
        self.in_bits, self.stem_bits, self.fc_bits = int(in_bits), int(stem_bits), int(fc_bits)
        self.bias_limit = None if bias_limit is None else int(bias_limit)
        self.pre_bits = None if pre_bits is None else int(pre_bits)
        self.tau = float(tau)
        self.num_classes = int(genotype.num_classes)
        self.input_shape = tuple(int(v) for v in genotype.input_shape)
        if self.C < 1 or self.in_bits < 1:
            raise ConfigError(f"C and in_bits must be >= 1, got C={self.C}, in_bits={self.in_bits}")
        cin, H, W = self.input_shape
        bnkw = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        lifkw = dict(tau=tau, vth_init=vth_init, lif_mode=lif_mode, bias_limit=self.bias_limit)
        pops: list[Population] = []
        stem = Population("stem", self.C, (H, W), self.stem_bits,
                          [ConvGroup("stem.conv", [INPUT], [cin], self.C, 3, 1, 1, 0.0, **bnkw)], [],
                          input_levels=2 ** self.in_bits - 1, broadcast_time=True, **lifkw)
        pops.append(stem)
        # a cell output = list of (population, channels), concatenated in order
        s0 = s1 = [("stem", self.C)]
        hw0 = hw1 = (H, W)
        c_cur = self.C
        self.cell_outputs: list[list[str]] = []
        self.cell_channels: list[int] = []
        aux_in = None
        for k, cell in enumerate(genotype.cells):
            if cell.reduction:
                c_cur *= 2
            if cell.bits < 1:
                raise ConfigError(f"cell {k}: bits must be >= 1, got {cell.bits}")
            used = {e.src for node in cell.nodes for e in node}
            stride0 = 1 if hw0 == hw1 else 2
            if stride0 == 2 and (out_size(hw0[0], 2), out_size(hw0[1], 2)) != hw1:
                raise ConfigError(f"cell {k}: input sizes {hw0} and {hw1} do not match")
            pre_names: list[Optional[str]] = [None, None]
            for idx, (srcs, stride, hw) in enumerate(((s0, stride0, hw0), (s1, 1, hw1))):
                if idx not in used:
                    continue  # never read by a node: not computed, not exported
                name = f"cell{k}.pre{idx}"
                g = ConvGroup(f"{name}.conv", [n for n, _ in srcs], [c for _, c in srcs], c_cur, 1, stride, 0,
                              genotype.prune_rate if pre_bits is None else 0.0, **bnkw)
                g.reads_cell_output = True
                pops.append(Population(name, c_cur, (out_size(hw[0], stride), out_size(hw[1], stride)),
                                       cell.bits if pre_bits is None else pre_bits,
                                       [g], [], **lifkw))
                pre_names[idx] = name
            out_hw = (out_size(hw1[0], 2), out_size(hw1[1], 2)) if cell.reduction else hw1
            nodes: list[str] = []
            for j, edges in enumerate(cell.nodes):
                name = f"cell{k}.node{j}"
                convs, skips = [], []
                for e_i, e in enumerate(edges):
                    src = pre_names[e.src] if e.src < 2 else nodes[e.src - 2]
                    stride = 2 if (cell.reduction and e.src < 2) else 1
                    ename = f"{name}.edge{e_i}"
                    if e.op == "conv3x3":
                        convs.append(ConvGroup(ename, [src], [c_cur], c_cur, 3, stride, 1, genotype.prune_rate, **bnkw))
                    elif e.op == "skip":
                        skips.append(Skip(ename, src, stride))
                    else:  # pragma: no cover - Edge validates op names
                        raise ConfigError(f"{ename}: unsupported op '{e.op}'")
                pops.append(Population(name, c_cur, out_hw, cell.bits, convs, skips, **lifkw))
                nodes.append(name)
            s0, s1 = s1, [(n, c_cur) for n in nodes]
            hw0, hw1 = hw1, out_hw
            self.cell_outputs.append(nodes)
            self.cell_channels.append(c_cur)
            if genotype.aux_cell is not None and k == genotype.aux_cell:
                aux_in = c_cur * len(nodes)
        self.pops = nn.ModuleList(pops)
        self.readout = Readout("readout", [n for n, _ in s1], [c for _, c in s1], hw1, self.num_classes, self.fc_bits,
                               bias_limit=self.bias_limit, clip_lava=lif_mode == "lava",
                               axon_limit=readout_axon_limit)
        self.aux_cell = genotype.aux_cell if (aux and aux_in is not None) else None
        self.aux_head = nn.Linear(aux_in, self.num_classes) if self.aux_cell is not None else None
        self._index = {p.name: i for i, p in enumerate(self.pops)}

    # ------------------------------------------------------------------ modes and helpers

    def set_bn_frozen(self, frozen: bool = True) -> "DeployNet":
        """Frozen: BN uses running statistics (not updated) and the bias is rounded even in training,
        so the training forward equals the deployed forward (used for the last retraining epochs)."""
        for p in self.pops:
            p.bn_frozen = bool(frozen)
        self.readout.bn_frozen = bool(frozen)
        return self

    @property
    def bn_frozen(self) -> bool:
        return bool(self.pops[0].bn_frozen)

    def population(self, name: str) -> Population:
        return self.pops[self._index[name]]

    def population_names(self) -> list[str]:
        return [p.name for p in self.pops] + [self.readout.name]

    def mask_parameters(self) -> list[nn.Parameter]:
        return [c.scores for p in self.pops for c in p.convs if c.scores is not None]

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """x float [B, C, H, W] in [0, 1] -> integer-valued x_int (x_q = x_int / (2^in_bits - 1)).

        Computed in float64, where `x * 255` is exact for float32 data: in float32 the product can
        round onto k + 0.5 and flip the rounding (an integer emulator must use the exact product too)."""
        levels = float(2 ** self.in_bits - 1)
        dtype = self.readout.weight.dtype
        x_int = torch.round(torch.clamp(x.double(), 0.0, 1.0) * levels)
        return x_int.to(dtype).contiguous(memory_format=_CL)

    # ------------------------------------------------------------------ forward

    def forward_all(self, x: torch.Tensor, T: Optional[int] = None,
                    hook: Optional[Callable[["DeployNet", Population, dict], None]] = None,
                    keep_spikes: bool = False) -> dict[str, Any]:
        """Run all populations. Returns logits_t [T, B, K], logits (mean over T), aux (or None),
        rates {population: mean spike rate (0-d tensor, detached)} and, with `keep_spikes`,
        spikes {population: [T, B, C, H, W] (detached)}.

        `hook(net, population, acts)` is called before each population is computed (calibration).
        """
        T = self.T if T is None else int(T)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(f"input must be [B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}")
        B = x.shape[0]
        acts: dict[str, torch.Tensor] = {INPUT: self.encode_input(x)}
        rates: dict[str, torch.Tensor] = {}
        for pop in self.pops:
            if hook is not None:
                hook(self, pop, acts)
            y = pop(acts, T, B)
            acts[pop.name] = y
            rates[pop.name] = y.detach().mean()
        logits_t = self.readout(acts, T, B)
        spikes = None
        if keep_spikes:
            spikes = {p.name: acts[p.name].detach().reshape(T, B, *p.shape) for p in self.pops}
        aux = None
        if self.training and self.aux_head is not None:
            nodes = self.cell_outputs[self.aux_cell]
            feat = torch.cat([acts[n].mean(dim=(2, 3)) for n in nodes], 1)
            aux = self.aux_head(feat).view(T, B, -1).mean(0)
        return {"logits_t": logits_t, "logits": logits_t.mean(0), "aux": aux, "rates": rates, "spikes": spikes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Time-averaged logits [B, K] over the genotype's T steps."""
        return self.forward_all(x)["logits"]

    # ------------------------------------------------------------------ deployment view

    @torch.no_grad()
    def deploy_tensors(self) -> dict[str, Any]:
        """Exactly the tensors the eval forward uses (detached), per population and synapse group.

        The eval forward computes, for population P and step t,
        `I = scale * (sum_g conv(x_src(g), w_int_g) + n * sum_skips x + bias_int)`, LIF with
        threshold `vth = scale * vth_int`; readout `logits_t = scale * (w_int @ sum_hw(x) + bias_int)`.
        `weight = w_int * scale` is the float weight (exactly scale times an integer).

        Returns {"populations": [...], "groups": [...]} in topological order; a group whose input
        is a channel concat lists its `srcs` and `src_channels` (the exporter slices it).
        """
        pops_out: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        for pop in self.pops:
            q = pop.quant()
            pops_out.append({"name": pop.name, "kind": "lif", "shape": list(pop.shape), "scale": q.scale.clone(),
                             "bias_int": q.bias_int.clone(), "bias": q.bias_int * q.scale,
                             "vth_int": q.vth_int.clone(), "vth": q.vth.clone(), "tau": self.tau,
                             "bits": pop.bits, "delta": None if q.delta is None else q.delta.clone()})
            for conv, w, m in zip(pop.convs, q.w_int, q.masks):
                groups.append({"name": conv.name, "kind": "conv", "srcs": list(conv.srcs),
                               "src_channels": list(conv.src_channels), "dst": pop.name, "w_int": w.clone(),
                               "weight": w * q.scale, "mask": None if m is None else m.bool(),
                               "stride": conv.stride, "padding": conv.padding, "bits": pop.bits,
                               "scale": q.scale.clone(), "input_levels": pop.input_levels,
                               "reads_cell_output": conv.reads_cell_output})
            for sk in pop.skips:
                groups.append({"name": sk.name, "kind": "identity", "srcs": [sk.src],
                               "src_channels": [self.population(sk.src).channels], "dst": pop.name,
                               "n": q.skip_n, "w_int": torch.tensor(float(q.skip_n), dtype=q.scale.dtype),
                               "weight": q.skip_n * q.scale, "mask": None, "stride": sk.stride, "padding": 0,
                               "bits": None, "scale": q.scale.clone()})
        r = self.readout
        q = r.quant()
        pops_out.append({"name": r.name, "kind": "readout", "shape": list(r.shape), "scale": q.scale.clone(),
                         "bias_int": q.bias_int.clone(), "bias": q.bias_int.double() * q.scale.double(),
                         "vth_int": None, "vth": None, "tau": 0.0, "bits": r.bits, "delta": q.delta.clone(),
                         "hw": list(r.hw), "s_fc": q.extra["s_fc"].clone()})
        groups.append({"name": f"{r.name}.fc", "kind": "fc", "srcs": list(r.srcs), "src_channels": list(r.src_channels),
                       "dst": r.name, "w_int": q.w_int[0].clone(), "weight": q.w_int[0] * q.scale, "mask": None,
                       "stride": 1, "padding": 0, "bits": r.bits, "scale": q.scale.clone(), "hw": list(r.hw)})
        return {"populations": pops_out, "groups": groups, "T": self.T, "in_bits": self.in_bits,
                "input_shape": list(self.input_shape)}
