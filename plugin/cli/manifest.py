"""DEST/manifest.jsonl: one JSON object per line and product, appended atomically; the last line per input wins.

Each record is written with one `write` of the whole line on a file opened for appending, then flushed and
fsync'ed, while this run holds DEST's lock (one archive run per DEST at a time). A kill can at worst leave a torn
last line; opening the manifest drops it (truncating to the last complete line) and the product is simply redone.
"""
import contextlib
import json
import os

from ..core.errors import OutputError
from ..core.outputs import write_error
from .console import jsonable

NAME = 'manifest.jsonl'
LOCK_NAME = '.manifest.lock'


class _FileLock:
    """An exclusive, non-blocking lock on a small file; the OS releases it when the process dies."""

    def __init__(self, path):
        self.path = path
        self._fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f'Another archive run is writing to {os.path.dirname(self.path)} (its lock '
                              f'{self.path} is held); wait for it to finish, or choose another DEST.') from exc
        self._fd = fd

    def release(self):
        if self._fd is not None:
            with contextlib.suppress(OSError):
                _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


if os.name == 'nt':
    import msvcrt

    def _lock(fd):
        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd):
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd):
        fcntl.flock(fd, fcntl.LOCK_UN)


class Manifest:
    """Use as a context manager: takes DEST's lock, repairs a torn tail and reads the latest record per input."""

    def __init__(self, dest):
        self.dest = os.path.abspath(dest)
        self.path = os.path.join(self.dest, NAME)
        self.latest = {}
        self.dropped_lines = 0  # unreadable lines (a torn tail from a kill, or edited by hand)
        self._lock = _FileLock(os.path.join(self.dest, LOCK_NAME))
        self._fd = None

    def __enter__(self):
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:
            raise OutputError(f'Cannot create the archive output folder {self.dest} ({exc.strerror or exc}).') from exc
        self._lock.acquire()
        try:
            self._repair_and_read()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, 'O_BINARY', 0), 0o644)
        except OSError as exc:
            self._lock.release()
            raise OutputError(f'Cannot write the manifest {self.path} ({exc.strerror or exc}).') from exc
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._lock.release()

    def _repair_and_read(self):
        try:
            with open(self.path, 'rb') as handle:
                data = handle.read()
        except FileNotFoundError:
            return
        complete = data.rfind(b'\n') + 1
        if complete < len(data) and _parse(data[complete:]) is not None:  # a whole record without its newline (an
            # editor that drops the last one): kept, and the next append starts on a fresh line
            with open(self.path, 'ab') as handle:
                handle.write(b'\n')
            data, complete = data + b'\n', len(data) + 1
        if complete < len(data):  # a torn last line: cut it off so the next append starts on a fresh line
            os.truncate(self.path, complete)
            self.dropped_lines += 1
        for line in data[:complete].splitlines():
            record = _parse(line)
            if record is None:
                self.dropped_lines += bool(line.strip())
                continue
            self.latest[record['input']] = record

    def append(self, record):
        """Write one record as one line (a single write), flushed to disk before returning."""
        line = (json.dumps(jsonable(record), allow_nan=False, separators=(',', ':')) + '\n')  # ASCII: a file name
        # that is not UTF-8 (a lone surrogate in Python) is written escaped, and reads back as the same name
        data = line.encode('utf-8')
        size = None
        try:
            size = os.fstat(self._fd).st_size
            written = os.write(self._fd, data)
            while written < len(data):  # only on exotic file systems (or a disk filling up mid-line)
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as exc:  # a full disk: one clear message, and no torn line left behind
            if size is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)
            raise write_error(self.path, exc) from exc
        self.latest[record['input']] = record


def _parse(line):
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get('input'), str) else None


def read_records(dest):
    """Every readable record of DEST's manifest, in order (for reports and tests; no lock needed to read)."""
    path = os.path.join(os.path.abspath(dest), NAME)
    with open(path, 'rb') as handle:
        return [r for r in (_parse(line) for line in handle.read().splitlines()) if r is not None]
