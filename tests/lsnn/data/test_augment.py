"""Augmentations: exact pixel moves on hand-built inputs, seeding, and the name registry."""
import numpy as np
import pytest

from lsnn.data.augment import AUGMENTS, cutout, get_augment, shift, spec_mask, time_shift
from lsnn.errors import ConfigError


class _Fixed:
    """A stand-in Generator that returns given integers (to pin offsets)."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, lo, hi=None, size=None):
        v = np.asarray(self.values.pop(0))
        return v if size is None else np.broadcast_to(v, (size,)).copy()

    def random(self, size=None):
        return np.ones(size)


def test_shift_moves_by_the_offset_and_zero_fills():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4) / 16
    y = shift(x, _Fixed(0, 2), pad=1)            # oy = 0: one row down; ox = 2: one column left
    expect = np.zeros((4, 4), np.float32)
    expect[1:, :3] = x[0, 0, :3, 1:]
    np.testing.assert_array_equal(y[0, 0], expect)


def test_shift_pad_zero_offset_is_identity():
    x = np.random.default_rng(0).random((3, 2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(shift(x, _Fixed(1, 1), pad=1), x)


def test_cutout_zeros_one_square():
    x = np.ones((2, 3, 8, 8), np.float32)
    y = cutout(x, _Fixed(4, 4), size=4)           # centre (4, 4): rows and columns 2..5
    assert y.dtype == x.dtype and y.shape == x.shape
    assert (y[:, :, 2:6, 2:6] == 0).all()
    assert y.sum() == x.sum() - 2 * 3 * 16


def test_time_shift_rolls_right_with_zero_fill():
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(time_shift(x, _Fixed(2), max_shift=3)[0, 0, 0], [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(time_shift(x, _Fixed(-1), max_shift=3)[0, 0, 0], [2, 3, 4, 5, 6, 0])


def test_spec_mask_only_zeroes_whole_rows_and_columns():
    x = np.ones((4, 1, 40, 98), np.float32)
    y = spec_mask(x, np.random.default_rng(3))
    for img in y[:, 0]:
        zero = img == 0
        rows = zero.all(1)
        cols = zero.all(0)
        assert (zero == (rows[:, None] | cols[None, :])).all()
        assert rows.sum() <= 10 and cols.sum() <= 20


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_every_named_augment_keeps_shape_dtype_range_and_is_seeded(name):
    x = np.random.default_rng(1).random((5, 1, 12, 12)).astype(np.float32)
    aug = get_augment(name)
    if aug is None:
        assert name == "none"
        return
    a = aug(x, np.random.default_rng(7))
    b = aug(x, np.random.default_rng(7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)


def test_unknown_augment_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown augment 'rotate'.*shift"):
        get_augment("rotate")
