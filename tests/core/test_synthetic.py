"""The project's synthetic EnMAP scenes and products."""
import os
import re
import time
import zipfile

import defusedxml.ElementTree as SafeET
import numpy as np
import pytest
from osgeo import gdal, osr

from enmap_compress.plugin.core import bands
from tools import synthetic

NODATA = -32768
DEAD = np.flatnonzero(np.isin(bands.standard_band_table().detector_order_band, range(130, 136)))


@pytest.fixture(scope='module')
def scene():
    return synthetic.synthetic_block(96, 80, 0, 80, seed=5)


def _nearest(wl):
    return int(np.argmin(np.abs(bands.standard_wavelengths() - wl)))


def test_block_shape_dtype_and_determinism(scene):
    assert scene.shape == (224, 80, 96) and scene.dtype == np.int16
    assert np.array_equal(scene, synthetic.synthetic_block(96, 80, 0, 80, seed=5))
    assert not np.array_equal(scene, synthetic.synthetic_block(96, 80, 0, 80, seed=6))


def test_block_does_not_depend_on_the_split(scene):
    part = synthetic.synthetic_block(96, 80, 30, 17, seed=5)
    assert np.array_equal(part, scene[:, 30:47])


def test_dead_bands_are_detector_bands_130_to_135(scene):
    all_nodata = np.flatnonzero((scene == NODATA).all(axis=(1, 2)))
    assert np.array_equal(all_nodata, DEAD)
    assert np.array_equal(DEAD, np.arange(129, 135))


def test_nodata_border_is_a_rotated_footprint(scene):
    valid = scene[0] != NODATA
    assert not valid[0, 0] and not valid[-1, -1] and not valid[0, -1] and not valid[-1, 0]
    assert valid[40, 48]
    assert 0.5 < valid.mean() < 0.85
    # every live band has the same footprint, like a real ortho tile
    live = np.setdiff1d(np.arange(224), DEAD)
    assert np.array_equal((scene[live] != NODATA).all(axis=0), valid)


def test_spectra_are_plausible(scene):
    valid = scene[0] != NODATA
    refl = scene[:, valid].astype(np.float64) * 1e-4
    live = np.setdiff1d(np.arange(224), DEAD)
    assert refl[live].min() > -0.05 and refl[live].max() < 1.0
    red, nir, swir = refl[_nearest(670)], refl[_nearest(860)], refl[_nearest(1650)]
    vegetated = nir > 2.5 * red
    assert 0.2 < vegetated.mean() < 0.95  # a mix of vegetation and other surfaces
    assert np.median(nir[vegetated]) > 0.25 and np.median(swir[vegetated]) < np.median(nir[vegetated])
    water = nir < 0.03
    assert water.any() and np.median(refl[_nearest(560)][water]) > np.median(nir[water])


def test_material_spectra_shapes():
    spectra = synthetic.material_spectra()
    assert spectra.shape == (len(synthetic.MATERIALS), 224)
    veg = spectra[synthetic.MATERIALS.index('vegetation')]
    assert veg[_nearest(860)] > 4 * veg[_nearest(670)]  # red edge
    assert veg[_nearest(1450)] < veg[_nearest(1650)]  # water absorption
    water = spectra[synthetic.MATERIALS.index('water')]
    assert water[_nearest(1000)] < 0.01


def test_noise_is_a_few_dn(scene):
    band = scene[_nearest(860)].astype(np.float64)
    valid = (band != NODATA)
    diffs = np.diff(band, axis=1)[valid[:, 1:] & valid[:, :-1]]
    assert 1 < np.median(np.abs(diffs)) < 200  # noise plus texture, no identical neighbours


def test_full_width_strip_is_fast():
    start = time.perf_counter()
    strip = synthetic.synthetic_block(1200, 1200, 600, 32, seed=0)
    elapsed = time.perf_counter() - start
    assert strip.shape == (224, 32, 1200)
    assert elapsed < 3.0, f'a 1200 x 32 strip took {elapsed:.2f} s'


def test_bad_block_arguments():
    with pytest.raises(ValueError, match='do not fit'):
        synthetic.synthetic_block(10, 10, 5, 10, seed=0)


def test_write_scene_geotiff_metadata(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 's.tif'), width=24, height=20, seed=1)
    assert os.listdir(tmp_path) == ['s.tif']
    ds = gdal.Open(path)
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (24, 20, 224)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    assert srs.GetAuthorityCode(None) == '32633'
    assert ds.GetGeoTransform()[1] == 30.0 and ds.GetGeoTransform()[5] == -30.0
    band = ds.GetRasterBand(12)
    assert band.GetNoDataValue() == NODATA and band.GetScale() == pytest.approx(1e-4) and band.GetOffset() == 0
    assert band.DataType == gdal.GDT_Int16
    md = band.GetMetadata()
    assert md['wavelength_units'] == 'Nanometers'
    assert float(md['wavelength']) == pytest.approx(bands.standard_wavelengths()[11])
    assert float(md['fwhm']) == pytest.approx(bands.standard_fwhm()[11])
    assert re.fullmatch(r'band 12 \(\d+\.\d Nanometers\)', band.GetDescription())
    assert np.array_equal(ds.ReadAsArray(), synthetic.synthetic_block(24, 20, 0, 20, seed=1))


def test_write_scene_detector_order_float32(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 'd.tif'), width=16, height=12, band_order='detector',
                                 dtype='float32')
    ds = gdal.Open(path)
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    wl = [float(ds.GetRasterBand(i + 1).GetMetadataItem('wavelength')) for i in range(224)]
    assert bands.detect_band_order(wl) == 'detector'
    perm = bands.detector_order_permutation()
    assert np.array_equal(ds.ReadAsArray(), synthetic.synthetic_block(16, 12, 0, 12, seed=0)[perm].astype(np.float32))


@pytest.mark.parametrize('interleave,ext', [('BAND', 'bsq'), ('LINE', 'bil'), ('PIXEL', 'bip')])
def test_write_scene_envi_header(tmp_path, interleave, ext):
    path = synthetic.write_scene(str(tmp_path / f'e.{ext}'), width=8, height=6, driver='ENVI', interleave=interleave)
    assert sorted(os.listdir(tmp_path)) == [f'e.{ext}', 'e.hdr']
    header = (tmp_path / 'e.hdr').read_text()
    assert f'interleave = {ext}' in header and 'wavelength = {418.2,' in header and 'fwhm = {' in header
    assert 'wavelength units = Nanometers' in header and 'data ignore value = -32768' in header
    assert np.array_equal(gdal.Open(path).ReadAsArray(), synthetic.synthetic_block(8, 6, 0, 6, seed=0))


def test_write_scene_without_spectral_metadata(tmp_path):
    ds = gdal.Open(synthetic.write_scene(str(tmp_path / 'p.tif'), width=8, height=6, spectral_metadata=False))
    band = ds.GetRasterBand(3)
    assert 'wavelength' not in band.GetMetadata() and band.GetDescription() == ''
    assert band.GetNoDataValue() == NODATA


def test_write_scene_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='interleave'):
        synthetic.write_scene(str(tmp_path / 'x.tif'), interleave='LINE')
    with pytest.raises(ValueError, match='band_order'):
        synthetic.write_scene(str(tmp_path / 'x.tif'), band_order='random')
    with pytest.raises(ValueError, match='dtype'):
        synthetic.write_scene(str(tmp_path / 'x.tif'), dtype='uint8')
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope='module')
def product(tmp_path_factory):
    return synthetic.write_product(str(tmp_path_factory.mktemp('product')), width=40, height=32, seed=2,
                                   make_zip=True)


def test_product_layout(product):
    name = product.product_name
    assert re.fullmatch(r'ENMAP01-____L2A-DT\d{10}_\d{8}T\d{6}Z_\d{3}_V\d{6}_\d{8}T\d{6}Z', name)
    assert sorted(os.listdir(product.folder)) == sorted(
        f'{name}-{suffix}' for suffix in ('METADATA.XML', 'SPECTRAL_IMAGE.TIF', 'QL_QUALITY_CLASSES.TIF'))
    assert os.path.basename(product.folder) == name and product.zip.endswith(f'{name}.ZIP')


def test_product_image_has_no_band_metadata(product):
    ds = gdal.Open(product.image)
    assert ds.RasterCount == 224 and ds.GetRasterBand(1).DataType == gdal.GDT_Int16
    assert 'wavelength' not in ds.GetRasterBand(10).GetMetadata()
    assert np.array_equal(ds.ReadAsArray(), synthetic.synthetic_block(40, 32, 0, 32, seed=2))


def test_product_quality_classes(product):
    classes = gdal.Open(product.quality_classes).ReadAsArray()
    ds = gdal.Open(product.image)  # keep the dataset alive while its band is used
    image = ds.GetRasterBand(1).ReadAsArray()
    assert set(np.unique(classes)) <= {1, 2, 3}
    assert np.array_equal(classes == 3, image == NODATA)


def test_product_metadata_xml(product):
    root = SafeET.parse(product.xml).getroot()
    assert root.tag == 'level_X'
    assert root.findtext('metadata/name') == f'{product.product_name}-METADATA.XML'
    entries = root.findall('specific/bandCharacterisation/bandID')
    assert [int(e.get('number')) for e in entries] == list(range(1, 225))
    wl = [float(e.findtext('wavelengthCenterOfBand')) for e in entries]
    assert np.allclose(wl, bands.standard_wavelengths(), atol=1e-3)
    assert {e.findtext('GainOfBand') for e in entries} == {'0.0001'}
    assert {e.findtext('OffsetOfBand') for e in entries} == {'0'}
    vnir = root.findtext('specific/vnirProductQuality/expectedChannelsList').split(',')
    swir = root.findtext('specific/swirProductQuality/expectedChannelsList').split(',')
    assert len(vnir) == 91 and len(swir) == 133 and '80' in swir and '81' in vnir
    assert root.findtext('specific/widthOfOrthoScene') == '40' and root.findtext('specific/heightOfOrthoScene') == '32'
    assert root.findtext('product/image/merge/name').endswith('-SPECTRAL_IMAGE.TIF')
    assert root.findtext('product/image/merge/dimension/columns') == '40'
    assert root.findtext('product/ortho/projection') == 'UTM_Zone33_North'
    assert len(root.findall('base/spatialCoverage/boundingPolygon/point')) == 6


def test_product_band_statistics_flag_dead_bands(product):
    root = SafeET.parse(product.xml).getroot()
    stats = root.findall('product/bandStatistics/bandID')
    dead = [int(s.get('number')) - 1 for s in stats
            if s.findtext('mean') == '-1000000' and s.findtext('stdDeviation') == '0']
    assert dead == list(DEAD)
    mean_860 = float(stats[_nearest(860)].findtext('mean'))
    assert 0.05 < mean_860 < 0.6  # reflectance units, like the real product


def test_product_zip_layout(product):
    with zipfile.ZipFile(product.zip) as zf:
        names = zf.namelist()
    name = product.product_name
    assert f'{name}/' in names
    assert sorted(n for n in names if not n.endswith('/')) == sorted(
        f'{name}/{f}' for f in os.listdir(product.folder))


def test_envi_product(tmp_path):
    result = synthetic.write_product(str(tmp_path), width=12, height=10, image_format='ENVI')
    assert result.image.endswith('-SPECTRAL_IMAGE.BSQ')
    names = os.listdir(result.folder)
    assert f'{result.product_name}-SPECTRAL_IMAGE.HDR' in names and not any(n.endswith('.part') for n in names)
    root = SafeET.parse(result.xml).getroot()
    assert root.findtext('product/image/merge/name').endswith('-SPECTRAL_IMAGE.BSQ')
