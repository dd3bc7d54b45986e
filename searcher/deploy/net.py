"""The decoded LitE-SNN in deployable form: what is trained is what the compiler writes.

`DeployNet(genotype, C)` builds the searched topology (docs/DESIGN.md section 2) as a flat,
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
for bit (tests/searcher/deploy/test_net.py).

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
PyTorch model and the chip then agree spike for spike (tests/searcher/deploy/test_net.py), instead of
differing where a membrane lands within ~s_P/64 of the threshold.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from lsnn.contract.chip import BIAS_MANT_MAX
from lsnn.errors import ConfigError
from lsnn.searcher.deploy.layers import (
    _CL,
    INPUT,
    LIF_MODES,
    ConvGroup,
    Population,
    Readout,
    Skip,
    max_safe_stem_bits,
    out_size,
)
from lsnn.searcher.neuron import TAU_DEFAULT, VTH_INIT
from lsnn.searcher.space.genotype import CellGene, Genotype


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
            readout is modelled in the parts the compiler splits it into (None: no axon limit;
            parts are still cut small enough not to saturate, contract.readout.part_limit).
    """

    def __init__(self, genotype: Genotype, C: Optional[int] = None, in_bits: int = 8, stem_bits: Optional[int] = None,
                 fc_bits: int = 7, pre_bits: Optional[int] = None, tau: float = TAU_DEFAULT, vth_init: float = VTH_INIT,
                 aux: bool = True, bn_eps: float = 1e-5, bn_momentum: float = 0.1, lif_mode: str = "float",
                 bias_limit: Optional[int] = BIAS_MANT_MAX, readout_axon_limit: Optional[int] = None) -> None:
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
            cell_pops, nodes, out_hw = self._cell(k, cell, (s0, s1), (hw0, hw1), c_cur, pre_bits, bnkw, lifkw)
            pops.extend(cell_pops)
            s0, s1 = s1, [(n, c_cur) for n in nodes]
            hw0, hw1 = hw1, out_hw
            self.cell_outputs.append(nodes)
            self.cell_channels.append(c_cur)
            if genotype.aux_cell is not None and k == genotype.aux_cell:
                aux_in = c_cur * len(nodes)
        self.pops = nn.ModuleList(pops)
        self.readout = Readout("readout", [n for n, _ in s1], [c for _, c in s1], hw1, self.num_classes, self.fc_bits,
                               bias_limit=self.bias_limit, clip_lava=lif_mode == "lava",
                               axon_limit=readout_axon_limit, T=self.T)
        self.aux_cell = genotype.aux_cell if (aux and aux_in is not None) else None
        self.aux_head = nn.Linear(aux_in, self.num_classes) if self.aux_cell is not None else None
        self._index = {p.name: i for i, p in enumerate(self.pops)}

    def _cell(self, k: int, cell: CellGene, srcs: tuple[list, list], hws: tuple[tuple[int, int], tuple[int, int]],
              c: int, pre_bits: Optional[int], bnkw: dict, lifkw: dict
              ) -> tuple[list[Population], list[str], tuple[int, int]]:
        """The populations of cell k (its 1x1 preprocessing of the two inputs it reads, then its
        nodes), its node names and its output size. srcs / hws: the (population, channels) lists
        and sizes of the two previous cell outputs."""
        if cell.bits < 1:
            raise ConfigError(f"cell {k}: bits must be >= 1, got {cell.bits}")
        (hw0, hw1), prune = hws, self.genotype.prune_rate
        used = {e.src for node in cell.nodes for e in node}
        stride0 = 1 if hw0 == hw1 else 2
        if stride0 == 2 and (out_size(hw0[0], 2), out_size(hw0[1], 2)) != hw1:
            raise ConfigError(f"cell {k}: input sizes {hw0} and {hw1} do not match")
        pops: list[Population] = []
        pre_names: list[Optional[str]] = [None, None]
        for idx, (src, stride, hw) in enumerate(((srcs[0], stride0, hw0), (srcs[1], 1, hw1))):
            if idx not in used:
                continue  # never read by a node: not computed, not exported
            name = f"cell{k}.pre{idx}"
            g = ConvGroup(f"{name}.conv", [n for n, _ in src], [ch for _, ch in src], c, 1, stride, 0,
                          prune if pre_bits is None else 0.0, **bnkw)
            g.reads_cell_output = True
            pops.append(Population(name, c, (out_size(hw[0], stride), out_size(hw[1], stride)),
                                   cell.bits if pre_bits is None else pre_bits, [g], [], **lifkw))
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
                    convs.append(ConvGroup(ename, [src], [c], c, 3, stride, 1, prune, **bnkw))
                elif e.op == "skip":
                    skips.append(Skip(ename, src, stride))
                else:  # pragma: no cover - Edge validates op names
                    raise ConfigError(f"{ename}: unsupported op '{e.op}'")
            pops.append(Population(name, c, out_hw, cell.bits, convs, skips, **lifkw))
            nodes.append(name)
        return pops, nodes, out_hw

    # ------------------------------------------------------------------ modes and helpers

    def set_bn_frozen(self, frozen: bool = True) -> "DeployNet":
        """Frozen: BN uses running statistics (not updated) and the bias is rounded even in training,
        so the training forward equals the deployed forward (used for the last retraining epochs)."""
        for p in self.pops:
            p.bn_frozen = bool(frozen)
        self.readout.bn_frozen = bool(frozen)
        return self

    def set_lif_mode(self, mode: str) -> "DeployNet":
        """Switch every population's neuron between the float LIF (Eq. 1) and the chip's integer LIF
        (and the readout's 24-bit clip with it): a float warm phase, then the deploy-exact phase."""
        if mode not in LIF_MODES:
            raise ConfigError(f"unknown lif_mode '{mode}' (supported: {', '.join(LIF_MODES)})")
        if mode == "lava" and abs(self.tau - TAU_DEFAULT) > 1e-12:
            raise ConfigError("lif_mode 'lava' implements dv = 3277 (tau = 0.2) only")
        self.lif_mode = mode
        for p in self.pops:
            p.lif_mode = mode
        self.readout.clip_lava = mode == "lava"
        return self

    def set_prune_progress(self, fraction: float) -> "DeployNet":
        """Prune at `fraction` x the genotype's rate (a pruning ramp); 1.0 is the deployed rate."""
        for p in self.pops:
            for c in p.convs:
                c.prune_progress = float(min(1.0, max(0.0, fraction)))
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
        logits_t, logits = self.readout.forward_with_mean(acts, T, B)
        spikes = None
        if keep_spikes:
            spikes = {p.name: acts[p.name].detach().reshape(T, B, *p.shape) for p in self.pops}
        aux = None
        if self.training and self.aux_head is not None:
            nodes = self.cell_outputs[self.aux_cell]
            feat = torch.cat([acts[n].mean(dim=(2, 3)) for n in nodes], 1)
            aux = self.aux_head(feat).view(T, B, -1).mean(0)
        return {"logits_t": logits_t, "logits": logits, "aux": aux, "rates": rates, "spikes": spikes}

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
