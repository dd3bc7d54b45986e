"""The LitE-SNN supernet: 8-bit stem conv + BN + LIF -> searchable cells -> global pool -> 8-bit FC.

Backbones (Table 1): `cifar` 8 cells, reductions at cells 2 and 5 (0-based); `gsc` 6 cells,
reductions at 2 and 4; or any (cells, reductions) for small data. Input x in [0, 1] is fed as
8-bit graded values x_q = round(x * 255) / 255, the same at every step (direct encoding): the stem
conv runs once on [B] and its current feeds every step. Everything after the stem is [T*B, C, H, W]
channels_last; the output is logits per step [T, B, K] (FC on the spatial mean of each step's
spikes). psi (the timestep logits over candidates 1..T) lives here as well.

Precision: `spike_dtype` torch.bfloat16 makes every CompConv a bfloat16 conv (spikes are exact in
bfloat16; the effective weights are rounded to 8 significant bits per call, the master weights stay
float32; oneDNN accumulates in float32, the conv output is bfloat16), with BN statistics, node
currents and membranes in float32. `save_dtype` float16 keeps the membranes at half size for
backward (the forward stays exact). Both None: plain float32 (or the module's dtype), exact.

`cost` evaluates Eq. 12-14 and 18-20 on the forward's spike rates with the formulas of
`cost_model` (torch in, torch out: differentiable in alpha, beta, psi and, with rate_grad, the
spikes); `layer_table` gives the same numbers as a per-layer cost table.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lsnn import cost_model as cm
from lsnn.errors import ConfigError
from lsnn.searcher.neuron import FusedLIF
from lsnn.searcher.neuron.fused import CL
from lsnn.searcher.space.cell import CONV, SearchCell
from lsnn.searcher.space.compconv import FIXED_BITS, FixedQuantConv, FixedQuantLinear
from lsnn.searcher.space.ops import step_rates

BACKBONES: dict[str, tuple[int, tuple[int, ...], int | None]] = {
    # name: (cells, reduction cell indices, auxiliary-head cell index for retraining)
    "cifar": (8, (2, 5), 5),
    "gsc": (6, (2, 4), 4),
}
INPUT_BITS = 8


def backbone(name: str) -> tuple[int, tuple[int, ...], int | None]:
    """(cells, reductions, aux_cell) of a named backbone (Table 1)."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone '{name}' (supported: {', '.join(BACKBONES)})") from None


def aux_cell_for(cells: int, reductions: tuple[int, ...] | list[int]) -> int | None:
    """The paper's auxiliary-head cell when (cells, reductions) is a Table 1 backbone, else None."""
    for n, red, aux in BACKBONES.values():
        if n == cells and tuple(red) == tuple(reductions):
            return aux
    return None


def quantize_input(x: torch.Tensor, bits: int = INPUT_BITS) -> torch.Tensor:
    """x_q = round(x * (2^bits - 1)) / (2^bits - 1): the graded input the chip receives."""
    q = float(2 ** bits - 1)
    return torch.round(x.clamp(0.0, 1.0) * q) / q


@dataclass
class SupernetOutput:
    logits: torch.Tensor              # [T, B, K]
    stem_rate: torch.Tensor           # [T] firing rate of the stem LIF
    cell_rates: list[torch.Tensor]    # per cell [2 + steps, T]: x_0, x_1 (preprocessed), nodes


ONE_HOT_GAP = 50.0     # logit gap of a fixed choice: softmax gives the others e^-50, i.e. nothing


def one_hot_(logits: torch.Tensor, index: int) -> None:
    """Set `logits` in place so that softmax puts all weight on `index`."""
    logits.fill_(-ONE_HOT_GAP)
    logits[index] = 0.0


class Supernet(nn.Module):
    """The searchable network; all search parameters (alpha, beta, scores, psi) are its parameters."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, C: int = 16, cells: int = 8,
                 reductions: tuple[int, ...] | list[int] = (2, 5), T: int = 6, prune_rate: float = 0.5,
                 compconv: str = "shared", edge_affine: bool = False, in_bits: int = INPUT_BITS,
                 save_dtype: torch.dtype | None = torch.float16, spike_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        cin, H, W = (int(v) for v in input_shape)
        reductions = tuple(int(r) for r in reductions)
        if min(cin, H, W, num_classes, C, cells, T) < 1:
            raise ConfigError(f"supernet: input_shape {tuple(input_shape)}, num_classes {num_classes}, C {C}, "
                              f"cells {cells} and T {T} must all be >= 1")
        bad = [r for r in reductions if not 0 <= r < cells]
        if bad or len(set(reductions)) != len(reductions):
            raise ConfigError(f"supernet: reductions {list(reductions)} must be distinct cell indices in [0, {cells})")
        if not 0.0 <= prune_rate < 1.0:
            raise ConfigError(f"supernet: prune rate p must be in [0, 1), got {prune_rate}")
        self.input_shape, self.num_classes, self.C, self.T = (cin, H, W), int(num_classes), int(C), int(T)
        self.reductions, self.prune_rate, self.in_bits = reductions, float(prune_rate), int(in_bits)
        self.stem = FixedQuantConv(cin, C, 3)
        self.stem_bn = nn.BatchNorm2d(C)
        self.stem_lif = FusedLIF(save_dtype=save_dtype, out_dtype=spike_dtype)
        self.save_dtype, self.spike_dtype = save_dtype, spike_dtype
        self.cells = nn.ModuleList()
        self.geometry: list[dict[str, int]] = []   # per cell: channels and spatial sizes
        c_pp, c_p, c_cur, h, w = C, C, C, H, W
        red_prev = False
        for k in range(cells):
            red = k in reductions
            if red:
                c_cur *= 2
            cell = SearchCell(c_pp, c_p, c_cur, red, red_prev, prune_rate, compconv, edge_affine,
                              save_dtype=save_dtype, spike_dtype=spike_dtype)
            h_out, w_out = ((h + 1) // 2, (w + 1) // 2) if red else (h, w)
            self.geometry.append(dict(c_pp=c_pp, c_p=c_p, c=c_cur, h_in=h, w_in=w, h_out=h_out, w_out=w_out))
            self.cells.append(cell)
            c_pp, c_p, red_prev, h, w = c_p, cell.steps * c_cur, red, h_out, w_out
        self.out_hw = (h, w)
        self.fc = FixedQuantLinear(c_p, num_classes)
        self.psi = nn.Parameter(torch.zeros(T))

    # ----------------------------------------------------------------- parameters
    def _all_arch_parameters(self) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        for cell in self.cells:
            params += [cell.alpha, cell.beta]
        params += [p for n, p in self.named_parameters() if n.endswith(".scores")]
        params.append(self.psi)
        return params

    def arch_parameters(self) -> list[nn.Parameter]:
        """alpha and beta of every cell, every CompConv's mask scores, and psi (the Adam step),
        less those `fix_choices` fixed."""
        frozen = getattr(self, "_fixed_ids", set())
        return [p for p in self._all_arch_parameters() if id(p) not in frozen]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Conv/FC weights, BN affine parameters, thresholds, FC bias (the SGD step)."""
        arch = {id(p) for p in self._all_arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    @torch.no_grad()
    def fix_choices(self, bits: int | None = None, T: int | None = None, masks: bool = False) -> None:
        """Fix every cell's beta at `bits` and/or psi at `T` (one-hot logits) and/or the mask scores,
        and take them out of the architecture step: a search over the rest (the sequential baseline
        searches the architecture alone, at full precision, fixed T and no mask). Callable again
        to change a fixed choice."""
        from lsnn.searcher.space.quant import SEARCH_BITS

        fixed = getattr(self, "_fixed_ids", set())
        if bits is not None:
            if bits not in SEARCH_BITS:
                raise ConfigError(f"supernet: bits must be one of {list(SEARCH_BITS)}, got {bits}")
            for cell in self.cells:
                one_hot_(cell.beta, SEARCH_BITS.index(bits))
                fixed.add(id(cell.beta))
        if T is not None:
            if not 1 <= T <= self.T:
                raise ConfigError(f"supernet: T must be in [1, {self.T}], got {T}")
            one_hot_(self.psi, T - 1)
            fixed.add(id(self.psi))
        if masks:
            fixed |= {id(p) for n, p in self.named_parameters() if n.endswith(".scores")}
        for p in self._all_arch_parameters():
            if id(p) in fixed:
                p.requires_grad_(False)
        self._fixed_ids = fixed

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, fast: bool = True, rate_grad: bool = False) -> SupernetOutput:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(f"supernet: input must be [B, {', '.join(map(str, self.input_shape))}], "
                              f"got {list(x.shape)}")
        T, B = self.T, x.shape[0]
        xq = quantize_input(x, self.in_bits).contiguous(memory_format=CL)
        z = self.stem_bn(self.stem(xq))              # one conv on [B]: the input is the same at every step
        s, q = self.stem_lif.forward_packed(z, T, constant=True)   # [T*B, C, H, W]
        with torch.set_grad_enabled(rate_grad and torch.is_grad_enabled()):
            stem_rate = step_rates(s, T)
        s0, s1, q0, q1 = s, s, q, q
        cell_rates = []
        for cell in self.cells:
            o = cell(s0, s1, T, fast=fast, rate_grad=rate_grad, q0=q0, q1=q1)
            cell_rates.append(o.rates)
            s0, s1, q0, q1 = s1, o.out, q1, o.out_q
        pooled = s1.to(self.fc.weight.dtype).mean(dim=(2, 3))    # [T*B, C_last]
        logits = self.fc(pooled).view(T, B, -1)
        return SupernetOutput(logits, stem_rate, cell_rates)

    # ----------------------------------------------------------------- costs
    def _cell_sources(self, out: SupernetOutput) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per cell: (rate [T] of s0, rate [T] of s1) before preprocessing."""
        prev = [out.stem_rate, out.stem_rate]
        res = []
        for rates in out.cell_rates:
            res.append((prev[-2], prev[-1]))
            prev.append(rates[2:].mean(0))           # cell output = concat of equal-width nodes
        return res

    def cost(self, out: SupernetOutput) -> dict[str, torch.Tensor]:
        """mem_bits (Eq. 18, all weights), synops (Eq. 12, spiking layers), bit_synops (Eq. 20) per
        sample, and stem multiplications, for the psi of this net and the rates of `out`."""
        psi_sm = torch.softmax(self.psi, 0)
        S = lambda r: cm.weighted_spike_count(r, psi_sm)  # noqa: E731  (Eq. 14)
        p = self.prune_rate
        cin, H, W = self.input_shape
        C, K = self.C, self.num_classes
        t_eff = cm.expected_timesteps(psi_sm)
        mem = cm.mem_bits(FIXED_BITS, 3, 3, cin, C) + cm.mem_bits(FIXED_BITS, 1, 1, self.fc.cin, K)
        mults = cm.synops(3, 3, cin, C, H, W, t_eff)
        syn_total = 0.0
        bit_total = 0.0
        srcs = self._cell_sources(out)
        for cell, g, rates, (r0, r1) in zip(self.cells, self.geometry, out.cell_rates, srcs):
            bw = cm.expected_bits(torch.softmax(cell.beta, 0))
            a = torch.softmax(cell.alpha, -1)[:, CONV]
            s_x = cm.weighted_spike_count(rates, psi_sm)                      # [2 + steps]
            s_edge = s_x[[i for i, _ in cell.edge_src_node]]
            c = g["c"]
            mem = mem + bw * (cm.mem_bits(1, 1, 1, g["c_pp"], c, p) + cm.mem_bits(1, 1, 1, g["c_p"], c, p)
                              + cm.mem_bits(1, 3, 3, c, c, p) * a.sum())
            h0, w0 = g["h_in"], g["w_in"]
            syn = (cm.synops(1, 1, g["c_pp"], c, h0, w0, S(r0), p) + cm.synops(1, 1, g["c_p"], c, h0, w0, S(r1), p)
                   + cm.synops(3, 3, c, c, g["h_out"], g["w_out"], (a * s_edge).sum(), p))
            syn_total = syn_total + syn
            bit_total = bit_total + cm.bit_synops(bw, syn)
        last = out.cell_rates[-1][2:].mean(0) if out.cell_rates else out.stem_rate
        syn_fc = cm.synops(1, 1, self.fc.cin, K, 1, 1, S(last), 0.0, pool=self.out_hw[0] * self.out_hw[1])
        syn_total = syn_total + syn_fc
        bit_total = bit_total + cm.bit_synops(FIXED_BITS, syn_fc)
        return {"mem_bits": mem, "synops": syn_total, "bit_synops": bit_total, "mults": mults, "T_eff": t_eff}

    @torch.no_grad()
    def layer_table(self, out: SupernetOutput) -> tuple[list[cm.LayerCost], float]:
        """The per-layer cost table (expected bits, alpha weights, Eq. 14 rates) and the expected T."""
        psi_sm = torch.softmax(self.psi, 0)
        t_eff = float(cm.expected_timesteps(psi_sm))
        rate = lambda r: float(cm.weighted_spike_count(r, psi_sm)) / t_eff  # noqa: E731
        p, (cin, H, W), C = self.prune_rate, self.input_shape, self.C
        rows = [cm.LayerCost("stem", "stem", 3, 3, cin, C, H, W, FIXED_BITS, 0.0, 1.0, in_bits=self.in_bits)]
        for k, (cell, g, rates, (r0, r1)) in enumerate(zip(self.cells, self.geometry, out.cell_rates,
                                                          self._cell_sources(out))):
            bw = float(cm.expected_bits(torch.softmax(cell.beta, 0)))
            a = torch.softmax(cell.alpha, -1)[:, CONV]
            c = g["c"]
            h0, w0 = g["h_in"], g["w_in"]
            rows.append(cm.LayerCost(f"cell{k}.pre0", "conv", 1, 1, g["c_pp"], c, h0, w0, bw, p, rate(r0)))
            rows.append(cm.LayerCost(f"cell{k}.pre1", "conv", 1, 1, g["c_p"], c, h0, w0, bw, p, rate(r1)))
            for e, (i, j) in enumerate(cell.edge_src_node):
                rows.append(cm.LayerCost(f"cell{k}.e{i}->n{j}", "conv", 3, 3, c, c, g["h_out"], g["w_out"], bw, p,
                                         rate(rates[i]), weight=float(a[e])))
        last = out.cell_rates[-1][2:].mean(0) if out.cell_rates else out.stem_rate
        rows.append(cm.LayerCost("fc", "fc", 1, 1, self.fc.cin, self.num_classes, 1, 1, FIXED_BITS, 0.0, rate(last),
                                 pool=self.out_hw[0] * self.out_hw[1]))
        return rows, t_eff
