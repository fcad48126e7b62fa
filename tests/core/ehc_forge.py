"""Take a .ehc file apart and put it back together with any part edited and every checksum recomputed, the way
the writer computes them: what a buggy writer or an attacker can produce. Used by the hostile-file tests and the
fuzz test; `EhcParts.read(path).build()` gives back the original bytes (checked in test_decoder_validation.py).
"""
import copy
import json
import struct
import zlib
from dataclasses import dataclass, field

from enmap_compress.plugin.core.headerdict import DICTIONARIES
from enmap_compress.plugin.core.tiling import tile_grid

PREFIX = struct.Struct('<8sHHII')
TRAILER = struct.Struct('<QQII8s')  # 1.x, 2.x: index offset, index length, index CRC, trailer CRC, end magic
SHORT_TRAILER = struct.Struct('<QII8s')  # 3.x: index length, index CRC, trailer CRC, end magic
MAGIC = b'\x89EHC\r\n\x1a\n'
END_MAGIC = b'\x89EHCEND\n'


def dumps(obj) -> bytes:
    """Compact JSON as the writer makes it; text the writer could not encode (a lone surrogate) as \\u escapes."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(',', ':'), allow_nan=True).encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(',', ':'), allow_nan=True).encode()


def _inflate(data, version):
    """Header or index JSON as stored: zlib before 2.0, raw DEFLATE with the major version's preset dictionary
    since."""
    if tuple(version) >= (2, 0):
        return json.loads(zlib.decompressobj(-15, DICTIONARIES[version[0]]).decompress(data))
    return json.loads(zlib.decompress(data))


def deflate(data: bytes, version) -> bytes:
    if tuple(version) >= (2, 0):  # 3.x writers keep the shorter of two strategies
        strategies = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED) if version[0] >= 3 else (zlib.Z_DEFAULT_STRATEGY,)
        streams = []
        for strategy in strategies:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, strategy, DICTIONARIES[version[0]])
            streams.append(compressor.compress(data) + compressor.flush())
        return min(streams, key=len)
    return zlib.compress(data, 6)


def index_span(data: bytes, version) -> tuple:
    """(offset, length) of the stored index, as the trailer of a file of `version` gives them."""
    if tuple(version) >= (3, 0):
        length = SHORT_TRAILER.unpack_from(data, len(data) - SHORT_TRAILER.size)[0]
        return len(data) - SHORT_TRAILER.size - length, length
    return TRAILER.unpack_from(data, len(data) - TRAILER.size)[:2]


def _grid_metas(header) -> list:
    """The tile metas a 3.x index leaves out: the header's tile grid, chunk by chunk (none for a grid of a million
    tiles or more: a crafted header's; no test file has one)."""
    try:
        width, height, size = header['raster']['width'], header['raster']['height'], header['codec']['tile_size']
        if -(-width // size) * -(-height // size) >= 10 ** 6:
            return []
        return [tile.as_dict() for tile in tile_grid(width, height, size)]
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return []


def _leave_out_derived(entries: list, header, start: int) -> list:
    """A 3.x index's chunk entries as the writer stores them: without an offset where the chunk before ends (the
    first: where the payload area starts) and without a meta that is its tile of the header's grid."""
    metas, out, end = _grid_metas(header), [], start
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(type(entry.get(k)) is int for k in ('offset', 'length')):
            return out + entries[i:]  # readers derive nothing from here on
        out.append({k: v for k, v in entry.items() if not (k == 'offset' and v == end or
                                                            k == 'meta' and i < len(metas) and v == metas[i])})
        end = entry['offset'] + entry['length']
    return out


def read_index(data: bytes, version, header) -> dict:
    """The index of a file with every chunk entry complete (3.x: the offsets and metas it leaves out put back)."""
    offset, length = index_span(data, version)
    index = _inflate(data[offset:offset + length], version)
    if tuple(version) >= (3, 0):
        metas, end = _grid_metas(header), PREFIX.size + PREFIX.unpack_from(data, 0)[3]
        for i, entry in enumerate(index['chunks']):
            entry.setdefault('offset', end)
            entry.setdefault('meta', metas[i] if i < len(metas) else None)
            end = entry['offset'] + entry['length']
    return index


def trailer(offset: int, index_raw: bytes, version) -> bytes:
    """The trailer after an index stored at `offset`, with its CRCs."""
    head = struct.pack('<QI', len(index_raw), zlib.crc32(index_raw)) if tuple(version) >= (3, 0) else \
        struct.pack('<QQI', offset, len(index_raw), zlib.crc32(index_raw))
    return head + struct.pack('<I', zlib.crc32(head)) + END_MAGIC


def varint(value: int) -> bytes:
    """Zigzag LEB128, as docs/format.md describes it."""
    number, out = 2 * value if value >= 0 else -2 * value - 1, bytearray()
    while number >= 0x80:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    return bytes(out + bytes([number]))


def chunk_record(meta: dict, payload: bytes) -> bytes:
    """A chunk as stored from container version 1.1 on: u8 count, the meta's values (keys sorted) as varints, the
    payload."""
    return bytes([len(meta)]) + b''.join(varint(meta[k]) for k in sorted(meta)) + payload


def split_record(stored: bytes) -> tuple:
    """(recorded values, payload) of a 1.1 chunk record."""
    values, pos = [], 1
    for _ in range(stored[0]):
        number = shift = 0
        while True:
            byte = stored[pos]
            pos += 1
            number |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        values.append(number // 2 if number % 2 == 0 else -(number + 1) // 2)
    return values, stored[pos:]


@dataclass
class Chunk:
    meta: dict
    payload: bytes
    record: bytes = None  # the stored bytes, when a test wants them different from what meta + payload give


@dataclass
class EhcParts:
    version: tuple
    header: dict
    chunks: list
    blobs: dict
    footer: dict
    index_extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path):
        data = open(path, 'rb').read()
        _magic, major, minor, header_len, _crc = PREFIX.unpack_from(data, 0)
        header = _inflate(data[20:20 + header_len], (major, minor))
        index = read_index(data, (major, minor), header)
        chunks = []
        for entry in index['chunks']:
            stored = data[entry['offset']:entry['offset'] + entry['length']]
            if (major, minor) >= (1, 1):
                stored = split_record(stored)[1]
            chunks.append(Chunk(entry['meta'], stored))
        blobs = {name: data[e['offset']:e['offset'] + e['length']] for name, e in index['blobs'].items()}
        extra = {k: v for k, v in index.items() if k not in ('chunks', 'blobs', 'footer')}
        return cls((major, minor), header, chunks, blobs, index['footer'], extra)

    def copy(self):
        return copy.deepcopy(self)

    def build(self, header_json=None, header_raw=None, index_edit=None, index_json=None, index_raw=None,
              major=None, minor=None) -> bytes:
        """The file's bytes. header_json / index_json: the JSON text to store instead of the dicts'; header_raw /
        index_raw: the stored (zlib) bytes instead; index_edit(index): edit the index dict after the offsets,
        lengths and CRCs were filled in (so a test can break them)."""
        major = self.version[0] if major is None else major
        minor = self.version[1] if minor is None else minor
        if header_raw is None:
            header_raw = deflate(dumps(self.header) if header_json is None else header_json, (major, minor))
        out = bytearray(PREFIX.pack(MAGIC, major, minor, len(header_raw), 0))
        crc = zlib.crc32(header_raw, zlib.crc32(bytes(out[8:16])))
        out = bytearray(PREFIX.pack(MAGIC, major, minor, len(header_raw), crc)) + header_raw
        entries = []
        for chunk in self.chunks:
            stored = chunk.record
            if stored is None:
                stored = chunk_record(chunk.meta, chunk.payload) if (major, minor) >= (1, 1) else chunk.payload
            entries.append({'offset': len(out), 'length': len(stored), 'crc32': zlib.crc32(stored),
                            'meta': chunk.meta})
            out += stored
        blobs = {}
        for name, payload in self.blobs.items():
            blobs[name] = {'offset': len(out), 'length': len(payload), 'crc32': zlib.crc32(payload)}
            out += payload
        index = copy.deepcopy({'chunks': entries, 'blobs': blobs, 'footer': self.footer, **self.index_extra})
        if index_edit is not None:
            index_edit(index)  # in place
        if (major, minor) >= (3, 0) and isinstance(index.get('chunks'), list):
            index['chunks'] = _leave_out_derived(index['chunks'], self.header, PREFIX.size + len(header_raw))
        if index_raw is None:
            index_raw = deflate(dumps(index) if index_json is None else index_json, (major, minor))
        offset = len(out)
        out += index_raw
        out += trailer(offset, index_raw, (major, minor))
        return bytes(out)


def zlib_bomb(size: int, block: int = 1 << 20, version=(1, 1)) -> bytes:
    """A valid zlib stream of `size` zero bytes (a multiple of `block`), about size / 1000 bytes long, made
    without ever holding `size` bytes: after a full flush the compressor's output for the same block repeats.
    For version 2.0 and later a raw DEFLATE stream with the preset dictionary, as those files store it."""
    count = size // block
    if tuple(version) >= (2, 0):
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARIES[version[0]])
        zeros = bytes(block)
        first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        second = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        return first + second * (count - 1) + compressor.flush()
    compressor = zlib.compressobj(9)
    zeros = bytes(block)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    second = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()[:-4]  # the final empty block; its adler32 is for two blocks, replaced below
    assert first[2:] == second, 'the deflate output of a block after a full flush must repeat'
    adler = ((count * block) % 65521) << 16 | 1  # adler32 of n zero bytes: A = 1, B = n mod 65521
    return first + second * (count - 1) + end + struct.pack('>I', adler)


def nested_json(depth: int) -> bytes:
    return b'{"a":' * depth + b'1' + b'}' * depth


COMPACT = 16  # head bytes 16 ... 31: a compactly framed payload (3.x files)


def uvarint(value: int) -> bytes:
    """Unsigned LEB128, as docs/format.md describes it."""
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(out + bytes([value]))


def read_uvarint(data: bytes, pos: int) -> tuple:
    value = shift = 0
    while data[pos] >= 0x80:
        value |= (data[pos] & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
    return value | data[pos] << shift, pos + 1


def split_payload(payload: bytes) -> tuple:
    """(version, sections) of a tile payload: u8 version, u16 count, count u32 lengths, the sections; or compactly
    (version = the head byte COMPACT + 8 * has samples + the other sections' count) varint lengths but the last."""
    if payload[0] >= COMPACT:
        lengths, offset = [], 1
        for _ in range((payload[0] & 7) + (payload[0] >> 3 & 1) - 1):
            length, offset = read_uvarint(payload, offset)
            lengths.append(length)
        lengths.append(len(payload) - offset - sum(lengths))
    else:
        count = struct.unpack_from('<H', payload, 1)[0]
        lengths, offset = struct.unpack_from(f'<{count}I', payload, 3), 3 + 4 * count
    sections = []
    for length in lengths:
        sections.append(payload[offset:offset + length])
        offset += length
    return payload[0], sections


def join_payload(version: int, sections: list) -> bytes:
    """The tile payload of `split_payload`'s parts (a compact head's count follows the sections)."""
    if version >= COMPACT:
        has_samples = version >> 3 & 1
        head = COMPACT + 8 * has_samples + (len(sections) - has_samples) % 8
        return bytes([head]) + b''.join(uvarint(len(s)) for s in sections[:-1]) + b''.join(sections)
    return struct.pack('<BH', version, len(sections)) + b''.join(struct.pack('<I', len(s)) for s in sections) + \
        b''.join(sections)
