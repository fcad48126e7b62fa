"""Temporary files, concurrent runs and full disks (finding 7): a killed run leaves one clearly named claim folder
that the next run in that folder removes, two runs cannot both write one output, and a full disk says so."""
import gc
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from enmap_compress.plugin.core import outputs
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.errors import OutputError
from enmap_compress.plugin.core.outputs import CLAIM_SUFFIX, OutputClaim, atomic_output, remove_stale_temporaries
from tools import synthetic

# A real run in another process that prints "running <pid>" once it writes (its bar past the dead-band scan) and
# then waits, tile after tile, until the file `go` exists (or is killed).
SLOW_RUN = textwrap.dedent('''
    import os, sys, time
    from enmap_compress.plugin.core.codec import SCAN_SHARE, compress, decompress
    action, source, output, go = sys.argv[1:5]
    announced = []
    def progress(percent):
        if percent <= 100 * SCAN_SHARE:
            return
        if not announced:
            print('running', os.getpid(), flush=True)
            announced.append(True)
        while not os.path.exists(go):
            time.sleep(0.05)
    if action == 'compress':
        compress(source, output, 'pca', 5, 'cpu', tile_size=16, progress=progress)
    else:
        decompress(source, output, 'cpu', progress=progress)
    print('done', flush=True)
''')


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp('scene')
    source = synthetic.write_scene(str(folder / 'scene.tif'), width=48, height=40, seed=5)
    compress(source, str(folder / 'scene.ehc'), 'pca', 5, 'cpu', tile_size=16)
    return source, str(folder / 'scene.ehc')


def _start(action, source, output, go):
    proc = subprocess.Popen([sys.executable, '-c', SLOW_RUN, action, source, output, go], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith('running'), proc.stderr.read()
    return proc


@pytest.mark.skipif(os.name != 'posix', reason='kill -9 is POSIX')
@pytest.mark.parametrize('action', ['compress', 'decompress'])
def test_a_killed_run_leaves_one_claim_folder_that_the_next_run_removes(scene, tmp_path, action):
    source, ehc = scene
    out = tmp_path / 'out'
    target = str(out / ('a.ehc' if action == 'compress' else 'a.tif'))
    proc = _start(action, source if action == 'compress' else ehc, target, str(tmp_path / 'never'))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left = os.listdir(out)
    assert left == [f'.{os.path.basename(target)}{CLAIM_SUFFIX}'], left
    assert json.load(open(out / left[0] / 'owner'))['pid'] == proc.pid
    compress(source, str(out / 'b.ehc'), 'pca', 5, 'cpu')  # any later run writing into this folder
    assert os.listdir(out) == ['b.ehc']


def test_two_runs_cannot_both_write_one_output(scene, tmp_path):
    source, _ = scene
    target, go = str(tmp_path / 'same.ehc'), str(tmp_path / 'go')
    first = _start('compress', source, target, go)
    try:
        with pytest.raises(OutputError, match=rf'another run \(process {first.pid}\) is writing .*same\.ehc; wait'):
            compress(source, target, 'pca', 5, 'cpu')
        with pytest.raises(OutputError, match='is writing'):
            outputs.check_writable(target)  # what every run checks first, before any long computation
        assert not os.path.exists(target)
    finally:
        open(go, 'w').close()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0 and 'done' in stdout, stderr
    assert sorted(os.listdir(tmp_path)) == ['go', 'same.ehc']


def test_one_process_cannot_claim_an_output_twice(scene, tmp_path):
    _, ehc = scene
    target = str(tmp_path / 'x.tif')
    with atomic_output(target) as tmp:
        with pytest.raises(OutputError, match='another run in this session is writing'):
            decompress(ehc, target, 'cpu')
        open(tmp, 'w').close()
    decompress(ehc, target, 'cpu')  # released: the next run may replace it
    assert os.listdir(tmp_path) == ['x.tif']


def _fake_claim(folder, name, **owner):
    claim = folder / f'.{name}{CLAIM_SUFFIX}'
    claim.mkdir()
    (claim / 'part.tif').write_bytes(b'partial')
    (claim / 'owner').write_text(json.dumps(owner))
    return claim


def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid  # reaped: no such process any more (pid reuse within the test is vanishingly unlikely)


def test_stale_claims_are_removed_and_live_or_foreign_ones_kept(tmp_path):
    host = outputs._HOST
    dead = _fake_claim(tmp_path, 'dead.tif', pid=_dead_pid(), host=host, token='x')
    same_pid_earlier_process = _fake_claim(tmp_path, 'mine.tif', pid=os.getpid(), host=host, token='earlier')
    alive = _fake_claim(tmp_path, 'alive.tif', pid=os.getppid(), host=host, token='x')
    foreign = _fake_claim(tmp_path, 'foreign.tif', pid=1, host=host + '-elsewhere', token='x')
    removed = remove_stale_temporaries(str(tmp_path))
    assert sorted(removed) == sorted([dead.name, same_pid_earlier_process.name])
    assert alive.exists() and foreign.exists()
    with pytest.raises(OutputError, match=rf'another run \(process {os.getppid()}\) is writing .*alive\.tif'):
        OutputClaim(str(tmp_path / 'alive.tif'))
    with pytest.raises(OutputError, match='elsewhere'):
        OutputClaim(str(tmp_path / 'foreign.tif'))


def test_old_temporaries_of_version_0_1_are_removed_after_a_day(tmp_path):
    old = [tmp_path / '.rec.tif.0123abcd.part.tif', tmp_path / '.rec.tif.0123abcd.part.tif.aux.xml',
           tmp_path / 'scene.ehc.89abcdef.part']
    young = tmp_path / 'other.ehc.deadbeef.part'
    unrelated = tmp_path / 'notes.part'
    for path in old + [young, unrelated]:
        path.write_text('x')
    for path in old + [unrelated]:
        os.utime(path, (time.time() - 2 * 86400,) * 2)
    assert sorted(remove_stale_temporaries(str(tmp_path))) == sorted(p.name for p in old)
    assert young.exists() and unrelated.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 192 KB tmpfs (needs root on Linux; skipped elsewhere)."""
    folder = tmp_path / 'small'
    folder.mkdir()
    if not sys.platform.startswith('linux'):
        pytest.skip('tmpfs is Linux')
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=192k', 'tmpfs', str(folder)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a small tmpfs here: {mounted.stderr.decode(errors="replace").strip()}')
    try:
        yield folder
    finally:
        if subprocess.run(['umount', str(folder)], check=False).returncode != 0:
            subprocess.run(['umount', '-l', str(folder)], check=False)  # never leave a mount behind


@pytest.mark.parametrize('exceptions', [False, True], ids=['GDAL exceptions off', 'GDAL exceptions on'])
def test_a_full_disk_says_so_and_leaves_nothing(scene, tmp_path, small_disk, capfd, monkeypatch, exceptions):
    from osgeo import gdal

    source = synthetic.write_scene(str(tmp_path / 'big.tif'), width=64, height=64, seed=4)
    lossless = str(tmp_path / 'big.ehc')
    compress(source, lossless, 'pca', None, 'cpu', max_error=0)
    assert os.path.getsize(lossless) > 192 * 1024
    runs = {'compress': lambda: compress(source, str(small_disk / 'x.ehc'), 'pca', None, 'cpu', max_error=0),
            'decompress (GDAL writing a GeoTIFF)': lambda: decompress(lossless, str(small_disk / 'x.tif'), 'cpu')}
    unraisable = []  # a GeoTIFF closed by the binding's destructor raised there with exceptions on (0.7.0)
    monkeypatch.setattr(sys, 'unraisablehook', lambda hook: unraisable.append(f'{hook.exc_value} in {hook.object}'))
    before = gdal.GetUseExceptions()
    gdal.UseExceptions() if exceptions else gdal.DontUseExceptions()
    try:
        for what, run in runs.items():
            with pytest.raises(OutputError, match=rf'not enough disk space in {small_disk}; ') as info:
                run()
            assert 'ERROR' not in capfd.readouterr().err, what  # GDAL's repeated complaints are not printed
            assert '.enmapcompress.part' not in str(info.value), what
            assert os.listdir(small_disk) == [], what
            del info
            gc.collect()
            assert unraisable == [], what
    finally:
        gdal.UseExceptions() if before else gdal.DontUseExceptions()


def test_a_full_disk_while_writing_a_report_or_probing_the_folder_says_so(tmp_path, small_disk):
    from enmap_compress.plugin.core.outputs import check_writable

    with pytest.raises(OutputError, match=rf'report\.html: not enough disk space in {small_disk}; '):
        with atomic_output(str(small_disk / 'report.html')) as tmp, open(tmp, 'w') as f:
            f.write('x' * 400_000)
    assert os.listdir(small_disk) == []
    with open(small_disk / 'filler', 'wb') as f, pytest.raises(OSError):
        f.write(b'x' * 400_000)
        f.flush()
    with pytest.raises(OutputError, match='not enough disk space'):
        check_writable(str(small_disk / 'out.tif'))


@pytest.mark.skipif(os.name != 'posix', reason='kill -9 is POSIX')
def test_a_killed_run_s_unpacked_zip_image_is_removed_by_the_next_run(tmp_path, monkeypatch):
    """Reading a product ZIP unpacks its image into the system's temporary folder; after kill -9 only a claim
    folder is left there, and the next run that needs a temporary folder removes it."""
    product = synthetic.write_product(str(tmp_path / 'p'), width=16, height=12, seed=3, make_zip=True)
    temp = tmp_path / 'temp'
    temp.mkdir()
    script = ('import sys, time\nfrom enmap_compress.plugin.core.enmap import open_spectral\n'
              'raster = open_spectral(sys.argv[1])\nraster.stage()\nprint("staged", flush=True)\ntime.sleep(600)\n')
    proc = subprocess.Popen([sys.executable, '-c', script, product.zip], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, TMPDIR=str(temp)))
    assert proc.stdout.readline().startswith('staged')
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left = os.listdir(temp)
    assert len(left) == 1 and left[0].endswith(CLAIM_SUFFIX), left
    assert any(n.endswith('SPECTRAL_IMAGE.TIF') for n in os.listdir(temp / left[0]))
    monkeypatch.setattr('tempfile.tempdir', str(temp))
    outputs.scratch_claim().abandon()
    assert os.listdir(temp) == []


@pytest.mark.skipif(os.name != 'posix', reason='POSIX permissions (the temporary folder is per user on Windows)')
def test_a_scratch_folder_is_private(tmp_path, monkeypatch):
    # before: made 0755 (0777 less the umask) in the shared /tmp, so any local user could read the product image a
    # ZIP unpacks there, or the reconstruction evaluate decodes there, whatever the original files' permissions
    monkeypatch.setattr('tempfile.tempdir', str(tmp_path))
    old = os.umask(0o022)
    try:
        claim = outputs.scratch_claim()
    finally:
        os.umask(old)
    output = OutputClaim(str(tmp_path / 'x.tif'))  # (an output's claim beside it: as the folder's other files)
    try:
        assert stat.S_IMODE(os.stat(claim.folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(output.folder).st_mode) == 0o777 & ~old
    finally:
        claim.abandon()
        output.abandon()


def test_evaluate_keeps_its_intermediate_file_in_a_scratch_claim(scene, tmp_path, monkeypatch):
    from enmap_compress.plugin.core.evaluate import evaluate

    source, _ = scene
    temp = tmp_path / 'temp'
    temp.mkdir()
    monkeypatch.setattr('tempfile.tempdir', str(temp))
    seen = []

    def progress(percent):
        seen.extend(n for n in os.listdir(temp) if n not in seen)

    evaluate(source, str(tmp_path / 'rec.tif'), 'pca', 5, 'cpu', progress=progress)
    assert seen and all(n.startswith('.enmapcompress-scratch-') and n.endswith(CLAIM_SUFFIX) for n in seen), seen
    assert os.listdir(temp) == []


@pytest.mark.parametrize('length', [235, 240, 255])
def test_an_output_name_near_the_file_name_limit_is_written(scene, tmp_path, length):
    """The claim folder `.<name>.enmapcompress.part` is 20 bytes longer than the name: 0.7.0 refused names of 236 to
    255 bytes as too long ("Choose an output folder you can write to")."""
    source, packed = scene
    for name, run in ((('x' * (length - 4)) + '.ehc', lambda out: compress(source, out, 'pca', 5, 'cpu', tile_size=16)),
                      (('y' * (length - 4)) + '.tif', lambda out: decompress(packed, out, 'cpu'))):
        folder = tmp_path / name[0]
        folder.mkdir()
        run(str(folder / name))
        assert os.listdir(folder) == [name]


class _FullFile:
    """A file object whose writes fail as on a full disk, after `room` bytes."""

    def __init__(self, handle, room):
        self.handle, self.room = handle, room

    def write(self, data):
        import errno

        if len(data) > self.room:
            raise OSError(errno.ENOSPC, 'No space left on device')
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)


@pytest.mark.parametrize('full', ['the .ehc file', 'the report'])
def test_a_full_disk_in_evaluate_names_the_output_not_its_claim_folder(scene, tmp_path, monkeypatch, full):
    """(Simulated, so it runs where no small file system can be mounted.) 0.7 said `Cannot write
    .../.c.ehc.enmapcompress.part/part.ehc: not enough disk space in .../.c.ehc.enmapcompress.part`."""
    import errno

    from enmap_compress.plugin.core import container, report
    from enmap_compress.plugin.core.evaluate import evaluate

    source, _ = scene
    if full == 'the .ehc file':
        opened = container._open_temp
        monkeypatch.setattr(container, '_open_temp', lambda path: (lambda c, f: (c, _FullFile(f, 4096)))(
            *opened(path)))
    else:
        def render(*_args, **_kwargs):
            raise OSError(errno.ENOSPC, 'No space left on device')
        monkeypatch.setattr(report, 'render_report', render)
    out = tmp_path / 'out'
    with pytest.raises(OutputError) as info:
        evaluate(source, str(out / 'r.tif'), 'pca', 5, 'cpu', compressed=str(out / 'c.ehc'),
                 report=str(out / 'r.html'))
    name = 'c.ehc' if full == 'the .ehc file' else 'r.html'
    assert str(info.value).startswith(f'Cannot write {out / name}: not enough disk space in {out}; '), info.value
    assert CLAIM_SUFFIX not in str(info.value)
    assert os.listdir(out) == []
