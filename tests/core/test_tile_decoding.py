"""Plain lossy tiles of a spatial model decoded as the graph makes them (TileCoder.decodes_tiles, TileBlocks): rdnet's
graph runs only on the blocks that hold a valid pixel, and the rounded values go straight into the output cube. The
same samples, bit for bit, as the graph on the whole grid and as the column path the other files take."""
import functools

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import codec
from enmap_compress.plugin.core.geotiff import output_values, rounded_values
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model
from enmap_compress.plugin.core.tilepayload import decode_mask
from enmap_compress.plugin.core.tiling import Tile, kept_slices
from enmap_compress.plugin.core.transforms import SpatialTransform, _block_spans, _cells_of
from enmap_compress.plugin.core.validation import open_checked
from tools import synthetic


def _with_holes(path, dtype='int16', band_order='wavelength'):
    """A 100 x 90 scene (edges not on the 8 px block grid) with nodata rectangles, a stripe and a corner."""
    synthetic.write_scene(path, width=100, height=90, seed=4, dtype=dtype, band_order=band_order)
    ds = gdal.Open(path, gdal.GA_Update)
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        cube = band.ReadAsArray()
        nodata = band.GetNoDataValue()
        cube[3:40, 0:61] = nodata
        cube[50:53, :] = nodata
        cube[:, 97:] = nodata
        cube[70:, 80:] = nodata
        band.WriteArray(cube)
    ds = None
    return path


@pytest.fixture(scope='module')
def holed(tmp_path_factory):
    folder = tmp_path_factory.mktemp('holes')
    files = {}
    for name, dtype, order in (('int16', 'int16', 'wavelength'), ('float32', 'float32', 'wavelength'),
                               ('detector', 'int16', 'detector')):
        ehc = str(folder / f'{name}.ehc')
        codec.compress(_with_holes(str(folder / f'{name}.tif'), dtype, order), ehc, 'rdnet', 5, 'cpu', 1,
                       tile_size=48)
        files[name] = ehc
    return files


def _tiles(ehc, threads=1):
    """(coder, raster header, [(tile, window, payload)]) of a file."""
    reader, checked = open_checked(ehc)
    with reader:
        coder, _runner = codec.decoder_for(checked.codec, 'cpu', threads, checked.raster, True)
        raster = checked.raster
        items = []
        for index in range(reader.chunk_count):
            tile = Tile.from_dict(reader.chunk_meta(index))
            items.append((tile, coder.transform.window(tile, raster['width'], raster['height']),
                          reader.read_chunk(index)))
    return coder, raster, items


@pytest.mark.parametrize('threads', [1, 2])
def test_the_blocks_with_valid_pixels_decode_as_on_the_whole_grid(holed, threads):
    coder, _raster, items = _tiles(holed['int16'], threads)
    transform, sparse = coder.transform, 0
    assert coder.decodes_tiles and transform.separate_blocks
    for tile, window, payload in items:
        sections = coder.unpack(payload)
        kept = kept_slices(tile, window)
        valid = np.zeros((window.height, window.width), bool)
        valid[kept] = decode_mask(sections.mask, tile.height, tile.width)
        geometry = transform.latent_geometry(valid, kept)
        symbols = coder.latent_coder.decode(sections.latent, geometry)
        latent = coder.latent_coder.dequantise(symbols)
        blocks = transform.decode_tile(latent, valid, kept)
        if blocks is None:
            assert not valid.any()
            continue
        sparse += blocks.spans is not None
        # the coder's latent made at the decoded cells only (what TileCoder.decode passes): the same bits
        made = transform.decode_tile(functools.partial(coder.latent_coder.dequantise, symbols), valid, kept)
        assert np.array_equal(made.values.view(np.int32), blocks.values.view(np.int32))
        rows, columns = geometry.grid.shape
        whole = coder.runner.run('decoder', latent.reshape(1, -1, rows, columns))[0][:, :tile.height, :tile.width]
        assert np.array_equal(blocks.cube()[:, valid], whole[:, valid])
    assert sparse >= 2  # the holes leave tiles with blocks to skip


@pytest.mark.parametrize('name', ['int16', 'float32', 'detector'])
def test_tile_cubes_equal_those_of_the_column_path(holed, name, monkeypatch):
    coder, raster, items = _tiles(holed[name])
    dead = np.zeros(raster['band_count'], bool)
    dead[np.asarray(raster['dead_bands'], int)] = True
    dead = dead[np.asarray(raster['canonical_index'], int)]
    fill = codec.header_fill(raster)

    def cubes():
        return [codec.decode_tile(coder, payload, tile, window, raster['dtype'], raster['nodata'], dead, fill)
                for tile, window, payload in items]

    assert coder.decodes_tiles
    fast = cubes()
    monkeypatch.setattr(codec.TileCoder, 'decodes_tiles', property(lambda self: False))
    for ours, columns in zip(fast, cubes()):
        assert ours.dtype == columns.dtype and ours.shape == columns.shape
        assert np.array_equal(ours, columns, equal_nan=ours.dtype.kind == 'f')


def test_the_decompressed_geotiff_is_the_column_path_s(holed, tmp_path, monkeypatch):
    codec.decompress(holed['detector'], str(tmp_path / 'fast.tif'), 'cpu', 2)
    monkeypatch.setattr(codec.TileCoder, 'decodes_tiles', property(lambda self: False))
    codec.decompress(holed['detector'], str(tmp_path / 'columns.tif'), 'cpu', 2)
    fast, columns = (gdal.Open(str(tmp_path / f'{n}.tif')).ReadAsArray() for n in ('fast', 'columns'))
    assert np.array_equal(fast, columns)


@pytest.mark.parametrize('threads', [1, 2, 4])
def test_blocks_decode_alone_as_on_the_whole_grid_from_the_stated_count(threads):
    """decodes_alone's bound on this machine's onnxruntime: from max(2, 5/4 x threads) blocks, any set of them
    decodes alone bit for bit as on the whole grid (the grid and the blocks are random; rows of a real latent)."""
    package = find_model('rdnet')
    transform = SpatialTransform(OnnxRunner(package, 'cpu', threads), package.meta)
    rng = np.random.default_rng(threads)
    rows, columns = 9, 12
    latent = np.zeros((transform.channels, rows * columns), np.float32)
    live = rng.choice(transform.channels, 1500, replace=False)
    latent[live] = rng.laplace(scale=0.05, size=(live.size, rows * columns))
    whole = transform.runner.run('decoder', latent.reshape(1, -1, rows, columns))[0]
    blocks = whole.reshape(len(whole), rows, 8, columns, 8)
    tried = 0
    for count in range(1, 40):
        occupied = np.zeros(rows * columns, bool)
        occupied[rng.choice(rows * columns, count, replace=False)] = True
        spans = _block_spans(occupied.reshape(rows, columns))
        cells = int(spans[:, 3].sum())
        if not transform.decodes_alone(cells, rows * columns):
            continue
        tried += 1
        row = transform._decode_spans(_cells_of(latent, latent.size), spans, columns).reshape(len(whole), 8, cells, 8)
        for r, c0, at, n in spans:  # (bands, 8, n, 8) both
            assert np.array_equal(row[:, :, at:at + n], blocks[:, r, :, c0:c0 + n])
    assert tried >= 10


def test_block_spans_run_from_the_first_to_the_last_occupied_cell_of_each_row():
    occupied = np.array([[0, 1, 0, 1, 0],
                         [0, 0, 0, 0, 0],
                         [1, 1, 1, 1, 1],
                         [0, 0, 0, 0, 1]], bool)
    assert _block_spans(occupied).tolist() == [[0, 1, 0, 3], [2, 0, 3, 5], [3, 4, 8, 1]]
    assert _block_spans(np.zeros((2, 3), bool)).shape == (0, 4)


def test_rounded_values_are_output_values_before_the_cast():
    values = np.array([40000.4, -40000.0, 2.5, 3.5, -32768.0, -32767.6, 0.49], np.float32)
    for dtype, nodata in (('int16', -32768), ('int16', None), ('uint16', 0), ('float32', None)):
        rounded = rounded_values(values.copy(), dtype, nodata)
        assert np.array_equal(rounded.astype(dtype), output_values(values.copy(), dtype, nodata))


@pytest.mark.parametrize('dtype, nodata, moved_to', [('int16', 0, 1), ('int16', -9999, -9998), ('uint16', 0, 1),
                                                      ('uint16', 65535, 65534), ('int16', -32768, -32767)])
def test_a_lossy_value_never_reads_as_nodata(dtype, nodata, moved_to):
    """Rounded onto nodata, a lossy value moves one DN inside the type's range; an exact one stays (its encoder
    lists such samples in the tile's sample section); values elsewhere are untouched."""
    values = np.array([nodata - 0.4, nodata + 0.3, nodata, 1234.6, nodata - 7.0], np.float32)
    lossy = output_values(values.copy(), dtype, nodata)
    exact = output_values(values.copy(), dtype, nodata, exact=True)
    info = np.iinfo(dtype)
    assert lossy[:3].tolist() == [moved_to] * 3
    assert lossy[3] == 1235 and lossy[4] == np.clip(nodata - 7, info.min + (nodata == info.min), info.max)
    assert exact[:3].tolist() == [max(nodata, info.min)] * 3 or nodata == info.min
    assert (rounded_values(values.copy(), dtype, nodata).astype(dtype) == lossy).all()


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_a_lossy_float_value_never_reads_as_nodata(dtype):
    values = np.array([0.0, -0.0, 1e-3, -9999.0, np.nan], np.float32)
    above_9999 = np.nextafter(np.float32(-9999), np.float32(0))
    for nodata, expected in ((0.0, np.finfo(np.float32).tiny), (-9999.0, above_9999)):
        out = output_values(values.copy(), dtype, nodata)
        hit = values == np.float32(nodata)
        assert not (out == nodata).any() and np.all(out[hit] == np.asarray(expected, dtype))
        assert np.array_equal(out[~hit], values[~hit].astype(dtype), equal_nan=True)
        assert np.array_equal(output_values(values.copy(), dtype, nodata, exact=True), values.astype(dtype),
                              equal_nan=True)
    assert np.array_equal(output_values(values.copy(), dtype, float('nan')), values.astype(dtype), equal_nan=True)


def test_reused_cubes_hold_the_same_values_as_fresh_ones(holed):
    """decoded_tiles(reuse=True), as decompress writes: each cube in one array, valid until the next is asked for."""
    for name in ('int16', 'float32'):
        reader, checked = open_checked(holed[name])
        with reader:
            coder = codec.decoder_for(checked.codec, 'cpu', 2, checked.raster, True)[0]
            fresh = [cube for _tile, cube in codec.decoded_tiles(reader, coder, checked.raster, 1)]
            reused, bases = [], set()
            for _tile, cube in codec.decoded_tiles(reader, coder, checked.raster, 1, reuse=True):
                reused.append(cube.copy())
                bases.add(id(cube.base))
        assert len(bases) == 1 and len(fresh) == len(reused) > 1
        assert all(np.array_equal(a, b, equal_nan=name == 'float32') for a, b in zip(fresh, reused))
