"""The event-driven synapse form: same integers as the dense form and the NumPy reference."""
import numpy as np
import pytest

from lsnn.runtime.emulator import Emulator
from lsnn.runtime.emulator.event_ops import TUNE_MIN_ROWS, EventSparse, Tuned, scatter_ok
from lsnn.runtime.emulator.scatter import consecutive_rows, conv_scatter, conv_taps, dense_scatter, sparse_scatter
from lsnn.runtime.emulator.synapse_ops import SynapseOp
from tests.factories.runtime import (
    _input,
    chain_graph,
    conv,
    dense,
    lif,
    make_graph,
    random_graph,
    random_input,
    readout,
    reduction_graph,
)


def test_conv_scatter_by_hand():
    # one spike at (1, 2) of a 4x4 map, 3x3 kernel, padding 1, stride 1: it reaches the output
    # pixels (1 + 1 - kh, 2 + 1 - kw) with weight W[kh, kw]
    w = np.zeros((1, 1, 3, 3), np.int32)
    w[0, 0] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x = np.zeros((1, 4, 4, 1), np.uint8)
    x[0, 1, 2, 0] = 1
    out = np.zeros((1, 4, 4, 1), np.int32)
    taps, count = conv_taps(w)
    conv_scatter(x, np.ascontiguousarray(w.transpose(2, 3, 1, 0)), taps, count, 1, 1, out, 0)
    expect = np.zeros((4, 4), np.int32)
    expect[0:3, 1:4] = w[0, 0, ::-1, ::-1]          # a correlation: the kernel lands flipped
    assert np.array_equal(out[0, :, :, 0], expect)


def test_conv_scatter_stride_two_skips_odd_offsets_and_writes_at_the_channel_offset():
    w = np.ones((2, 1, 3, 3), np.int32) * np.array([5, -3], np.int32).reshape(2, 1, 1, 1)
    w[:, :, 1, 1] = 0                                 # the centre tap is pruned
    x = np.zeros((1, 4, 4, 1), np.uint8)
    x[0, 2, 2, 0] = 1                                 # reaches outputs (2 + 1 - kh) / 2 for odd kh + 1
    out = np.zeros((1, 2, 2, 5), np.int32)
    taps, count = conv_taps(w)
    assert count[0] == 8
    conv_scatter(x, np.ascontiguousarray(w.transpose(2, 3, 1, 0)), taps, count, 2, 1, out, 3)
    # kh in {1} gives (2 + 1 - 1) / 2 = 1, kh in {0, 2} gives odd numerators: skipped. So only the
    # taps with kh = 1 and kw = 1 would land, and that tap is pruned: nothing arrives.
    assert not out.any()
    x[0, 2, 2, 0] = 0
    x[0, 1, 1, 0] = 1                                 # (1 + 1 - kh) / 2: kh in {0, 2} -> ho 1, 0
    conv_scatter(x, np.ascontiguousarray(w.transpose(2, 3, 1, 0)), taps, count, 2, 1, out, 3)
    assert out[0, :, :, :3].sum() == 0
    assert np.array_equal(out[0, :, :, 3], np.full((2, 2), 5)) and np.array_equal(out[0, :, :, 4], np.full((2, 2), -3))


def test_dense_scatter_equals_the_product_and_wraps_like_int32():
    rng = np.random.default_rng(0)
    x = (rng.random((5, 40)) < 0.3).astype(np.uint8)
    wt = rng.integers(-127, 128, (40, 7)).astype(np.int32)
    out = np.full((5, 9), 2 ** 31 - 100, np.int32)
    dense_scatter(x, wt, out, 2)
    ref = (np.full((5, 7), 2 ** 31 - 100, np.int64) + x.astype(np.int64) @ wt) % 2 ** 32
    ref = np.where(ref >= 2 ** 31, ref - 2 ** 32, ref).astype(np.int32)
    assert np.array_equal(out[:, 2:], ref) and np.all(out[:, :2] == 2 ** 31 - 100)


def test_consecutive_rows_by_hand():
    # rows: [2, 3, 4] a run; [5, 7] not; [] empty; [1] a run; [4, 3] not (out of order)
    indptr = np.array([0, 3, 5, 5, 6, 8])
    indices = np.array([2, 3, 4, 5, 7, 1, 4, 3])
    assert consecutive_rows(indptr, indices).tolist() == [True, False, True, True, False]


def test_sparse_scatter_equals_the_product_on_runs_and_scattered_rows():
    from scipy.sparse import csr_matrix

    rng = np.random.default_rng(1)
    w = np.zeros((60, 40), np.int32)                      # (in, out)
    for i in range(60):
        if i % 3 == 0:                                    # a readout part: 10 consecutive outputs
            a = 10 * (i % 4)
            w[i, a:a + 10] = rng.integers(-127, 128, 10)
        elif i % 3 == 1:                                  # scattered columns
            w[i, rng.choice(40, 5, replace=False)] = rng.integers(-127, 128, 5)
    m = csr_matrix(w)
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    runs = consecutive_rows(indptr, indices)
    assert runs[::3].all() and not runs[1::3].any()
    x = (rng.random((7, 60)) < 0.4).astype(np.uint8)
    x[0, :] = 3                                           # graded values take the multiply
    out = np.full((7, 40), 5, np.int32)
    sparse_scatter(x, indptr, indices, m.data.astype(np.int32), runs, out)
    assert np.array_equal(out, 5 + x.astype(np.int64) @ w)


def test_event_sparse_readout_equals_the_sparse_product():
    """A readout in parts (each input feeds one part's 10 classes): the fast backend runs it
    event-driven, with the integers of the NumPy group."""
    rng = np.random.default_rng(2)
    parts, k, n = 8, 10, 4 * 4 * 16
    w = np.zeros((parts * k, n), np.int32)
    for i in range(n):
        p = i % parts
        w[p * k:(p + 1) * k, i] = rng.integers(-15, 16, k)
    g = make_graph(_input((1, 4, 4)), [lif("a", (16, 4, 4)), readout("r", parts * k)],
                   [conv("c", "input", "a", np.ones((16, 1, 3, 3), np.int32)), dense("d", "a", "r", w)], T=2)
    op = SynapseOp(g.synapses[1], g)
    assert EventSparse.eligible(op)
    x = (rng.random((9, 4, 4, 16)) < 0.3).astype(np.uint8)
    [(dst, term)] = EventSparse(op).terms(x)
    assert dst == "r" and term.y.shape == (9, 1, 1, parts * k)
    assert np.array_equal(term.y, op(x))
    em = Emulator(g)
    assert any(isinstance(it, EventSparse) for it in em.outgoing["a"])
    xi = random_input(g, 6, seed=3)
    assert np.array_equal(em.run(xi).readout_v, Emulator(g, backend="numpy").run(xi).readout_v)


@pytest.mark.parametrize("seed", range(30))
def test_event_form_equals_the_numpy_reference_on_random_graphs(seed):
    g = random_graph(seed)
    x = random_input(g, 5, seed=seed + 7)
    ev = Emulator(g, synapse_form="event").run(x, record_spikes=True)
    ref = Emulator(g, backend="numpy").run(x, record_spikes=True)
    assert np.array_equal(ev.readout_trace, ref.readout_trace)
    for p in g.populations:
        assert np.array_equal(ev.spikes[p.name], ref.spikes[p.name]), p.name


@pytest.mark.parametrize("make", [chain_graph, reduction_graph])
def test_measuring_picks_a_form_per_group_and_changes_no_integer(make):
    g = make()
    x = random_input(g, 2 * TUNE_MIN_ROWS, seed=3)
    em = Emulator(g, synapse_form="measure")
    tuned = [it for items in em.outgoing.values() for it in items if isinstance(it, Tuned)]
    assert tuned and all(t.choice is None for t in tuned)
    r = em.run(x)
    assert all(t.choice in ("dense", "event") and set(t.seconds) == {"dense", "event"} for t in tuned)
    assert np.array_equal(r.readout_trace, Emulator(g, synapse_form="dense").run(x).readout_trace)


def test_every_group_is_dense_by_default():
    em = Emulator(chain_graph())
    assert not any(isinstance(it, Tuned) for items in em.outgoing.values() for it in items)


def test_a_silent_or_small_batch_is_not_measured():
    g = chain_graph()
    em = Emulator(g, synapse_form="measure")
    em.run(np.zeros((TUNE_MIN_ROWS,) + g.input.shape, np.int32))
    em.run(random_input(g, 1, seed=0))                # T rows < TUNE_MIN_ROWS for T = 3
    assert all(it.choice is None for items in em.outgoing.values() for it in items if isinstance(it, Tuned))


def test_a_form_that_disagrees_is_reported(monkeypatch):
    from lsnn.runtime.emulator import event_ops

    g = chain_graph()                                 # (the factory runs the emulator: before the patch)

    right = event_ops.ScatterOps.terms

    def wrong(self, x):
        out = right(self, x)
        out[0][1].y[..., 0] += 1                       # one channel off by one
        return out
    monkeypatch.setattr(event_ops.ScatterOps, "terms", wrong)
    with pytest.raises(RuntimeError, match="differs from the dense form"):
        Emulator(g, synapse_form="measure").run(random_input(g, 2 * TUNE_MIN_ROWS, seed=1))


def test_groups_that_can_wrap_or_read_graded_input_stay_dense():
    g = chain_graph()
    em = Emulator(g, synapse_form="event")
    from lsnn.compiler.ir import INPUT_NAME
    assert not any(isinstance(it, Tuned) for it in em.outgoing[INPUT_NAME])
    op = next(op for op in em.ops if op.kind == "conv" and op.src != INPUT_NAME)
    assert scatter_ok(op)
    op.wrap_bits = 24
    assert not scatter_ok(op)
    with pytest.raises(ValueError, match="unknown synapse form 'fast'"):
        Emulator(g, synapse_form="fast")


@pytest.mark.parametrize("threads", [2, 3])
def test_worker_threads_give_the_same_integers_as_one(threads):
    g = random_graph(5)
    x = random_input(g, 11, seed=2)
    one = Emulator(g, max_batch=2, threads=1).run(x, record_spikes=True)
    seen = []
    many = Emulator(g, max_batch=2, threads=threads).run(x, record_spikes=True, progress=seen.append)
    assert sum(seen) == 11 and len(seen) == 6                 # every batch reported once
    assert np.array_equal(one.readout_trace, many.readout_trace)
    assert np.array_equal(one.per_sample_spikes, many.per_sample_spikes)
    for p in g.populations:
        assert np.array_equal(one.spikes[p.name], many.spikes[p.name])
        assert np.array_equal(one.spike_counts[p.name], many.spike_counts[p.name])
        assert np.array_equal(one.spike_maps[p.name], many.spike_maps[p.name])


def test_the_batch_keeps_the_largest_input_buffer_within_the_cache_budget():
    g = chain_graph()                                  # T = 3
    biggest = max(p.size for p in g.populations)
    em = Emulator(g, cache_bytes=4 * 3 * biggest * 5)
    assert em.batch == 5
    assert Emulator(g, cache_bytes=1).batch == 1
    assert Emulator(g, cache_bytes=2 ** 40, max_batch=7).batch == 7


def test_the_numpy_backend_runs_where_numba_is_missing():
    """As in Lava's environment: numba cannot be imported, the reference backend still runs."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; sys.modules['numba'] = None\n"
            "from tests.factories.runtime import random_graph, random_input\n"
            "from lsnn.runtime.emulator import Emulator\n"
            "g = random_graph(4)\n"
            "r = Emulator(g, backend='numpy').run(random_input(g, 3, seed=3))\n"
            "print(int(r.readout_trace.astype(np.int64).sum()), 'numba' in sys.modules and sys.modules['numba'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    g = random_graph(4)
    want = Emulator(g, backend="fast").run(random_input(g, 3, seed=3)).readout_trace.astype(np.int64).sum()
    assert out == [str(int(want)), "False"]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 61, 1000])
def test_batches_cover_the_run_and_split_evenly_over_the_workers(n):
    em = Emulator(random_graph(5), max_batch=8, threads=2)
    batches, workers = em._split(n)
    if n == 0:
        assert (batches, workers) == ([], 1)
        return
    assert [a for a, _ in batches] == [0] + [b for _, b in batches[:-1]] and batches[-1][1] == n
    sizes = [b - a for a, b in batches]
    assert max(sizes) <= 8 and workers in (1, 2)
    if n <= 8:                                     # one batch: one thread
        assert (len(batches), workers) == (1, 1)
    elif workers == 2:                             # both workers get the same number of batches
        assert len(batches) % 2 == 0 and max(sizes) - min(sizes) <= 1
