"""Re-measure a finished run's deploy check: the retrained PyTorch model (best epoch, from
retrain_ckpt.pt) vs the chip-exact emulator on the run's compiled model.net, on the same test
split the pipeline used (the run's config.yaml). Use it after a change to how predictions are
read, without retraining.

    .venv/bin/python benchmarks/deploy_agreement.py runs/cifar10_loihi2 [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml


def measure(run: Path) -> dict:
    from lsnn.compiler.backend.netx import read_net
    from lsnn.searcher.config import RunConfig
    from lsnn.searcher.deploy.retrain import RetrainConfig, build_net
    from lsnn.searcher.space.genotype import Genotype
    from lsnn.searcher.stages import load_splits, readout_axon_limit
    from lsnn.workflow import torch_vs_emulator

    raw = yaml.safe_load((run / "config.yaml").read_text())
    cfg = RunConfig(**{k: v for k, v in raw.items() if k in RunConfig.__dataclass_fields__})
    x, y = load_splits(cfg).test
    ck = torch.load(run / "retrain_ckpt.pt", weights_only=False)
    genotype = Genotype.from_dict(ck["genotype"])
    rcfg = RetrainConfig(lif_mode=cfg.lif_mode, readout_axon_limit=readout_axon_limit(cfg))
    net = build_net(genotype, rcfg)
    net.load_state_dict(ck["best_state"])
    net.eval()
    graph = read_net(run / "model.net")
    return {"run": str(run), **torch_vs_emulator(graph, net, x, y), "readout_parts": graph.readout_parts,
            "readout_axon_limit": rcfg.readout_axon_limit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [measure(r) for r in args.runs]
    for r in rows:
        print(json.dumps(r))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
