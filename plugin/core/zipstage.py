"""Reading the spectral image of a product ZIP about as fast as an unpacked one.

GDAL reads a deflated ZIP member through /vsizip/ as one compressed stream: it cannot jump to a band or a row, so
every backward seek inflates again from the nearest point it saved (about one per 1 % of the member). A tile walk
over a band-interleaved image seeks back for every band of every tile and inflates the member dozens of times
(measured on a 1000 x 1000 synthetic product: 219 s to read it tile by tile from the ZIP, 2.3 s unpacked). A stored
member has no such cost (GDAL reads it at its offset); a deflated one is inflated once, front to back, into a
private temporary folder, which is removed when the raster is closed (or collected, or at exit), and after a
killed run by the next run that makes one (outputs.scratch_claim).
"""
import os
import shutil
import tempfile
import weakref
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import InputError, OutputError
from .outputs import scratch_claim

COPY_BLOCK = 8 * 1024 * 1024
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
        return self.members[0].rpartition('/')[2]


def zip_image(zip_path, infos, image_member):
    """The ZipImage of `image_member` and the members that share its stem, from the ZIP's infolist()."""
    by_name = {info.filename: info for info in infos if not info.is_dir()}
    stem = os.path.splitext(image_member)[0] + '.'
    sidecars = sorted(name for name in by_name if name != image_member and name.startswith(stem))
    members = (image_member, *sidecars)
    return ZipImage(zip_path, members, sum(by_name[name].file_size for name in members),
                    by_name[image_member].compress_type != zipfile.ZIP_STORED)


def _inflated_blocks(source):
    """The member's bytes, COPY_BLOCK at a time; the next block is inflated in a helper thread while the caller
    writes this one (zlib and file writes both run without the GIL), so the copy costs about the inflate alone."""
    with ThreadPoolExecutor(1, thread_name_prefix='enmap_compress_unzip') as reader:
        pending = reader.submit(source.read, COPY_BLOCK)
        while True:
            block = pending.result()
            if not block:
                return
            pending = reader.submit(source.read, COPY_BLOCK)
            yield block


class StagedImage:
    """A ZipImage inflated into a new temporary folder; `path` is the image there. close() removes the folder."""

    def __init__(self, image, progress=None):
        claim = scratch_claim()
        self.folder = claim.folder
        self._remove = weakref.finalize(self, claim.abandon)
        try:
            self._inflate(image, progress)
        except BaseException:
            self.close()
            raise
        self.path = os.path.join(self.folder, image.image_name)

    def _inflate(self, image, progress):
        done, total_mb = 0, image.size / 2 ** 20
        try:
            with zipfile.ZipFile(image.zip_path) as archive:
                for member in image.members:
                    target = os.path.join(self.folder, member.rpartition('/')[2])
                    with archive.open(member) as source, open(target, 'wb') as sink:
                        for block in _inflated_blocks(source):
                            sink.write(block)
                            done += len(block)
                            if progress is not None:
                                progress.say(f'unpacking the image from the ZIP ({done / 2 ** 20:.0f} of '
                                             f'{total_mb:.0f} MB)')
                                progress.report(done / max(1, image.size))
                                progress.check()
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad CRC, a broken deflate stream
            raise InputError(f'The ZIP {image.zip_path} is damaged: its member {image.members[0]} cannot be '
                             f'unpacked ({exc}).') from exc

    def close(self):
        self._remove()


def stage(image, progress=None):
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
        return StagedImage(image, progress), None
    except (OSError, OutputError) as exc:  # disk full, permissions: reading in place still works, only slower
        return None, f'unpacking into {folder} failed ({getattr(exc, "strerror", None) or exc})'
