"""A product ZIP as DLR delivers it: read in place as fast as unpacked, with the same pixels, and no temporary
file left behind, also when the run is cancelled or the ZIP is damaged."""
import os
import tempfile
import threading
import zipfile

import numpy as np
import pytest
from held_resources import datasets_held_by
from osgeo import gdal

from enmap_compress.plugin.core import zipstage
from enmap_compress.plugin.core.codec import compress
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.errors import CancelledError, InputError
from enmap_compress.plugin.core.tiling import Progress, tile_grid
from tools import synthetic


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The system temporary folder, for this test alone: what the reader leaves there is visible."""
    folder = tmp_path / 'system_tmp'
    folder.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(folder))
    return folder


@pytest.fixture(scope='module')
def product(tmp_path_factory):
    return synthetic.write_product(tmp_path_factory.mktemp('zipped'), width=72, height=56, seed=5, make_zip=True)


def _walk(raster, tile=32):
    return [raster.read_canonical(t.x, t.y, t.width, t.height) for t in tile_grid(raster.width, raster.height, tile)]


def test_zip_pixels_equal_the_unpacked_product_and_the_copy_goes_on_close(product, private_tmp):
    with open_spectral(product.folder) as unpacked, open_spectral(product.zip) as zipped:
        assert zipped.needs_staging  # the synthetic ZIP is deflated, like DLR's
        expected, got = _walk(unpacked), _walk(zipped)
        assert not zipped.needs_staging, 'a walk over the image unpacks the member once'
        assert os.listdir(private_tmp), 'the unpacked copy lives in the temporary folder'
        assert all(np.array_equal(a, b) for a, b in zip(expected, got))
        assert np.array_equal(unpacked.dead_bands, zipped.dead_bands)
        assert not any(os.path.commonpath([str(product.folder), str(private_tmp / n)]) == str(product.folder)
                       for n in os.listdir(private_tmp))
    assert os.listdir(private_tmp) == [], 'close() removes the unpacked copy'


def test_small_reads_stay_in_place(product, private_tmp):
    with open_spectral(product.zip) as raster:
        raster.read(0, 0, raster.width, 2, bands=[0, 100, 200])  # what a dialog preview reads
        assert raster.needs_staging and os.listdir(private_tmp) == []


def test_a_stored_member_is_read_in_place(product, tmp_path, private_tmp):
    stored = tmp_path / 'stored.zip'
    with zipfile.ZipFile(product.zip) as source, zipfile.ZipFile(stored, 'w', zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    with open_spectral(product.folder) as unpacked, open_spectral(str(stored)) as raster:
        assert not raster.needs_staging
        assert all(np.array_equal(a, b) for a, b in zip(_walk(unpacked), _walk(raster)))
    assert os.listdir(private_tmp) == []


def test_cancelled_unpacking_leaves_nothing(product, private_tmp):
    with open_spectral(product.zip) as raster:
        with pytest.raises(CancelledError):
            raster.stage(Progress(1, is_cancelled=lambda: True))
        assert os.listdir(private_tmp) == []


def test_cancelled_compress_from_a_zip_leaves_nothing(product, tmp_path, private_tmp):
    calls = []

    def cancel_soon():
        calls.append(1)
        return len(calls) > 3

    output = tmp_path / 'cancelled.ehc'
    with pytest.raises(CancelledError):
        compress(product.zip, str(output), 'pca', 5, 'cpu', is_cancelled=cancel_soon)
    assert not output.exists() and os.listdir(private_tmp) == []


@pytest.mark.parametrize('seed', [None, 1, 3])
def test_a_damaged_member_is_one_clear_error_and_leaves_nothing(product, tmp_path, private_tmp, seed):
    """Zeros inside the image member (a bad CRC) or random bytes (here: a broken deflate stream)."""
    damaged = tmp_path / 'damaged.zip'
    data = bytearray(open(product.zip, 'rb').read())
    with zipfile.ZipFile(product.zip) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith('SPECTRAL_IMAGE.TIF'))
    start = info.header_offset + 30 + len(info.filename) + info.compress_size // (3 if seed is None else 10)
    rng = np.random.default_rng(seed)
    data[start:start + 4000] = bytes(4000) if seed is None else rng.integers(0, 256, 4000, np.uint8).tobytes()
    damaged.write_bytes(bytes(data))
    with open_spectral(str(damaged)) as raster:
        with pytest.raises(InputError, match='damaged'):
            raster.stage()  # may return before the damage is reached: a read that needs those bytes reports it
            _walk(raster)
    assert os.listdir(private_tmp) == []


def test_the_dead_bands_come_from_the_unpacking_without_a_second_pass(product, private_tmp, monkeypatch):
    with open_spectral(product.folder) as unpacked, open_spectral(product.zip) as zipped:
        expected = unpacked.dead_bands
        zipped.stage()

        def no_read(*args, **kwargs):
            raise AssertionError('the dead-band scan read the image again')

        monkeypatch.setattr(zipped, 'read', no_read)
        assert np.array_equal(zipped.dead_bands, expected) and expected.any()
        zipped.check_not_empty()


def _rewritten(source, target, method=zipfile.ZIP_DEFLATED, extra=b''):
    """The ZIP `source` written again with another compression method and an extra field in each local header."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, 'w') as new:
        for info in old.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type, copy.extra = method, extra
            new.writestr(copy, old.read(info))
    return str(target)


def _image_of(zip_path):
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
    member = next(info.filename for info in infos if info.filename.endswith('SPECTRAL_IMAGE.TIF'))
    return zipstage.zip_image(zip_path, infos, member)


@pytest.mark.parametrize('method, extra', [(zipfile.ZIP_DEFLATED, b'\xfe\xca\x04\x00abcd'),
                                           (zipfile.ZIP_LZMA, b''), (zipfile.ZIP_BZIP2, b'')])
def test_members_of_every_method_unpack_to_the_same_bytes(product, tmp_path, private_tmp, method, extra):
    image = _image_of(_rewritten(product.zip, tmp_path / 'other.zip', method, extra))
    staged, reason = zipstage.stage(image)
    assert reason is None
    try:
        with open(staged.path, 'rb') as got, open(product.image, 'rb') as expected:
            assert got.read() == expected.read()
    finally:
        staged.close()
    assert os.listdir(private_tmp) == []


def test_a_cancel_in_the_middle_of_the_unpacking_leaves_nothing(product, private_tmp, monkeypatch):
    monkeypatch.setattr(zipstage, 'IN_BLOCK', 4096)
    monkeypatch.setattr(zipstage, 'OUT_BLOCK', 8192)
    checks = []

    def cancel_later():
        checks.append(1)
        return len(checks) > 20

    with open_spectral(product.zip) as raster:
        with pytest.raises(CancelledError):
            raster.stage(Progress(1, is_cancelled=cancel_later))
        assert len(checks) == 21 and os.listdir(private_tmp) == []
        assert not [thread for thread in threading.enumerate() if thread.name.startswith('enmap_compress_unzip')]


def _patched(product, target, local_at, central_at, value):
    """The product ZIP with `value` written at `local_at` in its image member's local header and at `central_at`
    in its central directory entry (the two must agree, or GDAL refuses the ZIP at once)."""
    data = bytearray(open(product.zip, 'rb').read())
    with zipfile.ZipFile(product.zip) as archive:
        info = archive.getinfo(_image_of(product.zip).members[0])
    entry = data.rindex(b'PK\x01\x02', 0, data.rindex(info.filename.encode()))
    data[info.header_offset + local_at:info.header_offset + local_at + len(value)] = value
    data[entry + central_at:entry + central_at + len(value)] = value
    target.write_bytes(bytes(data))
    return str(target)


def test_a_wrong_crc_is_one_clear_error_and_leaves_nothing(product, tmp_path, private_tmp):
    """A deflate stream that inflates, but to other bytes than the CRC says."""
    damaged = _patched(product, tmp_path / 'crc.zip', 14, 16, bytes(4))
    with open_spectral(damaged) as raster:
        with pytest.raises(InputError, match=r'is damaged: its member .*SPECTRAL_IMAGE.TIF cannot be unpacked \(.*CRC'):
            raster.stage()
            _walk(raster)  # the last rows wait for the CRC
    assert os.listdir(private_tmp) == []
    output = tmp_path / 'from_damaged.ehc'
    with pytest.raises(InputError, match='CRC'):
        compress(damaged, str(output), 'pca', 5, 'cpu')
    assert not output.exists() and os.listdir(private_tmp) == []


def test_an_encrypted_member_is_one_clear_error(product, tmp_path, private_tmp):
    locked = _patched(product, tmp_path / 'locked.zip', 6, 8, b'\x01')  # general purpose flag bit 0
    with pytest.raises(InputError, match='encrypted'):
        zipstage.StagedImage(_image_of(locked))
    assert os.listdir(private_tmp) == []


@pytest.fixture(scope='module')
def row_ordered(product, tmp_path_factory):
    """The product ZIP with its image rewritten as GDAL leaves a large image written in row chunks: strips of 4 rows,
    the strips of all bands for one chunk next to each other, so the first rows lie at the member's start."""
    folder = tmp_path_factory.mktemp('row_ordered')
    source = gdal.Open(product.image)
    image = str(folder / os.path.basename(product.image))
    target = gdal.GetDriverByName('GTiff').Create(image, source.RasterXSize, source.RasterYSize, source.RasterCount,
                                                  gdal.GDT_Int16, ['INTERLEAVE=BAND', 'BLOCKYSIZE=4'])
    target.SetGeoTransform(source.GetGeoTransform())
    target.SetProjection(source.GetProjection())
    for index in range(1, source.RasterCount + 1):
        nodata = source.GetRasterBand(index).GetNoDataValue()
        if nodata is not None:
            target.GetRasterBand(index).SetNoDataValue(nodata)
    for y in range(0, source.RasterYSize, 8):
        rows = min(8, source.RasterYSize - y)
        target.WriteRaster(0, y, source.RasterXSize, rows, source.ReadRaster(0, y, source.RasterXSize, rows))
        target.FlushCache()  # this chunk's strips of every band go to the file now, after the last chunk's
    source = target = None
    zipped = folder / 'row_ordered.zip'
    with zipfile.ZipFile(product.zip) as old, zipfile.ZipFile(zipped, 'w', zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = open(image, 'rb').read() if info.filename.endswith('SPECTRAL_IMAGE.TIF') else old.read(info)
            new.writestr(info.filename, data)
    return str(zipped)


@pytest.fixture
def held_inflate(monkeypatch):
    """Small blocks, and the inflate stops after its 12th block until the test sets the returned Event."""
    monkeypatch.setattr(zipstage, 'IN_BLOCK', 65536)
    monkeypatch.setattr(zipstage, 'OUT_BLOCK', 65536)
    gate, reads, original = threading.Event(), [], zipstage._RawInflate.read

    def read(self):
        reads.append(1)
        if len(reads) == 12 and not gate.wait(60):
            raise AssertionError('the test never let the inflate go on')
        return original(self)

    monkeypatch.setattr(zipstage._RawInflate, 'read', read)
    yield gate
    gate.set()


def test_a_row_ordered_member_is_read_while_it_unpacks(product, row_ordered, private_tmp, held_inflate):
    with open_spectral(product.folder) as unpacked, open_spectral(row_ordered) as zipped:
        zipped.stage()
        assert not zipped._staged.complete, 'stage() returns once the dead bands are known'
        assert np.array_equal(zipped.dead_bands, unpacked.dead_bands)
        assert np.array_equal(zipped.read_canonical(0, 0, zipped.width, 4), unpacked.read_canonical(0, 0, 72, 4))
        held_inflate.set()
        assert all(np.array_equal(a, b) for a, b in zip(_walk(unpacked), _walk(zipped)))
        assert zipped._staged.complete
    assert os.listdir(private_tmp) == []


def test_a_cancel_while_a_read_waits_for_the_unpacking_leaves_nothing(row_ordered, private_tmp, held_inflate):
    cancelled, labels = [], []
    with open_spectral(row_ordered) as raster:
        raster.stage(Progress(1, is_cancelled=lambda: bool(cancelled), describe=labels.append))
        labels.clear()
        cancelled.append(True)
        with pytest.raises(CancelledError) as raised:
            raster.read(0, raster.height - 4, raster.width, 4)
        assert labels and labels[-1].startswith('unpacking the image from the ZIP'), 'the label says why it waits'
        held_inflate.set()
    assert os.listdir(private_tmp) == []
    assert datasets_held_by(raised.value) == [], 'the cancel keeps no file open'
    assert not [thread for thread in threading.enumerate() if thread.name.startswith('enmap_compress_unzip')]


def test_damage_past_the_first_rows_reaches_the_read_that_needs_it(row_ordered, tmp_path, private_tmp):
    data = bytearray(open(row_ordered, 'rb').read())
    with zipfile.ZipFile(row_ordered) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith('SPECTRAL_IMAGE.TIF'))
    start = info.header_offset + 30 + len(info.filename) + info.compress_size * 2 // 3
    data[start:start + 4000] = bytes(4000)
    damaged = tmp_path / 'damaged_late.zip'
    damaged.write_bytes(bytes(data))
    output = tmp_path / 'late.ehc'
    with pytest.raises(InputError, match='damaged') as raised:
        compress(str(damaged), str(output), 'pca', 5, 'cpu')
    assert not output.exists() and os.listdir(private_tmp) == []
    assert datasets_held_by(raised.value) == [], 'the failed compress keeps no file open'


def test_a_compress_that_starts_before_the_unpacking_ends_writes_the_same_file(product, row_ordered, tmp_path,
                                                                                private_tmp, held_inflate,
                                                                                monkeypatch):
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1700000000')
    expected, got = tmp_path / 'unpacked.ehc', tmp_path / 'zipped.ehc'
    compress(product.folder, str(expected), 'pca', 5, 'cpu')
    release = threading.Timer(0.5, held_inflate.set)  # the compress waits for its rows meanwhile
    release.start()
    try:
        compress(row_ordered, str(got), 'pca', 5, 'cpu')
    finally:
        release.cancel()
    assert got.read_bytes() == expected.read_bytes()
    assert os.listdir(private_tmp) == []


def test_a_read_waiting_for_the_unpacking_moves_the_bar_within_its_step(row_ordered, private_tmp, held_inflate):
    """The bar moves with the bytes a read waits for, through the first half of the current step (step 1 of 4:
    up to 12.5 %), never back (it stood still at the step's start while a compress waited for its first rows)."""
    seen = []
    with open_spectral(row_ordered) as raster:
        raster.stage()
        steps = Progress(4, seen.append)
        raster.report_waits_to(steps)
        release = threading.Timer(0.3, held_inflate.set)
        release.start()
        try:
            raster.read(0, raster.height - 4, raster.width, 4)  # the last rows: waits for the whole member
        finally:
            release.cancel()
        raster.report_waits_to(None)
    assert seen and seen == sorted(seen) and 0 < seen[-1] <= 12.5
    assert os.listdir(private_tmp) == []


def _understated(product, target, extra):
    """The product ZIP with `extra` zero bytes appended to its image's deflate stream, while the ZIP directory
    (and the CRC) still state the image alone: a small ZIP that inflates far past what it declares."""
    import struct
    import zlib

    with zipfile.ZipFile(product.zip) as source:
        members = {i.filename: source.read(i) for i in source.infolist() if not i.is_dir()}
    member = _image_of(product.zip).members[0]
    with zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            if name != member:
                archive.writestr(name, data)
        with archive.open(member, 'w') as sink:
            sink.write(members[member])
            sink.write(bytes(extra))
    image = members[member]
    packed = struct.pack('<L', zlib.crc32(image)), struct.pack('<L', len(image))
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as archive:
        offset = archive.getinfo(member).header_offset
    entry = data.rindex(b'PK\x01\x02', 0, data.rindex(member.encode()))
    for start, crc_at, size_at in ((offset, 14, 22), (entry, 16, 24)):
        data[start + crc_at:start + crc_at + 4], data[start + size_at:start + size_at + 4] = packed
    target.write_bytes(bytes(data))
    return str(target), len(image)


def test_a_member_that_inflates_past_its_declared_size_stops_before_the_disk_fills(product, tmp_path, private_tmp,
                                                                                 monkeypatch):
    """A zip bomb: the room check trusts the declared size, so the unpacking must not write past it (0.7.2 wrote
    all of the stream, 1000 x the ZIP's size, before its size check at the end)."""
    monkeypatch.setattr(zipstage, 'OUT_BLOCK', 64 * 1024)
    bomb, declared = _understated(product, tmp_path / 'bomb.zip', 16 * 2 ** 20)
    written = []
    real_write = zipstage._write_all
    monkeypatch.setattr(zipstage, '_write_all', lambda sink, block: (written.append(len(block)),
                                                                      real_write(sink, block)))
    with open_spectral(bomb) as raster:
        with pytest.raises(InputError, match='is damaged: .*more than the .* bytes the ZIP directory says'):
            raster.stage()
            _walk(raster)
    assert sum(written) <= declared + 2 * 2 ** 20  # (the sidecars, none here, and the image up to its size)
    assert os.listdir(private_tmp) == []


@pytest.mark.parametrize('member, name', [('P/P-SPECTRAL_IMAGE.TIF', 'P-SPECTRAL_IMAGE.TIF'),
                                          ('P\\P-SPECTRAL_IMAGE.TIF', 'P-SPECTRAL_IMAGE.TIF'),
                                          ('P/P-SPECTRAL_IMAGE.d/D:evil.dll', None), ('P/x:stream', None),
                                          ('P/', None), ('P/..', None)])
def test_a_member_is_unpacked_under_a_plain_name_in_the_scratch_folder(member, name):
    """On Windows os.path.join(folder, 'D:evil.dll') is 'D:evil.dll': a file outside the scratch folder."""
    if name is None:
        with pytest.raises(InputError, match='no file name that can be unpacked safely'):
            zipstage.staged_name(member)
    else:
        assert zipstage.staged_name(member) == name
