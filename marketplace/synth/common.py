"""Helpers shared by the event generators: row-wise draws, whole-second times, id counters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.synth.plan import SEC

HOUR = 3600 * SEC


@dataclass
class Counters:
    """Running id numbers across chunks (ids are global and dense)."""

    listings: int = 0
    edits: int = 0
    orders: int = 0
    complaints: int = 0
    reviews: int = 0


def choice_rows(rng: np.random.Generator, p_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row, row i drawn from the distribution ``p_rows[i]``."""
    cum = np.cumsum(p_rows, axis=1)
    u = rng.random(len(p_rows)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), p_rows.shape[1] - 1)


def log_uniform(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.exp(np.log(lo) + rng.random(len(lo)) * (np.log(hi) - np.log(lo)))


def inside(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Whole-second times strictly inside (lo, hi) (hi - lo >= 2 s assumed)."""
    width = np.maximum(hi - lo - 2 * SEC, 0)
    u = rng.random(len(lo))
    if power != 1.0:
        u = u**power
    return lo + SEC + (u * width).astype(np.int64) // SEC * SEC


def after(rng: np.random.Generator, base: np.ndarray, min_us: int, mean_us: float) -> np.ndarray:
    """Whole-second times at least ``min_us`` after ``base``, exponential tail of mean ``mean_us``."""
    extra = rng.exponential(mean_us, size=len(base)).astype(np.int64)
    return base + max(min_us, SEC) + extra // SEC * SEC


def langs(rng: np.random.Generator, shop_lang: np.ndarray) -> np.ndarray:
    """Chinese (0) or English (1) per row from the shop's preference (2 = mixed), with 15% switching."""
    lang = np.where(shop_lang == 2, rng.integers(0, 2, size=len(shop_lang)), shop_lang)
    flip = rng.random(len(shop_lang)) < 0.15
    return np.where(flip, 1 - lang, lang).astype(np.int64)


def group_starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts
