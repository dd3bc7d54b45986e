"""Retraining vs search: samples/s and effective GFLOP/s of one training step on the same net shape.

The search step is one LitE-SNN iteration (weight step + architecture step, two forwards and two
backwards over the supernet); the retraining step is one SGD step of the DeployNet of a genotype
with the same backbone (C, cells, reductions, T, 4-bit cells, p = 0.8), in each neuron mode.
FLOPs are what torch's FlopCounterMode counts for one step (convolutions and matmuls, forward and
backward, dense: pruned weights count), so "effective GFLOP/s" compares how well each path keeps
the CPU busy with useful arithmetic. "retrain_integer_stepwise" is the integer LIF stepped in
autograd (`integer.lava_lif`, before the fused op). Goal (issue "Networks worth deploying"): retraining at least
half the search path's effective GFLOP/s.

    python benchmarks/bench_retrain.py                 # CIFAR-10 shape, C=16, 8 cells, batch 32, T=6
    python benchmarks/bench_retrain.py --quick         # seconds
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, run as a script)
from torch.utils.flop_counter import FlopCounterMode

RESULT = Path(__file__).resolve().parent / "results" / "retrain_speed.json"


def _measure(step: Callable[[], None], iters: int, warmup: int) -> tuple[float, float]:
    """(FLOPs of one step, median seconds per step)."""
    with FlopCounterMode(display=False) as fc:
        step()
    flops = float(fc.get_total_flops())
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return flops, sorted(times)[len(times) // 2]


def search_step(a: argparse.Namespace) -> Callable[[], None]:
    from lsnn.searcher.search.loop import SearchConfig, build_supernet, make_optimizers, search_iteration

    cfg = SearchConfig(T=a.T, C=a.C, cells=a.cells, reductions=tuple(a.reductions), batch_size=a.batch,
                       l1=5e-10, l2=5e-14, p=0.8)
    net = build_supernet(cfg, (a.cin, a.hw, a.hw), 10)
    wopt, _, aopt = make_optimizers(net, cfg)
    x, y = torch.rand(a.batch, a.cin, a.hw, a.hw), torch.randint(0, 10, (a.batch,))
    return lambda: search_iteration(net, x, y, x, y, cfg, wopt, aopt, train_psi=True) and None


def retrain_step(a: argparse.Namespace, mode: str, fused: bool = True) -> Callable[[], None]:
    from lsnn.searcher.deploy.retrain import RetrainConfig, build_net, param_groups
    from lsnn.searcher.space.random_genotype import random_genotype

    g = random_genotype(0, cells=a.cells, reductions=a.reductions, C=a.C, T_min=a.T, T_max=a.T, bits=(4,),
                        input_shape=(a.cin, a.hw, a.hw), num_classes=10, prune_rates=(0.8,),
                        aux_cell=max(0, a.cells - 3))
    net = build_net(g, RetrainConfig(lif_mode=mode)).train()
    for p in net.pops:
        p.fused = fused
    opt = torch.optim.SGD(param_groups(net, 3e-4), lr=0.01, momentum=0.9)
    x, y = torch.rand(a.batch, a.cin, a.hw, a.hw), torch.randint(0, 10, (a.batch,))

    def step() -> None:
        r = net.forward_all(x)
        loss = F.cross_entropy(r["logits"], y) + (0.4 * F.cross_entropy(r["aux"], y) if r["aux"] is not None else 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--reductions", type=int, nargs="*", default=[2, 5])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--hw", type=int, default=32)
    ap.add_argument("--cin", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="C=8, 3 cells, batch 8, T=3, 16x16")
    ap.add_argument("--out", type=Path, default=RESULT)
    a = ap.parse_args(argv)
    if a.quick:
        a.C, a.cells, a.reductions, a.batch, a.T, a.hw = 8, 3, [1, 2], 8, 3, 16
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows: dict[str, Any] = {}
    for name, make in (("search", lambda: search_step(a)), ("retrain_float", lambda: retrain_step(a, "float")),
                       ("retrain_integer", lambda: retrain_step(a, "lava")),
                       ("retrain_integer_stepwise", lambda: retrain_step(a, "lava", fused=False))):
        flops, sec = _measure(make(), a.iters, a.warmup)
        rows[name] = {"gflop_per_step": flops / 1e9, "seconds_per_step": sec, "samples_per_s": a.batch / sec,
                      "effective_gflops": flops / 1e9 / sec}
        print(f"{name:>16}: {flops / 1e9:8.2f} GFLOP/step, {sec:7.3f} s/step, {a.batch / sec:8.1f} samples/s, "
              f"{flops / 1e9 / sec:6.2f} effective GFLOP/s", flush=True)
    for mode in ("retrain_float", "retrain_integer", "retrain_integer_stepwise"):
        rows[mode]["gflops_ratio_to_search"] = rows[mode]["effective_gflops"] / rows["search"]["effective_gflops"]
        print(f"{mode}: {rows[mode]['gflops_ratio_to_search']:.2f} x the search path's effective GFLOP/s")
    out = {"setting": {k: getattr(a, k) for k in ("C", "cells", "reductions", "batch", "T", "hw", "cin", "threads",
                                                  "iters")},
           "cpu": cpu_model(), "torch": torch.__version__, "python": platform.python_version(), "results": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
