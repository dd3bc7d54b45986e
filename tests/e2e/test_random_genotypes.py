"""End to end on random genotypes: random DeployNet -> model.pt artifact -> compiler passes (loihi2)
-> the integer graph. The chip-exact emulator must predict exactly what the PyTorch model in
lif_mode="lava" predicts (and every population must spike identically), and Lava's fixed-point
simulation must equal the emulator at every layer and step."""
import multiprocessing as mp
import random

import numpy as np
import pytest
import torch

from lsnn.compiler.pipeline import compile_artifact
from lsnn.hw_profiles.profile import load_profile
from lsnn.runtime.emulator import Emulator, first_difference
from lsnn.runtime.netgraph import encode_input
from lsnn.searcher.deploy.export import export_artifact, random_deploy_net
from lsnn.searcher.space.random_genotype import random_genotype

LOIHI2 = load_profile(target="loihi2")


def _random_case(seed: int):
    r = random.Random(seed)
    cells = r.choice([1, 2, 3])
    reductions = sorted(r.sample(range(cells), r.randint(0, min(2, cells))))
    shape = r.choice([(1, 8, 8), (3, 8, 8), (2, 6, 10)])
    g = random_genotype(seed, cells=cells, reductions=reductions, C=r.choice([2, 3, 4]), T_max=4,
                        input_shape=shape, num_classes=r.choice([3, 5, 10]))
    torch.manual_seed(seed)
    with torch.no_grad():
        net, x = random_deploy_net(g, seed=seed, batch=6, lif_mode="lava")
        out = net.forward_all(x, keep_spikes=True)
    art = export_artifact(net, g)
    graph = compile_artifact(art, LOIHI2).graph       # raises DesignRuleError if not chip-legal
    return g, net, x, out, graph


@pytest.mark.parametrize("seed", range(20))
def test_torch_lava_lif_equals_compiled_emulator(seed):
    g, net, x, out, graph = _random_case(seed)
    em = Emulator(graph).run(encode_input(graph, x.numpy()), record_spikes=True)
    assert np.array_equal(em.predictions, out["logits"].argmax(-1).numpy())
    for name, spikes in out["spikes"].items():          # [T, B, C, H, W] from PyTorch
        mine = em.spikes[name]                            # emulator, ideal time [N, T, C, H, W]
        theirs = spikes.numpy().astype(mine.dtype).transpose(1, 0, 2, 3, 4)
        assert np.array_equal(mine, theirs), f"population {name} differs (genotype seed {seed})"
    assert sum(int(s.sum()) for s in em.spikes.values()) > 0


@pytest.mark.lava
@pytest.mark.parametrize("seed", range(20))
def test_lava_equals_emulator_on_random_genotypes(seed):
    from lsnn.runtime.lava.client import run_lava

    g, net, x, out, graph = _random_case(seed)
    xi = encode_input(graph, x[:2].numpy())
    em = Emulator(graph)
    lr = run_lava(graph, xi)
    diff = first_difference(em.to_pipeline(xi), lr.trace)
    assert diff is None, diff
    assert np.array_equal(lr.predictions, em.run(xi).predictions)
    assert not mp.active_children()
