"""MFCC features in NumPy/SciPy (no torch): the LitE-SNN GSC front end, vectorised over clips.

Pipeline per clip: optional pre-emphasis -> frames of `frame_length` samples every `hop_length`
(no padding: 16000 samples -> 1 + (16000 - 480) // 160 = 98 frames) -> periodic Hamming window ->
power spectrum |rfft(frame, n_fft)|^2 / n_fft -> HTK-mel triangular filterbank -> natural log with
an absolute floor -> orthonormal DCT-II (scipy.fft.dct) -> the first `n_mfcc` coefficients.
Output layout is [N, n_mfcc, n_frames] (coefficient = image row, time = image column).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.fft import dct, rfft


@dataclass(frozen=True)
class MfccConfig:
    """Feature settings; the defaults are the paper's (16 kHz, 30 ms / 10 ms, 40 mel, 40 coefficients)."""

    sample_rate: int = 16000
    frame_length: int = 480      # 30 ms
    hop_length: int = 160        # 10 ms
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 40
    fmin: float = 20.0
    fmax: float = 8000.0
    preemphasis: float | None = None   # e.g. 0.97; None = off (as TensorFlow's speech-commands MFCC)
    log_floor: float = 1e-10

    def __post_init__(self) -> None:
        if self.frame_length > self.n_fft:
            raise ValueError(f"frame_length {self.frame_length} > n_fft {self.n_fft}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got {self.fmin}, {self.fmax}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"need 1 <= n_mfcc <= n_mels, got {self.n_mfcc}, {self.n_mels}")
        if self.hop_length < 1 or self.log_floor <= 0:
            raise ValueError("hop_length must be >= 1 and log_floor > 0")

    def n_frames(self, n_samples: int) -> int:
        """Number of whole frames in a clip of `n_samples` (0 if shorter than one frame)."""
        if n_samples < self.frame_length:
            return 0
        return 1 + (n_samples - self.frame_length) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_edges_hz(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The n_mels + 2 filter edge frequencies (Hz), equally spaced on the mel scale.

    Filter m (0-based) rises from edges[m] to a peak at edges[m+1] and falls to zero at edges[m+2].
    """
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters [n_mels, n_fft // 2 + 1] at the FFT bin frequencies (peak 1, no area norm).

    Adjacent triangles share edges, so between the first and last centre the weights sum to 1.
    """
    edges = mel_edges_hz(n_mels, fmin, fmax)
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    lo, ce, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lo) / (ce - lo)
    fall = (hi - freqs[None, :]) / (hi - ce)
    return np.maximum(0.0, np.minimum(rise, fall))


def hamming_periodic(n: int) -> np.ndarray:
    """Periodic Hamming window 0.54 - 0.46 cos(2 pi k / n), k = 0..n-1 (w[0] = 0.08, w[n/2] = 1)."""
    k = np.arange(n)
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * k / n)


def frame_signal(audio: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """[N, S] -> strided view [N, n_frames, frame_length] (no copy, no padding)."""
    win = np.lib.stride_tricks.sliding_window_view(audio, frame_length, axis=-1)
    return win[:, ::hop_length, :]


def log_mel(audio: np.ndarray, cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """Log mel energies [N, n_frames, n_mels] (float64) for a batch of clips [N, S]."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected audio of shape [N, samples], got {x.shape}")
    if cfg.n_frames(x.shape[1]) == 0:
        raise ValueError(f"clips of {x.shape[1]} samples are shorter than one frame ({cfg.frame_length})")
    if cfg.preemphasis:
        x = np.concatenate([x[:, :1], x[:, 1:] - cfg.preemphasis * x[:, :-1]], axis=1)
    frames = frame_signal(x, cfg.frame_length, cfg.hop_length) * hamming_periodic(cfg.frame_length)
    power = np.abs(rfft(frames, n=cfg.n_fft, axis=-1)) ** 2 / cfg.n_fft
    fb = mel_filterbank(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.fmin, cfg.fmax)
    return np.log(np.maximum(power @ fb.T, cfg.log_floor))


def mfcc(audio: np.ndarray, cfg: MfccConfig = MfccConfig(), chunk: int = 256) -> np.ndarray:
    """MFCCs [N, n_mfcc, n_frames] float32 of clips [N, S] (or one clip [S] -> [n_mfcc, n_frames]).

    Processed `chunk` clips at a time to bound memory (the spectra are complex [chunk, frames, bins]).
    """
    a = np.asarray(audio)
    single = a.ndim == 1
    if single:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"expected audio of shape [N, samples] or [samples], got {a.shape}")
    out = np.empty((a.shape[0], cfg.n_mfcc, cfg.n_frames(a.shape[1])), dtype=np.float32)
    for i in range(0, a.shape[0], chunk):
        lm = log_mel(a[i:i + chunk], cfg)
        c = dct(lm, type=2, norm="ortho", axis=-1)[..., :cfg.n_mfcc]
        out[i:i + chunk] = c.transpose(0, 2, 1)
    return out[0] if single else out
