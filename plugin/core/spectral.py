"""Spectral prediction of the extra (non-model) bands of a lossless tile from bands already restored exactly.

In a lossless file the model bands are restored bit for bit before the extra bands are needed, so each extra band
(the water-vapour bands) is predicted from its nearest restored neighbours in wavelength: the two nearest bands
below it that are already known (model bands, or extra bands restored before it) and the nearest model band above
it, plus a constant. The weights are least-squares fits made by the encoder, sent as fixed-point integers, and the
prediction is integer arithmetic, so the decoder computes it bit-identically on every machine. What is left is
coded as a predicted stream (prediction.py). Layout: docs/format.md, "Spectrally predicted extra bands".
"""
import functools
import struct
import zlib

import numpy as np

from .errors import FormatError
from .prediction import decode_predicted, encode_predicted

VERSION = 1
SHIFT = 14  # weights are integers in units of 2**-14
_HEAD = struct.Struct('<BHI')  # version, band count, length of the zlib-compressed weights
_WEIGHT_LIMIT = 2 ** 24  # |weight| in fixed point; a fit beyond +-1024 is refused (the constant is clipped too)


def references(extra, coded):
    """For each extra band (canonical index, in the order of `extra`), the canonical bands it is predicted from."""
    return [list(refs) for refs in _references(tuple(int(b) for b in extra), tuple(int(b) for b in coded))]


@functools.lru_cache(maxsize=16)
def _references(extra, coded):  # the same for every tile of a file: worked out once
    known = set(coded)
    upper_pool = sorted(known)
    out = []
    for band in extra:
        below = sorted(b for b in known if b < band)[-2:]
        above = [b for b in upper_pool if b > band][:1]
        out.append(tuple(below + above))
        known.add(band)
    return tuple(out)


def _features(values_of, refs, pixels):
    columns = [values_of(b) for b in refs] + [np.ones(pixels, np.int64)]
    return np.stack(columns, axis=1).astype(np.int64)


def _predict(features, weights):
    acc = features @ weights.astype(np.int64)  # exact: |feature| < 2**24, |weight| < 2**24, few terms
    return (acc + (1 << (SHIFT - 1))) >> SHIFT


def _fit(features, target):
    scale = float(1 << SHIFT)
    try:
        weights, *_ = np.linalg.lstsq(features.astype(np.float64), target.astype(np.float64), rcond=None)
    except np.linalg.LinAlgError:
        weights = np.zeros(features.shape[1])
    if not np.all(np.isfinite(weights)):
        weights = np.zeros(features.shape[1])
    return np.clip(np.rint(weights * scale), -_WEIGHT_LIMIT + 1, _WEIGHT_LIMIT - 1).astype(np.int64)


def encode(values, rows, extra, coded, valid):
    """values: (bands, N) exact integer DN of the tile's restored bands at its valid pixels, row `rows[b]` for
    canonical band b; extra: the extra bands in coding order. Returns the section bytes."""
    errors, weights = [], []
    for band, refs in zip(extra, references(extra, coded)):
        features = _features(lambda b: values[rows[b]], refs, values.shape[1])
        target = values[rows[band]].astype(np.int64)
        w = _fit(features, target) if target.size else np.zeros(len(refs) + 1, np.int64)
        weights.append(w)
        errors.append(target - _predict(features, w))
    flat = np.concatenate(weights).astype('<i4') if weights else np.zeros(0, '<i4')
    packed = zlib.compress(flat.tobytes(), 9)
    residual = np.stack(errors).astype(np.int32) if errors else np.zeros((0, values.shape[1]), np.int32)
    return _HEAD.pack(VERSION, len(extra), len(packed)) + packed + encode_predicted(residual, valid)


def decode(data, values, rows, extra, coded, valid):
    """Fill the extra bands' rows of `values` (bands, N) in place from the section; the model bands' rows must
    already hold their exact values."""
    try:
        version, count, length = _HEAD.unpack_from(data, 0)
        flat = np.frombuffer(zlib.decompress(data[_HEAD.size:_HEAD.size + length]), '<i4').astype(np.int64)
    except (struct.error, zlib.error) as exc:
        raise FormatError('a tile\'s spectrally predicted extra bands are corrupt') from exc
    refs = references(extra, coded)
    if version != VERSION or count != len(extra) or flat.size != sum(len(r) + 1 for r in refs):
        raise FormatError('a tile\'s spectrally predicted extra bands do not match the file\'s extra bands')
    residual = decode_predicted(data[_HEAD.size + length:], len(extra), valid)
    start = 0
    for index, (band, band_refs) in enumerate(zip(extra, refs)):
        weights = flat[start:start + len(band_refs) + 1]
        start += len(band_refs) + 1
        features = _features(lambda b: np.rint(values[rows[b]]).astype(np.int64), band_refs, values.shape[1])
        values[rows[band]] = _predict(features, weights) + residual[index]
    return values
