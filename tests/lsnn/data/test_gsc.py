"""Speech Commands loader on a small tree of real-format WAVs (16-bit, 16 kHz, `wave` module)."""
import hashlib
import re
import shutil
import struct
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest

from lsnn.data import gsc as data_gsc
from lsnn.data.datasets import load_dataset
from lsnn.data.gsc import KEYWORDS, noise_region, read_wav, silence_windows, which_set
from lsnn.data.mfcc import MfccConfig, mfcc
from lsnn.errors import DatasetError

SHARED = Path("/work/shared/data")
CLASSES = ["_silence_", "_unknown_", *KEYWORDS]
UNKNOWN_WORDS = ("bed", "cat")
N_SPEAKERS = 40


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("LSNN_DATA_CACHE", str(c))
    return c


# ---------------------------------------------------------------- writers in the real format

def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1, width: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def append_list_chunk(path: Path) -> None:
    """Add a trailing LIST chunk after the audio, as the real background-noise files have."""
    payload = b"INFOISFT" + struct.pack("<I", 6) + b"Lavf\x00\x00"
    data = path.read_bytes() + b"LIST" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(data[:4] + struct.pack("<I", len(data) - 8) + data[8:])


def tf_which_set(filename: str, val: float = 10.0, test: float = 10.0, salt: str = "") -> str:
    """TensorFlow speech_commands/input_data.py which_set, restated (plus a salt prefix)."""
    base = Path(filename).name
    hash_name = salt + re.sub(r"_nohash_.*$", "", base)
    h = hashlib.sha1(hash_name.encode()).hexdigest()
    pct = ((int(h, 16) % (2 ** 27)) * (100.0 / (2 ** 27 - 1)))
    return "val" if pct < val else "test" if pct < val + test else "train"


def write_tree(root: Path, n_speakers: int = N_SPEAKERS, seed: int = 0) -> list[str]:
    """Each speaker says every keyword once and each unknown word once; every 7th clip is short."""
    rng = np.random.default_rng(seed)
    speakers = [f"{int(v):08x}" for v in rng.integers(0, 2 ** 32, size=n_speakers)]
    words = list(KEYWORDS) + list(UNKNOWN_WORDS)
    t = np.arange(16000) / 16000
    k = 0
    for s in speakers:
        for wi, w in enumerate(words):
            n = 12000 if k % 7 == 0 else 16000
            sig = 8000 * np.sin(2 * np.pi * (200 + 150 * wi) * t[:n]) + rng.normal(0, 300, n)
            write_wav(root / w / f"{s}_nohash_0.wav", sig.astype(np.int16))
            k += 1
    for i, secs in enumerate((20, 30)):
        p = root / "_background_noise_" / f"noise{i}.wav"
        write_wav(p, rng.normal(0, 3000, secs * 16000).astype(np.int16))
        append_list_chunk(p)
    (root / "LICENSE").write_text("CC BY 4.0\n")
    return speakers


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gsc") / "speech_commands"
    write_tree(root)
    return root


def load3(root, **kw):
    return [load_dataset("gsc", root, s, **kw) for s in ("train", "val", "test")]


# ---------------------------------------------------------------- splits and classes

def test_which_set_is_tensorflows_hash_and_the_salt_changes_it():
    rng = np.random.default_rng(1)
    names = [f"yes/{int(v):08x}_nohash_{k % 3}.wav" for k, v in enumerate(rng.integers(0, 2**32, 2000))]
    got = [which_set(n) for n in names]
    assert got == [tf_which_set(n) for n in names]
    frac = {s: got.count(s) / len(got) for s in ("train", "val", "test")}
    assert 0.07 < frac["val"] < 0.13 and 0.07 < frac["test"] < 0.13
    salted = [which_set(n, salt="lsnn:") for n in names]
    assert salted == [tf_which_set(n, salt="lsnn:") for n in names] and salted != got
    # all clips of a speaker go together, whatever the clip number
    assert which_set("no/0a1b2c3d_nohash_0.wav") == which_set("yes/0a1b2c3d_nohash_4.wav")


def test_unsalted_split_follows_tensorflow_exactly(tree):
    s = load_dataset("gsc", tree, "train", split_salt="")
    assert all(tf_which_set(n) == "train" for n in s.meta["names"] if not n.startswith("_silence_"))


def test_speaker_hash_split_is_tensorflows_and_keeps_speakers_apart(tree):
    splits = load3(tree)
    spk = []
    for s in splits:
        words = [n for n in s.meta["names"] if not n.startswith("_silence_")]
        assert all(tf_which_set(n, salt="lsnn:") == s.split for n in words)
        spk.append({Path(n).name.split("_nohash_")[0] for n in words})
        assert s.meta["split_by"] == "speaker-hash"
    assert not (spk[0] & spk[1]) and not (spk[0] & spk[2]) and not (spk[1] & spk[2])
    assert sum(len(x) for x in spk) == N_SPEAKERS
    # every speaker said every keyword once: keyword class sizes = speakers in the split
    for s, sp in zip(splits, spk):
        assert len(sp) > 0
        assert s.class_counts()[2:].tolist() == [len(sp)] * 10


def test_classes_shapes_unknown_and_silence_counts(tree):
    tr, va, te = load3(tree)
    for s in (tr, va, te):
        assert s.classes == CLASSES and s.x.shape[1:] == (1, 40, 98) and s.input_shape == (1, 40, 98)
        assert s.x.dtype == np.float32 and s.x.min() >= 0 and s.x.max() <= 1
        c = s.class_counts()
        mean_kw = c[2:].mean()                  # = speakers in split; 2 unknown clips per speaker
        assert c[1] == round(mean_kw)           # unknown subsampled to an average keyword class
        assert c[0] == round(mean_kw)           # silence: as many as an average keyword class
        unk = [n for n, y in zip(s.meta["names"], s.y) if y == 1]
        assert {n.split("/")[0] for n in unk} <= set(UNKNOWN_WORDS)
    tr2 = load_dataset("gsc", tree, "train", unknown_ratio=0.5, silence_ratio=2.0)
    c = tr2.class_counts()
    assert c[1] == round(0.5 * c[2:].mean()) and c[0] == round(2.0 * c[2:].mean())


def test_silence_cut_from_disjoint_noise_regions(tree):
    lengths = [20 * 16000, 30 * 16000]
    regions = {s: [noise_region(L, s, 10, 10) for L in lengths] for s in ("train", "val", "test")}
    assert regions["train"][1] == (0, 384000) and regions["val"][1] == (384000, 432000)
    assert regions["test"][1] == (432000, 480000)
    for s in ("train", "val", "test"):
        w = silence_windows(lengths, s, 500, seed=3, val_percent=10, test_percent=10)
        assert len(w) == 500 and {f for f, _, _ in w} == {0, 1}
        for f, start, vol in w:
            lo, hi = regions[s][f]
            assert lo <= start and start + 16000 <= hi and 0.0 <= vol <= 1.0
    assert silence_windows(lengths, "val", 5, 3) == silence_windows(lengths, "val", 5, 3)
    assert silence_windows(lengths, "val", 5, 3) != silence_windows(lengths, "val", 5, 4)
    # end to end: the loader's silence clips name their file and offset, inside the split's region
    for s in load3(tree):
        for n in s.meta["names"]:
            if n.startswith("_silence_/"):
                m = re.match(r"_silence_/noise(\d)\.wav@(\d+)x", n)
                f, start = int(m.group(1)), int(m.group(2))
                lo, hi = regions[s.split][f]
                assert lo <= start and start + 16000 <= hi
    with pytest.raises(DatasetError, match="too short"):
        silence_windows([20000], "val", 1, 0)


def test_val_and_test_use_train_normalisation(tree):
    tr, va, te = load3(tree, norm="minmax")
    # min/max per coefficient over the train split -> train spans exactly [0, 1] in every row
    assert np.allclose(tr.x.min(axis=(0, 1, 3)), 0.0) and np.allclose(tr.x.max(axis=(0, 1, 3)), 1.0)
    for s in (va, te):
        np.testing.assert_array_equal(s.meta["norm_lo"], tr.meta["norm_lo"])
        np.testing.assert_array_equal(s.meta["norm_hi"], tr.meta["norm_hi"])
    # recompute one val clip by hand from its WAV with the train statistics
    i = next(k for k, n in enumerate(va.meta["names"]) if n.startswith("yes/"))
    raw = mfcc(read_wav(tree / va.meta["names"][i], 16000))
    lo, hi = tr.meta["norm_lo"][:, None], tr.meta["norm_hi"][:, None]
    np.testing.assert_allclose(va.x[i, 0], np.clip((raw - lo) / (hi - lo), 0, 1), atol=1e-5)
    # percentile norm clips the tails: some train values are exactly 0 and 1, most are inside
    p = load_dataset("gsc", tree, "train")
    frac_edge = np.mean((p.x == 0) | (p.x == 1))
    assert 0.01 < frac_edge < 0.05                     # ~2 % by construction (1st / 99th)


def test_short_clip_is_zero_padded_and_long_noise_reads_past_its_list_chunk(tree):
    short = next(p for p in sorted((tree / "yes").glob("*.wav"))
                 if wave.open(str(p)).getnframes() == 12000)
    a = read_wav(short, 16000)
    with wave.open(str(short)) as w:
        ints = np.frombuffer(w.readframes(12000), "<i2")
    assert a.shape == (16000,) and np.all(a[12000:] == 0)
    np.testing.assert_array_equal(a[:12000], ints / 32768.0)
    assert len(read_wav(tree / "_background_noise_" / "noise1.wav")) == 30 * 16000
    assert read_wav(short, 8000).shape == (8000,)


def test_lists_override_the_speaker_hash(tmp_path):
    root = tmp_path / "sc"
    write_tree(root, n_speakers=12, seed=1)
    val = [f"{w}/{p.name}" for w, k in (("yes", 3), ("bed", 2)) for p in sorted((root / w).glob("*.wav"))[:k]]
    test = sorted(f"no/{p.name}" for p in (root / "no").glob("*.wav"))[:4]
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    tr, va, te = load3(root)
    assert va.meta["split_by"] == "lists"
    words_va = [n for n in va.meta["names"] if not n.startswith("_silence_")]
    assert words_va == val[:3]                 # 3 'yes'; mean keyword class 0.3 -> 0 unknown kept
    counts = dict(zip(tr.classes, tr.class_counts().tolist()))
    assert (counts["yes"], counts["no"], counts["up"]) == (9, 8, 12)
    assert [n for n in te.meta["names"] if not n.startswith("_silence_")] == test
    assert not set(tr.meta["names"]) & (set(val) | set(test))
    (root / "testing_list.txt").unlink()
    with pytest.raises(DatasetError, match="validation_list.txt but not testing_list.txt"):
        load_dataset("gsc", root, "train")


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("rate, channels, width, why", [
    (8000, 1, 2, r"1 channel\(s\), 16-bit, 8000 Hz"),
    (16000, 2, 2, r"2 channel\(s\), 16-bit, 16000 Hz"),
    (16000, 1, 1, r"1 channel\(s\), 8-bit, 16000 Hz"),
])
def test_wrong_wav_format_names_the_file(tmp_path, rate, channels, width, why):
    p = tmp_path / "x.wav"
    n = 1000 * channels
    data = np.zeros(n, "<i2") if width == 2 else np.zeros(n // 2, "<i2")
    write_wav(p, data, rate=rate, channels=channels, width=width)
    with pytest.raises(DatasetError, match=f"x.wav: {why}.*expected mono 16-bit PCM at 16000 Hz"):
        read_wav(p)
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(DatasetError, match="x.wav: not a PCM WAV"):
        read_wav(p)


def test_bad_clip_in_tree_and_missing_noise(tmp_path):
    root = tmp_path / "sc"
    write_tree(root, n_speakers=6, seed=2)
    shutil.rmtree(root / "_background_noise_")
    with pytest.raises(DatasetError, match="_background_noise_.*silence_ratio=0"):
        load_dataset("gsc", root, "train")
    s = load_dataset("gsc", root, "train", silence_ratio=0)
    assert s.class_counts()[0] == 0 and s.num_classes == 12
    shutil.rmtree(root / "stop")
    with pytest.raises(DatasetError, match="missing keyword folder.*stop"):
        load_dataset("gsc", root, "train", silence_ratio=0)


# ---------------------------------------------------------------- archives and caches

def test_tar_xz_source_and_feature_cache(tmp_path, cache, monkeypatch):
    root = tmp_path / "src" / "speech_commands"
    write_tree(root, n_speakers=10, seed=9)          # salted hash: 6 / 2 / 2 speakers
    arc = tmp_path / "speech-commands-subset.tar.xz"
    with tarfile.open(arc, "w:xz", preset=0) as tf:
        tf.add(root, arcname="speech_commands")
    te = load_dataset("gsc", arc, "test")
    (ext,) = [p for p in cache.iterdir()]
    assert ext.name.startswith("speech-commands-subset.tar.xz-")
    assert (ext / "speech_commands" / "yes").is_dir() and len(list(ext.glob("gsc-mfcc-*.npz"))) == 1
    direct = load_dataset("gsc", root, "test")           # same files read from the folder
    np.testing.assert_allclose(te.x, direct.x)

    def boom(*a, **k):
        raise AssertionError("MFCC recomputed instead of read from the cache")
    monkeypatch.setattr(data_gsc, "mfcc", boom)
    again = load_dataset("gsc", arc, "test")
    assert np.array_equal(again.x, te.x) and np.array_equal(again.y, te.y)
    with pytest.raises(AssertionError, match="recomputed"):     # new settings -> new cache entry
        load_dataset("gsc", arc, "test", features=MfccConfig(n_mfcc=20))
    monkeypatch.undo()
    monkeypatch.setenv("LSNN_DATA_CACHE", str(cache))
    f20 = load_dataset("gsc", arc, "test", features=MfccConfig(n_mfcc=20))
    assert f20.x.shape[1:] == (1, 20, 98)
    other = load_dataset("gsc", arc, "test", seed=5)
    assert not np.array_equal(other.x, te.x)                    # seed moves silence windows
    assert len(list(ext.glob("gsc-mfcc-*.npz"))) == 3


# ---------------------------------------------------------------- the real tar (a few members)

@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "speech-commands-subset.tar.xz").is_file(),
                    reason="shared data not present")
def test_real_speech_commands_members_load(tmp_path):
    """Extract 25 clips per keyword, 3 unknown words and two noise files from the real tar.xz."""
    per_kw, unk = 25, ("eight", "one", "zero")
    counts: dict = {}
    with tarfile.open(SHARED / "speech-commands-subset.tar.xz", "r|xz") as tf:
        for m in tf:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 3:
                continue
            word = parts[1]
            ok = ((word in KEYWORDS and counts.get(word, 0) < per_kw) or word in unk
                  or parts[2] in ("white_noise.wav", "running_tap.wav"))
            if ok:
                tf.extract(m, tmp_path, set_attrs=False)
                counts[word] = counts.get(word, 0) + 1
    assert all(counts[k] == per_kw for k in KEYWORDS) and counts["_background_noise_"] == 2
    root = tmp_path / "speech_commands"
    splits = load3(root)
    assert sum(s.class_counts()[2:].sum() for s in splits) == 10 * per_kw
    assert sum((s.y == 1).sum() for s in splits) <= sum(counts[u] for u in unk)
    speakers = [{Path(n).name.split("_nohash_")[0] for n in s.meta["names"]
                 if not n.startswith("_silence_")} for s in splits]
    a, b, c = speakers
    assert not (a & b) and not (a & c) and not (b & c)
    tr = splits[0]
    assert tr.x.shape[1:] == (1, 40, 98) and 0.2 < tr.x.mean() < 0.8
    # speech has more energy (c0) than the quietest silence windows
    c0 = tr.x[:, 0, 0, :].mean(axis=1)
    assert c0[tr.y >= 2].mean() > c0[tr.y == 0].min()
