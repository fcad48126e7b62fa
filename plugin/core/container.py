"""The .ehc container: a JSON header, independently decodable chunks (one per tile), named blobs and an index.

Layout (docs/format.md, section "The .ehc container"): a fixed 20-byte prefix (magic, version, header length and
CRC), the zlib-compressed JSON header, the chunk and blob payloads back to back, the zlib-compressed JSON index
(offset, length, CRC-32 and meta of every chunk and blob, plus the footer dict) and a fixed 32-byte trailer that
points at the index. The index sits at the end so chunks stream to disk one at a time; the header never needs
rewriting because values known only at the end go into the footer.

The writer works on `<path>.<random>.part` and moves it into place (os.replace) only when finalised, so `path`
either holds a complete file or is untouched. The reader checks magic, version, header, trailer and index on open
and each chunk's CRC when it is read; it seeks and reads per chunk and never loads the whole file.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
import zlib

import numpy as np

from .errors import FormatError, OutputError

MAGIC = b'\x89EHC\r\n\x1a\n'
END_MAGIC = b'\x89EHCEND\n'  # 8 bytes, like MAGIC
VERSION = (1, 0)  # (major, minor): readers refuse another major; a higher minor only adds optional JSON keys
_PREFIX = struct.Struct('<8sHHII')  # magic, major, minor, header length, header CRC-32
_TRAILER = struct.Struct('<QQII8s')  # index offset, index length, index CRC-32, trailer CRC-32, end magic
_ZLIB_LEVEL = 6


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


def _parse_json(raw: bytes, what: str, path: str) -> dict:
    try:
        value = json.loads(zlib.decompress(raw).decode('utf-8'))
    except (zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f'{path}: the {what} is corrupt ({exc})') from exc
    if not isinstance(value, dict):
        raise FormatError(f'{path}: the {what} is not a JSON object')
    return value


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
        header_raw = zlib.compress(to_json_bytes(header), _ZLIB_LEVEL)
        self._pos, self._done = 0, False
        self._file = self._temp = None
        self._temp, self._file = _open_temp(self.path)
        prefix = _PREFIX.pack(MAGIC, VERSION[0], VERSION[1], len(header_raw), 0)
        crc = zlib.crc32(header_raw, zlib.crc32(prefix[8:16]))
        self._write(_PREFIX.pack(MAGIC, VERSION[0], VERSION[1], len(header_raw), crc) + header_raw)

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
        """Append one independently decodable chunk; returns its number (0, 1, ...)."""
        meta = _jsonable(meta or {}, f'meta of chunk {len(self._chunks)}')
        if not isinstance(meta, dict):
            raise TypeError('chunk meta must be a dict')
        self._chunks.append(dict(self._store(payload), meta=meta))
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
            index = {'chunks': self._chunks, 'blobs': self._blobs, 'footer': _jsonable(self.footer_meta, 'footer')}
            index_raw = zlib.compress(to_json_bytes(index, 'index'), _ZLIB_LEVEL)
            offset = self._pos
            self._write(index_raw)
            head = struct.pack('<QQI', offset, len(index_raw), zlib.crc32(index_raw))
            self._write(_TRAILER.pack(offset, len(index_raw), zlib.crc32(index_raw), zlib.crc32(head), END_MAGIC))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f'Cannot write {self.path} ({exc.strerror or exc}); is it open in another program?') \
                from exc
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
        temp, self._temp = getattr(self, '_temp', None), None
        if temp:
            with contextlib.suppress(OSError):
                os.remove(temp)

    # -- internals
    def _store(self, payload) -> dict:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f'a payload must be bytes, got {type(payload).__name__}')
        payload = memoryview(payload).cast('B')  # len() in bytes whatever the item size
        entry = {'offset': self._pos, 'length': len(payload), 'crc32': zlib.crc32(payload)}
        self._write(payload)
        return entry

    def _write(self, data) -> None:
        self._check_open()
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise OutputError(f'Cannot write {self.path} ({exc.strerror or exc}); is the disk full?') from exc
        self._pos += len(data)

    def _check_open(self) -> None:
        if self._file is None:
            raise OutputError(f'The writer for {self.path} was already finalised or aborted.')


def _open_temp(path: str):
    """Create and open `<path>.<random>.part` next to the target (folder created if missing), or OutputError."""
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(f'The output {path} is a folder; expected a file name.')
    temp = f'{path}.{secrets.token_hex(4)}.part'
    try:
        os.makedirs(folder, exist_ok=True)
        return temp, open(temp, 'xb')  # closed by finalize or abort
    except OSError as exc:
        raise OutputError(f'Cannot write {path}: {exc.strerror or exc} (folder {folder}). '
                          'Choose an output folder you can write to.') from exc


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


# ----------------------------------------------------------------------------------------------------- reader
class EhcReader:
    """Read a .ehc file: `header`, `footer`, `chunk_count`, `chunk_meta(i)`, `read_chunk(i)`, `blob(name)`.

    Everything but the chunk and blob payloads is checked on open; each payload's CRC is checked when read.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = None
        try:
            self._file = open(self.path, 'rb')  # closed by close()
        except OSError as exc:
            raise FormatError(f'Cannot open {self.path}: {exc.strerror or exc}') from exc
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self.version, self.header, data_start = self._read_head()
            index = self._read_index(data_start)
            self._chunks, self._blobs, self.footer = _checked_index(index, data_start, self._index_offset, self.path)
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

    def read_chunk(self, i: int) -> bytes:
        """The payload of chunk i, checked against its CRC-32."""
        return self._payload(self._chunk(i), f'chunk {i}')

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
        if major != VERSION[0]:
            raise FormatError(f'{self.path} is a version {major}.{minor} .ehc file; this EnMAP Compress reads '
                              f'version {VERSION[0]}.x only. Update the plugin to read it.')
        header_raw = self._read_at(_PREFIX.size, header_len, 'header')
        if zlib.crc32(header_raw, zlib.crc32(prefix[8:16])) != header_crc:
            raise FormatError(f'{self.path}: the header is corrupt (checksum mismatch)')
        return (major, minor), _parse_json(header_raw, 'header', self.path), _PREFIX.size + header_len

    def _read_index(self, data_start: int) -> dict:
        if self._size < data_start + _TRAILER.size:
            raise FormatError(f'{self.path} is truncated ({self._size} bytes): it was not written completely')
        trailer = self._read_at(self._size - _TRAILER.size, _TRAILER.size, 'trailer')
        offset, length, index_crc, trailer_crc, end = _TRAILER.unpack(trailer)
        if end != END_MAGIC:
            raise FormatError(f'{self.path} is truncated or incomplete (no end marker): it was not written '
                              'completely, or was cut when copied')
        if zlib.crc32(trailer[:20]) != trailer_crc or offset < data_start or \
                offset + length != self._size - _TRAILER.size:
            raise FormatError(f'{self.path}: the trailer is corrupt')
        self._index_offset = offset
        index_raw = self._read_at(offset, length, 'index')
        if zlib.crc32(index_raw) != index_crc:
            raise FormatError(f'{self.path}: the chunk index is corrupt (checksum mismatch)')
        return _parse_json(index_raw, 'chunk index', self.path)

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


def _checked_index(index: dict, data_start: int, data_end: int, path: str) -> tuple:
    """Validate the index structure so that later reads cannot go out of the payload area."""
    chunks, blobs, footer = index.get('chunks'), index.get('blobs', {}), index.get('footer', {})
    if not isinstance(chunks, list) or not isinstance(blobs, dict) or not isinstance(footer, dict):
        raise FormatError(f'{path}: the chunk index is malformed')
    for entry in chunks + list(blobs.values()):
        if not _valid_entry(entry, data_start, data_end):
            raise FormatError(f'{path}: the chunk index is malformed (bad entry {entry!r:.120})')
    if not all(isinstance(entry.get('meta'), dict) for entry in chunks):
        raise FormatError(f'{path}: the chunk index is malformed (chunk meta must be objects)')
    return chunks, blobs, footer


def _valid_entry(entry, start: int, end: int) -> bool:
    if not isinstance(entry, dict):
        return False
    values = [entry.get(k) for k in ('offset', 'length', 'crc32')]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return False
    offset, length, crc = values
    return start <= offset and offset + length <= end and crc <= 0xFFFFFFFF
