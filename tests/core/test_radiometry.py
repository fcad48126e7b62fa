"""The radiometric scale: models see reflectance through each band's gain and offset, whatever the DN scale."""
import warnings

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import samples
from enmap_compress.plugin.core.bands import DN_PEAK, ENMAP_GAIN, Radiometry, band_set
from enmap_compress.plugin.core.codec import TileCoder, compress, decompress
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.errors import InputError
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model, list_models
from tools import synthetic

pytest.importorskip('onnxruntime')


def test_enmap_scale_is_the_expression_every_file_was_written_with():
    dn = np.array([[-5.0, 0.0, 1234.0, 10000.0, 12000.0]], np.float32)
    radiometry = Radiometry.enmap(1)
    assert radiometry.is_enmap and radiometry.dn_per_unit == DN_PEAK
    assert np.array_equal(radiometry.to_unit(dn), np.clip(dn, 0.0, 1e4) * np.float32(1e-4))
    unit = np.array([[0.25, 0.5]], np.float32)
    assert np.array_equal(radiometry.to_dn(unit), unit * np.float32(1e4))


@pytest.mark.parametrize('dtype', ['int16', 'uint16', 'int32', 'uint32', 'int64'])
def test_integer_tiles_scale_straight_from_the_cube_to_the_same_values(dtype):
    """native_to_unit (the compress worker's input, a few bands at a time) equals to_unit of the float32 copy
    bit for bit, for every value an integer raster can hold: below 0, above DN_PEAK, the type's extremes."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(7)
    cube = rng.integers(max(info.min, -20000), min(info.max, 40000), size=(30, 9, 11)).astype(dtype)
    cube[0, 0, :4] = [info.min, info.max, 0, 10000]
    rows = np.array([0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 20, 29])  # runs and gaps, more than a block of bands
    radiometry = Radiometry.enmap(len(rows))
    unit = radiometry.native_to_unit(cube, rows)
    assert unit.dtype == np.float32 and np.array_equal(unit, radiometry.to_unit(cube[rows].astype(np.float32)))
    out = np.full(unit.shape, np.nan, np.float32)
    assert radiometry.native_to_unit(cube, rows, out) is out and np.array_equal(out, unit)
    assert np.array_equal(cube[0, 0, :4], np.array([info.min, info.max, 0, 10000]).astype(dtype))  # not changed


def test_float_tiles_and_other_gains_keep_the_general_conversion():
    enmap = Radiometry.enmap(2)
    assert enmap.scales_natively(np.int16) and enmap.scales_natively(np.uint16) and enmap.scales_natively(np.int64)
    assert not enmap.scales_natively(np.float32) and not enmap.scales_natively(np.uint8)  # uint8: below DN_PEAK
    assert not Radiometry.of([2e-5, 1.0], None).scales_natively(np.int16)
    with pytest.raises(ValueError):
        enmap.native_to_unit(np.zeros((2, 3, 3), np.float32), np.arange(2))


def test_compress_makes_the_model_input_of_an_integer_tile_straight_from_it():
    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    package = find_model('rdnet')
    runner = OnnxRunner(package, 'cpu', 1)
    cube = np.random.default_rng(3).integers(-300, 12000, size=(224, 16, 24)).astype(np.int16)
    dead = np.zeros(224, bool)
    dead[[0, 100, 223]] = True
    valid = np.ones(cube.shape[1:], bool)
    lossy = TileCoder(package, 5, runner, np.zeros(0, int))
    unit = lossy.unit_input(cube, valid, dead)
    expected = lossy.radiometry.to_unit(samples.model_input(cube, valid, dead)[lossy.coded])  # latent()'s path
    assert unit.dtype == np.float32 and np.array_equal(unit, expected)
    bounded = TileCoder(package, 5, runner, np.zeros(0, int), max_error=10)  # coding rereads the model input too
    assert np.array_equal(bounded.unit_input(cube, valid, dead), expected)
    assert lossy.unit_input(cube.astype(np.float32), valid, dead) is None  # NaN and other float cases: model_input


def test_enmap_dn_of_a_nodata_beyond_float32_at_enmap_scale_is_quiet():
    """Float32 reflectance with GDAL's nodata -3.4e38 is -inf DN at EnMAP's scale, which the metrics leave out (they
    measure valid samples): numpy's overflow warning reached evaluate's command line, with a line of source."""
    values = np.array([[0.25, -np.finfo(np.float32).max]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dn = Radiometry.of(np.ones(1), np.zeros(1)).enmap_dn(values)
    assert dn[0, 0] == 2500 and dn[0, 1] == -np.inf


def test_other_scales_round_trip_through_reflectance():
    radiometry = Radiometry.of([2e-5, 1.0], [0.0, -0.1])
    dn = np.array([[25000.0, 60000.0], [0.35, 2.0]])
    unit = radiometry.to_unit(dn)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.5, 1.0], [0.25, 1.0]], rtol=1e-6)  # clipped to [0, 1]
    np.testing.assert_allclose(radiometry.to_dn(unit), [[25000.0, 50000.0], [0.35, 1.1]], rtol=1e-6)
    assert not radiometry.is_enmap and radiometry.dn_per_unit == pytest.approx((5e4 + 1.0) / 2)


def test_bad_gains_and_unknown_band_sets_are_clear_errors():
    with pytest.raises(InputError, match='gains'):
        Radiometry.of([1e-4, 0.0], None)
    for gains, offsets in (([1e-4, 1e-31], None), ([1e31, 1.0], None), ([1e-4, 1e-4], [0.0, np.inf]),
                           ([1e-4, 1e-4], [0.0, 1e300]), ([1e-4, 1e-4], [np.nan, 0.0])):
        with pytest.raises(InputError, match='from 1e-30 to 1e.30 in magnitude'):
            Radiometry.of(gains, offsets)
    with pytest.raises(InputError, match='not known'):
        band_set('sentinel2')
    assert band_set().count == 202 and band_set().indices[0] == 0


def _rescaled_copy(src, dst, gain, offset, gdal_type, numpy_type):
    """The same reflectance as `src` (EnMAP DN, gain 1e-4) stored with another gain and offset."""
    ds = gdal.Open(src)
    gdal.GetDriverByName('GTiff').CreateCopy(dst, ds)  # keeps georeferencing and band metadata
    data = ds.ReadAsArray().astype(np.float64)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    ds = None
    target = gdal.GetDriverByName('GTiff').Create(dst + '.tmp.tif', data.shape[2], data.shape[1], data.shape[0],
                                                  gdal_type)
    source = gdal.Open(dst)
    target.SetGeoTransform(source.GetGeoTransform())
    target.SetProjection(source.GetProjection())
    target.SetMetadata(source.GetMetadata())
    for i in range(data.shape[0]):
        band, ref = target.GetRasterBand(i + 1), source.GetRasterBand(i + 1)
        band.SetMetadata(ref.GetMetadata())
        band.SetDescription(ref.GetDescription())
        invalid = data[i] == nodata
        values = (data[i] * ENMAP_GAIN - offset) / gain
        values[invalid] = nodata
        band.SetNoDataValue(nodata)
        band.SetScale(gain)
        band.SetOffset(offset)
        band.WriteArray(values.astype(numpy_type))
    target = source = None
    gdal.GetDriverByName('GTiff').Delete(dst)
    gdal.Rename(dst + '.tmp.tif', dst)
    return dst


def _reflectance_psnr(original, reconstruction):
    with open_spectral(original) as a, open_spectral(reconstruction) as b:
        x = a.hyspecnet_view(0, 0, a.width, a.height)
        y = b.hyspecnet_view(0, 0, b.width, b.height)
    return -10 * np.log10(np.mean((x.astype(np.float64) - y) ** 2))


@pytest.mark.parametrize('model', ['pca', 'rdnet'])
def test_a_224_band_input_with_another_gain_compresses_like_enmap_dn(tmp_path, model):
    """Today's finding: the codec assumed gain 1e-4 while the reader applied the file's gains."""
    scene = synthetic.write_scene(str(tmp_path / 'enmap.tif'), 48, 40, seed=6)
    rescaled = _rescaled_copy(scene, str(tmp_path / 'gain2e-5.tif'), 2e-5, -0.01, gdal.GDT_Int32, np.int32)
    psnr = {}
    for name, path in (('enmap', scene), ('rescaled', rescaled)):
        compress(path, str(tmp_path / f'{name}.ehc'), model, 6, 'cpu', 1)
        decompress(str(tmp_path / f'{name}.ehc'), str(tmp_path / f'{name}_rec.tif'), 'cpu', 1)
        psnr[name] = _reflectance_psnr(path, str(tmp_path / f'{name}_rec.tif'))
        with open_spectral(str(tmp_path / f'{name}_rec.tif')) as rec:
            assert rec.gains[0] == pytest.approx(2e-5 if name == 'rescaled' else 1e-4)
    assert psnr['enmap'] > 40
    assert abs(psnr['rescaled'] - psnr['enmap']) < 0.5, psnr


def test_the_spectrum_inspector_shows_dn_at_enmap_scale_whatever_the_file_stores(tmp_path):
    """preview.spectrum_at (the spectrum panel's values, labelled DN) gave the stored values: a file with gain
    2e-5 and offset -0.01 showed numbers five times too large and shifted, against its reconstruction or another
    copy of the scene (the panel's RMSE was then in no unit at all)."""
    from enmap_compress.plugin.core.preview import spectrum_at

    scene = synthetic.write_scene(str(tmp_path / 'enmap.tif'), 8, 8, seed=6)
    rescaled = _rescaled_copy(scene, str(tmp_path / 'gain2e-5.tif'), 2e-5, -0.01, gdal.GDT_Int32, np.int32)
    x0, pixel_w, _, y0, _, pixel_h = gdal.Open(scene).GetGeoTransform()
    x, y = x0 + 4.5 * pixel_w, y0 + 3.5 * pixel_h
    enmap, other = np.array(spectrum_at(scene, x, y)), np.array(spectrum_at(rescaled, x, y))
    assert np.isfinite(enmap).sum() > 200 and np.array_equal(np.isnan(enmap), np.isnan(other))
    np.testing.assert_allclose(other, enmap, atol=0.5)  # (the rescaled copy rounds to its own step of 0.2 DN)


@pytest.mark.parametrize('dtype, fmt', [('UInt16', 'GTiff'), ('Int32', 'GTiff'), ('Int16', 'VRT'),
                                        ('Int16', 'ENVI')])
def test_integer_dn_without_a_scale_take_the_enmap_convention(tmp_path, dtype, fmt):
    """UInt16 and Int32 DN without a scale were read at gain 1 (every sample clipped to reflectance 1: the lossy
    output was 1 DN everywhere), and so were Int16 DN through a VRT or an ENVI header, which state scale 1."""
    scene = synthetic.write_scene(str(tmp_path / 'enmap.tif'), 16, 16, seed=6)
    path = str(tmp_path / 'copy.tif')
    ds = gdal.Translate(path, scene, outputType=gdal.GetDataTypeByName(dtype),
                        noData='none' if dtype == 'UInt16' else -32768)
    for index in range(1, ds.RasterCount + 1):  # (scale 1, offset 0: a GeoTIFF then states none)
        ds.GetRasterBand(index).SetScale(1.0)
        ds.GetRasterBand(index).SetOffset(0.0)
    ds = None
    if fmt != 'GTiff':
        path = gdal.Translate(str(tmp_path / ('copy.' + fmt.lower())), path, format=fmt).GetDescription()
    with open_spectral(path) as raster:
        assert raster.gains == pytest.approx(np.full(224, ENMAP_GAIN))
        assert any('assuming the EnMAP L2A convention' in w for w in raster.warnings)


def test_samples_far_outside_reflectance_0_to_1_are_counted_in_dn_and_by_gains():
    dn = np.array([[-501, -500, 0, 10000, 10500, 10501, 30000]])
    assert Radiometry.enmap(1).far_outside(dn) == 3  # -501, 10501, 30000: beyond 5 % of reflectance
    assert Radiometry.of([2e-5], [-0.01]).far_outside(np.array([[-2000, 0, 50000, 53001]])) == 1  # 1.05002


def _scaled_copy(src, dst, factor):
    """`src` with its valid DN multiplied by `factor`, as uint16 without a scale (another sensor's DN)."""
    ds = gdal.Open(src)
    data, nodata = ds.ReadAsArray().astype(np.float64), ds.GetRasterBand(1).GetNoDataValue()
    out = gdal.GetDriverByName('GTiff').Create(dst, ds.RasterXSize, ds.RasterYSize, ds.RasterCount, gdal.GDT_UInt16)
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    for i in range(ds.RasterCount):
        band, ref = out.GetRasterBand(i + 1), ds.GetRasterBand(i + 1)
        band.SetMetadata(ref.GetMetadata())
        band.SetDescription(ref.GetDescription())
        band.SetNoDataValue(0)
        band.WriteArray(np.where(data[i] == nodata, 0, np.clip(data[i] * factor, 1, 65535)).astype(np.uint16))
    out = ds = None
    return dst


def test_compress_says_so_when_a_lossy_model_would_clip_many_samples_far(tmp_path):
    """No silent damage: an image on another scale loses its bright values to the lossy models' clip at
    reflectance 1; compress warns (not for real EnMAP reflectance, nor where MAX_ERROR keeps every value)."""
    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    scene = synthetic.write_scene(str(tmp_path / 'enmap.tif'), 40, 24, seed=4)
    scaled = _scaled_copy(scene, str(tmp_path / 'scaled.tif'), 6.0)
    out = str(tmp_path / 'x.ehc')
    assert not any('reflectance outside' in w for w in compress(scene, out, 'rdnet', 3, 'cpu').warnings)
    warned = [w for w in compress(scaled, out, 'rdnet', 3, 'cpu').warnings if 'reflectance outside' in w]
    assert len(warned) == 1 and 'MAX_ERROR' in warned[0]
    bounded = compress(scaled, out, 'rdnet', None, 'cpu', max_error=10).warnings
    assert not any('reflectance outside' in w for w in bounded)


def test_samples_above_a_faint_reflectance_are_counted_in_dn_and_by_gains():
    assert Radiometry.enmap(1).lit(np.array([[0, 10, 11, 5000]])) == 2  # above 0.1 % reflectance: 10 DN
    assert Radiometry.of([1e-30], [0.0]).lit(np.array([[1, 30000]])) == 0


def _gained_copy(src, dst, gain):
    gdal.Translate(dst, src)
    ds = gdal.Open(dst, gdal.GA_Update)
    for index in range(1, ds.RasterCount + 1):
        ds.GetRasterBand(index).SetScale(gain)
    ds = None
    return dst


def test_an_image_read_at_a_scale_far_too_small_is_said_so_or_refused(tmp_path):
    """A band gain of 1e-30 puts every sample near reflectance 0: a lossy file warns (the model returns its own
    noise there), an error-bounded one is refused by name (0.5.3 said 'internal error'); real EnMAP scales do not
    warn."""
    from enmap_compress.plugin.core.errors import InputError

    scene = synthetic.write_scene(str(tmp_path / 'enmap.tif'), 24, 20, seed=4)
    tiny = _gained_copy(scene, str(tmp_path / 'tiny.tif'), 1e-30)
    out = str(tmp_path / 'x.ehc')
    assert not any('reflectance at the image' in w for w in compress(scene, out, 'pca', 3, 'cpu').warnings)
    warned = [w for w in compress(tiny, out, 'pca', 3, 'cpu').warnings if 'below 0.1 % reflectance' in w]
    assert len(warned) == 1 and 'scale' in warned[0]
    with pytest.raises(InputError, match='far outside its DN range.*scale'):
        compress(tiny, out, 'pca', None, 'cpu', max_error=0)
