"""Entropy coding of quantised integer channels: a (C, N) int32 array <-> one self-checking byte stream.

Each channel gets the cheapest of: a constant, a raw fixed-width bit field, or an ANS code (constriction) driven by
a table that both sides build from the same stored numbers: an empirical histogram, a two-sided geometric
(discretised Laplace) or a discretised Gaussian. Low-entropy channels are coded g symbols at a time with the
product table, which cuts the number of ANS steps (the cost) without changing the rate.
The byte layout is documented in docs/format.md, section "Entropy-coded channel stream".

Determinism: the decoder's tables are made with IEEE-754 +, *, / only (no exp/log, whose last bits differ between
platforms and CPUs), small values are cut to 0 before they could become subnormal (flush-to-zero safe), and
constriction's Categorical(perfect=False) quantisation is a fixed function of those float64 numbers.
"""
from __future__ import annotations

import contextlib
import functools
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError
from .varint import uvarint as _uvarint

MAGIC = b'EC'
VERSION = 1
_HEAD = struct.Struct('<2sBBIIIII')  # magic, version, flags, C, N, side bytes, ANS words, raw bytes
_CRC = struct.Struct('<I')
_FLAG_SIDE_ZLIB = 0x01

MODE_CONST, MODE_RAW, MODE_HIST, MODE_LAPLACE, MODE_GAUSS = range(5)
_MODE_MASK = 0x0F
_FLAG_ESCAPE = 0x10  # histogram has one extra "escape" entry; escaped values are stored raw (int32)
_FLAG_SPLIT = 0x20  # flags "index != m" are coded first, then the other indices with a table without m
_FLAG_GROUP = 8
_KNOWN_KIND_BITS = _MODE_MASK | _FLAG_ESCAPE | _FLAG_SPLIT

MAX_ALPHABET = 1 << 16  # widest value range coded with a table; wider ranges use escapes or raw bits
GROUP_ALPHABET = 1024  # largest joint table when symbols are grouped (decode cost grows with log2 of it)
MAX_GROUP = 16
_CUT = 2.0 ** -60  # table entries below this become 0: far above the subnormal range, far below 2**-24
_ESCAPE_QUANTILE = 0.001
_HIST_TOTALS = (1 << 6, 1 << 8, 1 << 10, 1 << 12, 1 << 14, 1 << 16)
_MIN_GAUSS_VAR = 1.0 / 16.0
_MIN_PARAMETRIC_ALPHABET = 8
_INT32 = np.iinfo(np.int32)
_COPY_BLOCK = 512
_MODE_NAMES = ('const', 'raw', 'hist', 'laplace', 'gauss')
# the longest channel record: kind, lo, K, g, split m and fg, and A + 1 histogram weights, each varint 5 bytes
_MAX_RECORD_BYTES = 1 + 5 + 5 + 1 + 5 + 1 + 5 * (MAX_ALPHABET + 1)


# ----------------------------------------------------------------------------------------------------- public API
def encode_channels(symbols: np.ndarray) -> bytes:
    """Encode a 2-D integer array (C channels, N samples each; values within int32) into a byte stream."""
    sym = _as_int32_2d(symbols)
    los, his = _channel_ranges(sym)
    coder = ans_coder()
    sides, raws = [], []
    for c in range(sym.shape[0] - 1, -1, -1):  # ANS is a stack: push the last channel first, channel 0 pops first
        plan = _plan_channel(sym[c], int(los[c]), int(his[c]))
        for stream in reversed(plan.streams):
            push_stream(coder, stream)
        sides.append(plan.side)
        raws.append(plan.raw)
    return _assemble(sym.shape, b''.join(reversed(sides)), ans_words(coder), b''.join(reversed(raws)))


def _assemble(shape: tuple, side: bytes, words: bytes, raw: bytes) -> bytes:
    flags = 0
    packed = zlib.compress(side, 6)
    if len(packed) < len(side):
        side, flags = packed, _FLAG_SIDE_ZLIB
    body = _HEAD.pack(MAGIC, VERSION, flags, shape[0], shape[1], len(side), len(words) // 4, len(raw))
    body += side + words + raw
    return body + _CRC.pack(zlib.crc32(body))


def decode_channels(data: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a stream made by `encode_channels` into an int32 array (C, N); FormatError if it is not valid."""
    n_ch, n, flags, side, words, raw = _split_stream(data)
    if shape is not None and tuple(int(s) for s in shape) != (n_ch, n):
        raise FormatError(f'entropy stream holds {n_ch}x{n} symbols, expected {tuple(shape)}')
    with corrupt_stream('entropy stream is corrupt'):
        return _decode_body(n_ch, n, flags, side, words, raw)


@contextlib.contextmanager
def corrupt_stream(message):
    """Decoding inside this block that fails on bad data raises FormatError(message + the cause): constriction
    reports bad input as ValueError or as a Rust panic (a BaseException); FormatError and ImportError pass through,
    and so do KeyboardInterrupt and SystemExit."""
    try:
        yield
    except (FormatError, ImportError):
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and type(exc).__name__ != 'PanicException':
            raise
        raise FormatError(f'{message} ({type(exc).__name__}: {exc})') from exc


def channel_modes(data: bytes) -> list[str]:
    """How each channel of a stream is coded, e.g. ['hist+split', 'laplace', 'const', 'raw'] (for reports/tests)."""
    n_ch, _n, flags, side, _words, _raw = _split_stream(data)
    try:
        records = _read_records(n_ch, flags, side)
    except zlib.error as exc:
        raise FormatError(f'entropy stream side info is corrupt ({exc})') from exc
    names = []
    for record in records:
        name = _MODE_NAMES[record.kind & _MODE_MASK]
        name += '+escape' if record.escape else ''
        names.append(name + ('+split' if record.split else ''))
    return names


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """Sum over channels of N * H(channel) in bits: the rate of an ideal per-channel memoryless coder."""
    sym = np.asarray(symbols)
    if sym.ndim != 2:
        raise ValueError(f'expected a 2-D array (channels, samples), got shape {sym.shape}')
    total = 0.0
    for row in sym:
        if row.size:
            counts = np.unique(row, return_counts=True)[1].astype(np.float64)
            total += float(np.sum(counts * np.log2(row.size / counts)))
    return total


# -------------------------------------------------------------------------------------------------- input checks
def _as_int32_2d(symbols: np.ndarray) -> np.ndarray:
    sym = np.asarray(symbols)
    if sym.dtype.kind not in 'iu':
        raise TypeError(f'symbols must be an integer array, got dtype {sym.dtype}')
    if sym.ndim != 2:
        raise ValueError(f'symbols must be 2-D (channels, samples), got shape {sym.shape}')
    if max(sym.shape) >= 1 << 32:
        raise ValueError(f'at most 2**32 - 1 channels and samples per channel, got shape {sym.shape}')
    if sym.size and sym.dtype.itemsize >= 4 and sym.dtype != np.int32:
        if int(sym.min()) < _INT32.min or int(sym.max()) > _INT32.max:
            raise ValueError('symbol values must lie within the int32 range')
    if sym.flags.c_contiguous:
        return np.ascontiguousarray(sym, dtype=np.int32)
    out = np.empty(sym.shape, np.int32)  # e.g. a transposed (pixels, channels) array: copy in cache-sized blocks,
    for j in range(0, sym.shape[1], _COPY_BLOCK):  # about twice as fast as one strided copy
        out[:, j:j + _COPY_BLOCK] = sym[:, j:j + _COPY_BLOCK]
    return out


def _channel_ranges(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if sym.shape[1] == 0:
        zeros = np.zeros(sym.shape[0], np.int64)
        return zeros, zeros
    return sym.min(axis=1).astype(np.int64), sym.max(axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------------------------- plans
@dataclass
class IndexStream:
    """Table indices ready for ANS: `joint` codes `group` indices per symbol with the product table."""

    table: np.ndarray  # marginal weights (float64); the alphabet is len(table)
    group: int
    joint: np.ndarray  # int32
    rest: np.ndarray  # int32, the len % group trailing indices, coded one by one


@dataclass
class _ChannelPlan:
    """How one channel is coded: its side-info record, raw bytes and ANS streams (in decoding order)."""

    side: bytes
    raw: bytes = b''
    bits: float = 0.0
    streams: list = field(default_factory=list)


def _plan_channel(x: np.ndarray, lo: int, hi: int) -> _ChannelPlan:
    if x.size == 0 or lo == hi:
        return _ChannelPlan(side=bytes([MODE_CONST]) + _svarint(lo))
    width = (hi - lo).bit_length()
    raw_side = bytes([MODE_RAW]) + _svarint(lo) + bytes([width])
    raw_bits = 8.0 * (len(raw_side) + (x.size * width + 7) // 8)
    if hi - lo + 1 > MAX_ALPHABET:
        best = _escape_plan(x)
    else:
        best = _table_plan(x - np.int32(lo), hi - lo + 1, lo, escape=False)  # no overflow: hi - lo < 2**16
    if best is not None and best.bits < raw_bits:
        return best
    return _ChannelPlan(side=raw_side, raw=_pack_bits(x.astype(np.int64) - lo, width), bits=raw_bits)


def _escape_plan(x: np.ndarray) -> _ChannelPlan | None:
    """Huge range: code the central values with a histogram and send the rare outliers as raw int32."""
    k = int(x.size * _ESCAPE_QUANTILE)
    part = np.partition(x, (k, x.size - 1 - k))
    clo, chi = int(part[k]), int(part[x.size - 1 - k])
    span = chi - clo + 1
    if span > MAX_ALPHABET:
        return None
    offset = x.astype(np.int64) - clo
    outlier = (offset < 0) | (offset >= span)
    plan = _table_plan(np.where(outlier, span, offset).astype(np.int32), span + 1, clo, escape=True)
    plan.raw = x[outlier].astype('<i4').tobytes()
    plan.bits += 8.0 * len(plan.raw)
    return plan


def _table_plan(index: np.ndarray, alphabet: int, lo: int, escape: bool) -> _ChannelPlan:
    """Pick the cheapest table (histogram, Laplace, Gaussian) by exact payload + side-info bits."""
    group = _group_size(alphabet, index.size)
    counts = _counts(index, alphabet)
    split = _split_symbol(counts, group)  # (m, flag group, value group) or None
    head_group = split[2] if split else group
    head = _side_head(MODE_HIST | (_FLAG_ESCAPE if escape else 0), lo, alphabet - escape, head_group, split)
    side, table, bits = _hist_candidate(counts, head)
    if not escape and alphabet > _MIN_PARAMETRIC_ALPHABET:  # below, a histogram is as small as the parameters
        for mode, fit, build in ((MODE_LAPLACE, _fit_laplace, _laplace_table),
                                 (MODE_GAUSS, _fit_gauss, _gauss_table)):
            params = fit(counts)
            candidate = build(alphabet, *params)
            if candidate is not None:
                cand_side = _side_head(mode, lo, alphabet, head_group, split) + _param_bytes(params)
                cand_bits = _payload_bits(counts, candidate) + 8.0 * len(cand_side)
                if cand_bits < bits:
                    side, table, bits = cand_side, candidate, cand_bits
    if split is None:
        streams = [IndexStream(table, group, *_group_indices(index, alphabet, group))]
        return _ChannelPlan(side=side, bits=bits, streams=streams)
    return _ChannelPlan(side=side, bits=bits, streams=_split_streams(index, table, *split))


def _side_head(kind: int, lo: int, alphabet: int, group: int, split: tuple | None) -> bytes:
    head = bytes([kind | (_FLAG_SPLIT if split else 0)]) + _svarint(lo) + _uvarint(alphabet) + bytes([group])
    return head + (_uvarint(split[0]) + bytes([split[1]]) if split else b'')


def _group_size(alphabet: int, n: int) -> int:
    group = 1
    while group < MAX_GROUP and group < n and alphabet ** (group + 1) <= GROUP_ALPHABET:
        group += 1
    return group


def _group_indices(index: np.ndarray, alphabet: int, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint symbols of `group` consecutive indices (first one most significant) and the leftover indices."""
    whole = index.size - index.size % group
    if group == 1:
        return index, index[:0]
    tuples = index[:whole].reshape(-1, group)
    joint = tuples[:, 0].copy()
    for j in range(1, group):
        joint *= alphabet
        joint += tuples[:, j]
    return joint, index[whole:]


def _counts(index: np.ndarray, alphabet: int) -> np.ndarray:
    if alphabet <= 8:  # a few vectorised compares beat np.bincount (about 4 ns per sample)
        return np.array([np.count_nonzero(index == v) for v in range(alphabet)], np.int64)
    return np.bincount(index, minlength=alphabet)


def _split_symbol(counts: np.ndarray, group: int) -> tuple[int, int, int] | None:
    """(dominant index m, flag group, value group) when coding "is it the dominant index?" flags first decodes faster.

    Decoding one ANS symbol costs about 7 + 3 * log2(table size) ns (binary search), so a channel that is mostly
    one value is faster as cheap binary flags plus the few other values. Speed only: the rate is the same.
    """
    alphabet = counts.size
    if alphabet < 3:
        return None
    n = float(counts.sum())
    m = int(np.argmax(counts))
    others = n - float(counts[m])
    v_group = _group_size(alphabet - 1, max(int(others), 1))
    direct = n * (7.0 / group + 3.0 * np.log2(alphabet))
    split = n * (7.0 / _FLAG_GROUP + 3.0) + others * (7.0 / v_group + 3.0 * np.log2(alphabet - 1))
    return (m, _FLAG_GROUP, v_group) if split < 0.8 * direct else None


def _split_streams(index: np.ndarray, table: np.ndarray, m: int, flag_group: int, v_group: int) -> list:
    not_m = index != m
    values = index[np.flatnonzero(not_m)]
    values -= values > m  # the value table has no entry m
    value_table = np.delete(table, m)
    whole = index.size - index.size % flag_group
    if flag_group == 8:  # packbits is exactly the base-2 joint code, about 10x faster than the generic loop
        flag_joint = np.packbits(not_m[:whole]).astype(np.int32)
    else:
        flag_joint = _group_indices(not_m[:whole].astype(np.int32), 2, flag_group)[0]
    flags = IndexStream(_flag_table(table, m), flag_group, flag_joint, not_m[whole:].astype(np.int32))
    return [flags, IndexStream(value_table, v_group, *_group_indices(values, value_table.size, v_group))]


def _flag_table(table: np.ndarray, m: int) -> np.ndarray:
    """[weight of m, weight of everything else]; math.fsum is correctly rounded, so it is platform independent."""
    return np.array([table[m], math.fsum(np.delete(table, m))], np.float64)


# ---------------------------------------------------------------------------------------------- histogram model
def _hist_candidate(counts: np.ndarray, head: bytes) -> tuple[bytes, np.ndarray, float]:
    """Histogram with counts rescaled to a few totals; keep the one with the fewest payload + side bits."""
    used = np.flatnonzero(counts)
    exact = counts[used].astype(np.float64)
    n = float(exact.sum())
    totals = np.array([t for t in _HIST_TOTALS if t < n], np.float64)
    options = np.vstack([exact, np.maximum(np.rint(exact * (totals[:, None] / n)), 1.0)])  # row 0: exact counts
    payload = n * np.log2(options.sum(axis=1)) - np.log2(options) @ exact
    side = 8.0 * (len(head) + counts.size - used.size + _uvarint_lengths(options).sum(axis=1))  # zeros: 1 byte
    best = int(np.argmin(payload + side))
    table = np.zeros(counts.size, np.float64)
    table[used] = options[best]
    return head + _uvarints(table.astype(np.int64)), table, float(payload[best] + side[best])


def _payload_bits(counts: np.ndarray, weights: np.ndarray) -> float:
    """Ideal code length of the histogram `counts` under `weights` (constriction's 2**-24 floor included)."""
    total = float(weights.sum())
    if not np.isfinite(total) or total <= 0:
        return float('inf')
    used = counts > 0
    prob = np.maximum(weights[used] / total, 2.0 ** -24)
    return float(-np.sum(counts[used] * np.log2(prob)))


# ---------------------------------------------------------------------------------------------- parametric models
def _fit_laplace(counts: np.ndarray) -> tuple:
    """ML fit of a two-sided geometric around the mode: p(m)=1, p(m-j)=a*rl**(j-1), p(m+j)=b*rr**(j-1)."""
    m = int(np.argmax(counts))
    peak = float(counts[m])
    a, rl = _fit_tail(counts[:m][::-1], peak)
    b, rr = _fit_tail(counts[m + 1:], peak)
    return (m, a, rl, b, rr)


def _fit_tail(tail: np.ndarray, peak: float) -> tuple[float, float]:
    mass = float(tail.sum())
    if mass == 0:
        return 0.0, 0.0
    mean = float(np.dot(tail, np.arange(tail.size, dtype=np.float64))) / mass  # mean of (distance - 1)
    ratio = float(np.float32(mean / (1.0 + mean)))
    first = float(np.float32(mass / peak * (1.0 - ratio)))
    return first, ratio


def _fit_gauss(counts: np.ndarray) -> tuple:
    """Moment fit of p(m+d) = q**(d*d) * s**d, i.e. exp(-(d - (mu - m))**2 / (2 var)) up to a constant."""
    k = np.arange(counts.size, dtype=np.float64)
    n = float(counts.sum())
    mu = float(np.dot(counts, k)) / n
    var = max(float(np.dot(counts, (k - mu) ** 2)) / n, _MIN_GAUSS_VAR)
    m = min(max(int(round(mu)), 0), counts.size - 1)
    q = float(np.float32(np.exp(-0.5 / var)))
    s = float(np.float32(np.exp((mu - m) / var)))
    return (m, q, s)


def _param_bytes(params: tuple) -> bytes:
    return _uvarint(params[0]) + np.asarray(params[1:], dtype='<f4').tobytes()


def _laplace_table(alphabet: int, m: int, a: float, rl: float, b: float, rr: float) -> np.ndarray | None:
    if not (_valid_scale(a) and _valid_scale(b) and _valid_ratio(rl) and _valid_ratio(rr)) or not 0 <= m < alphabet:
        return None
    table = np.zeros(alphabet, np.float64)
    table[m] = 1.0
    table[:m] = _geometric(a, rl, m)[::-1]
    table[m + 1:] = _geometric(b, rr, alphabet - m - 1)
    return table


def _gauss_table(alphabet: int, m: int, q: float, s: float) -> np.ndarray | None:
    if not (2.0 ** -13 <= q < 1.0 and 2.0 ** -12 <= s <= 2.0 ** 12) or not 0 <= m < alphabet:
        return None
    steps = max(m, alphabet - m - 1)
    qpow = _geometric(q, q * q, steps)  # q**(2d-1), d = 1..steps
    table = np.zeros(alphabet, np.float64)
    table[m] = 1.0
    table[m + 1:] = cut_tail(np.cumprod(qpow * s))[:alphabet - m - 1]
    table[:m] = cut_tail(np.cumprod(qpow / s))[:m][::-1]
    return table if np.isfinite(table).all() else None  # only parameters no encoder writes can overflow


def _valid_scale(v: float) -> bool:
    return v == 0.0 or _CUT <= v <= 2.0 ** 32


def _valid_ratio(v: float) -> bool:
    return v == 0.0 or _CUT <= v < 1.0


def _geometric(first: float, ratio: float, n: int) -> np.ndarray:
    """[first, first*ratio, first*ratio**2, ...] by sequential products (exact, platform independent)."""
    factors = np.full(n, ratio, np.float64)
    if n:
        factors[0] = first
    return cut_tail(np.cumprod(factors))


def cut_tail(seq: np.ndarray) -> np.ndarray:
    """Zero a product sequence from its first entry below _CUT: later entries may be subnormal (FTZ-dependent)."""
    small = seq < _CUT
    if small.any():
        seq[int(np.argmax(small)):] = 0.0
    return seq


# --------------------------------------------------------------------------------------------------- ANS coding
# The table layer, public for the other coders of the codec (prior.py): an ANS stack (`ans_coder`, `ans_words`),
# index streams pushed and popped against a weight table (`IndexStream`, `push_stream`, `pop_indices`) and the
# determinism rule for tables built from products (`cut_tail`). The rules stated at the top of this module hold for
# every table passed in.
def _constriction():
    try:
        import constriction  # lazy: the plugin must load without it (its submodules are attributes only)
    except ImportError as exc:
        raise ImportError('the Python package "constriction" is needed for entropy coding') from exc
    return constriction


def ans_coder(words: np.ndarray | None = None):
    coder_type = _constriction().stream.stack.AnsCoder
    return coder_type() if words is None else coder_type(words)


def _categorical(weights: np.ndarray):
    return _constriction().stream.model.Categorical(weights, perfect=False)


def _joint_table(table: np.ndarray, group: int) -> np.ndarray:
    """Product table of `group` i.i.d. symbols, first symbol most significant; entries below _CUT become 0."""
    base = table / table.max()
    base[base < _CUT] = 0.0
    joint = base
    for _ in range(group - 1):
        joint = np.multiply.outer(joint, base).ravel()
        joint[joint < _CUT] = 0.0  # products of entries >= _CUT are normal numbers: this test is exact
    return joint


def index_stream_group(alphabet: int, n: int) -> int:
    """How many indices of an `alphabet`-entry table are coded as one ANS symbol (speed only, not the rate)."""
    return _group_size(alphabet, n)


def index_stream(index: np.ndarray, table: np.ndarray) -> IndexStream:
    """The IndexStream of int32 `index` into `table`, grouped as index_stream_group says (for other coders)."""
    group = index_stream_group(table.size, index.size)
    return IndexStream(table, group, *_group_indices(index, table.size, group))


def push_stream(coder, stream: IndexStream) -> None:
    """Push one index stream; the trailing single indices go first because the stack pops them last."""
    if stream.rest.size:
        coder.encode_reverse(np.ascontiguousarray(stream.rest), _categorical(_joint_table(stream.table, 1)))
    if stream.joint.size:
        coder.encode_reverse(stream.joint, _categorical(_joint_table(stream.table, stream.group)))


def ans_words(coder) -> bytes:
    words = np.asarray(coder.get_compressed(), dtype=np.uint32)
    return words.astype('<u4').tobytes()


def pop_indices(coder, table: np.ndarray, group: int, out: np.ndarray) -> None:
    """Decode len(out) table indices into `out` (int32)."""
    n = out.size
    if group == 1:  # (the digit table of one symbol is the identity: no lookup)
        out[:] = coder.decode(_categorical(_joint_table(table, 1)), n)
        return
    whole = n - n % group
    if whole:
        joint = coder.decode(_categorical(_joint_table(table, group)), whole // group)
        np.take(_digit_table(table.size, group), joint, axis=0, out=out[:whole].reshape(-1, group))
    if n > whole:
        out[whole:] = coder.decode(_categorical(_joint_table(table, 1)), n - whole)


@functools.lru_cache(maxsize=64)
def _digit_table(alphabet: int, group: int) -> np.ndarray:
    """Row j holds the `group` base-`alphabet` digits of j, most significant first (a lookup beats divmod)."""
    codes = np.arange(alphabet ** group, dtype=np.int32)
    digits = np.empty((codes.size, group), np.int32)
    for j in range(group - 1, -1, -1):
        codes, digits[:, j] = np.divmod(codes, alphabet)
    digits.flags.writeable = False  # shared by the cache
    return digits


# ------------------------------------------------------------------------------------------------------ decoding
def _split_stream(data) -> tuple:
    buf = data if isinstance(data, bytes) else memoryview(data).cast('B')
    if len(buf) < _HEAD.size + _CRC.size or bytes(buf[:2]) != MAGIC:
        raise FormatError('not an entropy-coded channel stream (bad magic or too short)')
    magic, version, flags, n_ch, n, side_len, n_words, raw_len = _HEAD.unpack_from(buf, 0)
    if version != VERSION:
        raise FormatError(f'entropy stream version {version} is not supported (this reader knows version {VERSION})')
    end = _HEAD.size + side_len + 4 * n_words + raw_len
    if end + _CRC.size != len(buf):
        raise FormatError(f'entropy stream is truncated or has extra bytes ({len(buf)} bytes, header says '
                          f'{end + _CRC.size})')
    if _CRC.unpack_from(buf, end)[0] != zlib.crc32(buf[:end]):
        raise FormatError('entropy stream is corrupt (checksum mismatch)')
    if flags & ~_FLAG_SIDE_ZLIB:
        raise FormatError(f'entropy stream uses unknown flags {flags:#x}')
    pos = _HEAD.size
    side = bytes(buf[pos:pos + side_len])
    words = np.frombuffer(buf, '<u4', count=n_words, offset=pos + side_len).astype(np.uint32)
    raw = bytes(buf[pos + side_len + 4 * n_words:end])
    return n_ch, n, flags, side, words, raw


def _decode_body(n_ch: int, n: int, flags: int, side: bytes, words: np.ndarray, raw: bytes) -> np.ndarray:
    records = _read_records(n_ch, flags, side)
    raw_reader = _Reader(raw)
    coder = ans_coder(words) if words.size else None
    out = np.empty((n_ch, n), np.int32)
    for record, row in zip(records, out):
        _decode_record(record, raw_reader, coder, row)
    if not raw_reader.done() or (coder is not None and not coder.is_empty()):
        raise FormatError('entropy stream is corrupt (data left over after the last channel)')
    return out


@dataclass
class _Record:
    """One channel's parsed side info."""

    kind: int
    lo: int
    width: int = 0  # raw mode
    table: np.ndarray | None = None  # table modes: marginal weights, escape entry last
    group: int = 1
    split: tuple[int, int] | None = None  # (m, flag group)

    @property
    def escape(self) -> int:
        return int(bool(self.kind & _FLAG_ESCAPE))


def _read_records(n_ch: int, flags: int, side: bytes) -> list:
    if flags & _FLAG_SIDE_ZLIB:
        inflater = zlib.decompressobj()
        side = inflater.decompress(side, n_ch * _MAX_RECORD_BYTES + 1)  # a zlib bomb stops here
        if not inflater.eof or inflater.unused_data:
            raise FormatError('entropy stream side info is corrupt (its zlib stream is too long or incomplete)')
    if n_ch * 2 > len(side):
        raise FormatError(f'entropy stream side info is too short for {n_ch} channels')
    reader = _Reader(side)
    records = [_read_record(reader) for _ in range(n_ch)]
    if not reader.done():
        raise FormatError('entropy stream is corrupt (side info left over after the last channel)')
    return records


def _read_record(reader: _Reader) -> _Record:
    kind = reader.u8()
    record = _Record(kind, reader.svarint())
    mode = kind & _MODE_MASK
    if kind == MODE_CONST:
        _check_range(record.lo, record.lo)
    elif kind == MODE_RAW:
        record.width = reader.u8()
        if not 1 <= record.width <= 32:
            raise FormatError(f'entropy stream has a raw channel {record.width} bits wide (1 to 32 allowed)')
    elif mode in (MODE_HIST, MODE_LAPLACE, MODE_GAUSS) and not kind & ~_KNOWN_KIND_BITS and (
            mode == MODE_HIST or not kind & _FLAG_ESCAPE):
        record.table, record.group, record.split = _read_table(reader, kind)
        _check_range(record.lo, record.lo + record.table.size - record.escape - 1)
    else:
        raise FormatError(f'entropy stream has an unknown channel mode {kind:#x}')
    return record


def _decode_record(record: _Record, raw_reader: _Reader, coder, out: np.ndarray) -> None:
    """Decode one channel's samples into the int32 row `out`."""
    if record.kind == MODE_CONST:
        out[:] = record.lo
    elif record.kind == MODE_RAW:
        values = _unpack_bits(raw_reader.take((out.size * record.width + 7) // 8), out.size, record.width)
        values += record.lo
        _check_range(int(values.min(initial=record.lo)), int(values.max(initial=record.lo)))
        out[:] = values
    else:
        _decode_table_channel(record, raw_reader, coder, out)


def _decode_table_channel(record: _Record, raw_reader: _Reader, coder, out: np.ndarray) -> None:
    if coder is None:
        raise FormatError('entropy stream is corrupt (no coded data for a coded channel)')
    if record.split is None:
        pop_indices(coder, record.table, record.group, out)
    else:
        _pop_split(coder, record.table, record.group, record.split, out)
    lo = np.int32(record.lo)  # adding cannot overflow: lo + (table size - 1) was checked to be an int32
    if record.escape:
        outlier = out == record.table.size - 1
        count = int(np.count_nonzero(outlier))
        out += lo
        out[outlier] = np.frombuffer(raw_reader.take(4 * count), '<i4')
    else:
        out += lo


def _pop_split(coder, table: np.ndarray, group: int, split: tuple[int, int], out: np.ndarray) -> None:
    m, flag_group = split
    where = np.flatnonzero(_pop_flags(coder, _flag_table(table, m), flag_group, out.size))  # index != m
    out[:] = m
    if where.size:
        values = np.empty(where.size, np.int32)
        pop_indices(coder, np.delete(table, m), group, values)
        values += values >= m
        out[where] = values


def _pop_flags(coder, table: np.ndarray, group: int, n: int) -> np.ndarray:
    """Decode n binary flags as a bool array (packbits order for the usual group of 8: fast)."""
    whole = n - n % group
    if group != 8:
        flags = np.empty(n, np.int32)
        pop_indices(coder, table, group, flags)
        return flags.astype(bool)
    flags = np.empty(n, np.uint8)
    if whole:
        joint = coder.decode(_categorical(_joint_table(table, group)), whole // 8).astype(np.uint8)
        flags[:whole] = np.unpackbits(joint)  # inverse of the packbits in _split_streams
    if n > whole:
        flags[whole:] = coder.decode(_categorical(_joint_table(table, 1)), n - whole)
    return flags.view(bool)


def _read_table(reader: _Reader, kind: int) -> tuple[np.ndarray, int, tuple[int, int] | None]:
    mode, escape = kind & _MODE_MASK, int(bool(kind & _FLAG_ESCAPE))
    core, group = reader.uvarint(), reader.u8()
    alphabet = core + escape
    split = (reader.uvarint(), reader.u8()) if kind & _FLAG_SPLIT else None
    if not (1 <= core <= MAX_ALPHABET and alphabet >= 2 and 1 <= group <= MAX_GROUP):
        raise FormatError(f'entropy stream has an invalid table (size {core}, group {group})')
    coded = alphabet if split is None else alphabet - 1
    if group > 1 and coded ** group > GROUP_ALPHABET:
        raise FormatError(f'entropy stream groups {group} symbols of a {coded}-symbol table (too large)')
    if split is not None and not (alphabet >= 3 and split[0] < alphabet and 1 <= split[1] <= 10):
        raise FormatError(f'entropy stream has an invalid flag split {split} for a {alphabet}-symbol table')
    if mode == MODE_HIST:
        table = reader.uvarints(alphabet).astype(np.float64)
    else:
        m = reader.uvarint()
        params = tuple(float(v) for v in reader.floats(4 if mode == MODE_LAPLACE else 2))
        table = (_laplace_table if mode == MODE_LAPLACE else _gauss_table)(alphabet, m, *params)
        if table is None:
            raise FormatError('entropy stream has invalid model parameters')
    if not table.any():
        raise FormatError('entropy stream has an empty probability table')
    return table, group, split


def _check_range(lo: int, hi: int) -> None:
    if lo < _INT32.min or hi > _INT32.max:
        raise FormatError('entropy stream decodes to values outside the int32 range')


class _Reader:
    """Bounds-checked cursor over side info or raw bytes; every overrun is a FormatError."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def done(self) -> bool:
        return self.pos == len(self.data)

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise FormatError('entropy stream is truncated (field runs past the end)')
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def floats(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), '<f4').astype(np.float64)

    def uvarint(self) -> int:
        value = shift = 0
        for shift in range(0, 35, 7):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise FormatError('entropy stream has an over-long varint')

    def svarint(self) -> int:
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def uvarints(self, count: int) -> np.ndarray:
        seg = np.frombuffer(self.data, np.uint8, count=min(5 * count, len(self.data) - self.pos), offset=self.pos)
        ends = np.flatnonzero(seg < 0x80)[:count]
        if ends.size < count:
            raise FormatError('entropy stream is truncated (varint runs past the end)')
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts + 1
        if lengths.max() > 5:
            raise FormatError('entropy stream has an over-long varint')
        values = np.zeros(count, np.int64)
        for j in range(int(lengths.max())):
            sel = lengths > j
            values[sel] |= (seg[starts[sel] + j].astype(np.int64) & 0x7F) << (7 * j)
        self.pos += int(ends[-1]) + 1
        return values


# ------------------------------------------------------------------------------------------- varints, bit fields
def _svarint(value: int) -> bytes:
    return _uvarint((value << 1) ^ (value >> 63))  # zigzag: small magnitudes -> small codes


def _uvarint_lengths(values: np.ndarray) -> np.ndarray:
    lengths = np.ones(values.shape, np.int64)
    for bits in (7, 14, 21, 28):
        lengths += values >= (1 << bits)
    return lengths


def _uvarints(values: np.ndarray) -> bytes:
    """Unsigned LEB128 of non-negative values < 2**35, vectorised."""
    if len(values) <= 64:  # numpy's per-call overhead dominates for short arrays
        return b''.join(_uvarint(int(v)) for v in values)
    values = np.asarray(values, np.int64)
    lengths = _uvarint_lengths(values)
    out = np.zeros(int(lengths.sum()), np.uint8)
    starts = np.cumsum(lengths) - lengths
    for j in range(int(lengths.max()) if values.size else 0):
        sel = lengths > j
        more = np.where(lengths[sel] > j + 1, 0x80, 0)
        out[starts[sel] + j] = ((values[sel] >> (7 * j)) & 0x7F) | more
    return out.tobytes()


def _pack_bits(values: np.ndarray, width: int) -> bytes:
    """Non-negative int64 values as `width`-bit fields, least significant bit first, little-endian bit order."""
    shifts = np.arange(width, dtype=np.int64)
    bits = ((values[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bits.ravel(), bitorder='little').tobytes()


def _unpack_bits(data: bytes, n: int, width: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, np.uint8), count=n * width, bitorder='little')
    weights = np.int64(1) << np.arange(width, dtype=np.int64)
    return bits.reshape(n, width).astype(np.int64) @ weights
