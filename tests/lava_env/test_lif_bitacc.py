"""Inside the Lava environment: the chip contract's integer LIF step equals PyLifModelBitAcc's own
arithmetic (its methods called directly), including current wrap, voltage clip and extreme inputs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsnn.contract.chip import LifParams, lif_step


@pytest.mark.lava
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), du=st.sampled_from([4095, 0, 1, 2048, 4000]),
       dv=st.sampled_from([3277, 0, 1, 4095, 1234]), scale=st.sampled_from([1, 2 ** 8, 2 ** 14, 2 ** 17, 2 ** 20]),
       bias_exp=st.integers(0, 7))
def test_matches_lavas_bit_accurate_model_code(seed, du, dv, scale, bias_exp):
    """lif_step == PyLifModelBitAcc's own arithmetic (its methods called directly),
    including current wrap, voltage clip and extreme inputs."""
    from lava.proc.lif.models import PyLifModelBitAcc

    rng = np.random.default_rng(seed)
    n = 16
    bias = rng.integers(-4096, 4096, n)
    vth = int(rng.integers(0, 2 ** 17))
    m = PyLifModelBitAcc({})
    m.u = np.zeros(n, np.int32)
    m.v = np.zeros(n, np.int32)
    m.du, m.dv, m.vth = du, dv, vth
    m.bias_mant = bias.astype(np.int16)
    m.bias_exp = np.full(n, bias_exp, np.int16)
    p = LifParams.make(du, dv, bias, bias_exp, vth)
    u = np.zeros(n, np.int32)
    v = np.zeros(n, np.int32)
    for _ in range(8):
        a = rng.integers(-scale, scale + 1, n).astype(np.int32)
        m.scale_bias()
        m.scale_threshold()
        m.subthr_dynamics(activation_in=a.copy())
        s_lava = m.spiking_activation()
        m.reset_voltage(spike_vector=s_lava)
        s = lif_step(u, v, a, p)
        assert np.array_equal(s, s_lava)
        assert np.array_equal(u, m.u) and np.array_equal(v, m.v)
