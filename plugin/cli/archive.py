"""`enmap-compress archive SRC DEST`: every product under SRC into DEST, resumable, one bad product never stops it.

One task per source (a product folder, ZIP, spectral image TIF, or a .tar.gz order holding ZIPs), run one after
another here, or on Dask (`--workers N` starts a local cluster of N worker processes, `--scheduler ADDRESS` uses an
existing one: the same code path). Each product's record is appended to DEST/manifest.jsonl as soon as it is done
here, or as its task completes on Dask. A task first checks whether its output already exists, unchanged, with the
settings asked for (its manifest record's sha256, the input's size and modification time, and the options), and
then skips it. Outputs are written atomically by the
core, so a killed run leaves no partial .ehc; a worker that dies mid-task is replaced by Dask and its task runs again
elsewhere, so every product is recorded exactly once per run.
"""
import contextlib
import hashlib
import itertools
import logging
import os
import posixpath
import re
import shutil
import socket
import sys
import tarfile
import time
import zlib
from dataclasses import dataclass, field, replace

from ..core.errors import EnmapCompressError, InputError, OutputError
from ..core.outputs import CLAIM_SUFFIX, is_gdal_virtual, remove_stale_temporaries, scratch_claim
from ..core.runtime import sha256_of
from .console import one_line
from .discover import Source, collision_message, discover, ehc_name
from .manifest import Manifest
from .options import add_coding_options, add_runtime_options, coding_kwargs, positive_int

EXIT_SOME_FAILED = 10  # exit status 10 + number of failed products (at most 100 counted)
SCRATCH_PREFIX = '.enmap_compress_scratch_'
COPY_BLOCK = 8 << 20
SCRATCH_MARGIN = 64 << 20  # free space a tar member's copy leaves on the scratch disk (the .ehc goes there too)


@dataclass(frozen=True)
class Settings:
    """What every task needs (small and picklable: Dask sends it to the workers)."""

    coding: dict
    device: str = 'auto'
    threads: object = None
    verify: bool = False
    scratch: str = ''


@dataclass(frozen=True)
class Task:
    source: Source
    dest: str
    previous: dict = field(default_factory=dict)  # input -> its latest manifest record
    taken: dict = field(default_factory=dict)  # a tar's task: output.lower() -> (input, output) of the other
    # sources


@dataclass(frozen=True)
class _Product:
    input: str
    output: str
    source: str
    bytes_in: int
    modified: object = None  # the input's modification time (whole seconds; a folder's newest file)


# --- one task (runs on a worker) ----------------------------------------------------------------------------

def process_source(task, settings):
    """All records of one source (a Dask task's result); never raises for a bad product (it becomes a failed
    record)."""
    return list(source_records(task, settings))


def source_records(task, settings):
    """The records of one source, each as soon as its product is done (an order's products are recorded one by one:
    a run stopped in the middle of an order keeps those done)."""
    source = task.source
    try:
        size, modified = _input_facts(source)
    except _UnreadableError as exc:
        yield _failed(_Product(source.input, source.output, source.input, None), settings, str(exc))
        return
    if source.kind == 'tar':
        yield from _tar_records(task, settings)
    else:
        product = _Product(source.input, source.output, source.input, size, modified)
        yield _product_record(product, source.path, task, settings)


class _UnreadableError(Exception):
    """A source that cannot be read (a broken link, a pipe or a device: reading one may never end)."""


def _input_facts(source):
    """(bytes, modification time in whole seconds) of a source's input, a folder's files summed (its newest file's
    time; a broken link beside the product is no part of it), in one pass; _UnreadableError says why there are none.
    The time lets a rewritten input of the same size be compressed again (tar members keep whole seconds)."""
    try:
        source.path.encode('utf-8')
    except UnicodeEncodeError:
        raise _UnreadableError(f'{source.input}: its name is not valid UTF-8, which GDAL cannot open; '
                               'rename it') from None
    try:
        if source.kind != 'folder':
            if not os.path.isfile(source.path):
                raise _UnreadableError(f'{source.input} is not a regular file (a broken link, a pipe or a device)')
            return os.path.getsize(source.path), int(os.path.getmtime(source.path))
        files = [os.stat(os.path.join(root, name)) for root, _, names in os.walk(source.path) for name in names
                 if os.path.isfile(os.path.join(root, name))]
        return sum(f.st_size for f in files), max((int(f.st_mtime) for f in files), default=None)
    except OSError as exc:
        raise _UnreadableError(f'{source.input} cannot be read ({exc.strerror or exc}: '
                               f'{exc.filename or source.input})') from None


def _tar_records(task, settings):
    source, count, taken = task.source, 0, dict(task.taken)
    try:
        with tarfile.open(source.path, mode='r|*') as tar:  # streamed: a tar.gz cannot be read in place
            for member in tar:
                if not member.name.lower().endswith('.zip') or not (member.isfile() or member.issym() or
                                                                     member.islnk()):
                    continue
                count += 1
                product = _Product(f'{source.input}/{_safe_member(member.name)}',
                                   f'{source.output}/{_member_output(member.name)}', source.input,
                                   member.size if member.isfile() else None, int(member.mtime))
                if not member.isfile():  # (a link may point anywhere: it is never followed)
                    yield _failed(product, settings, f'{product.input} is a link inside the order '
                                                     f'({member.linkname}), which is not followed; put the ZIP '
                                                     'itself in the order')
                    continue
                unnamed = _windows_unnamable(product.output)
                if unnamed is not None:  # (on Windows D:x.ehc joins to x.ehc in drive D:'s current folder, and
                    # x:y.ehc is a stream of a file x: outside DEST)
                    yield _failed(product, settings, f'{product.input}: its output {product.output} cannot be '
                                                     f'written on Windows ({unnamed}); unpack the order and rename '
                                                     'the ZIP')
                    continue
                other = taken.get(product.output.lower())
                if other is not None:  # another source's output, or another member's (P.ZIP and ./P.ZIP)
                    raw = replace(product, input=f'{source.input}/{member.name} (member {count})')  # (a key of its
                    # own in the manifest: it must not take the place of the product it collides with)
                    yield _failed(raw, settings, collision_message(product.output, *other))
                    continue
                taken[product.output.lower()] = product.input, product.output
                previous = task.previous.get(product.input)
                if _unchanged(previous, product, task.dest, settings):
                    yield _skipped(previous)
                    continue
                short = _short_of_space(settings.scratch, member.size)
                if short:  # (the stream skips the member's data: the order's next products still run)
                    yield _failed(product, settings, short)
                    continue
                try:
                    with _scratch_copy(tar.extractfile(member), settings.scratch) as path:
                        record = _product_record(product, path, task, settings)
                except _ScratchError as exc:  # (the disk filled up after the check: this product only; the
                    # stream skips the rest of its data)
                    yield _failed(product, settings, str(exc))
                    continue
                yield record  # (after the scratch copy is gone)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        yield _failed(_Product(source.input, source.output, source.input, _safe_size(source.path)),
                      settings, f'{source.input} is not a readable tar archive ({exc})')
        return
    if not count:
        yield _failed(_Product(source.input, source.output, source.input, _safe_size(source.path)),
                      settings, f'the order {source.input} holds no product ZIP')


def _short_of_space(scratch, size):
    """Why a tar member of `size` bytes cannot be copied to the scratch folder (too little free space), or None."""
    folder = scratch
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder or '.').free
    except OSError:
        return None  # (the copy says what is wrong)
    if free >= size + SCRATCH_MARGIN:
        return None
    return (f'its ZIP takes {size / 1e6:,.0f} MB, and the scratch folder {scratch} has {free / 1e6:,.0f} MB free; '
            'give --scratch a folder with room for the largest product')


def _safe_member(name):
    """A member's path without absolute or parent parts (a label and output path, never used to extract)."""
    parts = [p for p in name.replace('\\', '/').split('/') if p not in ('', '.', '..')]
    return '/'.join(parts)


def _member_output(name):
    folder, _, base = _safe_member(name).rpartition('/')
    return posixpath.join(folder, ehc_name(base)) if folder else ehc_name(base)


_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f]')
_WINDOWS_DEVICE = re.compile(r'(CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])(\..*)?$',
                             re.IGNORECASE)


def _windows_unnamable(output):
    """Why Windows cannot name a part of a tar member's relative `output` (its own folders and ZIP name; a loose
    source's names come from this file system), or None (always None elsewhere)."""
    if os.name != 'nt':
        return None
    for part in output.split('/'):
        if _WINDOWS_FORBIDDEN.search(part):
            return f'{part!r} holds one of the characters <>:"|?* or a control character'
        if part.endswith(('.', ' ')):
            return f'{part!r} ends in a dot or a space, which Windows drops'
        if _WINDOWS_DEVICE.match(part):
            return f'{part!r} is the name of a Windows device'
    return None


def _safe_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


class _ScratchError(Exception):
    """A tar member could not be written to the scratch folder (full, not writable): that product fails, not the
    order (an error reading the order is the order's)."""


@contextlib.contextmanager
def _scratch_copy(stream, scratch):
    """Copy a tar member to a private temporary folder; the folder is removed whatever happens (after a killed
    run, by the next run that makes one there). _ScratchError when writing the copy fails."""
    try:
        claim = scratch_claim(scratch)
    except OSError as exc:
        raise _ScratchError(_scratch_problem(scratch, exc)) from None
    try:
        path = os.path.join(claim.folder, 'product.zip')
        try:
            out = open(path, 'wb')
        except OSError as exc:
            raise _ScratchError(_scratch_problem(scratch, exc)) from None
        try:
            for block in iter(lambda: stream.read(COPY_BLOCK), b''):  # (a read error is the order's)
                try:
                    out.write(block)
                except OSError as exc:
                    raise _ScratchError(_scratch_problem(scratch, exc)) from None
        finally:
            try:
                out.close()  # (the last buffered bytes are written here)
            except OSError as exc:
                raise _ScratchError(_scratch_problem(scratch, exc)) from None
        yield path
    finally:
        claim.abandon()


def _scratch_problem(scratch, exc):
    return (f'its ZIP could not be copied to the scratch folder {scratch} ({exc.strerror or exc}); give --scratch a '
            'folder with room for the largest product')


def _product_record(product, path, task, settings):
    started = time.perf_counter()
    previous = task.previous.get(product.input)
    if _unchanged(previous, product, task.dest, settings):
        return _skipped(previous)
    output = _dest_path(task.dest, product.output)  # what a killed writer left there, the core removes
    record = _record(product, settings)
    try:
        record.update(_compress(path, output, settings))
        record['status'] = 'ok'
        if settings.verify:
            _verify_into(record, output, path, settings)
    except EnmapCompressError as exc:
        record.update(status='failed', error=one_line(exc))
    except Exception as exc:  # a bug or an odd file must not stop the archive: recorded, the run goes on
        record.update(status='failed', error=one_line(f'unexpected {type(exc).__name__}: {exc}'))
    record.update(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb(), finished=_now())
    return record


def _compress(path, output, settings):
    from ..core.codec import compress
    from .inspect import describe

    result = compress(path, output, device=settings.device, threads=settings.threads, **settings.coding)
    info = describe(output)
    return {'bytes_out': result.file_bytes, 'bpppb': result.bpppb, 'sha256': sha256_of(output),
            'model': info['model'], 'model_sha256': info['model_sha256'], 'quality': result.quality,
            'max_error': result.max_error, 'bound': info['bound'], 'warnings': [one_line(w) for w in result.warnings]}


def _verify_into(record, output, original, settings):
    from .inspect import verify

    check = verify(output, original, settings.device, settings.threads)
    record.update(max_abs_error=check['max_abs_error'], psnr=check['psnr'], exact=check['exact'])
    if not check['ok']:
        os.remove(output)  # a file that breaks its promise must not be taken as done by the next run
        record.update(status='failed', error=one_line(check['error']))


def _record(product, settings):
    return {'input': product.input, 'output': product.output, 'source': product.source, 'status': None,
            'error': None, 'bytes_in': product.bytes_in, 'modified': product.modified, 'bytes_out': None,
            'bpppb': None, 'seconds': None,
            'sha256': None, 'model': settings.coding.get('model'), 'model_sha256': None,
            'quality': settings.coding.get('quality'), 'max_error': settings.coding.get('max_error'), 'bound': None,
            'options': dict(settings.coding), 'verify': settings.verify,
            'finished': None, 'worker': f'{socket.gethostname()}:{os.getpid()}', 'peak_rss_mb': None}


def _failed(product, settings, message):
    record = _record(product, settings)
    record.update(status='failed', error=one_line(message), finished=_now())
    return record


def _skipped(previous):
    return dict(previous, status='skipped', error=None, finished=_now(), seconds=0.0)


def _now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def _dest_path(dest, relative_output):
    return os.path.join(dest, *relative_output.split('/'))


def _unchanged(previous, product, dest, settings):
    """Whether the output exists exactly as its last ok record describes, made from the same input size with the
    same options (a --verify run also needs a verified record)."""
    if not previous or previous.get('status') not in ('ok', 'skipped') or not previous.get('sha256'):
        return False
    if previous.get('bytes_in') != product.bytes_in or previous.get('options') != settings.coding:
        return False
    if previous.get('modified', product.modified) != product.modified:  # (records before 0.7.1 have no time)
        return False
    if settings.verify and not previous.get('verify'):
        return False
    output = _dest_path(dest, product.output)
    try:
        if os.path.getsize(output) != previous.get('bytes_out'):
            return False
        return sha256_of(output) == previous['sha256']
    except OSError:
        return False


def peak_rss_mb():
    """This process's peak resident memory in MiB (None where the platform does not say, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == 'darwin' else peak / 1024


# --- executors ----------------------------------------------------------------------------------------------

def run_here(tasks, settings):
    """One task after another in this process; yields (task, [record], task complete) as each product is done."""
    for task in tasks:
        for record in source_records(task, settings):
            yield task, [record], False
        yield task, [], True


def run_on_dask(client, tasks, settings):
    """One Dask task per source; yields (task, records, True) in completion order. A task whose workers all died (the
    scheduler retries it on other workers a few times first) becomes a failed record with the reason."""
    from dask.distributed import as_completed

    run_id = hashlib.sha256(f'{time.time()}-{os.getpid()}'.encode()).hexdigest()[:8]
    owners, futures = {}, []
    for number, task in enumerate(tasks):
        future = client.submit(process_source, task, settings, key=f'enmap-compress-{run_id}-{number}', pure=False)
        owners[future.key] = task
        futures.append(future)
    for future in as_completed(futures):
        task = owners[future.key]
        try:
            records = future.result()
        except Exception as exc:  # KilledWorker, a lost scheduler connection, ...
            records = [_lost(task, settings, exc)]
        future.release()
        yield task, records, True


def _lost(task, settings, exc):
    name = type(exc).__name__
    reason = ('every worker that ran it died (out of memory? give workers more with --memory-limit, or run fewer)'
              if name == 'KilledWorker' else f'{name}: {exc}')
    source = task.source
    return _failed(_Product(source.input, source.output, source.input, _safe_size(source.path)), settings,
                   f'the Dask task failed: {reason}')


# --- the run ------------------------------------------------------------------------------------------------

def run_archive(src, dest, settings, client=None, progress=None, on_record=None):
    """Compress every product under `src` into `dest`; returns the summary dict (see `summary_text`).

    client: a dask.distributed Client (None: here, one at a time). progress(percent, detail) and on_record(record)
    are called as tasks complete.
    """
    started = time.perf_counter()
    _check_folders(src, dest)
    dest = os.path.abspath(dest)
    settings = replace(settings, coding=_resolved_coding(settings.coding))
    sources, duplicates = discover(src, dest)
    with Manifest(dest) as manifest:
        settings = _with_scratch(settings, dest)
        shutil.rmtree(settings.scratch, ignore_errors=True)  # left by a killed run (we hold DEST's lock)
        outputs = {s.output.lower(): (s.input, s.output) for s in sources if s.kind != 'tar'}
        tasks = [Task(s, dest, _previous_records(manifest.latest, s), outputs if s.kind == 'tar' else {})
                 for s in sources]
        collided = [_failed(_Product(d['input'], d['output'], d['input'], None), settings,
                            collision_message(d['output'], d['same_output_as'], d['same_output'])) for d in duplicates
                    if d['collision']]
        counts = {'ok': 0, 'skipped': 0, 'failed': 0}
        failures, totals = [], {'bytes_in': 0, 'bytes_out': 0}
        runner = run_on_dask(client, tasks, settings) if client is not None else run_here(tasks, settings)
        runner = itertools.chain([(None, collided, False)], runner)  # (collisions fail before anything runs)
        try:
            done = 0
            for _, records, complete in runner:
                done += complete
                for record in records:
                    manifest.append(record)
                    counts[record['status']] += 1
                    if record['status'] == 'failed':
                        failures.append({'input': record['input'], 'error': record['error']})
                    elif record['status'] == 'ok':
                        totals['bytes_in'] += record['bytes_in'] or 0
                        totals['bytes_out'] += record['bytes_out'] or 0
                    if on_record is not None:
                        on_record(record)
                if progress is not None and complete:
                    progress(100.0 * done / max(1, len(tasks)),
                             f'{done}/{len(tasks)} sources, {counts["failed"]} failed')
        finally:
            shutil.rmtree(settings.scratch, ignore_errors=True)
        dropped = manifest.dropped_lines
    return {'src': os.path.abspath(src), 'dest': dest, 'manifest': manifest.path, 'sources': len(tasks),
            'products': sum(counts.values()), 'compressed': counts['ok'], 'skipped': counts['skipped'],
            'failed': counts['failed'], **totals, 'failures': failures, 'duplicates': duplicates,
            'repaired_manifest_lines': dropped, 'seconds': time.perf_counter() - started,
            'workers': _worker_count(client)}


def _check_folders(src, dest):
    """InputError / OutputError for an empty SRC or DEST (they read as the current folder) or a GDAL virtual DEST
    (its folders would be made at the disk's root)."""
    for role, path, error in (('archive folder SRC', src, InputError), ('output folder DEST', dest, OutputError)):
        if not os.fspath(path).strip():
            raise error(f'The {role} is empty; name a folder.')
    if is_gdal_virtual(dest):
        raise OutputError(f'The output folder {os.fspath(dest)} is a GDAL virtual path; DEST is a folder on disk.')


def _resolved_coding(coding):
    """The coding options with a --band-max-errors CSV file replaced by its 224 limits: the options are what a
    rerun compares to skip a product (an edited CSV of the same name must redo the outputs), and every worker then
    codes with the same limits whatever its folder (a relative path, a CSV only this machine has). InputError for a
    CSV that cannot be read, before anything runs."""
    from ..core.bounds import error_bound, is_blank

    coding = _resolved_model(coding)
    limits = coding.get('band_max_errors')
    if not isinstance(limits, str) or is_blank(limits) or not (
            os.path.isfile(limits.strip()) or limits.strip().lower().endswith(('.csv', '.txt'))):
        return coding  # (224 numbers: the options say them already)
    return dict(coding, band_max_errors=','.join(map(str, error_bound(band_max_errors=limits).band_max_errors)))


def _resolved_model(coding):
    """The coding options with a model package named by its folder given as that folder's absolute path (a Dask
    worker in another folder found no package there, and failed every product). ModelNotFoundError for a model
    that is not here, before anything runs (it failed every product, each with the same message)."""
    from ..core.runtime import find_model, list_models

    model = coding.get('model')
    if not model:
        return coding  # (the default model: each worker's own)
    package = find_model(model)
    if package.model_id == model and any(p.folder == package.folder for p in list_models()):
        return coding  # an installed id stays one (workers find it in their own installation)
    return dict(coding, model=package.folder)


def _with_scratch(settings, dest):
    base = settings.scratch or dest
    tag = hashlib.sha256(dest.encode('utf-8')).hexdigest()[:12]  # one scratch folder per DEST
    return Settings(settings.coding, settings.device, settings.threads, settings.verify,
                    os.path.join(os.path.abspath(base), SCRATCH_PREFIX + tag))


def _previous_records(latest, source):
    if source.kind != 'tar':
        return {source.input: latest[source.input]} if source.input in latest else {}
    return {k: r for k, r in latest.items() if r.get('source') == source.input}


def _worker_count(client):
    if client is None:
        return 1
    with contextlib.suppress(Exception):
        return len(client.scheduler_info()['workers'])
    return None


def exit_status(summary):
    return 0 if not summary['failed'] else EXIT_SOME_FAILED + min(summary['failed'], 100)


def summary_text(summary):
    mb_in, mb_out = summary['bytes_in'] / 1e6, summary['bytes_out'] / 1e6
    lines = [f'{summary["products"]} products from {summary["sources"]} sources: {summary["compressed"]} compressed, '
             f'{summary["skipped"]} skipped, {summary["failed"]} failed in {summary["seconds"]:.1f} s '
             f'({mb_in:,.1f} MB in, {mb_out:,.1f} MB out)', f'manifest: {summary["manifest"]}']
    lines += [f'failed: {f["input"]}: {f["error"]}' for f in summary['failures']]
    lines += [f'not compressed twice: {d["input"]} (same product as {d["same_output_as"]})'
              for d in summary['duplicates'] if not d['collision']]
    return '\n'.join(lines)


# --- Dask clients -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def dask_client(workers=None, scheduler=None, memory_limit='auto'):
    """None without workers or scheduler; else a Client of a new local cluster or of an existing scheduler."""
    if not workers and not scheduler:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise EnmapCompressError('--workers and --scheduler need dask.distributed, which is not installed: '
                                 'pip install "enmap-compress[archive]" (without them, products are compressed '
                                 'one at a time)') from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise EnmapCompressError(f'cannot reach the Dask scheduler at {scheduler} ({exc})') from exc
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      host='127.0.0.1', dashboard_address=None, silence_logs=logging.ERROR,
                      scheduler_kwargs={'dashboard_address': '127.0.0.1:0'}) as cluster, \
            Client(cluster) as client:  # (the scheduler's HTTP server on a free port: on its default 8787, taken
        # by another run or a notebook's cluster, Dask printed a warning)
        client.register_plugin(_ignoring_ctrl_c())
        yield client


def _ignoring_ctrl_c():
    """A worker plugin that makes the local cluster's workers ignore SIGINT. Ctrl+C in a terminal reaches every
    process of the command, and each worker printed its event loop's traceback; the command stops them itself as
    it closes the cluster. (Only for the workers it started: a --scheduler cluster's are not this run's.)"""
    import signal

    from dask.distributed import WorkerPlugin

    class IgnoreCtrlC(WorkerPlugin):
        name = 'enmap-compress-ignore-ctrl-c'

        def setup(self, worker):
            with contextlib.suppress(ValueError):  # (only a process's main thread may set a handler)
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()


# --- the command --------------------------------------------------------------------------------------------

def add_archive_parser(sub):
    sub.add_argument('src', help='the archive folder: product folders, DLR ZIPs, .tar.gz orders, SPECTRAL_IMAGE TIFs')
    sub.add_argument('dest', help='the output folder (mirrors SRC; holds manifest.jsonl)')
    add_coding_options(sub)
    add_runtime_options(sub)
    group = sub.add_argument_group('archive')
    group.add_argument('--verify', action='store_true',
                       help='decode every output and compare it with its input (max_abs_error, psnr, exact)')
    where = group.add_mutually_exclusive_group()
    where.add_argument('--workers', type=positive_int, metavar='N',
                       help='start a local Dask cluster of N worker processes (one thread each)')
    where.add_argument('--scheduler', metavar='ADDRESS',
                       help='use an existing Dask cluster (every worker needs this package and SRC/DEST)')
    group.add_argument('--memory-limit', default='auto', metavar='LIMIT',
                       help='memory per local worker, e.g. 4GiB (default: the machine\'s memory / N)')
    group.add_argument('--scratch', metavar='DIR',
                       help='where ZIPs streamed out of .tar.gz orders are held while compressed (default DEST); '
                            'always cleaned')


def remove_left_claims(dest):
    """Remove the claim folders under DEST whose writer is gone: a local cluster's workers, stopped as Ctrl+C
    closed it, left their products' partial files in them (the next run removed them; the command had said that
    nothing partial was left). Those of live writers, another run's or a --scheduler cluster's, are kept."""
    for root, folders, _names in os.walk(dest):
        remove_stale_temporaries(root)
        folders[:] = [f for f in folders if not f.endswith(CLAIM_SUFFIX) and os.path.isdir(os.path.join(root, f))]


def run_from_args(args, console):
    on_dask = bool(args.workers or args.scheduler)
    settings = Settings(coding_kwargs(args), args.device, args.threads or (1 if on_dask else None), args.verify,
                        args.scratch or '')
    try:
        with dask_client(args.workers, args.scheduler, args.memory_limit) as client:
            summary = run_archive(args.src, args.dest, settings, client, progress=console.progress('archive'))
    except KeyboardInterrupt:
        if args.workers:  # the local cluster is closed: what its workers were writing is left over
            remove_left_claims(args.dest)
        raise
    console.result(dict(summary, command='archive', ok=not summary['failed']), summary_text(summary))
    return exit_status(summary)
