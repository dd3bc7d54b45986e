"""The paper's absolute preset weights in relative units: (l1, l2) times the initial MEM and
Bit-SynOps of the paper's search supernet (C = 48, T = 6, p = 0.8, on uniform random input),
next to lsnn's relative presets (searcher/presets.py says why they differ).

    python benchmarks/preset_units.py     # prints a table and checks searcher/presets.py
"""
from __future__ import annotations

import torch

from lsnn.searcher.presets import PRESETS
from lsnn.searcher.search.loop import SearchConfig, build_supernet
from lsnn.searcher.search.loss import initial_costs

BACKBONES = {  # preset -> (input shape, classes, cells, reductions): the paper's Table 1
    "cifar": ((3, 32, 32), 10, 8, (2, 5)),
    "gsc": ((1, 40, 98), 12, 6, (2, 4)),
}


def main() -> None:
    torch.set_num_threads(2)
    units = {}
    for name, (shape, classes, cells, red) in BACKBONES.items():
        net = build_supernet(SearchConfig(C=48, cells=cells, reductions=red, T=6, p=0.8, seed=0), shape, classes)
        torch.manual_seed(0)
        units[name] = initial_costs(net, torch.rand(4, *shape))
        print(f"{name}: initial MEM {units[name][0]:.4g} bits, Bit-SynOps {units[name][1]:.4g} per sample")
    print("| preset | l1 (abs) | l2 (abs) | l1 x MEM0 | l2 x BitSynOps0 | lsnn's relative preset |")
    print("|---|---|---|---|---|---|")
    for p in PRESETS.values():
        mem0, bs0 = units["gsc" if p.name == "gsc" else "cifar"]
        print(f"| {p.name} | {p.l1:g} | {p.l2:g} | {p.l1 * mem0:.3g} | {p.l2 * bs0:.3g} | {p.l1_rel:g}, {p.l2_rel:g} |")


if __name__ == "__main__":
    main()
