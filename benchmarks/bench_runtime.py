"""The integer emulator against Lava's CPU simulator (Loihi2SimCfg fixed_pt) on the same model and
the same samples: samples/s of each, their ratio, Lava's start-up and per-step cost.

Models (each is benchmarked if selected with --models):
- `digits`: tests/factories/runtime.digits_graph(fit_readout=True): stem conv3x3 (6 ch) -> A (8x8)
  -> conv3x3/s2 (12 ch, 50 % pruned) + identity/s2 skip -> B (4x4) -> dense readout (10), T=4,
  on the bundled digits test split. Its readout is a least-squares fit on the train split's spike
  counts, so the accuracy is a real number.
- `litesnn`: a decoded LitE-SNN network (random genotype, 3 cells of 4 nodes, C=4, T=4, digits
  input shape, random weights from `searcher.export.random_artifact`) compiled for loihi2 by the
  full compiler pipeline in a torch subprocess. A timing model, not a classifier (random weights).
- `cifar-random`: the CIFAR-size net of the issue (random genotype, 3x32x32 input, 5 cells,
  C = 12, 80 % pruned, T = 3, thresholds calibrated to 5-30 % spike rates), on 1,000 seeded
  random images. A timing model, not a classifier.
- a path to a `model.net` (e.g. `runs/digits/model.net`, the trained demo model): benchmarked on
  the test split of the dataset it was trained on.

The emulator runs its default backend ("fast": fused torch convolutions + compiled numba LIF,
whole batches on worker threads); the same backend with each synapse group in the form (dense or
event-driven) its first batch measures faster, and the NumPy reference backend, are timed on the
whole split too, for comparison.

Per model, in one process: Lava runs the first N samples (twice by default, the faster run
counts; no spike probes, the readout's v is read at every window end) and must give the
emulator's readout potentials and predictions exactly; one more Lava run with every
population's spikes recorded is compared step by step (`--no-verify` skips it). The emulator is
timed on the same N samples and on the whole test split (fastest of repeats: the machine is
shared, and the minimum is the least disturbed measurement, as for Lava). Ratios:
- `ratio_same_samples`: emulator samples/s on the N samples / Lava samples/s of its run of the N
  samples (build + start-up + all steps): what `lsnn run` pays for each engine.
- `ratio_steady_state`: emulator samples/s on the whole split / Lava's marginal rate once
  started, 1 / (T x per-step time) (samples stream one per T steps through the pipeline).

    .venv/bin/python benchmarks/bench_runtime.py [--models digits,litesnn] [--samples 8]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "runtime.json"
sys.path.insert(0, str(ROOT))                    # for tests.factories

LITESNN_SCRIPT = r"""
import random, sys, dataclasses
import numpy as np
from lsnn.searcher.space.random_genotype import random_genotype
from lsnn.searcher.deploy.export import random_artifact
from lsnn.compiler.pipeline import compile_artifact
from lsnn.hw_profiles.profile import load_profile
from lsnn.compiler.backend.netx import write_net
g0 = random_genotype(random.Random(0), cells=3, C=4, input_shape=(1, 8, 8), num_classes=10, T_min=4, T_max=4)
art = random_artifact(g0, seed=0, dataset_info={"name": "digits"})
write_net(compile_artifact(art, load_profile(target="loihi2")).graph, sys.argv[1])
"""

# the CIFAR-size net: 3x32x32 input, 5 cells, C = 12, 80 % pruned, T = 3, random weights whose
# thresholds are calibrated to 5-30 % spike rates (`random_artifact`); inputs are seeded random images
CIFAR_RANDOM_SCRIPT = r"""
import random, sys
from lsnn.searcher.space.random_genotype import random_genotype
from lsnn.searcher.deploy.export import random_artifact
from lsnn.compiler.pipeline import compile_artifact
from lsnn.hw_profiles.profile import load_profile
from lsnn.compiler.backend.netx import write_net
g0 = random_genotype(random.Random(0), cells=5, C=12, input_shape=(3, 32, 32), num_classes=10, T_min=3, T_max=3,
                     prune_rates=(0.8,))
art = random_artifact(g0, seed=0, dataset_info={"name": "random"})
write_net(compile_artifact(art, load_profile(target="loihi2")).graph, sys.argv[1])
"""
RANDOM_SAMPLES = 1000


def build_model(name: str, workdir: str):
    from lsnn.compiler.backend.netx import read_net, write_net

    if name.endswith(".net"):
        return read_net(name)
    path = os.path.join(workdir, f"{name}.net")
    if name == "digits":
        from tests.factories.runtime import digits_graph

        write_net(digits_graph(T=4, fit_readout=True), path)
    elif name in ("litesnn", "cifar-random"):
        script = LITESNN_SCRIPT if name == "litesnn" else CIFAR_RANDOM_SCRIPT
        subprocess.run([sys.executable, "-c", script, path], check=True, cwd=ROOT)
    else:
        raise SystemExit(f"unknown model {name!r} (digits, litesnn, cifar-random, or a path to a model.net)")
    return read_net(path)


def random_split(g):
    """`RANDOM_SAMPLES` seeded uniform images of the net's input shape (labels 0: no accuracy)."""
    from types import SimpleNamespace

    shape = tuple(g.input.shape)
    rng = np.random.default_rng(0)
    return SimpleNamespace(x=rng.random((RANDOM_SAMPLES, *shape), dtype=np.float32),
                           y=np.zeros(RANDOM_SAMPLES, dtype=np.int64))


def best_time(fn, repeats: int) -> float:
    """Fastest of `repeats` runs (the machine is shared: the minimum is the least disturbed)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(min(times))


def _other_forms(g, x: np.ndarray, xs: np.ndarray, full, repeats: int) -> dict:
    """Speed of the measured dense/event form per group and of the NumPy reference on the
    split, and whether both give the fast path's readout."""
    from lsnn.runtime.emulator import Emulator

    tuned_em = Emulator(g, synapse_form="measure")                       # dense or event-driven per group
    tuned_em.run(xs)
    t_tuned = best_time(lambda: tuned_em.run(x), repeats=min(3, repeats))
    forms = [it.choice for items in tuned_em.outgoing.values() for it in items if hasattr(it, "choice")]
    ref_em = Emulator(g, backend="numpy")                                # the NumPy reference
    ref_em.run(xs)
    t_ref = best_time(lambda: ref_em.run(x), repeats=min(3, repeats))
    return {"measured_forms_full_split_samples_per_s": len(x) / t_tuned,
            "measured_forms_identical": bool(np.array_equal(tuned_em.run(x).readout_v, full.readout_v)),
            "measured_forms_groups_event": forms.count("event"),
            "measured_forms_groups_dense": forms.count("dense"),
            "numpy_reference_full_split_samples_per_s": len(x) / t_ref,
            "numpy_reference_identical": bool(np.array_equal(ref_em.run(x).readout_v, full.readout_v))}


def bench_model(name: str, n_lava: int, verify: bool, workdir: str, lava_repeats: int,
                data_dir: str | None = None, emulator_samples: int | None = None, repeats: int = 5) -> dict:
    from lsnn.data.datasets import load_dataset
    from lsnn.runtime.emulator import Emulator, first_difference
    from lsnn.runtime.lava.client import run_lava
    from lsnn.runtime.netgraph import encode_input

    g = build_model(name, workdir)
    meta = g.meta if isinstance(g.meta, dict) else {}
    dataset = (meta.get("dataset") or {}).get("name", "digits") if isinstance(meta.get("dataset"), dict) else "digits"
    data = random_split(g) if dataset == "random" else load_dataset(dataset, data_dir, "test")
    x = encode_input(g, data.x)
    xs = x[:n_lava]
    em = Emulator(g)

    runs = [run_lava(g, xs, record_spikes=False) for _ in range(lava_repeats)]
    lr = min(runs, key=lambda r: r.build_s + r.run_s)                  # least disturbed Lava run
    lava_wall = lr.build_s + lr.run_s
    ref = em.run(xs)
    outputs_identical = bool(np.array_equal(lr.window_v, ref.readout_v)
                             and np.array_equal(lr.predictions, ref.predictions))
    spikes = first_difference(em.to_pipeline(xs), run_lava(g, xs, record_spikes=True).trace) if verify else None

    em.run(xs)                                                           # warm-up
    t_same = best_time(lambda: em.run(xs), repeats=15)
    if emulator_samples:                                                 # large nets: a prefix of the split
        x, data_y = x[:emulator_samples], data.y[:emulator_samples]
    else:
        data_y = data.y
    t_full = best_time(lambda: em.run(x), repeats=repeats)
    full = em.run(x)
    emu_same, emu_full = len(xs) / t_same, len(x) / t_full
    lava_sps = len(xs) / lava_wall
    lava_steady = 1.0 / (g.T * lr.per_step_s)
    return {
        "model": name,
        "populations": len(g.populations), "synapse_groups": len(g.synapses),
        "neurons": int(sum(p.size for p in g.populations)), "T": g.T, "latency": em.timing.latency,
        "lava": {"samples": len(xs), "steps": lr.num_steps, "processes": lr.num_processes, "runs": lava_repeats,
                 "wall_s_all_runs": [r.build_s + r.run_s for r in runs],
                 "build_s": lr.build_s, "startup_s": lr.startup_s, "per_step_s": lr.per_step_s,
                 "wall_s": lava_wall, "samples_per_s": lava_sps, "steady_samples_per_s": lava_steady},
        "emulator": {"same_samples": len(xs), "same_samples_s": t_same, "same_samples_per_s": emu_same,
                     "full_split_samples": len(x), "full_split_s": t_full, "full_split_samples_per_s": emu_full,
                     "batch": em.batch, "backend": em.backend,
                     "accuracy_full_split": float(np.mean(full.predictions == data_y)),
                     **_other_forms(g, x, xs, full, repeats)},
        "lava_accuracy_same_samples": float(np.mean(lr.predictions == data.y[:len(xs)])),
        "outputs_identical": outputs_identical,
        "every_layer_every_step_identical": None if not verify else spikes is None,
        "first_difference": spikes,
        "ratio_same_samples": emu_same / lava_sps,
        "ratio_steady_state": emu_full / lava_steady,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,litesnn")
    ap.add_argument("--samples", type=int, default=8, help="samples run on Lava")
    ap.add_argument("--no-verify", action="store_true", help="skip the spike-recording Lava run")
    ap.add_argument("--lava-repeats", type=int, default=2, help="timed Lava runs (the fastest counts)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--data", default=None, help="dataset folder or archive (for models not trained on digits)")
    ap.add_argument("--emulator-samples", type=int, default=None,
                    help="time the emulator on the first N test samples instead of the whole split")
    ap.add_argument("--repeats", type=int, default=5, help="timed emulator runs on the split (the fastest counts)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            row = bench_model(name.strip(), args.samples, not args.no_verify, tmp, args.lava_repeats,
                              args.data, args.emulator_samples, args.repeats)
            rows.append(row)
            print(f"{row['model']}: emulator {row['emulator']['same_samples_per_s']:.1f} samples/s on the "
                  f"{row['lava']['samples']} Lava samples, {row['emulator']['full_split_samples_per_s']:.1f} on "
                  f"the whole split; Lava {row['lava']['samples_per_s']:.3f} samples/s (start-up "
                  f"{row['lava']['startup_s']:.2f} s, {1e3 * row['lava']['per_step_s']:.1f} ms/step, "
                  f"{row['lava']['processes']} processes); ratio {row['ratio_same_samples']:.0f}x same samples, "
                  f"{row['ratio_steady_state']:.0f}x steady state; outputs identical: {row['outputs_identical']}, "
                  f"every layer/step: {row['every_layer_every_step_identical']}")
    import torch
    from machine import cpu_description

    from lsnn.runtime.lava.client import probe

    lava_env = probe()
    result = {
        "benchmark": "runtime: integer emulator vs Lava Loihi2SimCfg(fixed_pt)",
        "machine": {"cpu": cpu_description(), "platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
                    "numpy": np.__version__, "torch": torch.__version__, "lava_nc": lava_env["lava_nc"],
                    "lava_python": lava_env["python"]},
        "goal": "emulator >= 1000x faster than Lava at identical outputs",
        "models": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
