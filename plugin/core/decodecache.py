"""A folder of GeoTIFFs decoded from .ehc files, so an .ehc opens like any raster and opens instantly again.

An entry is reused while its .ehc is unchanged: the key covers the file's real path, size, modification time
and the SHA-256 of its bytes (a file copied back with an old time still gets a fresh decode). The folder is kept
under a size limit by removing the least recently used entries; files that cannot be removed (open in QGIS on
Windows) are skipped and tried again next time.
"""
import contextlib
import hashlib
import os
import re

SUFFIX = '.tif'
_BLOCK = 1 << 20


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(_BLOCK), b''):
            digest.update(block)
    return digest.hexdigest()


def cache_key(path):
    """Hex key of an .ehc file as it is now (OSError when it cannot be read)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    text = f'{os.path.normcase(real)}\n{stat.st_size}\n{stat.st_mtime_ns}\n{file_sha256(real)}'
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]


def _safe_stem(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:60] or 'image'


class DecodeCache:
    def __init__(self, folder, limit_bytes):
        self.folder = folder
        self.limit_bytes = int(limit_bytes)

    def entry_path(self, ehc_path):
        """Where the decoded GeoTIFF of `ehc_path` lives (whether or not it exists yet)."""
        return os.path.join(self.folder, f'{_safe_stem(ehc_path)}-{cache_key(ehc_path)}{SUFFIX}')

    def lookup(self, ehc_path):
        """The decoded GeoTIFF when it is already there (marked as just used), else None."""
        return self.used(self.entry_path(ehc_path))

    @staticmethod
    def used(entry):
        """`entry` (an entry_path) marked as just used when it is there, else None."""
        if not os.path.isfile(entry):
            return None
        try:
            os.utime(entry)  # least recently used goes first
        except OSError:
            pass
        return entry

    def discard(self, entry):
        """Remove a cached GeoTIFF that cannot be opened (a later lookup decodes the file again)."""
        with contextlib.suppress(OSError):
            os.remove(entry)

    def entries(self):
        """[(path, bytes, last used)] of every cached GeoTIFF, oldest first."""
        if not os.path.isdir(self.folder):
            return []
        found = []
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            if name.endswith(SUFFIX) and os.path.isfile(path):
                stat = os.stat(path)
                found.append((path, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda item: item[2])

    def total_bytes(self):
        return sum(size for _, size, _ in self.entries())

    def trim(self, keep=()):
        """Remove least recently used entries until the folder fits the limit; never those in `keep`.
        Returns the removed paths."""
        keep = {os.path.normcase(os.path.abspath(p)) for p in keep}
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = []
        for path, size, _ in entries:
            if total <= self.limit_bytes:
                break
            if os.path.normcase(os.path.abspath(path)) in keep:
                continue
            try:
                os.remove(path)
                for side in (path + '.aux.xml', path + '.ovr'):  # GDAL's side files
                    if os.path.exists(side):
                        os.remove(side)
            except OSError:
                continue  # in use (Windows): next time
            total -= size
            removed.append(path)
        return removed
