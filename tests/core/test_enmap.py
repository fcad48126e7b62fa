"""open_spectral: every input form, band order, nodata, dead bands, and every bad input."""
import logging
import os
import re
import shutil
import zipfile

import numpy as np
import pytest
from osgeo import gdal, osr

from enmap_compress.plugin.core import bands, enmap
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.errors import InputError
from tools import synthetic

W, H, SEED = 40, 32, 3
DEAD = list(range(129, 135))  # 0-based canonical = detector-order bands 130-135


@pytest.fixture(scope='module')
def product(tmp_path_factory):
    return synthetic.write_product(str(tmp_path_factory.mktemp('p')), width=W, height=H, seed=SEED, make_zip=True)


@pytest.fixture(scope='module')
def expected():
    return synthetic.synthetic_block(W, H, 0, H, seed=SEED)


def _write_tif(path, count, width=8, height=6, gdal_type=gdal.GDT_Int16, fill=100, wavelengths=None, units=None):
    ds = gdal.GetDriverByName('GTiff').Create(str(path), width, height, count, gdal_type)
    for i in range(count):
        band = ds.GetRasterBand(i + 1)
        band.Fill(fill)
        if wavelengths is not None:
            band.SetMetadataItem('wavelength', str(wavelengths[i]))
            if units:
                band.SetMetadataItem('wavelength_units', units)
    ds = None
    return str(path)


def _copy_product(product, tmp_path):
    return shutil.copytree(product.folder, str(tmp_path / os.path.basename(product.folder)))


# ---------------------------------------------------------------------------------------------------------------
# Product forms

def _check_product(raster, product, expected):
    assert (raster.width, raster.height, raster.band_count) == (W, H, 224)
    assert raster.dtype == np.int16 and raster.band_order == 'wavelength' and raster.is_standard_enmap
    assert raster.product_name == product.product_name
    assert np.allclose(raster.wavelengths, bands.standard_wavelengths(), atol=1e-3)
    assert raster.fwhm is not None and np.allclose(raster.fwhm, bands.standard_fwhm(), atol=1e-3)
    assert np.allclose(raster.gains, 1e-4) and np.all(raster.offsets == 0)
    assert raster.nodata == -32768.0  # not in the TIF: the EnMAP default when METADATA.XML is known
    assert list(np.flatnonzero(raster.dead_bands)) == DEAD
    assert raster.warnings == []
    assert np.array_equal(raster.read(0, 0, W, H), expected)


@pytest.mark.parametrize('form', ['folder', 'parent_folder', 'xml', 'image'])
def test_open_product_files(product, expected, form):
    path = {'folder': product.folder, 'parent_folder': os.path.dirname(product.folder), 'xml': product.xml,
            'image': product.image}[form]
    with open_spectral(path) as raster:
        _check_product(raster, product, expected)
        assert raster.source == path and raster.metadata_xml == product.xml
        assert raster.gdal_path == product.image


def test_open_product_zip_in_place(product, expected):
    before = sorted(os.listdir(os.path.dirname(product.zip)))
    with open_spectral(product.zip) as raster:
        _check_product(raster, product, expected)
        assert raster.gdal_path.startswith('/vsizip/') and raster.gdal_path.endswith('-SPECTRAL_IMAGE.TIF')
        assert raster.metadata_xml.endswith('-METADATA.XML')
    assert sorted(os.listdir(os.path.dirname(product.zip))) == before  # nothing extracted


def test_open_envi_product_folder_and_zip(tmp_path):
    envi = synthetic.write_product(str(tmp_path), width=12, height=10, seed=1, image_format='ENVI', make_zip=True)
    block = synthetic.synthetic_block(12, 10, 0, 10, seed=1)
    for path in (envi.folder, envi.zip):
        with open_spectral(path) as raster:
            assert raster.gdal_path.endswith('-SPECTRAL_IMAGE.BSQ') and raster.is_standard_enmap
            assert np.array_equal(raster.read(0, 0, 12, 10), block)


def test_product_georeference(product):
    with open_spectral(product.folder) as raster:
        assert osr.SpatialReference(wkt=raster.crs_wkt).GetAuthorityCode(None) == '32633'
        assert raster.geotransform == (synthetic.ORIGIN[0], 30.0, 0.0, synthetic.ORIGIN[1], 0.0, -30.0)


def test_dead_bands_from_xml_alone(product, tmp_path):
    folder = _copy_product(product, tmp_path)
    xml = os.path.join(folder, os.path.basename(product.xml))
    text = open(xml, encoding='utf-8').read()
    start = text.index('<bandStatistics>')
    entry = text.index('<bandID number="10">', start)
    end = text.index('</bandID>', entry)
    patched = (text[:entry] + '<bandID number="10"><waveLength>460</waveLength><mean>-1000000</mean>'
               '<stdDeviation>0</stdDeviation>' + text[end:])
    with open(xml, 'w', encoding='utf-8') as f:
        f.write(patched)
    with open_spectral(folder) as raster:
        assert list(np.flatnonzero(raster.dead_bands)) == [9] + DEAD  # band 10 has data: only the XML says dead


# ---------------------------------------------------------------------------------------------------------------
# Single rasters

@pytest.mark.parametrize('interleave,ext', [('BAND', 'bsq'), ('LINE', 'bil'), ('PIXEL', 'bip')])
@pytest.mark.parametrize('open_header', [False, True])
def test_open_envi_with_header_wavelengths(tmp_path, interleave, ext, open_header):
    path = synthetic.write_scene(str(tmp_path / f'scene.{ext}'), width=10, height=7, seed=4, driver='ENVI',
                                 interleave=interleave)
    with open_spectral(str(tmp_path / 'scene.hdr') if open_header else path) as raster:
        assert raster.gdal_path == path
        assert np.allclose(raster.wavelengths, bands.standard_wavelengths(), atol=1e-3)
        assert raster.fwhm is not None and np.allclose(raster.fwhm, bands.standard_fwhm(), atol=1e-3)
        assert raster.nodata == -32768.0 and np.allclose(raster.gains, 1e-4) and raster.metadata_xml is None
        assert raster.band_names[11].startswith('band 12 (') and raster.warnings == []
        assert np.array_equal(raster.read(0, 0, 10, 7), synthetic.synthetic_block(10, 7, 0, 7, seed=4))


def test_open_spectral_image_name_without_xml_warns(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 'X-SPECTRAL_IMAGE.TIF'), width=6, height=5)
    with open_spectral(path) as raster:
        assert raster.is_standard_enmap and raster.metadata_xml is None
        assert any('X-METADATA.XML' in w for w in raster.warnings)


@pytest.fixture(scope='module')
def detector_tif(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('d') / 'det.tif'), width=12, height=9, seed=7,
                                 band_order='detector')


def test_detector_order_geotiff(detector_tif):
    block = synthetic.synthetic_block(12, 9, 0, 9, seed=7)
    perm = bands.detector_order_permutation()
    with open_spectral(detector_tif) as raster:
        assert raster.band_order == 'detector' and raster.is_standard_enmap
        assert np.array_equal(raster.wavelengths, bands.standard_wavelengths()[perm])
        assert np.all(np.diff(raster.wavelengths[raster.canonical_index]) > 0)
        cube = raster.read(0, 0, 12, 9)
        assert np.array_equal(cube, block[perm])
        assert np.array_equal(raster.read_canonical(0, 0, 12, 9), block)
        assert np.array_equal(raster.read_canonical(2, 1, 5, 4), raster.to_canonical(raster.read(2, 1, 5, 4)))
        assert list(np.flatnonzero(raster.dead_bands[raster.canonical_index])) == DEAD


def test_canonical_round_trip_is_exact(detector_tif):
    rng = np.random.default_rng(0)
    cube = rng.integers(-5, 5, size=(224, 3, 2)).astype(np.int16)
    with open_spectral(detector_tif) as raster:
        assert np.array_equal(raster.to_file_order(raster.to_canonical(cube)), cube)
        assert np.array_equal(raster.to_canonical(raster.to_file_order(cube)), cube)
        with pytest.raises(ValueError, match='224 bands'):
            raster.to_canonical(cube[:10])


def test_float32_detector_order_like_potsdam(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 'f.tif'), width=8, height=6, band_order='detector', dtype='float32')
    with open_spectral(path) as raster:
        assert raster.dtype == np.float32 and raster.band_order == 'detector'
        assert raster.nodata == -32768.0 and np.allclose(raster.gains, 1e-4)
        block = synthetic.synthetic_block(8, 6, 0, 6, seed=0)
        assert np.array_equal(raster.read_canonical(0, 0, 8, 6), block.astype(np.float32))


def test_plain_224_band_raster_assumes_the_standard_table(tmp_path, caplog):
    path = synthetic.write_scene(str(tmp_path / 'plain.tif'), width=6, height=5, spectral_metadata=False)
    with caplog.at_level(logging.WARNING, logger='enmap_compress'):
        raster = open_spectral(path)
    with raster:
        assert np.array_equal(raster.wavelengths, bands.standard_wavelengths())
        assert raster.band_order == 'wavelength' and raster.is_standard_enmap
        assert len(raster.warnings) == 1 and 'no wavelength metadata' in raster.warnings[0]
        assert raster.band_names[0] == 'band 1 (418.2 Nanometers)'
    assert any('no wavelength metadata' in r.getMessage() for r in caplog.records)


def test_int16_enmap_without_scale_assumes_1e4(tmp_path):
    raw = _write_tif(tmp_path / 'raw.tif', 224, wavelengths=bands.standard_wavelengths(), units='Nanometers')
    with open_spectral(raw) as raster:
        assert np.allclose(raster.gains, 1e-4) and np.all(raster.offsets == 0)
        assert any('0.0001' in w for w in raster.warnings)
        assert raster.nodata is None and not raster.dead_bands.any()


def test_non_enmap_raster_defaults_to_unit_scale(tmp_path):
    wl = np.linspace(0.45, 2.4, 20)  # micrometres, no units: guessed from the values
    with open_spectral(_write_tif(tmp_path / 'um.tif', 20, wavelengths=wl)) as raster:
        assert np.allclose(raster.wavelengths, wl * 1000)
        assert np.all(raster.gains == 1.0) and raster.fwhm is None and not raster.is_standard_enmap
        with pytest.raises(InputError, match='HySpecNet view needs a standard EnMAP L2A image'):
            raster.hyspecnet_view(0, 0, 2, 2)


def test_explicit_micrometer_units(tmp_path):
    wl = np.linspace(0.4, 2.5, 12)
    with open_spectral(_write_tif(tmp_path / 'u.tif', 12, wavelengths=wl, units='Micrometers')) as raster:
        assert np.allclose(raster.wavelengths, wl * 1000)


def test_read_band_subsets_and_windows(product, expected):
    with open_spectral(product.image) as raster:
        part = raster.read(5, 3, 7, 4, bands=[200, 0, 17])
        assert part.shape == (3, 4, 7) and np.array_equal(part, expected[[200, 0, 17], 3:7, 5:12])
        with pytest.raises(ValueError, match='outside the image'):
            raster.read(35, 0, 10, 2)
        with pytest.raises(ValueError, match='Band indices'):
            raster.read(0, 0, 2, 2, bands=[224])


def test_closed_raster_cannot_be_read(product):
    raster = open_spectral(product.image)
    raster.close()
    with pytest.raises(ValueError, match='closed'):
        raster.read(0, 0, 1, 1)


# ---------------------------------------------------------------------------------------------------------------
# HySpecNet view, dead bands, nodata

def test_hyspecnet_view(product, expected):
    with open_spectral(product.zip) as raster:
        view = raster.hyspecnet_view(0, 0, W, H)
    assert view.shape == (202, H, W) and view.dtype == np.float32
    assert view.min() >= 0 and view.max() <= 1
    assert np.array_equal(view, bands.to_hyspecnet(expected))
    border = expected[0] == -32768
    assert np.all(view[:, border] == 0)


def test_hyspecnet_view_converts_other_scalings(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 'r.tif'), width=6, height=5, dtype='float32')
    block = synthetic.synthetic_block(6, 5, 0, 5, seed=0)
    ds = gdal.Open(path, gdal.GA_Update)
    data = ds.ReadAsArray()
    ds.WriteArray(np.where(data == -32768, data, data * 1e-4).astype(np.float32))
    for i in range(224):
        ds.GetRasterBand(i + 1).SetScale(1.0)
    ds = None  # now reflectance 0..1 with scale 1
    with open_spectral(path) as raster:
        assert np.allclose(raster.hyspecnet_view(0, 0, 6, 5), bands.to_hyspecnet(block), atol=1e-6)


def test_dead_band_scan_in_small_blocks(detector_tif, monkeypatch):
    monkeypatch.setattr(enmap, 'SCAN_BLOCK_BYTES', 12 * 2 * 3)  # a few rows per read
    with open_spectral(detector_tif) as raster:
        assert raster.metadata_xml is None
        dead = raster.dead_bands
    detector_numbers = bands.standard_band_table().detector_order_band
    assert list(np.flatnonzero(dead) + 1) == sorted(detector_numbers[DEAD])


def test_all_nodata_image(tmp_path):
    path = _write_tif(tmp_path / 'empty.tif', 12, fill=-32768, wavelengths=np.linspace(400, 1000, 12))
    ds = gdal.Open(path, gdal.GA_Update)
    for i in range(12):
        ds.GetRasterBand(i + 1).SetNoDataValue(-32768)
    ds = None
    with open_spectral(path) as raster:  # opening stays cheap: no scan by default
        with pytest.raises(InputError, match='only nodata'):
            raster.check_not_empty()
        assert raster.dead_bands.all()
    with pytest.raises(InputError, match='only nodata pixels .*nothing to compress'):
        open_spectral(path, check_empty=True)


def test_check_not_empty_accepts_valid_data(product):
    with open_spectral(product.folder, check_empty=True) as raster:
        raster.check_not_empty()


# ---------------------------------------------------------------------------------------------------------------
# Potsdam tiles (real EnMAP L2A, when the shared data is present)

def test_potsdam_tiles(potsdam_tile_paths):
    for path in potsdam_tile_paths:
        with open_spectral(path, check_empty=True) as raster:
            assert raster.band_count == 224 and raster.band_order == 'detector' and raster.is_standard_enmap
            assert raster.dtype == np.float32 and raster.nodata == -32768.0
            assert np.allclose(raster.gains, 1e-4) and np.all(raster.offsets == 0)
            assert list(np.flatnonzero(raster.dead_bands) + 1) == list(range(130, 136))
            assert raster.warnings == [] and raster.metadata_xml is None
            assert osr.SpatialReference(wkt=raster.crs_wkt).GetAuthorityCode(None) == '32633'
            view = raster.hyspecnet_view(0, 0, 32, 32)
            assert view.shape == (202, 32, 32) and 0 < view.mean() < 0.5


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs: one clear InputError each

def test_missing_input(tmp_path):
    with pytest.raises(InputError, match='does not exist.*Expected an EnMAP L2A product'):
        open_spectral(str(tmp_path / 'nothing.tif'))


def test_rgb_image(tmp_path):
    with pytest.raises(InputError, match=r'has 3 bands; EnMAP Compress expects a hyperspectral image .*224 bands'):
        open_spectral(_write_tif(tmp_path / 'rgb.tif', 3, gdal_type=gdal.GDT_Byte))


@pytest.mark.skipif(gdal.GetDriverByName('netCDF') is None, reason="this GDAL has no netCDF driver")
def test_a_file_of_subdatasets_says_so(tmp_path):
    """A netCDF file stores each band as a variable: it said "has 0 bands"."""
    path = str(tmp_path / 'bands.nc')
    gdal.Translate(path, _write_tif(tmp_path / 'two.tif', 2, gdal_type=gdal.GDT_Int16), format='netCDF')
    with pytest.raises(InputError, match=r'holds 2 subdatasets \(such as NETCDF:.*\), not one multi-band image'):
        open_spectral(path)


def test_150_bands_without_wavelengths(tmp_path):
    with pytest.raises(InputError, match='has 150 bands and no wavelength metadata'):
        open_spectral(_write_tif(tmp_path / 'b150.tif', 150, width=2, height=2))


def test_not_a_raster(tmp_path):
    path = tmp_path / 'text.tif'
    path.write_text('hello')
    with pytest.raises(InputError, match='not a raster GDAL can open'):
        open_spectral(str(path))


@pytest.mark.parametrize('damage', ['corrupt', 'truncated', 'wrong_root', 'no_bands', 'entity'])
def test_bad_metadata_xml(product, tmp_path, damage):
    folder = _copy_product(product, tmp_path)
    xml = os.path.join(folder, os.path.basename(product.xml))
    data = open(xml, 'rb').read()
    bad = {'corrupt': b'\x00\xffnot xml at all<<<',
           'truncated': data[:len(data) // 2],
           'wrong_root': b'<?xml version="1.0"?><PAMDataset><x/></PAMDataset>',
           'no_bands': b'<level_X><specific/></level_X>',
           'entity': b'<!DOCTYPE x [<!ENTITY a "aaaa">]><level_X>&a;</level_X>'}[damage]
    with open(xml, 'wb') as f:
        f.write(bad)
    for path in (folder, xml, os.path.join(folder, os.path.basename(product.image))):
        with pytest.raises(InputError, match='is not a readable EnMAP METADATA.XML') as info:
            open_spectral(path)
        assert os.path.basename(product.xml) in str(info.value)
        assert ('declares entities or a DTD' in str(info.value)) == (damage == 'entity')


def test_metadata_band_count_differs_from_image(product, tmp_path):
    folder = _copy_product(product, tmp_path)
    image = os.path.join(folder, os.path.basename(product.image))
    os.remove(image)
    _write_tif(image, 150, width=4, height=4)
    with pytest.raises(InputError, match='describes 224 bands but the image .* has 150'):
        open_spectral(folder)


def test_product_folder_without_image(product, tmp_path):
    folder = _copy_product(product, tmp_path)
    os.remove(os.path.join(folder, os.path.basename(product.image)))
    with pytest.raises(InputError, match='no spectral image'):
        open_spectral(folder)


def test_folder_without_metadata(tmp_path):
    (tmp_path / 'sub').mkdir()
    with pytest.raises(InputError, match='contains no EnMAP METADATA.XML'):
        open_spectral(str(tmp_path))


def test_folder_with_two_products(product, tmp_path):
    shutil.copytree(product.folder, str(tmp_path / 'a'))
    shutil.copytree(product.folder, str(tmp_path / 'b'))
    with pytest.raises(InputError, match='holds 2 EnMAP products'):
        open_spectral(str(tmp_path))


def _zip(path, members):
    with zipfile.ZipFile(str(path), 'w', zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


@pytest.mark.parametrize('member', ['../evil-METADATA.XML', 'P/../../evil.txt', '/abs/P-METADATA.XML',
                                    'C:/x/P-METADATA.XML', '..\\evil.txt',
                                    # unpacked on Windows, 'D:x' joins to x in the current folder of drive D:
                                    'P/P-SPECTRAL_IMAGE.d/D:evil.dll', 'P/C:P-SPECTRAL_IMAGE.TIF'])
def test_zip_with_unsafe_members(product, tmp_path, member):
    path = _zip(tmp_path / 'bad.ZIP', {member: b'x', 'P/P-METADATA.XML': open(product.xml, 'rb').read()})
    with pytest.raises(InputError, match='unsafe member path'):
        open_spectral(path)


def test_zip_without_metadata(tmp_path):
    with pytest.raises(InputError, match=r'no <PRODUCT>-METADATA.XML.*as delivered by DLR'):
        open_spectral(_zip(tmp_path / 'x.zip', {'P/readme.txt': b'hello'}))


def test_zip_that_is_not_a_zip(tmp_path):
    path = tmp_path / 'broken.ZIP'
    path.write_bytes(b'PK\x03\x04 not really a zip')
    with pytest.raises(InputError, match='not a readable ZIP'):
        open_spectral(str(path))


def _damaged_member(path, member, method):
    """`path` rewritten with `member` compressed by `method`, 64 bytes of its data flipped."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    with zipfile.ZipFile(path, 'w', method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = bytearray(open(path, 'rb').read())
    info = zipfile.ZipFile(path).getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 100
    data[start:start + 64] = bytes(b ^ 0x5A for b in data[start:start + 64])
    open(path, 'wb').write(bytes(data))


@pytest.mark.parametrize('damage', ['deflate', 'lzma', 'encoding'])
def test_a_damaged_metadata_member_is_one_input_error(product, tmp_path, damage):
    """0.7.0 let zlib.error, LZMAError and expat's LookupError (an unknown encoding) escape as internal errors."""
    path = str(tmp_path / 'p.ZIP')
    shutil.copy(product.zip, path)
    with zipfile.ZipFile(path) as zf:
        xml = next(n for n in zf.namelist() if n.endswith('-METADATA.XML'))
        text = zf.read(xml)
    if damage == 'encoding':
        _zip(tmp_path / 'p.ZIP', {xml: re.sub(rb"encoding=.[A-Za-z0-9-]+.", b"encoding='NO-SUCH-CODEC'", text)})
    else:
        _damaged_member(path, xml, zipfile.ZIP_DEFLATED if damage == 'deflate' else zipfile.ZIP_LZMA)
    with pytest.raises(InputError, match='not a readable'):
        open_spectral(path)


@pytest.mark.skipif(os.name != 'posix', reason='a FIFO')
def test_a_pipe_named_like_a_product_is_refused_not_read_forever(tmp_path):
    os.mkfifo(str(tmp_path / 'P.ZIP'))
    with pytest.raises(InputError, match='not a regular file'):
        open_spectral(str(tmp_path / 'P.ZIP'))


def test_zip_with_oversized_xml(product, tmp_path, monkeypatch):
    monkeypatch.setattr(enmap, 'MAX_XML_BYTES', 1000)
    path = _zip(tmp_path / 'big.ZIP', {'P/P-METADATA.XML': open(product.xml, 'rb').read()})
    with pytest.raises(InputError, match='METADATA.XML is .* MB'):
        open_spectral(path)


def test_zip_with_extreme_compression_ratio(tmp_path, monkeypatch):
    monkeypatch.setattr(enmap, 'MAX_XML_COMPRESSION_RATIO', 20)
    path = _zip(tmp_path / 'bomb.ZIP', {'P/P-METADATA.XML': b'<level_X>' + b' ' * (2 * 2**20) + b'</level_X>'})
    with pytest.raises(InputError, match='compressed more than'):
        open_spectral(path)


def test_zip_declaring_absurd_total_size(product, tmp_path, monkeypatch):
    monkeypatch.setattr(enmap, 'MAX_ZIP_TOTAL_BYTES', 10_000)
    with pytest.raises(InputError, match='declare .* GiB uncompressed'):
        open_spectral(product.zip)


def test_header_without_data_file(tmp_path):
    (tmp_path / 'lonely.hdr').write_text('ENVI\nsamples = 2\n')
    with pytest.raises(InputError, match='has no data file next to it'):
        open_spectral(str(tmp_path / 'lonely.hdr'))


def test_real_metadata_xml_sample(tmp_path):
    """The DLR sample METADATA.XML (218 bands, shared data) drives a matching image, when present."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = os.environ.get('ENMAP_SHARED_DATA', os.path.join(os.path.dirname(root), 'shared', 'data'))
    folder = os.path.join(shared, 'enmap_metadata')
    names = [n for n in os.listdir(folder) if n.endswith('-METADATA.XML')] if os.path.isdir(folder) else []
    if not names:
        pytest.skip(f'shared METADATA.XML sample not found in {folder}')
    product = names[0][:-len('-METADATA.XML')]
    shutil.copy(os.path.join(folder, names[0]), str(tmp_path))
    _write_tif(tmp_path / f'{product}-SPECTRAL_IMAGE.TIF', 218, width=3, height=2)
    with open_spectral(str(tmp_path)) as raster:
        assert raster.band_count == 218 and raster.product_name == product
        assert raster.wavelengths[0] == pytest.approx(423.03) and raster.fwhm[0] == pytest.approx(6.93)
        assert np.allclose(raster.gains, 1e-4) and raster.nodata == -32768.0
        assert raster.band_order == 'wavelength' and not raster.is_standard_enmap
        assert not raster.dead_bands.any()


def test_vsizip_layer_path_opens_the_product(tmp_path):
    """QGIS names a layer opened from a product ZIP by its /vsizip/ path: that must open the whole product."""
    product = synthetic.write_product(str(tmp_path / 'p'), width=12, height=10, seed=3, make_zip=True)
    inner = f'/vsizip/{product.zip}/{product.product_name}/{product.product_name}-SPECTRAL_IMAGE.TIF'
    with open_spectral(inner) as raster:
        assert raster.product_name == product.product_name
        assert raster.band_count == 224 and raster.metadata_xml


def test_product_source_names_the_zip_a_layer_path_points_into(tmp_path):
    """The dialog asks the core what to run for a layer's source: a /vsizip/ path into a product ZIP is the ZIP;
    a path into any other ZIP, or any other path, stays as it is (GDAL reads it)."""
    import zipfile

    from enmap_compress.plugin.core.enmap import product_source

    product = synthetic.write_product(str(tmp_path / 'p'), width=12, height=10, seed=3, make_zip=True)
    member = f'{product.product_name}/{product.product_name}-SPECTRAL_IMAGE.TIF'
    assert product_source(f'/vsizip/{product.zip}/{member}') == product.zip
    assert product_source(f'/vsizip/{product.zip}') == product.zip
    plain = str(tmp_path / 'plain.zip')
    with zipfile.ZipFile(plain, 'w') as archive:
        archive.write(product.image, 'image.tif')
    for path in (f'/vsizip/{plain}/image.tif', product.image, f'/vsizip/{tmp_path}/missing.zip/a.tif',
                 '/vsicurl/https://example.org/a.tif'):
        assert product_source(path) == path
    broken = tmp_path / 'broken.zip'
    broken.write_bytes(b'PK not really')
    assert product_source(f'/vsizip/{broken}/a.tif') == f'/vsizip/{broken}/a.tif'


def test_product_source_reads_the_zip_directory_once_while_the_zip_is_unchanged(tmp_path, monkeypatch):
    """The dialog and the spectrum tool ask for every layer, often: the directory is read once per ZIP, and again
    once the ZIP is rewritten (another product saved under the same name)."""
    from enmap_compress.plugin.core import enmap

    product = synthetic.write_product(str(tmp_path / 'p'), width=12, height=10, seed=3, make_zip=True)
    layer_path = f'/vsizip/{product.zip}/{product.product_name}/{product.product_name}-SPECTRAL_IMAGE.TIF'
    opened = []
    real = zipfile.ZipFile

    def counting(path, *args, **kwargs):
        opened.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(enmap.zipfile, 'ZipFile', counting)
    assert [enmap.product_source(layer_path) for _ in range(5)] == [product.zip] * 5
    assert opened == [product.zip]
    with real(product.zip, 'w') as archive:  # rewritten: no product in it any more
        archive.writestr('readme.txt', 'not a product')
    os.utime(product.zip, ns=(0, os.stat(product.zip).st_mtime_ns + 10 ** 9))
    assert enmap.product_source(layer_path) == layer_path
    assert opened == [product.zip] * 2


def test_reads_survive_gdal_num_threads(tmp_path):
    """GDAL 3.6 segfaults on band-subset reads of uncompressed GeoTIFFs with GDAL_NUM_THREADS set; the reader
    must not (run in a subprocess, since the failure is a crash)."""
    import subprocess
    import sys


    path = synthetic.write_scene(str(tmp_path / 'band.tif'), width=300, height=300, seed=1)
    script = ('import sys;'
              'from enmap_compress.plugin.core.enmap import open_spectral;'
              'r = open_spectral(sys.argv[1]);'
              'print(r.read(0, 24, 300, 276, bands=[129, 130, 131, 132, 133, 134]).shape, int(r.dead_bands.sum()))')
    proc = subprocess.run([sys.executable, '-c', script, path],
                          capture_output=True, text=True, env=dict(os.environ, GDAL_NUM_THREADS='2'), timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert '(6, 276, 300) 6' in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# Hostile products (found by fuzzing)

def _renamed_zip(source, target, rename, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(str(target), 'w', method) as new:
        for info in old.infolist():
            if not info.is_dir():
                new.writestr(rename(info.filename), old.read(info))
    return str(target)


@pytest.mark.parametrize('rename', [lambda n: n.replace('/', '\\'), lambda n: './' + n],
                         ids=['backslashes', 'dot_slash'])
def test_a_zip_with_windows_separators_or_dot_slash_names_opens(product, expected, tmp_path, rename):
    """PowerShell 5.1's Compress-Archive writes backslash separators, some tools './': GDAL's /vsizip/ names such
    members with '/' and no './', and the reader named them as stored (GDAL could not open them)."""
    path = _renamed_zip(product.zip, tmp_path / 'p.ZIP', rename)
    with open_spectral(path) as raster:
        assert raster.product_name == product.product_name
        assert np.array_equal(raster.read(0, 0, W, H), expected)
        raster.stage()
        assert np.array_equal(raster.read(0, 0, W, H), expected)
        assert list(np.flatnonzero(raster.dead_bands)) == DEAD


def test_an_image_member_gdal_cannot_inflate_says_why(product, expected, tmp_path):
    """7-Zip and others can write LZMA members; GDAL 3.6's /vsizip/ reads stored and deflated ones only and said
    just 'cpl_unzOpenCurrentFile() failed'."""
    path = _renamed_zip(product.zip, tmp_path / 'lzma.ZIP', lambda n: n, zipfile.ZIP_LZMA)
    try:
        raster = open_spectral(path)
    except InputError as exc:
        assert 'compressed with LZMA' in str(exc) and 'unpack the ZIP' in str(exc)
    else:  # a GDAL that reads LZMA members
        with raster:
            assert np.array_equal(raster.read(0, 0, W, H), expected)


def test_a_zip_that_wraps_the_product_zip_says_so(product, tmp_path):
    path = _zip(tmp_path / 'order.zip', {'order/' + os.path.basename(product.zip): open(product.zip, 'rb').read()})
    with pytest.raises(InputError, match=r'no <PRODUCT>-METADATA.XML but 1 ZIP file .*unpack this ZIP'):
        open_spectral(path)


@pytest.mark.skipif(os.name != 'posix', reason='a FIFO')
def test_a_pipe_named_like_the_spectral_image_is_not_opened(product, tmp_path):
    """GDAL's open of a FIFO never returns: a product folder whose image is one must be refused, not opened."""
    folder = _copy_product(product, tmp_path)
    image = os.path.join(folder, os.path.basename(product.image))
    os.remove(image)
    os.mkfifo(image)
    with pytest.raises(InputError, match='no spectral image'):
        enmap._locate(folder)  # (the old code located the pipe; opening it would hang the test)
    xml = os.path.join(folder, os.path.basename(product.xml))
    os.remove(xml)
    os.mkfifo(xml.replace('-METADATA.XML', '-metadata.xml'))
    assert enmap._find_case_insensitive(folder, os.path.basename(xml)) is None


def test_a_garbage_offset_is_said_not_dropped_silently(product, tmp_path):
    folder = _copy_product(product, tmp_path)
    xml = os.path.join(folder, os.path.basename(product.xml))
    text = open(xml, encoding='utf-8').read()
    text = text.replace('<OffsetOfBand>0</OffsetOfBand>', '<OffsetOfBand>0.01</OffsetOfBand>')
    text = text.replace('<OffsetOfBand>0.01</OffsetOfBand>', '<OffsetOfBand>n/a</OffsetOfBand>', 1)
    open(xml, 'w', encoding='utf-8').write(text)
    with open_spectral(folder) as raster:
        assert np.all(raster.offsets == 0)
        assert any('OffsetOfBand of band 1 is missing or not a number' in w for w in raster.warnings)


def test_an_envi_data_ignore_value_that_is_no_number_is_not_read_as_zero(tmp_path):
    """GDAL's ENVI driver reads 'data ignore value = abc' as nodata 0, so every 0 DN (dark water) became nodata."""
    envi = synthetic.write_product(str(tmp_path), width=6, height=5, seed=1, image_format='ENVI')
    header = next(os.path.join(envi.folder, n) for n in os.listdir(envi.folder) if n.upper().endswith('.HDR'))
    text = re.sub(r'^data ignore value.*$', '', open(header).read(), flags=re.M)
    open(header, 'w').write(text + 'data ignore value = abc\n')
    with open_spectral(envi.folder) as raster:
        assert raster.nodata == -32768.0  # EnMAP's, as for a product whose image states none
        assert any("data ignore value 'abc' is not a number" in w for w in raster.warnings)


def test_224_bands_at_other_wavelengths_are_refused_for_their_wavelengths(product, tmp_path):
    """A METADATA.XML in micrometres (or shifted) was refused as 'has 224 bands; the compressors need the 224
    EnMAP L2A bands', which names the band count, the one thing that is right."""
    from enmap_compress.plugin.core import codec

    folder = _copy_product(product, tmp_path)
    xml = os.path.join(folder, os.path.basename(product.xml))
    text = re.sub(r'<wavelengthCenterOfBand>([^<]*)</wavelengthCenterOfBand>',
                  lambda m: f'<wavelengthCenterOfBand>{float(m.group(1)) / 1000:g}</wavelengthCenterOfBand>',
                  open(xml, encoding='utf-8').read())
    open(xml, 'w', encoding='utf-8').write(text)
    with pytest.raises(InputError, match=r'its wavelengths \(0\.4182-2\.4\d* nm\) do not match them'):
        codec._open_input(folder)


def test_a_fwhm_no_band_table_holds_is_left_out_with_a_warning_and_a_wavelength_refused(product, tmp_path):
    """FWHMOfBand 1e300 was refused at compress as 'header field raster.fwhm_delta is not a valid band table: it is
    corrupt', naming the output's header for a fault of the input."""
    from enmap_compress.plugin.core import codec

    folder = _copy_product(product, tmp_path)
    xml = os.path.join(folder, os.path.basename(product.xml))
    original = open(xml, encoding='utf-8').read()
    text = re.sub(r'<FWHMOfBand>[^<]*</FWHMOfBand>', '<FWHMOfBand>1e300</FWHMOfBand>', original, count=1)
    open(xml, 'w', encoding='utf-8').write(text)
    with open_spectral(folder) as raster:
        assert raster.fwhm is None
        assert any('FWHM metadata that is no bandwidth' in w for w in raster.warnings)
    out = str(tmp_path / 'l.ehc')
    codec.compress(folder, out, model='pca', max_error=0)
    assert os.path.getsize(out) > 0
    text = re.sub(r'<wavelengthCenterOfBand>[^<]*</wavelengthCenterOfBand>',
                  '<wavelengthCenterOfBand>1e300</wavelengthCenterOfBand>', original, count=1)
    open(xml, 'w', encoding='utf-8').write(text)
    with pytest.raises(InputError, match='invalid wavelength metadata'):
        open_spectral(folder)


def _envi_scene(tmp_path, drop=(), add=''):
    """A synthetic ENVI scene whose header lacks the lines starting with `drop` and ends with `add`."""
    path = synthetic.write_scene(str(tmp_path / 'scene.bsq'), width=6, height=5, seed=4, driver='ENVI')
    header = str(tmp_path / 'scene.hdr')
    lines = [line for line in open(header).read().splitlines() if not line.startswith(tuple(drop))]
    open(header, 'w').write('\n'.join(lines) + '\n' + add)
    return path


@pytest.mark.parametrize('factor,gain', [('1000', 1e-3), ('10000', 1e-4), ('1', 1.0)])
def test_an_envi_reflectance_scale_factor_is_the_scale(tmp_path, factor, gain):
    """'reflectance scale factor = 1000' (reflectance = DN / 1000), which GDAL does not make a band scale, was
    ignored with the warning that the image had no scale: its DN were read as EnMAP's (x 0.0001), and the output
    stated scale 0.0001."""
    path = _envi_scene(tmp_path, drop=('data gain values', 'data offset values'),
                       add=f'reflectance scale factor = {factor}\n')
    with open_spectral(path) as raster:
        assert np.allclose(raster.gains, gain, rtol=1e-12, atol=0) and np.all(raster.offsets == 0)
        assert not any('no scale/offset' in w for w in raster.warnings)


def test_an_envi_reflectance_scale_factor_that_is_no_positive_number_is_said_and_ignored(tmp_path):
    path = _envi_scene(tmp_path, drop=('data gain values', 'data offset values'),
                       add='reflectance scale factor = -5\n')
    with open_spectral(path) as raster:
        assert np.allclose(raster.gains, 1e-4)  # the EnMAP convention, said so
        assert any("reflectance scale factor '-5' is not a positive number" in w for w in raster.warnings)
        assert any('no scale/offset' in w for w in raster.warnings)


def test_an_envi_bad_band_list_is_read(tmp_path):
    flags = ['0' if i in (3, 130) else '1' for i in range(224)]
    with open_spectral(_envi_scene(tmp_path, add='bbl = {' + ', '.join(flags) + '}\n')) as raster:
        assert raster.bad_bands == [3, 130] and raster.warnings == []
    with open_spectral(_envi_scene(tmp_path, add='bbl = {1, 0, 1}\n')) as raster:
        assert raster.bad_bands == []
        assert any('bad band list (bbl) is not 224 values of 0 or 1' in w for w in raster.warnings)


def test_band_names_keep_their_spaces(tmp_path):
    """Names were stripped ('b 1 ' came back as 'b 1'); a name of spaces alone is still none."""
    path = _write_tif(tmp_path / 'n.tif', 224, wavelengths=bands.standard_wavelengths(), units='Nanometers')
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(1).SetDescription('b 1 ')
    ds.GetRasterBand(2).SetDescription('   ')
    ds = None
    with open_spectral(path) as raster:
        assert raster.band_names[0] == 'b 1 ' and raster.band_names[1] == 'band 2 (423.8 Nanometers)'


# ---------------------------------------------------------------------------------------------------------------
# Forms of a delivery: other processing levels, processor versions, copies through other systems

def _patched_product(product, tmp_path, *replacements, count=-1):
    """A copy of the product folder whose METADATA.XML has each (old, new) replaced; (folder, xml path)."""
    folder = _copy_product(product, tmp_path)
    xml = os.path.join(folder, os.path.basename(product.xml))
    text = open(xml, encoding='utf-8').read()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, count)
    with open(xml, 'w', encoding='utf-8') as f:
        f.write(text)
    return folder, xml


def test_appledouble_files_beside_the_product_are_not_a_second_product(product, expected, tmp_path):
    """macOS writes '._<name>' beside every file on FAT/exFAT drives and into its ZIPs (under __MACOSX/): the
    folder read as two products and the ZIP as two METADATA.XML files."""
    folder = _copy_product(product, tmp_path)
    for name in (os.path.basename(product.xml), os.path.basename(product.image)):
        with open(os.path.join(folder, '._' + name), 'wb') as f:
            f.write(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X')
    zip_path = str(tmp_path / 'mac.zip')
    with zipfile.ZipFile(zip_path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(os.listdir(folder)):
            member = f'{product.product_name}/{name}'
            archive.write(os.path.join(folder, name), ('__MACOSX/' + member) if name.startswith('._') else member)
    for path in (folder, zip_path):
        with open_spectral(path) as raster:
            _check_product(raster, product, expected)


@pytest.mark.parametrize('root', ['<level_X xmlns="http://www.dlr.de/enmap/metadata">',
                                  '<md:level_X xmlns:md="http://www.dlr.de/enmap/metadata">'])
def test_a_metadata_xml_with_a_namespace_is_read(product, expected, tmp_path, root):
    replacements = [('<level_X>', root)] + ([('</level_X>', '</md:level_X>')] if root.startswith('<md:') else [])
    folder, _ = _patched_product(product, tmp_path, *replacements)
    with open_spectral(folder) as raster:
        _check_product(raster, product, expected)


def test_an_l1b_product_is_refused_by_its_level(product, tmp_path):
    """L1B: VNIR (91 bands) and SWIR (133 bands) images apart, in sensor geometry; it read as 'no spectral image'."""
    name = product.product_name.replace('L2A', 'L1B')
    folder = tmp_path / name
    folder.mkdir()
    text = open(product.xml, encoding='utf-8').read().replace('L2A', 'L1B').replace(product.product_name, name)
    (folder / f'{name}-METADATA.XML').write_text(text, encoding='utf-8')
    vnir = _write_tif(folder / f'{name}-SPECTRAL_IMAGE_VNIR.TIF', 91)
    _write_tif(folder / f'{name}-SPECTRAL_IMAGE_SWIR.TIF', 133)
    zip_path = str(tmp_path / f'{name}.ZIP')
    with zipfile.ZipFile(zip_path, 'w') as archive:
        for entry in sorted(os.listdir(folder)):
            archive.write(str(folder / entry), f'{name}/{entry}')
    for path in (str(folder), str(folder / f'{name}-METADATA.XML'), zip_path, vnir):
        with pytest.raises(InputError, match='EnMAP L1B product: its VNIR and SWIR images are apart'):
            open_spectral(path)


def test_an_l1c_product_is_read_and_named_as_radiance(product, tmp_path):
    folder, _ = _patched_product(product, tmp_path, ('<processingLevel>L2A</processingLevel>',
                                                     '<processingLevel>L1C</processingLevel>'))
    with open_spectral(folder) as raster:
        assert raster.is_standard_enmap and np.allclose(raster.gains, 1e-4)
        assert any('is an EnMAP L1C product: top-of-atmosphere radiance' in w for w in raster.warnings)


def test_a_quality_layer_given_as_the_image_is_refused(product, tmp_path):
    """QL_PIXELMASK has a band per spectral band: it was compressed as the spectral image of the standard bands."""
    mask = _write_tif(tmp_path / f'{product.product_name}-QL_PIXELMASK.TIF', 224, gdal_type=gdal.GDT_Byte, fill=0)
    with pytest.raises(InputError, match='is the QL_PIXELMASK layer of an EnMAP product, not its spectral image'):
        open_spectral(mask)


def test_a_gain_of_zero_in_the_metadata_is_refused_naming_the_file_and_band(product, tmp_path):
    """It reached the compressor, whose error named neither the file nor the band."""
    folder, xml = _patched_product(product, tmp_path, ('<GainOfBand>0.0001</GainOfBand>', '<GainOfBand>0</GainOfBand>'),
                                   count=1)
    with pytest.raises(InputError, match=f'{re.escape(xml)} states GainOfBand 0 for band 1;'):
        open_spectral(folder)


def test_metadata_that_does_not_fit_its_image_is_said(product, tmp_path):
    folder, _ = _patched_product(product, tmp_path, (f'<columns>{W}</columns>', '<columns>1259</columns>'),
                                 ('<FWHMOfBand>', '<FWHMOfBand>n/a'))
    image = os.path.join(folder, os.path.basename(product.image))
    ds = gdal.Open(image, gdal.GA_Update)
    ds.GetRasterBand(1).SetScale(2e-5)  # the image states another scale than the METADATA.XML's
    ds = None
    with open_spectral(folder) as raster:
        assert raster.fwhm is None and np.allclose(raster.gains, 1e-4)
        said = ' | '.join(raster.warnings)
        assert f'describes a 1259 x {H} pixel image, but the image' in said
        assert 'the FWHMOfBand of band 1 is missing or not a number' in said
        assert 'its image states scale 2e-05 for band 1, its METADATA.XML GainOfBand 0.0001' in said


def test_a_product_image_without_georeferencing_is_said(product, tmp_path):
    folder = _copy_product(product, tmp_path)
    image = os.path.join(folder, os.path.basename(product.image))
    os.remove(image)
    _write_tif(image, 224, width=W, height=H)  # (as a JPEG2000 or ENVI delivery without its georeferencing)
    with open_spectral(folder) as raster:
        assert raster.crs_wkt == '' and any('has no georeferencing' in w for w in raster.warnings)
