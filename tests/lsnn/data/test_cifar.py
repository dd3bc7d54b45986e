"""CIFAR loaders on small files in the real formats (pickle batches, JPEG class folders, tars),
plus the archive layer: safe and atomic extraction, caches keyed on the source."""
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lsnn.data import cifar as data_cifar
from lsnn.data.archive import extract_archive
from lsnn.data.cifar import CIFAR10_CLASSES
from lsnn.data.datasets import load_dataset
from lsnn.errors import DatasetError

SHARED = Path("/work/shared/data")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("LSNN_DATA_CACHE", str(c))
    return c


# ---------------------------------------------------------------- writers in the real formats

def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_c10_batches(root: Path, per_batch: int = 20, n_test: int = 20, protocol: int = 2) -> dict:
    """cifar-10-batches-py with bytes keys as in the official release; labels cycle 0..9."""
    root.mkdir(parents=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else per_batch
        data = _images(n, i)
        labels = [(j + i) % 10 for j in range(n)]
        d = {b"batch_label": f"batch {name}".encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)]}
        with open(root / name, "wb") as f:
            pickle.dump(d, f, protocol=protocol)
        out[name] = (data, labels)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                     b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f, protocol=protocol)
    return out


def write_c100(root: Path, n_train: int = 200, n_test: int = 100) -> dict:
    root.mkdir(parents=True)
    out = {}
    for i, (name, n) in enumerate((("train", n_train), ("test", n_test))):
        fine = [j % 100 for j in range(n)]
        coarse = [f // 5 for f in fine]
        data = _images(n, 10 + i)
        with open(root / name, "wb") as f:
            pickle.dump({b"filenames": [b"x"] * n, b"batch_label": name.encode(), b"fine_labels": fine,
                         b"coarse_labels": coarse, b"data": data}, f, protocol=2)
        out[name] = (data, fine, coarse)
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"fine{k:02d}".encode() for k in range(100)],
                     b"coarse_label_names": [f"coarse{k:02d}".encode() for k in range(20)]}, f, protocol=2)
    return out


def colour(ci: int, j: int) -> tuple[int, int, int]:
    return (20 * ci + 10, 250 - 20 * ci, 60 + 30 * j)


def write_jpg_tree(top: Path, n_train: int = 4, n_test: int = 2, classes=CIFAR10_CLASSES) -> None:
    """<top>/train/<class>/0000.jpg ... flat-colour 32x32 JPEGs (JPEG keeps flat colours to +-2)."""
    for split, n in (("train", n_train), ("test", n_test)):
        for ci, c in enumerate(classes):
            d = top / split / c
            d.mkdir(parents=True)
            for j in range(n):
                Image.new("RGB", (32, 32), colour(ci, j)).save(d / f"{j:04d}.jpg", quality=90)


def make_tar(src_dir: Path, arcname: str, out: Path, mode: str = "w") -> Path:
    with tarfile.open(out, mode) as tf:
        tf.add(src_dir, arcname=arcname)
    return out


# ---------------------------------------------------------------- pickle batches

def test_c10_pickles_layout_splits_and_val_carve(tmp_path):
    raw = write_c10_batches(tmp_path / "cifar-10-batches-py")
    tr = load_dataset("cifar10", tmp_path, "train")          # the parent folder is accepted too
    va = load_dataset("cifar10", tmp_path / "cifar-10-batches-py", "val")
    te = load_dataset("cifar10", tmp_path / "cifar-10-batches-py", "test")
    assert (len(tr), len(va), len(te)) == (90, 10, 20)
    assert tr.classes == list(CIFAR10_CLASSES) and tr.input_shape == (3, 32, 32)
    assert va.class_counts().tolist() == [1] * 10            # 10 % stratified: one per class
    # row-major RGB planes: flat index c*1024 + h*32 + w
    data, labels = raw["test_batch"]
    assert te.x[3, 2, 5, 7] == np.float32(data[3, 2 * 1024 + 5 * 32 + 7] / 255)
    assert np.array_equal(np.round(te.x * 255).astype(np.uint8).reshape(20, 3072), data)
    assert te.y.tolist() == labels
    # train + val is exactly the 100 official training images, disjoint
    all_rows = np.concatenate([raw[f"data_batch_{k}"][0] for k in range(1, 6)])
    got = np.round(np.concatenate([tr.x, va.x]) * 255).astype(np.uint8).reshape(100, 3072)
    assert sorted(map(bytes, got)) == sorted(map(bytes, all_rows))
    assert len(load_dataset("cifar10", tmp_path, "train", val_fraction=0.0)) == 100


def test_c10_protocol4_pickle_also_reads(tmp_path):
    write_c10_batches(tmp_path / "c", per_batch=10, n_test=10, protocol=4)
    assert len(load_dataset("cifar10", tmp_path / "c", "test")) == 10


def test_missing_batch_names_the_file_and_the_expected_set(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    write_c10_batches(root)
    (root / "data_batch_3").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", root, "train")
    msg = str(e.value)
    assert str(root) in msg and "missing data_batch_3" in msg and "data_batch_1..5 and test_batch" in msg


def test_malformed_batch_is_a_dataset_error(tmp_path):
    root = tmp_path / "c"
    write_c10_batches(root)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 1000), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(DatasetError, match=r"test_batch.*3072"):
        load_dataset("cifar10", root, "test")
    (root / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetError, match="test_batch: not a CIFAR python batch"):
        load_dataset("cifar10", root, "test")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lsnn_pwned_marker",))


def test_pickle_with_foreign_globals_is_refused_not_executed(tmp_path):
    root = tmp_path / "c"
    write_c10_batches(root)
    marker = Path("/tmp/lsnn_pwned_marker")
    marker.unlink(missing_ok=True)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(DatasetError, match="not allowed"):
        load_dataset("cifar10", root, "test")
    assert not marker.exists()


def test_official_tar_gz_is_extracted_into_the_cache(tmp_path, cache):
    write_c10_batches(tmp_path / "src" / "cifar-10-batches-py")
    (tmp_path / "dl").mkdir()
    arc = make_tar(tmp_path / "src" / "cifar-10-batches-py", "cifar-10-batches-py",
                   tmp_path / "dl" / "cifar-10-python.tar.gz", "w:gz")
    te = load_dataset("cifar10", arc, "test")
    assert len(te) == 20
    ext = [p for p in cache.iterdir()]
    assert len(ext) == 1 and ext[0].name.startswith("cifar-10-python.tar.gz-")
    assert (ext[0] / "cifar-10-batches-py" / "test_batch").is_file()
    assert len(load_dataset("cifar10", tmp_path / "dl", "test")) == 20   # folder holding the archive


def test_cifar100_fine_and_coarse(tmp_path):
    raw = write_c100(tmp_path / "cifar-100-python")
    te = load_dataset("cifar100", tmp_path, "test")
    assert len(te) == 100 and te.num_classes == 100 and te.classes[7] == "fine07"
    assert te.y.tolist() == raw["test"][1]
    tr = load_dataset("cifar100", tmp_path, "train")
    va = load_dataset("cifar100", tmp_path, "val")
    assert (len(tr), len(va)) == (180, 20)
    co = load_dataset("cifar100", tmp_path, "test", label_mode="coarse")
    assert co.num_classes == 20 and co.y.tolist() == raw["test"][2] and co.classes[3] == "coarse03"
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DatasetError, match="missing test"):
        load_dataset("cifar100", tmp_path, "test")


# ---------------------------------------------------------------- JPEG class folders

def test_jpg_tree_labels_follow_sorted_class_names_and_pixels_decode(tmp_path):
    write_jpg_tree(tmp_path / "cifar10-jpg")
    te = load_dataset("cifar10", tmp_path / "cifar10-jpg", "test")
    assert len(te) == 20 and te.classes == sorted(CIFAR10_CLASSES) == list(CIFAR10_CLASSES)
    assert te.y.tolist() == [c for c in range(10) for _ in range(2)]
    # flat colours survive JPEG to within a few levels; image k of class c has colour(c, j)
    for k in (0, 5, 19):
        c, j = divmod(k, 2)
        want = np.array(colour(c, j))[:, None, None]
        assert np.abs(np.round(te.x[k] * 255) - want).max() <= 3
    tr = load_dataset("cifar10", tmp_path / "cifar10-jpg", "train")
    va = load_dataset("cifar10", tmp_path / "cifar10-jpg", "val")
    assert (len(tr), len(va)) == (36, 4)


def test_jpg_tar_extracts_once_caches_decoded_arrays_and_rekeys_on_change(tmp_path, cache, monkeypatch):
    write_jpg_tree(tmp_path / "src" / "cifar10-jpg")
    arc = make_tar(tmp_path / "src" / "cifar10-jpg", "cifar10-jpg", tmp_path / "cifar10-jpg.tar")
    first = load_dataset("cifar10", arc, "test")
    (ext,) = [p for p in cache.iterdir()]
    assert (ext / "cifar10-jpg" / "train" / "bird" / "0003.jpg").is_file()
    npz = list(ext.glob("cifar10-img-test-*.npz"))
    assert len(npz) == 1
    with np.load(npz[0]) as z:
        assert z["x"].dtype == np.uint8 and z["x"].shape == (20, 3, 32, 32)

    def boom(path):
        raise AssertionError("decoded again instead of using the cache")
    monkeypatch.setattr(data_cifar, "_decode_image", boom)
    again = load_dataset("cifar10", arc, "test")
    assert np.array_equal(again.x, first.x) and np.array_equal(again.y, first.y)
    # a rewritten archive (new mtime) is a new source: extracted and decoded afresh
    os.utime(arc, ns=(arc.stat().st_atime_ns, arc.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("cifar10", arc, "test")
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2


def test_jpg_tree_errors_name_the_file(tmp_path):
    top = tmp_path / "t"
    write_jpg_tree(top, n_train=1, n_test=1)
    Image.new("RGB", (28, 30), (1, 2, 3)).save(top / "test" / "cat" / "0000.jpg")
    with pytest.raises(DatasetError, match=r"cat/0000\.jpg: image is 28x30 \(expected 32x32\)"):
        load_dataset("cifar10", top, "test")
    (top / "test" / "cat" / "0000.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DatasetError, match=r"cat/0000\.jpg: not a readable image"):
        load_dataset("cifar10", top, "test")
    (top / "test" / "zebra").mkdir()
    with pytest.raises(DatasetError, match="different class folders"):
        load_dataset("cifar10", top, "test")
    only_train = tmp_path / "o"
    write_jpg_tree(only_train, n_train=1, n_test=1)
    shutil.rmtree(only_train / "test")
    with pytest.raises(DatasetError, match=r"missing test/"):
        load_dataset("cifar10", only_train, "test")


def test_not_a_dataset_folder_or_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: expected"):
        load_dataset("cifar10", tmp_path / "empty")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("cifar10", tmp_path / "nope")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(DatasetError, match="not a folder or a"):
        load_dataset("cifar10", tmp_path / "x.zip")


# ---------------------------------------------------------------- safe, atomic extraction

def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


@pytest.mark.parametrize("bad, why", [
    ("../escape.txt", "'..'"),
    ("/tmp/lsnn_abs_escape.txt", "absolute"),
    ("ok/../../escape.txt", "'..'"),
])
def test_extraction_rejects_unsafe_paths_and_leaves_nothing(tmp_path, bad, why):
    arc = _tar_with(tmp_path / "a.tar", [_file("top/good.txt"), _file(bad)])
    dest = tmp_path / "cache" / "a"
    with pytest.raises(DatasetError, match=why):
        extract_archive(arc, dest)
    assert not dest.exists() and list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/lsnn_abs_escape.txt").exists()


def test_extraction_rejects_links(tmp_path):
    link = tarfile.TarInfo("top/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    arc = _tar_with(tmp_path / "a.tar", [_file("top/good.txt"), (link, None)])
    with pytest.raises(DatasetError, match="links"):
        extract_archive(arc, tmp_path / "cache" / "a")
    assert not (tmp_path / "cache" / "a").exists()


def test_interrupted_extraction_never_leaves_a_half_tree(tmp_path):
    big = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    arc = _tar_with(tmp_path / "a.tar", [_file("top/a.bin", big), _file("top/b.bin", big)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(arc.read_bytes()[:400_000])          # ends inside top/b.bin
    dest = tmp_path / "cache" / "a"
    with pytest.raises(DatasetError, match="cannot extract"):
        extract_archive(cut, dest)
    assert not dest.exists() and list((tmp_path / "cache").iterdir()) == []
    # a temp dir left by a killed process is swept; a complete extraction lands in place
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / "cache" / f".a.part-{dead}-deadbeef"
    (stale / "top").mkdir(parents=True)
    extract_archive(arc, dest)
    assert not stale.exists()
    assert (dest / "top" / "b.bin").read_bytes() == big


# ---------------------------------------------------------------- the real tar (a few members)

@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar10-jpg.tar").is_file(), reason="shared data not present")
def test_real_cifar10_jpg_members_load(tmp_path):
    """Pull 3 train + 2 test JPEGs per class out of the real tar, then load the mini tree and a tar of it."""
    want = {("train", c): 3 for c in CIFAR10_CLASSES} | {("test", c): 2 for c in CIFAR10_CLASSES}
    got: dict = {}
    with tarfile.open(SHARED / "cifar10-jpg.tar") as tf:
        for m in tf:
            parts = m.name.split("/")
            key = tuple(parts[1:3])
            if m.isfile() and len(parts) == 4 and got.get(key, 0) < want[key]:
                tf.extract(m, tmp_path / "mini", set_attrs=False)
                got[key] = got.get(key, 0) + 1
            if got == want:
                break
    assert got == want
    te = load_dataset("cifar10", tmp_path / "mini" / "cifar10-jpg", "test")
    assert len(te) == 20 and te.classes == list(CIFAR10_CLASSES)
    assert te.y.tolist() == [c for c in range(10) for _ in range(2)]
    assert 0.05 < te.x.mean() < 0.95 and te.x.std() > 0.05      # real photos, not blank
    arc = make_tar(tmp_path / "mini" / "cifar10-jpg", "cifar10-jpg", tmp_path / "cifar10-jpg.tar")
    tr = load_dataset("cifar10", arc, "train")
    va = load_dataset("cifar10", arc, "val")
    assert (len(tr), len(va)) == (27, 3)
