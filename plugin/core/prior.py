"""Entropy coding with a learned factorised prior: fixed tables, no per-tile statistics in the file.

A model with `entropy_model.family == "laplace"` (rdnet) gives every latent channel a Laplace scale
b, learned with the transform. At quantiser step s and dead zone d, symbol q has the probability of its interval:
P(0) = 1 - e0 and P(+-q) = e0 (1 - r) r^(|q| - 1) / 2, with e0 = exp(-(1/2 + d) s / b) and r = exp(-s / b).
The latent coder (latent.py) adds a flag per row and, for flagged rows, a scale code: see docs/format.md.

Determinism: encoder and decoder must build identical tables. The two exponentials are evaluated with IEEE-754
+, *, / only (`exp_neg`: halving, a short Taylor series, repeated squaring), the rest by sequential products as in
entropy.py, and tables are scaled to integers before constriction quantises them, so every platform agrees.
"""
import struct
import zlib

import numpy as np

from .entropy import IndexStream, ans_coder, ans_words, corrupt_stream, cut_tail, pop_indices, push_stream
from .errors import FormatError
from .varint import read_uvarint, uvarint

MAGIC = b'EP'
VERSION = 1  # the per-row prior coder's streams (latent.PriorLatentCoder)
CONTEXT_VERSION = 2  # context-coded streams (context_coder.py): a reader without it refuses them clearly
_HEAD = struct.Struct('<2sBIII')  # magic, version, rows, ANS words, escaped values
_CRC = struct.Struct('<I')
MAX_HALF_WIDTH = 32767  # table covers -A..A; larger magnitudes are escaped and stored as raw int32
TAIL_BITS = 12.0  # A is chosen so that P(|q| > A) is about exp(-TAIL_BITS)
_FLOOR = 2.0 ** -40  # every in-range symbol stays codable


def exp_neg(x):
    """exp(-x) for x >= 0 with + * / only (identical on every IEEE-754 platform); relative error < 1e-12."""
    x = float(x)
    if x > 700.0:
        return 0.0
    halvings = 0
    while x > 2.0 ** -10:
        x *= 0.5
        halvings += 1
    term, total = 1.0, 1.0
    for k in range(1, 7):
        term = term * (-x) / k
        total += term
    for _ in range(halvings):
        total *= total
    return total


class FixedTable:
    """A table over symbols -half..half (index q + half) plus an escape entry (index 2 half + 1), from weights."""

    def __init__(self, weights):
        self.weights = np.asarray(weights, np.float64)
        self.half = (self.weights.size - 2) // 2


class LaplaceTable(FixedTable):
    """The table of one row at one step: the dead-zone Laplace of scale beta (in steps) over -A..A."""

    def __init__(self, beta, deadzone):
        self.beta = float(beta)  # b / s: the scale in quantiser steps
        half = int(min(MAX_HALF_WIDTH, max(1.0, np.ceil(TAIL_BITS * self.beta + 1.0))))
        e0 = exp_neg((0.5 + deadzone) / self.beta)
        ratio = exp_neg(1.0 / self.beta)
        factors = np.full(half, ratio, np.float64)
        factors[0] = 0.5 * e0 * (1.0 - ratio)
        side = cut_tail(np.cumprod(factors))
        table = np.empty(2 * half + 2, np.float64)
        table[half] = 1.0 - e0
        table[half + 1:2 * half + 1] = side
        table[:half] = side[::-1]
        table[-1] = 2.0 ** -24  # escape
        table = np.maximum(table, _FLOOR)
        super().__init__(np.floor(table * 2.0 ** 52 / table.max()))  # integers: constriction sees exact values


# per-row override flags (0: the model's prior, 1: the row's own scale), rare by design
FLAG_TABLE = FixedTable([1.0, 1023.0 * 2.0 ** 20, 2.0 ** 20, 1.0])
# the own scale of an overriding row: a byte b in -128..127, beta = 2 ** (b / 4)
BYTE_TABLE = FixedTable([1.0] * 255 + [1e-6])


def byte_scale(code):
    """beta of an override scale code (-128..127): 2 ** (code / 4), by exact powers of two and of 2 ** (1/4)."""
    quarter = (1.0, 1.189207115002721, 1.4142135623730951, 1.6817928305074292)
    return float(np.ldexp(quarter[int(code) % 4], int(code) // 4))


def encode_groups(rows, tables, version=VERSION):
    """rows: int32 arrays; tables: their FixedTables (LaplaceTable is one). Returns one self-checking stream that
    states `version` (which coder laid it out)."""
    coder = ans_coder()
    escaped = []
    for row, table in zip(reversed(rows), reversed(tables)):  # a stack: the first group pops first
        index = np.asarray(row, np.int64) + table.half
        outlier = (index < 0) | (index > 2 * table.half)
        if outlier.any():
            escaped.append(np.asarray(row)[outlier].astype('<i4'))
            index[outlier] = 2 * table.half + 1
        push_stream(coder, _stream(index.astype(np.int32), table))
    raw = b''.join(e.tobytes() for e in reversed(escaped))
    words = ans_words(coder)
    body = _HEAD.pack(MAGIC, version, len(rows), len(words) // 4, len(raw) // 4) + words + raw
    return body + _CRC.pack(zlib.crc32(body))


def _stream(index, table):
    # one symbol per ANS step: joint (grouped) tables would multiply the tiny tail weights below the cut-off
    return IndexStream(table.weights, 1, index, index[:0])


def decode_groups(data, tables, lengths=None, version=VERSION):
    """Inverse of encode_groups. tables and lengths: the groups' tables and lengths; or `tables` is a callable
    plan(rows) returning an iterator of (table, length) that may look at the rows decoded so far (filled in as it
    goes), for streams whose later tables depend on earlier symbols. FormatError on any damage, or when the stream
    states another version than `version`."""
    buf = bytes(data)
    if len(buf) < _HEAD.size + _CRC.size or buf[:2] != MAGIC:
        raise FormatError('not a learned-prior latent stream (bad magic or too short)')
    if _CRC.unpack_from(buf, len(buf) - 4)[0] != zlib.crc32(buf[:-4]):
        raise FormatError('a learned-prior latent stream is corrupt (checksum mismatch)')
    _magic, stated, count, n_words, n_escaped = _HEAD.unpack_from(buf, 0)
    if stated != version:
        raise FormatError(f'learned-prior stream version {stated} is not supported here (expected {version})')
    rows = []
    plan = tables(rows) if callable(tables) else zip(tables, lengths)
    if (not callable(tables) and count != len(tables)) or _HEAD.size + 4 * (n_words + n_escaped) + 4 != len(buf):
        raise FormatError('a learned-prior latent stream does not match the model geometry')
    words = np.frombuffer(buf, '<u4', n_words, _HEAD.size).astype(np.uint32)
    escaped = np.frombuffer(buf, '<i4', n_escaped, _HEAD.size + 4 * n_words)
    coder = ans_coder(words) if n_words else None
    used = 0
    with corrupt_stream('a learned-prior latent stream is corrupt'):
        for table, length in plan:
            index = np.empty(int(length), np.int32)
            if length:
                if coder is None:
                    raise FormatError('a learned-prior latent stream holds no coded data')
                pop_indices(coder, table.weights, 1, index)
            values = index - np.int32(table.half)
            outlier = np.flatnonzero(index == 2 * table.half + 1)
            values[outlier] = escaped[used:used + outlier.size]
            used += outlier.size
            rows.append(values)
    if len(rows) != count or used != escaped.size or (coder is not None and not coder.is_empty()):
        raise FormatError('a learned-prior latent stream is corrupt (data left over)')
    return rows


# --- compact framing (container 3.x files: the chunk CRC covers the stream, so it needs neither magic nor CRC) ----
def compact_stream(stream):
    """The compact form of an encode_groups stream (docs/format.md, "Compact framing"): u8 version, varint rows,
    varint ANS words, the words, then the escaped values (the rest). b'' (a tile without valid pixels) stays b''."""
    if not stream:
        return stream
    _magic, version, count, n_words, _escaped = _HEAD.unpack_from(stream, 0)
    return bytes([version]) + uvarint(count) + uvarint(n_words) + stream[_HEAD.size:-_CRC.size]


def expand_stream(data):
    """The encode_groups stream whose compact form is `data` (decode_groups reads and checks it), or FormatError
    when the compact head does not fit the data."""
    if not data:
        return data
    what = 'a learned-prior latent stream'
    count, pos = read_uvarint(data, 1, what)
    n_words, pos = read_uvarint(data, pos, what)
    escaped, rest = divmod(len(data) - pos - 4 * n_words, 4)
    if escaped < 0 or rest or count >= 1 << 32:
        raise FormatError(f'{what} has an inconsistent length (compact head)')
    body = _HEAD.pack(MAGIC, data[0], count, n_words, escaped) + data[pos:]
    return body + _CRC.pack(zlib.crc32(body))
