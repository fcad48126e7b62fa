"""Float rasters with NaN and ±Inf: nothing non-finite reaches a model, and every mode restores them exactly."""
import os

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import samples, tilepayload
from enmap_compress.plugin.core.bands import band_set
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError, InputError
from enmap_compress.plugin.core.evaluate import evaluate
from tools import synthetic

CODED_BAND = 30  # 1-based, a HySpecNet band (coded by every model)
WATER_BAND = 135  # 1-based, a water-vapour band (coded only with CODE_ALL_BANDS or lossless)


def _float_scene(path, dtype='float32', nodata='nan', specials=(), width=24, height=20):
    """A synthetic scene as `dtype`: its nodata border becomes NaN (nodata 'nan'), stays at a numeric nodata
    (a number) or becomes NaN without any nodata declared (None); `specials`: (band, row, col, value)."""
    base = synthetic.write_scene(path + '.int16.tif', width=width, height=height, seed=7)
    ds = gdal.Translate(path, base, outputType=gdal.GetDataTypeByName(dtype.capitalize()),
                        noData='none' if nodata is None else nodata)
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        data = band.ReadAsArray()
        data[data == -32768] = np.nan if nodata is None else float(nodata)
        for number, row, col, value in specials:
            if number == index:
                data[row, col] = value
        band.WriteArray(data)
    ds = None
    os.remove(base)
    return path


def _read(path):
    return gdal.Open(path).ReadAsArray()


def _nodata(path):
    ds = gdal.Open(path)  # held: a band outliving its dataset crashes GDAL
    return ds.GetRasterBand(1).GetNoDataValue()


def _round_trip(tmp_path, source, name, **options):
    ehc, rec = str(tmp_path / f'{name}.ehc'), str(tmp_path / f'{name}.tif')
    result = compress(source, ehc, options.pop('model', 'pca'), options.pop('quality', 8), 'cpu', **options)
    decompress(ehc, rec, 'cpu')
    return result, _read(source), _read(rec)


SPECIALS = ((CODED_BAND, 10, 10, np.nan), (CODED_BAND + 1, 11, 12, np.inf), (CODED_BAND + 2, 12, 7, -np.inf))


@pytest.mark.parametrize('model', ['pca', 'rdnet'])
def test_a_nan_sample_in_a_valid_pixel_does_not_damage_its_tile(tmp_path, model):
    """Finding 1: one NaN sample turned thousands of samples of its tile into errors of up to 1e12 DN."""
    source = _float_scene(str(tmp_path / 'nan.tif'), specials=SPECIALS)
    result, a, b = _round_trip(tmp_path, source, model, model=model)
    for number, row, col, value in SPECIALS:
        assert np.array_equal(b[number - 1, row, col], value, equal_nan=True)
    live = np.isfinite(a) & np.isfinite(b)
    assert np.abs(a[live] - b[live]).max() < 1000  # lossy, but nowhere near the 1e12 DN of the bug
    assert any('3 NaN or infinite samples' in w for w in result.warnings)


def test_every_finite_sample_of_a_valid_pixel_stays_finite(tmp_path):
    source = _float_scene(str(tmp_path / 'fin.tif'), specials=SPECIALS)
    _, a, b = _round_trip(tmp_path, source, 'fin', code_all_bands=True)
    valid = ~np.isnan(a).all(axis=0)
    assert np.isfinite(b[:, valid][np.isfinite(a[:, valid])]).all()  # code_all_bands: every live band is restored


@pytest.mark.parametrize('nodata', [None, 'nan', -9999.0])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_lossless_is_bit_exact_with_nan_positions(tmp_path, dtype, nodata):
    """Finding 2: without a nodata value, NaN pixels came back as 0.0 even with MAX_ERROR=0."""
    specials = SPECIALS + ((WATER_BAND, 5, 5, np.nan), (CODED_BAND, 3, 3, -0.0), (CODED_BAND, 0, 0, np.nan))
    source = _float_scene(str(tmp_path / 'l.tif'), dtype, nodata, specials)
    _, a, b = _round_trip(tmp_path, source, 'l', quality=None, max_error=0)
    assert a.dtype == b.dtype == np.dtype(dtype)
    assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(np.signbit(a), np.signbit(b))
    out = _nodata(str(tmp_path / 'l.tif'))
    assert (out is None) if nodata is None else np.array_equal(out, float(nodata), equal_nan=True)


def test_nan_pixels_of_a_raster_with_a_numeric_nodata_are_exact_in_lossless_mode(tmp_path):
    """NaN in every band of a pixel although nodata is -9999: a nodata pixel whose NaN comes back as NaN."""
    source = _float_scene(str(tmp_path / 'm.tif'), 'float32', -9999.0)
    ds = gdal.Open(source, gdal.GA_Update)
    for index in range(1, 225):
        band = ds.GetRasterBand(index)
        data = band.ReadAsArray()
        data[8, 4:9] = np.nan
        band.WriteArray(data)
    ds = None
    _, a, b = _round_trip(tmp_path, source, 'm', quality=None, max_error=0)
    assert np.isnan(a[:, 8, 4:9]).all() and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_lossless_keeps_the_sign_and_payload_of_the_nan_of_nodata_pixels(tmp_path, dtype):
    """numpy's 0 / 0 is -NaN on x86: nodata pixels of -NaN (or of a NaN with a payload) came back as the fill
    value's +NaN from a lossless file, equal as numbers but not bit for bit."""
    bits = np.dtype(f'u{np.dtype(dtype).itemsize}')
    odd = np.array([0xFFC00000, 0x7FC00123] if dtype == 'float32' else [0xFFF8 << 48, (0x7FF8 << 48) + 0x123], bits)
    source = _float_scene(str(tmp_path / 'odd_nan.tif'), dtype, 'nan', width=12, height=10)
    ds = gdal.Open(source, gdal.GA_Update)
    for index in range(1, 225):
        band = ds.GetRasterBand(index)
        data = band.ReadAsArray()
        data[4, 2:4] = odd.view(dtype)  # two nodata pixels
        band.WriteArray(data)
    ds = None
    _, a, b = _round_trip(tmp_path, source, 'n', quality=None, max_error=0)
    assert np.array_equal(a[:, 4, 2:4].view(bits), np.broadcast_to(odd, (224, 2)))
    assert np.array_equal(a.view(bits), b.view(bits))


def test_nodata_pixels_without_a_declared_nodata_are_nan_in_lossy_mode(tmp_path):
    source = _float_scene(str(tmp_path / 'n.tif'), nodata=None)
    _, a, b = _round_trip(tmp_path, source, 'n')
    border = np.isnan(a).all(axis=0)
    assert border.any() and np.isnan(b[:, border]).all()
    assert _nodata(str(tmp_path / 'n.tif')) is None


def test_error_bound_holds_and_non_finite_samples_come_back(tmp_path):
    source = _float_scene(str(tmp_path / 'e.tif'), specials=SPECIALS)
    _, a, b = _round_trip(tmp_path, source, 'e', quality=None, max_error=4)
    for number, row, col, value in SPECIALS:
        assert np.array_equal(b[number - 1, row, col], value, equal_nan=True)
    coded = np.isfinite(a) & np.isfinite(b)
    assert np.abs(a[coded] - b[coded]).max() <= 4


def test_lossless_refuses_values_float32_cannot_hold(tmp_path):
    source = _float_scene(str(tmp_path / 'big.tif'), 'float64', specials=((CODED_BAND, 4, 4, 2.0 ** 24 + 1),))
    with pytest.raises(InputError, match=rf'1 samples in band {CODED_BAND} lie outside'):
        compress(source, str(tmp_path / 'big.ehc'), 'pca', None, 'cpu', max_error=0)
    assert not os.path.exists(tmp_path / 'big.ehc')


def test_files_without_non_finite_samples_keep_the_old_payload_version(tmp_path):
    """Only tiles that need the sample section have one (chunk version 3 in 1.x / 2.x files, which 0.1 readers
    refuse clearly; 3.x files mark it in their compact head byte)."""
    source = _float_scene(str(tmp_path / 'v.tif'), nodata=None, width=40, height=20,
                          specials=((CODED_BAND, 10, 30, np.nan),))
    ehc = str(tmp_path / 'v.ehc')
    compress(source, ehc, 'pca', 5, 'cpu', tile_size=20)
    with EhcReader(ehc) as reader:
        versions = [reader.read_chunk(i)[0] for i in range(reader.chunk_count)]
        assert reader.header['raster']['fill'] != reader.header['raster']['fill']  # NaN
    assert versions == [tilepayload.COMPACT + 2, tilepayload.COMPACT + 8 + 2]


def test_evaluate_measures_only_finite_samples(tmp_path):
    source = _float_scene(str(tmp_path / 'ev.tif'), specials=SPECIALS)
    result = evaluate(source, str(tmp_path / 'ev_rec.tif'), 'pca', 8, 'cpu')
    assert np.isfinite([result.psnr, result.sa_deg, result.max_abs_error_dn]).all()
    assert 40 < result.psnr < 100


def test_sample_section_round_trips_and_rejects_damage():
    canonical = np.zeros((4, 3, 5), np.float32)
    positions = np.array([0, 7, 8, 59])
    values = np.array([np.nan, np.inf, -np.inf, 3.5], np.float32)
    section = samples.pack(positions, values, np.float32)
    restored = canonical.copy()
    samples.restore(restored, section)
    assert np.array_equal(restored.reshape(-1)[positions], values, equal_nan=True)
    assert (np.delete(restored.reshape(-1), positions) == 0).all()
    bad = [section[:3], b'\x02' + section[1:], section[:5] + b'garbage', section + b'x',
           samples.pack([0, 60], values[:2], np.float32), samples.pack([5, 5], values[:2], np.float32),
           samples._HEAD.pack(1, 61) + section[5:], samples._HEAD.pack(1, 2) + section[5:]]
    for damaged in bad:
        with pytest.raises(FormatError):
            samples.restore(canonical.copy(), damaged)
    with pytest.raises(FormatError):
        samples.restore(np.zeros((4, 3, 5), np.float64), section)  # another dtype: the lengths disagree


def test_a_payload_of_an_unknown_version_is_refused():
    with pytest.raises(FormatError, match='version 9'):  # 4 holds error-bound tiles (bounds.py)
        tilepayload.unpack(b'\x09\x00\x00', has_extra=False, bounded=False)


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_an_image_of_only_non_finite_samples_is_refused_as_empty(tmp_path, value):
    path = str(tmp_path / 'inf.tif')
    ds = gdal.GetDriverByName('GTiff').Create(path, 4, 4, 224, gdal.GDT_Float32)
    for index in range(1, 225):
        ds.GetRasterBand(index).Fill(float(value))
    ds = None
    with pytest.raises(InputError, match=r'only nodata pixels \(NaN or ±Inf\); there is nothing to compress'):
        compress(path, str(tmp_path / 'inf.ehc'), 'pca', 5, 'cpu')
    assert os.listdir(tmp_path) == ['inf.tif']


def _unscaled_float_copy(source, path, factor):
    """`source`'s samples x factor as float32, nodata kept, with its band metadata but no scale / offset."""
    ds = gdal.Open(source)
    out = gdal.GetDriverByName('GTiff').Create(path, ds.RasterXSize, ds.RasterYSize, ds.RasterCount, gdal.GDT_Float32)
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    for index in range(1, ds.RasterCount + 1):
        band, copy = ds.GetRasterBand(index), out.GetRasterBand(index)
        data = band.ReadAsArray().astype(np.float32)
        copy.WriteArray(np.where(data == -32768, np.float32(-32768), data * np.float32(factor)))
        copy.SetNoDataValue(-32768)
        copy.SetDescription(band.GetDescription())
        copy.SetMetadata(band.GetMetadata())
    out = ds = None
    return path


@pytest.mark.parametrize('factor, reads_as_dn', [(1.0, True), (1e-4, False)])
def test_float_samples_without_a_scale_are_read_in_the_units_they_hold(tmp_path, factor, reads_as_dn):
    """Float DN without a scale (up to 10000) are read as DN with a warning, not as reflectance 10000 times too
    bright (11.8 dB instead of 54.5 with rdnet q5); float reflectance without a scale stays reflectance, quietly."""
    from enmap_compress.plugin.core.bands import ENMAP_GAIN
    from enmap_compress.plugin.core.enmap import open_spectral

    base = synthetic.write_scene(str(tmp_path / 'base.tif'), width=32, height=32, seed=3)
    source = _unscaled_float_copy(base, str(tmp_path / 'float.tif'), factor)
    with open_spectral(source) as raster:
        assert np.allclose(raster.gains, ENMAP_GAIN if reads_as_dn else 1.0)
        assert any('too large for reflectance' in w for w in raster.warnings) == reads_as_dn
    if reads_as_dn:  # the same quality as the int16 original (metrics are in the file's units: both DN here)
        reference = evaluate(base, str(tmp_path / 'base_rec.tif'), model='pca', quality=5)
        result = evaluate(source, str(tmp_path / 'float_rec.tif'), model='pca', quality=5)
        assert result.psnr == pytest.approx(reference.psnr, abs=0.05)


@pytest.mark.parametrize('dtype, nodata', [('int16', -32768), ('float32', -9999.0)])
@pytest.mark.parametrize('model', ['pca', 'rdnet'])
def test_a_lone_nodata_sample_in_a_valid_pixel_comes_back_as_nodata_in_lossy_mode(tmp_path, dtype, nodata, model):
    """A sample holding the nodata value inside a valid pixel (a defective detector element, say) never reaches a
    lossy model (it would code a spike and return a model value where the input said no data): it is replaced
    before the model and restored exactly from the tile's sample section."""
    path = str(tmp_path / f'lone_{dtype}.tif')
    if dtype == 'int16':
        synthetic.write_scene(path, width=24, height=20, seed=7)
        ds = gdal.Open(path, gdal.GA_Update)
        band = ds.GetRasterBand(CODED_BAND)
        data = band.ReadAsArray()
        data[10, 10] = nodata
        band.WriteArray(data)
        ds = None
    else:
        _float_scene(path, dtype, nodata, specials=((CODED_BAND, 10, 10, nodata),))
    original = _read(path)
    assert not np.all(original[:, 10, 10] == nodata)  # a valid pixel
    result, _, restored = _round_trip(tmp_path, path, f'lone_{model}', model=model, quality=5)
    assert restored[CODED_BAND - 1, 10, 10] == nodata
    others = np.setdiff1d(band_set().indices, [CODED_BAND - 1])  # the pixel's other coded samples: reconstructed
    assert np.all(restored[others][:, 10, 10] != nodata)
    assert _nodata(str(tmp_path / f'lone_{model}.tif')) == nodata


def test_the_model_input_of_lone_nodata_samples_is_the_same_on_both_paths():
    """compress's two ways to the model input (straight from an integer cube, or through model_input) give lone
    nodata samples the same neutral value."""
    from enmap_compress.plugin.core.codec import TileCoder
    from enmap_compress.plugin.core.runtime import OnnxRunner, find_model, list_models

    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    package = find_model('rdnet')
    coder = TileCoder(package, 5, OnnxRunner(package, 'cpu', 1), np.zeros(0, int))
    cube = np.random.default_rng(5).integers(0, 9000, size=(224, 12, 16)).astype(np.int16)
    valid = np.ones(cube.shape[1:], bool)
    valid[:, :3] = False
    cube[:, ~valid] = -32768
    cube[40, 5, 7] = cube[41, 2, 9] = cube[130, 4, 4] = -32768  # coded, coded, a water-vapour band
    dead = np.zeros(224, bool)
    every = np.ones(224, bool)
    lone = samples.lone_nodata(cube, valid, -32768, every)
    assert lone is not None and int(lone.sum()) == 3
    unit = coder.unit_input(cube, valid, dead, lone)
    expected = coder.radiometry.to_unit(samples.model_input(cube, valid, dead, lone)[coder.coded])
    assert np.array_equal(unit, expected) and unit.min() >= 0.0
    assert int(samples.lone_nodata(cube, valid, -32768, ~np.isin(np.arange(224), [40, 41])).sum()) == 1
    assert samples.lone_nodata(cube, valid, None, every) is None
    assert samples.lone_nodata(cube, valid, 40000.0, every) is None  # not an int16 value


@pytest.mark.parametrize('dtype', ['int16', 'uint16', 'int32', 'float32'])
@pytest.mark.parametrize('nodata', [-32768.0, 0.0, -1.0, 65535.0, 2.5, 1e10, -9999, None, float('nan')])
def test_nodata_is_found_as_a_float64_comparison_finds_it(dtype, nodata):
    """samples.nodata_marker compares a cube in its own type (an integer cube against a float was converted to
    float64 first): the same samples as the comparison in float64, in lone_nodata and valid_pixels."""
    from enmap_compress.plugin.core.tiling import valid_pixels

    info = np.iinfo(dtype) if dtype != 'float32' else None
    values = [-32768, -9999, -1, 0, 1, 2, 3, 65535, -32767, 65534, 2 ** 24 + 1]
    kept = [v for v in values if info is None or info.min <= v <= info.max]
    cube = np.resize(np.array(kept, dtype), (3, 4, 6))
    cube[:, 0, 0] = cube[0, 0, 0]  # a pixel of one value in every band (nodata there when that value is)
    expected = np.zeros(cube.shape, bool) if nodata is None else cube.astype(np.float64) == nodata
    valid = np.ones(cube.shape[1:], bool)
    every = np.ones(3, bool)
    lone = samples.lone_nodata(cube, valid, nodata, every)
    assert np.array_equal(np.zeros(cube.shape, bool) if lone is None else lone, expected)
    assert np.array_equal(valid_pixels(cube, nodata, every), ~expected.all(axis=0))


@pytest.mark.parametrize('max_error', [0, 10])
def test_an_error_bound_refuses_float64_fractions_that_float32_would_round_away(tmp_path, max_error):
    """800.000000001 is 800 in float32: the integer check ran on the float32 copy, so a lossless file came back
    as 800 (not bit-exact) and a 10 DN bound was exceeded by 1e-9; now it is made in the image's own type."""
    source = _float_scene(str(tmp_path / 'f64.tif'), dtype='float64', nodata=-32768)
    ds = gdal.Open(source, gdal.GA_Update)
    band = ds.GetRasterBand(CODED_BAND)
    data = band.ReadAsArray()
    data[data != -32768] += 1e-9
    band.WriteArray(data)
    ds = None
    with pytest.raises(InputError, match=f'integer DN values, but .* samples in band {CODED_BAND} hold fractional'):
        compress(source, str(tmp_path / 'f.ehc'), 'pca', None, 'cpu', max_error=max_error)
    assert not os.path.exists(tmp_path / 'f.ehc')
