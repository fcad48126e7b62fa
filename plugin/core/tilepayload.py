"""The payload of one tile's chunk: length-prefixed sections (docs/format.md, "Chunk payloads").

u8 version, u16 section count, a u32 length per section, then the sections back to back, in this order: mask,
latent, [extra bands], [residual, checksum], [samples]. Which of the optional ones a tile has follows from its
file's codec info (TileCoder), except the sample section, which the version states: 2 has none, 3 has one last,
4 (error bounds other than a plain MAX_ERROR) always has one last, possibly empty.

Compact framing (container 3.x files, whose chunk CRC covers every byte of the payload): one head byte
COMPACT + 8 * (a sample section follows) + the number of other sections, then the length of every section but the
last as a varint (varint.py), then the sections; 2 bytes before a lossy tile's mask instead of 11.
"""
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import FormatError
from .varint import read_uvarint, uvarint

VERSION = 2  # 2: spatially predicted latent and extra-band sections
VERSION_SAMPLES = 3  # 3: as 2, plus a last section of samples restored one by one (samples.py)
VERSION_BOUNDS = 4  # 4: as 3 (the last section may be empty), residuals under codec.error_bound (bounds.py)
COMPACT = 16  # head bytes 16 ... 31: compact framing (above); 16 + 8 marks a last sample section
_WITH_SAMPLES = 8


@dataclass(frozen=True)
class TileSections:
    """The sections of a tile; None: the tile has no such section."""

    mask: bytes  # its valid pixels (encode_mask)
    latent: bytes  # the model's latent (latent.LatentCoder)
    extra: bytes = None  # bands outside the model's band set: predicted (prediction.py) or spectral (spectral.py)
    residual: bytes = None  # the error-bound layer (bounds.py, residual.py)
    checksum: bytes = None  # CRC-32 of the exact reconstruction (checksum_section)
    samples: bytes = None  # samples restored one by one (samples.py)


def pack(sections, extended=False, compact=False):
    """A tile's payload: version 4 when `extended` (a bound other than a plain MAX_ERROR, or a layer coded in a way
    0.1.0 did not know), else version 3 when it has a sample section, else 2; older readers refuse what they
    cannot decode. `compact`: the compact framing (a container 3.x file's chunk; `extended` needs no mark there)."""
    parts = [s for s in (sections.mask, sections.latent, sections.extra, sections.residual, sections.checksum)
             if s is not None]
    if compact:
        head = COMPACT + len(parts) + (_WITH_SAMPLES if sections.samples else 0)
        parts += [sections.samples] if sections.samples else []
        return bytes([head]) + b''.join(uvarint(len(s)) for s in parts[:-1]) + b''.join(parts)
    if extended:
        version, parts = VERSION_BOUNDS, [*parts, sections.samples or b'']
    elif sections.samples is None:
        version = VERSION
    else:
        version, parts = VERSION_SAMPLES, [*parts, sections.samples]
    head = struct.pack('<BH', version, len(parts)) + b''.join(struct.pack('<I', len(s)) for s in parts)
    return head + b''.join(parts)


def is_compact(payload):
    """Whether a payload is framed compactly (its head byte is COMPACT or more)."""
    return payload[:1] >= bytes([COMPACT])


def unpack(payload, has_extra, bounded, compact=False):
    """TileSections of a payload whose file codes extra bands (`has_extra`) and an error-bound layer (`bounded`);
    `compact`: the file may frame its tiles compactly (container 3.x: the chunk CRC covers the payload)."""
    parts, samples = _split_compact(payload) if compact and is_compact(payload) else _split(payload)
    expected = 2 + has_extra + 2 * bounded
    if len(parts) != expected:
        raise FormatError(f'a tile payload holds {len(parts)} sections; the tiles of this file have {expected}')
    if bounded and len(parts[-1]) != 4:
        raise FormatError('a tile\'s checksum section is not 4 bytes long')
    mask, latent, *layers = parts
    extra = layers.pop(0) if has_extra else None
    residual, checksum = layers if bounded else (None, None)
    return TileSections(mask, latent, extra, residual, checksum, samples)


def _split_compact(payload):
    """_split of a compactly framed payload."""
    head = payload[0]
    count, has_samples = head & (_WITH_SAMPLES - 1), bool(head & _WITH_SAMPLES)
    if head >= 2 * COMPACT or count < 2:
        raise FormatError(f'compact tile payload head {head} is not supported; a newer EnMAP Compress wrote this file')
    lengths, pos = [], 1
    for _ in range(count + has_samples - 1):
        length, pos = read_uvarint(payload, pos, 'a tile payload')
        lengths.append(length)
    lengths.append(len(payload) - pos - sum(lengths))
    if lengths[-1] < 0:
        raise FormatError('a tile payload has an inconsistent length')
    parts = []
    for length in lengths:
        parts.append(payload[pos:pos + length])
        pos += length
    if has_samples and not parts[-1]:
        raise FormatError('a tile payload marks a sample section but holds none')
    return (parts[:-1], parts[-1]) if has_samples else (parts, None)


def _split(payload):
    """(sections before the sample section, the sample section or None) of a tile payload."""
    try:
        version, count = struct.unpack_from('<BH', payload, 0)
        if version not in (VERSION, VERSION_SAMPLES, VERSION_BOUNDS):
            raise FormatError(f'tile payload version {version} is not supported (expected {VERSION} to '
                              f'{VERSION_BOUNDS}); a newer EnMAP Compress wrote this file')
        lengths = struct.unpack_from(f'<{count}I', payload, 3)
    except struct.error as exc:
        raise FormatError('a tile payload is truncated') from exc
    offset, parts = 3 + 4 * count, []
    for length in lengths:
        parts.append(payload[offset:offset + length])
        offset += length
    if offset != len(payload):
        raise FormatError('a tile payload has an inconsistent length')
    if version in (VERSION_SAMPLES, VERSION_BOUNDS):
        if not parts:
            raise FormatError('a tile payload lacks its sample section')
        return parts[:-1], parts[-1] or None
    return parts, None


def encode_mask(valid):
    if valid.all():
        return b'\x01'
    if not valid.any():
        return b'\x00'
    return b'\x02' + zlib.compress(np.packbits(valid).tobytes(), 9)


def decode_mask(data, height, width):
    if data == b'\x01':
        return np.ones((height, width), bool)
    if data == b'\x00':
        return np.zeros((height, width), bool)
    size = (height * width + 7) // 8
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(data[1:], size + 1) if data[:1] == b'\x02' else b''
    except zlib.error as exc:
        raise FormatError('a tile mask is corrupt') from exc
    if len(packed) != size or not inflater.eof or inflater.unused_data:  # a bomb stops at size + 1 bytes
        raise FormatError(f'a tile mask is corrupt (not {height} x {width} packed bits)')
    return np.unpackbits(np.frombuffer(packed, np.uint8))[:height * width].reshape(height, width).astype(bool)


def checksum(values):
    """CRC-32 of the values as little-endian float64, read from the array's buffer (no bytes copy of a tile)."""
    return zlib.crc32(np.ascontiguousarray(values, dtype='<f8')) & 0xFFFFFFFF


def checksum_section(values):
    return struct.pack('<I', checksum(values))


def matches_checksum(section, values):
    return struct.unpack('<I', section)[0] == checksum(values)
