"""CIFAR-10 / CIFAR-100 loaders (NumPy + Pillow, no torch).

Accepted layouts (`data_dir` may be the folder, a parent of it, or an archive of it):
- CIFAR-10 python batches `cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`: pickled
  dicts with bytes keys b'data' (N x 3072 uint8: R, G, B planes of 32 x 32, row-major) and b'labels'.
  The official `cifar-10-python.tar.gz` works as is.
- CIFAR-100 `cifar-100-python/{train, test, meta}` with b'fine_labels' (b'coarse_labels') and
  meta b'fine_label_names' (b'coarse_label_names').
- CIFAR-10 as images `train/<class>/*.jpg`, `test/<class>/*.jpg` (classes sorted alphabetically =
  CIFAR label order), e.g. shared/data/cifar10-jpg.tar. Decoding is cached as uint8 arrays
  (`<cache_dir>/cifar10-img-<split>-<key>.npz`, x [N, 3, 32, 32]) next to the extracted tree.

Pickles are read with a restricted unpickler that only builds NumPy arrays and plain containers.
Splits: 'test' is the official test set; 'val' is a fixed stratified `val_fraction` (default 10 %)
of the official train set (seed 0) and 'train' is the rest.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from lsnn.data.archive import Source, load_arrays, resolve_source, save_arrays, settings_key
from lsnn.data.datasets import DatasetSplit, stratified_split
from lsnn.errors import DatasetError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
C10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
C10_EXPECT = "the CIFAR-10 python batches data_batch_1..5 and test_batch"
C100_EXPECT = "the CIFAR-100 python files train, test and meta"
IMG_EXPECT = "an image-folder tree train/<class>/*.jpg and test/<class>/*.jpg"
IMG_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VAL_SEED = 0
_DECODE_VERSION = 1


# ---------------------------------------------------------------- safe pickle reading

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),   # protocol 5 arrays
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds only NumPy arrays/scalars and builtin containers; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {f'{module}.{name}'[:80]!r} is not allowed")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict:
    """Read one CIFAR python batch (bytes keys) safely; DatasetError names the file on failure."""
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(io.BufferedReader(f), encoding="bytes").load()
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: not found") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, OSError, LookupError, OverflowError, MemoryError) as e:
        # LookupError: _codecs.encode with an unknown codec; MemoryError: a size field of terabytes
        raise DatasetError(f"{path}: not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: not a CIFAR python batch (expected a dict, got {type(obj).__name__})")
    return obj


def _item(path: Path, d: dict, key: bytes) -> Any:
    """d[key]; a missing key is a DatasetError naming the file and (some of) the keys it has."""
    if key not in d:
        has = sorted(repr(k)[:30] for k in d if isinstance(k, (bytes, str)))[:6]
        raise DatasetError(f"{path}: missing key {key!r} (has {', '.join(has) or 'no bytes keys'})")
    return d[key]


def _array(path: Path, d: dict, key: bytes) -> np.ndarray:
    value = _item(path, d, key)
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:     # a ragged list, say
        raise DatasetError(f"{path}: {key!r} is not an array ({type(e).__name__}: {e})") from e


def _batch_arrays(path: Path, label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 [N, 3, 32, 32], y int64 [N]) from one pickled batch."""
    d = read_pickle(path)
    data, y = _array(path, d, b"data"), _array(path, d, label_key)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DatasetError(f"{path}: b'data' is {data.dtype} {data.shape} (expected uint8 N x 3072)")
    if y.size and y.dtype.kind not in "iu":
        raise DatasetError(f"{path}: {label_key!r} is {y.dtype} (expected integer labels)")
    y = y.astype(np.int64).reshape(-1)
    if y.shape[0] != data.shape[0]:
        raise DatasetError(f"{path}: {y.shape[0]} labels for {data.shape[0]} images")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DatasetError(f"{path}: labels outside 0..{n_classes - 1}")
    return data.reshape(-1, 3, 32, 32), y


def _names(path: Path, key: bytes) -> list[str]:
    names = _item(path, read_pickle(path), key)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DatasetError(f"{path}: {key!r} is not a list of bytes / str names ({type(names).__name__})")
    try:
        return [n.decode() if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: {key!r} holds a name that is not UTF-8 ({e})") from e


# ---------------------------------------------------------------- layout detection

def _is_c10_pickle(d: Path) -> bool:
    return any((d / n).is_file() for n in C10_BATCHES + ("batches.meta",))


def _is_c100_pickle(d: Path) -> bool:
    return (d / "meta").is_file() and ((d / "train").is_file() or (d / "test").is_file())


def _is_image_tree(d: Path) -> bool:
    return (d / "train").is_dir() or (d / "test").is_dir()


def _c10_pickle_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    for n in C10_BATCHES:
        if not (root / n).is_file():
            raise DatasetError(f"{root}: missing {n} (expected {C10_EXPECT})")
    meta = root / "batches.meta"
    classes = _names(meta, b"label_names") if meta.is_file() else list(CIFAR10_CLASSES)
    if len(classes) != 10:
        raise DatasetError(f"{meta}: {len(classes)} label_names (expected 10)")
    files = C10_BATCHES[:5] if split == "train" else ("test_batch",)
    parts = [_batch_arrays(root / n, b"labels", 10) for n in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes


# ---------------------------------------------------------------- image-folder tree

def _decode_image(path: Path) -> np.ndarray:
    """One image file -> uint8 [3, 32, 32] (RGB planes)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:             # the size before decoding: a header may claim 65535 x 65535
            size = im.size
            a = np.asarray(im.convert("RGB"), dtype=np.uint8) if size == (32, 32) else None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as e:                     # ValueError: a PNG whose IHDR chunk is cut short, say
        raise DatasetError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if a is None:
        raise DatasetError(f"{path}: image is {size[0]}x{size[1]} (expected 32x32)")
    return a.transpose(2, 0, 1)


def _tree_classes(root: Path, split: str) -> list[str]:
    d = root / split
    if not d.is_dir():
        raise DatasetError(f"{root}: missing {split}/ (expected {IMG_EXPECT})")
    classes = sorted(c.name for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
    if not classes:
        raise DatasetError(f"{d}: no class folders (expected {IMG_EXPECT})")
    return classes


def _decode_tree(root: Path, split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for i, c in enumerate(classes):
        fs = sorted(p for p in (root / split / c).iterdir() if p.suffix.lower() in IMG_SUFFIXES)
        if not fs:
            raise DatasetError(f"{root / split / c}: no images (expected *.jpg / *.png)")
        files += fs
        labels += [i] * len(fs)
    x = np.empty((len(files), 3, 32, 32), dtype=np.uint8)
    for j, p in enumerate(files):
        x[j] = _decode_image(p)
    return x, np.asarray(labels, dtype=np.int64)


def _tree_split(src: Source, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decoded official split ('train' or 'test') of an image tree, via the uint8 cache."""
    classes = _tree_classes(src.root, split)
    other = "test" if split == "train" else "train"
    if (src.root / other).is_dir() and _tree_classes(src.root, other) != classes:
        raise DatasetError(f"{src.root}: train/ and test/ have different class folders "
                           f"(expected {IMG_EXPECT})")
    cache = src.cache_dir / (f"cifar10-img-{split}-"
                             f"{settings_key(src.key, str(src.root), _DECODE_VERSION)}.npz")
    got = load_arrays(cache)
    if got is not None and list(got.get("classes", [])) == classes:
        return got["x"], got["y"].astype(np.int64), classes
    x, y = _decode_tree(src.root, split, classes)
    save_arrays(cache, x=x, y=y, classes=np.asarray(classes))
    return x, y, classes


# ---------------------------------------------------------------- public loaders

def _finish(x8: np.ndarray, y: np.ndarray, classes: list[str], name: str, split: str,
            val_fraction: float, meta: dict) -> DatasetSplit:
    """Carve val from the official train split, convert to float32 in [0, 1]."""
    if split != "test":
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetError(f"{name}: val_fraction must be in [0, 1), got {val_fraction}")
        n_val = int(round(val_fraction * len(y)))
        if split == "val" and n_val == 0:
            raise DatasetError(f"{name}: the val split is empty (val_fraction={val_fraction})")
        keep, val = stratified_split(y, n_val, VAL_SEED)
        idx = keep if split == "train" else val
        meta = {**meta, "val_fraction": val_fraction}
    else:
        idx = np.arange(len(y))
    return DatasetSplit(to_unit_float(x8, idx), y[idx], classes, name, split, meta)


def to_unit_float(x8: np.ndarray, idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """float32 x8[idx] / 255, gathered in chunks (no full-size uint8 intermediate)."""
    out = np.empty((len(idx),) + x8.shape[1:], dtype=np.float32)
    for i in range(0, len(idx), chunk):
        np.multiply(x8[idx[i:i + chunk]], np.float32(1.0 / 255.0), out=out[i:i + chunk],
                    dtype=np.float32)
    return out


def load_cifar10(data_dir: Any = None, split: str = "train", *,
                 val_fraction: float = 0.1) -> DatasetSplit:
    """CIFAR-10 from python batches or an image-folder tree (folder or archive); x [N, 3, 32, 32]."""
    src = resolve_source(
        data_dir, dataset="cifar10",
        is_root=lambda d: _is_c10_pickle(d) or _is_image_tree(d),
        expected=f"{C10_EXPECT}, or {IMG_EXPECT}",
        archive_names=("cifar-10-python.tar.gz", "cifar10-jpg.tar"))
    official = "test" if split == "test" else "train"
    if _is_c10_pickle(src.root):
        x8, y, classes = _c10_pickle_split(src.root, official)
        fmt = "pickle"
    else:
        x8, y, classes = _tree_split(src, official)
        fmt = "images"
    return _finish(x8, y, classes, "cifar10", split, val_fraction,
                   {"format": fmt, "root": str(src.root)})


def load_cifar100(data_dir: Any = None, split: str = "train", *, val_fraction: float = 0.1,
                  label_mode: str = "fine") -> DatasetSplit:
    """CIFAR-100 python files (folder or `cifar-100-python.tar.gz`); fine (100) or coarse (20) labels."""
    if label_mode not in ("fine", "coarse"):
        raise DatasetError(f"cifar100: label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    src = resolve_source(data_dir, dataset="cifar100", is_root=_is_c100_pickle,
                         expected=C100_EXPECT, archive_names=("cifar-100-python.tar.gz",))
    for n in ("train", "test", "meta"):
        if not (src.root / n).is_file():
            raise DatasetError(f"{src.root}: missing {n} (expected {C100_EXPECT})")
    classes = _names(src.root / "meta", f"{label_mode}_label_names".encode())
    official = "test" if split == "test" else "train"
    x8, y = _batch_arrays(src.root / official, f"{label_mode}_labels".encode(), len(classes))
    return _finish(x8, y, classes, "cifar100", split, val_fraction,
                   {"format": "pickle", "root": str(src.root), "label_mode": label_mode})
