"""Vectorised string building: millions of ids, phone numbers and titles without a Python loop.

Strings are built as Arrow arrays (fixed-width byte matrices viewed as UTF-8, Arrow's own
``cast``/``lpad``/``binary_join_element_wise`` kernels, ``take`` from small vocabularies) and
handed to pandas zero-copy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _fixed_width(matrix: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII bytes as n strings of width w."""
    n, width = matrix.shape
    data = np.ascontiguousarray(matrix, dtype=np.uint8).reshape(-1)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32) if n else np.zeros(1, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def digits(values: np.ndarray, width: int) -> pa.Array:
    """Non-negative integers (< 10**width) as zero-padded decimal strings of exactly ``width`` digits."""
    v = pa.array(np.asarray(values).astype(np.int64, copy=False))
    out = pc.utf8_lpad(pc.cast(v, pa.string()), width=width, padding="0")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def hexes(values: np.ndarray, width: int) -> pa.Array:
    """Unsigned 64-bit integers as lower-case hex strings of ``width`` (<= 16) characters."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = (4 * np.arange(width - 1, -1, -1)).astype(np.uint64)
    nibbles = (v[:, None] >> shifts[None, :]) & np.uint64(15)
    return _fixed_width(_HEX[nibbles.astype(np.intp)])


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like ``S00000042``: a prefix and a zero-padded number."""
    return join(prefix, digits(numbers, width))


def join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate string arrays (and constant strings) element-wise."""
    arrays = [pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in parts]
    out = pc.binary_join_element_wise(*arrays, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def take(vocab: pa.Array, index: np.ndarray) -> pa.Array:
    """``vocab[index]``; negative indices give nulls."""
    idx = np.asarray(index, dtype=np.int64)
    if (idx < 0).any():
        return vocab.take(pa.array(idx, mask=idx < 0))
    return vocab.take(pa.array(idx))


def trim(values: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(values)


def series(values: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas string Series (no copy)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(values))


def timestamps(us: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch (int64; negative = missing) as ``datetime64[us]`` with NaT."""
    out = np.asarray(us, dtype=np.int64).view("datetime64[us]").copy()
    out[np.asarray(us) < 0] = np.datetime64("NaT")
    return out
