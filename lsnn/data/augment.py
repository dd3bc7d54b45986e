"""Training-time augmentations on NumPy batches [B, C, H, W] in [0, 1], seeded by a Generator.

Each augmentation is a pure function `(x, rng) -> x'` of the same shape and dtype; `get_augment`
builds one from a name so run configs can say which (`augment: shift` etc.), and `compose` chains
them. The deployed network never sees them: they act on the training batches only.

- `shift`: zero-pad by `pad` and take a random crop (small translations; no flip, digits are not
  mirror-symmetric).
- `crop_flip`: `shift` with pad 4 plus a left-right flip with p = 0.5 (CIFAR's standard).
- `cutout`: one random square of side `size` set to 0 per image (DeVries & Taylor 2017).
- `time_shift`: roll along the last (time) axis by up to `max_shift` frames, zero-filling (audio).
- `spec_mask`: SpecAugment-style masks: `n_freq` bands of up to `freq_width` rows and `n_time`
  spans of up to `time_width` columns set to 0 (Park et al. 2019).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from lsnn.errors import ConfigError

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def shift(x: np.ndarray, rng: np.random.Generator, pad: int = 1, flip: bool = False) -> np.ndarray:
    """Random translation by up to `pad` pixels each way (zero fill), optionally a random flip."""
    b, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oy = rng.integers(0, 2 * pad + 1, size=b)
    ox = rng.integers(0, 2 * pad + 1, size=b)
    rows = oy[:, None] + np.arange(h)[None, :]
    cols = ox[:, None] + np.arange(w)[None, :]
    if flip:
        cols = np.where((rng.random(b) < 0.5)[:, None], cols[:, ::-1], cols)
    bi = np.arange(b)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """CIFAR's standard: zero-pad by `pad`, random crop, left-right flip with p = 0.5."""
    return shift(x, rng, pad=pad, flip=True)


def cutout(x: np.ndarray, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    """Zero one `size` x `size` square per image, centred uniformly (it may overhang the border)."""
    b, _, h, w = x.shape
    y0 = rng.integers(0, h, size=b)[:, None] - size // 2
    x0 = rng.integers(0, w, size=b)[:, None] - size // 2
    in_y = (np.arange(h)[None, :] >= y0) & (np.arange(h)[None, :] < y0 + size)     # [B, H]
    in_x = (np.arange(w)[None, :] >= x0) & (np.arange(w)[None, :] < x0 + size)     # [B, W]
    hole = in_y[:, :, None] & in_x[:, None, :]
    return np.where(hole[:, None], np.zeros((), x.dtype), x)


def time_shift(x: np.ndarray, rng: np.random.Generator, max_shift: int = 10) -> np.ndarray:
    """Shift each sample along the last axis by an integer in [-max_shift, max_shift], zero-filling."""
    b, c, h, w = x.shape
    s = rng.integers(-max_shift, max_shift + 1, size=b)
    src = np.arange(w)[None, :] - s[:, None]                    # [B, W]: output column <- source column
    valid = (src >= 0) & (src < w)
    out = x[np.arange(b)[:, None, None, None], np.arange(c)[None, :, None, None],
            np.arange(h)[None, None, :, None], np.clip(src, 0, w - 1)[:, None, None, :]]
    return np.where(valid[:, None, None, :], out, np.zeros((), x.dtype))


def spec_mask(x: np.ndarray, rng: np.random.Generator, n_freq: int = 2, freq_width: int = 5,
              n_time: int = 2, time_width: int = 10) -> np.ndarray:
    """Zero random frequency bands (rows, axis 2) and time spans (columns, axis 3) per sample."""
    b, _, h, w = x.shape
    keep = np.ones((b, h, w), dtype=bool)
    for axis, n, width, size in ((1, n_freq, freq_width, h), (2, n_time, time_width, w)):
        for _ in range(n):
            wid = rng.integers(0, width + 1, size=b)
            start = rng.integers(0, np.maximum(size - wid, 0) + 1)
            pos = np.arange(size)[None, :]
            band = (pos >= start[:, None]) & (pos < (start + wid)[:, None])     # [B, size]
            keep &= ~(band[:, :, None] if axis == 1 else band[:, None, :])
    return np.where(keep[:, None], x, np.zeros((), x.dtype))


def compose(*augs: Augment) -> Augment:
    """Apply `augs` in order with the same generator."""
    def run(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for a in augs:
            x = a(x, rng)
        return x
    return run


AUGMENTS: dict[str, Callable[[], Augment | None]] = {
    "none": lambda: None,
    "shift": lambda: partial(shift, pad=1),
    "crop_flip": lambda: crop_flip,
    "crop_flip_cutout": lambda: compose(crop_flip, partial(cutout, size=8)),
    "speech": lambda: compose(partial(time_shift, max_shift=10), spec_mask),
}


def get_augment(name: str) -> Augment | None:
    """The augmentation called `name` (None for "none"); an unknown name lists the known ones."""
    try:
        return AUGMENTS[name]()
    except KeyError:
        raise ConfigError(f"unknown augment '{name}' (known: {', '.join(AUGMENTS)})") from None
