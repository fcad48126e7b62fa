"""The .ehc container: a JSON header, independently decodable chunks (one per tile), named blobs and an index.

Layout (docs/format.md, section "The .ehc container"): a fixed 20-byte prefix (magic, version, header length and
CRC), the deflated JSON header, the chunk and blob payloads back to back, the deflated JSON index
(offset, length, CRC-32 and meta of every chunk and blob, less what 3.x readers derive: offsets of back-to-back
chunks, tile metas of the header's grid; plus the footer dict) and a fixed trailer that locates the index (24 bytes
in 3.x, 32 in 1.x and 2.x). The index sits at the end so chunks stream to disk one at a time; the header never needs
rewriting because values known only at the end go into the footer.

The writer works on a temporary file in the claim folder of `path` (outputs.OutputClaim: one run per output,
cleaned up after killed runs) and moves it into place (os.replace) only when finalised, so `path` either holds a
complete file or is untouched. The reader checks magic, version, header, trailer and index on open
and each chunk's CRC when it is read; it seeks and reads per chunk and never loads the whole file.

The reader trusts nothing it has not checked (docs/format.md, "What the decoder validates"): sizes are checked
before anything is read or allocated from them, the header and index inflate to at most a set number of bytes
(zlib bombs stop there), JSON nesting is bounded before it is parsed, payloads must lie inside the payload area
without overlapping, and since version 1.1 every chunk carries its own meta (the codec's tile position), which
must equal the index's, so chunks cannot be swapped, duplicated or moved without the reader noticing.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import zlib

import numpy as np

from .errors import FormatError, OutputError
from .headerdict import DICTIONARIES
from .outputs import OutputClaim, write_error
from .tiling import grid_tile

MAGIC = b'\x89EHC\r\n\x1a\n'
END_MAGIC = b'\x89EHCEND\n'  # 8 bytes, like MAGIC
# (major, minor): readers refuse a major they do not know. 1.1: each chunk is stored with its own meta (a chunk
# record). 2.0: header and index are raw DEFLATE streams with the preset dictionary of headerdict.py (a small
# file's header shrinks about five times); a 1.x reader would misread them, hence the major version. 3.0: the
# compact header (docs/format.md, "Compact header") deflated with the 3.x dictionary; a 2.x reader would call it
# corrupt, so it refuses the file by its version and asks for an update.
VERSION = (3, 0)
READ_MAJORS = (1, 2, 3)
RECORDS_SINCE = (1, 1)  # files of this version and later store chunk records, older ones bare payloads
DICTIONARY_SINCE = (2, 0)  # files of this version and later deflate header and index with a preset dictionary
_PREFIX = struct.Struct('<8sHHII')  # magic, major, minor, header length, header CRC-32
_TRAILER = struct.Struct('<QQII8s')  # index offset, index length, index CRC-32, trailer CRC-32, end magic
_SHORT_TRAILER = struct.Struct('<QII8s')  # since 3.0: index length, index CRC-32, trailer CRC-32, end magic
SHORT_TRAILER_SINCE = (3, 0)  # the index ends where the trailer starts, so its offset need not be stored
DERIVED_ENTRIES_SINCE = (3, 0)  # index entries may leave out an offset and a tile meta the reader derives (_derive)
MAX_HEADER_BYTES = 1 << 20  # inflated; a header with every per-band table spelled out takes about 30 KB
DEFAULT_INDEX_LIMIT = 16 << 20  # inflated index, unless the caller bounds it from the header (the codec does)
MAX_META_VALUES = 255  # a chunk record: u8 n, n svarints (the meta's integers, keys sorted), then the payload
MAX_JSON_DEPTH = 32  # valid headers nest 4 deep; json.loads recurses once per level (RecursionError beyond ~1000)
MAX_JSON_DIGITS = 4300  # of an integer: Python reads decimal digits in quadratic time (3.11 and 3.9.14 stop at
# 4300; the 3.9 of QGIS 3.22 does not, and a 1 MiB header of one number took seconds a file, in the Browser too)


def file_size_bits(path) -> int:
    """Size of a file in bits (the numerator of a rate in bits per sample)."""
    return os.path.getsize(path) * 8


# ------------------------------------------------------------------------------------------------------- JSON
def to_json_bytes(obj, what: str = 'header') -> bytes:
    """Compact UTF-8 JSON of `obj`; numpy scalars and arrays become numbers and lists, anything else is a TypeError."""
    return json.dumps(_jsonable(obj, what), ensure_ascii=False, separators=(',', ':'), allow_nan=True).encode()


def _jsonable(obj, where: str):
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), where)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in 'biufU':
            raise TypeError(f'{where}: numpy arrays of dtype {obj.dtype} cannot be stored as JSON; '
                            'store binary data with add_blob()')
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, dict):
        return {_json_key(key, where): _jsonable(value, f'{where}[{key!r}]') for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(value, f'{where}[{i}]') for i, value in enumerate(obj)]
    hint = '; store binary data with add_blob()' if isinstance(obj, (bytes, bytearray, memoryview)) else ''
    raise TypeError(f'{where}: a {type(obj).__name__} is not JSON-serialisable{hint}')


def _json_key(key, where: str) -> str:
    if isinstance(key, (str, np.str_)):
        return str(key)
    raise TypeError(f'{where}: dict key {key!r} is not a string (JSON keys must be strings)')


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_ESCAPED_SURROGATE = re.compile(r'\\u[dD][89a-fA-F]')
_OPENERS, _CLOSERS = np.frombuffer(b'[{', np.uint8), np.frombuffer(b']}', np.uint8)


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        raise _DuplicateKeyError(f'the key {next(k for k, _v in pairs if k in seen or seen.add(k))!r} appears twice')
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip('-')) > MAX_JSON_DIGITS:
        raise ValueError(f'a number of {len(digits.lstrip("-"))} digits; at most {MAX_JSON_DIGITS}')
    return int(digits)


def json_depth(text: str) -> int:
    """How deeply [ and { nest outside strings, found without recursion (json.loads recurses once per level)."""
    skeleton = np.frombuffer(_JSON_STRING.sub('', text).encode('utf-8', 'replace'), np.uint8)
    steps = np.isin(skeleton, _OPENERS).astype(np.int64) - np.isin(skeleton, _CLOSERS)
    return int(np.cumsum(steps).max(initial=0))


def parse_json_text(data: bytes, what: str, path: str) -> dict:
    """A JSON object from UTF-8 bytes, or FormatError: nesting bounded before parsing, duplicate keys and text
    that cannot be written back as UTF-8 (lone surrogates) refused."""
    try:
        text = bytes(data).decode('utf-8')
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ValueError(f'nested more than {MAX_JSON_DEPTH} levels deep')
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
        if _ESCAPED_SURROGATE.search(text):
            json.dumps(value, ensure_ascii=False).encode('utf-8')  # a lone surrogate cannot be encoded
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise FormatError(f'{path}: the {what} is corrupt ({exc})') from exc
    if not isinstance(value, dict):
        raise FormatError(f'{path}: the {what} is not a JSON object')
    return value


def deflate_json(data: bytes, version: tuple = VERSION) -> bytes:
    """The stored form of a header or index JSON since 2.0: raw DEFLATE (RFC 1951) with the preset dictionary of
    the file's major version; since 3.0 the shorter stream of zlib's default and filtered strategies (an encoder
    choice: any DEFLATE stream inflates; filtered, fewer short matches, saves 3-4 of about 155 bytes on a 32 x 32 px
    header, about 9 on the index of a file of many tiles), before the default one, as 2.x writers made them."""
    streams = []
    for strategy in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED)[:2 if version[0] >= 3 else 1]:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, strategy, DICTIONARIES[version[0]])
        streams.append(deflater.compress(data) + deflater.flush())
    return min(streams, key=len)


def store_json(data: bytes, version: tuple = VERSION) -> bytes:
    """A header or index JSON as a file of `version` stores it (zlib before 2.0)."""
    return deflate_json(data, version) if tuple(version) >= DICTIONARY_SINCE else zlib.compress(data, 6)


def fixed_bytes(version: tuple = VERSION) -> int:
    """Bytes of a file of `version` outside its header, payloads and index: the prefix and the trailer."""
    return _PREFIX.size + _trailer_layout(version).size


def _trailer_layout(version: tuple) -> struct.Struct:
    return _SHORT_TRAILER if tuple(version) >= SHORT_TRAILER_SINCE else _TRAILER


def pack_trailer(offset: int, length: int, index_crc: int, version: tuple = VERSION) -> bytes:
    """The trailer of a file of `version` whose index of `length` bytes starts at `offset`."""
    if _trailer_layout(version) is _SHORT_TRAILER:
        head = struct.pack('<QI', length, index_crc)
    else:
        head = struct.pack('<QQI', offset, length, index_crc)
    return head + struct.pack('<I', zlib.crc32(head)) + END_MAGIC


def inflate(raw: bytes, limit: int, what: str, path: str, version: tuple = (1, 1)) -> bytes:
    """Decompress at most `limit` bytes (a zlib stream before 2.0, raw DEFLATE with the major version's preset
    dictionary since); a stream that holds more (a zlib bomb) or is damaged: FormatError."""
    inflater = zlib.decompressobj(-15, DICTIONARIES[version[0]]) if tuple(version) >= DICTIONARY_SINCE else \
        zlib.decompressobj()
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise FormatError(f'{path}: the {what} is corrupt ({exc})') from exc
    if len(data) > limit:
        raise FormatError(f'{path}: the {what} inflates to more than {limit} bytes, more than a valid file of this '
                          'size needs (a zlib bomb or a corrupt file)')
    if not inflater.eof or inflater.unused_data:
        raise FormatError(f'{path}: the {what} is corrupt (the zlib stream is incomplete or followed by other data)')
    return data


def _parse_json(raw: bytes, what: str, path: str, limit: int, version: tuple) -> dict:
    return parse_json_text(inflate(raw, limit, what, path, version), what, path)


# ----------------------------------------------------------------------------------------------------- writer
class EhcWriter:
    """Write a .ehc file: header first, then chunks and blobs as they come, the index and trailer last.

    Use as a context manager: leaving the block normally finalises (the file appears at `path`), leaving it by an
    exception aborts (nothing appears and the temporary file is removed). `footer_meta` is a dict written with
    the index; fill it any time before finalising (read back as `EhcReader.footer`).
    """

    def __init__(self, path, header: dict):
        if not isinstance(header, dict):
            raise TypeError(f'the header must be a dict, got {type(header).__name__}')
        self.path = os.path.abspath(os.fspath(path))
        self.footer_meta: dict = {}
        self._chunks: list = []
        self._blobs: dict = {}
        header_json = to_json_bytes(header)
        if len(header_json) > MAX_HEADER_BYTES:
            raise ValueError(f'the header takes {len(header_json)} bytes; readers accept at most {MAX_HEADER_BYTES}')
        header_raw = deflate_json(header_json)
        self._header = json.loads(header_json)  # as readers see it: the index leaves out what it derives (grid_meta)
        self._pos, self._done = 0, False
        self._file = self._temp = self._claim = None
        self._claim, self._file = _open_temp(self.path)
        self._temp = self._claim.temp
        prefix = _PREFIX.pack(MAGIC, VERSION[0], VERSION[1], len(header_raw), 0)
        crc = zlib.crc32(header_raw, zlib.crc32(prefix[8:16]))
        self._write(_PREFIX.pack(MAGIC, VERSION[0], VERSION[1], len(header_raw), crc) + header_raw)
        self._data_start = self._pos

    def __enter__(self) -> EhcWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.abort()  # an abandoned writer must not leave its temporary file behind

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def add_chunk(self, payload: bytes, meta: dict | None = None) -> int:
        """Append one independently decodable chunk; returns its number (0, 1, ...).

        It is stored as a record that starts with the meta's integer values, so the chunk itself says which tile it
        is (the index's meta must agree); meta values must therefore be integers."""
        where = f'meta of chunk {len(self._chunks)}'
        meta = _jsonable(meta or {}, where)
        if not isinstance(meta, dict):
            raise TypeError('chunk meta must be a dict')
        self._chunks.append(dict(self._store(meta_record(meta, where), payload), meta=meta))
        return len(self._chunks) - 1

    def add_blob(self, name: str, payload: bytes) -> None:
        """Store a named binary blob (for example a compressed nodata mask)."""
        if not isinstance(name, str) or not name:
            raise TypeError('a blob name must be a non-empty string')
        if name in self._blobs:
            raise ValueError(f'a blob named {name!r} was already added')
        self._blobs[name] = self._store(payload)

    def finalize(self) -> str:
        """Write index and trailer, flush to disk and move the file into place; returns the final path.

        Calling it again after success does nothing (so an explicit call inside a `with` block is fine).
        """
        if self._done:
            return self.path
        self._check_open()
        if not isinstance(self.footer_meta, dict):
            self.abort()
            raise TypeError(f'footer_meta must be a dict, got {type(self.footer_meta).__name__}')
        try:
            chunks = _leave_out_derived(self._chunks, self._header, self._data_start)
            index = {'chunks': chunks, 'blobs': self._blobs, 'footer': _jsonable(self.footer_meta, 'footer')}
            index_raw = deflate_json(to_json_bytes(index, 'index'))
            offset = self._pos
            self._write(index_raw)
            self._write(pack_trailer(offset, len(index_raw), zlib.crc32(index_raw)))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._claim.commit()
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        except BaseException:
            self.abort()
            raise
        self._file, self._temp, self._done = None, None, True
        _fsync_folder(os.path.dirname(self.path))
        return self.path

    def abort(self) -> None:
        """Discard everything written so far (idempotent); nothing appears at `path`."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        claim, self._claim, self._temp = getattr(self, '_claim', None), None, None
        if claim is not None:
            claim.abandon()

    # -- internals
    def _store(self, *parts) -> dict:
        """Write `parts` back to back as one payload; its index entry (offset, length, CRC-32 of all parts)."""
        entry = {'offset': self._pos, 'length': 0, 'crc32': 0}
        for part in parts:
            if not isinstance(part, (bytes, bytearray, memoryview)):
                raise TypeError(f'a payload must be bytes, got {type(part).__name__}')
            part = memoryview(part).cast('B')  # len() in bytes whatever the item size
            entry['length'] += len(part)
            entry['crc32'] = zlib.crc32(part, entry['crc32'])
            self._write(part)
        return entry

    def _write(self, data) -> None:
        self._check_open()
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        self._pos += len(data)

    def _check_open(self) -> None:
        if self._file is None:
            raise OutputError(f'The writer for {self.path} was already finalised or aborted.')


def _open_temp(path: str):
    """Claim `path` (outputs.OutputClaim: one run per output, cleanup after killed runs) and open its temporary
    file; OutputError when it cannot be written."""
    claim = OutputClaim(path)
    try:
        return claim, open(claim.temp, 'xb')  # closed by finalize or abort
    except OSError as exc:
        claim.abandon()
        raise write_error(path, exc) from exc


def _fsync_folder(folder: str) -> None:
    """Make the rename durable on POSIX; Windows has no directory handles to fsync (and NTFS journals renames)."""
    if os.name != 'posix':
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def meta_record(meta: dict, where: str = 'chunk meta') -> bytes:
    """The start of a chunk record: u8 count, then each integer value of `meta` (keys sorted) as a zigzag LEB128
    varint (as in the entropy stream); 4 to 9 bytes for a tile's x, y, w, h."""
    values = [meta[key] for key in sorted(meta)]
    if len(values) > MAX_META_VALUES or not all(_is_int(v) for v in values):
        raise TypeError(f'{where}: a chunk meta holds at most {MAX_META_VALUES} integers (it is recorded in the '
                        f'chunk), not {meta!r:.80}')
    out = bytearray([len(values)])
    for value in values:
        number = 2 * value if value >= 0 else -2 * value - 1
        while number >= 0x80:
            out.append(0x80 | (number & 0x7F))
            number >>= 7
        out.append(number)
    return bytes(out)


def _read_meta_record(data: bytes) -> tuple:
    """(the recorded integers, where the payload starts), or (None, 0) when the record is damaged."""
    if not data:
        return None, 0
    values, pos = [], 1
    for _ in range(data[0]):
        number = shift = 0
        while True:
            if pos >= len(data) or shift > 63:
                return None, 0
            byte = data[pos]
            pos += 1
            number |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        values.append(number // 2 if number % 2 == 0 else -(number + 1) // 2)
    return values, pos


# ----------------------------------------------------------------------------------------------------- reader
class EhcReader:
    """Read a .ehc file: `header`, `footer`, `chunk_count`, `chunk_meta(i)`, `read_chunk(i)`, `blob(name)`.

    Everything but the chunk and blob payloads is checked on open; each payload's CRC (and, since 1.1, the meta it
    records) is checked when read. index_limit: the most bytes the index may inflate to, or a function
    (header, payload area bytes) -> that limit, called before the index is read (the codec bounds the index by the
    tile count its header declares, and checks the header there); default DEFAULT_INDEX_LIMIT.
    """

    def __init__(self, path, index_limit=None):
        self.path = os.fspath(path)
        self._file = None
        try:
            self._file = open(self.path, 'rb')  # closed by close()
        except OSError as exc:
            raise FormatError(f'Cannot open {self.path}: {exc.strerror or exc}') from exc
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self.version, self.header, data_start = self._read_head()
            self._records = self.version >= RECORDS_SINCE
            offset, length, index_crc = self._read_trailer(data_start)
            limit = index_limit(self.header, offset - data_start) if callable(index_limit) else \
                (DEFAULT_INDEX_LIMIT if index_limit is None else index_limit)
            index = self._read_index(offset, length, index_crc, limit)
            if self.version >= DERIVED_ENTRIES_SINCE:
                _derive(index, data_start, self.header)
            self.index_bytes = length  # as stored
            self._chunks, self._blobs, self.footer = _checked_index(index, data_start, offset, self._records,
                                                                    self.path)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> EhcReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    @property
    def blob_names(self) -> list:
        return sorted(self._blobs)

    def chunk_meta(self, i: int) -> dict:
        return self._chunk(i)['meta']

    def stored_size(self, i: int) -> int:
        """Bytes chunk i takes in the file (its payload and, since 1.1, its meta): known before it is read."""
        return self._chunk(i)['length']

    def read_chunk(self, i: int) -> bytes:
        """The payload of chunk i, checked against its CRC-32 and (since 1.1) the meta it records."""
        entry = self._chunk(i)
        data = self._payload(entry, f'chunk {i}')
        return self._split_record(data, entry['meta'], i) if self._records else data

    def iter_chunks(self):
        """Yield (meta, payload) for every chunk in order, reading one at a time."""
        for i in range(len(self._chunks)):
            yield self.chunk_meta(i), self.read_chunk(i)

    def blob(self, name: str) -> bytes:
        if name not in self._blobs:
            raise KeyError(f'{self.path} has no blob named {name!r} (it has: {", ".join(self.blob_names) or "none"})')
        return self._payload(self._blobs[name], f'blob {name!r}')

    def verify(self) -> None:
        """Read every chunk and blob once and check its CRC (FormatError on the first bad one)."""
        for i in range(len(self._chunks)):
            self.read_chunk(i)
        for name in self._blobs:
            self.blob(name)

    # -- internals
    def _read_head(self):
        prefix = self._read_at(0, min(_PREFIX.size, self._size), 'prefix')
        start = prefix[:len(MAGIC)]
        if not prefix or start != MAGIC[:len(start)]:
            detail = 'the file is empty' if not prefix else 'wrong magic bytes'
            raise FormatError(f'{self.path} is not an EnMAP Compress .ehc file ({detail})')
        if len(prefix) < _PREFIX.size:
            raise FormatError(f'{self.path} is truncated ({self._size} bytes): it was not written completely')
        _magic, major, minor, header_len, header_crc = _PREFIX.unpack(prefix)
        if major not in READ_MAJORS:
            known = ', '.join(f'{m}.x' for m in READ_MAJORS)
            raise FormatError(f'{self.path} is a version {major}.{minor} .ehc file; this EnMAP Compress reads '
                              f'versions {known} only. Update the plugin to read it.')
        if header_len > _stored_limit(MAX_HEADER_BYTES):
            raise FormatError(f'{self.path}: the header is corrupt (its length, {header_len} bytes, is more than a '
                              f'valid header needs)')
        header_raw = self._read_at(_PREFIX.size, header_len, 'header')
        if zlib.crc32(header_raw, zlib.crc32(prefix[8:16])) != header_crc:
            raise FormatError(f'{self.path}: the header is corrupt (checksum mismatch)')
        header = _parse_json(header_raw, 'header', self.path, MAX_HEADER_BYTES, (major, minor))
        return (major, minor), header, _PREFIX.size + header_len

    def _read_trailer(self, data_start: int) -> tuple:
        layout = _trailer_layout(self.version)
        if self._size < data_start + layout.size:
            raise FormatError(f'{self.path} is truncated ({self._size} bytes): it was not written completely')
        trailer = self._read_at(self._size - layout.size, layout.size, 'trailer')
        *fields, trailer_crc, end = layout.unpack(trailer)
        if end != END_MAGIC:
            raise FormatError(f'{self.path} is truncated or incomplete (no end marker): it was not written '
                              'completely, or was cut when copied')
        index_end = self._size - layout.size
        offset, length, index_crc = fields if layout is _TRAILER else (index_end - fields[0], *fields)
        if zlib.crc32(trailer[:layout.size - 12]) != trailer_crc or offset < data_start or \
                offset + length != index_end:
            raise FormatError(f'{self.path}: the trailer is corrupt')
        return offset, length, index_crc

    def _read_index(self, offset: int, length: int, index_crc: int, limit: int) -> dict:
        if length > _stored_limit(limit):
            raise FormatError(f'{self.path}: the chunk index takes {length} bytes, more than a valid file of this '
                              'size needs')
        index_raw = self._read_at(offset, length, 'index')
        if zlib.crc32(index_raw) != index_crc:
            raise FormatError(f'{self.path}: the chunk index is corrupt (checksum mismatch)')
        return _parse_json(index_raw, 'chunk index', self.path, limit, self.version)

    def _split_record(self, data: bytes, meta: dict, i: int) -> bytes:
        """The payload of a chunk record, after checking that the meta it records is the index's."""
        recorded, start = _read_meta_record(data)
        listed = [meta[key] for key in sorted(meta)]
        if recorded is None or recorded != listed or not all(_is_int(v) for v in listed):
            shown = 'a corrupt record' if recorded is None else dict(zip(sorted(meta), recorded)) \
                if len(recorded) == len(meta) else f'the values {recorded}'
            raise FormatError(f'{self.path}: chunk {i} is stored as {shown!s:.80} but the index lists it as '
                              f'{meta!r:.80} (chunks were moved, swapped or duplicated, or the chunk is corrupt)')
        return data[start:]

    def _chunk(self, i: int) -> dict:
        if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self._chunks):
            raise IndexError(f'{self.path} has {len(self._chunks)} chunks; there is no chunk {i}')
        return self._chunks[int(i)]

    def _payload(self, entry: dict, what: str) -> bytes:
        data = self._read_at(entry['offset'], entry['length'], what)
        if zlib.crc32(data) != entry['crc32']:
            raise FormatError(f'{self.path}: {what} is corrupt (checksum mismatch)')
        return data

    def _read_at(self, offset: int, length: int, what: str) -> bytes:
        if self._file is None:
            raise ValueError(f'{self.path} is closed')
        if offset + length > self._size:  # also avoids allocating a huge buffer for a corrupt length
            raise FormatError(f'{self.path} is truncated or corrupt: the {what} runs past the end of the file')
        try:
            self._file.seek(offset)
            data = self._file.read(length)
        except OSError as exc:
            raise FormatError(f'Cannot read {self.path}: {exc.strerror or exc}') from exc
        if len(data) != length:  # the file shrank after it was opened
            raise FormatError(f'{self.path} is truncated: the {what} runs past the end of the file')
        return data


def grid_meta(header: dict, i: int):
    """The tile meta {x, y, w, h} of chunk i in a 3.x index entry that leaves it out: tile i of the header's grid
    (raster.width x raster.height in tiles of codec.tile_size px, row-major from the top left, edge tiles smaller;
    the codec's tiling.tile_grid), or None when the header states no such grid or tile."""
    raster, codec = header.get('raster'), header.get('codec')
    fields = [part.get(key) if isinstance(part, dict) else None
              for part, key in ((raster, 'width'), (raster, 'height'), (codec, 'tile_size'))]
    if not all(_is_int(v) and v > 0 for v in fields):
        return None
    tile = grid_tile(*fields, i)
    return None if tile is None else tile.as_dict()


def _leave_out_derived(chunks: list, header: dict, start: int) -> list:
    """Index entries of chunks without what _derive restores: the offset where the chunk before ends (the first:
    `start`, where the payload area starts) and the meta grid_meta gives."""
    out, end = [], start
    for i, entry in enumerate(chunks):
        out.append({key: value for key, value in entry.items()
                    if not (key == 'offset' and value == end or key == 'meta' and value == grid_meta(header, i))})
        end = entry['offset'] + entry['length']
    return out


def _derive(index: dict, data_start: int, header: dict) -> None:
    """Fill in a 3.x index's chunk entries in place: a missing offset is where the chunk before ends (the first
    chunk's: data_start), a missing meta grid_meta's. Malformed entries are left for _checked_index to name."""
    chunks, end = index.get('chunks'), data_start
    for i, entry in enumerate(chunks if isinstance(chunks, list) else []):
        if not isinstance(entry, dict):
            return
        entry.setdefault('offset', end)
        if 'meta' not in entry:
            entry['meta'] = grid_meta(header, i)
        if not all(_is_int(entry.get(key)) for key in ('offset', 'length')):
            return
        end = entry['offset'] + entry['length']


def _stored_limit(inflated: int) -> int:
    """The longest zlib stream of at most `inflated` bytes (deflate's worst case: 5 bytes per 16 KB + 6)."""
    return inflated + 5 * (inflated // 16384 + 1) + 6


def _checked_index(index: dict, data_start: int, data_end: int, records: bool, path: str) -> tuple:
    """Validate the index structure so that later reads cannot go out of the payload area or overlap."""
    chunks, blobs, footer = index.get('chunks'), index.get('blobs', {}), index.get('footer', {})
    if not isinstance(chunks, list) or not isinstance(blobs, dict) or not isinstance(footer, dict):
        raise FormatError(f'{path}: the chunk index is malformed (chunks must be a list, blobs and footer objects)')
    entries = [(f'chunk {i}', e) for i, e in enumerate(chunks)] + [(f'blob {n!r}', e) for n, e in blobs.items()]
    for what, entry in entries:
        problem = _entry_problem(entry, data_start, data_end)
        if problem:
            raise FormatError(f'{path}: the chunk index is malformed ({what}: {problem})')
    for i, entry in enumerate(chunks):
        if not isinstance(entry.get('meta'), dict):
            raise FormatError(f'{path}: the chunk index is malformed (chunk {i}: meta must be an object)')
        if records and entry['length'] < 1:
            raise FormatError(f'{path}: the chunk index is malformed (chunk {i}: too short to hold its meta)')
    _check_disjoint(entries, path)
    return chunks, blobs, footer


def _entry_problem(entry, start: int, end: int) -> str:
    """Why an index entry is invalid, or ''."""
    if not isinstance(entry, dict):
        return 'an entry must be an object'
    for key in ('offset', 'length', 'crc32'):
        value = entry.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f'{key} must be an integer >= 0, not {value!r:.40}'
    if entry['crc32'] > 0xFFFFFFFF:
        return f'crc32 {entry["crc32"]} is not a 32-bit value'
    if entry['offset'] < start or entry['offset'] + entry['length'] > end:
        return f'bytes {entry["offset"]}-{entry["offset"] + entry["length"]} lie outside the payload area {start}-{end}'
    return ''


def _check_disjoint(entries: list, path: str) -> None:
    """Payloads never share bytes in a valid file: entries that do are duplicated or forged."""
    spans = sorted((e['offset'], e['length'], what) for what, e in entries)
    for (offset, length, what), (next_offset, _length, other) in zip(spans, spans[1:]):
        if next_offset < offset + length:
            raise FormatError(f'{path}: the chunk index is malformed ({what} and {other} share bytes)')
