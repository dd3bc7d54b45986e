"""Tiny datasets in the real on-disk formats, as bytes or trees, for the loader fuzz tests:
16 kHz 16-bit mono WAVs in a Speech Commands layout, CIFAR-10 python batches, a JPEG class-folder
tree, and tar archives built member by member (any name, type and compression); plus the byte /
header mutations, hypothesis strategies and code-running pickle payloads the fuzz tests apply to
them, and the contract they check (`load_or_error`, `leftovers`)."""
from __future__ import annotations

import contextlib
import io
import pickle
import struct
import tarfile
import wave
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import strategies as st

from lsnn.data.archive import CACHE_ENV
from lsnn.errors import DatasetError, LsnnError

WAV_HEADER = 44          # RIFF(12) + 'fmt '(8 + 16) + 'data'(8): the `wave` module's layout


def wav_bytes(samples: np.ndarray, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    """A canonical PCM WAV (44-byte header) of int16 `samples`."""
    bio = io.BytesIO()
    with wave.open(bio, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return bio.getvalue()


def tone(n: int = 16000, freq: float = 300.0, seed: int = 0) -> np.ndarray:
    """int16 sine plus a little noise: n samples at 16 kHz."""
    t = np.arange(n) / 16000
    sig = 8000 * np.sin(2 * np.pi * freq * t) + np.random.default_rng(seed).normal(0, 300, n)
    return sig.astype(np.int16)


GSC_WORDS = ("yes", "no")
GSC_SPEAKERS = ("0a0a0a0a", "1b1b1b1b", "2c2c2c2c")


def write_gsc_tree(root: Path, words=GSC_WORDS, speakers=GSC_SPEAKERS, n: int = 16000) -> list[str]:
    """A Speech-Commands tree: every speaker says every word once; the last speaker is the
    validation list, the one before it the testing list; one noise file of 10.5 s (val and test
    get 1.05 s of it each: one silence window). Returns the clips."""
    clips = []
    for wi, w in enumerate(words):
        for si, s in enumerate(speakers):
            rel = f"{w}/{s}_nohash_0.wav"
            (root / w).mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(wav_bytes(tone(n, 200 + 150 * wi, seed=10 * wi + si)))
            clips.append(rel)
    (root / "_background_noise_").mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(7).normal(0, 3000, 168000).astype(np.int16)
    (root / "_background_noise_" / "noise.wav").write_bytes(wav_bytes(noise))
    (root / "validation_list.txt").write_text("".join(f"{w}/{speakers[-1]}_nohash_0.wav\n" for w in words))
    (root / "testing_list.txt").write_text("".join(f"{w}/{speakers[-2]}_nohash_0.wav\n" for w in words))
    return clips


def c10_batch(n: int, seed: int) -> dict:
    """One CIFAR-10 python batch dict with bytes keys, as in the official release."""
    data = np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return {b"batch_label": b"batch", b"labels": [(j + seed) % 10 for j in range(n)], b"data": data,
            b"filenames": [f"img_{seed}_{j}.png".encode() for j in range(n)]}


def write_c10_batches(root: Path, n: int = 2, protocol: int = 2) -> None:
    """cifar-10-batches-py with `n` images per batch and a batches.meta."""
    from lsnn.data.cifar import C10_BATCHES, CIFAR10_CLASSES

    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(C10_BATCHES):
        (root / name).write_bytes(pickle.dumps(c10_batch(n, i), protocol=protocol))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": n}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))


def jpeg_bytes(rgb: tuple[int, int, int] = (40, 120, 200), size: tuple[int, int] = (32, 32)) -> bytes:
    from PIL import Image

    bio = io.BytesIO()
    Image.new("RGB", size, rgb).save(bio, format="JPEG", quality=90)
    return bio.getvalue()


def write_jpg_tree(top: Path, classes=("cat", "dog"), per_class: int = 2) -> list[Path]:
    """top/{train,test}/<class>/NNNN.jpg, flat-colour 32x32 JPEGs. Returns the test files."""
    test_files = []
    for split in ("train", "test"):
        for ci, c in enumerate(classes):
            d = top / split / c
            d.mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                p = d / f"{j:04d}.jpg"
                p.write_bytes(jpeg_bytes((30 + 90 * ci, 200 - 40 * j, 90)))
                if split == "test":
                    test_files.append(p)
    return test_files


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], compression: str = "",
              fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar stream of (info, data) members; compression '', 'gz', 'xz' or 'bz2'."""
    bio = io.BytesIO()
    kw = {"preset": 0} if compression == "xz" else {"compresslevel": 1} if compression else {}
    with tarfile.open(fileobj=bio, mode=f"w:{compression}", format=fmt, **kw) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return bio.getvalue()


def tar_members(spec) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """(name, type, linkname, data) tuples as `tar_bytes` members; only regular files carry data."""
    out = []
    for name, typ, link, data in spec:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = typ, link
        regular = typ in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
        info.size = len(data) if regular else 0
        out.append((info, data if regular else None))
    return out


def tar_hot_offsets(data: bytes) -> list[int]:
    """Offsets of an uncompressed tar worth mutating: header starts (where a cut leaves whole members),
    header fields (name, size, checksum, type, magic), the WAV headers of .wav members, and the
    end-of-archive blocks."""
    hot: list[int] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            hot += [m.offset] * 4 + [m.offset + k for k in (20, 100, 124, 130, 148, 156, 257)]
            hot += [m.offset_data + k for k in range(0, WAV_HEADER, 2)] if m.name.endswith(".wav") else []
    return hot + [len(data) - 1024, len(data) - 512]


def tar_tree(root: Path, arcname: str, compression: str = "") -> bytes:
    """A tar stream of the folder `root` under `arcname` (files sorted, so the bytes are stable)."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for p in [root, *sorted(root.rglob("*"))]:
        info = tarfile.TarInfo(arcname if p == root else f"{arcname}/{p.relative_to(root).as_posix()}")
        if p.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            members.append((info, None))
        else:
            data = p.read_bytes()
            info.size, info.mode = len(data), 0o644
            members.append((info, data))
    return tar_bytes(members, compression)


# ---------------------------------------------------------------- the fuzz tests' contract

@contextlib.contextmanager
def cache_at(d: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(d / "cache"))
        yield d / "cache"


@contextlib.contextmanager
def swapped(path: Path, data: bytes) -> Iterator[Path]:
    """`path` holds `data` inside the block and its old bytes again after it."""
    old = path.read_bytes()
    path.write_bytes(data)
    try:
        yield path
    finally:
        path.write_bytes(old)


def leftovers(cache: Path) -> list[Path]:
    """Partial outputs in the cache: extraction temp dirs and atomic-write temp files."""
    return [p for p in cache.rglob("*") if ".part-" in p.name
            or (p.name.startswith(".") and p.name.endswith(".tmp"))] if cache.exists() else []


def load_or_error(load, *names):
    """`load()`'s result, or None after one DatasetError: one line naming one of `names`."""
    try:
        return load()
    except LsnnError as exc:
        msg = str(exc)
        assert type(exc) is DatasetError, repr(exc)
        assert msg and "\n" not in msg and "\r" not in msg, msg
        assert any(str(n) in msg for n in names), f"{msg!r} names none of {names}"
        return None


class Quiet(dict):
    """A fixture value hypothesis can print in a failure report without megabytes of bytes."""

    def __repr__(self) -> str:
        return f"<{len(self)} entries>"


# ---------------------------------------------------------------- mutations for the fuzz tests

def _pos(p: int, n: int, hot) -> int:
    """Even p: one of the `hot` offsets (headers, fields); odd p: anywhere in n bytes. Spread by a
    multiplicative hash, so that the small numbers hypothesis favours do not all land at the start."""
    k = (p // 2) * 2654435761
    return hot[k % len(hot)] % n if len(hot) and p % 2 == 0 else k % n


def mutate(data: bytes, mutation: tuple, hot=()) -> bytes:
    """('flip', [(pos, byte), ...]) sets bytes to other values, ('cut', pos) truncates,
    ('junk', bytes) appends; positions are drawn as in `_pos`."""
    kind, arg = mutation
    b = bytearray(data)
    if not b and kind != "junk":             # nothing left to cut or flip
        return data
    if kind == "cut":
        return bytes(b[:_pos(arg, len(b), hot)])
    if kind == "junk":
        return bytes(b) + arg
    for p, v in arg:
        i = _pos(p, len(b), hot)
        b[i] = v if v != b[i] else b[i] ^ 0xFF
    return bytes(b)


# (offset, struct format) of the fields of `wav_bytes`'s header, chunk ids included
WAV_FIELDS = [(0, "4s"), (4, "<I"), (8, "4s"), (12, "4s"), (16, "<I"), (20, "<H"), (22, "<H"), (24, "<I"),
              (28, "<I"), (32, "<H"), (34, "<H"), (36, "4s"), (40, "<I")]


def edit_wav(b: bytes, edit: tuple) -> bytes:
    """('field', i, number, chunk id) rewrites header field i; ('chunk', at, id, size, body) inserts a
    chunk (any size field) at byte `at`; ('bytes', mutation) is a `mutate` aimed at the header."""
    kind, *a = edit
    if kind == "field":
        off, fmt = WAV_FIELDS[a[0]]
        val = a[2] if fmt == "4s" else a[1] & (0xFFFF if fmt == "<H" else 0xFFFFFFFF)
        return b[:off] + struct.pack(fmt, val) + b[off + struct.calcsize(fmt):]
    if kind == "chunk":
        at, cid, size, body = a
        return b[:at] + cid + struct.pack("<I", size) + body + b[at:]
    return mutate(b, a[0], hot=range(WAV_HEADER))


def edit_image(b: bytes, fmt: str, edit: tuple) -> bytes:
    """('size', (h, w)) rewrites the size in a JPEG's SOF0 or a PNG's IHDR (without fixing its CRC);
    anything else is a `mutate` aimed at the first 240 bytes (the headers)."""
    if edit[0] != "size":
        return mutate(b, edit, hot=range(min(len(b), 240)))
    h, w = edit[1]
    at = b.find(b"\xff\xc0") + 5 if fmt == "jpg" else 16
    size = struct.pack(">HH", h, w) if fmt == "jpg" else struct.pack(">II", w, h)
    return b[:at] + size + b[at + len(size):]


class Call:
    """Pickles as a call of `fn(*args)`: what a malicious pickle does on load."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def code_running_payloads(marker: Path) -> list[Call]:
    """Objects whose unpickling would create `marker` (or run a command) if it were allowed."""
    import builtins
    import os
    import shutil
    import subprocess

    m = str(marker)
    return [Call(os.system, f"touch {m}"), Call(subprocess.call, ["touch", m]),
            Call(builtins.exec, f"open({m!r}, 'w').close()"), Call(builtins.eval, f"open({m!r}, 'w')"),
            Call(builtins.open, m, "w"), Call(getattr, marker, "touch"), Call(np.save, m, np.zeros(1)),
            Call(shutil.copy, "/etc/hostname", m), Call(Path.write_text, marker, "x")]


# ---------------------------------------------------------------- hypothesis strategies

_edit = st.tuples(st.integers(0, 2**32), st.integers(0, 255))
MUTATION = st.one_of(st.tuples(st.just("flip"), st.lists(_edit, min_size=1, max_size=3)),
                     st.tuples(st.just("cut"), st.integers(0, 2**32)),
                     st.tuples(st.just("junk"), st.binary(min_size=1, max_size=40)))


_ids = st.sampled_from([b"RIFF", b"RIFX", b"WAVE", b"fmt ", b"data", b"LIST", b"\0\0\0\0"])
_nums = st.sampled_from([0, 1, 2, 3, 8, 15, 16, 17, 24, 32, 40, 0xFFFE, 0xFFFF, 8000, 16000, 44100,
                         2**31 - 1, 2**32 - 1])
WAV_EDIT = st.one_of(st.tuples(st.just("field"), st.integers(0, len(WAV_FIELDS) - 1), _nums, _ids),
                     st.tuples(st.just("chunk"), st.sampled_from([12, 36, 10**6]), _ids, st.integers(0, 2**32 - 1),
                               st.binary(max_size=9)),
                     st.tuples(st.just("bytes"), MUTATION))


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                  st.text(max_size=4), st.binary(max_size=4))
_array = st.builds(lambda shape, dt: np.zeros(shape, dt),
                   st.sampled_from([(), (0,), (2,), (2, 3072), (3, 3072), (2, 3, 32, 32), (2, 1), (0, 3072)]),
                   st.sampled_from(["u1", "i1", "i8", "u8", "f4", "U3", "S3", "?", "O"]))
_value = st.one_of(_array, _leaf, st.lists(_leaf, max_size=10), st.lists(st.binary(max_size=4), min_size=10,
                   max_size=10), st.lists(st.lists(st.integers(0, 9), max_size=3), max_size=3),
                   st.dictionaries(st.binary(max_size=3), _leaf, max_size=2))
_key = st.sampled_from([b"data", "data", b"labels", "labels", b"label_names", 3, (1, 2), None])
PICKLE_EDIT = st.one_of(st.tuples(st.just("del"), st.integers(0, 9)),
                        st.tuples(st.just("set"), st.integers(0, 9), _value),
                        st.tuples(st.just("add"), _key, _value), st.tuples(st.just("whole"), _value))


def edit_obj(d, edit: tuple):
    """Delete / set / add one key of a batch dict, or replace the whole object."""
    kind, *a = edit
    if kind == "whole" or not isinstance(d, dict):
        return a[-1] if kind == "whole" else d
    keys = list(d)
    if kind == "del" and keys:
        del d[keys[a[0] % len(keys)]]
    elif kind == "set" and keys:
        d[keys[a[0] % len(keys)]] = a[1]
    elif kind == "add":
        d[a[0]] = a[1]
    return d
