"""Band-coded residuals (bandstream.py): exact round trips, escapes, platform-independent tables, corrupt streams,
the rate against the per-channel tables of entropy.py, and files of the previous residual coder still decoding."""
import hashlib

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import bandstream, codec, entropy
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError
from tools import synthetic

gdal.UseExceptions()


def _noise(rng, bands, samples):
    """Residual-like bands: Laplace, Gaussian and in between, at scales from 0.2 to 300."""
    scales = np.geomspace(0.2, 300, bands)
    out = np.empty((bands, samples), np.int64)
    for band, scale in enumerate(scales):
        draw = rng.laplace if band % 2 else rng.normal
        out[band] = np.rint(draw(0, scale, samples))
    return out


@pytest.mark.parametrize('bands, samples', [(9, 1000), (3, 1), (2, 0), (0, 5), (1, 16384)])
def test_round_trip_is_exact(bands, samples):
    values = _noise(np.random.default_rng(bands + samples), bands, samples)
    assert np.array_equal(bandstream.decode(bandstream.encode(values), values.shape), values)


def test_zero_bands_escapes_and_int32_extremes_round_trip():
    values = _noise(np.random.default_rng(1), 6, 700)
    values[1] = 0  # all zeros: no table, nothing coded
    values[2, [3, 500]] = [2 ** 31 - 1, -2 ** 31]  # far beyond any table: escaped
    values[4, :40] = 40000  # a heavy tail
    data = bandstream.encode(values.astype(np.int32))
    assert np.array_equal(bandstream.decode(data, values.shape), values)


def test_values_beyond_int32_are_refused():
    with pytest.raises(ValueError, match='int32'):
        bandstream.encode(np.array([[0, 2 ** 31]], np.int64))


def test_tables_are_the_formula_and_frozen():
    for code, shape in ((40, 0), (60, 2), (75, 4), (100, 3), (20, 1)):
        weights = bandstream.table(code, shape)
        width = bandstream.half_width(code, shape)
        q = np.arange(-width, width + 1)
        expected = np.exp(-(np.abs(q) / 2.0 ** ((code - 48) / 8)) ** bandstream.SHAPES[shape])
        assert weights.size == 2 * width + 2 and weights[-1] == bandstream.ESCAPE_WEIGHT
        assert np.allclose(weights[:-1], expected, rtol=1e-12, atol=1e-300)
    # the decoder's tables must be the same float64 numbers on every platform: these bytes were computed on Linux
    digest = hashlib.sha256(b''.join(bandstream.table(c, s).tobytes() for c in range(1, 256, 7)
                                     for s in range(len(bandstream.SHAPES)))).hexdigest()
    assert digest == FROZEN_TABLES


FROZEN_TABLES = '40c0985a2d3b6ca26f9087c31cdbe5a36dbfc572854882b355a0033cfe9486f5'


def test_smaller_than_per_channel_tables_on_residual_like_noise():
    values = _noise(np.random.default_rng(2), 40, 1024)
    assert len(bandstream.encode(values)) < 0.985 * len(entropy.encode_channels(values))


@pytest.mark.parametrize('damage', ['truncate', 'side', 'version', 'extra'])  # payload bytes: the chunk CRC
def test_a_corrupt_stream_is_a_format_error(damage):
    values = _noise(np.random.default_rng(4), 5, 300)
    data = bytearray(bandstream.encode(values))
    if damage == 'truncate':
        data = data[:len(data) // 2]
    elif damage == 'side':
        data[17] ^= 0xFF
    elif damage == 'version':
        data[0] = 9
    else:
        data += b'\x00' * 4
    with pytest.raises(FormatError):
        bandstream.decode(bytes(data), values.shape)
    with pytest.raises(FormatError, match='expected'):
        bandstream.decode(bandstream.encode(values), (5, 301))


_POST_INIT = codec.TileCoder.__post_init__


def _previous_default(coder):
    """How 0.2 chose: predicted residuals for absolute bounds, plain ones for relative bounds, both entropy-coded."""
    if coder.residual_coder is None and coder.bound is not None:
        coder.residual_coder = 'plain' if coder.bound.relative_error else 'predicted-v1'
    _POST_INIT(coder)


@pytest.mark.parametrize('bound, before, now', [({'max_error': 0}, 'predicted-v1', bandstream.CODER_ID),
                                                ({'relative_error': 0.01, 'relative_floor': 2}, None,
                                                 bandstream.PLAIN_CODER_ID)])
def test_files_of_the_previous_residual_coders_still_decode(tmp_path, monkeypatch, bound, before, now):
    path = synthetic.write_scene(str(tmp_path / 's.tif'), width=19, height=13, seed=5)
    original = gdal.Open(path).ReadAsArray().astype(np.int64)
    restored = {}
    for previous in (True, False):
        with monkeypatch.context() as patch:
            if previous:
                patch.setattr(codec.TileCoder, '__post_init__', _previous_default)
            ehc = str(tmp_path / f'{previous}.ehc')
            compress(path, ehc, 'pca', None, 'cpu', tile_size=8, **bound)
        with EhcReader(ehc) as reader:
            stated = reader.header['codec'].get('residual_coder')
        assert stated == (before if previous else now)
        rec = str(tmp_path / f'{previous}.tif')
        decompress(ehc, rec, 'cpu')
        restored[previous] = gdal.Open(rec).ReadAsArray().astype(np.int64)
    if bound.get('max_error') == 0:
        assert np.array_equal(restored[True], original)
    assert np.array_equal(restored[True], restored[False])  # same symbols, only coded differently


# a stream written by the first version of the coder (0.3): every later version must decode it to these values
FROZEN_STREAM = ('0103000000280000000e0000003000000078daf3da66c9c2c00200064401424b605b876f57268871f3631508c01e274a'
                 '5ce794764fac48946ef4d916d6c056f7d36a5f3fadad90ece60b580e0000007cfcffffffffff7f')


def test_a_frozen_stream_decodes_to_its_values():
    values = ((np.arange(120, dtype=np.int64) * 37) % 23 - 11).reshape(3, 40)
    values[1] = 0
    values[2] //= 4
    values[2, 7], values[0, 3] = 2 ** 31 - 1, -900
    assert np.array_equal(bandstream.decode(bytes.fromhex(FROZEN_STREAM), values.shape), values)
