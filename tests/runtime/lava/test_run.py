"""Lava (Loihi2SimCfg fixed_pt) vs the integer emulator: every population's spikes at every Lava
step, and the readout's potential after every step, must be identical."""
import numpy as np
import pytest

from lsnn.errors import LavaUnavailableError
from lsnn.runtime.emulator import Emulator, first_difference
from lsnn.runtime.lava.client import hw_available, run_lava
from lsnn.runtime.runner import result_from_trace
from tests.factories.lava_env import worker_processes
from tests.factories.runtime import chain_graph, concat_graph, random_graph, random_input, reduction_graph, skip_graph

pytestmark = pytest.mark.lava


def _compare(g, n=3, seed=7):
    em = Emulator(g)
    x = random_input(g, n, seed)
    lr = run_lava(g, x, v_every_step=True)
    ref = em.to_pipeline(x)
    diff = first_difference(ref, lr.trace)
    assert diff is None, diff
    r = em.run(x)
    assert np.array_equal(lr.window_v, r.readout_v)
    assert np.array_equal(lr.predictions, r.predictions)
    assert not worker_processes()                      # the worker and Lava's processes are gone
    return lr, ref


@pytest.mark.parametrize("make", [
    lambda: chain_graph(T=3),                          # chain, graded 8-bit input, biases, masks
    lambda: chain_graph(T=1, bits_in=1),               # binary input, reset every step
    lambda: skip_graph(T=4, balanced=True),            # identity skip with a delay line, depths set
    lambda: concat_graph(T=2),                         # concat consumer, channel slices, two dense groups
    lambda: reduction_graph(T=3),                      # stride-2 conv 3x3 / 1x1 and identity subsampling
], ids=["chain", "chain-binary-T1", "skip", "concat", "reduction"])
def test_lava_equals_emulator_on_hand_graphs(make):
    g = make()
    lr, ref = _compare(g)
    assert sum(int(s.sum()) for s in lr.trace.spikes.values()) > 0
    # counting from Lava's own spikes (lsnn run --engine lava) gives the emulator's counts
    x = random_input(g, 3, 7)
    mine = Emulator(g).run(x)
    theirs = result_from_trace(g, lr.trace, x)
    for p in g.populations:
        assert np.array_equal(theirs.spike_maps[p.name], mine.spike_maps[p.name])
        assert np.array_equal(theirs.spike_counts[p.name], mine.spike_counts[p.name])
    # the comparison is sensitive to a single spike
    name = next(n for n, s in lr.trace.spikes.items() if s.any())
    idx = tuple(np.argwhere(lr.trace.spikes[name])[0])
    lr.trace.spikes[name][idx] ^= 1
    assert first_difference(ref, lr.trace) is not None


@pytest.mark.parametrize("seed", range(20))
def test_lava_equals_emulator_on_random_graphs(seed):
    """Random depths, skips (stride 1/2), concat widths, kernels, bits, sparsities, biases, decays,
    T and input bits (see tests.factories.runtime.random_graph)."""
    _compare(random_graph(seed), n=2, seed=seed)


def test_hw_without_lava_loihi_is_a_clear_error():
    assert not hw_available()
    g = chain_graph()
    with pytest.raises(LavaUnavailableError, match="--hw needs lava-loihi"):
        run_lava(g, random_input(g, 1), hw=True)


def test_interrupt_stops_lava():
    g = chain_graph(T=2)

    def interrupt(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lava(g, random_input(g, 6), progress=interrupt, chunk_samples=1)
    assert not worker_processes()
