"""The saturation-free readout split at Speech Commands scale: a random deployable net of the
example genotype at width C (untrained weights, lava mode, loihi2 parts), compiled for loihi2.
Reports parts, cores, compile / write / read seconds, model.net size, the readout's worst case
against the clip, and PyTorch vs emulator predictions on a few random clips.

    .venv/bin/python benchmarks/readout_split_scale.py [--C 12] [--out benchmarks/results/readout_split_scale.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

import torch


def measure(C: int, clips: int) -> dict:
    from machine import cpu_description

    from lsnn.compiler.backend.netx import read_net, write_net
    from lsnn.compiler.pipeline import compile_artifact
    from lsnn.hw_profiles.profile import load_profile
    from lsnn.runtime.emulator import Emulator
    from lsnn.runtime.netgraph import encode_input
    from lsnn.searcher.deploy.export import export_artifact, random_deploy_net
    from lsnn.searcher.space.genotype import Genotype

    torch.set_num_threads(1)
    prof = load_profile(target="loihi2")
    g = dataclasses.replace(Genotype.load("examples/gsc_subset_genotype.json"), C=C)
    with torch.no_grad():
        net, x = random_deploy_net(g, seed=0, batch=clips, lif_mode="lava",
                                   readout_axon_limit=prof.input_axons_per_core)
        torch_pred = net.forward_all(x)["logits"].argmax(-1).numpy()
    t = time.perf_counter()
    res = compile_artifact(export_artifact(net, g), prof)
    compile_s = time.perf_counter() - t
    gr = res.graph
    ro = gr.population_index(gr.readout)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.net")
        t = time.perf_counter()
        write_net(gr, path)
        write_s, size = time.perf_counter() - t, os.path.getsize(path)
        t = time.perf_counter()
        read_net(path)
        read_s = time.perf_counter() - t
    t = time.perf_counter()
    em = Emulator(gr).run(encode_input(gr, x.numpy()))
    emu_s = time.perf_counter() - t
    return {"C": C, "torch_parts": len(net.readout.parts), "readout_parts": gr.readout_parts,
            "readout_groups": sum(s.dst == gr.readout for s in gr.synapses),
            "readout_cores": int((gr.placement.core_population == ro).sum()),
            "cores": int(len(gr.placement.core_population)), "chips": int(gr.placement.chips),
            "readout_headroom": res.report["readout_headroom"], "compile_s": round(compile_s, 2),
            "write_s": round(write_s, 2), "read_s": round(read_s, 2), "net_mb": round(size / 1e6, 3),
            "emulator_s": round(emu_s, 2), "clips": clips,
            "torch_vs_emulator": float((em.predictions == torch_pred).mean()),
            "machine": cpu_description()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--C", type=int, default=12)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", default="benchmarks/results/readout_split_scale.json")
    a = ap.parse_args()
    r = measure(a.C, a.clips)
    print(json.dumps(r, indent=2))
    with open(a.out, "w") as f:
        json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
