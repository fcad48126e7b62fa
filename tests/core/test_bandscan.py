"""The dead-band scan that reads a band-interleaved TIFF's bytes as they stream out of a product ZIP: the same
answer as a pass over the pixels for every byte order, TIFF flavour and block split, and no answer (so the reader
scans as before) for layouts it does not read."""
import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.bandscan import StreamedBandScan

NODATA = -32768
SHAPE = (5, 37, 23)  # bands, rows, columns


def _invalid(values):
    invalid = ~np.isfinite(values) if values.dtype.kind == 'f' else np.zeros(values.shape, dtype=bool)
    return invalid | (values == np.asarray(NODATA).astype(values.dtype))


def _cube(dtype):
    """Bands 1 and 3 all nodata; band 4 has one valid pixel, in its last row; the others are noisy data."""
    rng = np.random.default_rng(7)
    cube = rng.integers(0, 9000, SHAPE).astype(dtype)
    cube[[1, 3]] = NODATA
    cube[4] = NODATA
    cube[4, -1, -1] = 17
    if np.dtype(dtype).kind == 'f':
        cube[1, 5, 5] = np.nan  # NaN counts as nodata
    return cube


def _tiff_bytes(tmp_path, cube, options):
    path = str(tmp_path / 'image.tif')
    kind = {np.dtype(np.int16): gdal.GDT_Int16, np.dtype(np.uint16): gdal.GDT_UInt16,
            np.dtype(np.float32): gdal.GDT_Float32}[cube.dtype]
    ds = gdal.GetDriverByName('GTiff').Create(path, SHAPE[2], SHAPE[1], SHAPE[0], kind, options)
    for index, band in enumerate(cube):
        ds.GetRasterBand(index + 1).WriteArray(band)
    ds = None
    with open(path, 'rb') as handle:
        return handle.read()


def _scan(data, dtype, sizes):
    scan = StreamedBandScan(SHAPE, dtype, _invalid)
    offset, index = 0, 0
    while offset < len(data):
        size = int(sizes[index % len(sizes)])
        scan.feed(offset, data[offset:offset + size])
        offset, index = offset + size, index + 1
    return scan.has_valid


@pytest.mark.parametrize('dtype', [np.int16, np.uint16, np.float32])
@pytest.mark.parametrize('options', [
    ['INTERLEAVE=BAND'], ['INTERLEAVE=BAND', 'ENDIANNESS=BIG'], ['INTERLEAVE=BAND', 'BIGTIFF=YES'],
    ['INTERLEAVE=BAND', 'BLOCKYSIZE=5'], ['INTERLEAVE=BAND', 'BLOCKYSIZE=1', 'ENDIANNESS=BIG', 'BIGTIFF=YES']])
@pytest.mark.parametrize('sizes', [[10 ** 7], [1], [3, 1, 7, 2], [4093, 5, 1]])
def test_the_streamed_scan_finds_the_bands_a_pass_over_the_pixels_finds(tmp_path, dtype, options, sizes):
    if np.dtype(dtype) == np.uint16:
        dtype_cube = _cube(np.int32).clip(0).astype(np.uint16)  # no -32768 in uint16: every pixel is valid
    else:
        dtype_cube = _cube(dtype)
    data = _tiff_bytes(tmp_path, dtype_cube, options)
    expected = ~_invalid(dtype_cube).reshape(SHAPE[0], -1).all(axis=1)
    got = _scan(data, dtype, sizes)
    assert got is not None, 'a band-interleaved uncompressed strip TIFF is read'
    assert np.array_equal(got, expected)
    if np.dtype(dtype) != np.uint16:
        assert got.tolist() == [True, False, True, False, True]


@pytest.mark.parametrize('options', [['INTERLEAVE=PIXEL'], ['INTERLEAVE=BAND', 'TILED=YES', 'BLOCKXSIZE=16',
                                                            'BLOCKYSIZE=16'], ['INTERLEAVE=BAND', 'COMPRESS=DEFLATE']])
def test_layouts_it_does_not_read_give_no_answer(tmp_path, options):
    data = _tiff_bytes(tmp_path, _cube(np.int16), options)
    assert _scan(data, np.int16, [1000]) is None


def test_a_stream_that_stops_short_or_skips_gives_no_answer(tmp_path):
    data = _tiff_bytes(tmp_path, _cube(np.int16), ['INTERLEAVE=BAND'])
    assert _scan(data[:-2], np.int16, [512]) is None
    scan = StreamedBandScan(SHAPE, np.int16, _invalid)
    scan.feed(0, data[:1000])
    scan.feed(1001, data[1001:])  # a gap: the bytes are not the member's
    assert scan.has_valid is None


def test_a_geometry_that_does_not_match_gives_no_answer(tmp_path):
    data = _tiff_bytes(tmp_path, _cube(np.int16), ['INTERLEAVE=BAND'])
    for shape, dtype in (((5, 37, 22), np.int16), ((4, 37, 23), np.int16), (SHAPE, np.int32), (SHAPE, np.uint16)):
        scan = StreamedBandScan(shape, dtype, _invalid)
        scan.feed(0, data)
        assert scan.has_valid is None, (shape, dtype)


def test_not_a_tiff_gives_no_answer():
    scan = StreamedBandScan(SHAPE, np.int16, _invalid)
    scan.feed(0, b'ENVI\n' + bytes(10000))
    assert scan.has_valid is None


def test_it_settles_once_every_band_the_metadata_does_not_call_dead_has_a_valid_pixel(tmp_path):
    """Bands 1 and 3 are dead by the metadata (ignored): the answer is final once bands 0, 2 and 4 show a valid
    pixel, before the last bytes when the strips lie in row order; without the metadata it waits for the end."""
    cube = _cube(np.int16)
    cube[4, 0, 0] = 17  # band 4's first valid pixel is now in its first row
    path = str(tmp_path / 'rows.tif')
    ds = gdal.GetDriverByName('GTiff').Create(path, SHAPE[2], SHAPE[1], SHAPE[0], gdal.GDT_Int16,
                                              ['INTERLEAVE=BAND', 'BLOCKYSIZE=2'])
    for y in range(0, SHAPE[1], 2):  # row chunk by row chunk: each chunk's strips of every band together
        rows = cube[:, y:y + 2]
        ds.WriteRaster(0, y, SHAPE[2], rows.shape[1], rows.tobytes())
        ds.FlushCache()
    ds = None
    data = open(path, 'rb').read()
    for ignore, settles_early in (([False, True, False, True, False], True), (None, False)):
        scan = StreamedBandScan(SHAPE, np.int16, _invalid, ignore=ignore)
        settled_at = None
        for offset in range(0, len(data), 256):
            scan.feed(offset, data[offset:offset + 256])
            if settled_at is None and scan.settled:
                settled_at = offset + 256
        assert (settled_at is not None and settled_at < len(data) // 2) == settles_early, (ignore, settled_at)
        assert scan.has_valid[[0, 2, 4]].all()
        if ignore is None:
            assert scan.has_valid.tolist() == [True, False, True, False, True]
