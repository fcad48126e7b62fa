"""Safe output writing: check the target folder early and never leave a half-written file behind.

Usage::

    check_writable(out_path)          # fail fast, before any long computation
    with atomic_output(out_path) as tmp:
        ds = driver.Create(tmp, ...)  # GDAL picks the driver by tmp's extension, which is out_path's
        ...
        ds = None                     # close every handle before the block ends (Windows cannot move open files)

On normal exit the temporary file and its side-cars (`.aux.xml`, ENVI `.hdr`, ...) replace the target with
os.replace; on any exception, KeyboardInterrupt included, they are deleted and the exception propagates.
"""
import contextlib
import os
import secrets
import tempfile

from .errors import OutputError

# Side-cars GDAL writes next to a raster that belong to the target, removed there if the new output has none.
_STALE_SIDECARS = ('.aux.xml',)


def _nearest_existing(folder):
    """The folder itself, or the closest ancestor that exists (the rest would be created)."""
    current = folder
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _probe_folder(folder):
    """Create and delete a tiny file: os.access is unreliable for folders on Windows and network drives."""
    try:
        fd, probe = tempfile.mkstemp(prefix='.enmap_compress_probe_', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise OutputError(f'Cannot write to folder {folder}: read-only or no permission ({exc.strerror or exc}). '
                          'Choose an output folder you can write to.') from exc


def check_writable(path):
    """Raise OutputError unless a file can be written at `path` (its folder exists or can be created)."""
    target = os.path.abspath(os.fspath(path))
    if os.path.isdir(target):
        raise OutputError(f'The output {target} is a folder; expected a file name.')
    folder = os.path.dirname(target)
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise OutputError(f'Cannot write to folder {folder}: {existing} is a file, not a folder. '
                          'Choose an output folder you can write to.')
    _probe_folder(existing)
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise OutputError(f'Cannot overwrite {target}: the file is read-only. Choose another name or make it writable.')


def _temp_prefix(target):
    folder, base = os.path.split(target)
    return os.path.join(folder, f'.{base}.{secrets.token_hex(4)}.part')


def _temp_files(prefix):
    folder, name = os.path.split(prefix)
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, e) for e in entries if e.startswith(name)]


def _remove_quietly(paths):
    for p in paths:
        with contextlib.suppress(OSError):
            os.remove(p)


def _final_name(temp_file, prefix, target):
    """Map a temporary file to its final name: `<prefix>.tif.aux.xml` -> `<target>.aux.xml`, `<prefix>.hdr` ->
    `<target root>.hdr`."""
    suffix = temp_file[len(prefix):]
    ext = os.path.splitext(target)[1]
    if ext and suffix.startswith(ext):
        return target + suffix[len(ext):]
    return os.path.splitext(target)[0] + suffix


def _commit(prefix, main_temp, target):
    """Move side-cars first and the main file last, so the main file appears only when everything is there."""
    temps = _temp_files(prefix)
    if main_temp not in temps:
        raise OutputError(f'Nothing was written to {target}: the writer produced no file.')
    sidecars = [t for t in temps if t != main_temp]
    targets = {_final_name(t, prefix, target) for t in sidecars}
    for stale in (target + s for s in _STALE_SIDECARS):
        if stale not in targets and os.path.exists(stale):
            os.remove(stale)  # it describes the file being replaced
    for temp in sidecars + [main_temp]:
        os.replace(temp, _final_name(temp, prefix, target))


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path` (same extension); move it into place only on success.

    The caller must close all handles to the temporary file before the block ends (required on Windows).
    """
    target = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f'Cannot create the output folder {folder} ({exc.strerror or exc}).') from exc
    prefix = _temp_prefix(target)
    main_temp = prefix + os.path.splitext(target)[1]
    try:
        yield main_temp
    except BaseException:
        _remove_quietly(_temp_files(prefix))
        raise
    try:
        _commit(prefix, main_temp, target)
    except OSError as exc:
        _remove_quietly(_temp_files(prefix))
        raise OutputError(f'Cannot replace {target} ({exc.strerror or exc}); is it open in another program?') from exc
    except BaseException:
        _remove_quietly(_temp_files(prefix))
        raise
