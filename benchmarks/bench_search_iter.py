"""Time and peak memory of one LitE-SNN search iteration (weight step + architecture step).

Runs the shared-weight CompConv (Eq. 8-11) and the naive per-branch variant (Eq. 4-7), each in
its own subprocess so that peak RSS is per variant, on random data, and writes
benchmarks/results/search_iter.json. Default setting = the docs/DESIGN.md target: CIFAR-10 shape,
C=16, 8 cells, batch 32, T=6, 2 threads (<= 8 s and <= 2 GB per iteration).

    python benchmarks/bench_search_iter.py            # the target setting (a few minutes)
    python benchmarks/bench_search_iter.py --quick    # a small setting (seconds)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, run as a script)

RESULT = Path(__file__).resolve().parent / "results" / "search_iter.json"


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # Linux: KiB -> GB


def _worker(a: argparse.Namespace) -> dict:
    import torch

    from lsnn.searcher.search.loop import (
        SearchConfig,
        build_supernet,
        make_optimizers,
        search_iteration,
        tune_allocator,
    )

    torch.set_num_threads(a.threads)
    malloc = tune_allocator() if not a.no_malloc_tuning else False
    cfg = SearchConfig(T=a.T, C=a.C, cells=a.cells, reductions=tuple(a.reductions), batch_size=a.batch,
                       l1=5e-10, l2=5e-14, p=0.8, compconv=a.variant, save_dtype=a.save_dtype,
                       conv_dtype=a.conv_dtype)
    rss_import = _rss_gb()
    net = build_supernet(cfg, (3, a.hw, a.hw), 10)
    wopt, _, aopt = make_optimizers(net, cfg)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.batch, 3, a.hw, a.hw, generator=g)
    y = torch.randint(0, 10, (a.batch,), generator=g)
    times, cpu, rss = [], [], []
    for i in range(a.warmup + a.iters):
        t0, c0 = time.perf_counter(), time.process_time()
        search_iteration(net, x, y, x, y, cfg, wopt, aopt, train_psi=True)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        rss.append(_rss_gb())
    timed = times[a.warmup:]
    return {"variant": a.variant, "seconds_per_iter": sum(timed) / len(timed), "seconds_min": min(timed),
            "seconds_all": [round(t, 3) for t in times], "cpu_seconds_all": [round(t, 3) for t in cpu],
            "peak_rss_gb": max(rss), "rss_after_iter_gb": [round(r, 3) for r in rss],
            "rss_after_import_gb": rss_import, "params": sum(p.numel() for p in net.parameters()),
            "malloc_tuned": malloc, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "numpy": __import__("numpy").__version__, "conv_dtype": str(net.spike_dtype or torch.float32)}


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line settings, with --quick and the default reduction cells applied."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--reductions", type=int, nargs="*", default=None, help="default: (2, 5) for 8 cells, else n//3, 2n//3")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--hw", type=int, default=32, help="input height = width (CIFAR: 32)")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per variant")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="shared,naive")
    ap.add_argument("--save-dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--conv-dtype", default="float32", choices=["auto", "bfloat16", "float32"])
    ap.add_argument("--no-malloc-tuning", action="store_true")
    ap.add_argument("--quick", action="store_true", help="C=8, 4 cells, batch 8, T=4, 16x16, 2 iterations")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="shared", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.C, a.cells, a.batch, a.T, a.hw, a.iters = 8, 4, 8, 4, 16, 2
    if a.reductions is None:
        a.reductions = [2, 5] if a.cells == 8 else sorted({a.cells // 3, 2 * a.cells // 3})
    return a


def _run_variant(a: argparse.Namespace, variant: str) -> dict | None:
    """Time one variant in a fresh interpreter (clean allocator, clean peak RSS); None on failure."""
    cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--C", str(a.C), "--cells", str(a.cells),
           "--batch", str(a.batch), "--T", str(a.T), "--hw", str(a.hw), "--iters", str(a.iters),
           "--warmup", str(a.warmup), "--threads", str(a.threads), "--save-dtype", a.save_dtype,
           "--conv-dtype", a.conv_dtype,
           "--reductions", *map(str, a.reductions)] + (["--no-malloc-tuning"] if a.no_malloc_tuning else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return None
    return json.loads(lines[-1][7:])


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    if a.worker:
        print("RESULT " + json.dumps(_worker(a)), flush=True)
        return 0
    setting = {k: getattr(a, k) for k in ("C", "cells", "reductions", "batch", "T", "hw", "iters", "warmup",
                                          "threads", "save_dtype", "conv_dtype")}
    print(f"search iteration benchmark: {setting}", flush=True)
    runs = {}
    load_before = _load()
    for variant in a.variants.split(","):
        t0 = time.perf_counter()
        r = _run_variant(a, variant)
        if r is None:
            return 1
        runs[variant] = r
        print(f"  {variant:>6}: {r['seconds_per_iter']:.2f} s/iter (min {r['seconds_min']:.2f}, all {r['seconds_all']}, "
              f"cpu {r['cpu_seconds_all']}), peak RSS {r['peak_rss_gb']:.2f} GB (after each iter "
              f"{r['rss_after_iter_gb']}; torch import {r['rss_after_import_gb']:.2f}), "
              f"{r['params']} params  [{time.perf_counter() - t0:.0f} s]", flush=True)
    result = {"setting": setting, "runs": runs, "load_avg_before": load_before, "load_avg_after": _load(),
              "cpus": os.cpu_count(), "machine": cpu_model(), "python": platform.python_version(),
              "torch": runs[next(iter(runs))].get("torch"), "numpy": runs[next(iter(runs))].get("numpy")}
    if "shared" in runs and "naive" in runs:
        s, n = runs["shared"], runs["naive"]
        result["naive_over_shared"] = {"time": n["seconds_per_iter"] / s["seconds_per_iter"],
                                       "peak_rss": n["peak_rss_gb"] / s["peak_rss_gb"]}
        print(f"  naive / shared: time x{result['naive_over_shared']['time']:.2f}, "
              f"peak RSS x{result['naive_over_shared']['peak_rss']:.2f}")
    print(f"  load average before {load_before}, after {result['load_avg_after']} ({os.cpu_count()} CPUs)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
