"""DeployNet's building blocks: conv groups (BN folded, quantized on the population's grid),
skip edges, populations (the LIF in float or Lava's integer form) and the pooled FC readout.
See `deploy_net` for the quantization and training semantics they implement."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lsnn.contract.artifact import INPUT_NAME
from lsnn.contract.chip import ACC_LIMIT, STATE_BITS, VTH_SHIFT
from lsnn.contract.readout import part_limit, readout_partition
from lsnn.errors import ConfigError
from lsnn.searcher.neuron import (
    LIF,
    TAU_DEFAULT,
    VTH_INIT,
    fused_lava_lif,
    fused_lif,
    lava_lif,
    lava_readout_increments,
)
from lsnn.searcher.space.mask import topk_mask
from lsnn.searcher.space.quant import clip_ste, edmips_delta, edmips_quantize, round_ste

INPUT = INPUT_NAME
SKIP_ONLY_SCALE = 1.0 / 64.0
LIF_MODES = ("float", "lava")
_SF_MIN = 1e-12
_CL = torch.channels_last


VTH_INT_MAX = 2 ** (STATE_BITS - 1 - VTH_SHIFT) - 1  # 17-bit unsigned threshold mantissa: vth << 6 fits 24 bits


def max_safe_stem_bits(in_channels: int, in_bits: int = 8, kernel: int = 3) -> int:
    """The widest stem weight width b whose worst-case accumulator
    `kernel^2 * in_channels * (2^b - 1) * (2^in_bits - 1)` stays below 2^17 (no wrap on Lava).
    CIFAR (3 channels, 8-bit input): 4; one-channel inputs (digits, MFCC): 5. 0 if none fits."""
    per_weight = kernel * kernel * in_channels * (2 ** in_bits - 1)
    b = 0
    while per_weight * (2 ** (b + 1) - 1) < ACC_LIMIT:
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
        self.prune_progress = 1.0       # fraction of prune_rate in force (a ramp sets it; export needs 1)
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
        if self.scores is None:
            return None
        return topk_mask(self.scores, self.prune_rate * self.prune_progress)

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
        self.fused = True       # False: the step-by-step lava_lif (reference for the fused op's tests)
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
        vth_int = clip_ste(round_ste(self.lif.vth / scale), 0.0, float(VTH_INT_MAX))
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
            if self.fused:   # the same spikes as lava_lif, one op and a fraction of its autograd memory
                y = fused_lava_lif(cur, units, q.scale, q.vth_int, T, self.lif.params.temperature,
                                   constant=self.broadcast_time)
            else:
                y = lava_lif(self._time(units, T, B), q.scale, q.vth_int, self.lif.params.temperature).to(cur.dtype)
        else:
            cur, _ = self._drive_flat(acts, q, False)
            if fused_lif is not None:   # same forward values as neuron.LIF, a fraction of its autograd memory
                y = fused_lif(cur, q.vth, T, self.lif.params, constant=self.broadcast_time)[0]
            else:
                y = self.lif(self._time(cur, T, B), vth=q.vth)
        return y.reshape(T * B, C, H, W).contiguous(memory_format=_CL)


def _clamp_bias(b: torch.Tensor, limit: Optional[int]) -> torch.Tensor:
    return b if limit is None else clip_ste(b, -float(limit) - 1.0, float(limit))


def _sub(x: torch.Tensor, stride: int) -> torch.Tensor:
    return x if stride == 1 else x[:, :, ::stride, ::stride]



def readout_parts(src_channels: Sequence[int], hw: tuple[int, int], axon_limit: Optional[int], T: int,
                  w_max: int) -> list[torch.Tensor]:
    """Channel indices (into the concatenated readout input) of each part the compiler's
    split_readout pass cuts this readout into: parts no larger than a core of `axon_limit` input
    axons (None: no limit) and, where a channel allows, too small to saturate in T steps at
    weights up to `w_max` (contract.readout.part_limit); one part, all channels, if it fits."""
    total = sum(int(c) for c in src_channels)
    positions = int(hw[0]) * int(hw[1])
    limit = part_limit(axon_limit, T, w_max, positions)
    plan = readout_partition([(int(c), positions) for c in src_channels], limit)
    if plan is None:                       # the compiler leaves the readout whole
        return [torch.arange(total)]
    offsets = [0]
    for c in src_channels:
        offsets.append(offsets[-1] + int(c))
    return [torch.cat([torch.arange(offsets[i] + c0, offsets[i] + c1) for i, c0, c1 in part]) for part in plan]


class Readout(nn.Module):
    """Global average pool + FC at `bits` (range rule), per step: logits_t = s_R * (w_int @ sum_hw x + b_int);
    with `clip_lava` (lif_mode "lava") the chip's 24-bit current wrap and potential clip are applied
    to the running sum (`lava_readout_increments`), per part (the compiler's split_readout cuts
    the readout where `readout_parts` says, for a core of `axon_limit` input axons and a window
    of `T` steps; the host adds the parts), so the prediction is exactly the chip's."""

    def __init__(self, name: str, srcs: Sequence[str], src_channels: Sequence[int], hw: tuple[int, int],
                 num_classes: int, bits: int = 7, bias_limit: Optional[int] = None, clip_lava: bool = False,
                 axon_limit: Optional[int] = None, *, T: int) -> None:
        super().__init__()
        self.name = name
        self.kind = "readout"
        self.clip_lava = bool(clip_lava)
        self.axon_limit = None if axon_limit is None else int(axon_limit)
        self.parts = readout_parts(src_channels, hw, self.axon_limit, int(T), 2 ** int(bits) - 1)
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
        return self.forward_with_mean(acts, T, B)[0]

    def forward_with_mean(self, acts: dict[str, torch.Tensor], T: int, B: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-step logits [T, B, K], their mean over T [B, K]). The mean is scale * (exact integer
        sum over T) / T, so classes whose chip potentials are equal (saturated ones) get the very
        same float and argmax breaks the tie at the first index, as the chip's host does (the
        same in training, so a frozen-BN training forward stays the deployed forward)."""
        q = self.quant()
        feats = [acts[s].sum(dim=(2, 3)) for s in self.srcs]   # exact spike counts per channel
        f = feats[0] if len(feats) == 1 else torch.cat(feats, 1)
        if self.clip_lava:
            w, f64 = q.w_int[0].double(), f.double()
            acc = 0.0
            for g, idx in enumerate(self.parts):       # each part clips on its own; the host adds them
                a = (f64[:, idx] @ w[:, idx].t()).view(T, B, self.num_classes)
                bias = q.bias_int.double() if g == 0 else torch.zeros_like(q.bias_int, dtype=torch.float64)
                acc = acc + lava_readout_increments(a, bias)
        else:
            acc = f.double() @ q.w_int[0].double().t() + q.bias_int.double()
        acc = acc.view(T, B, self.num_classes)
        scale = q.scale.double()
        logits_t = (scale * acc).to(f.dtype)
        return logits_t, (scale * acc.sum(0) / T).to(f.dtype)


# ------------------------------------------------------------------------------------------ network
