"""Find a dataset given a folder or an archive, extract archives once (safely, atomically) into a
cache, and keep derived arrays (decoded images, features) next to it. NumPy only.

Cache root: `$LSNN_DATA_CACHE`, else `~/.cache/lsnn/datasets`. An archive `A` is extracted into
`<root>/<A.name>-<key>/` where key hashes A's resolved path, size and mtime: a changed or replaced
archive gets a fresh directory. Extraction goes into a sibling temp directory that is renamed into
place only when complete, so an interrupted run never leaves a half tree (stale temp dirs of dead
processes are removed on the next run). Members with absolute paths, `..` components, links or
special files are rejected before anything is written outside the temp directory.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tarfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from lsnn.errors import DatasetError
from lsnn.io import atomic_path

CACHE_ENV = "LSNN_DATA_CACHE"
DATA_ENV = "LSNN_DATA_DIR"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
_PART = ".part-"


@dataclass(frozen=True)
class Source:
    """Where a dataset's files are (`root`), a stable id of them (`key`), and where caches go."""

    root: Path
    key: str
    cache_dir: Path
    origin: Path          # what the user gave (folder or archive), for messages


def cache_root() -> Path:
    """The cache directory ($LSNN_DATA_CACHE or ~/.cache/lsnn/datasets); not created here."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lsnn" / "datasets"


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def archive_key(path: Path) -> str:
    """Key of an archive: its resolved path, size and mtime (cheap; a rewrite changes it)."""
    st = path.stat()
    return _sha(f"archive|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")


def folder_key(root: Path) -> str:
    """Key of a folder tree: resolved path + every file's relative path, size and mtime."""
    h = hashlib.sha256(f"folder|{root.resolve()}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            try:
                st = os.stat(p)
            except OSError as e:             # a dangling symlink, say
                raise DatasetError(f"{p}: cannot read ({e.strerror})") from e
            h.update(f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _member_path(m: tarfile.TarInfo, archive: Path) -> PurePosixPath | None:
    """Validated relative path of a member (None for the archive root '.'), or DatasetError."""
    name = m.name.replace("\\", "/")
    p = PurePosixPath(name)
    if "\x00" in name:
        raise DatasetError(f"{archive}: unsafe member {m.name!r} (NUL in the name)")
    if name.startswith("/") or p.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise DatasetError(f"{archive}: unsafe member {m.name!r} (absolute path)")
    if ".." in p.parts:
        raise DatasetError(f"{archive}: unsafe member {m.name!r} ('..' in the path)")
    if m.issym() or m.islnk():
        raise DatasetError(f"{archive}: unsupported member {m.name!r} (links are not extracted)")
    if not (m.isfile() or m.isdir()):
        raise DatasetError(f"{archive}: unsupported member {m.name!r} (not a file or folder)")
    return p if p.parts else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_parts(dest: Path) -> None:
    """Remove temp dirs of `dest` left by processes that no longer run."""
    for p in dest.parent.glob(f".{dest.name}{_PART}*"):
        try:
            pid = int(p.name[len(f".{dest.name}{_PART}"):].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _end_recorder(ends: list[tarfile.HeaderError]) -> type[tarfile.TarInfo]:
    """A TarInfo class that appends to `ends` the header error that ended the member list."""

    class _Info(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
            try:
                return super().fromtarfile(tarfile_)
            except tarfile.HeaderError as e:
                ends.append(e)
                raise

    return _Info


def _extract_into(archive: Path, tmp: Path) -> int:
    """Stream the archive into `tmp` (already created); returns the number of members.

    tarfile ends the member list quietly at a truncated or corrupt header after the first; only
    the end-of-archive block (a zero block) counts as a complete archive here."""
    n = 0
    ends: list[tarfile.HeaderError] = []
    with tarfile.open(archive, "r|*", tarinfo=_end_recorder(ends)) as tf:
        for m in tf:
            rel = _member_path(m, archive)
            n += 1
            if rel is None:
                continue
            target = tmp.joinpath(*rel.parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            assert src is not None  # a regular file always has data
            with src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    if n and not (ends and isinstance(ends[-1], tarfile.EOFHeaderError)):
        why = ends[-1] if ends else "no end-of-archive block"
        raise DatasetError(f"{archive}: truncated or corrupt after {n} member(s) ({why})")
    return n


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract `archive` into `dest` (atomically; a no-op when `dest` exists). Returns `dest`."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(dest)
    tmp = dest.parent / f".{dest.name}{_PART}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        try:
            n = _extract_into(archive, tmp)
        except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
            raise DatasetError(f"{archive}: cannot extract ({type(e).__name__}: {e})") from e
        if n == 0:
            raise DatasetError(f"{archive}: empty archive (expected a dataset tree)")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():   # someone else finished first is fine; anything else is not
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def extract_cached(archive: Path) -> Path:
    """Extract an archive into the cache (once per archive key); returns the extraction dir."""
    key = archive_key(archive)
    return extract_archive(archive, cache_root() / f"{archive.name}-{key[:16]}")


def find_root(d: Path, is_root: Callable[[Path], bool]) -> Path | None:
    """`d` if it holds the layout, else the first (sorted, non-hidden) child folder that does."""
    if is_root(d):
        return d
    for c in sorted(d.iterdir()):
        if c.is_dir() and not c.name.startswith(".") and is_root(c):
            return c
    return None


def resolve_source(data_dir: str | os.PathLike | None, *, dataset: str,
                   is_root: Callable[[Path], bool], expected: str,
                   archive_names: tuple[str, ...] = ()) -> Source:
    """Turn a folder / archive / folder-holding-the-archive into a `Source`.

    `data_dir` None falls back to $LSNN_DATA_DIR. `expected` describes the layout for messages.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV)
        if not data_dir:
            raise DatasetError(f"dataset {dataset!r} needs data_dir (or ${DATA_ENV}): {expected}")
    p = Path(data_dir).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: not found (expected {expected})")
    if p.is_file():
        if not is_archive(p):
            raise DatasetError(f"{p}: not a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive "
                               f"(expected {expected})")
        ext = extract_cached(p)
        root = find_root(ext, is_root)
        if root is None:
            raise DatasetError(f"{p}: archive does not contain {expected}")
        return Source(root=root, key=archive_key(p), cache_dir=ext, origin=p)
    root = find_root(p, is_root)
    if root is not None:
        key = folder_key(root)
        return Source(root=root, key=key, cache_dir=cache_root() / f"{root.name}-{key[:16]}",
                      origin=p)
    for name in archive_names:
        if is_archive(p / name):
            return resolve_source(p / name, dataset=dataset, is_root=is_root, expected=expected)
    raise DatasetError(f"{p}: expected {expected}")


def settings_key(*parts: object) -> str:
    """A short hash of settings (their repr), for cache file names."""
    return _sha("|".join(repr(x) for x in parts))[:16]


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz atomically (temp file + rename); no pickled objects."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """Read a cache written by `save_arrays`; None if absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return None
