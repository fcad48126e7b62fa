"""Error-bounded (near-lossless) and lossless modes: the guarantee holds on every valid sample."""
import html
import os

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.codec import auto_quality, compress, decompress, residual_symbols
from enmap_compress.plugin.core.errors import InputError
from enmap_compress.plugin.core.evaluate import evaluate
from enmap_compress.plugin.core.runtime import find_model
from tools import synthetic

gdal.UseExceptions()
DROPPED = np.r_[126:141, 160:167]  # 0-based canonical indices outside the HySpecNet 202


@pytest.fixture(scope='module')
def awkward_scene(tmp_path_factory):
    """A synthetic scene with negative DN, DN above 10000 and a lone nodata sample inside a valid pixel."""
    path = synthetic.write_scene(str(tmp_path_factory.mktemp('eb') / 'scene.tif'), width=40, height=36, seed=11)
    ds = gdal.Open(path, gdal.GA_Update)
    band = ds.GetRasterBand(20)
    data = band.ReadAsArray()
    data[18, 5:9] = [-500, -1, 10500, 32000]
    band.WriteArray(data)
    band = ds.GetRasterBand(150)
    data = band.ReadAsArray()
    data[20, 20] = -32768
    band.WriteArray(data)
    ds = None
    return path


def _read(path):
    return gdal.Open(path).ReadAsArray().astype(np.int64)


def test_residual_quantiser_respects_the_bound():
    residual = np.arange(-300, 301)
    for bound in (0, 1, 5, 25):
        symbols = residual_symbols(residual, bound)
        assert np.abs(residual - symbols * (2 * bound + 1)).max() <= bound


@pytest.mark.parametrize('bound', [3, 25])
def test_near_lossless_bound_holds_on_every_valid_coded_sample(awkward_scene, tmp_path, bound):
    ehc, rec = str(tmp_path / 'e.ehc'), str(tmp_path / 'e.tif')
    compress(awkward_scene, ehc, 'pca', None, 'cpu', max_error=bound, tile_size=16)
    decompress(ehc, rec, 'cpu')
    a, b = _read(awkward_scene), _read(rec)
    valid = ~(a == -32768).all(axis=0)
    coded = np.setdiff1d(np.arange(224), DROPPED)
    live = coded[~(a[coded] == -32768).all(axis=(1, 2))]
    assert np.abs(a[live][:, valid] - b[live][:, valid]).max() <= bound
    assert (b[:, ~valid] == -32768).all()


def test_lossless_is_bit_exact_for_all_224_bands(awkward_scene, tmp_path):
    ehc, rec = str(tmp_path / 'l.ehc'), str(tmp_path / 'l.tif')
    result = compress(awkward_scene, ehc, 'pca', None, 'cpu', max_error=0)
    decompress(ehc, rec, 'cpu')
    np.testing.assert_array_equal(_read(awkward_scene), _read(rec))
    assert result.max_error == 0


@pytest.mark.parametrize('model', ['pca', 'rdnet'])
def test_residuals_beyond_2_to_24_are_coded_exactly(tmp_path, model):
    """Gain 1 and offset 16.76e6: the model base lies near -2^24 (within BASE_LIMIT) and the int16 DN near 30000,
    so residuals pass 2^24. 0.7.0 formed them in float32, lost their last bit and refused the tile as an internal
    error."""
    path = synthetic.write_scene(str(tmp_path / 'offset.tif'), width=8, height=8, seed=2)
    ds = gdal.Open(path, gdal.GA_Update)
    rng = np.random.default_rng(0)
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        band.WriteArray(rng.integers(20000, 32768, (8, 8)).astype(np.int16))
        band.SetScale(1.0)
        band.SetOffset(16760000.0)
    ds = None
    for bound in (0, 10):
        packed = str(tmp_path / f'{model}_{bound}.ehc')
        compress(path, packed, model, None, 'cpu', max_error=bound)
        decompress(packed, str(tmp_path / f'{model}_{bound}.tif'), 'cpu')
        error = np.abs(_read(str(tmp_path / f'{model}_{bound}.tif')) - _read(path))
        assert (error if bound == 0 else np.delete(error, DROPPED, axis=0)).max() <= bound  # (bands it restores)


def test_fractional_float_input_is_refused_for_error_bounds(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 'f.tif'), width=12, height=10, seed=2, dtype='float32')
    ds = gdal.Open(path, gdal.GA_Update)
    band = ds.GetRasterBand(30)
    data = band.ReadAsArray()
    data[5, 5] += 0.25
    band.WriteArray(data)
    ds = None
    with pytest.raises(InputError, match='integer DN'):
        compress(path, str(tmp_path / 'f.ehc'), 'pca', None, 'cpu', max_error=5)
    assert not os.path.exists(tmp_path / 'f.ehc')


def test_bad_bounds_are_refused(awkward_scene, tmp_path):
    for bad in (-1, 2.5):
        with pytest.raises(InputError, match='MAX_ERROR'):
            compress(awkward_scene, str(tmp_path / 'x.ehc'), 'pca', None, 'cpu', max_error=bad)


def test_auto_quality_follows_the_bound():
    package = find_model('pca')
    levels = [auto_quality(package, bound) for bound in (0, 5, 10, 25, 50, 100)]
    assert levels == sorted(levels, reverse=True) and levels[0] > levels[-1]


def test_error_bounds_on_held_out_potsdam_tiles(potsdam_tile_paths, tmp_path):
    """Rates over the tiles from bytes on disk: lossless under 6.5 bpppb over 224 bands, bounds always held."""
    held = [p for p in potsdam_tile_paths if os.path.basename(p) in
            ('enmap_potsdam_tile_128_0.tif', 'enmap_potsdam_tile_64_32.tif', 'enmap_potsdam_tile_96_96.tif')]
    for bound in (0, 25):
        bits = pixels = 0
        for path in held:
            result = evaluate(path, str(tmp_path / 'r.tif'), 'pca', None, 'cpu', compressed=str(tmp_path / 'r.ehc'),
                              max_error=bound)
            assert result.max_abs_error_dn <= bound
            bits += result.file_bytes * 8
            pixels += result.valid_pixels
        if bound == 0:
            assert bits / (pixels * 224) < 6.5
        else:
            assert bits / (pixels * 202) < 1.2


def test_report_and_error_layer_state_the_bound(awkward_scene, tmp_path):
    result = evaluate(awkward_scene, str(tmp_path / 'r.tif'), 'pca', None, 'cpu', error=str(tmp_path / 'e.tif'),
                      report=str(tmp_path / 'r.html'), max_error=9)
    text = (tmp_path / 'r.html').read_text(encoding='utf-8')
    assert 'Guaranteed error bound' in text and '9 DN' in text
    meta = gdal.Open(str(tmp_path / 'e.tif')).GetMetadata()
    assert meta['max_error_bound_dn'] == '9'
    assert float(meta['achieved_max_abs_error_dn']) == result.max_abs_error_dn <= 9


def test_the_report_states_every_kind_of_bound_and_its_units(awkward_scene, tmp_path):
    """The report showed the guaranteed bound of MAX_ERROR only (a relative or per-band one was left out), and for
    an input at another scale said '4 DN' beside a maximum error of 8 DN at EnMAP's scale: a bound seemingly broken."""
    report = tmp_path / 'r.html'
    evaluate(awkward_scene, str(tmp_path / 'r.tif'), 'pca', None, 'cpu', report=str(report), relative_error=0.01,
             relative_floor=3)
    text = report.read_text(encoding='utf-8')
    assert 'Guaranteed error bound' in text and '1 % of the value, at least 3 DN' in text
    scaled = str(tmp_path / 'scaled.tif')
    gdal.Translate(scaled, awkward_scene)
    ds = gdal.Open(scaled, gdal.GA_Update)
    for index in range(1, ds.RasterCount + 1):
        ds.GetRasterBand(index).SetScale(2e-4)  # reflectance = value x 2e-4: one stored unit is 2 EnMAP DN
        ds.GetRasterBand(index).SetOffset(0.0)
    ds = None
    result = evaluate(scaled, str(tmp_path / 's.tif'), 'pca', None, 'cpu', report=str(report), max_error=4)
    assert not result.enmap_scale and 4 < result.max_abs_error_dn <= 8
    text = report.read_text(encoding='utf-8')
    assert '&lt;= 4 DN (input units)' in text and "in the input's own units" in html.unescape(text)


def test_error_bound_and_lossless_hold_with_the_learned_prior_model(awkward_scene, tmp_path):
    from enmap_compress.plugin.core.runtime import list_models

    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    for bound in (0, 10):
        ehc, rec = str(tmp_path / f'rd{bound}.ehc'), str(tmp_path / f'rd{bound}.tif')
        compress(awkward_scene, ehc, 'rdnet', None, 'cpu', max_error=bound, tile_size=16)
        decompress(ehc, rec, 'cpu')
        a, b = _read(awkward_scene), _read(rec)
        valid = ~(a == -32768).all(axis=0)
        if bound == 0:
            assert np.array_equal(a, b)
        else:
            coded = np.setdiff1d(np.arange(224), DROPPED)
            live = coded[~(a[coded] == -32768).all(axis=(1, 2))]
            assert np.abs(a[live][:, valid] - b[live][:, valid]).max() <= bound


@pytest.fixture(scope='module')
def dark_scene_nodata_0(tmp_path_factory):
    """Dark water with nodata 0 (1-40 DN, as SWIR bands over water), the synthetic scene's nodata border kept as
    0, and lone 0 samples inside valid pixels of coded bands."""
    base = synthetic.write_scene(str(tmp_path_factory.mktemp('dark') / 'base.tif'), width=24, height=20, seed=5)
    path = base.replace('base.tif', 'dark.tif')
    ds = gdal.Translate(path, base, noData=0)
    cube = ds.ReadAsArray()
    border = (cube == -32768).all(axis=0)
    dark = np.clip(np.abs(cube.astype(np.int64)) // 250, 1, 40)
    dark[:, border] = 0
    dark[29, 10, 10] = dark[30, 5, 7] = dark[199, 12, 3] = 0  # lone nodata samples
    for index in range(224):
        ds.GetRasterBand(index + 1).WriteArray(dark[index])
    ds = None
    return path


@pytest.mark.parametrize('model, quality, bound', [('rdnet', 3, None), ('rdnet', None, 2), ('pca', None, 5),
                                                   ('rdnet', None, 0)])
def test_no_valid_sample_comes_back_as_nodata_nor_a_nodata_sample_as_data(dark_scene_nodata_0, tmp_path, model,
                                                                          quality, bound):
    """0.5.3 turned a fifth of the valid samples within 3 DN of nodata 0 into nodata at MAX_ERROR 2 (a value within
    the bound was 0), lossy ones too when nodata was not the type's minimum, and gave lone nodata samples of
    error-bounded files a value within the bound."""
    ehc, rec = str(tmp_path / 'd.ehc'), str(tmp_path / 'd.tif')
    compress(dark_scene_nodata_0, ehc, model, quality, 'cpu', max_error=bound, tile_size=16)
    decompress(ehc, rec, 'cpu')
    a, b = _read(dark_scene_nodata_0), _read(rec)
    valid = ~(a == 0).all(axis=0)
    restored = np.setdiff1d(np.arange(224), DROPPED) if bound != 0 else np.arange(224)
    near = (a[restored][:, valid] <= 3).sum()
    assert near > 1000  # the test means something: many valid samples lie within 3 DN of nodata
    assert np.array_equal(a[restored][:, valid] == 0, b[restored][:, valid] == 0)
    assert (b[:, ~valid] == 0).all()
    if bound is not None:
        assert np.abs(a[restored][:, valid] - b[restored][:, valid]).max() <= bound


@pytest.mark.parametrize('dtype, nodata', [('float32', float(-np.finfo(np.float32).max)), ('int32', -2.0 ** 31)])
def test_a_lone_nodata_sample_beyond_2_to_23_comes_back_as_nodata(tmp_path, dtype, nodata):
    """GDAL's usual nodata of Float32 (-3.4e38) and Int32 (-2^31) lie beyond the +-2^23 DN an error bound codes:
    a lone nodata sample in a valid pixel was coded as data, so the whole image was refused ('MAX_ERROR needs DN
    values within +-8388608'); it is restored exactly as nodata, as in lossy mode."""
    path = str(tmp_path / 'lone.tif')
    cube = np.random.default_rng(3).integers(100, 5000, (224, 6, 5)).astype(dtype)
    cube[:, 0, 0] = nodata  # a nodata pixel
    cube[40, 3, 2] = cube[130, 1, 1] = nodata  # lone nodata samples: a coded band, a water-vapour band
    ds = gdal.GetDriverByName('GTiff').Create(path, 5, 6, 224, gdal.GDT_Float32 if dtype == 'float32' else
                                              gdal.GDT_Int32)
    for index in range(224):
        ds.GetRasterBand(index + 1).SetNoDataValue(nodata)
        ds.GetRasterBand(index + 1).WriteArray(cube[index])
    ds = None
    for bound in (0, 3):
        ehc, rec = str(tmp_path / f'{bound}.ehc'), str(tmp_path / f'{bound}.tif')
        compress(path, ehc, 'pca', None, 'cpu', max_error=bound)
        decompress(ehc, rec, 'cpu')
        out = gdal.Open(rec).ReadAsArray()
        if bound == 0:
            assert out.dtype == cube.dtype and np.array_equal(out, cube)
            continue
        assert out[40, 3, 2] == nodata and (out[:, 0, 0] == nodata).all()
        coded = np.setdiff1d(np.arange(224), DROPPED)
        error = np.abs(out[coded].astype(np.float64) - cube[coded])
        error[coded == 40, 3, 2] = 0
        assert np.delete(error.reshape(len(coded), -1), 0, axis=1).max() <= bound


def test_a_bound_over_2_to_23_holds_in_a_float32_output(tmp_path):
    """Offset 8388611 (gain 1) puts the model base near -2^23 and the DN near +2^23, so at MAX_ERROR 16777200 the
    restored values pass 2^24, beyond float32's integers: written, odd ones rounded one DN past the bound."""
    path = str(tmp_path / 'far.tif')
    cube = (2 ** 23 - np.random.default_rng(0).integers(0, 64, (224, 16, 16))).astype(np.float32)
    ds = gdal.GetDriverByName('GTiff').Create(path, 16, 16, 224, gdal.GDT_Float32)
    for index in range(224):
        band = ds.GetRasterBand(index + 1)
        band.WriteArray(cube[index])
        band.SetScale(1.0)
        band.SetOffset(8388611.0)
    ds = None
    bound = 16777200
    compress(path, str(tmp_path / 'far.ehc'), 'pca', None, 'cpu', max_error=bound)
    decompress(str(tmp_path / 'far.ehc'), str(tmp_path / 'far_rec.tif'), 'cpu')
    error = np.abs(gdal.Open(str(tmp_path / 'far_rec.tif')).ReadAsArray().astype(np.float64) - cube)
    assert np.delete(error, DROPPED, axis=0).max() <= bound
