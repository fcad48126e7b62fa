"""The archive on dask.distributed: a real LocalCluster of 2 worker processes, one of them killed mid-run."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings

import pytest
from archive_fixtures import leftovers, make_archive, write_zip

from enmap_compress.plugin.cli import main as cli
from enmap_compress.plugin.cli.archive import Settings, run_archive
from enmap_compress.plugin.cli.manifest import read_records
from enmap_compress.plugin.core.runtime import find_model, sha256_of
from tools import synthetic

distributed = pytest.importorskip('distributed')
pytestmark = pytest.mark.skipif(os.name != 'posix', reason='SIGKILL is POSIX')


def test_cli_workers_runs_the_archive_on_a_local_cluster(tmp_path, capsys):
    src, expected = make_archive(str(tmp_path))
    dest = str(tmp_path / 'dest')
    status = cli.main(['archive', src, dest, '--model', 'pca', '--workers', '2', '--memory-limit', '2GiB', '--json'])
    summary = json.loads(capsys.readouterr().out)
    assert status == 11 and summary['workers'] == 2
    assert (summary['compressed'], summary['failed']) == (5, 1)
    workers = {r['worker'] for r in read_records(dest) if r['status'] == 'ok'}
    assert os.getpid() not in {int(w.rsplit(':', 1)[1]) for w in workers}  # compressed in the worker processes


def test_a_killed_worker_s_product_is_retried_and_every_product_is_done_once(tmp_path):
    src = str(tmp_path / 'src')
    os.makedirs(src)
    names = sorted(os.path.basename(write_zip(src, number, (64, 64))) for number in range(40, 48))
    dest = str(tmp_path / 'dest')
    killed = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit='2GiB',
                                  host='127.0.0.1', dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        def kill_a_busy_worker(record):
            if killed:
                return
            busy = [address for address, keys in client.processing().items() if keys]
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        settings = Settings({'model': 'rdnet', 'quality': 3, 'max_error': None, 'code_all_bands': False},
                            threads=1)
        summary = run_archive(src, dest, settings, client, on_record=kill_a_busy_worker)
    assert killed
    records = read_records(dest)
    assert sorted(r['input'] for r in records) == names  # each product exactly once
    assert all(r['status'] == 'ok' for r in records), [r['error'] for r in records]
    assert (summary['compressed'], summary['failed']) == (len(names), 0)
    pids = [int(r['worker'].rsplit(':', 1)[1]) for r in records]
    assert killed[0] not in pids[1:]  # the killed worker finished nothing after its death
    for record in records:
        assert sha256_of(os.path.join(dest, record['output'])) == record['sha256']
    assert leftovers(dest) == []


def test_ctrl_c_stops_a_local_cluster_run_without_a_traceback_from_its_workers(tmp_path):
    """Ctrl+C in a terminal signals the whole process group, the worker processes too: each printed the traceback
    of its event loop's KeyboardInterrupt under the command's one line."""
    src, _ = make_archive(str(tmp_path))
    dest = str(tmp_path / 'dest')
    command = [sys.executable, '-m', 'enmap_compress.plugin.cli', 'archive', src, dest, '--model', 'rdnet',
               '--quality', '3', '--workers', '1', '--memory-limit', '2GiB', '--quiet']
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and not os.path.exists(
            os.path.join(dest, 'manifest.jsonl')):  # (made once the workers are up)
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert 'Traceback' not in stderr and stderr.strip() == 'enmap-compress: error: interrupted; nothing partial ' \
        'was left behind', stderr


def test_ctrl_c_while_a_worker_writes_leaves_no_partial_file_in_dest(tmp_path):
    """The workers stopped as the command closed its cluster left the product they were writing in its claim
    folder (`.NAME.ehc.enmapcompress.part/part.ehc`) while the command said nothing partial was left behind."""
    src = tmp_path / 'src'
    synthetic.write_scene(str(src / 'big-SPECTRAL_IMAGE.TIF'), 640, 640, seed=6)
    dest = str(tmp_path / 'dest')
    command = [sys.executable, '-m', 'enmap_compress.plugin.cli', 'archive', str(src), dest, '--model', 'rdnet',
               '--workers', '1', '--memory-limit', '2GiB', '--quiet']
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and not _claims(dest):
        time.sleep(0.005)
    assert _claims(dest), 'the worker never started writing'
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert not _claims(dest)  # (big.ehc may be whole: written as the cluster closed, and redone by the next run)


def _claims(dest):
    return [name for _root, folders, _names in os.walk(dest) for name in folders if name.endswith('.part')]


def test_a_local_cluster_starts_beside_another_on_the_default_dashboard_port(tmp_path, capsys):
    """dashboard_address=None still served the scheduler's HTTP routes on port 8787: with it taken (another run, a
    notebook's cluster) Dask warned 'Port 8787 is already in use' on the command's output."""
    src = tmp_path / 'src'
    synthetic.write_scene(str(src / 'loose-SPECTRAL_IMAGE.TIF'), 16, 16, seed=3)
    with socket.socket() as taken, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with contextlib.suppress(OSError):  # (already taken by someone else: as good)
            taken.bind(('127.0.0.1', 8787))
            taken.listen()
        status = cli.main(['archive', str(src), str(tmp_path / 'dest'), '--model', 'pca', '--workers', '1',
                           '--memory-limit', '2GiB', '--quiet'])
    assert status == 0, capsys.readouterr().err
    assert not [w for w in caught if 'already in use' in str(w.message)]
    assert capsys.readouterr().err == ''


def test_workers_in_another_folder_find_a_model_package_named_by_a_relative_path(tmp_path, monkeypatch):
    """The client named the package's folder relative to its own folder, and every worker (started elsewhere)
    failed every product: 'models/pca is not a model package'."""
    src = tmp_path / 'src'
    synthetic.write_scene(str(src / 'a-SPECTRAL_IMAGE.TIF'), 16, 16, seed=4)
    synthetic.write_scene(str(src / 'b-SPECTRAL_IMAGE.TIF'), 16, 16, seed=5)
    shutil.copytree(find_model('pca').folder, tmp_path / 'custom' / 'pca')
    dest = str(tmp_path / 'dest')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit='2GiB',
                                  host='127.0.0.1', dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        monkeypatch.chdir(tmp_path)  # (the worker keeps the folder it started in)
        assert str(tmp_path) not in client.run(os.getcwd).values()
        settings = Settings({'model': os.path.join('custom', 'pca'), 'quality': 4, 'max_error': None,
                             'code_all_bands': False}, threads=1)
        summary = run_archive(str(src), dest, settings, client)
    assert (summary['compressed'], summary['failed']) == (2, 0), summary['failures']
    assert {r['options']['model'] for r in read_records(dest)} == {str(tmp_path / 'custom' / 'pca')}
