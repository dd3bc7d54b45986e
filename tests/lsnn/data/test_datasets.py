"""Registry, DatasetSplit, stratified helpers, batching, augmentation, and the digits dataset."""
import numpy as np
import pytest

from lsnn.data.augment import crop_flip
from lsnn.data.datasets import (
    REGISTRY,
    DatasetSplit,
    batches,
    load_dataset,
    register,
    stratified_counts,
    stratified_split,
    subset,
)
from lsnn.errors import DatasetError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNN_DATA_CACHE", str(tmp_path / "cache"))


def toy(n_per=(6, 3, 9), shape=(1, 2, 2)) -> DatasetSplit:
    y = np.concatenate([np.full(k, c) for c, k in enumerate(n_per)]).astype(np.int64)
    x = (np.arange(len(y) * int(np.prod(shape)), dtype=np.float32).reshape(len(y), *shape)
         / (len(y) * int(np.prod(shape))))
    return DatasetSplit(x, y, [f"c{i}" for i in range(len(n_per))], "toy")


# ---------------------------------------------------------------- registry

def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist")
    for n in ("cifar10", "cifar100", "digits", "gsc"):
        assert n in str(e.value)


def test_unknown_split_and_option_are_dataset_errors():
    with pytest.raises(DatasetError, match="split 'dev'"):
        load_dataset("digits", split="dev")
    with pytest.raises(DatasetError, match="unknown option.*bogus"):
        load_dataset("cifar10", "/nonexistent", bogus=1)
    with pytest.raises(DatasetError, match="no data_dir"):
        load_dataset("digits", "/some/dir")


def test_register_custom_loader():
    register("toy", lambda data_dir, split, **o: toy())
    try:
        assert len(load_dataset("toy")) == 18
    finally:
        del REGISTRY["toy"]


def test_cifar_without_data_dir_says_what_it_needs(monkeypatch):
    monkeypatch.delenv("LSNN_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="cifar10.*needs data_dir"):
        load_dataset("cifar10")


# ---------------------------------------------------------------- DatasetSplit validation

def test_split_validates_dtype_range_and_labels():
    x = np.zeros((2, 1, 2, 2), np.float32)
    y = np.array([0, 1], np.int64)
    with pytest.raises(DatasetError, match="float32"):
        DatasetSplit(x.astype(np.float64), y, ["a", "b"], "t")
    with pytest.raises(DatasetError, match="int64"):
        DatasetSplit(x, y.astype(np.int32), ["a", "b"], "t")
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        DatasetSplit(x + 1.5, y, ["a", "b"], "t")
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        DatasetSplit(np.full_like(x, np.nan), y, ["a", "b"], "t")
    with pytest.raises(DatasetError, match="labels"):
        DatasetSplit(x, np.array([0, 2], np.int64), ["a", "b"], "t")
    s = DatasetSplit(x, y, ("a", "b"), "t")
    assert s.input_shape == (1, 2, 2) and s.num_classes == 2 and s.classes == ["a", "b"]


def test_uint8_images_round_trip_through_the_8bit_input_encoding():
    u = np.arange(256, dtype=np.uint8)
    x = np.multiply(u, np.float32(1 / 255), dtype=np.float32)
    assert np.array_equal(np.round(x * 255).astype(np.uint8), u)


# ---------------------------------------------------------------- stratified helpers

def test_stratified_counts_largest_remainder_by_hand():
    # quotas 10 * [5, 3, 2] / 10 = [5, 3, 2]
    assert stratified_counts(np.array([50, 30, 20]), 10).tolist() == [5, 3, 2]
    # quotas 4 * [5, 3, 2] / 10 = [2.0, 1.2, 0.8] -> floors [2, 1, 0], one left -> class 2 (0.8)
    assert stratified_counts(np.array([5, 3, 2]), 4).tolist() == [2, 1, 1]
    # digits: 20 % -> 360 exactly
    digit_counts = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert stratified_counts(digit_counts, 360).tolist() == [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]
    with pytest.raises(ValueError):
        stratified_counts(np.array([1, 1]), 3)


def test_stratified_split_is_a_deterministic_partition():
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    keep, take = stratified_split(y, 25, seed=3)
    assert len(take) == 25 and len(keep) == 75
    assert np.array_equal(np.sort(np.concatenate([keep, take])), np.arange(100))
    # quotas 2.5, 5, 7.5, 10: floors sum to 24; the tie (0.5, 0.5) goes to the lower class
    assert np.bincount(y[take]).tolist() == [3, 5, 7, 10]
    k2, t2 = stratified_split(y, 25, seed=3)
    assert np.array_equal(t2, take)
    _, t3 = stratified_split(y, 25, seed=4)
    assert not np.array_equal(t3, take)


def test_subset_is_stratified_and_seeded():
    s = toy((20, 10, 30))
    a = subset(s, 12, seed=1)
    assert a.class_counts().tolist() == [4, 2, 6]
    assert np.array_equal(a.x, subset(s, 12, seed=1).x)
    assert not np.array_equal(a.x, subset(s, 12, seed=2).x)
    assert subset(s, 1000) is s


# ---------------------------------------------------------------- batches

def test_batches_cover_every_sample_once_and_depend_only_on_seed():
    s = toy((7, 7, 9))           # 23 samples
    got = list(batches(s, 5, shuffle=True, seed=7))
    assert [len(b[1]) for b in got] == [5, 5, 5, 5, 3]
    xs = np.concatenate([b[0] for b in got])
    order = np.argsort(xs[:, 0, 0, 0])
    assert np.array_equal(xs[order], s.x)                       # a permutation of all rows
    assert np.array_equal(np.concatenate([b[1] for b in got])[order], s.y)  # labels follow
    again = list(batches(s, 5, shuffle=True, seed=7))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(got, again))
    other = np.concatenate([b[1] for b in batches(s, 5, shuffle=True, seed=8)])
    assert not np.array_equal(other, np.concatenate([b[1] for b in got]))
    assert [len(b[1]) for b in batches(s, 5, seed=7, drop_last=True)] == [5, 5, 5, 5]
    plain = list(batches(s, 10, shuffle=False))
    assert np.array_equal(plain[0][1], s.y[:10])


# ---------------------------------------------------------------- crop + flip

def _find_transform(img, out, pad):
    """All (dy, dx, flip) that map `img` to `out` under zero-pad + crop (+ left-right flip)."""
    c, h, w = img.shape
    p = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
    hits = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = p[:, dy:dy + h, dx:dx + w]
            for f in (False, True):
                if np.array_equal(crop[:, :, ::-1] if f else crop, out):
                    hits.append((dy, dx, f))
    return hits


def test_crop_flip_is_a_padded_shift_and_flip_and_is_seeded():
    rng = np.random.default_rng(0)
    x = (rng.integers(1, 255, size=(64, 3, 8, 8)) / 255).astype(np.float32)  # no zeros inside
    out = crop_flip(x, np.random.default_rng(5), pad=2)
    assert out.shape == x.shape and out.dtype == np.float32
    found = [_find_transform(x[i], out[i], 2) for i in range(64)]
    assert all(len(h) == 1 for h in found)            # each output is exactly one such transform
    flips = sum(h[0][2] for h in found)
    shifts = {(h[0][0], h[0][1]) for h in found}
    assert 16 <= flips <= 48                          # p = 0.5 over 64 draws
    assert len(shifts) > 10                           # offsets vary over the 5 x 5 grid
    # the zero border is exactly the shift: 3 * (64 - (8 - |dy - 2|) * (8 - |dx - 2|)) zeros
    for i, ((dy, dx, _),) in enumerate(found):
        assert int((out[i] == 0).sum()) == 3 * (64 - (8 - abs(dy - 2)) * (8 - abs(dx - 2)))
    assert np.array_equal(out, crop_flip(x, np.random.default_rng(5), pad=2))


def test_batches_apply_augmentation_deterministically():
    s = toy((8, 8), shape=(3, 4, 4))
    a = [b[0] for b in batches(s, 4, seed=1, augment=crop_flip)]
    b = [b[0] for b in batches(s, 4, seed=1, augment=crop_flip)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    plain = [b[0] for b in batches(s, 4, seed=1)]
    assert any(not np.array_equal(p, q) for p, q in zip(a, plain))


# ---------------------------------------------------------------- digits

def test_digits_fixed_splits_counts_and_scaling():
    tr, va, te = (load_dataset("digits", split=s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (1257, 180, 360)
    assert tr.x.shape == (1257, 1, 8, 8) and tr.input_shape == (1, 8, 8)
    assert tr.classes == [str(i) for i in range(10)]
    # pixels are 0..16 / 16: a 17-level grid with both ends present
    levels = np.unique(np.concatenate([tr.x.ravel(), te.x.ravel()]) * 16)
    assert np.allclose(levels, np.arange(17))
    # disjoint, covering all 1797 images
    idx = np.concatenate([s.meta["indices"] for s in (tr, va, te)])
    assert np.array_equal(np.sort(idx), np.arange(1797))
    # stratified: every class has 35..37 test and 17..19 val images
    assert te.class_counts().min() >= 35 and te.class_counts().max() <= 37
    assert va.class_counts().min() >= 17 and va.class_counts().max() <= 19
    # fixed: same images every time
    assert np.array_equal(load_dataset("digits", split="test").meta["indices"], te.meta["indices"])


# ---------------------------------------------------------------- properties and import hygiene

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=12), st.data())
def test_stratified_counts_total_and_quota_bounds(counts, data):
    c = np.array(counts)
    n = data.draw(st.integers(0, int(c.sum())))
    take = stratified_counts(c, n)
    assert take.sum() == n and np.all(take >= 0) and np.all(take <= c)
    if c.sum():
        assert np.all(np.abs(take - c * n / c.sum()) < 1.0)


def test_dataset_modules_do_not_import_torch():
    import subprocess
    import sys
    code = ("import sys; import lsnn.data.datasets, lsnn.data.cifar, "
            "lsnn.data.gsc, lsnn.data.mfcc, lsnn.data.archive; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
