"""MFCC front end against hand-computed values (mel formula, filterbank geometry, frames, DCT)."""
import math

import numpy as np
import pytest

from lsnn.data.mfcc import (
    MfccConfig,
    frame_signal,
    hamming_periodic,
    hz_to_mel,
    log_mel,
    mel_edges_hz,
    mel_filterbank,
    mel_to_hz,
    mfcc,
)

SR = 16000
CFG = MfccConfig()


def tone(freq: float, amp: float = 0.5, n: int = SR) -> np.ndarray:
    t = np.arange(n) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_htk_mel_formula_at_known_points():
    assert hz_to_mel(0.0) == 0.0
    # 2595 * log10(2) at f = 700 Hz
    assert hz_to_mel(700.0) == pytest.approx(781.17284, abs=1e-4)
    # HTK's mel is ~1000 at 1 kHz: 2595 * log10(17/7) = 999.9855
    assert hz_to_mel(1000.0) == pytest.approx(999.9855, abs=1e-3)
    assert hz_to_mel(8000.0) == pytest.approx(2840.0230, abs=1e-3)  # 2595 log10(87/7)
    assert hz_to_mel(20.0) == pytest.approx(31.74841, abs=1e-4)    # 2595 log10(36/35)
    f = np.array([20.0, 440.0, 3999.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12)


def test_filter_edges_are_equally_spaced_in_mel_from_20_to_8000_hz():
    e = mel_edges_hz(40, 20.0, 8000.0)
    assert len(e) == 42
    assert e[0] == pytest.approx(20.0) and e[-1] == pytest.approx(8000.0)
    step = np.diff(hz_to_mel(e))
    np.testing.assert_allclose(step, (2840.0230 - 31.74841) / 41, rtol=1e-6)


def test_filterbank_triangles_peak_at_centres_and_tile_to_one():
    fb = mel_filterbank(40, 512, SR, 20.0, 8000.0)
    assert fb.shape == (40, 257)
    assert fb.min() == 0.0 and fb.max() <= 1.0
    e = mel_edges_hz(40, 20.0, 8000.0)
    freqs = np.arange(257) * SR / 512
    for m in range(40):
        nz = np.flatnonzero(fb[m])
        assert len(nz) >= 2                                # even the narrowest low filter sees bins
        assert freqs[nz].min() > e[m] and freqs[nz].max() < e[m + 2]
        # the peak bin is one of the two bins around the centre (within one bin spacing)
        assert abs(freqs[np.argmax(fb[m])] - e[m + 1]) < SR / 512
    # between the first and the last centre the shared-edge triangles sum to exactly 1
    inside = (freqs >= e[1]) & (freqs <= e[40])
    np.testing.assert_allclose(fb[:, inside].sum(axis=0), 1.0, atol=1e-12)
    # bin 32 = 1000 Hz: weight = rise/fall of the two filters around it, by hand
    m = np.searchsorted(e, 1000.0) - 2          # filter whose rising edge spans 1000 Hz is m+1
    lo, ce = e[m + 1], e[m + 2]
    assert fb[m + 1, 32] == pytest.approx((1000.0 - lo) / (ce - lo), abs=1e-12)


def test_frames_hamming_and_count():
    assert CFG.n_frames(16000) == 98                  # 1 + (16000 - 480) // 160
    assert CFG.n_frames(479) == 0 and CFG.n_frames(480) == 1 and CFG.n_frames(640) == 2
    w = hamming_periodic(480)
    assert w[0] == pytest.approx(0.08) and w[240] == pytest.approx(1.0)
    x = np.arange(2 * 1000, dtype=float).reshape(2, 1000)
    fr = frame_signal(x, 480, 160)
    assert fr.shape == (2, 4, 480)
    assert fr[1, 3, 0] == 1000 + 3 * 160 and fr[0, 2, 479] == 2 * 160 + 479
    out = mfcc(np.zeros((3, 16000), np.float32))
    assert out.shape == (3, 40, 98) and out.dtype == np.float32


def test_dct_of_constant_log_energies_is_c0_only():
    # silence: every mel energy hits the floor, so log-mel is the constant log(1e-10)
    out = mfcc(np.zeros(16000, np.float32))
    assert out.shape == (40, 98)
    np.testing.assert_allclose(out[0], math.sqrt(40) * math.log(1e-10), rtol=1e-6)
    np.testing.assert_allclose(out[1:], 0.0, atol=1e-4)


@pytest.mark.parametrize("m", [5, 20, 33])
def test_pure_tone_energy_lands_in_the_filter_centred_on_it(m):
    e = mel_edges_hz(40, 20.0, 8000.0)
    lm = log_mel(tone(e[m + 1])[None])[0]            # [98, 40]
    assert np.all(np.argmax(lm, axis=1) == m)
    # the filter's energy dominates the far filters by orders of magnitude
    assert lm[:, m].mean() - lm[:, (m + 10) % 40].mean() > 5.0


def test_doubling_amplitude_adds_log4_to_every_filter_and_c0_only_moves():
    a = log_mel(tone(1000.0, 0.2)[None])[0]
    b = log_mel(tone(1000.0, 0.4)[None])[0]
    np.testing.assert_allclose(b - a, math.log(4.0), atol=1e-6)
    ca, cb = mfcc(tone(1000.0, 0.2)), mfcc(tone(1000.0, 0.4))
    np.testing.assert_allclose(cb[0] - ca[0], math.sqrt(40) * math.log(4.0), atol=1e-3)
    np.testing.assert_allclose(cb[1:], ca[1:], atol=1e-3)


def test_preemphasis_gain_at_4khz():
    # |1 - 0.97 e^{-j pi/2}|^2 = 1 + 0.97^2 -> log gain 0.66316 in the filter centred near 4 kHz
    e = mel_edges_hz(40, 20.0, 8000.0)
    m = int(np.argmin(np.abs(e[1:-1] - 4000.0)))
    x = tone(4000.0)[None]
    plain = log_mel(x)[0, 5:-5, m]
    emph = log_mel(x, MfccConfig(preemphasis=0.97))[0, 5:-5, m]
    assert np.mean(emph - plain) == pytest.approx(math.log(1 + 0.97 ** 2), abs=0.02)


def test_batch_is_vectorised_per_clip_and_chunk_independent():
    rng = np.random.default_rng(0)
    clips = rng.normal(0, 0.1, size=(5, 16000)).astype(np.float32)
    full = mfcc(clips, chunk=256)
    np.testing.assert_allclose(mfcc(clips, chunk=2), full, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(mfcc(clips[3]), full[3], rtol=1e-6, atol=1e-5)
    assert not np.allclose(full[0], full[1])


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError):
        MfccConfig(frame_length=600)
    with pytest.raises(ValueError):
        MfccConfig(fmax=9000.0)
    with pytest.raises(ValueError):
        MfccConfig(n_mfcc=41)
    with pytest.raises(ValueError):
        mfcc(np.zeros((2, 100)))
