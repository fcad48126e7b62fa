"""The error-bound layer's residual symbols, coded band by band with one generalised Gaussian per band.

What the closed-loop prediction (residual.py) leaves in a band is close to white noise whose shape lies between a
Laplace and a Gaussian, so each band is coded with p(q) proportional to exp(-(|q| / scale) ** shape) for one of
SHAPES and a scale on a grid of 1/8 octave: two bytes of side information per band instead of a stored table or
float parameters (measured on the nine training tiles: 1.5 % fewer residual bytes than entropy.encode_channels at
E = 0, 2.3-2.4 % at E = 2-5). Values beyond the table's reach are escaped and stored as raw int32.

Determinism: the decoder's tables come from the two stored codes through IEEE-754 +, *, /, sqrt, floor and ldexp
only (all correctly rounded; exp is a fixed polynomial after an exact power-of-two range reduction), with the
constants written out below, so every platform builds the same float64 table; the ANS layer is entropy.py's.
Layout: docs/format.md, "Band-coded residuals".
"""
import functools
import math
import struct
import zlib

import numpy as np

from . import entropy
from .errors import FormatError

CODER_ID = 'predicted-v2'  # codec.residual_coder: predicted residual symbols (residual.py) in this stream
PLAIN_CODER_ID = 'plain-v2'  # codec.residual_coder: plain symbols (bounds.py quantisers) in this stream
BAND_CODED = (CODER_ID, PLAIN_CODER_ID)
VERSION = 1
SHAPES = (1.0, 1.25, 1.5, 1.75, 2.0)
# (|q| / scale) ** shape reaches 17 (p = e**-17, about 2**-24.5, constriction's floor) at |q| = scale * TAIL
TAIL = (17.0, 9.66, 6.62, 5.05, 4.13)
SCALE_OFFSET = 48  # scale = 2 ** ((code - SCALE_OFFSET) / 8); code 0: the band is all zeros
ROOT8 = (1.0, 1.0905077326652577, 1.189207115002721, 1.2968395546510096, 1.4142135623730951,
         1.5422108254079407, 1.6817928305074290, 1.8340080864093424)  # 2 ** (j / 8)
HALF_WIDTH_LIMIT = 2 ** 15  # tables span at most +-2**15; larger values are escaped
ESCAPE_WEIGHT = 2.0 ** -20  # relative to the table's peak (1.0)
CHOICE_REACH = 4096  # the encoder's cost estimate counts larger magnitudes as escapes
LN2, INV_LN2 = 0.6931471805599453, 1.4426950408889634
_EXP_TERMS = tuple(1.0 / f for f in (1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, 39916800,
                                     479001600, 6227020800))  # 1 / k!, k = 0..13: |error| < 1e-16 on [0, ln 2)
_HEAD = struct.Struct('<BII')  # version, bands, samples


def scale_of(code):
    return math.ldexp(ROOT8[code % 8], code // 8 - SCALE_OFFSET // 8)


@functools.lru_cache(maxsize=2048)
def half_width(code, shape_index):
    return min(HALF_WIDTH_LIMIT, max(1, math.floor(scale_of(code) * TAIL[shape_index]) + 1))


def _power(u, shape_index):
    """u ** SHAPES[shape_index] from products and square roots only."""
    if shape_index == 0:
        return u
    if shape_index == 4:
        return u * u
    root = np.sqrt(u)
    if shape_index == 2:
        return u * root
    fourth = np.sqrt(root)
    return u * fourth if shape_index == 1 else u * root * fourth


def _exp_negative(y):
    """exp(-y) for y >= 0: 2**-k exp(-r) with k = floor(y / ln 2), r = y - k ln 2, exp(-r) by Horner's rule."""
    k = np.floor(y * INV_LN2)
    r = -(y - k * LN2)
    total = np.full(y.shape, _EXP_TERMS[-1])
    for term in _EXP_TERMS[-2::-1]:
        total = total * r + term
    out = np.ldexp(total, -np.minimum(k, 1000).astype(np.int64))
    out[y > 41.0] = 0.0  # far below any value the coder can use, never subnormal
    return out


@functools.lru_cache(maxsize=512)
def table(code, shape_index):
    """Weights of q = -L..L, then the escape entry (read-only, shared by the cache)."""
    width = half_width(code, shape_index)
    magnitude = np.abs(np.arange(-width, width + 1, dtype=np.float64))
    weights = np.append(_exp_negative(_power(magnitude / scale_of(code), shape_index)), ESCAPE_WEIGHT)
    weights.flags.writeable = False
    return weights


# --------------------------------------------------------------------------------------------------- encoding
@functools.lru_cache(maxsize=2048)
def _estimated_total(code, shape_index):
    """The sum of a table's weights, as the encoder estimates it."""
    span = np.arange(half_width(code, shape_index) + 1) / scale_of(code)
    return 2.0 * float(np.exp(-span ** SHAPES[shape_index]).sum()) - 1.0 + ESCAPE_WEIGHT


def _choose(values):
    """(scale codes, shape indices) of the cheapest tables for the bands of int64 `values` (bands, samples): an
    encoder-side estimate from float64 logs over the scales around every band's moment fit, escapes at 32 bits
    plus their flag; magnitudes beyond CHOICE_REACH count as escapes."""
    bands, samples = values.shape
    reach = min(max(-int(values.min()), int(values.max())), CHOICE_REACH) + 1
    index = np.clip(values, -reach, reach)  # then min(|value|, reach), in place: no tile-sized int64 temporaries
    np.abs(index, out=index)
    index += ((reach + 1) * np.arange(bands, dtype=index.dtype))[:, None]
    counts = np.bincount(index.ravel(), minlength=bands * (reach + 1)).reshape(bands, reach + 1)[:, :reach]
    counts = counts.astype(np.float64)
    inside_counts = np.cumsum(counts, axis=1)
    distance = np.arange(reach, dtype=np.float64)
    best = np.full(bands, np.inf)
    codes, shapes = np.ones(bands, np.int64), np.zeros(bands, np.int64)
    for shape_index, shape in enumerate(SHAPES):
        fits = (shape * (counts @ distance ** shape) / samples) ** (1.0 / shape)
        centres = SCALE_OFFSET + np.rint(8.0 * np.log2(np.maximum(fits, 0.02))).astype(np.int64)
        candidates = np.arange(max(1, int(centres.min()) - 3), min(255, int(centres.max()) + 3) + 1)
        widths = np.array([half_width(int(c), shape_index) for c in candidates])
        scales = np.array([scale_of(int(c)) for c in candidates])
        span = np.arange(min(int(widths.max()) + 1, reach), dtype=np.float64)
        logs = -(span[None, :] / scales[:, None]) ** shape * np.log2(np.e)  # log2 weight of |q| = d
        logs[span[None, :] > widths[:, None]] = 0.0  # escapes, counted below
        totals = np.array([_estimated_total(int(c), shape_index) for c in candidates])
        escapes = samples - inside_counts[:, np.minimum(widths, reach - 1)]
        bits = samples * np.log2(totals)[None, :] + escapes * (32.0 - np.log2(ESCAPE_WEIGHT))
        bits -= counts[:, :span.size] @ logs.T
        pick = np.argmin(bits, axis=1)
        better = bits[np.arange(bands), pick] < best
        best[better] = bits[np.arange(bands), pick][better]
        codes[better], shapes[better] = candidates[pick[better]], shape_index
    return codes, shapes


def encode(symbols):
    """symbols: int (bands, samples) within int32 -> bytes."""
    symbols = np.asarray(symbols)
    if symbols.ndim != 2 or symbols.dtype.kind not in 'iu':
        raise ValueError(f'symbols must be a 2-D integer array, not {symbols.dtype} {symbols.shape}')
    bands, samples = symbols.shape
    if symbols.dtype != np.int32 and symbols.size and (int(symbols.min()) < -2 ** 31
                                                       or int(symbols.max()) >= 2 ** 31):
        raise ValueError('band-coded symbols must lie within the int32 range')
    values = symbols.astype(np.int32, copy=False)
    codes = np.zeros(bands, np.uint8)
    shapes = np.zeros(bands, np.uint8)
    live = values.any(axis=1) if samples else np.zeros(bands, bool)
    if live.any():
        codes[live], shapes[live] = _choose(values if live.all() else values[live])
        peaks = np.maximum(-values.min(axis=1).astype(np.int64), values.max(axis=1))  # largest |value| per band
    coder = entropy.ans_coder()
    escaped = []
    for band in range(bands - 1, -1, -1):  # a stack: the last band goes in first
        if not codes[band]:
            escaped.append(b'')
            continue
        width = half_width(int(codes[band]), int(shapes[band]))
        if peaks[band] <= width:  # nothing to escape: int32 is exact
            index, outside = values[band] + np.int32(width), None
        else:
            index = values[band].astype(np.int64) + width
            outside = (index < 0) | (index > 2 * width)
            index[outside] = 2 * width + 1
            index = index.astype(np.int32)
        entropy.push_stream(coder, entropy.index_stream(index, table(int(codes[band]), int(shapes[band]))))
        escaped.append(b'' if outside is None else values[band][outside].astype('<i4').tobytes())
    side = zlib.compress(np.diff(codes, prepend=np.uint8(0)).tobytes() + shapes.tobytes(), 9)
    words = entropy.ans_words(coder)
    return (_HEAD.pack(VERSION, bands, samples) + struct.pack('<II', len(side), len(words)) + side + words
            + b''.join(reversed(escaped)))


# --------------------------------------------------------------------------------------------------- decoding
def decode(data, shape):
    """The (bands, samples) int32 symbols of a stream made by `encode`; FormatError if it is not one."""
    with entropy.corrupt_stream("a tile's band-coded residuals are corrupt"):
        return _decode(bytes(data), tuple(int(s) for s in shape))


def _decode(data, shape):
    try:
        version, bands, samples = _HEAD.unpack_from(data, 0)
        side_length, word_length = struct.unpack_from('<II', data, _HEAD.size)
    except struct.error as exc:
        raise FormatError('a tile\'s band-coded residuals are truncated') from exc
    if version != VERSION:
        raise FormatError(f'band-coded residuals of version {version} are not supported; update the plugin')
    if (bands, samples) != shape:
        raise FormatError(f'a tile\'s band-coded residuals hold {bands} x {samples} symbols, expected {shape}')
    start = _HEAD.size + 8
    inflater = zlib.decompressobj()
    side = inflater.decompress(data[start:start + side_length], 2 * bands + 1)  # a zlib bomb stops here
    if len(side) != 2 * bands or not inflater.eof or inflater.unused_data:
        raise FormatError('a tile\'s band-coded residuals have corrupt side information')
    codes = np.cumsum(np.frombuffer(side[:bands], np.uint8), dtype=np.uint8)  # the deltas wrap like the encoder's
    shapes = np.frombuffer(side[bands:], np.uint8)
    if (shapes >= len(SHAPES)).any():
        raise FormatError('a tile\'s band-coded residuals name an unknown shape')
    words_start = start + side_length
    if word_length % 4 or words_start + word_length > len(data):
        raise FormatError('a tile\'s band-coded residuals are truncated')
    words = np.frombuffer(data, '<u4', count=word_length // 4, offset=words_start).astype(np.uint32)
    coder = entropy.ans_coder(words) if words.size else None
    raw = memoryview(data)[words_start + word_length:]
    out = np.zeros((bands, samples), np.int32)
    widths = np.zeros(bands, np.int32)
    for band in range(bands):
        code, shape_index = int(codes[band]), int(shapes[band])
        if not code or not samples:
            continue
        if coder is None:
            raise FormatError('a tile\'s band-coded residuals lack their coded data')
        widths[band] = half_width(code, shape_index)
        weights = table(code, shape_index)
        entropy.pop_indices(coder, weights, entropy.index_stream_group(weights.size, samples), out[band])
    # table indices -> values for all bands at once; the escape entry 2L + 1 (never hit by an all-zero band)
    outside = out == np.where(widths > 0, 2 * widths + 1, -1)[:, None]
    out -= widths[:, None]
    position = 0
    for band in np.flatnonzero(outside.any(axis=1)):
        count = int(np.count_nonzero(outside[band]))
        if position + 4 * count > len(raw):
            raise FormatError('a tile\'s band-coded residuals are truncated (escaped values)')
        out[band][outside[band]] = np.frombuffer(raw[position:position + 4 * count], '<i4')
        position += 4 * count
    if position != len(raw) or (coder is not None and not coder.is_empty()):
        raise FormatError('a tile\'s band-coded residuals have data left over')
    return out
