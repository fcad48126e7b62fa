"""Safe output writing: check the target folder early, never leave a half-written file behind, never let two
runs write one output, and clean up after runs that were killed.

Usage::

    check_writable(out_path)          # fail fast, before any long computation
    with atomic_output(out_path) as tmp:
        ds = driver.Create(tmp, ...)  # GDAL picks the driver by tmp's extension, which is out_path's
        ...
        ds = None                     # close every handle before the block ends (Windows cannot move open files)

On normal exit the temporary file and its side-cars (`.aux.xml`, ENVI `.hdr`, ...) replace the target with
os.replace; on any exception, KeyboardInterrupt included, they are deleted and the exception propagates.

While a run writes `<folder>/<name>` it holds the *claim folder* `<folder>/.<name>.enmapcompress.part/`, made
with the exclusive os.mkdir: it holds the file being written and `owner` (host, process id and a token of the
process). A second run for the same output fails with a message naming the first; a run killed with kill -9 leaves
only that folder, which the next run writing into the same folder removes once its owner process is gone.
"""
import contextlib
import errno
import hashlib
import json
import os
import platform
import secrets
import shutil
import tempfile
import time

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
    """Create, write one byte to and delete a tiny file: os.access is unreliable for folders on Windows and network
    drives, and the byte finds a full disk (on most file systems) before any long computation."""
    try:
        fd, probe = tempfile.mkstemp(prefix='.enmap_compress_probe_', dir=folder)
        try:
            os.write(fd, b'\0')
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as exc:
        if _disk_full(exc):
            raise OutputError(f'Cannot write to folder {folder}: not enough disk space; free some space or choose '
                              'another output folder.') from exc
        raise OutputError(f'Cannot write to folder {folder}: read-only or no permission ({exc.strerror or exc}). '
                          'Choose an output folder you can write to.') from exc


def is_gdal_virtual(path):
    """Whether a path names one of GDAL's virtual file systems (/vsimem/, /vsizip/, ...), not a file on disk."""
    return os.fspath(path).replace('\\', '/').startswith('/vsi')


def check_writable(path):
    """Raise OutputError unless a file can be written at `path` (its folder exists or can be created) and no other
    run is writing it."""
    if is_gdal_virtual(path):  # (its folders would be made on the disk's root)
        raise OutputError(f'The output {os.fspath(path)} is a GDAL virtual path; outputs are files on disk.')
    target = os.path.abspath(os.fspath(path))
    if os.path.isdir(target):
        raise OutputError(f'The output {target} is a folder; expected a file name.')
    folder, name = os.path.split(target)
    if _name_length(name) > MAX_NAME_BYTES:  # (found otherwise only when the finished file is moved into place)
        raise OutputError(f'The output name {name[:48]}… is too long for a file system ({_name_length(name)} '
                          f'bytes; at most {MAX_NAME_BYTES}). Choose a shorter name.')
    if os.name == 'nt':  # (found otherwise only when the claim folder or its file is made)
        _check_windows_length(target)
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise OutputError(f'Cannot write to folder {folder}: {existing} is a file, not a folder. '
                          'Choose an output folder you can write to.')
    _probe_folder(existing)
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise OutputError(f'Cannot overwrite {target}: the file is read-only. Choose another name or make it writable.')
    claim = _claim_folder(target)
    if os.path.isdir(claim):
        owner = _read_owner(claim)
        if _owner_alive(claim, owner):
            raise _busy(target, claim, owner)


OUTPUT_KINDS = {  # what an output is: (the names it may have, how a wrong one is told)
    'geotiff': (('.tif', '.tiff'), 'The output {} is written as a GeoTIFF; name it .tif or .tiff.'),  # GDAL's GTiff
    'report': (('.html', '.htm'), 'The report {} is an HTML page; name it .html.'),
    'ehc': (('.ehc',), 'compressed output must end with .ehc: {}'),  # (codec's wording since 0.1)
}


def _name_length(name):
    """A file name's length as its file system counts it: UTF-16 units on Windows (NTFS), else bytes."""
    if os.name == 'nt':
        return len(name.encode('utf-16-le', 'surrogatepass')) // 2
    return len(os.fsencode(name))


def _check_windows_length(target):
    """OutputError when the longest path a claim on `target` writes (its temporary file's GDAL side-car in the claim
    folder) is beyond MAX_PATH and this process has no long paths."""
    longest = _path_length(os.path.join(_claim_folder(target), f'part{os.path.splitext(target)[1]}.aux.xml'))
    if longest > MAX_WINDOWS_PATH and not _windows_long_paths():
        raise OutputError(f'The output path {shown_path(target)} is too long for Windows: its temporary file '
                          f'beside it takes {longest} characters (at most {MAX_WINDOWS_PATH}). Choose a shorter '
                          'name or folder.')


def _path_length(path):
    """A path's length as Windows counts it (UTF-16 units)."""
    return len(path.encode('utf-16-le', 'surrogatepass')) // 2


def _windows_long_paths():
    """Whether this process may use paths beyond MAX_PATH (Windows 10 1607 and later, when the system allows them
    and the program's manifest opts in: QGIS's may not)."""
    import ctypes

    try:
        enabled = ctypes.WinDLL('ntdll').RtlAreLongPathsEnabled
    except (AttributeError, OSError):
        return False
    enabled.restype = ctypes.c_ubyte  # (a BOOLEAN: one byte of the return register)
    return bool(enabled())


def check_named(path, kind):
    """OutputError unless an output is named as the OUTPUT_KINDS `kind` it is: decompress and evaluate write GeoTIFF
    and HTML whatever the name, and a GeoTIFF named .img, .sdat or .png (formats a Processing file dialog offers)
    or a report named .pdf misleads every reader that goes by the name."""
    suffixes, message = OUTPUT_KINDS[kind]
    if not os.fspath(path).lower().endswith(suffixes):
        raise OutputError(message.format(shown_path(path)))


def check_distinct(outputs, inputs):
    """Raise OutputError when an output names one of the `inputs` (paths, or open rasters with `source` and
    `gdal_path`; it would be replaced while it is read: evaluate's reconstruction over its own input, a GeoTIFF
    over the .ehc it decodes) or an output before it. Empty entries are skipped."""
    sources = [path for item in inputs if item for path in _paths_of(item)]
    seen = []
    for output in (o for o in outputs if o):
        for other, role in [(s, 'input') for s in sources] + [(o, 'other output') for o in seen]:
            if _same_file(output, other):
                raise OutputError(f'The output {shown_path(output)} is the {role} {shown_path(other)}; it would be '
                                  'overwritten. Choose another name.')
        seen.append(output)


def _paths_of(item):
    if isinstance(item, (str, os.PathLike)):
        return [os.fspath(item)]
    return [p for p in (getattr(item, 'source', None), getattr(item, 'gdal_path', None)) if isinstance(p, str)]


def _same_file(a, b):
    a, b = os.fspath(a), os.fspath(b)
    with contextlib.suppress(OSError):
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)  # (links, other spellings of one path)
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _claim_folder(target):
    """`.<name>.enmapcompress.part` beside the target; for a name within 20 bytes of the 255 a file name may take,
    `.<its start>~<8 hex of the name>.enmapcompress.part` (the longer folder name could not be made)."""
    folder, name = os.path.split(target)
    encoded = name.encode('utf-8', 'surrogateescape')
    if len(encoded) + len(f'.{CLAIM_SUFFIX}') <= MAX_NAME_BYTES:
        return os.path.join(folder, f'.{name}{CLAIM_SUFFIX}')
    tag = hashlib.sha256(encoded).hexdigest()[:8]
    start = encoded[:MAX_NAME_BYTES - len(f'.~{tag}{CLAIM_SUFFIX}')].decode('utf-8', 'ignore')  # (whole characters)
    return os.path.join(folder, f'.{start}~{tag}{CLAIM_SUFFIX}')


def _busy(target, claim, owner):
    return OutputError(f'{_describe_owner(owner)} is writing {target}; wait for it to finish or choose another '
                       f'output name (if no such run exists, delete the folder {claim}).')


CLAIM_SUFFIX = '.enmapcompress.part'
MAX_NAME_BYTES = 255  # of one file name (ext4, APFS, NTFS in UTF-16 units: UTF-8 bytes are never fewer)
MAX_WINDOWS_PATH = 259  # characters of a path on Windows without long-path support (MAX_PATH less its NUL)
_OWNER = 'owner'
_TOKEN = secrets.token_hex(8)  # tells this process from an earlier one that had the same process id
_HOST = platform.node()
_HELD = set()  # claim folders this process holds
_SETUP_SECONDS = 600  # a claim folder without its owner file younger than this is being set up, not stale
_LEGACY_SECONDS = 86400  # 0.1 left `.<name>.<8 hex>.part<ext>` and `<name>.<8 hex>.part` without an owner


def _process_alive(pid):
    """Whether a local process `pid` exists (conservative: True when it cannot be told)."""
    if os.name == 'nt':
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _windows_process_alive(pid):
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # access denied: it exists; invalid parameter: it does not
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _read_owner(claim):
    try:
        with open(os.path.join(claim, _OWNER), encoding='utf-8') as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return None


def _owner_alive(claim, owner):
    """Whether the run that made `claim` may still be writing."""
    if owner is None:  # no owner yet: being set up, unless it was left like that long ago
        try:
            return time.time() - os.path.getmtime(claim) < _SETUP_SECONDS
        except OSError:
            return False
    pid, host = owner.get('pid'), owner.get('host')
    if not isinstance(pid, int) or host != _HOST:
        return True  # another machine writing to a shared folder: never touch its files
    if pid == os.getpid():
        return owner.get('token') == _TOKEN and claim in _HELD
    return _process_alive(pid)


def _describe_owner(owner):
    if not owner:
        return 'another run'
    here = '' if owner.get('host') == _HOST else f' on {owner.get("host")}'
    if owner.get('pid') == os.getpid():
        return 'another run in this session'
    return f'another run (process {owner.get("pid")}{here})'


def _legacy_temp(name, path):
    """A temporary file of EnMAP Compress 0.1 (no owner recorded): `.<name>.<8 hex>.part<ext>` or
    `<name>.<8 hex>.part`."""
    parts = name.split('.')
    for index, part in enumerate(parts[1:-1], start=1):
        if len(part) == 8 and all(c in '0123456789abcdef' for c in part) and parts[index + 1] == 'part':
            return os.path.isfile(path)
    return False


def remove_stale_temporaries(folder):
    """Remove what killed runs left in `folder`: claim folders whose owner process is gone, and 0.1's temporary
    files older than a day. Returns the names removed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith('.') and name.endswith(CLAIM_SUFFIX) and os.path.isdir(path):
            if not _owner_alive(path, _read_owner(path)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
        elif name.endswith('.part') or '.part.' in name:
            with contextlib.suppress(OSError):
                if _legacy_temp(name, path) and time.time() - os.path.getmtime(path) > _LEGACY_SECONDS:
                    os.remove(path)
                    removed.append(name)
    return removed


def _disk_full(exc):
    return getattr(exc, 'errno', None) in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))


def write_error(target, exc):
    """The OutputError for an OSError while writing `target`; a full disk says so and names the folder (both as
    the user named them: a temporary file in a claim folder, evaluate's in two, is told as its output)."""
    target = shown_path(target)
    folder = outer_folder(os.path.dirname(os.path.abspath(target)))
    if _disk_full(exc):
        return OutputError(f'Cannot write {target}: not enough disk space in {folder}; free some space or choose '
                           'another output folder.')
    return OutputError(f'Cannot write {target} ({exc.strerror or exc}; folder {folder}). '
                       'Choose an output folder you can write to.')


def _is_claim(name):
    return name.startswith('.') and name.endswith(CLAIM_SUFFIX)


def _is_scratch(name):
    return name.startswith(f'.{_SCRATCH}')


def shown_path(path):
    """The path to name in messages: the output a claim folder's temporary file stands for (through every level:
    evaluate writes each output through a writer that claims its own temporary file again), else `path` itself; a
    file in a scratch folder is named as it is (it stands for no output)."""
    shown = path
    folder, name = os.path.split(os.path.abspath(path))
    parent, claim = os.path.split(folder)
    while _is_claim(claim) and not _is_scratch(claim):
        shown = os.path.join(parent, claim[1:-len(CLAIM_SUFFIX)])
        parent, claim = os.path.split(parent)
    return shown


def outer_folder(folder):
    """The folder that holds `folder` if it is a claim folder (or one inside one): where the space ran out."""
    while _is_claim(os.path.basename(folder)):
        folder = os.path.dirname(folder)
    return folder


class OutputClaim:
    """The right to write `target`, held until commit() or abandon(): see the module docstring.

    `temp` is the file to write (in the claim folder, with the target's extension); its side-cars go next to it.
    """

    def __init__(self, path, private=False):
        self.target = os.path.abspath(os.fspath(path))
        self._mode = 0o700 if private else 0o777  # (less the umask)
        folder, name = os.path.split(self.target)
        if os.path.isdir(self.target):
            raise OutputError(f'The output {self.target} is a folder; expected a file name.')
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f'Cannot create the output folder {folder} ({exc.strerror or exc}).') from exc
        remove_stale_temporaries(folder)
        self.folder = _claim_folder(self.target)
        self._take()
        self.prefix = os.path.join(self.folder, 'part')
        self.temp = self.prefix + os.path.splitext(name)[1]

    def _take(self):
        try:
            os.mkdir(self.folder, self._mode)
        except FileExistsError:
            raise _busy(self.target, self.folder, _read_owner(self.folder)) from None
        except OSError as exc:
            raise write_error(self.target, exc) from exc
        _HELD.add(self.folder)
        try:
            with open(os.path.join(self.folder, _OWNER), 'w', encoding='utf-8') as f:
                json.dump({'pid': os.getpid(), 'host': _HOST, 'token': _TOKEN, 'target': self.target}, f)
        except OSError as exc:
            self.abandon()
            raise write_error(self.target, exc) from exc

    def commit(self):
        """Move side-cars first and the main file last, so the main file appears only when everything is there."""
        try:
            _commit(self.prefix, self.temp, self.target)
        except OSError as exc:
            self.abandon()
            raise _replace_error(self.target, exc) from exc
        except BaseException:
            self.abandon()
            raise
        self.abandon()  # only the owner file is left

    def set_aside(self, moved):
        """Move the files this claim's commit would replace (its target, side-cars it writes or removes) into the
        claim folder, adding (where each went, where it was) to `moved` as it goes. A target that cannot be moved
        (on Windows: open in another program) fails here, before anything of this claim is replaced."""
        temps = _temp_files(self.prefix)
        replaced = [self.target] + [_final_name(t, self.prefix, self.target) for t in temps if t != self.temp] + \
            [self.target + s for s in _STALE_SIDECARS]
        for index, path in enumerate(dict.fromkeys(replaced)):
            if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):  # (a folder made there
                kept = os.path.join(self.folder, f'previous-{index}')  # meanwhile: its commit fails, nothing moved)
                os.replace(path, kept)
                moved.append((kept, path))

    def abandon(self):
        """Delete everything written (idempotent)."""
        if self.folder in _HELD:
            shutil.rmtree(self.folder, ignore_errors=True)
            _HELD.discard(self.folder)


def _replace_error(target, exc):
    if _disk_full(exc):
        return write_error(target, exc)
    return OutputError(f'Cannot replace {shown_path(target)} ({exc.strerror or exc}); is it open in another '
                       'program?')


def commit_all(claims):
    """Commit several claims all or nothing (evaluate's outputs): every file they replace is first moved into its
    claim's folder, so an output that cannot be replaced (on Windows: open in QGIS) stops the commit before any
    output changed; then the new files are moved in; a failure or an interrupt puts every earlier file back and
    removes the new ones. (Only kill -9 between the two moves loses the earlier files, with the claim folders.)"""
    claims = list(claims)
    if len(claims) == 1:
        claims[0].commit()
        return
    moved, written, current = [], [], None
    try:
        for current in claims:
            if current.temp not in _temp_files(current.prefix):
                raise OutputError(f'Nothing was written to {shown_path(current.target)}: the writer produced no file.')
        for current in claims:
            current.set_aside(moved)
        for current in claims:
            written += [_final_name(t, current.prefix, current.target) for t in _temp_files(current.prefix)]
            _commit(current.prefix, current.temp, current.target)
    except BaseException as exc:
        earlier = {original for _, original in moved}
        for path in written:
            if path not in earlier:
                with contextlib.suppress(OSError):
                    os.remove(path)
        for kept, original in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(kept, original)
        for claim in claims:
            claim.abandon()
        if isinstance(exc, OSError):
            raise _replace_error(current.target, exc) from exc
        raise
    for claim in claims:
        claim.abandon()


def _temp_files(prefix):
    folder, name = os.path.split(prefix)
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, e) for e in entries if e.startswith(name)]


def _final_name(temp_file, prefix, target):
    """Map a temporary file to its final name: `<prefix>.tif.aux.xml` -> `<target>.aux.xml`, `<prefix>.hdr` ->
    `<target root>.hdr`."""
    suffix = temp_file[len(prefix):]
    ext = os.path.splitext(target)[1]
    if ext and suffix.startswith(ext):
        return target + suffix[len(ext):]
    return os.path.splitext(target)[0] + suffix


def _commit(prefix, main_temp, target):
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
    """Yield a temporary path for `path` (same extension); move it into place only on success.

    The caller must close all handles to the temporary file before the block ends (required on Windows).
    """
    claim = OutputClaim(path)
    try:
        yield claim.temp
    except OSError as exc:
        claim.abandon()
        if _disk_full(exc):  # the caller's own writes (a report, a ZIP) ran out of space
            raise write_error(claim.target, exc) from exc
        raise
    except BaseException:
        claim.abandon()
        raise
    claim.commit()


def scratch_claim(parent=None):
    """A claim on a private folder (its `folder`) for intermediate files, in `parent` or the system's temporary
    folder; call abandon() when done. A killed run's scratch folder is removed by the next run that makes one.
    Only this user may enter it (as tempfile.mkdtemp's): on a shared /tmp, others could read the images unpacked or
    decoded there, whatever the permissions of the files they came from."""
    parent = tempfile.gettempdir() if parent is None else parent
    return OutputClaim(os.path.join(parent, f'{_SCRATCH}{secrets.token_hex(4)}'), private=True)


_SCRATCH = 'enmapcompress-scratch-'
