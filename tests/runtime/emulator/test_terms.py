"""A population's input as the sum of its terms: the compiled gather inside the LIF kernel
against the NumPy `gather`, and both against hand-computed sums, for every kind of term."""
import numpy as np

from lsnn.contract.chip import LifParams
from lsnn.runtime.emulator import kernels
from lsnn.runtime.emulator.lif_batch import run_lif
from lsnn.runtime.emulator.terms import Term, gather, pack

T, B, H, W, C = 2, 3, 2, 4, 6


def _terms(rng: np.random.Generator) -> list[Term]:
    """One term of every kind: float32 channels of a wider conv output, uint8 + 128 over every
    channel, uint8 spikes of a stride-2 identity with a weight, a static int32 input term and
    an int16 one (widened)."""
    wide = rng.integers(-50, 50, (T * B, H, W, 10)).astype(np.float32)
    u8 = rng.integers(0, 256, (T * B, H, W, C)).astype(np.uint8)
    spikes = (rng.random((T * B, H, 2 * W, 2)) < 0.5).astype(np.uint8)[:, :, ::2, :]
    static = rng.integers(-9, 9, (B, H, W, 3)).astype(np.int32)
    narrow = rng.integers(-300, 300, (T * B, H, W, 1)).astype(np.int16)
    return [Term(wide[..., 4:7], 0), Term(u8, 0, 1, 128), Term(spikes, 3, -7), Term(static, 2, 1, 0, True),
            Term(narrow, 5, 2)]


def test_numpy_gather_equals_a_hand_computed_sum():
    y = np.arange(T * B * H * W * 2, dtype=np.float32).reshape(T * B, H, W, 2)
    a = gather([Term(y, 1, 3), Term(np.ones((B, H, W, 1), np.uint8), 0, 1, 1, True)], T, B, (C, H, W))
    assert a.shape == (T, B, H, W, C)
    assert np.array_equal(a[..., 1:3], 3 * y.reshape(T, B, H, W, 2))
    assert (a[..., 0] == 0).all() and (a[..., 3:] == 0).all()     # (1 - zero 1) * 1 = 0; no term


def test_the_compiled_gather_equals_numpy_for_every_kind_of_term():
    rng = np.random.default_rng(0)
    terms = _terms(rng)
    p = LifParams.make(4095, 0, np.zeros(C), 0, 0)       # vth 0, no leak: spikes where input > 0 ...
    want = gather(terms, T, B, (C, H, W))
    s = np.empty((T, B, H, W, C), np.uint8)
    tr, _ = run_lif(kernels, p, False, terms, s, np.zeros(H * W * C, np.int64), True)
    # ... and with no leak and reset to 0, v after step 0 is the input << 6 wherever it did not spike
    v0 = np.where(want[0] > 0, 0, np.clip(want[0].astype(np.int64) << 6, -(2 ** 23 - 1), 2 ** 23 - 1))
    assert np.array_equal(tr[0], v0)
    assert np.array_equal(s[0], (want[0] > 0).astype(np.uint8))


def test_the_gather_wraps_like_an_int32_inport():
    big = np.full((T * B, H, W, C), 2 ** 31 - 1, np.int32)
    one = np.ones((T * B, H, W, C), np.uint8)
    want = gather([Term(big, 0), Term(one, 0)], T, B, (C, H, W))
    assert (want == -2 ** 31).all()
    p = LifParams.make(0, 0, np.zeros(C), 0, 2 ** 17 - 1)   # general form: the current decays
    s = np.empty((T, B, H, W, C), np.uint8)
    ref = np.empty_like(s)
    tr, _ = run_lif(kernels, p, False, [Term(big, 0), Term(one, 0)], s, np.zeros(H * W * C, np.int64), True)
    tr_ref, _ = run_lif(None, p, False, [Term(big, 0), Term(one, 0)], ref, np.zeros(H * W * C, np.int64), True)
    assert np.array_equal(tr, tr_ref) and np.array_equal(s, ref)


def test_pack_gives_flat_arrays_and_their_layout():
    rng = np.random.default_rng(1)
    by_kind, meta = pack(_terms(rng), T, B, (C, H, W), 8)
    assert [len(k) for k in by_kind] == [1, 2, 2]            # float32; two uint8; static + widened int16
    assert all(a.ndim == 1 for k in by_kind for a in k)
    assert meta[0].tolist()[:6] == [0, 0, 0, 1, 0, 0]
    assert meta[0].tolist()[6:] == [H * W * 10, W * 10, 10, W, 3]        # strides of the wide array
    assert meta[2].tolist()[6:] == [H * 2 * W * 2, 2 * W * 2, 4, W, 2]    # stride-2 pixels
    assert meta[3, 5] == 1 and meta[4, 0] == 2                            # static; int16 as int32


def test_more_terms_of_one_dtype_than_slots_are_summed_first():
    rng = np.random.default_rng(2)
    terms = [Term(rng.integers(0, 256, (T * B, H, W, C)).astype(np.uint8), 0, 1, 128) for _ in range(3)]
    by_kind, meta = pack(terms, T, B, (C, H, W), 2)
    assert [len(k) for k in by_kind] == [0, 0, 1] and len(meta) == 1           # one int32 sum
    assert np.array_equal(by_kind[2][0].reshape(T, B, H, W, C), gather(terms, T, B, (C, H, W)))
    p = LifParams.make(4095, 0, np.zeros(C), 0, 0)
    s_many, s_ref = np.empty((T, B, H, W, C), np.uint8), np.empty((T, B, H, W, C), np.uint8)
    tr, _ = run_lif(kernels, p, False, terms * 4, s_many, np.zeros(H * W * C, np.int64), True)   # 12 > 8 slots
    tr_ref, _ = run_lif(None, p, False, terms * 4, s_ref, np.zeros(H * W * C, np.int64), True)
    assert np.array_equal(tr, tr_ref) and np.array_equal(s_many, s_ref)
