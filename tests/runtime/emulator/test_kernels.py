"""The emulator's fast path (the numba LIF kernel with its gather of terms, fused torch
convolutions) against the NumPy reference, bit for bit: kernels on extreme values, terms of
every kind, fused conv groups, whole random graphs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsnn.contract.chip import LifParams, lif_step
from lsnn.runtime.emulator import Emulator, kernels, resolve_backend
from lsnn.runtime.emulator.lif_batch import run_lif
from lsnn.runtime.emulator.lif_fast import fast_path_ok
from lsnn.runtime.emulator.synapse_ops import FusedConv, SynapseOp, fuse_by_source
from lsnn.runtime.emulator.terms import Term
from tests.factories.runtime import concat_graph, random_graph, random_input


def _reference(a: np.ndarray, p: LifParams, channels: int):
    """lif_step over a [T, N] (channels-last neurons), returning spikes and v after each step."""
    T, n = a.shape
    u = np.zeros((n // channels, channels), np.int32)
    v = np.zeros((n // channels, channels), np.int32)
    par = LifParams(p.du, p.dv, p.bias.reshape(1, channels), p.vth_eff)
    s, tr = [], []
    for t in range(T):
        s.append(lif_step(u, v, a[t].reshape(-1, channels), par).reshape(-1))
        tr.append(v.reshape(-1).copy())
    return np.stack(s).astype(np.uint8), np.stack(tr)


def _run(a: np.ndarray, c: int, p: LifParams, *, samples: int = 1, nodecay: bool = False, trace: bool = True):
    """The compiled LIF on a [T, samples * N] (one int term) as `samples` samples of N neurons
    (one image row of N / c pixels): spikes and v [T, samples * N], and the totals it counted,
    checked against the spikes it wrote."""
    T, n = a.shape
    y = np.ascontiguousarray(a.reshape(T, samples, n // samples).reshape(T * samples, 1, n // samples // c, c))
    s = np.empty((T, samples, 1, n // samples // c, c), np.uint8)
    per_neuron = np.full(n // samples, 3, np.int64)                  # added to
    tr, tb = run_lif(kernels, p, nodecay, [Term(y, 0)], s, per_neuron, trace)
    assert np.array_equal(tb, s.reshape(T, samples, -1).sum(axis=2).T)
    assert np.array_equal(per_neuron, 3 + s.reshape(T * samples, -1).sum(axis=0))
    return s.reshape(T, n), (tr.reshape(T, n) if trace else None)


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), du=st.sampled_from([4095, 0, 1, 2048, 4000]),
       dv=st.sampled_from([3277, 0, 1, 4095, 1234]), scale=st.sampled_from([1, 2 ** 8, 2 ** 14, 2 ** 17, 2 ** 20, 2 ** 31 - 1]),
       bias_exp=st.integers(0, 7), T=st.integers(1, 6), pixels=st.sampled_from([1, 7, 300]),
       c=st.sampled_from([5, 1100]))
def test_general_lif_kernel_equals_lif_step(seed, du, dv, scale, bias_exp, T, pixels, c):
    """Current decay, Lava's one-sided 24-bit current wrap, int32 wraps and the v clip."""
    rng = np.random.default_rng(seed)
    n = c * pixels
    p = LifParams.make(du, dv, rng.integers(-4096, 4096, c), bias_exp, int(rng.integers(0, 2 ** 17)))
    a = rng.integers(-scale, scale, (T, n), endpoint=True).astype(np.int32)
    want_s, want_v = _reference(a, p, c)
    s, tr = _run(a, c, p)
    assert np.array_equal(s, want_s)
    assert np.array_equal(tr, want_v)
    s, tr = _run(np.concatenate([a, a[:, ::-1]], axis=1), c, p, samples=2)
    assert np.array_equal(s[:, :n], want_s) and np.array_equal(tr[:, :n], want_v)   # each sample from rest


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), dv=st.sampled_from([0, 1, 3277, 4095]), T=st.integers(1, 6),
       bound=st.sampled_from([1, 100, 2 ** 10, 2 ** 16]), vth=st.integers(0, 2 ** 17 - 1),
       c=st.sampled_from([3, 1100]))
def test_nodecay_kernel_equals_lif_step_where_proven_exact(seed, dv, T, bound, vth, c):
    """Every neuron's bias is its channel's (channels-last), for few and many channels."""
    rng = np.random.default_rng(seed)
    n = c * (2100 // c + 1)
    p = LifParams.make(4095, dv, rng.integers(-4096, 4096, c), 6, vth)
    assert fast_path_ok(p, bound)
    a = rng.integers(-bound, bound, (T, n), endpoint=True).astype(np.int32)
    want_s, want_v = _reference(a, p, c)
    s, tr = _run(a, c, p, nodecay=True)
    assert np.array_equal(s, want_s) and np.array_equal(tr, want_v)
    s2, _ = _run(a, c, p, nodecay=True, trace=False)               # without the trace: same spikes
    assert np.array_equal(s2, want_s)
    s3, _ = _run(np.concatenate([a, a], axis=1), c, p, samples=2, nodecay=True, trace=False)
    assert np.array_equal(s3, np.concatenate([want_s, want_s], axis=1))          # each sample from rest


def test_hand_computed_nodecay_trajectory():
    # a = 1 each step, bias 0, dv = 3277 (v *= 819/4096, truncated), vth = 2 (v > 128 spikes)
    a = np.ones((4, 1), np.int32)
    p = LifParams.make(4095, 3277, np.zeros(1), 0, 2)
    s, tr = _run(a, 1, p, nodecay=True)
    # v: 64; trunc(64 * 0.19995) + 64 = 12 + 64 = 76; trunc(76 * 0.19995) + 64 = 15 + 64 = 79; 15 + 64 = 79
    assert tr[:, 0].tolist() == [64, 76, 79, 79]
    assert s[:, 0].tolist() == [0, 0, 0, 0]
    s, tr = _run(a * 3, 1, p, nodecay=True)
    # v: 192 > 128 spike -> 0; 192 -> spike ...
    assert s[:, 0].tolist() == [1, 1, 1, 1] and tr[:, 0].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("seed", range(12))
def test_fused_convs_equal_each_group_alone(seed):
    g = random_graph(seed)
    ops = [SynapseOp(s, g) for s in g.synapses]
    rng = np.random.default_rng(seed)
    for item in fuse_by_source(ops):
        if not isinstance(item, FusedConv):
            continue
        first = item.ops[0]
        c, h, w = first.src_shape
        hi = first.max_in
        x = rng.integers(0, hi, (5, h, w, c), endpoint=True).astype(np.uint8 if hi == 1 else np.int32)
        for op, y in item(x):
            assert y.dtype == np.int32
            assert np.array_equal(y, op(x)), f"group {op.name} (seed {seed})"


def test_fusion_groups_by_source_destination_and_geometry():
    g = random_graph(3)
    ops = [SynapseOp(s, g) for s in g.synapses]
    items = fuse_by_source(ops)
    fused = [op for it in items if isinstance(it, FusedConv) for op in it.ops]
    alone = [it for it in items if isinstance(it, SynapseOp)]
    assert sorted(op.name for op in fused + alone) == sorted(op.name for op in ops)   # each once
    for it in items:
        if isinstance(it, FusedConv):
            assert len({(op.src, op.dst, op.kernel, op.stride, op.padding) for op in it.ops}) == 1
    dense = [op for op in ops if op.kind != "conv"]
    with pytest.raises(ValueError, match="cannot be fused"):
        FusedConv(dense[:1])


@pytest.mark.parametrize("seed", range(30))
def test_fast_backend_equals_numpy_reference(seed):
    g = random_graph(seed)
    x = random_input(g, 5, seed=seed + 7)
    a = Emulator(g, backend="numpy", max_batch=3).run(x, record_spikes=True)
    b = Emulator(g, backend="fast", max_batch=3).run(x, record_spikes=True)
    assert np.array_equal(a.readout_trace, b.readout_trace)
    assert np.array_equal(a.per_sample_spikes, b.per_sample_spikes)
    for p in g.populations:
        assert np.array_equal(a.spikes[p.name], b.spikes[p.name]), p.name
        assert np.array_equal(a.spike_counts[p.name], b.spike_counts[p.name])
        assert np.array_equal(a.spike_maps[p.name], b.spike_maps[p.name])


@pytest.mark.parametrize("seed", range(6))
def test_large_batches_fuse_per_destination_and_equal_the_reference(seed):
    """Batches of at least SMALL_BATCH_ROWS rows take the convs fused per destination, smaller
    ones the convs fused across destinations: both equal the NumPy reference."""
    from lsnn.runtime.emulator.engine import SMALL_BATCH_ROWS

    g = random_graph(seed)
    n = SMALL_BATCH_ROWS + 1                                      # >= SMALL_BATCH_ROWS rows for any T
    x = random_input(g, n, seed=seed)
    big = Emulator(g, backend="fast", max_batch=n, threads=1)
    assert big.batch == n
    a = big.run(x, record_spikes=True)
    b = Emulator(g, backend="numpy", max_batch=n).run(x, record_spikes=True)
    assert np.array_equal(a.readout_trace, b.readout_trace)
    for p in g.populations:
        assert np.array_equal(a.spikes[p.name], b.spikes[p.name]), p.name
    wide = [it for items in big.outgoing_small.values() for it in items if isinstance(it, FusedConv)]
    narrow = [it for items in big.outgoing.values() for it in items if isinstance(it, FusedConv)]
    assert all(len({op.dst for op in it.ops}) == 1 for it in narrow)
    assert sum(len(it.ops) for it in wide) == sum(len(it.ops) for it in narrow) and len(wide) <= len(narrow)


def test_workspace_is_reused_and_results_repeat():
    g = concat_graph()
    em = Emulator(g, backend="fast")
    x = random_input(g, 4, seed=1)
    r1 = em.run(x)
    ws = em._workspace(0)
    r2 = em.run(x[:2])
    assert em._workspace(0) is ws
    assert np.array_equal(r1.readout_v[:2], r2.readout_v)


def test_backend_names():
    assert resolve_backend("numpy") == "numpy"
    assert resolve_backend("auto") == "fast"
    with pytest.raises(ValueError, match="unknown emulator backend 'gpu'"):
        resolve_backend("gpu")
