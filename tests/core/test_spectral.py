"""Spectral prediction of the extra bands in lossless files: exact round trips, and smaller files than before."""
import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import spectral
from enmap_compress.plugin.core.codec import EXTRA_SPECTRAL, compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.tilepayload import COMPACT
from tools import synthetic

gdal.UseExceptions()


def _bands(rng, count, pixels):
    base = rng.normal(2000, 800, pixels)
    return np.stack([np.rint(base * (1 + 0.01 * b) + rng.normal(0, 5 + b, pixels)) for b in range(count)])


def test_round_trip_is_exact_for_any_integers():
    rng = np.random.default_rng(1)
    values = _bands(rng, 8, 300)
    values[5, :4] = [-32768, 32767, -1, 2 ** 23]  # extreme values in an extra band and outliers
    values[1, 10] = -(2 ** 23)
    coded, extra = np.array([0, 1, 2, 6, 7]), np.array([3, 4, 5])
    bands = np.concatenate([coded, extra])
    rows = {int(b): i for i, b in enumerate(bands)}
    table = values[bands]
    valid = np.ones((15, 20), bool)
    data = spectral.encode(table, rows, extra, coded, valid)
    damaged = table.copy()
    damaged[len(coded):] = 0
    spectral.decode(data, damaged, rows, extra, coded, valid)
    assert np.array_equal(damaged, table)
    assert spectral.references(extra, coded) == [[1, 2, 6], [2, 3, 6], [3, 4, 6]]
    with pytest.raises(FormatError):
        spectral.decode(data[:-9], table.copy(), rows, extra, coded, valid)
    with pytest.raises(FormatError):
        spectral.decode(data, table.copy(), rows, extra[:2], coded, valid)


def test_lossless_files_predict_the_extra_bands(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 's.tif'), width=20, height=18, seed=8)
    ehc, rec = str(tmp_path / 's.ehc'), str(tmp_path / 's.tif.out.tif')
    compress(path, ehc, 'pca', None, 'cpu', max_error=0, tile_size=12)
    decompress(ehc, rec, 'cpu')
    assert np.array_equal(gdal.Open(path).ReadAsArray(), gdal.Open(rec).ReadAsArray())
    with EhcReader(ehc) as reader:
        assert reader.header['codec']['extra_coder'] == EXTRA_SPECTRAL
        # 3.x: compact heads of mask, latent, extra, residual, checksum (1.x / 2.x files: payload version 4)
        assert {reader.read_chunk(i)[0] for i in range(reader.chunk_count)} == {COMPACT + 5}
