"""Dataset registry and the split container the searcher and the runtime share (NumPy only, no torch).

Every loader returns a `DatasetSplit`: `x` float32 [N, C, H, W] in [0, 1] (the chip's 8-bit graded
input is `round(x * 255)`, docs/SEMANTICS.md section 5), `y` int64 [N]. Helpers: `batches` (seeded
mini-batches), `subset` (stratified reduction for small runs); augmentations are in `augment`.

Datasets (`load_dataset(name, data_dir, split, **opts)`):
- `digits`: scikit-learn's bundled 8x8 digits (1797 images, no data_dir). Fixed stratified splits
  (seed 0): test 360 (20 %), val 180 (10 % of all, carved from the rest), train 1257.
- `cifar10`, `cifar100`: see `data_cifar` (pickle batches or a JPEG class-folder tree / its .tar).
- `gsc`: Speech Commands, 12 classes, MFCC 40 x 98; see `data_gsc`.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from lsnn.errors import DatasetError

SPLITS = ("train", "val", "test")

DIGITS_SEED = 0
DIGITS_TEST = 360    # 20 % of 1797, rounded as sklearn's train_test_split does (ceil)
DIGITS_VAL = 180     # 10 % of 1797, taken from the 1437 non-test images


@dataclass
class DatasetSplit:
    """One split of a dataset: images/feature maps `x` [N, C, H, W] in [0, 1] and labels `y` [N]."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    name: str
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or self.x.dtype != np.float32 or self.x.ndim != 4:
            raise DatasetError(f"{self.name}/{self.split}: x must be float32 [N, C, H, W], got "
                               f"{getattr(self.x, 'dtype', type(self.x))} {getattr(self.x, 'shape', '')}")
        if not isinstance(self.y, np.ndarray) or self.y.dtype != np.int64 or self.y.shape != (len(self.x),):
            raise DatasetError(f"{self.name}/{self.split}: y must be int64 [{len(self.x)}], got "
                               f"{getattr(self.y, 'dtype', type(self.y))} {getattr(self.y, 'shape', '')}")
        self.classes = list(self.classes)
        if len(self.x):
            lo, hi = float(self.x.min()), float(self.x.max())
            if not (lo >= 0.0 and hi <= 1.0):
                raise DatasetError(f"{self.name}/{self.split}: x values must lie in [0, 1], got [{lo}, {hi}]")
            if self.y.min() < 0 or self.y.max() >= len(self.classes):
                raise DatasetError(f"{self.name}/{self.split}: labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> np.ndarray:
        """Samples per class, int64 [num_classes]."""
        return np.bincount(self.y, minlength=len(self.classes)).astype(np.int64)

    def take(self, idx: np.ndarray, split: str | None = None) -> "DatasetSplit":
        """A new split holding rows `idx` (copies; meta is shared)."""
        idx = np.asarray(idx, dtype=np.int64)
        return DatasetSplit(self.x[idx], self.y[idx], self.classes, self.name,
                            split or self.split, dict(self.meta))


# ---------------------------------------------------------------- stratified sampling

def stratified_counts(class_counts: np.ndarray, n: int) -> np.ndarray:
    """How many of each class to take for `n` in total, proportional to `class_counts`.

    Largest remainder: floors of the exact quotas, then one more to the classes with the largest
    fractional parts (ties -> lower class index), so the total is exactly `n`.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    total = int(counts.sum())
    if not 0 <= n <= total:
        raise ValueError(f"cannot take {n} of {total}")
    if total == 0:
        return counts.copy()
    quota = counts * n / total
    take = np.floor(quota).astype(np.int64)
    rest = n - int(take.sum())
    order = np.lexsort((np.arange(len(counts)), -(quota - take)))
    take[order[:rest]] += 1
    return take


def stratified_split(y: np.ndarray, n_take: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 0..len(y)-1 into (keep, take), `take` holding `n_take` stratified by class.

    Deterministic for a seed: one generator, classes visited in increasing label order.
    Both index arrays are sorted.
    """
    y = np.asarray(y)
    labels = np.unique(y)
    per = stratified_counts(np.array([(y == c).sum() for c in labels]), n_take)
    rng = np.random.default_rng(seed)
    take = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(labels, per)]
    take_idx = np.sort(np.concatenate(take)) if take else np.zeros(0, np.int64)
    mask = np.ones(len(y), bool)
    mask[take_idx] = False
    return np.flatnonzero(mask), take_idx.astype(np.int64)


def subset(split: DatasetSplit, n: int, seed: int = 0) -> DatasetSplit:
    """A stratified random subset of `n` samples (all of them if n >= len), in original order."""
    if n >= len(split):
        return split
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    _, idx = stratified_split(split.y, n, seed)
    return split.take(idx)


# ---------------------------------------------------------------- batching and augmentation

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def batches(split: DatasetSplit, batch_size: int, shuffle: bool = True, seed: int = 0,
            drop_last: bool = False, augment: Augment | None = None
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (x, y) NumPy batches covering the split once; the order depends only on `seed`.

    `augment(x, rng)` (e.g. `lsnn.data.augment.crop_flip`) is applied per batch with its own generator from `seed`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(split)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    aug_rng = np.random.default_rng([seed, 1])
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        xb, yb = split.x[idx], split.y[idx]
        if augment is not None:
            xb = augment(xb, aug_rng)
        yield xb, yb


# ---------------------------------------------------------------- digits

def load_digits(data_dir: None = None, split: str = "train") -> DatasetSplit:
    """scikit-learn's 8x8 digits as [N, 1, 8, 8] = pixels / 16; fixed splits 1257 / 180 / 360."""
    if data_dir is not None:
        raise DatasetError(f"digits is bundled with scikit-learn and takes no data_dir (got {data_dir})")
    from sklearn.datasets import load_digits as _sk_digits  # lazy: sklearn is slow to import

    xs, ys = _sk_digits(return_X_y=True)
    x = (xs.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    y = ys.astype(np.int64)
    rest, test = stratified_split(y, DIGITS_TEST, DIGITS_SEED)
    tr, va = stratified_split(y[rest], DIGITS_VAL, DIGITS_SEED + 1)
    idx = {"train": rest[tr], "val": rest[va], "test": test}[split]
    return DatasetSplit(x[idx], y[idx], [str(i) for i in range(10)], "digits", split,
                        {"indices": idx})


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class LoaderRef:
    """A loader named by module and function, imported on first use (keeps imports light)."""

    module: str
    func: str

    def resolve(self) -> Callable[..., DatasetSplit]:
        return getattr(importlib.import_module(self.module), self.func)

    def __call__(self, *args: Any, **kwargs: Any) -> DatasetSplit:
        return self.resolve()(*args, **kwargs)


REGISTRY: dict[str, Callable[..., DatasetSplit]] = {
    "digits": LoaderRef(__name__, "load_digits"),
    "cifar10": LoaderRef("lsnn.data.cifar", "load_cifar10"),
    "cifar100": LoaderRef("lsnn.data.cifar", "load_cifar100"),
    "gsc": LoaderRef("lsnn.data.gsc", "load_gsc"),
}


def register(name: str, loader: Callable[..., DatasetSplit]) -> None:
    """Add a loader `loader(data_dir, split, **opts) -> DatasetSplit` under `name`."""
    REGISTRY[name] = loader


def load_dataset(name: str, data_dir: Any = None, split: str = "train", **opts: Any) -> DatasetSplit:
    """Load one split of a registered dataset; unknown names/splits/options raise DatasetError."""
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(sorted(REGISTRY))})")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} for {name} (expected one of {', '.join(SPLITS)})")
    loader = REGISTRY[name]
    fn = loader.resolve() if isinstance(loader, LoaderRef) else loader
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY]
        bad = sorted(set(opts) - set(accepted))
        if bad:
            raise DatasetError(f"unknown option(s) {', '.join(bad)} for dataset {name!r} "
                               f"(accepted: {', '.join(accepted) or 'none'})")
    return fn(data_dir, split, **opts)
