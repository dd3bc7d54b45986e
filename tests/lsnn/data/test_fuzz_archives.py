"""Property-based fuzzing of the dataset loaders (lsnn/data) and their files: tar / tar.gz / tar.xz
archives and their members, WAV headers and bodies, JPEG / PNG bytes, CIFAR python pickles.

Every case ends in a correct load or exactly one DatasetError whose message is one line naming the
file (or the archive); never another exception, never a pickle that runs code, never a partial tree
or temp file left in the extraction cache, never a file written outside it. Mutations start from
small valid files so the deep checks are reached. Derandomized and bounded (the same examples on
every run); to search further, set derandomize=False and raise max_examples in FUZZ. The plain
tests at the end pin the inputs the fuzzing found."""
from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import struct
import tarfile
import tracemalloc
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lsnn.data.archive import ARCHIVE_SUFFIXES, extract_archive, resolve_source
from lsnn.data.datasets import load_dataset
from lsnn.data.gsc import BACKGROUND, read_wav
from lsnn.errors import DatasetError
from tests.factories.datasets import (
    GSC_WORDS,
    MUTATION,
    PICKLE_EDIT,
    WAV_EDIT,
    Quiet,
    c10_batch,
    cache_at,
    code_running_payloads,
    edit_image,
    edit_obj,
    edit_wav,
    jpeg_bytes,
    leftovers,
    load_or_error,
    mutate,
    swapped,
    tar_bytes,
    tar_hot_offsets,
    tar_members,
    tar_tree,
    tone,
    wav_bytes,
    write_c10_batches,
    write_gsc_tree,
    write_jpg_tree,
)

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
ESCAPE = Path("/tmp/lsnn-fuzz-archives-escape.txt")


# ---------------------------------------------------------------- tar members

SAFE = ["top", "top/a.txt", "top/sub/b.wav", "top/é ü.txt", "./top/c", "top\\d.txt", ""]
UNSAFE = ["../x", "../../escape.txt", "top/../../escape.txt", str(ESCAPE), "//x", "C:\\x",
          "top\\..\\..\\x", "top/b\x00c" + "x" * 100, "top/é\x00"]     # NUL survives in a PAX path
TYPES = [tarfile.REGTYPE] * 3 + [tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.DIRTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                  tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
_part = st.sampled_from(["top", "..", ".", "x", "é", "\n", "", "a\\b"])
_name = st.one_of(st.sampled_from(SAFE + UNSAFE), st.lists(_part, min_size=1, max_size=4).map("/".join))
MEMBER = st.tuples(_name, st.sampled_from(TYPES), st.sampled_from(["", "top/a.txt", "/etc/passwd", "../x"]),
                   st.binary(max_size=40))


def _parts(m: tarfile.TarInfo) -> tuple[str, ...]:
    return PurePosixPath(m.name.replace("\\", "/")).parts


def _unsafe(m: tarfile.TarInfo) -> bool:
    """A member that must never be extracted (judged on the tar as read back, not as written)."""
    name = m.name.replace("\\", "/")
    return (name.startswith("/") or ".." in _parts(m) or "\x00" in name or (len(name) > 1 and name[1] == ":")
            or not (m.isfile() or m.isdir()))


@settings(FUZZ, max_examples=100)
@given(st.lists(MEMBER, min_size=1, max_size=4), st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
       tarfile.PAX_FORMAT]), st.sampled_from(["", "gz", "xz", "bz2"]), st.sampled_from(ARCHIVE_SUFFIXES),
       st.booleans(), MUTATION)
def test_tar_members_extract_safely_or_are_refused(tmp_path_factory, spec, fmt, comp, suffix, corrupt, mutation):
    mutation = mutation if corrupt else None
    try:
        data = tar_bytes(tar_members(spec), comp, fmt)
    except ValueError:                        # a name this format cannot hold
        data = tar_bytes(tar_members(spec), comp, tarfile.PAX_FORMAT)
    d = tmp_path_factory.mktemp("tar")
    arc = d / f"data{suffix}"
    arc.write_bytes(data if mutation is None else mutate(data, mutation))
    with cache_at(d) as cache:
        src = load_or_error(lambda: resolve_source(arc, dataset="fuzz", is_root=lambda p: True,
                                                   expected="anything"), arc)
    assert leftovers(cache) == [] and not ESCAPE.exists()
    outside = [p for p in d.rglob("*") if p not in (arc, cache) and not (src and p.is_relative_to(src.root))]
    assert outside == [], outside             # nothing written beside the extraction, nothing half done
    if mutation is not None:
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        if any(_unsafe(m) for m in members):
            assert src is None
        elif src is not None:                 # each path as its last member says (() is the root itself)
            for parts, m in {_parts(m): m for m in members if _parts(m)}.items():
                target = src.root.joinpath(*parts)
                if m.isfile():
                    assert target.read_bytes() == tf.extractfile(m).read()
                else:
                    assert target.is_dir()


# ---------------------------------------------------------------- a Speech Commands tree and archive

@pytest.fixture(scope="module")
def gsc_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gsc") / "speech_commands"
    write_gsc_tree(root, n=4000)
    return root


@pytest.fixture(scope="module")
def gsc_tars(gsc_tree) -> Quiet:
    """Per compression: the tar bytes and (uncompressed) the offsets worth mutating most."""
    out = Quiet()
    for comp in ("", "gz", "xz"):
        data = tar_tree(gsc_tree, "speech_commands", comp)
        out[comp] = (data, tar_hot_offsets(data) if comp == "" else [])
    return out


@pytest.fixture(scope="module")
def jpg_tree(tmp_path_factory) -> Path:
    top = tmp_path_factory.mktemp("jpg") / "cifar10-jpg"
    write_jpg_tree(top)
    return top


def test_the_unmutated_files_load(tmp_path, gsc_tree, gsc_tars, jpg_tree):
    """The fuzzing starts from valid files: each loads as it is (CIFAR pickles in every protocol)."""
    with cache_at(tmp_path):
        for comp, (data, _) in gsc_tars.items():
            arc = tmp_path / f"speech-commands-subset.tar{'.' + comp if comp else ''}"
            arc.write_bytes(data)
            assert load_dataset("gsc", arc, "val", keywords=GSC_WORDS).class_counts().tolist() == [1, 0, 1, 1]
        assert len(load_dataset("gsc", gsc_tree, "train", keywords=GSC_WORDS)) == 3
        assert len(load_dataset("cifar10", jpg_tree, "test")) == 4
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):   # 5: numpy's _frombuffer, refused before
            write_c10_batches(tmp_path / f"c10-{protocol}", protocol=protocol)
            te = load_dataset("cifar10", tmp_path / f"c10-{protocol}", "test")
            assert np.array_equal(np.round(te.x * 255).reshape(2, -1), c10_batch(2, 5)[b"data"])
    assert read_wav(gsc_tree / "yes" / "0a0a0a0a_nohash_0.wav").shape == (4000,)


@settings(FUZZ, max_examples=30)
@given(st.sampled_from(["", "", "gz", "xz"]), MUTATION)
def test_gsc_archive_bytes_load_or_are_refused(tmp_path_factory, gsc_tree, gsc_tars, comp, mutation):
    data, hot = gsc_tars[comp]
    d = tmp_path_factory.mktemp("gsca")
    arc = d / f"speech-commands-subset.tar{'.' + comp if comp else ''}"
    arc.write_bytes(mutate(data, mutation, hot))
    with cache_at(d) as cache:
        s = load_or_error(lambda: load_dataset("gsc", arc, "train", keywords=GSC_WORDS), arc.name)
    assert leftovers(cache) == []
    assert s is None or (s.x.shape[1:] == (1, 40, 98) and s.classes == ["_silence_", "_unknown_", *GSC_WORDS])
    whole = {f"speech_commands/{p.relative_to(gsc_tree).as_posix()}" for p in gsc_tree.rglob("*") if p.is_file()}
    for ext in [p for p in cache.iterdir() if not p.name.startswith(".")] if cache.exists() else []:
        got = {p.relative_to(ext).as_posix() for p in ext.rglob("*") if p.is_file()}
        assert {f for f in got if not f.startswith("gsc-mfcc-")} == whole     # only ever the whole tree


# ---------------------------------------------------------------- WAV headers and bodies
# (the file-level tests below reuse one folder per test and put each mutated file in place for one
# example: thousands of per-example copies cost more to create and delete than the fuzzing itself)

@settings(FUZZ, max_examples=150)
@given(st.lists(WAV_EDIT, min_size=1, max_size=3), st.sampled_from([None, 16000]))
def test_wav_header_and_body_read_or_are_refused(tmp_path, edits, clip):
    b = wav_bytes(tone(800))
    for e in edits:
        b = edit_wav(b, e)
    p = tmp_path / "x.wav"
    p.write_bytes(b)
    a = load_or_error(lambda: read_wav(p, clip), p)
    if a is not None:
        assert a.dtype == np.float32 and a.ndim == 1 and (clip is None or len(a) == clip)
        assert len(a) == 0 or (a.min() >= -1.0 and a.max() < 1.0)
        assert clip is not None or len(a) <= len(b) // 2


@settings(FUZZ, max_examples=25)
@given(st.integers(0, 6), st.lists(WAV_EDIT, min_size=1, max_size=2))
def test_bad_wav_in_a_gsc_tree_names_the_file(tmp_path, gsc_tree, which, edits):
    root = tmp_path / "speech_commands"
    if not root.exists():
        shutil.copytree(gsc_tree, root)
    target = sorted(root.rglob("*.wav"))[which]
    b = target.read_bytes()
    for e in edits:
        b = edit_wav(b, e)
    names = [target] + ([root / BACKGROUND] if target.parent.name == BACKGROUND else [])
    with swapped(target, b), cache_at(tmp_path) as cache:
        s = load_or_error(lambda: load_dataset("gsc", root, "train", keywords=GSC_WORDS), *names)
    assert leftovers(cache) == [] and (s is None or s.x.shape[1:] == (1, 40, 98))


# ---------------------------------------------------------------- JPEG / PNG bytes

_size = st.tuples(st.just("size"), st.sampled_from([(0, 32), (32, 0), (33, 32), (32, 65535), (20000, 20000),
                                                    (65535, 65535), (1, 1)]))


@settings(FUZZ, max_examples=60)
@given(st.integers(0, 3), st.sampled_from(["jpg", "jpg", "png"]),
       st.lists(st.one_of(MUTATION, _size), min_size=1, max_size=2))
def test_image_bytes_decode_or_are_refused(tmp_path, jpg_tree, which, fmt, edits):
    top = tmp_path / "cifar10-jpg"
    if not top.exists():
        shutil.copytree(jpg_tree, top)
    target = sorted((top / "test").rglob("*.jpg"))[which]      # a PNG goes in under this name (read by content)
    if fmt == "png":
        bio = io.BytesIO()
        Image.new("RGB", (32, 32), (10, 20, 30)).save(bio, format="PNG")
    b = bio.getvalue() if fmt == "png" else target.read_bytes()
    for e in edits:
        b = edit_image(b, fmt, e)
    with cache_at(tmp_path) as cache:
        npz = set(cache.rglob("*.npz"))
        with swapped(target, b):
            s = load_or_error(lambda: load_dataset("cifar10", top, "test"), target)
        assert leftovers(cache) == []
        if s is None:                         # no decoded-array cache of a failed decode
            assert set(cache.rglob("*.npz")) == npz
        else:
            assert s.x.shape == (4, 3, 32, 32) and s.classes == ["cat", "dog"]


# ---------------------------------------------------------------- CIFAR python pickles

@pytest.fixture(scope="module")
def c10_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("c10") / "cifar-10-batches-py"
    write_c10_batches(root)
    return root


@settings(FUZZ, max_examples=80)
@given(st.sampled_from(["test_batch", "test_batch", "batches.meta"]), st.lists(PICKLE_EDIT, min_size=1, max_size=3),
       st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_cifar_pickle_structure_loads_or_is_refused(c10_root, target, edits, protocol):
    path = c10_root / target
    obj = pickle.loads(path.read_bytes())
    for e in edits:
        obj = edit_obj(obj, e)
    with swapped(path, pickle.dumps(obj, protocol=protocol)):
        s = load_or_error(lambda: load_dataset("cifar10", c10_root, "test"), path)
    assert s is None or (s.x.shape[1:] == (3, 32, 32) and len(s.classes) == 10)


@settings(FUZZ, max_examples=80)
@given(st.integers(0, pickle.HIGHEST_PROTOCOL), MUTATION)
def test_cifar_pickle_bytes_load_or_are_refused(c10_root, protocol, mutation):
    path = c10_root / "test_batch"
    b = pickle.dumps(c10_batch(2, 5), protocol=protocol)
    # the opcodes around the 6 KB of pixels; the first 12 bytes (protocol, FRAME and its size) most of all
    hot = list(range(12)) * 60 + list(range(300)) + list(range(len(b) - 300, len(b)))
    with swapped(path, mutate(b, mutation, hot)):
        s = load_or_error(lambda: load_dataset("cifar10", c10_root, "test"), path)
    assert s is None or s.x.shape[1:] == (3, 32, 32)


@settings(FUZZ, max_examples=40)
@given(st.integers(0, 8), st.sampled_from(["whole", "data", "labels", "in-list", "meta"]),
       st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_pickles_that_would_run_code_are_refused_not_run(tmp_path, c10_root, which, where, protocol):
    marker = tmp_path / "pwned"
    evil = code_running_payloads(marker)[which]
    path = c10_root / ("batches.meta" if where == "meta" else "test_batch")
    obj = pickle.loads(path.read_bytes())
    if where == "whole":
        obj = evil
    else:
        key = {"data": b"data", "labels": b"labels", "in-list": b"labels", "meta": b"label_names"}[where]
        obj[key] = [evil] * 10 if where in ("in-list", "meta") else evil
    with swapped(path, pickle.dumps(obj, protocol=protocol)), pytest.raises(DatasetError) as e:
        load_dataset("cifar10", c10_root, "test")
    assert str(path) in str(e.value) and "not allowed" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


# ---------------------------------------------------------------- what the fuzzing found, pinned

@pytest.mark.parametrize("how", ["cut at the 2nd header", "cut inside the 2nd header", "2nd header corrupt"])
def test_a_tar_that_ends_early_is_refused_not_cached_half(tmp_path, how):
    """Was: tarfile ends the member list quietly at a missing / corrupt header after the first, and the
    first member alone was renamed into the cache as the whole extraction."""
    data = tar_bytes(tar_members([(n, tarfile.REGTYPE, "", b"x" * 600) for n in ("top/a.bin", "top/b.bin")]))
    second = 512 + 1024                                    # header 1, 600 bytes padded to 1024
    data = {"cut at the 2nd header": data[:second], "cut inside the 2nd header": data[:second + 100],
            "2nd header corrupt": data[:second] + b"X" + data[second + 1:]}[how]
    arc = tmp_path / "a.tar"
    arc.write_bytes(data)
    with pytest.raises(DatasetError, match=r"a\.tar: truncated or corrupt after 1 member"):
        extract_archive(arc, tmp_path / "cache" / "a")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_member_name_with_nul_is_refused(tmp_path):
    """Was: ValueError 'embedded null byte' from open() (a PAX path record can hold a NUL)."""
    arc = tmp_path / "a.tar"
    arc.write_bytes(tar_bytes(tar_members([("top/b\x00c" + "x" * 100, tarfile.REGTYPE, "", b"x")])))
    with pytest.raises(DatasetError, match=r"a\.tar: unsafe member .*NUL"):
        extract_archive(arc, tmp_path / "cache" / "a")


@pytest.mark.parametrize("fields, cut, want", [
    ({16: 17}, None, "not a PCM WAV file (a chunk runs past the RIFF size)"),  # fmt size 17: RuntimeError
    ({}, 44 + 2 * 100 + 1, 100),                                  # was ValueError: data cut mid-sample
    ({4: 2**32 - 1, 40: 2**32 - 1}, None, 800),                   # was a 4 GB read buffer: 1.4 s
], ids=["odd fmt size", "cut mid-sample", "sizes of 4 GB"])
def test_wav_regressions(tmp_path, fields, cut, want):
    b = wav_bytes(tone(800))
    for at, value in fields.items():
        b = b[:at] + struct.pack("<I", value) + b[at + 4:]
    p = tmp_path / "x.wav"
    p.write_bytes(b[:cut])
    if isinstance(want, str):
        with pytest.raises(DatasetError, match=f"x.wav: {want}".replace("(", r"\(").replace(")", r"\)")):
            read_wav(p)
    else:
        tracemalloc.start()
        try:
            np.testing.assert_array_equal(read_wav(p), tone(800)[:want] / np.float32(32768))
            assert tracemalloc.get_traced_memory()[1] < 10**7        # no buffer sized by the header
        finally:
            tracemalloc.stop()


def test_noise_too_short_names_the_noise_folder(tmp_path, gsc_tree):
    """Was: 'background noise too short ...' naming no file."""
    root = tmp_path / "speech_commands"
    shutil.copytree(gsc_tree, root)
    (root / BACKGROUND / "noise.wav").write_bytes(wav_bytes(tone(20000)))
    want = re.escape(f"{root / BACKGROUND}: too short for 1-s val")
    with cache_at(tmp_path), pytest.raises(DatasetError, match=want):
        load_dataset("gsc", root, "train", keywords=GSC_WORDS)


@pytest.mark.parametrize("obj, want", [
    ({b"labels": [0, 1], "data": None}, r"missing key b'data' \(has 'data', b'labels'\)"),    # was TypeError in sorted
    ({b"data": c10_batch(2, 0)[b"data"], b"labels": ["", ""]}, r"b'labels' is <U1 \(expected integer"),
    ({b"data": c10_batch(2, 0)[b"data"], b"labels": None}, r"b'labels' is object"),  # was TypeError
    ({b"data": [[1, 2], [3]], b"labels": [0, 1]}, r"b'data' is not an array \(ValueError"),
], ids=["str and bytes keys", "str labels", "labels None", "ragged data"])
def test_malformed_batch_values(tmp_path, obj, want):
    write_c10_batches(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DatasetError, match=f"test_batch: {want}"):
        load_dataset("cifar10", tmp_path / "c", "test")


@pytest.mark.parametrize("names, want", [([b""] * 9 + [b"\x80"], "not UTF-8"), (None, "not a list of bytes")],
                         ids=["not utf-8", "None"])
def test_malformed_label_names(tmp_path, names, want):
    write_c10_batches(tmp_path / "c")
    (tmp_path / "c" / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    with pytest.raises(DatasetError, match=f"batches.meta: b'label_names' .*{want}"):
        load_dataset("cifar10", tmp_path / "c", "test")


@pytest.mark.parametrize("raw, want", [
    (pickle.dumps({b"a": "x"}, protocol=2).replace(b"latin1", b"xatin1"), "LookupError: unknown encoding"),
    (b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"}.", "MemoryError"),              # a FRAME of 1 TB
    (b"\x80\x02cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R.", "MemoryError"),   # 2**40 floats
    (b"\x80\x04\x8c\x0aos\nsystem!\x8c\x01x\x93.", r"global 'os\\nsystem!\.x' is not allowed"),  # one line
], ids=["unknown codec", "1 TB frame", "2**40 floats", "newline in a global"])
def test_pickle_bytes_regressions(tmp_path, raw, want):
    """Were: LookupError / MemoryError escaping read_pickle; a global name with a newline in the message."""
    write_c10_batches(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(raw)
    with pytest.raises(DatasetError, match=f"test_batch: not a CIFAR python batch .*{want}") as e:
        load_dataset("cifar10", tmp_path / "c", "test")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("fmt, want", [("jpg", "DecompressionBombError"), ("png", "ValueError: Truncated IHDR")])
def test_image_header_regressions(tmp_path, jpg_tree, fmt, want):
    """Were: PIL's DecompressionBombError for a JPEG claiming 20000 x 20000 and ValueError for a PNG
    whose IHDR length is 0, neither an OSError, escaping the loader."""
    top = tmp_path / "t"
    shutil.copytree(jpg_tree, top)
    (top / "test" / "cat" / "0000.jpg").unlink()
    p = top / "test" / "cat" / f"0000.{fmt}"
    if fmt == "jpg":
        b = jpeg_bytes()
        at = b.find(b"\xff\xc0") + 5
        p.write_bytes(b[:at] + struct.pack(">HH", 20000, 20000) + b[at + 4:])
    else:
        Image.new("RGB", (32, 32)).save(p)
        b = p.read_bytes()
        p.write_bytes(b[:8] + struct.pack(">I", 0) + b[12:])
    with cache_at(tmp_path), pytest.raises(DatasetError, match=rf"0000\.{fmt}: not a readable image \({want}"):
        load_dataset("cifar10", top, "test")


def test_dangling_symlink_in_a_dataset_folder(tmp_path, jpg_tree):
    """Was: FileNotFoundError from os.stat while keying the folder."""
    top = tmp_path / "t"
    shutil.copytree(jpg_tree, top)
    os.symlink(tmp_path / "gone.jpg", top / "test" / "cat" / "9999.jpg")
    with cache_at(tmp_path), pytest.raises(DatasetError, match=r"9999\.jpg: cannot read"):
        load_dataset("cifar10", top, "test")
