"""Google Speech Commands as 12-class MFCC maps [N, 1, 40, 98] in [0, 1] (NumPy/SciPy, no torch).

Layout (`data_dir` = the folder, a parent of it, or a .tar/.tar.gz/.tar.xz of it):
`<word>/<speaker>_nohash_<n>.wav` (16 kHz mono 16-bit), `_background_noise_/*.wav`, and optionally
`validation_list.txt` + `testing_list.txt` (paths relative to the root).

Classes (TensorFlow's order): `_silence_`, `_unknown_`, then the keywords
`yes no up down left right on off stop go`.
- Splits: from the two lists when present; otherwise by speaker id (the name before `_nohash_`)
  with TensorFlow's `which_set` hash (val 10 %, test 10 %) of `split_salt + speaker`, so no speaker
  is in two splits. The default salt is "lsnn:": with the unsalted TensorFlow hash (`split_salt=""`)
  every clip of shared/data's subset lands in 'test', because that subset IS the official test
  partition, which TensorFlow's hash selected in the first place.
- `_unknown_`: all other words of the split, subsampled (seeded) to `unknown_ratio` x the mean
  keyword-class size of that split.
- `_silence_`: `silence_ratio` x the mean keyword-class size of 1-s windows cut at seeded offsets
  from the background-noise files, scaled by U(0, 1). Each noise file is cut into disjoint regions
  per split (train: first 80 %, val: next 10 %, test: last 10 %), so no noise sample is shared.
- Clips shorter than 1 s are zero-padded at the end, longer ones truncated.
- Features: `mfcc.MfccConfig` (16 kHz, 480/160, n_fft 512, 40 mel over 20-8000 Hz, 40 DCT
  coefficients -> 40 x 98). Normalisation per coefficient, with statistics of the TRAIN split only:
  `percentile` (default; lo/hi = 1st/99th percentile over all train clips and frames, then clip)
  or `minmax`. The statistics are in `meta['norm_lo']`, `meta['norm_hi']` of every split.
All splits are built together and cached in one .npz keyed on the source and every setting.
"""
from __future__ import annotations

import hashlib
import os
import re
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsnn.data.archive import Source, load_arrays, resolve_source, save_arrays, settings_key
from lsnn.data.datasets import SPLITS, DatasetSplit
from lsnn.data.mfcc import MfccConfig, mfcc
from lsnn.errors import DatasetError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND = "_background_noise_"
SAMPLE_RATE = 16000
EXPECT = ("a Speech Commands tree: <word>/<speaker>_nohash_<n>.wav (16 kHz mono 16-bit) "
          "and _background_noise_/*.wav")
MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1   # TensorFlow input_data.py
_FEATURE_VERSION = 1


@dataclass(frozen=True)
class GscConfig:
    """Everything that decides which clips land in which split (part of the cache key)."""

    keywords: tuple[str, ...] = KEYWORDS
    val_percent: float = 10.0
    test_percent: float = 10.0
    silence_ratio: float = 1.0
    unknown_ratio: float = 1.0
    seed: int = 0
    split_salt: str = "lsnn:"
    norm: str = "percentile"
    percentiles: tuple[float, float] = (1.0, 99.0)
    clip_samples: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.norm not in ("percentile", "minmax"):
            raise DatasetError(f"gsc: norm must be 'percentile' or 'minmax', got {self.norm!r}")
        if not (0 <= self.val_percent and 0 <= self.test_percent
                and self.val_percent + self.test_percent < 100):
            raise DatasetError(f"gsc: bad val/test percentages {self.val_percent}, {self.test_percent}")
        if self.silence_ratio < 0 or self.unknown_ratio < 0:
            raise DatasetError("gsc: silence_ratio and unknown_ratio must be >= 0")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise DatasetError(f"gsc: percentiles must satisfy 0 <= lo < hi <= 100, got {self.percentiles}")
        if len(set(self.keywords)) != len(self.keywords) or not self.keywords:
            raise DatasetError(f"gsc: keywords must be distinct and non-empty, got {self.keywords}")

    @property
    def classes(self) -> list[str]:
        return [SILENCE, UNKNOWN, *self.keywords]


# ---------------------------------------------------------------- audio files

def read_wav(path: Path, clip_samples: int | None = None) -> np.ndarray:
    """A 16 kHz mono 16-bit PCM WAV as float32 in [-1, 1); padded/truncated to `clip_samples`."""
    try:
        with wave.open(str(path), "rb") as w:
            ch, sw, fr, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if (ch, sw, fr) != (1, 2, SAMPLE_RATE):
                raise DatasetError(f"{path}: {ch} channel(s), {8 * sw}-bit, {fr} Hz "
                                   f"(expected mono 16-bit PCM at {SAMPLE_RATE} Hz)")
            raw = w.readframes(min(n, os.path.getsize(path) // 2))   # a header may claim 4 GB
    except (wave.Error, EOFError, RuntimeError) as e:   # RuntimeError: wave seeks past the RIFF size
        why = str(e) or ("a chunk runs past the RIFF size" if isinstance(e, RuntimeError) else "cut short")
        raise DatasetError(f"{path}: not a PCM WAV file ({why}) (expected mono 16-bit PCM at "
                           f"{SAMPLE_RATE} Hz)") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    raw = raw[:len(raw) - len(raw) % 2]                  # a file cut mid-sample: whole samples only
    a = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if clip_samples is not None:
        a = fix_length(a, clip_samples)
    return a


def fix_length(a: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or truncate to exactly n samples."""
    if len(a) >= n:
        return a[:n]
    return np.concatenate([a, np.zeros(n - len(a), dtype=a.dtype)])


# ---------------------------------------------------------------- splits

def speaker_id(filename: str) -> str:
    """The speaker part of `<speaker>_nohash_<n>.wav` (the whole stem if there is no `_nohash_`)."""
    base = Path(filename).name
    return re.sub(r"_nohash_.*$", "", base)


def which_set(filename: str, val_percent: float = 10.0, test_percent: float = 10.0,
              salt: str = "") -> str:
    """TensorFlow's `which_set`: 'train' / 'val' / 'test' from a SHA-1 of `salt + speaker id`.

    salt "" is TensorFlow's exact assignment.
    """
    h = int(hashlib.sha1((salt + speaker_id(filename)).encode()).hexdigest(), 16)
    pct = (h % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if pct < val_percent:
        return "val"
    if pct < val_percent + test_percent:
        return "test"
    return "train"


@dataclass(frozen=True)
class Clip:
    rel: str      # path relative to the root, '/'-separated
    word: str


def scan(root: Path) -> list[Clip]:
    """All word clips under `root` (folders not starting with '_'), sorted by path."""
    clips: list[Clip] = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith((".", "_")):
            continue
        clips += [Clip(f"{d.name}/{p.name}", d.name) for p in sorted(d.glob("*.wav"))]
    return clips


def _read_list(path: Path) -> set[str]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e}) (expected one relative .wav path per line)") from e
    return {ln.strip().replace("\\", "/") for ln in text.splitlines() if ln.strip()}


def assign_splits(root: Path, clips: list[Clip], cfg: GscConfig) -> tuple[dict[str, list[Clip]], str]:
    """Clips per split and how they were split ('lists' or 'speaker-hash')."""
    vl, tl = root / "validation_list.txt", root / "testing_list.txt"
    out: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    if vl.is_file() != tl.is_file():
        have, miss = (vl, tl) if vl.is_file() else (tl, vl)
        raise DatasetError(f"{root}: has {have.name} but not {miss.name} (expected both lists, or neither "
                           f"to split by speaker)")
    if vl.is_file():
        val, test = _read_list(vl), _read_list(tl)
        for c in clips:
            out["val" if c.rel in val else "test" if c.rel in test else "train"].append(c)
        return out, "lists"
    for c in clips:
        out[which_set(c.rel, cfg.val_percent, cfg.test_percent, cfg.split_salt)].append(c)
    return out, "speaker-hash"


def noise_region(length: int, split: str, val_percent: float, test_percent: float) -> tuple[int, int]:
    """[start, end) of a noise file reserved for `split`: train | val | test, in that order."""
    a = int(length * (100.0 - val_percent - test_percent) / 100.0)
    b = int(length * (100.0 - test_percent) / 100.0)
    return {"train": (0, a), "val": (a, b), "test": (b, length)}[split]


def silence_windows(noise_lengths: list[int], split: str, n: int, seed: int, clip: int = SAMPLE_RATE,
                    val_percent: float = 10.0, test_percent: float = 10.0, where: str = "background noise"
                    ) -> list[tuple[int, int, float]]:
    """n (file index, start sample, volume) windows of `clip` samples inside the split's regions.

    Every possible window of every file is equally likely; volume ~ U(0, 1). Seeded per split.
    `where` (the noise folder) starts the message when the files are too short.
    """
    if n == 0:
        return []
    regions = [noise_region(L, split, val_percent, test_percent) for L in noise_lengths]
    choices = np.array([max(0, e - s - clip + 1) for s, e in regions], dtype=np.float64)
    if choices.sum() == 0:
        raise DatasetError(f"{where}: too short for 1-s {split} windows "
                           f"(each file gives its {split} split a region of "
                           f"{[e - s for s, e in regions]} samples)")
    rng = np.random.default_rng([seed, SPLITS.index(split), 2])
    files = rng.choice(len(regions), size=n, p=choices / choices.sum())
    out = []
    for f in files:
        s, _ = regions[f]
        out.append((int(f), int(s + rng.integers(0, choices[f])), float(rng.uniform(0.0, 1.0))))
    return out


# ---------------------------------------------------------------- building the arrays

def _is_root(d: Path) -> bool:
    return (d / BACKGROUND).is_dir() or any((d / k).is_dir() for k in KEYWORDS)


def _clips_audio(root: Path, rels: list[str], clip: int) -> np.ndarray:
    out = np.zeros((len(rels), clip), dtype=np.float32)
    for i, r in enumerate(rels):
        out[i] = read_wav(root / r, clip)
    return out


def _build(src: Source, cfg: GscConfig, fcfg: MfccConfig) -> dict[str, np.ndarray]:
    """Raw (unnormalised) MFCCs, labels and sample names per split, plus train statistics."""
    root = src.root
    clips = scan(root)
    kw = set(cfg.keywords)
    missing = [k for k in cfg.keywords if not (root / k).is_dir()]
    if missing:
        raise DatasetError(f"{root}: missing keyword folder(s) {', '.join(missing)} (expected {EXPECT})")
    by_split, how = assign_splits(root, clips, cfg)
    noise_files = sorted((root / BACKGROUND).glob("*.wav")) if (root / BACKGROUND).is_dir() else []
    if cfg.silence_ratio > 0 and not noise_files:
        raise DatasetError(f"{root}: missing {BACKGROUND}/*.wav (needed for the {SILENCE} class; "
                           f"pass silence_ratio=0 to leave it empty)")
    noise = [read_wav(p) for p in noise_files]
    cls = {c: i for i, c in enumerate(cfg.classes)}
    arrays: dict[str, np.ndarray] = {"how": np.asarray(how)}
    for si, split in enumerate(SPLITS):
        cs = by_split[split]
        keyed = [c for c in cs if c.word in kw]
        other = [c for c in cs if c.word not in kw]
        mean_kw = len(keyed) / len(cfg.keywords)
        n_unk = min(len(other), int(round(cfg.unknown_ratio * mean_kw)))
        pick = np.sort(np.random.default_rng([cfg.seed, si, 1]).permutation(len(other))[:n_unk])
        chosen = keyed + [other[i] for i in pick]
        names = [c.rel for c in chosen]
        labels = [cls[c.word] if c.word in kw else cls[UNKNOWN] for c in chosen]
        audio = _clips_audio(root, names, cfg.clip_samples)
        n_sil = int(round(cfg.silence_ratio * mean_kw))
        wins = silence_windows([len(a) for a in noise], split, n_sil, cfg.seed, cfg.clip_samples,
                               cfg.val_percent, cfg.test_percent, where=str(root / BACKGROUND))
        if wins:
            sil = np.stack([noise[f][s:s + cfg.clip_samples] * np.float32(v) for f, s, v in wins])
            audio = np.concatenate([audio, sil.astype(np.float32)])
            names += [f"{SILENCE}/{noise_files[f].name}@{s}x{v:.4f}" for f, s, v in wins]
            labels += [cls[SILENCE]] * len(wins)
        feats = (mfcc(audio, fcfg) if len(audio)
                 else np.zeros((0, fcfg.n_mfcc, fcfg.n_frames(cfg.clip_samples)), np.float32))
        arrays[f"x_{split}"] = feats
        arrays[f"y_{split}"] = np.asarray(labels, dtype=np.int64)
        arrays[f"names_{split}"] = np.asarray(names, dtype=str)
    tr = arrays["x_train"]
    if len(tr) == 0:
        raise DatasetError(f"{root}: the train split is empty (expected {EXPECT})")
    per_coef = tr.transpose(1, 0, 2).reshape(tr.shape[1], -1).astype(np.float64)
    if cfg.norm == "minmax":
        lo, hi = per_coef.min(axis=1), per_coef.max(axis=1)
    else:
        lo, hi = np.percentile(per_coef, cfg.percentiles, axis=1)
    arrays["norm_lo"], arrays["norm_hi"] = lo.astype(np.float32), hi.astype(np.float32)
    return arrays


def normalise(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Raw MFCCs [N, n_mfcc, T] -> [N, 1, n_mfcc, T] float32 in [0, 1] with per-coefficient lo/hi."""
    lo = np.asarray(lo, np.float32)[None, :, None]
    span = np.maximum(np.asarray(hi, np.float32)[None, :, None] - lo, np.float32(1e-6))
    return np.clip((raw - lo) / span, 0.0, 1.0).astype(np.float32)[:, None]


def load_gsc(data_dir: Any = None, split: str = "train", *,
             keywords: tuple[str, ...] = KEYWORDS, val_percent: float = 10.0,
             test_percent: float = 10.0, silence_ratio: float = 1.0, unknown_ratio: float = 1.0,
             seed: int = 0, split_salt: str = "lsnn:", norm: str = "percentile",
             percentiles: tuple[float, float] = (1.0, 99.0),
             features: MfccConfig | None = None) -> DatasetSplit:
    """One split of Speech Commands as MFCC maps [N, 1, n_mfcc, frames] (see the module docstring)."""
    cfg = GscConfig(tuple(keywords), float(val_percent), float(test_percent), float(silence_ratio),
                    float(unknown_ratio), int(seed), str(split_salt), norm,
                    tuple(float(p) for p in percentiles))
    fcfg = features or MfccConfig()
    if fcfg.sample_rate != SAMPLE_RATE:
        raise DatasetError(f"gsc: features.sample_rate must be {SAMPLE_RATE}, got {fcfg.sample_rate}")
    src = resolve_source(data_dir, dataset="gsc", is_root=_is_root, expected=EXPECT,
                         archive_names=("speech-commands-subset.tar.xz",
                                        "speech_commands_v0.02.tar.gz", "speech_commands_v0.01.tar.gz"))
    key = settings_key(src.key, str(src.root), asdict(cfg), fcfg.to_dict(), _FEATURE_VERSION)
    cache = src.cache_dir / f"gsc-mfcc-{key}.npz"
    arrays = load_arrays(cache)
    if arrays is None or not all(f"x_{s}" in arrays for s in SPLITS):
        arrays = _build(src, cfg, fcfg)
        save_arrays(cache, **arrays)
    if len(arrays[f"y_{split}"]) == 0:
        raise DatasetError(f"{src.origin}: the {split} split is empty (split by {arrays['how']}; "
                           f"too few speakers or files for val {cfg.val_percent} % / test "
                           f"{cfg.test_percent} %)")
    meta = {"norm": cfg.norm, "norm_lo": arrays["norm_lo"], "norm_hi": arrays["norm_hi"],
            "features": fcfg.to_dict(), "split_by": str(arrays["how"]), "root": str(src.root),
            "names": arrays[f"names_{split}"], "cache": str(cache)}
    return DatasetSplit(normalise(arrays[f"x_{split}"], arrays["norm_lo"], arrays["norm_hi"]),
                        arrays[f"y_{split}"].astype(np.int64), cfg.classes, "gsc", split, meta)
