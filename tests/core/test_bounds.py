"""Per-band and relative error bounds: parsing, the quantisers' guarantee, and round trips through the codec."""
import math
import os

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.bounds import GRID_LIMIT, NO_LIMIT, ErrorBound, _grid, error_bound, uniform_bound
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError, InputError
from enmap_compress.plugin.core.evaluate import evaluate
from enmap_compress.plugin.core.tilepayload import COMPACT
from tools import synthetic

gdal.UseExceptions()
WATER_VAPOUR = np.r_[126:141, 160:167]  # 0-based band indices of the 22 water-vapour bands


@pytest.fixture(scope='module')
def awkward_scene(tmp_path_factory):
    """Synthetic scene (canonical band order) with negative DN, DN above 10000 and a lone nodata sample."""
    path = synthetic.write_scene(str(tmp_path_factory.mktemp('bounds') / 'scene.tif'), width=30, height=26, seed=5)
    ds = gdal.Open(path, gdal.GA_Update)
    for band, row, values in ((20, 7, [-500, -1, 10500, 32000]), (128, 3, [-20, 15000, 0, 1])):
        data = ds.GetRasterBand(band).ReadAsArray()
        data[row, 5:9] = values
        ds.GetRasterBand(band).WriteArray(data)
    data = ds.GetRasterBand(150).ReadAsArray()
    data[12, 12] = -32768
    ds.GetRasterBand(150).WriteArray(data)
    ds = None
    return path


def _read(path):
    return gdal.Open(path).ReadAsArray().astype(np.int64)


def _assert_within(bound, original, restored, all_bands=True):
    """Every valid sample of every live band (of the HySpecNet 202 unless all_bands) lies within its own limit."""
    valid = ~(original == -32768).all(axis=0)
    live = ~(original == -32768).all(axis=(1, 2))
    if not all_bands:
        live[WATER_VAPOUR] = False
        assert (restored[WATER_VAPOUR] == -32768).all()
    live = np.flatnonzero(live)
    a, b = original[live][:, valid], restored[live][:, valid]
    assert (np.abs(a - b) <= bound.limits(a, live)).all()
    assert (restored[:, ~valid] == -32768).all()


def _round_trip(tmp_path, source, **bounds):
    ehc, rec = str(tmp_path / 'b.ehc'), str(tmp_path / 'b.tif')
    result = compress(source, ehc, 'pca', None, 'cpu', tile_size=16, **bounds)
    decompress(ehc, rec, 'cpu')
    return result, ehc, _read(rec)


# --- parsing ---------------------------------------------------------------------------------------------------

def test_the_bound_spec_from_each_parameter():
    assert error_bound() is None and error_bound('', '', '', None) is None
    assert error_bound(max_error='7') == uniform_bound(7) and error_bound(max_error=7).uniform == 7
    bands = ','.join(['2'] * 100 + ['30'] * 124)
    spec = error_bound(band_max_errors=bands)
    assert spec.band_max_errors == (2,) * 100 + (30,) * 124 and spec.uniform is None
    assert error_bound(max_error=10, band_max_errors=bands).band_max_errors == (2,) * 100 + (10,) * 124
    assert error_bound(band_max_errors=[0] * 224).lossless
    relative = error_bound(relative_error='0.01', relative_floor='3')
    assert (relative.relative_error, relative.relative_floor, relative.band_max_errors) == (0.01, 3, None)
    assert relative.describe() == '<= 1 % of the value, at least 3 DN'
    assert ErrorBound.from_codec_info({'error_bound': relative.codec_info()}) == relative
    assert ErrorBound.from_codec_info({'max_error': 4}) == uniform_bound(4)
    assert ErrorBound.from_codec_info({'max_error': None}) is None


def test_a_csv_file_of_band_bounds(tmp_path):
    path = tmp_path / 'bounds.csv'
    rows = ['band,max_error_dn', '# looser in the water-vapour bands'] + [
        f'{b},{40 if b - 1 in WATER_VAPOUR else 5}' for b in range(224, 0, -1)]
    path.write_text('\n'.join(rows) + '\n', encoding='utf-8')
    spec = error_bound(band_max_errors=str(path))
    assert spec.band_max_errors[0] == 5 and spec.band_max_errors[126] == 40 and spec.band_max_errors[223] == 5
    path.write_text('\n'.join(f'{b};{b % 3}' for b in range(1, 225)), encoding='utf-8')  # semicolons, no header
    assert error_bound(band_max_errors=str(path)).band_max_errors[:4] == (1, 2, 0, 1)


def test_a_csv_file_saved_by_excel_on_windows_is_read(tmp_path):
    """Excel's "CSV" on Windows is in the ANSI code page (cp1252), semicolons in a German locale: 0.7.3 refused the
    file for the "ü" of its header row (not UTF-8); a damaged number is still refused."""
    path = tmp_path / 'Fehlergrenzen.csv'
    rows = ['Kanal;Maximaler Fehler für den Kanal (DN)'] + [f'{b};{b % 7}' for b in range(1, 225)]
    path.write_bytes('\r\n'.join(rows).encode('cp1252') + b'\r\n')
    assert error_bound(band_max_errors=str(path)).band_max_errors[:8] == (1, 2, 3, 4, 5, 6, 0, 1)
    path.write_bytes('\r\n'.join(rows[:-1] + ['224;5µ']).encode('cp1252'))  # (not UTF-8: read as 5\ufffd)
    with pytest.raises(InputError, match='band 224'):
        error_bound(band_max_errors=str(path))


@pytest.mark.parametrize('kwargs, words', [
    ({'max_error': -1}, 'MAX_ERROR'), ({'max_error': 2.5}, 'MAX_ERROR'), ({'max_error': 'five'}, 'MAX_ERROR'),
    ({'band_max_errors': '1,2,3'}, 'give 224 values'),
    ({'band_max_errors': ','.join(['1'] * 223 + ['-4'])}, 'band 224'),
    ({'band_max_errors': ','.join(['1'] * 223 + ['x'])}, 'band 224'), ({'band_max_errors': [1.5] * 224}, 'band 1'),
    ({'band_max_errors': ','.join(['nan'] * 224)}, 'band 1'), ({'band_max_errors': 'missing.csv'}, 'cannot read'),
    ({'relative_error': 0}, 'RELATIVE_ERROR'), ({'relative_error': 1.5}, 'RELATIVE_ERROR'),
    ({'relative_error': 'abc'}, 'RELATIVE_ERROR'), ({'relative_floor': 2}, 'needs RELATIVE_ERROR'),
    ({'relative_error': 0.01, 'relative_floor': -2}, 'RELATIVE_FLOOR')])
def test_bad_values_get_one_clear_message(kwargs, words):
    with pytest.raises(InputError, match=words):
        error_bound(**kwargs)


def test_bad_csv_files(tmp_path):
    path = tmp_path / 'b.csv'
    for text, words in (('\n'.join(f'{b},1' for b in range(1, 224)), 'missing: 224'),
                        ('\n'.join(f'{b},1' for b in [*range(1, 225), 5]), 'band 5 is listed twice'),
                        ('\n'.join(f'{b},1' for b in range(1, 225)) + '\n300,1', 'not an EnMAP band'),
                        ('band,bound\n1,2,3', 'band,bound'), ('\n'.join(f'{b},-1' for b in range(1, 225)), 'line 1'),
                        ('1.0,5\n' + '\n'.join(f'{b},1' for b in range(2, 225)), "line 1.: '1.0' is not a band"),
                        ('\n'.join(f'{b},1' for b in range(1, 225)) + '\n# ' + 'x' * 140_000, 'line 225.: not a CSV'),
                        ('# ' + 'x' * (1 << 20), 'larger than 1024 KB')):
        path.write_text(text, encoding='utf-8')
        with pytest.raises(InputError, match=words):
            error_bound(band_max_errors=str(path))


def test_a_corrupt_header_bound_is_a_format_error():
    for spec in ({'band_max_errors': [1] * 10}, {'band_max_errors': None, 'relative_error': None},
                 {'band_max_errors': None, 'relative_error': 7.0}, 'x'):
        with pytest.raises(FormatError):
            ErrorBound.from_codec_info({'error_bound': spec})


# --- the quantisers -----------------------------------------------------------------------------------------------

def _grid_cell_by_cell(absolute, relative, floor):
    """The grid as its definition makes it, a cell at a time (bounds._grid before it made runs of cells)."""
    def limit(x):
        return min(absolute, max(floor, math.floor(relative * x)))

    starts, centres, start = [0], [0], limit(0) + 1
    while start <= GRID_LIMIT:
        m = limit(start)
        if m == absolute:
            return starts, centres, start, 2 * m + 1
        starts.append(start)
        centres.append(start + m)
        start += 2 * m + 1
    return starts, centres, start, 0


@pytest.mark.parametrize('absolute, relative, floor', [(5, 0.02, 1), (NO_LIMIT, 0.01, 0), (0, 0.05, 3), (3, 0.3, 7),
                                                       (40, 0.001, 2), (10 ** 6, 1e-4, 0), (1000, 0.0123, 5),
                                                       (NO_LIMIT, 0.333, 1), (1, 1e-4, 0), (NO_LIMIT, 1.0, 50)])
def test_the_grid_is_made_as_its_definition_makes_it(absolute, relative, floor):
    _grid.cache_clear()
    grid = _grid(absolute, relative, floor)
    starts, centres, tail_start, tail_width = _grid_cell_by_cell(absolute, relative, floor)
    assert np.array_equal(grid.starts, starts) and np.array_equal(grid.centres, centres)
    assert (grid.tail_start, grid.tail_width) == (tail_start, tail_width)


@pytest.mark.parametrize('absolute, relative, floor', [(5, 0.02, 1), (NO_LIMIT, 0.01, 0), (0, 0.05, 3),
                                                       (40, 0.001, 2), (NO_LIMIT, 1.0, 0)])
def test_the_grid_keeps_every_integer_within_its_limit(absolute, relative, floor):
    grid = _grid(absolute, relative, floor)
    x = np.arange(-70000, 70001)
    restored = grid.centre(grid.index(x))
    limit = np.minimum(absolute, np.maximum(floor, np.floor(relative * np.abs(x))))
    assert (np.abs(x - restored) <= limit).all()
    base = np.random.default_rng(0).integers(-40000, 40000, x.size)
    assert (grid.restore(base, grid.symbols(x, base)) == restored).all()  # any base: the same cell


# --- round trips ------------------------------------------------------------------------------------------------

def test_per_band_bounds_hold_on_every_sample_and_the_header_states_them(awkward_scene, tmp_path):
    bands = [0] * 20 + [3] * 106 + [60] * 15 + [8] * 19 + [60] * 7 + [1] * 57  # looser in the water-vapour bands
    result, ehc, restored = _round_trip(tmp_path, awkward_scene, band_max_errors=','.join(map(str, bands)))
    spec = error_bound(band_max_errors=bands)
    _assert_within(spec, _read(awkward_scene), restored)
    assert (restored[WATER_VAPOUR] != -32768).any()  # every band is coded
    assert np.array_equal(restored[:20], _read(awkward_scene)[:20])  # bound 0: exact
    with EhcReader(ehc) as reader:
        codec = reader.header['codec']
        versions = {reader.read_chunk(i)[0] for i in range(reader.chunk_count)}
    assert codec['max_error'] is None and ErrorBound.from_codec_info(codec) == spec
    # 3.x: compact heads (mask ... checksum), which older readers refuse clearly; + 8: the tile of the lone
    # nodata sample, restored from its sample section
    assert versions == {COMPACT + 5, COMPACT + 8 + 5}
    assert result.error_bound == spec and result.max_error is None


def test_relative_bounds_hold_on_every_sample(awkward_scene, tmp_path):
    for kwargs in ({'relative_error': 0.01, 'relative_floor': 2},
                   {'relative_error': 0.05, 'relative_floor': 1, 'max_error': 25}):
        _, ehc, restored = _round_trip(tmp_path, awkward_scene, **kwargs)
        original = _read(awkward_scene)
        _assert_within(error_bound(**kwargs), original, restored, all_bands=False)
        keep = np.setdiff1d(np.arange(224), WATER_VAPOUR)
        assert np.abs(original[keep] - restored[keep]).max() > kwargs['relative_floor']  # the bound is used


def test_a_plain_max_error_file_states_only_max_error(awkward_scene, tmp_path):
    _, ehc, restored = _round_trip(tmp_path, awkward_scene, max_error=4)
    with EhcReader(ehc) as reader:
        codec = reader.header['codec']
        versions = {reader.read_chunk(i)[0] for i in range(reader.chunk_count)}
    assert codec['max_error'] == 4 and 'error_bound' not in codec
    assert codec['residual_coder'] == 'predicted-v2'
    assert versions == {COMPACT + 4, COMPACT + 8 + 4}  # 1.x / 2.x: version 4 (+ 8: the lone
    # nodata sample's tile)
    _assert_within(uniform_bound(4), _read(awkward_scene), restored, all_bands=False)


def test_all_zero_band_bounds_are_lossless(awkward_scene, tmp_path):
    _, _, restored = _round_trip(tmp_path, awkward_scene, band_max_errors=[0] * 224)
    assert np.array_equal(restored, _read(awkward_scene))


def test_evaluate_takes_the_bounds(awkward_scene, tmp_path):
    result = evaluate(awkward_scene, str(tmp_path / 'r.tif'), 'pca', None, 'cpu', error=str(tmp_path / 'e.tif'),
                      relative_error=0.02, relative_floor=4)
    assert result.error_bound == '<= 2 % of the value, at least 4 DN' and result.max_error is None
    assert gdal.Open(str(tmp_path / 'e.tif')).GetMetadata()['max_error_bound_dn'] == result.error_bound


def test_bad_bounds_write_nothing(awkward_scene, tmp_path):
    with pytest.raises(InputError, match='BAND_MAX_ERRORS'):
        compress(awkward_scene, str(tmp_path / 'x.ehc'), 'pca', None, 'cpu', band_max_errors='1,2')
    assert not os.path.exists(tmp_path / 'x.ehc')

