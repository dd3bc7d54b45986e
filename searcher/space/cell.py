"""A searchable LitE-SNN cell (DARTS-style, spiking): 2 inputs, 4 nodes, mixed edges, per-cell alpha and beta.

Inputs: s0 (output of cell k-2) and s1 (output of cell k-1), each through CompConv 1x1 + BN + LIF
(stride 2 on s0's if cell k-1 reduced, so sizes match). Node j = LIF(sum_{i < 2+j} MixedOp_ij(x_i)),
x_0, x_1 the preprocessed inputs, x_{2+j} node j. In a reduction cell the edges from x_0 and x_1
have stride 2. Output = channel concat of the 4 nodes. Every conv of the cell (preprocessing
included) shares the cell's beta; alpha is [14, 2] with columns in OP_NAMES order.

Fast path (default): the conv edges leaving one source run as ONE conv (their effective weights
concatenated along Cout) followed by ONE BatchNorm whose weight is alpha (times the BN affine, if
any), i.e. alpha * BN(conv) per edge; each group output is added into its nodes' float32 currents
as soon as it exists. The conv outputs are not kept for backward (ops.conv_bn recomputes them),
the spikes are kept as uint8 and the membranes in `save_dtype`. `fast=False` runs the plain
MixedOp modules: the reference the tests hold the fast path to (both update the BN running
statistics identically).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lsnn.searcher.neuron import FusedLIF
from lsnn.searcher.neuron.fused import CL
from lsnn.searcher.space.compconv import make_compconv
from lsnn.searcher.space.genotype import OP_NAMES
from lsnn.searcher.space.ops import MixedOp, conv_bn, skip_add_, step_rates
from lsnn.searcher.space.quant import SEARCH_BITS

STEPS = 4
CONV = OP_NAMES.index("conv3x3")
SKIP = OP_NAMES.index("skip")


def edge_list(steps: int = STEPS) -> list[tuple[int, int]]:
    """(source, node) of every edge, DARTS order: node 0's edges from x_0, x_1, then node 1's, ..."""
    return [(i, j) for j in range(steps) for i in range(2 + j)]


class Preprocess(nn.Module):
    """CompConv 1x1 (shares the cell's beta) + BN + LIF: turns a cell input into C spiking channels."""

    def __init__(self, cin: int, cout: int, stride: int, prune_rate: float, compconv: str = "shared",
                 save_dtype: torch.dtype | None = None, spike_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.conv = make_compconv(compconv, cin, cout, 1, stride, prune_rate)
        self.bn = nn.BatchNorm2d(cout)
        self.lif = FusedLIF(save_dtype=save_dtype, out_dtype=spike_dtype)

    def forward(self, x: torch.Tensor, beta_softmax: torch.Tensor, T: int,
                xq: torch.Tensor | tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(spikes, their uint8 copy)."""
        w = self.conv.effective_weight(beta_softmax).to(x.dtype)
        z = conv_bn(x, xq, w, self.conv.stride, self.conv.padding, self.bn, training=self.training)
        if self.training and self.bn.track_running_stats:
            self.bn.num_batches_tracked.add_(1)
        return self.lif.forward_packed(z, T)


@dataclass
class CellOutput:
    out: torch.Tensor             # [T*B, steps*C, H, W] spikes (channels_last)
    rates: torch.Tensor           # [2 + steps, T]: per-step firing rate of x_0 .. x_{steps+1}
    out_q: tuple[torch.Tensor, ...]   # uint8 copies of the nodes (channel parts of `out`) for backward


class SearchCell(nn.Module):
    """One searchable cell; `c` channels per node, `steps * c` output channels."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, prune_rate: float,
                 compconv: str = "shared", edge_affine: bool = False, steps: int = STEPS,
                 save_dtype: torch.dtype | None = None, spike_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.save_dtype = save_dtype
        self.c, self.steps, self.reduction, self.reduction_prev = c, steps, reduction, reduction_prev
        self.c_pp, self.c_p, self.prune_rate = c_pp, c_p, float(prune_rate)
        self.pre0 = Preprocess(c_pp, c, 2 if reduction_prev else 1, prune_rate, compconv, save_dtype, spike_dtype)
        self.pre1 = Preprocess(c_p, c, 1, prune_rate, compconv, save_dtype, spike_dtype)
        self.edge_src_node = edge_list(steps)
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and i < 2 else 1, prune_rate, compconv, edge_affine)
            for i, _ in self.edge_src_node)
        self.node_lifs = nn.ModuleList(FusedLIF(save_dtype=save_dtype, out_dtype=spike_dtype) for _ in range(steps))
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(self.edge_src_node), len(OP_NAMES)))
        self.beta = nn.Parameter(torch.zeros(len(SEARCH_BITS)))
        # edges leaving each source: [(edge index, node)]
        self.src_edges = [[(e, j) for e, (i, j) in enumerate(self.edge_src_node) if i == src]
                          for src in range(1 + steps)]

    @property
    def num_edges(self) -> int:
        return len(self.edge_src_node)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, T: int, fast: bool = True, rate_grad: bool = False,
                q0: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
                q1: torch.Tensor | tuple[torch.Tensor, ...] | None = None) -> CellOutput:
        """s0, s1: [T*B, C, H, W] input spikes (q0, q1: their uint8 copies, if already made)."""
        beta_sm = torch.softmax(self.beta, 0)
        alpha_sm = torch.softmax(self.alpha, -1)
        (x0, p0), (x1, p1) = self.pre0(s0, beta_sm, T, q0), self.pre1(s1, beta_sm, T, q1)
        xs, qs = [x0, x1], [p0, p1]
        if fast:
            self._nodes_fast(xs, qs, alpha_sm, beta_sm, T)
        else:
            self._nodes_reference(xs, qs, alpha_sm, beta_sm, T)
        with torch.set_grad_enabled(rate_grad and torch.is_grad_enabled()):
            rates = torch.stack([step_rates(x, T) for x in xs])
        return CellOutput(torch.cat(xs[2:], dim=1), rates, tuple(qs[2:]))

    def _nodes_reference(self, xs: list[torch.Tensor], qs: list[torch.Tensor], alpha_sm: torch.Tensor,
                         beta_sm: torch.Tensor, T: int) -> None:
        for j in range(self.steps):
            cur = sum(self.edges[e](xs[i], alpha_sm[e], beta_sm)
                      for e, (i, jj) in enumerate(self.edge_src_node) if jj == j)
            y, q = self.node_lifs[j].forward_packed(cur.contiguous(memory_format=CL), T)
            xs.append(y)
            qs.append(q)

    def _group(self, src: int, x: torch.Tensor, xq: torch.Tensor | None, alpha_sm: torch.Tensor,
               beta_sm: torch.Tensor) -> dict[int, torch.Tensor]:
        """One conv for all conv edges leaving `src`, one BatchNorm over its output with alpha (and
        the BN affine, if any) as the BN weight: alpha * BN(z) per edge. Returns node -> current."""
        edges = self.src_edges[src]
        ops = [self.edges[e].ops["conv3x3"] for e, _ in edges]
        w = torch.cat([op.conv.effective_weight(beta_sm) for op in ops], 0).to(x.dtype)
        conv = ops[0].conv
        bns = [op.bn for op in ops]
        a = alpha_sm[[e for e, _ in edges], CONV].repeat_interleave(self.c)
        weight = a * torch.cat([bn.weight for bn in bns]) if bns[0].affine else a
        bias = a * torch.cat([bn.bias for bn in bns]) if bns[0].affine else None
        track = bns[0].track_running_stats
        rm = torch.cat([bn.running_mean for bn in bns]) if track else None
        rv = torch.cat([bn.running_var for bn in bns]) if track else None
        y = conv_bn(x, xq, w, conv.stride, conv.padding, bns[0], weight, bias, rm, rv, self.training)
        if self.training and track:
            with torch.no_grad():
                for bn, m, v in zip(bns, rm.split(self.c), rv.split(self.c)):
                    bn.running_mean.copy_(m)
                    bn.running_var.copy_(v)
                    bn.num_batches_tracked.add_(1)
        # split (not slicing): autograd joins the per-node gradients with one cat
        return dict(zip((j for _, j in edges), y.split(self.c, dim=1)))

    def _nodes_fast(self, xs: list[torch.Tensor], qs: list[torch.Tensor], alpha_sm: torch.Tensor,
                    beta_sm: torch.Tensor, T: int) -> None:
        """Each group's BN output is added into the currents of its nodes as soon as it exists, so
        only the 4 node currents (not the 14 edge outputs) are alive between nodes."""
        cur: list[torch.Tensor | None] = [None] * self.steps
        into: list[list[int]] = [[] for _ in range(self.steps)]       # edges into each node
        for e, (i, j) in enumerate(self.edge_src_node):
            into[j].append(e)

        def accumulate(src: int) -> None:
            x, q = xs[src], qs[src]
            if self.reduction and src < 2:
                x, q = x[..., ::2, ::2], (None if q is None else q[..., ::2, ::2])
            for j, y in self._group(src, xs[src], qs[src], alpha_sm, beta_sm).items():
                # node currents accumulate in float32 even when the convs run in bfloat16
                cur[j] = (y.to(torch.promote_types(y.dtype, torch.float32), memory_format=CL, copy=True)
                          if cur[j] is None else cur[j].add_(y))
            for e, (i, j) in enumerate(self.edge_src_node):
                if i == src:
                    skip_add_(cur[j], x, alpha_sm[e, SKIP], q)

        accumulate(0)
        accumulate(1)
        for j in range(self.steps):
            y, q = self.node_lifs[j].forward_packed(cur[j], T)
            cur[j] = None
            xs.append(y)
            qs.append(q)
            if j < self.steps - 1:
                accumulate(2 + j)
