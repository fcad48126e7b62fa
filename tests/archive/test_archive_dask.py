"""The archive on dask.distributed: a real LocalCluster of 2 worker processes, one of them killed mid-run."""
import json
import os
import signal

import pytest
from archive_fixtures import leftovers, make_archive, write_zip

from enmap_compress.plugin.cli import main as cli
from enmap_compress.plugin.cli.archive import Settings, run_archive
from enmap_compress.plugin.cli.manifest import read_records
from enmap_compress.plugin.core.runtime import sha256_of

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
