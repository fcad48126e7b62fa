"""Which bands hold a valid pixel, found from a band-interleaved TIFF's bytes as they stream past (while a product
ZIP's image member is unpacked), so the compress does not read the image once more to find its dead bands.

Only an uncompressed TIFF in strips with one band per plane (PlanarConfiguration 2, GDAL's INTERLEAVE=BAND, what
EnMAP products use) whose directory and strip tables come before the pixels qualifies; anything else leaves
`has_valid` None and the reader scans as before. The strips are checked against the raster's geometry, so a strip
that is not exactly one band's rows makes the scan step aside rather than guess.
"""
import struct

import numpy as np

HEAD_LIMIT = 16 * 1024 * 1024  # the directory and strip tables must lie within the member's first bytes
SAMPLE_FORMAT = {'u': 1, 'i': 2, 'f': 3}  # TIFF SampleFormat per numpy kind
TAG_COMPRESSION, TAG_ROWS_PER_STRIP, TAG_PLANAR = 259, 278, 284
TAG_STRIP_OFFSETS, TAG_STRIP_BYTES, TAG_BITS, TAG_SAMPLE_FORMAT, TAG_TILE_WIDTH = 273, 279, 258, 339, 322
FIELD_TYPES = {3: 'u2', 4: 'u4', 16: 'u8'}  # SHORT, LONG, LONG8 (BigTIFF)
FIELD_WIDTHS = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}


class _LayoutError(Exception):
    """The TIFF is not one this scan reads (or its head has not all arrived yet: `incomplete`)."""

    def __init__(self, incomplete=False):
        super().__init__()
        self.incomplete = incomplete


class _Head:
    """The TIFF's first bytes, read as its header and first directory (classic TIFF or BigTIFF)."""

    def __init__(self, data):
        self.data = data
        if len(data) < 4:
            raise _LayoutError(incomplete=True)
        if data[:2] not in (b'II', b'MM'):
            raise _LayoutError()
        self.order = '<' if data[:2] == b'II' else '>'
        magic = self.unpack('H', 2)
        if magic not in (42, 43):
            raise _LayoutError()
        self.big = magic == 43
        self.tags = self._directory(self.unpack('Q', 8) if self.big else self.unpack('L', 4))

    def unpack(self, code, offset):
        size = struct.calcsize(code)
        if offset + size > len(self.data):
            raise _LayoutError(incomplete=True)
        return struct.unpack_from(self.order + code, self.data, offset)[0]

    def _directory(self, offset):
        count = self.unpack('Q' if self.big else 'H', offset)
        entry, first = (20, offset + 8) if self.big else (12, offset + 2)
        tags = {}
        for index in range(count):
            at = first + index * entry
            tag, kind = self.unpack('H', at), self.unpack('H', at + 2)
            tags[tag] = (kind, self.unpack('Q' if self.big else 'L', at + 4), at + (12 if self.big else 8))
        return tags

    @property
    def end(self):
        """Where the directory and every value it points to end; None when another directory follows (GDAL
        would read it when it opens the file)."""
        entry, size = (20, 8) if self.big else (12, 4)
        first = min(at for _, _, at in self.tags.values()) - (12 if self.big else 8) if self.tags else 0
        after = first + len(self.tags) * entry
        if self.unpack('Q' if self.big else 'L', after) != 0:
            return None
        end = after + size
        for kind, count, at in self.tags.values():
            width = FIELD_WIDTHS.get(kind, 8) * count
            end = max(end, at + size if width <= size else self.unpack('Q' if self.big else 'L', at) + width)
        return end

    def values(self, tag, default=None):
        """The tag's integer values (an array), or `default` when it is absent."""
        if tag not in self.tags:
            if default is None:
                raise _LayoutError()
            return np.asarray(default, dtype=np.int64)
        kind, count, at = self.tags[tag]
        if kind not in FIELD_TYPES:
            raise _LayoutError()
        dtype = np.dtype(self.order + FIELD_TYPES[kind])
        if count * dtype.itemsize > (8 if self.big else 4):  # not inline: the field points to its values
            at = self.unpack('Q' if self.big else 'L', at)
        if at + count * dtype.itemsize > len(self.data):
            raise _LayoutError(incomplete=True)
        return np.frombuffer(self.data, dtype, count, at).astype(np.int64)


def _band_spans(head, shape, dtype):
    """(start, end, band) byte ranges, ascending, that hold exactly the pixels of one band each."""
    bands, height, width = shape
    if TAG_TILE_WIDTH in head.tags or head.values(TAG_PLANAR, [1])[0] != 2 or \
            head.values(TAG_COMPRESSION, [1])[0] != 1:
        raise _LayoutError()
    if np.any(head.values(TAG_BITS) != dtype.itemsize * 8) or \
            np.any(head.values(TAG_SAMPLE_FORMAT, [1]) != SAMPLE_FORMAT.get(dtype.kind)):
        raise _LayoutError()
    rows = int(min(head.values(TAG_ROWS_PER_STRIP, [height])[0], height))
    offsets, sizes = head.values(TAG_STRIP_OFFSETS), head.values(TAG_STRIP_BYTES)
    per_band = -(-height // max(rows, 1))
    if rows < 1 or offsets.size != bands * per_band or sizes.size != offsets.size:
        raise _LayoutError()
    strip_rows = np.minimum(rows, height - rows * np.arange(per_band))
    expected = np.tile(strip_rows * width * dtype.itemsize, bands)
    if np.any((sizes != expected) & (sizes != rows * width * dtype.itemsize)):
        raise _LayoutError()  # only a short last strip may be stored full length (GDAL does so for empty ones)
    band = np.repeat(np.arange(bands), per_band)
    order = np.argsort(offsets, kind='stable')
    offsets, band = offsets[order], band[order]
    ends = offsets + expected[order]  # the padding of a full-length last strip is not pixels
    if np.any(offsets[1:] < ends[:-1]) or offsets[0] < 0:
        raise _LayoutError()  # strips that overlap
    joined = (offsets[1:] == ends[:-1]) & (band[1:] == band[:-1])  # a band's next strip follows on
    starts = np.flatnonzero(np.concatenate([[True], ~joined]))
    stops = np.concatenate([starts[1:], [offsets.size]]) - 1
    strip_ends = np.empty(offsets.size, dtype=np.int64)
    strip_ends[order] = ends
    spans = [(int(offsets[a]), int(ends[b]), int(band[a])) for a, b in zip(starts, stops)]
    return spans, StripTable(rows, strip_ends.reshape(bands, per_band))


class StripTable:
    """Where each strip of each band ends in the TIFF: ready(rows, bands) is the byte offset by which a read of
    those rows and bands has all its pixels."""

    def __init__(self, rows_per_strip, ends):
        self.rows_per_strip, self.ends = rows_per_strip, ends

    def ready(self, y, height, bands):
        first, last = y // self.rows_per_strip, (y + height - 1) // self.rows_per_strip
        return int(self.ends[np.asarray(bands), first:last + 1].max())


class StreamedBandScan:
    """feed(offset, block) with the TIFF's bytes in order; then has_valid: bool per band (a pixel that is not
    `invalid`), or None when the layout is not one this reads or the bytes stopped short."""

    def __init__(self, shape, dtype, invalid, ignore=None):
        self._shape, self._dtype, self._invalid = shape, np.dtype(dtype), invalid
        self._ignore = np.zeros(shape[0], dtype=bool) if ignore is None else np.asarray(ignore, dtype=bool)
        self._head = bytearray()
        self._spans = None  # (start, end, band) once the head is parsed
        self.strips = None  # the StripTable, once the head is parsed
        self.head_end = None  # where the TIFF's directory data ends (None: unknown, or not all before the pixels)
        self._next = 0  # the first span not fully seen yet
        self._seen = 0  # bytes fed so far
        self._carry = b''  # the start of a sample cut by the end of the last block
        self._valid = np.zeros(shape[0], dtype=bool)
        self._failed = False

    @property
    def failed(self):
        return self._failed

    @property
    def settled(self):
        """Whether has_valid is final for what the reader needs: every band that is not ignored (dead by the
        metadata anyway) has a valid pixel, so the rest of the bytes cannot change which bands are dead."""
        return not self._failed and self._spans is not None and self._valid.any() and \
            bool(np.all(self._valid | self._ignore))

    @property
    def has_valid(self):
        """bool per band once all bytes were seen, or once the scan is settled (an ignored band may then read
        False though a later pixel is valid); None before, or when the layout is not one this reads."""
        if self.settled or (not self._failed and self._spans is not None and self._next == len(self._spans)):
            return self._valid.copy()
        return None

    def feed(self, offset, block):
        if self._failed or offset != self._seen:
            self._failed = True
            return
        self._seen += len(block)
        if self._spans is None:
            self._read_head(block)
        elif not self.settled:  # once settled, the rest cannot change what the reader needs
            self._scan(offset, memoryview(block))

    def _read_head(self, block):
        self._head += block
        try:
            head = _Head(bytes(self._head))
            self._spans, self.strips = _band_spans(head, self._shape, self._dtype.newbyteorder(head.order))
            self._dtype = self._dtype.newbyteorder(head.order)
            end = head.end
            self.head_end = end if end is not None and end <= self._spans[0][0] else None
        except _LayoutError as layout:
            self._failed = not layout.incomplete or len(self._head) > HEAD_LIMIT
            if self._failed:
                self._head = bytearray()
            return
        data, self._head = bytes(self._head), bytearray()
        self._scan(0, memoryview(data))

    def _scan(self, offset, block):
        """Check the samples of each span in [offset, offset + len(block)) whose band has no valid pixel yet."""
        stop, size = offset + len(block), self._dtype.itemsize
        while self._next < len(self._spans):
            start, end, band = self._spans[self._next]
            if start >= stop:
                return
            first = max(start, offset)
            if self._carry and len(self._carry) + len(block) < size:  # a block shorter than the cut sample
                self._carry += bytes(block)
                return
            if self._carry:  # complete the sample cut at the last block's end
                sample = self._carry + bytes(block[:size - len(self._carry)])
                self._check(band, sample)
                first += size - len(self._carry)
                self._carry = b''
            last = min(end, stop)
            whole = first + (last - first) // size * size
            if whole > first:
                self._check(band, block[first - offset:whole - offset])
            if last < end:  # the span goes on in the next block
                self._carry = bytes(block[whole - offset:last - offset])
                return
            self._next += 1

    def _check(self, band, data):
        if not self._valid[band]:
            values = np.frombuffer(data, self._dtype)
            self._valid[band] = not self._invalid(values).all()
