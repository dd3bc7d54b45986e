"""The LitE-SNN two-step joint optimisation (Sec. 3.4) with checkpoint/resume.

Per iteration: step 1, forward + Eq. 15 + backward, SGD on the weights (conv/FC weights, BN,
thresholds); step 2, a second forward with the updated weights, Eq. 15, Adam on alpha, beta,
the mask scores and psi together. `arch_data="same"` reuses the step-1 batch (the paper's code,
default); "heldout" draws it from a held-out half of the training data (DARTS). psi stays uniform
(not updated) for `psi_warmup_epochs`; with `arch_warmup_epochs` every architecture parameter
waits and the first epochs run step 1 only (a weight warm-up, as DARTS-family searches use). The epoch's data order depends only on (seed, epoch), and
the checkpoint written after every epoch holds everything else, so a resumed run continues
exactly where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from lsnn import cost_model as cm
from lsnn.errors import ConfigError, DatasetError
from lsnn.searcher.search.decode import decode
from lsnn.searcher.search.loss import absolute_weights, initial_costs, search_loss
from lsnn.searcher.search.state import (  # noqa: F401
    CKPT_NAME,
    as_tensors,
    load_checkpoint,
    resolve_conv_dtype,
    save_checkpoint,
    tune_allocator,
)
from lsnn.searcher.search.timestep import decoded_T, prefix_accuracy
from lsnn.searcher.space.cell import CONV
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.space.quant import edmips_quantize
from lsnn.searcher.space.supernet import Supernet

SAVE_DTYPES = {"float16": torch.float16, "float32": None}
CONV_DTYPES = ("auto", "bfloat16", "float32")
COST_WEIGHTS = ("absolute", "relative")


@dataclass
class SearchConfig:
    """Everything the supernet search needs (defaults: docs/DESIGN.md section 2 / the paper)."""

    T: int = 6                       # candidate timesteps 1..T
    C: int = 16
    cells: int = 8
    reductions: tuple[int, ...] | list[int] = (2, 5)
    epochs: int = 50
    batch_size: int = 32
    l1: float = 0.0
    l2: float = 0.0
    cost_weights: str = "absolute"   # l1/l2 "absolute" (per bit / Bit-SynOp) or "relative" (to the initial costs)
    p: float = 0.5
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None
    psi_warmup_epochs: int = 5
    arch_warmup_epochs: int = 0      # first epochs with the weight step only (alpha, beta, masks, psi wait)
    arch_data: str = "same"          # "same" (paper's code) or "heldout" (DARTS)
    differentiable_rate: bool = False
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_betas: tuple[float, float] | list[float] = (0.5, 0.999)
    a_weight_decay: float = 1e-3
    num_classes: int | None = None   # None: from the labels
    input_shape: tuple[int, int, int] | list[int] | None = None   # None: from the data
    compconv: str = "shared"         # "shared" (Eq. 8-11) or "naive" (Eq. 4-7)
    edge_affine: bool = False
    save_dtype: str = "float16"      # membranes kept for backward: "float16" (half memory) or "float32"
    conv_dtype: str = "float32"      # CompConvs: "float32" (exact, same result on every machine), "bfloat16"
    #                                  (~20 % faster on CPUs with native bf16), "auto" (bfloat16 where native)
    eval_batch_size: int = 256
    fixed_bits: int | None = None    # fix beta at these bits (no bit search): the sequential baseline
    fixed_T: int | None = None       # fix psi at this T (no timestep search)
    fixed_masks: bool = False        # keep the mask scores at their init (with p = 0: no mask)
    max_skips: int | None = None     # decoding: at most this many skip edges per cell (P-DARTS); None: no cap
    progress: bool = True
    tune_malloc: bool = True

    def validate(self) -> "SearchConfig":
        for key in ("T", "C", "cells", "epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"search config: '{key}' must be >= 1, got {getattr(self, key)}")
        if self.max_skips is not None and self.max_skips < 0:
            raise ConfigError(f"search config: 'max_skips' must be >= 0, got {self.max_skips}")
        for key in ("psi_warmup_epochs", "arch_warmup_epochs"):
            if int(getattr(self, key)) < 0:
                raise ConfigError(f"search config: '{key}' must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.p < 1.0:
            raise ConfigError(f"search config: 'p' (prune rate) must be in [0, 1), got {self.p}")
        if self.l1 < 0 or self.l2 < 0:
            raise ConfigError(f"search config: 'l1' and 'l2' must be >= 0, got {self.l1}, {self.l2}")
        if self.arch_data not in ("same", "heldout"):
            raise ConfigError(f"search config: 'arch_data' must be 'same' or 'heldout', got '{self.arch_data}'")
        if self.cost_weights not in COST_WEIGHTS:
            raise ConfigError(f"search config: 'cost_weights' must be one of {', '.join(COST_WEIGHTS)}, "
                              f"got '{self.cost_weights}'")
        if self.save_dtype not in SAVE_DTYPES:
            raise ConfigError(f"search config: 'save_dtype' must be one of {', '.join(SAVE_DTYPES)}, "
                              f"got '{self.save_dtype}'")
        if self.conv_dtype not in CONV_DTYPES:
            raise ConfigError(f"search config: 'conv_dtype' must be one of {', '.join(CONV_DTYPES)}, "
                              f"got '{self.conv_dtype}'")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"search config: 'num_threads' must be >= 1, got {self.num_threads}")
        bad = [r for r in self.reductions if not 0 <= int(r) < self.cells]
        if bad:
            raise ConfigError(f"search config: 'reductions' {list(self.reductions)} must be cell indices "
                              f"in [0, {self.cells})")
        return self


@dataclass
class SearchResult:
    genotype: Genotype
    history: list[dict[str, Any]]
    net: Supernet | None = field(default=None, repr=False)

    def weight_distribution(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Fig. 2(c) data for the largest CompConv edge: W, e(W) (bit-mixed, Eq. 10), mask, title."""
        if self.net is None:
            raise ConfigError("search result has no supernet")
        best = None
        for k, cell in enumerate(self.net.cells):
            for e, mixed in enumerate(cell.edges):
                conv = mixed.ops["conv3x3"].conv
                if best is None or conv.weight.numel() > best[2].weight.numel():
                    best = (k, e, conv, cell)
        k, e, conv, cell = best
        with torch.no_grad():
            beta_sm = torch.softmax(cell.beta, 0)
            if conv.weight.dim() == 5:      # naive: the most likely branch
                j = int(torch.argmax(beta_sm))
                w = conv.weight[j]
                mixed_w = edmips_quantize(w, conv.bits[j])
                mask = conv.mask(j)
            else:
                w, mixed_w, mask = conv.weight, conv.mixed_weight(beta_sm), conv.mask()
        i, j = cell.edge_src_node[e]
        return (w.detach().cpu().numpy(), mixed_w.detach().cpu().numpy(), mask.detach().cpu().numpy(),
                f"cell {k} edge x{i}->node{j}: W, e(W), W_output (p={conv.prune_rate:g})")


def build_supernet(cfg: SearchConfig, input_shape: tuple[int, int, int], num_classes: int) -> Supernet:
    """The supernet of `cfg` (seeded: the same seed gives the same initial weights)."""
    torch.manual_seed(cfg.seed)
    return Supernet(input_shape, num_classes, C=cfg.C, cells=cfg.cells, reductions=tuple(cfg.reductions), T=cfg.T,
                    prune_rate=cfg.p, compconv=cfg.compconv, edge_affine=cfg.edge_affine,
                    save_dtype=SAVE_DTYPES[cfg.save_dtype], spike_dtype=resolve_conv_dtype(cfg.conv_dtype, cfg.device))


def make_optimizers(net: Supernet, cfg: SearchConfig
                    ) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR, torch.optim.Adam]:
    """SGD (+ cosine schedule over the epochs) for the weights, Adam for the architecture."""
    wopt = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                           weight_decay=cfg.w_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(wopt, T_max=cfg.epochs, eta_min=cfg.w_lr_min)
    aopt = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, betas=tuple(cfg.a_betas),
                            weight_decay=cfg.a_weight_decay)
    return wopt, sched, aopt


def _set_trainable(params: list[torch.nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def search_iteration(net: Supernet, xw: torch.Tensor, yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor,
                     cfg: SearchConfig, wopt: torch.optim.Optimizer, aopt: torch.optim.Optimizer,
                     train_psi: bool = True, train_arch: bool = True) -> dict[str, Any]:
    """One joint-optimisation iteration; returns the step-1 loss terms, logits and per-step rates
    ([populations, T]: stem, then x_0, x_1 and the nodes of every cell). Without `train_arch`
    only step 1 runs (the weight warm-up)."""
    weights, arch = net.weight_parameters(), net.arch_parameters()
    # step 1: weights
    _set_trainable(arch, False)
    _set_trainable(weights, True)
    wopt.zero_grad(set_to_none=True)
    out = net(xw, rate_grad=cfg.differentiable_rate)
    terms = search_loss(net, out, yw, cfg.l1, cfg.l2)
    terms.total.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
    wopt.step()
    stats = {"loss": float(terms.total.detach()), "ce": float(terms.ce.detach()),
             "mem_bits": float(terms.mem_bits.detach()), "synops": float(terms.synops.detach()),
             "bit_synops": float(terms.bit_synops.detach()),
             "logits": out.logits.detach(),
             "rates": torch.cat([out.stem_rate.detach().view(1, -1)] + [r.detach() for r in out.cell_rates])}
    del terms, out
    if not train_arch:
        return stats
    # step 2: architecture (alpha, beta, scores, psi) on the updated weights
    _set_trainable(weights, False)
    _set_trainable(arch, True)
    psi_free = any(p is net.psi for p in arch)           # not fixed by fix_choices
    net.psi.requires_grad_(train_psi and psi_free)
    aopt.zero_grad(set_to_none=True)
    out2 = net(xa, rate_grad=cfg.differentiable_rate)
    search_loss(net, out2, ya, cfg.l1, cfg.l2).total.backward()
    aopt.step()
    _set_trainable(weights, True)
    net.psi.requires_grad_(psi_free)
    return stats


@torch.no_grad()
def evaluate(net: Supernet, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device
             ) -> list[float]:
    """Accuracy with the logits averaged over the first t steps, t = 1..T (eval-mode BN)."""
    was = net.training
    net.eval()
    correct = torch.zeros(net.T, dtype=torch.int64)
    for s in range(0, x.shape[0], batch_size):
        out = net(x[s:s + batch_size].to(device))
        correct += prefix_accuracy(out.logits, y[s:s + batch_size].to(device)).cpu()
    net.train(was)
    return (correct.double() / x.shape[0]).tolist()


def _population_sizes(net: Supernet) -> list[int]:
    """Neurons per LIF population in forward order: stem, then per cell x_0, x_1, nodes."""
    cin, H, W = net.input_shape
    sizes = [net.C * H * W]
    for g, cell in zip(net.geometry, net.cells):
        sizes += [g["c"] * g["h_in"] * g["w_in"]] * 2 + [g["c"] * g["h_out"] * g["w_out"]] * cell.steps
    return sizes


def _mean_rate(rates: torch.Tensor, sizes: list[int]) -> float:
    """Neuron-weighted mean firing rate (spikes per neuron per step) over all LIF populations
    (rates: [populations, T] per-step rates in forward order)."""
    rates = rates.mean(1)
    w = torch.tensor(sizes, dtype=rates.dtype, device=rates.device)
    return float((rates * w).sum() / w.sum())


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _checked_data(cfg: SearchConfig, train: Any, val: Any) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val, number of classes), checked against each other and cfg."""
    xtr, ytr = as_tensors(train, "train")
    xva, yva = as_tensors(val, "val")
    shape = tuple(int(v) for v in xtr.shape[1:])
    if tuple(xva.shape[1:]) != shape:
        raise DatasetError(f"val x: sample shape {list(xva.shape[1:])} differs from train {list(shape)}")
    if cfg.input_shape is not None and tuple(int(v) for v in cfg.input_shape) != shape:
        raise ConfigError(f"search config: 'input_shape' {list(cfg.input_shape)} does not match the data {list(shape)}")
    n_cls = int(max(int(ytr.max()), int(yva.max()))) + 1
    if cfg.num_classes is not None:
        if n_cls > cfg.num_classes:
            raise DatasetError(f"labels reach {n_cls - 1} but 'num_classes' is {cfg.num_classes}")
        n_cls = int(cfg.num_classes)
    return xtr, ytr, xva, yva, n_cls


def _split_indices(cfg: SearchConfig, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the weight step's and the architecture step's samples (the same, or two halves)."""
    if cfg.arch_data != "heldout":
        idx = torch.arange(n)
        return idx, idx
    if n < 2:
        raise DatasetError("train: 'heldout' architecture data needs at least 2 samples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    return perm[: n // 2], perm[n // 2:]


def _search_epoch(net: Supernet, cfg: SearchConfig, xtr: torch.Tensor, ytr: torch.Tensor, w_idx: torch.Tensor,
                  a_idx: torch.Tensor, epoch: int, opts: tuple[Any, Any], device: torch.device,
                  sizes: Any) -> tuple[dict[str, float], int, float]:
    """One epoch of two-step iterations in the seeded order of (seed, epoch): (summed loss terms
    and spike rate, iterations, training accuracy)."""
    wopt, aopt = opts
    bs = min(cfg.batch_size, len(w_idx))
    iters = max(1, len(w_idx) // bs)
    order_w = w_idx[_epoch_order(len(w_idx), cfg.seed, epoch)]
    order_a = order_w if cfg.arch_data == "same" else a_idx[_epoch_order(len(a_idx), cfg.seed + 7919, epoch)]
    train_psi = epoch >= cfg.psi_warmup_epochs
    train_arch = epoch >= cfg.arch_warmup_epochs
    acc = {k: 0.0 for k in ("loss", "ce", "mem_bits", "synops", "bit_synops", "spike_rate")}
    correct = 0
    seen = 0
    bar = tqdm(range(iters), desc=f"search epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not cfg.progress, dynamic_ncols=True)
    for it in bar:
        iw = order_w[it * bs:(it + 1) * bs]
        xw, yw = xtr[iw].to(device), ytr[iw].to(device)
        if cfg.arch_data == "same":
            xa, ya = xw, yw
        else:   # the held-out half, cycled if it is the shorter one
            s0 = (it * bs) % max(1, len(order_a) - bs + 1)
            ia = order_a[s0:s0 + bs]
            xa, ya = xtr[ia].to(device), ytr[ia].to(device)
        st = search_iteration(net, xw, yw, xa, ya, cfg, wopt, aopt, train_psi, train_arch)
        for k in ("loss", "ce", "mem_bits", "synops", "bit_synops"):
            acc[k] += st[k]
        acc["spike_rate"] += _mean_rate(st["rates"], sizes)
        correct += int((st["logits"].mean(0).argmax(-1) == yw).sum())
        seen += len(yw)
        bar.set_postfix(loss=f"{st['loss']:.3f}", ce=f"{st['ce']:.3f}")
    bar.close()
    return acc, iters, correct / max(seen, 1)


def run_search(cfg: SearchConfig, train: Any, val: Any, out_dir: str | Path, resume: bool = False,
               on_epoch: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """Search, checkpointing `out_dir/search_ckpt.pt` after every epoch; returns the decoded genotype
    and the per-epoch records (each also passed to `on_epoch`)."""
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if cfg.tune_malloc:
        tune_allocator()
    device = torch.device(cfg.device)
    xtr, ytr, xva, yva, n_cls = _checked_data(cfg, train, val)
    net = build_supernet(cfg, tuple(int(v) for v in xtr.shape[1:]), n_cls).to(device)
    net.fix_choices(cfg.fixed_bits, cfg.fixed_T, cfg.fixed_masks)
    costs0 = initial_costs(net, xtr[:cfg.batch_size].to(device))     # before any step, also on resume
    l1, l2 = absolute_weights(cfg.l1, cfg.l2, cfg.cost_weights, costs0)
    wopt, sched, aopt = make_optimizers(net, cfg)
    history: list[dict[str, Any]] = []
    start = 0
    ckpt_path = out / CKPT_NAME
    if resume and ckpt_path.is_file():
        start, history = load_checkpoint(ckpt_path, cfg, net, wopt, sched, aopt)
    w_idx, a_idx = _split_indices(cfg, xtr.shape[0])
    sizes = _population_sizes(net)
    step_cfg = replace(cfg, l1=l1, l2=l2, cost_weights="absolute")   # what Eq. 15 multiplies by
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        acc, iters, train_acc = _search_epoch(net, step_cfg, xtr, ytr, w_idx, a_idx, epoch, (wopt, aopt), device,
                                              sizes)
        lr = wopt.param_groups[0]["lr"]          # the weight lr this epoch ran with
        sched.step()
        val_t = evaluate(net, xva, yva, cfg.eval_batch_size, device)
        rec = _epoch_record(net, epoch, acc, iters, train_acc, val_t, time.perf_counter() - t0, lr)
        rec.update({"l1_abs": l1, "l2_abs": l2, "initial_mem_bits": costs0[0], "initial_bit_synops": costs0[1]})
        history.append(rec)
        save_checkpoint(ckpt_path, cfg, net, wopt, sched, aopt, epoch + 1, history)
        if on_epoch is not None:
            on_epoch(rec)
    return SearchResult(decode(net, max_skips=cfg.max_skips), history, net)


def _epoch_record(net: Supernet, epoch: int, acc: dict[str, float], iters: int, train_acc: float,
                  val_t: list[float], seconds: float, lr: float) -> dict[str, Any]:
    """The per-epoch log record (plain JSON-able values). Losses and costs are epoch means of the
    weight step; train_acc / val_acc use the logits averaged over all T steps (val_acc_per_t: over
    the first t, val_acc_T_decoded: at the decoded T); costs are per sample; lr is the weight lr
    the epoch ran with."""
    with torch.no_grad():
        psi = torch.softmax(net.psi, 0)
        mem = acc["mem_bits"] / iters
        return {
            "epoch": epoch + 1,
            "loss": acc["loss"] / iters, "ce": acc["ce"] / iters,
            "mem_bits": mem, "bit_synops": acc["bit_synops"] / iters, "synops": acc["synops"] / iters,
            "model_size_bytes": mem / 8.0,
            "train_acc": train_acc, "val_acc": val_t[-1], "val_acc_per_t": val_t,
            "val_acc_T_decoded": val_t[decoded_T(net.psi) - 1],
            "psi": psi.tolist(), "T_expected": float(cm.expected_timesteps(psi)),
            "T_decoded": decoded_T(net.psi),
            "beta": [torch.softmax(c.beta, 0).tolist() for c in net.cells],
            "alpha": [torch.softmax(c.alpha, -1).tolist() for c in net.cells],
            "conv_share": [float(torch.softmax(c.alpha, -1)[:, CONV].mean()) for c in net.cells],
            "spike_rate": acc["spike_rate"] / iters,
            "lr": lr, "seconds": seconds,
        }


