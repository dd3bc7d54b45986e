"""The integer LIF kernel (runtime.lif_fixed) against hand-computed values and Lava's own model code."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lsnn.contract.chip import V_MAX, LifParams, lif_step, reset_state, signed_clamp
from lsnn.runtime.emulator.lif_fast import fast_path_ok, lif_step_fast


def _run(a_seq, du=4095, dv=3277, bias=0, vth=10, v0=0):
    p = LifParams.make(du, dv, np.array([bias]), 6, vth)
    u = np.zeros(1, np.int32)
    v = np.array([v0], np.int32)
    out = []
    for a in a_seq:
        s = lif_step(u, v, np.array([a], np.int32), p)
        out.append((int(v[0]), bool(s[0])))
    return out


def test_hand_computed_trajectory():
    # vth << 6 = 640; decay v -> sign(v) * ((|v| * 819) >> 12)
    # 1: v = 5 << 6 = 320
    # 2: (320 * 819) >> 12 = 262080 >> 12 = 63; v = 63 + 7 << 6 = 511
    # 3: (511 * 819) >> 12 = 418509 >> 12 = 102; v = 102
    # 4: (102 * 819) >> 12 = 83538 >> 12 = 20; v = 20 + 1280 = 1300 > 640 -> spike, v = 0
    assert _run([5, 7, 0, 20]) == [(320, False), (511, False), (102, False), (0, True)]


def test_negative_decay_truncates_toward_zero_and_threshold_is_strict():
    # -320 decays to -63 (toward zero), not floor(-63.98) = -64
    assert _run([0], v0=-320) == [(-63, False)]
    # v exactly at vth << 6 does not fire
    assert _run([10]) == [(640, False)]
    assert _run([11]) == [(0, True)]


def test_bias_and_clip():
    # bias_mant << 6 added every step; v clips at +-(2^23 - 1)
    assert _run([0, 0], bias=3, vth=100) == [(192, False), (192 * 819 // 4096 + 192, False)]
    assert _run([2 ** 16], dv=0, vth=2 ** 23 - 1, v0=V_MAX - 5) == [(V_MAX, False)]
    # a 17-bit threshold mantissa (2^17 - 1) << 6 = 8388544 < 2^23 - 1: a saturated v fires
    assert _run([2 ** 16], dv=0, vth=2 ** 17 - 1, v0=V_MAX - 5) == [(0, True)]


def test_readout_integrates_without_decay():
    # dv = 0, huge vth: v is the running sum of (a + bias) << 6
    out = _run([3, -1, 4], dv=0, bias=2, vth=2 ** 23 - 1)
    assert [v for v, _ in out] == [(3 + 2) << 6, (3 + 2 - 1 + 2) << 6, (3 + 2 - 1 + 2 + 4 + 2) << 6]


def test_current_wrap_is_lavas_one_sided_24_bit_wrap():
    # a << 6 = 2^23 stays (Lava wraps only > 2^23), 2^23 + 64 wraps to -(2^23) + 64 ... then clip
    p = LifParams.make(4095, 0, np.zeros(1), 6, 2 ** 17 - 1)
    u = np.zeros(2, np.int32)
    v = np.zeros(2, np.int32)
    lif_step(u, v, np.array([2 ** 17, 2 ** 17 + 1], np.int32), p)
    assert u.tolist() == [2 ** 23, 2 ** 23 + 64 - 2 ** 24]


def test_reset_and_signed_clamp():
    u = np.array([5, -3], np.int32)
    v = np.array([7, 9], np.int32)
    reset_state(u, v)
    assert u.tolist() == [0, 0] and v.tolist() == [0, 0]
    assert signed_clamp(np.array([2 ** 23, -2 ** 23 - 1, 5]), 24).tolist() == [-2 ** 23, 2 ** 23 - 1, 5]


def test_bias_mant_is_stored_as_int16_like_lava():
    p = LifParams.make(4095, 0, np.array([2 ** 15 + 1]), 0, 10)
    assert int(p.bias.reshape(-1)[0]) == -(2 ** 15) + 1


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), dv=st.integers(0, 4095),
       bound=st.sampled_from([1, 100, 2 ** 10, 2 ** 16]), vth=st.integers(0, 2 ** 17 - 1))
def test_fast_path_equals_general_step(seed, dv, bound, vth):
    rng = np.random.default_rng(seed)
    p = LifParams.make(4095, dv, rng.integers(-4096, 4096, 4), 6, vth, (4,))
    assert fast_path_ok(p, bound)
    u = np.zeros((3, 4), np.int32)
    v1 = np.zeros((3, 4), np.int32)
    v2 = np.zeros((3, 4), np.int32)
    for _ in range(6):
        a = rng.integers(-bound, bound + 1, (3, 4)).astype(np.int32)
        s1 = lif_step(u, v1, a, p)
        s2 = lif_step_fast(v2, a, p)
        assert np.array_equal(s1, s2) and np.array_equal(v1, v2)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), dv=st.sampled_from([0, 1, 3277, 4095]), T=st.integers(1, 6),
       bound=st.sampled_from([1, 100, 2 ** 16]))
def test_fused_fast_run_equals_step_by_step(seed, dv, T, bound):
    from lsnn.runtime.emulator.lif_fast import lif_run_fast

    rng = np.random.default_rng(seed)
    p = LifParams.make(4095, dv, rng.integers(-4096, 4096, 3), 6, int(rng.integers(0, 2 ** 17)), (3,))
    a = rng.integers(-bound, bound + 1, (T, 2, 3)).astype(np.int32)
    u = np.zeros((2, 3), np.int32)
    v = np.zeros((2, 3), np.int32)
    want_s, want_v = [], []
    for t in range(T):
        want_s.append(lif_step(u, v, a[t], p))
        want_v.append(v.copy())
    out = np.empty((T, 2, 3), np.uint8)
    trace = np.empty((T, 2, 3), np.int32)
    v_end = lif_run_fast(a.copy(), p, out, trace)
    assert np.array_equal(out.astype(bool), np.stack(want_s))
    assert np.array_equal(trace, np.stack(want_v)) and np.array_equal(v_end, want_v[-1])
