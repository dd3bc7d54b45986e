"""oneDNN's int8 convolution against the float32 one, bit for bit, its uint8 output form and
its fallbacks."""
import numpy as np
import pytest

from lsnn.runtime.emulator.int8_conv import Int8Conv, spike_output_range
from lsnn.runtime.emulator.synapse_ops import FusedConv, SynapseOp, fuse_by_source
from tests.factories.runtime import _input, conv, dense, lif, make_graph, random_graph, readout


def _float_conv(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    import torch

    y = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2).double(),
                                   torch.from_numpy(w.astype(np.float64)), stride=stride, padding=padding)
    return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("k,stride,padding", [(3, 1, 1), (3, 2, 1), (1, 1, 0), (5, 1, 2)])
def test_int8_conv_equals_the_float64_conv(k, stride, padding):
    rng = np.random.default_rng(k * 10 + stride)
    w = rng.integers(-128, 128, (20, 7, k, k))
    w[0] = -128                                            # the int8 extremes
    w[1] = 127
    conv = Int8Conv.build(w, stride, padding, (11, 9))
    if conv is None:
        pytest.skip("this PyTorch has no oneDNN int8 convolution")
    x = (rng.random((6, 11, 9, 7)) < 0.4).astype(np.uint8)
    x[0] = 1                                                # every product at once
    y = conv(x)
    assert y.dtype == np.float32
    assert np.array_equal(y, _float_conv(x, w, stride, padding))
    full = -128 * 7 * k * k                                # an interior output of the all-ones map
    assert y[0, 2, 2, 0] == full and y[0, 2, 2, 1] == -full * 127 // 128


def _summing_to(total: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Integers of one sign (total's) of the given shape that sum to `total`."""
    n = int(np.prod(shape))
    w = np.full(n, total // n if total >= 0 else -(-total // n), np.int64)
    w[0] += total - w.sum()
    return w.reshape(shape)


@pytest.mark.parametrize("k,stride,padding", [(3, 1, 1), (1, 1, 0)])
def test_int8_conv_whose_spike_outputs_span_256_integers_writes_uint8_plus_zero(k, stride, padding):
    """0/1 inputs: outputs lie in [-(negative weights summed), positive weights summed]; where
    that spans 256 integers the output is uint8 + zero, exact at both ends; 257 stay float32."""
    c = 4
    w = np.zeros((3, c, k, k), np.int64)
    w[0] = _summing_to(200, (c, k, k))                    # all-ones map: 200, the largest output
    w[1] = _summing_to(-55, (c, k, k))                    # and -55, the smallest
    w[2, 0, 0, 0], w[2, 1, 0, 0] = 30, -40               # mixed signs inside the range
    assert spike_output_range(w) == (-55, 200)
    conv = Int8Conv.build(w, stride, padding, (7, 7))
    if conv is None:
        pytest.skip("this PyTorch has no oneDNN int8 convolution")
    x = (np.random.default_rng(k).random((5, 7, 7, c)) < 0.5).astype(np.uint8)
    x[0] = 1
    y = conv(x)
    assert y.dtype == np.uint8 and conv.zero == 55
    got = y.astype(np.int32) - conv.zero
    assert np.array_equal(got, _float_conv(x, w, stride, padding).astype(np.int32))
    assert got[0, 3, 3, 0] == 200 and got[0, 3, 3, 1] == -55
    w[1] = _summing_to(-56, (c, k, k))                    # 257 integers: float32
    wide = Int8Conv.build(w, stride, padding, (7, 7))
    assert wide.zero == 0 and wide(x).dtype == np.float32


def test_int8_conv_is_refused_for_weights_outside_int8_or_a_failed_check(monkeypatch):
    w = np.ones((4, 3, 3, 3), np.int64)
    w[0, 0, 0, 0] = 128
    assert Int8Conv.build(w, 1, 1, (5, 5)) is None
    assert Int8Conv.build(np.zeros((0, 3, 3, 3), np.int64), 1, 1, (5, 5)) is None
    monkeypatch.setattr(Int8Conv, "_agrees_with_float", lambda *a: False)
    assert Int8Conv.build(np.ones((4, 3, 3, 3), np.int64), 1, 1, (5, 5)) is None


@pytest.mark.parametrize("seed", range(8))
def test_fused_convs_on_spikes_run_int8_and_equal_each_group_alone(seed):
    g = random_graph(seed)
    ops = [SynapseOp(s, g) for s in g.synapses]
    rng = np.random.default_rng(seed)
    int8_ok = Int8Conv.build(np.ones((1, 1, 1, 1), np.int64), 1, 0, (2, 2)) is not None
    for item in fuse_by_source(ops):
        if not isinstance(item, FusedConv) or item.ops[0].max_in != 1:
            continue
        fits = -128 <= item.weight.min() and item.weight.max() <= 127
        assert item.form == ("int8" if int8_ok and fits else "float32")
        c, h, w = item.ops[0].src_shape
        x = (rng.random((4, h, w, c)) < 0.3).astype(np.uint8)
        for op, y in item(x):
            assert np.array_equal(y, op(x)), f"group {op.name} (seed {seed})"


def test_strided_1x1_int8_is_refused_and_fused_convs_run_it_on_every_sth_pixel():
    """oneDNN's int8 1x1 kernel with stride 2 races on AVX2 CPUs (wrong integers that change
    from call to call on 2 threads, seen on an AMD EPYC): `Int8Conv` refuses it, and a fused
    1x1 / stride-2 group runs as a stride-1 int8 conv of the subsampled spikes, exact on 2 threads."""
    import torch

    rng = np.random.default_rng(5)
    w = rng.integers(-15, 16, (48, 24, 1, 1))
    assert Int8Conv.build(w, 2, 0, (16, 16)) is None
    g = make_graph(_input((3, 16, 16)), [lif("s", (24, 16, 16)), lif("a", (48, 8, 8)), readout("r", 10)],
                   [conv("in", "input", "s", np.ones((24, 3, 1, 1), np.int32)),
                    conv("c", "s", "a", w, stride=2, padding=0),
                    dense("d", "a", "r", np.ones((10, 48 * 8 * 8), np.int32))], T=3)
    op = SynapseOp(g.synapses[1], g)
    item = FusedConv([op])
    if Int8Conv.build(np.ones((1, 1, 1, 1), np.int64), 1, 0, (2, 2)) is None:
        pytest.skip("this PyTorch has no oneDNN int8 convolution")
    assert (item.form, item.subsample) == ("int8", 2)
    x = (rng.random((48, 16, 16, 24)) < 0.25).astype(np.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(3):
            assert np.array_equal(item(x)[0][1], op(x))
    finally:
        torch.set_num_threads(threads)
