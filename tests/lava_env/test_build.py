"""Inside the Lava environment: pieces of the Lava process graph builder."""
import numpy as np


def test_base256_digits_reconstruct_any_int32():
    from lsnn.runtime.lava.build import base256_digits

    rng = np.random.default_rng(0)
    w = np.concatenate([rng.integers(-2 ** 31, 2 ** 31, 200), [0, 127, -128, 128, -129, 255, -256, 300]])
    total = np.zeros_like(w)
    for k, m in base256_digits(w):
        assert m.min() >= -128 and m.max() <= 127
        total += m * 256 ** k
    assert np.array_equal(total, w)
    assert len(base256_digits(np.array([127, -128]))) == 1
