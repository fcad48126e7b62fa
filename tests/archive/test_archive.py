"""`enmap-compress archive`: discovery, the manifest, reruns that skip, a kill in the middle and the rerun."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from archive_fixtures import leftovers, make_archive, product_name, write_order, write_zip

from enmap_compress.plugin.cli import main as cli
from enmap_compress.plugin.cli.discover import discover
from enmap_compress.plugin.cli.manifest import Manifest, read_records
from enmap_compress.plugin.core.errors import OutputError
from enmap_compress.plugin.core.runtime import sha256_of
from tools import synthetic

FIELDS = {'input', 'output', 'status', 'error', 'bytes_in', 'bytes_out', 'bpppb', 'seconds', 'sha256', 'model',
          'quality', 'max_error'}
ENTRY_POINT = os.path.join(os.path.dirname(sys.executable), 'enmap-compress')


def archive_json(capsys, src, dest, *extra):
    status = cli.main(['archive', src, dest, '--model', 'pca', '--quality', '4', '--json', *map(str, extra)])
    out = capsys.readouterr().out
    return status, json.loads(out)


def outputs_under(dest):
    return sorted(os.path.relpath(os.path.join(root, n), dest).replace(os.sep, '/')
                  for root, _, names in os.walk(dest) for n in names if n.endswith('.ehc'))


def test_discovery_mirrors_src_and_takes_the_zip_over_its_folder(tmp_path):
    src, expected = make_archive(str(tmp_path))
    synthetic_dup = write_zip(os.path.join(src, '2024'), 1)  # the ZIP of the product folder 2024/<1>
    sources, duplicates = discover(src)
    assert sorted(s.output for s in sources if s.kind != 'tar') + ['order_17'] == \
        sorted([e for e in expected if not e.startswith('order_17')] + [f'2024/june/{product_name(9)}.ehc',
                                                                        'order_17'])
    assert {s.kind for s in sources} == {'zip', 'tar', 'tif'}
    assert [d['input'] for d in duplicates] == [f'2024/{product_name(1)}']
    assert any(s.path == synthetic_dup for s in sources)


def test_archive_records_every_product_and_one_bad_one_never_stops_it(archive, tmp_path, capsys):
    src, expected = archive
    dest = str(tmp_path / 'dest')
    status, summary = archive_json(capsys, src, dest, '--verify')
    assert status == 11 and summary['failed'] == 1 and summary['compressed'] == 5 and summary['ok'] is False
    assert outputs_under(dest) == expected
    records = read_records(dest)
    assert len(records) == 6
    by_input = {r['input']: r for r in records}
    bad = by_input[f'2024/june/{product_name(9)}.ZIP']
    assert bad['status'] == 'failed' and 'ZIP' in bad['error'] and '\n' not in bad['error']
    assert bad['sha256'] is None and not os.path.exists(os.path.join(dest, bad['output']))
    for record in records:
        assert FIELDS <= set(record)
        if record['status'] == 'ok':
            output = os.path.join(dest, record['output'])
            assert record['sha256'] == sha256_of(output) and record['bytes_out'] == os.path.getsize(output)
            assert record['model'] == 'pca' and record['quality'] == 4 and record['max_error'] is None
            assert record['bpppb'] > 0 and record['bytes_in'] > 0 and record['psnr'] > 30
            assert record['exact'] is False and record['max_abs_error'] > 0
    tarred = by_input[f'order_17.tar.gz/order_17/{product_name(4)}.ZIP']
    assert tarred['status'] == 'ok' and tarred['source'] == 'order_17.tar.gz'
    assert leftovers(dest) == []


def test_a_rerun_skips_what_is_done_and_redoes_what_is_missing_failed_or_changed(archive, tmp_path, capsys):
    src, expected = archive
    dest = str(tmp_path / 'dest')
    archive_json(capsys, src, dest)
    os.remove(os.path.join(dest, expected[0]))  # missing
    with open(os.path.join(dest, expected[1]), 'r+b') as handle:  # damaged (same size)
        handle.seek(100)
        handle.write(b'\0\0\0\0')
    status, summary = archive_json(capsys, src, dest)
    assert (summary['compressed'], summary['skipped'], summary['failed']) == (2, 3, 1) and status == 11
    latest = {r['input']: r for r in read_records(dest)}
    for record in latest.values():
        if record['status'] != 'failed':
            assert sha256_of(os.path.join(dest, record['output'])) == record['sha256']
    status, summary = archive_json(capsys, src, dest, '--quality', '5')  # other options: everything again
    assert (summary['compressed'], summary['skipped']) == (5, 0)


def test_a_torn_last_line_is_repaired(archive, tmp_path, capsys):
    src, _ = archive
    dest = str(tmp_path / 'dest')
    archive_json(capsys, src, dest)
    manifest = os.path.join(dest, 'manifest.jsonl')
    lines = open(manifest, 'rb').read().splitlines(keepends=True)
    with open(manifest, 'wb') as handle:  # as a kill in the middle of the last write would leave it
        handle.write(b''.join(lines[:-1]) + lines[-1][:25])
    status, summary = archive_json(capsys, src, dest)
    assert summary['repaired_manifest_lines'] == 1
    assert summary['skipped'] + summary['compressed'] == 5
    for line in open(manifest, 'rb').read().splitlines():
        json.loads(line)


def test_one_run_per_dest_at_a_time(tmp_path):
    with Manifest(str(tmp_path)), pytest.raises(OutputError, match='Another archive run'):
        with Manifest(str(tmp_path)):
            pass


def test_a_product_folder_as_src_is_a_clear_error(archive, tmp_path, capsys):
    src, _ = archive
    status = cli.main(['archive', os.path.join(src, '2024', product_name(1)), str(tmp_path / 'd')])
    err = capsys.readouterr().err
    assert status == 1 and 'is itself a product folder' in err and 'Traceback' not in err


@pytest.mark.parametrize('which, value, message', [('src', '', 'archive folder SRC is empty'),
                                                    ('dest', ' ', 'output folder DEST is empty'),
                                                    ('dest', '/vsimem/d', 'GDAL virtual path')])
def test_an_empty_or_virtual_folder_is_refused(archive, tmp_path, capsys, which, value, message):
    """An empty SRC or DEST read as the current folder; /vsimem/d was made as a real folder at the disk's root."""
    src, _ = archive
    existed = os.path.exists('/vsimem')
    args = [value, str(tmp_path / 'd')] if which == 'src' else [src, value]
    status = cli.main(['archive', *args])
    err = capsys.readouterr().err
    assert status == 1 and message in err and 'Traceback' not in err
    assert os.path.exists('/vsimem') == existed and not os.path.exists(tmp_path / 'd')


def test_a_model_that_is_not_installed_is_one_error_before_anything_runs(archive, tmp_path, capsys):
    """Every product failed alone, each with the same message (on a cluster, every worker found out for itself)."""
    src, _ = archive
    dest = str(tmp_path / 'd')
    status = cli.main(['archive', src, dest, '--model', 'rdnett'])
    err = capsys.readouterr().err
    assert status == 1 and err.count('\n') == 1 and 'model "rdnett" is not installed' in err, err
    assert not os.path.exists(os.path.join(dest, 'manifest.jsonl'))


def test_workers_without_dask_say_what_to_install(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'dask.distributed', None)  # as if dask were not installed
    src, _ = archive
    status = cli.main(['archive', src, str(tmp_path / 'd'), '--workers', '2'])
    err = capsys.readouterr().err
    assert status == 1 and 'pip install "enmap-compress[archive]"' in err


@pytest.mark.skipif(os.name != 'posix', reason='SIGKILL is POSIX')
def _wait_for_records(process, manifest, count, seconds=120):
    """Until the running archive `process` has recorded `count` products (or ended, or `seconds` passed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(manifest) and open(manifest, 'rb').read().count(b'\n') >= count:
            return
        time.sleep(0.01)


def test_a_kill_in_the_middle_then_a_rerun_completes_everything_once(tmp_path):
    src = str(tmp_path / 'src')
    os.makedirs(src)
    names = [os.path.basename(write_zip(src, number, (64, 64))) for number in range(20, 28)]
    dest = str(tmp_path / 'dest')
    manifest = os.path.join(dest, 'manifest.jsonl')
    command = [ENTRY_POINT, 'archive', src, dest, '--model', 'rdnet', '--quality', '3', '--quiet']
    process = subprocess.Popen(command)
    _wait_for_records(process, manifest, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    recorded_before = open(manifest, 'rb').read().count(b'\n')
    assert 2 <= recorded_before < len(names), 'the kill came too late to be in the middle'
    rerun = subprocess.run(command + ['--json'], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary['ok'] and summary['skipped'] >= 2 and summary['skipped'] + summary['compressed'] == len(names)
    latest = {r['input']: r for r in read_records(dest)}
    assert sorted(latest) == sorted(names)
    for record in latest.values():
        assert record['status'] in ('ok', 'skipped')
        assert sha256_of(os.path.join(dest, record['output'])) == record['sha256']
    assert leftovers(dest) == []
    assert cli.main(['verify', os.path.join(dest, latest[names[-1]]['output']), '--quiet']) == 0


@pytest.mark.skipif(os.name != 'posix', reason='SIGTERM from another process is POSIX')
def test_a_terminated_run_stops_as_an_interrupted_one_leaving_nothing_behind(tmp_path):
    """SIGTERM (a cluster scheduler's stop) ends the run as Ctrl+C does, removing the scratch copy of an order's ZIP
    and the claim folder of the product being written; 0.7.0 died with both left behind."""

    src = tmp_path / 'src'
    src.mkdir()
    zips = [write_zip(str(tmp_path), number, (64, 64)) for number in range(30, 36)]
    write_order(src / 'order.tar.gz', zips)
    dest = str(tmp_path / 'dest')
    manifest = os.path.join(dest, 'manifest.jsonl')
    process = subprocess.Popen([ENTRY_POINT, 'archive', str(src), dest, '--model', 'rdnet', '--quality', '3',
                                '--quiet'], stderr=subprocess.PIPE, text=True)
    _wait_for_records(process, manifest, 1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and 'interrupted' in stderr, stderr
    assert 1 <= len(read_records(dest)) < len(zips), 'the stop came too late to be in the middle'
    assert leftovers(dest) == [] and not [n for n in os.listdir(dest) if n.endswith('.part') or n.startswith('.e')]


@pytest.mark.skipif(os.name != 'posix', reason='FIFOs, dangling links and non-UTF-8 names are POSIX file system cases')
def test_entries_that_are_not_readable_products_fail_alone_and_the_run_goes_on(tmp_path, capsys):
    """A dangling link, a FIFO and a name that is not UTF-8, each named like a product ZIP, and a product folder
    holding a broken link. 0.7.0 stopped the run at the link (an OSError), hung on the FIFO, and crashed writing the
    manifest record of the name; the folder's broken link stopped it too."""
    src = tmp_path / 'src'
    src.mkdir()
    good = write_zip(str(src), 1, size=(16, 16))
    os.symlink(str(tmp_path / 'nowhere.zip'), str(src / 'B.ZIP'))
    os.mkfifo(str(src / 'C.ZIP'))
    odd = os.fsdecode(b'D\xff.ZIP')
    os.link(good, str(src / odd))
    folder = synthetic.write_product(str(src), 16, 16, seed=2, product_name=product_name(2)).folder
    os.symlink(str(tmp_path / 'gone'), os.path.join(folder, 'broken'))
    dest = str(tmp_path / 'dest')
    status, summary = archive_json(capsys, str(src), dest)
    errors = {f['input']: f['error'] for f in summary['failures']}
    assert summary['compressed'] == 2 and set(errors) == {'B.ZIP', 'C.ZIP', odd}, errors
    assert 'not a regular file' in errors['B.ZIP'] and 'not a regular file' in errors['C.ZIP']
    assert 'not valid UTF-8' in errors[odd]
    assert status == 13 and {r['input'] for r in read_records(dest)} == {os.path.basename(good), product_name(2),
                                                                         'B.ZIP', 'C.ZIP', odd}


def test_an_input_rewritten_at_the_same_size_is_compressed_again(tmp_path, capsys):
    """The record holds the input's modification time; 0.7.0 compared its size only and kept the stale output."""
    src = tmp_path / 'src'
    src.mkdir()
    first, second = write_zip(str(src), 1, size=(16, 16)), write_zip(str(src), 2, size=(16, 16))
    dest = str(tmp_path / 'dest')
    archive_json(capsys, str(src), dest)
    stat = os.stat(first)
    os.utime(first, (stat.st_atime, stat.st_mtime + 60))  # as a rewrite with the same size leaves it
    status, summary = archive_json(capsys, str(src), dest)
    assert (summary['compressed'], summary['skipped']) == (1, 1) and status == 0
    assert {r['input'] for r in read_records(dest)[-2:] if r['status'] == 'ok'} == {os.path.basename(first)}
    assert os.path.basename(second) in {r['input'] for r in read_records(dest) if r['status'] == 'skipped'}


def test_a_run_stopped_inside_an_order_keeps_the_order_s_products_done_so_far(tmp_path):
    """Each product of a .tar.gz order is recorded as it is done; 0.7.0 recorded an order's products when the whole
    order was done, so a run stopped inside it (Ctrl+C, a kill) redid all of them."""

    from enmap_compress.plugin.cli.archive import Settings, run_archive

    src = tmp_path / 'src'
    src.mkdir()
    zips = [write_zip(str(tmp_path), n, size=(16, 16)) for n in (1, 2, 3)]
    write_order(src / 'order.tar.gz', zips)
    dest = str(tmp_path / 'dest')
    settings = Settings({'model': 'pca', 'quality': 3})

    def stop_after_two(record):
        if len(read_records(dest)) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_archive(str(src), dest, settings, on_record=stop_after_two)
    assert [r['status'] for r in read_records(dest)] == ['ok', 'ok'] and leftovers(dest) == []
    summary = run_archive(str(src), dest, settings)
    assert (summary['compressed'], summary['skipped']) == (1, 2)


def test_products_whose_outputs_collide_fail_naming_each_other_and_nothing_is_redone_forever(tmp_path, capsys):
    """Three ways two different products reached one output. 0.7.0 compressed a ZIP beside an order's member of the
    same name, and two members P.ZIP and ./P.ZIP, both into one file (its records claimed two files; every rerun
    redid both), and dropped a.zip beside A.ZIP as "the same product"; a link member was skipped unsaid."""
    import shutil
    import tarfile

    src = tmp_path / 'src'
    (src / 'order').mkdir(parents=True)
    first, second = write_zip(str(tmp_path), 1, size=(16, 16)), write_zip(str(tmp_path), 2, size=(16, 16))
    shutil.copy(first, str(src / 'order' / 'P.ZIP'))
    with tarfile.open(str(src / 'order.tar.gz'), 'w:gz') as tar:
        tar.add(second, arcname='P.ZIP')
        tar.add(first, arcname='./Q.ZIP')
        tar.add(second, arcname='Q.ZIP')
        link = tarfile.TarInfo('R.ZIP')
        link.type, link.linkname = tarfile.SYMTYPE, '/etc/hostname'
        tar.addfile(link)
    shutil.copy(first, str(src / 'A.ZIP'))
    shutil.copy(second, str(src / 'a.zip'))
    dest = str(tmp_path / 'dest')
    status, summary = archive_json(capsys, str(src), dest)
    errors = {f['input']: f['error'] for f in summary['failures']}
    assert set(errors) == {'order.tar.gz/P.ZIP (member 1)', 'order.tar.gz/Q.ZIP (member 3)', 'a.zip',
                           'order.tar.gz/R.ZIP'}, errors
    assert 'a link inside the order (/etc/hostname), which is not followed' in errors['order.tar.gz/R.ZIP']
    assert 'is the output of order/P.ZIP too' in errors['order.tar.gz/P.ZIP (member 1)']
    assert 'is the output of order.tar.gz/Q.ZIP too' in errors['order.tar.gz/Q.ZIP (member 3)']
    assert 'is the output of A.ZIP too' in errors['a.zip'] and summary['compressed'] == 3 and status == 14
    status, summary = archive_json(capsys, str(src), dest)
    assert (summary['compressed'], summary['skipped'], summary['failed']) == (0, 3, 4)


def test_an_order_s_member_windows_cannot_name_fails_there_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """A tar member is named by whoever packed the order. On Windows 0.7.3 joined its name into DEST as it was:
    D:x.ZIP gave D:x.ehc, the current folder of drive D: (outside DEST), x:y.ZIP a stream of a file x, and CON.ZIP
    the console; each now fails by name before anything is copied or written (elsewhere they are plain names)."""
    import tarfile

    src = tmp_path / 'src'
    src.mkdir()
    zipped = write_zip(str(tmp_path), 1, size=(16, 16))
    members = ['D:x.ZIP', 'x:y.ZIP', 'CON.ZIP', 'lpt1.tar.ZIP', 'sub/a?.ZIP', 'dir./P.ZIP', 'sub /Q.ZIP']
    with tarfile.open(str(src / 'order.tar'), 'w') as tar:
        for name in members:
            tar.add(zipped, arcname=name)
    dest = tmp_path / 'dest'
    with monkeypatch.context() as windows:  # (left before pytest reports: its pathlib cannot be Windows here)
        windows.setattr(os, 'name', 'nt')
        status, summary = archive_json(capsys, str(src), str(dest))
    errors = {f['input']: f['error'] for f in summary['failures']}
    assert sorted(errors) == sorted(f'order.tar/{name}' for name in members) and status == 10 + len(members)
    assert all('cannot be written on Windows' in error for error in errors.values()), errors
    assert "'D:x.ehc' holds one of the characters" in errors['order.tar/D:x.ZIP']
    assert "'CON.ehc' is the name of a Windows device" in errors['order.tar/CON.ZIP']
    assert "'dir.' ends in a dot or a space" in errors['order.tar/dir./P.ZIP']
    assert outputs_under(str(dest)) == [] and leftovers(str(dest)) == []


def test_an_order_s_zip_larger_than_the_scratch_disk_fails_alone(tmp_path, capsys, monkeypatch):
    """0.7.0 copied a tar member to the scratch folder whatever its size: a disk filled up, and the order's other
    products failed as "not a readable tar archive"."""

    from enmap_compress.plugin.cli import archive

    src = tmp_path / 'src'
    src.mkdir()
    small, large = write_zip(str(tmp_path), 1, size=(16, 16)), write_zip(str(tmp_path), 2, size=(40, 32))
    write_order(src / 'order.tar.gz', [large, small])
    free = os.path.getsize(small) + os.path.getsize(large) // 2 + archive.SCRATCH_MARGIN
    monkeypatch.setattr(archive.shutil, 'disk_usage', lambda path: type('Usage', (), {'free': free})())
    status, summary = archive_json(capsys, str(src), str(tmp_path / 'dest'))
    assert summary['compressed'] == 1 and [f['input'] for f in summary['failures']] == \
        [f'order.tar.gz/{os.path.basename(large)}']
    assert 'give --scratch a folder with room' in summary['failures'][0]['error'] and status == 11


def test_an_edited_band_max_errors_csv_redoes_the_outputs(tmp_path, capsys):
    """The options a rerun compares held the CSV's path only: 0.7.2 skipped every output after the CSV was edited
    (here from 20 DN to lossless), keeping files that break the new bounds."""
    src = tmp_path / 'src'
    src.mkdir()
    write_zip(str(src), 1, size=(16, 16))
    bounds = tmp_path / 'bounds.csv'
    bounds.write_text(''.join(f'{band},20\n' for band in range(1, 225)))
    dest = str(tmp_path / 'dest')
    archive_json(capsys, str(src), dest, '--band-max-errors', bounds)
    assert read_records(dest)[-1]['bound'] == '<= 20 DN'
    bounds.write_text(''.join(f'{band},0\n' for band in range(1, 225)))
    status, summary = archive_json(capsys, str(src), dest, '--band-max-errors', bounds)
    assert (summary['compressed'], summary['skipped']) == (1, 0) and read_records(dest)[-1]['bound'] == 'lossless'
    status, summary = archive_json(capsys, str(src), dest, '--band-max-errors', bounds)
    assert (summary['compressed'], summary['skipped']) == (0, 1)  # (unchanged: skipped)
    status = cli.main(['archive', str(src), dest, '--band-max-errors', str(tmp_path / 'missing.csv')])
    assert status == 1 and 'missing.csv' in capsys.readouterr().err  # one error before anything runs


def test_two_orders_of_one_output_folder_fail_naming_each_other(tmp_path, capsys):
    """order.tar.gz and order.tar both fill DEST/order/: 0.7.2 took the second for a copy of the first and left its
    products out unsaid (exit status 0)."""

    src = tmp_path / 'src'
    src.mkdir()
    first, second = write_zip(str(tmp_path), 1, size=(16, 16)), write_zip(str(tmp_path), 2, size=(16, 16))
    write_order(src / 'order.tar.gz', [first])
    write_order(src / 'order.tar', [second])
    status, summary = archive_json(capsys, str(src), str(tmp_path / 'dest'))
    assert status == 11 and summary['compressed'] == 1
    assert [(f['input'], 'is the output of order.tar too' in f['error']) for f in summary['failures']] == \
        [('order.tar.gz', True)]


def test_a_last_record_without_its_newline_is_kept(tmp_path, capsys):
    """An editor that drops the manifest's last newline: 0.7.2 cut that whole record off as a torn line and redid its
    product."""
    src = tmp_path / 'src'
    src.mkdir()
    for number in (1, 2):
        write_zip(str(src), number, size=(16, 16))
    dest = str(tmp_path / 'dest')
    archive_json(capsys, str(src), dest)
    manifest = os.path.join(dest, 'manifest.jsonl')
    data = open(manifest, 'rb').read()
    with open(manifest, 'wb') as handle:
        handle.write(data.rstrip(b'\n'))
    status, summary = archive_json(capsys, str(src), dest)
    assert (summary['compressed'], summary['skipped'], summary['repaired_manifest_lines']) == (0, 2, 0)
    assert open(manifest, 'rb').read().startswith(data) and len(read_records(dest)) == 4


def test_a_scratch_disk_that_fills_up_during_a_copy_fails_that_product_only(tmp_path, capsys, monkeypatch):
    """The free-space check passed, then the disk filled (another job): 0.7.2 failed the whole order as 'not a
    readable tar archive' and left its other products out."""
    import errno
    import io

    from enmap_compress.plugin.cli import archive

    src = tmp_path / 'src'
    src.mkdir()
    first, second = write_zip(str(tmp_path), 1, size=(16, 16)), write_zip(str(tmp_path), 2, size=(16, 16))
    write_order(src / 'order.tar.gz', [first, second])
    real_open, opened = open, []

    class FullFile(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

    def scratch_open(path, mode='r', *args, **kwargs):
        if str(path).endswith('product.zip') and mode == 'wb' and not opened:
            opened.append(path)
            return FullFile(path, 'wb')
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(archive, 'open', scratch_open, raising=False)
    status, summary = archive_json(capsys, str(src), str(tmp_path / 'dest'))
    assert summary['compressed'] == 1 and [f['input'] for f in summary['failures']] == \
        [f'order.tar.gz/{os.path.basename(first)}']
    assert 'could not be copied to the scratch folder' in summary['failures'][0]['error']
    assert 'No space left on device' in summary['failures'][0]['error'] and status == 11
    assert opened and not os.path.exists(os.path.dirname(opened[0]))  # (the scratch copy is gone)


def test_a_full_disk_while_appending_to_the_manifest_is_one_message_and_no_torn_line(tmp_path, monkeypatch):
    """0.7 stopped with a bare "[Errno 28] No space left on device" (no file, no folder) and could leave half a
    line."""
    import errno

    from enmap_compress.plugin.cli import manifest as manifest_module

    with Manifest(str(tmp_path)) as manifest:
        manifest.append({'input': 'a.tif', 'status': 'ok'})
        size = os.path.getsize(manifest.path)
        real = os.write

        def write(fd, data):
            if fd != manifest._fd:
                return real(fd, data)
            if len(data) > 8:
                return real(fd, data[:8])
            raise OSError(errno.ENOSPC, 'No space left on device')

        monkeypatch.setattr(manifest_module.os, 'write', write)
        with pytest.raises(OutputError, match=rf'manifest\.jsonl: not enough disk space in {tmp_path}; '):
            manifest.append({'input': 'b.tif', 'status': 'ok'})
        monkeypatch.setattr(manifest_module.os, 'write', real)
        assert os.path.getsize(manifest.path) == size
    assert [r['input'] for r in read_records(str(tmp_path))] == ['a.tif']
