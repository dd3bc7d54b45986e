"""Compile time and peak memory of `lsnn compile` on paper-shaped networks (CIFAR backbone).

For each channel width C (default 36, 72, 144; 8 cells, 80 % pruned, random genotype and
weights on the EdMIPS grid, docs/SEMANTICS.md 1) a separate subprocess:
1. builds the artifact and saves model.pt (not timed),
2. compiles it from the file for the bundled `loihi2` profile (times until the design-rule
   check answers: the paper net does not fit 8 Loihi 2 chips, see the violations),
3. compiles it for `loihi2-relaxed` (loihi2 with 10,000 chips, 2^20 input/output axons and
   2 Mbit of synaptic memory per core, so every pass including place and emit runs) and times
   the whole pipeline, per pass. Its core counts are not a claim about any real chip.
Peak RSS is the child's `ru_maxrss` (it includes torch, imported to read model.pt as the CLI
does). Results go to benchmarks/results/compile.json.

    .venv/bin/python benchmarks/bench_compile.py [--sizes 36,72,144]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compile.json"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def relaxed_loihi2():
    import yaml

    from lsnn.hw_profiles import bundled_profiles
    from lsnn.hw_profiles.profile import profile_from_dict

    d = yaml.safe_load(bundled_profiles()["loihi2"].read_text())
    d["name"] = "loihi2-relaxed"
    d["chip"]["max_chips"] = 10_000
    d["core"]["input_axons"] = 2 ** 20
    d["core"]["output_axons"] = 2 ** 20
    d["core"]["synaptic_memory_bits"] = 2 ** 21   # the C=144 readout neuron needs 1.18 Mbit (147,456 inputs x 8 bits)
    return profile_from_dict(d, source="loihi2-relaxed (benchmark)")


def one(C: int, prune: float, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))                # for tests.factories
    from lsnn.compiler.pipeline import compile_artifact
    from lsnn.contract.artifact import save_artifact
    from lsnn.errors import DesignRuleError
    from lsnn.hw_profiles.profile import load_profile
    from tests.factories.compiler import paper_artifact, to_torch

    out: dict = {"C": C, "prune": prune, "cells": 8, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        art = paper_artifact(C=C, prune=prune, seed=seed)
        model = save_artifact(to_torch(art), Path(tmp) / "model.pt")
        del art
        out["generate_s"] = round(time.perf_counter() - t0, 2)
        out["model_pt_bytes"] = model.stat().st_size
        out["rss_before_compile_mb"] = round(_rss_mb(), 1)

        t0 = time.perf_counter()
        try:
            compile_artifact(model, load_profile(target="loihi2"), out=Path(tmp) / "a.net")
            out["loihi2"] = {"ok": True}
        except DesignRuleError as exc:
            out["loihi2"] = {"ok": False, "violations": dict(Counter(exc.rules())),
                             "first": [v.message for v in exc.violations[:3]]}
        out["loihi2"]["time_s"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        res = compile_artifact(model, relaxed_loihi2(), out=Path(tmp) / "model.net")
        out["compile_s"] = round(time.perf_counter() - t0, 2)
        out["passes_s"] = {k: round(v, 3) for k, v in res.timings.items()}
        out["peak_rss_mb"] = round(_rss_mb(), 1)
        out["net_bytes"] = res.net_path.stat().st_size
        t = res.report["totals"]
        out.update(populations=len(res.graph.populations), synapse_groups=len(res.graph.synapses),
                   neurons=t["neurons"], synapses=t["synapses"], cores=t["cores"], chips=t["chips"],
                   model_size_bytes=t["model_size_bytes"], latency_steps=t["latency_steps"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="36,72,144")
    ap.add_argument("--prune", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.prune, args.seed)))
        return
    rows = []
    for C in [int(x) for x in args.sizes.split(",")]:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", str(C), "--prune", str(args.prune),
                               "--seed", str(args.seed)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"C={C} failed")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["subprocess_wall_s"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(f"C={C:4d}: compile {row['compile_s']:6.2f} s (loihi2 DRC answer {row['loihi2']['time_s']:.2f} s), "
              f"peak RSS {row['peak_rss_mb']:7.1f} MB, {row['neurons']:,} neurons, {row['synapses']:,} synapses, "
              f"{row['cores']} cores / {row['chips']} chips (relaxed), net {row['net_bytes'] / 1e6:.1f} MB; "
              f"loihi2: {'fits' if row['loihi2']['ok'] else row['loihi2']['violations']}", flush=True)
    doc = {"benchmark": "lsnn compile, paper-shaped CIFAR backbone", "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
