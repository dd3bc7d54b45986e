"""How a run finds its genotype: the strategies `lsnn search --strategy` offers. Each writes
genotype.json into the run directory, and the same retraining, export and deployment follow, so
their runs compare at equal footing (`lsnn compare`).

- `litesnn`: LitE-SNN's joint search (architecture, mask, bits, T under Eq. 15 at once);
- `sequential`: the paper's A+P+Q+T baseline, one single-objective step after another;
- `random`: random genotypes of the same space, proxy-trained, the best on validation;
- `hand`: a hand-designed plain stack, at chosen bits, p and T;
- `spikenas`: SpikeNAS's training-free search, cell by cell, under a memory budget.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from lsnn.errors import ConfigError
from lsnn.searcher.config import STRATEGIES, RunConfig
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.stages import Echo, Splits

Strategy = Callable[[RunConfig, Splits, Path, bool, Echo], Genotype]


def _registry() -> dict[str, Strategy]:
    from lsnn.searcher.strategy.hand import run_hand
    from lsnn.searcher.strategy.litesnn import run_litesnn
    from lsnn.searcher.strategy.random_search import run_random
    from lsnn.searcher.strategy.sequential import run_sequential
    from lsnn.searcher.strategy.spikenas import run_spikenas

    return {"litesnn": run_litesnn, "sequential": run_sequential, "random": run_random, "hand": run_hand,
            "spikenas": run_spikenas}


def find_genotype(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """Run cfg.strategy and save its genotype to out/genotype.json (a resumed run that has one reuses it)."""
    gpath = out / "genotype.json"
    if resume and gpath.is_file():
        echo(f"search: already done, using {gpath}")
        return Genotype.load(gpath)
    registry = _registry()
    if cfg.strategy not in registry:
        raise ConfigError(f"strategy '{cfg.strategy}' is not one of {', '.join(STRATEGIES)}")
    genotype = registry[cfg.strategy](cfg, data, out, resume, echo)
    genotype.save(gpath)
    return genotype
