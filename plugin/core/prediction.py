"""Spatial prediction of quantised channels before entropy coding.

Neighbouring EnMAP pixels are alike, so each channel of a tile is coded as it is, as differences along the rows,
or as differences down the columns (of its valid pixels), whichever is cheapest. Prediction works on integer
symbols, so decoding is an exact cumulative sum: vectorised and the same on every machine.
"""
import struct
import zlib

import numpy as np

from . import entropy
from .errors import FormatError

MODES = ('none', 'rows', 'columns')


def _column_order(valid):
    """Permutation that lists a tile's valid pixels (given in row-major order) column by column."""
    rows, cols = np.nonzero(valid)
    return np.argsort(cols * valid.shape[0] + rows, kind='stable')


SAMPLE = 8192  # samples per channel used to estimate costs: enough to pick a mode, cheap on big tiles


def _delta(values):
    out = values.copy()
    out[:, 1:] -= values[:, :-1]
    return out


def channel_entropy_bits(symbols, max_cells=1 << 21):
    """Empirical zeroth-order entropy of each channel in bits, histogramming a few channels at a time."""
    bits = np.zeros(symbols.shape[0])
    if symbols.shape[1] == 0:
        return bits
    low = symbols.min(axis=1, keepdims=True)
    spans = symbols.max(axis=1).astype(np.int64) - low[:, 0] + 1  # int64: int32 deltas may span 2^32
    span = int(spans.max())
    group = max(1, max_cells // span)
    for start in range(0, symbols.shape[0], group):
        if span > max_cells:  # absurd ranges: no estimate, such a channel is kept as it is
            bits[start:] = np.inf
            break
        block = symbols[start:start + group] - low[start:start + group]
        index = block + np.arange(block.shape[0])[:, None] * span
        counts = np.bincount(index.ravel(), minlength=span * block.shape[0]).reshape(block.shape[0], span)
        nonzero = counts > 0
        logs = np.zeros(counts.shape)
        logs[nonzero] = np.log2(counts[nonzero] / symbols.shape[1])
        bits[start:start + group] = -(counts * logs).sum(axis=1)
    return bits


def _choose_modes(symbols, order):
    """Pick each channel's mode from the entropy of a contiguous middle segment of each candidate."""
    count = symbols.shape[1]
    start = max(0, (count - SAMPLE) // 2)
    segment = slice(start, start + SAMPLE)
    candidates = [symbols[:, segment], _delta(symbols[:, segment]), _delta(symbols[:, order[segment]])]
    return np.stack([channel_entropy_bits(c) for c in candidates]).argmin(axis=0).astype(np.uint8)


def encode_predicted(symbols, valid):
    """symbols: int32 (C, N) for the N valid pixels of `valid` (row-major). Returns bytes."""
    symbols = np.asarray(symbols)
    if symbols.dtype != np.int32:
        symbols = symbols.astype(np.int64)
    order = _column_order(valid)
    modes = np.zeros(symbols.shape[0], np.uint8)
    # below 2^31 apart every difference fits the coder's int32 (so int32 symbols need no wider copies)
    if symbols.size and int(symbols.max()) - int(symbols.min()) < 2 ** 31:
        modes = _choose_modes(symbols, order)
    chosen = symbols.copy()
    rows, columns = modes == 1, modes == 2
    chosen[rows, 1:] -= symbols[rows, :-1]
    if columns.any():
        chosen[columns] = _delta(symbols[columns][:, order])
    packed_modes = zlib.compress(modes.tobytes(), 9)
    return struct.pack('<H', len(packed_modes)) + packed_modes + entropy.encode_channels(
        chosen.astype(np.int32, copy=False))


def decode_predicted(data, channels, valid):
    try:
        (length,) = struct.unpack_from('<H', data, 0)
        inflater = zlib.decompressobj()
        modes = np.frombuffer(inflater.decompress(data[2:2 + length], channels + 1), np.uint8)  # bombs stop here
    except (struct.error, zlib.error) as exc:
        raise FormatError('a tile\'s prediction modes are corrupt') from exc
    if not inflater.eof or inflater.unused_data:
        raise FormatError('a tile\'s prediction modes are corrupt (not one byte per channel)')
    pixels = int(valid.sum())
    if modes.size != channels or (modes >= len(MODES)).any():
        raise FormatError('a tile\'s prediction modes do not match its channels')
    values = entropy.decode_channels(data[2 + length:], (channels, pixels))
    rows, columns = modes == 1, modes == 2
    # partial sums are the original int32 symbols, so int32 arithmetic is exact
    if rows.any():
        values[rows] = np.cumsum(values[rows], axis=1, dtype=np.int32)
    if columns.any():
        order = _column_order(valid)
        restored = np.empty_like(values[columns])
        restored[:, order] = np.cumsum(values[columns], axis=1, dtype=np.int32)
        values[columns] = restored
    return values
