"""Reading the spectral image of a product ZIP about as fast as an unpacked one.

GDAL reads a deflated ZIP member through /vsizip/ as one compressed stream: it cannot jump to a band or a row, so
every backward seek inflates again from the nearest point it saved (about one per 1 % of the member). A tile walk
over a band-interleaved image seeks back for every band of every tile and inflates the member dozens of times
(measured on a 1000 x 1000 synthetic product: 219 s to read it tile by tile from the ZIP, 2.3 s unpacked). A stored
member has no such cost (GDAL reads it at its offset); a deflated one is inflated once, front to back, into a
private temporary folder, which is removed when the raster is closed (or collected, or at exit), and after a
killed run by the next run that makes one (outputs.scratch_claim).

The inflate is plain zlib in a helper thread; a stager thread checks the CRC, writes, and hands each block to an
observer (the reader's dead-band scan, bandscan.py), all while the next block inflates. The reader may start
before the end: once the dead bands are known (every band the metadata does not call dead has a valid pixel) and
the TIFF's directory is written, the caller goes on and each read waits for the strips it needs. That pays off
where a band-interleaved TIFF's strips lie in row order (GDAL writes a large image so, chunk of rows by chunk of
rows); where they lie band after band, the first tile needs the last band, near the member's end, and the caller
waits for the whole member as before.
"""
import contextlib
import functools
import lzma
import os
import shutil
import struct
import tempfile
import threading
import weakref
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import CancelledError, InputError, OutputError
from .outputs import scratch_claim

IN_BLOCK = 1024 * 1024  # deflated bytes per read
OUT_BLOCK = 8 * 1024 * 1024  # the most inflated bytes per block (two blocks are alive at a time)
LOCAL_HEADER = struct.Struct('<4s5H3L2H')  # a ZIP member's local file header, up to its name
LOCAL_SIGNATURE = b'PK\x03\x04'
WAIT_S = 0.1  # how often a wait for the unpacking moves the progress and checks for a cancel
FREE_SPACE_MARGIN = 256 * 1024 * 1024


@dataclass(frozen=True)
class ZipImage:
    """A spectral image inside a ZIP: the image member first, then its sidecars (ENVI header, .aux.xml)."""

    zip_path: str
    members: tuple
    size: int  # uncompressed bytes of all members
    deflated: bool  # False: stored, GDAL reads it in place at full speed

    @property
    def image_name(self):
        return staged_name(self.members[0])


def staged_name(member):
    """The name a member is unpacked under in the scratch folder: its last path component, either separator (a
    ZIP written on Windows may use backslashes). InputError for a name that is no plain file name there: empty, a
    dot entry, or with a colon (on Windows 'D:x' would join to x in the current folder of drive D:, and 'x:y' names
    an alternate data stream)."""
    name = member.replace('\\', '/').rpartition('/')[2]
    if name in ('', '.', '..') or ':' in name:
        raise InputError(f'The ZIP member {member!r} has no file name that can be unpacked safely.')
    return name


def zip_image(zip_path, infos, image_member):
    """The ZipImage of `image_member` and the members that share its stem, from the ZIP's infolist()."""
    by_name = {info.filename: info for info in infos if not info.is_dir()}
    stem = os.path.splitext(image_member)[0] + '.'
    sidecars = sorted(name for name in by_name if name != image_member and name.startswith(stem))
    members = (image_member, *sidecars)
    return ZipImage(zip_path, members, sum(by_name[name].file_size for name in members),
                    by_name[image_member].compress_type != zipfile.ZIP_STORED)


def _blocks(read):
    """read()'s blocks up to its first empty one; the next block is made in a helper thread while the caller
    handles this one (zlib, the CRC and file reads and writes all run without the GIL), so a copy costs about
    the inflate alone."""
    with ThreadPoolExecutor(1, thread_name_prefix='enmap_compress_unzip') as helper:
        pending = helper.submit(read)
        while True:
            block = pending.result()
            if not block:
                return
            pending = helper.submit(read)
            yield block


class _RawInflate:
    """read(): the next at most OUT_BLOCK inflated bytes of a deflated member, b'' at its end. Plain zlib on the
    member's data, without zipfile's buffer joins and with the CRC left to the caller's thread."""

    def __init__(self, handle, info):
        handle.seek(info.header_offset)
        header = handle.read(LOCAL_HEADER.size)
        if len(header) != LOCAL_HEADER.size or header[:4] != LOCAL_SIGNATURE:
            raise zipfile.BadZipFile('bad local file header')
        name_length, extra_length = LOCAL_HEADER.unpack(header)[-2:]
        handle.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
        self._handle, self._left = handle, info.compress_size
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)

    def read(self):
        inflater = self._inflater
        while not inflater.eof:
            data = inflater.unconsumed_tail
            if not data:
                data = self._handle.read(min(IN_BLOCK, self._left))
                if not data:
                    raise EOFError('the deflate stream ends early')
                self._left -= len(data)
            block = inflater.decompress(data, OUT_BLOCK)
            if block:
                return block
        return b''


@contextlib.contextmanager
def _member_blocks(archive, handle, info):
    """The inflated blocks of one member (raw zlib for deflate, zipfile's reader for other methods)."""
    if info.flag_bits & 0x1:
        raise InputError(f'The ZIP member {info.filename} is encrypted; unpack the ZIP with its password first.')
    with contextlib.ExitStack() as stack:
        if info.compress_type == zipfile.ZIP_DEFLATED:
            read = _RawInflate(handle, info).read
        else:
            read = functools.partial(stack.enter_context(archive.open(info)).read, OUT_BLOCK)
        yield stack.enter_context(contextlib.closing(_blocks(read)))  # closed (helper joined) before the files


def _check_unpacked(info, size, crc):
    if size != info.file_size:
        raise zipfile.BadZipFile(f'{size} bytes, the ZIP directory says {info.file_size}')
    if crc != info.CRC:
        raise zipfile.BadZipFile(f'CRC {crc:08x}, the ZIP directory says {info.CRC:08x}')


class _StoppedError(Exception):
    """close() asked the stager to stop."""


class StagedImage:
    """A ZipImage inflated into a new temporary folder; `path` is the image there. close() removes the folder.

    A thread inflates (the sidecars first, the image member last). The constructor waits, moving `progress` and
    honouring its cancel, until the image is written, or until `ready(written)` says the bytes written so far are
    enough to start; the rest then goes on in the background, and a reader calls wait_for(offset) before it reads
    bytes of the image below `offset`. `on_block(offset, block)` sees the image's bytes in order, in that thread.
    A failure later on reaches the reader that waits (and close() stops the thread before it removes the folder).
    """

    def __init__(self, image, progress=None, on_block=None, ready=None):
        name = image.image_name  # (checked before the folder exists)
        claim = scratch_claim()
        self.folder = claim.folder
        self.path = os.path.join(self.folder, name)
        self._remove = weakref.finalize(self, claim.abandon)
        self._changed = threading.Condition()
        self._size, self._written = None, 0  # the image's bytes: all, on disk
        self._total, self._unpacked = image.size, 0  # all members' bytes: all, on disk
        self._ready = self._done = self._stop = False
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(image, on_block, ready),
                                        name='enmap_compress_unzip_stage')
        try:
            self._thread.start()
            self._wait(lambda: self._ready, functools.partial(self._report, progress))
        except BaseException:
            self.close()
            raise

    @property
    def written(self):
        """The image's bytes on disk so far (from its start)."""
        return self._written

    @property
    def image_size(self):
        """The image's size in bytes, or None while its member is not reached yet."""
        return self._size

    @property
    def complete(self):
        """Whether the whole image is on disk."""
        return self._done and self._error is None

    def wait_for(self, offset, every=None):
        """Return once the image's bytes below `offset` are on disk, calling `every()` (may raise: a cancel) each
        WAIT_S meanwhile. An offset at or past the image's end waits for its CRC too (damage only it shows)."""
        self._wait(lambda: self._size is not None and (self._written >= offset if offset < self._size
                                                       else self.complete), every)

    def _wait(self, until, every=None):
        """Wait until `until()` or the end of the thread; `every()` each WAIT_S; raise what the thread raised."""
        while True:
            with self._changed:
                if until() or self._done:
                    break
                self._changed.wait(WAIT_S)
            if every is not None:
                every()
        if self._error is not None and not until():
            raise self._error

    def describe(self):
        return (f'unpacking the image from the ZIP ({self._unpacked / 2 ** 20:.0f} of '
                f'{self._total / 2 ** 20:.0f} MB)')

    def _report(self, progress):
        if progress is not None:
            progress.say(self.describe())
            progress.report(self._unpacked / max(1, self._total))
            progress.check()

    def _run(self, image, on_block, ready):
        error = None
        try:
            self._inflate(image, on_block, ready)
        except _StoppedError:
            error = CancelledError('the unpacking of the ZIP was stopped')
        except OSError as exc:  # disk full, permissions
            error = OutputError(f'unpacking the image from the ZIP into {self.folder} failed '
                                f'({exc.strerror or exc})')
        except BaseException as exc:  # noqa: BLE001 (handed to the thread that waits)
            error = exc
        with self._changed:
            self._error, self._done, self._ready = error, True, self._ready or error is None
            self._changed.notify_all()

    def _inflate(self, image, on_block, ready):
        member = image.members[0]
        try:
            with zipfile.ZipFile(image.zip_path) as archive, open(image.zip_path, 'rb', buffering=0) as handle:
                for member in (*image.members[1:], image.members[0]):  # the image last: GDAL opens it early
                    if member == image.members[0]:
                        self._unpack(archive, handle, member, True, on_block, ready)
                    else:
                        self._unpack(archive, handle, member, False)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as exc:  # a bad CRC, a broken stream
            raise InputError(f'The ZIP {image.zip_path} is damaged: its member {member} cannot be '
                             f'unpacked ({exc}).') from exc

    def _unpack(self, archive, handle, member, is_image, on_block=None, ready=None):
        info = archive.getinfo(member)
        if is_image:
            self._size = info.file_size
        offset, crc = 0, 0
        with _member_blocks(archive, handle, info) as blocks, \
                open(os.path.join(self.folder, staged_name(member)), 'wb', buffering=0) as sink:
            for block in blocks:
                if offset + len(block) > info.file_size:  # a deflate stream longer than its directory entry says
                    # (a ZIP bomb): stop before the disk fills, not at the size check after the end
                    raise zipfile.BadZipFile(f'more than the {info.file_size} bytes the ZIP directory says')
                crc = zlib.crc32(block, crc)
                _write_all(sink, block)
                if on_block is not None:
                    on_block(offset, block)
                offset += len(block)
                with self._changed:
                    if self._stop:
                        raise _StoppedError()
                    self._unpacked += len(block)
                    if is_image:
                        self._written = offset
                        self._ready = self._ready or (ready is not None and ready(offset))
                    self._changed.notify_all()
        _check_unpacked(info, offset, crc)

    def close(self):
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()  # its files are closed before the folder goes (Windows cannot delete open files)
        self._remove()


def _write_all(sink, block):
    view = memoryview(block)
    while view:
        view = view[sink.write(view):]


def stage(image, progress=None, on_block=None, ready=None):
    """A StagedImage of `image`, or (None, reason) when the temporary folder lacks the room or fails."""
    folder = tempfile.gettempdir()
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < image.size + FREE_SPACE_MARGIN:
        return None, (f'the temporary folder {folder} has {free / 2 ** 20:.0f} MB free, '
                      f'{image.size / 2 ** 20:.0f} MB needed')
    try:
        return StagedImage(image, progress, on_block, ready), None
    except (OSError, OutputError) as exc:  # disk full, permissions: reading in place still works, only slower
        return None, f'unpacking into {folder} failed ({getattr(exc, "strerror", None) or exc})'
