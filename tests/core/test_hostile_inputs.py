"""Hostile or malformed inputs (METADATA.XML, product folder, ZIP, truncated rasters): one clear InputError each."""
import os
import re
import shutil
import zipfile

import numpy as np
import pytest

from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.errors import InputError
from tools import synthetic

CHARACTERISATION = re.compile(rb'(<bandCharacterisation>.*?</bandCharacterisation>)', re.S)


@pytest.fixture(scope='module')
def product(tmp_path_factory):
    return synthetic.write_product(str(tmp_path_factory.mktemp('p')), width=8, height=6, seed=1)


def _with_band_numbers(product, tmp_path, edit):
    """A copy of the product whose bandCharacterisation numbers went through `edit(number bytes) -> bytes`."""
    folder = shutil.copytree(product.folder, str(tmp_path / os.path.basename(product.folder)))
    xml = os.path.join(folder, os.path.basename(product.xml))
    data = open(xml, 'rb').read()
    block = CHARACTERISATION.search(data).group(1)
    edited = re.sub(rb'<bandID number="(\d+)">', lambda m: edit(m.group(1)), block)
    with open(xml, 'wb') as f:
        f.write(data.replace(block, edited))
    return folder, xml


BAD_NUMBERS = {
    'duplicate': (lambda n: b'<bandID number="1">' if n == b'2' else b'<bandID number="%s">' % n,
                  r'bandID number 1 appears 2 times'),
    'missing': (lambda n: b'<bandID>' if n == b'7' else b'<bandID number="%s">' % n, r'a bandID has no number'),
    'not a number': (lambda n: b'<bandID number="seven">' if n == b'7' else b'<bandID number="%s">' % n,
                     r"bandID number 'seven' is not an integer"),
    'fraction': (lambda n: b'<bandID number="7.5">' if n == b'7' else b'<bandID number="%s">' % n,
                 r"bandID number '7.5' is not an integer"),
    'zero': (lambda n: b'<bandID number="0">' if n == b'7' else b'<bandID number="%s">' % n,
             r'numbers must be 1\.\.224'),
    'out of range': (lambda n: b'<bandID number="99999999999999999999">' if n == b'7' else b'<bandID number="%s">' % n,
                     r'numbers must be 1\.\.224'),
    'negative': (lambda n: b'<bandID number="-7">' if n == b'7' else b'<bandID number="%s">' % n,
                 r'numbers must be 1\.\.224'),
}


@pytest.mark.parametrize('damage', sorted(BAD_NUMBERS))
def test_bad_band_numbers_give_one_clear_input_error(product, tmp_path, damage):
    """Finding 6: two <bandID number="1"> raised a TypeError (sorting compared the XML elements)."""
    edit, message = BAD_NUMBERS[damage]
    folder, xml = _with_band_numbers(product, tmp_path, edit)
    for path in (folder, xml):
        with pytest.raises(InputError, match=message) as info:
            open_spectral(path)
        assert 'is not a readable EnMAP METADATA.XML' in str(info.value)


def test_duplicate_band_numbers_in_a_zip_give_one_clear_input_error(product, tmp_path):
    folder, _ = _with_band_numbers(product, tmp_path, BAD_NUMBERS['duplicate'][0])
    archive = str(tmp_path / (os.path.basename(folder) + '.ZIP'))
    with zipfile.ZipFile(archive, 'w') as zf:
        for name in os.listdir(folder):
            zf.write(os.path.join(folder, name), f'{os.path.basename(folder)}/{name}')
    with pytest.raises(InputError, match='bandID number 1 appears 2 times'):
        open_spectral(archive)


def test_shuffled_band_numbers_are_read_in_number_order(product, tmp_path):
    swap = {b'1': b'2', b'2': b'1'}
    folder, _ = _with_band_numbers(product, tmp_path, lambda n: b'<bandID number="%s">' % swap.get(n, n))
    with open_spectral(folder) as raster:
        assert raster.wavelengths[0] > raster.wavelengths[1]  # entry "2" (423.8 nm) now holds the first wavelength


def test_a_crs_without_epsg_code_compresses_when_osr_exceptions_are_on(tmp_path):
    """Another plugin may have called osr.UseExceptions(): AutoIdentifyEPSG then raises for a custom CRS."""
    from osgeo import gdal, osr

    from enmap_compress.plugin.core.codec import compress, decompress

    source = synthetic.write_scene(str(tmp_path / 'custom.tif'), width=8, height=8, seed=1)
    custom = osr.SpatialReference()
    custom.SetFromUserInput('+proj=tmerc +lon_0=13.3 +k=0.9996 +x_0=500000 +ellps=GRS80 +units=m +no_defs')
    ds = gdal.Open(source, gdal.GA_Update)
    ds.SetProjection(custom.ExportToWkt())
    ds = None
    before = osr.GetUseExceptions()
    osr.UseExceptions()
    try:
        compress(source, str(tmp_path / 'c.ehc'), 'pca', 5, 'cpu')
    finally:
        osr.UseExceptions() if before else osr.DontUseExceptions()
    decompress(str(tmp_path / 'c.ehc'), str(tmp_path / 'c.tif'), 'cpu')
    restored = gdal.Open(str(tmp_path / 'c.tif'))
    assert restored.GetSpatialRef().IsSame(custom)


def _masked_scene(tmp_path, dtype='Int16', mask='per dataset'):
    """A synthetic scene without nodata whose GDAL mask band masks its top-left 4 x 3 pixels."""
    from osgeo import gdal

    base = synthetic.write_scene(str(tmp_path / 'base.tif'), width=12, height=10, seed=2)
    path = str(tmp_path / f'masked_{dtype}.tif')
    gdal.Translate(path, base, outputType=gdal.GetDataTypeByName(dtype), noData='none')
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(1).DeleteNoDataValue()
    if mask == 'per dataset':
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        values = np.full((10, 12), 255, np.uint8)
        values[:3, :4] = 0
        ds.GetRasterBand(1).GetMaskBand().WriteArray(values)
    elif mask == 'per band':
        ds.GetRasterBand(1).CreateMaskBand(0)
    ds = None
    return path


@pytest.mark.parametrize('mask', ['per dataset', 'per band', 'none'])
def test_a_mask_band_is_read_as_nodata_or_said_to_be_ignored(tmp_path, mask):
    """A per-dataset mask band's masked pixels are read as nodata pixels (an Int16 raster without nodata gets
    -32768); a mask per band is not read, and the warnings say so. 0.5.3 read masked pixels as data, quietly."""
    path = _masked_scene(tmp_path, mask=mask)
    with open_spectral(path) as raster:
        said = [w for w in raster.warnings if 'mask band' in w]
        cube = raster.read(0, 0, 12, 10)
        assert raster.nodata == (-32768 if mask == 'per dataset' else None)
    assert len(said) == (mask != 'none')
    if mask == 'per dataset':
        assert 'read as nodata (-32768)' in said[0]
        assert (cube[:, :3, :4] == -32768).all() and (cube[:, 3:] != -32768).any()
    elif mask == 'per band':
        assert 'not read' in said[0]


@pytest.mark.parametrize('dtype', ['Int16', 'Float32'])
@pytest.mark.parametrize('max_error', [None, 0])
def test_masked_pixels_come_back_as_nodata_pixels(tmp_path, dtype, max_error):
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import compress, decompress

    path = _masked_scene(tmp_path, dtype)
    compress(path, str(tmp_path / 'm.ehc'), 'pca', None if max_error == 0 else 5, 'cpu', max_error=max_error)
    decompress(str(tmp_path / 'm.ehc'), str(tmp_path / 'm.tif'), 'cpu')
    out = gdal.Open(str(tmp_path / 'm.tif'))
    back, original = out.ReadAsArray(), gdal.Open(path).ReadAsArray()
    if dtype == 'Int16':
        assert out.GetRasterBand(1).GetNoDataValue() == -32768 and (back[:, :3, :4] == -32768).all()
    else:
        assert np.isnan(back[:, :3, :4]).all()
    if max_error == 0:  # every other pixel bit for bit
        keep = np.ones((10, 12), bool)
        keep[:3, :4] = False
        assert np.array_equal(back[:, keep], original[:, keep])


def test_a_pixel_type_the_format_does_not_store_is_refused_before_anything_is_written(tmp_path):
    """0.5.3 wrote UInt32, Int64 and UInt64 images into .ehc files that no reader accepted (raster.dtype)."""
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import compress

    base = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=8, height=6, seed=2)
    path = str(tmp_path / 'u32.tif')
    gdal.Translate(path, base, outputType=gdal.GDT_UInt32, noData=0)
    with pytest.raises(InputError, match=r'pixel type UInt32; EnMAP Compress reads Int16, .*gdal_translate -ot'):
        open_spectral(path)
    with pytest.raises(InputError, match='pixel type UInt32'):
        compress(path, str(tmp_path / 'u32.ehc'), 'pca', None, 'cpu', max_error=0)
    assert not os.path.exists(tmp_path / 'u32.ehc')


def test_bands_of_several_pixel_types_are_read_in_one_type_that_holds_them_all(tmp_path):
    """A VRT may give band 6 Float32 and the others Int16: 0.5.3 read every band as band 1's Int16 and cut band 6's
    fractions off, even in lossless mode. Now all are read as Float32 (said so) and lossless returns them exactly."""
    import numpy as np
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import compress, decompress

    base = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=12, height=10, seed=2)
    floats = str(tmp_path / 'floats.tif')
    gdal.Translate(floats, base, outputType=gdal.GDT_Float32)
    vrt = str(tmp_path / 'mixed.vrt')
    gdal.BuildVRT(vrt, [base])
    text = open(vrt).read().split('<VRTRasterBand')
    text[6] = text[6].replace('dataType="Int16"', 'dataType="Float32"', 1).replace('scene.tif', 'floats.tif')
    with open(vrt, 'w') as f:
        f.write('<VRTRasterBand'.join(text))
    with open_spectral(vrt) as raster:
        assert raster.dtype == np.float32
        assert any('different pixel types (Int16, Float32)' in w for w in raster.warnings)
    compress(vrt, str(tmp_path / 'm.ehc'), 'pca', None, 'cpu', max_error=0)
    decompress(str(tmp_path / 'm.ehc'), str(tmp_path / 'm.tif'), 'cpu')
    back = gdal.Open(str(tmp_path / 'm.tif'))
    assert back.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert np.array_equal(back.ReadAsArray(), gdal.Open(vrt).ReadAsArray().astype(np.float32))


def _edited_copy(tmp_path, name, edit):
    from osgeo import gdal

    base = synthetic.write_scene(str(tmp_path / 'base.tif'), width=8, height=6, seed=3)
    path = str(tmp_path / name)
    gdal.Translate(path, base)
    ds = gdal.Open(path, gdal.GA_Update)
    edit(ds)
    ds = None
    return path


def _nan_geotransform(tmp_path):
    from osgeo import gdal

    base = synthetic.write_scene(str(tmp_path / 'base.tif'), width=8, height=6, seed=3)
    path = str(tmp_path / 'nan.vrt')
    gdal.BuildVRT(path, [base])
    text = re.sub(r'<GeoTransform>[^<]*</GeoTransform>', '<GeoTransform>nan, 30, 0, 0, 0, -30</GeoTransform>',
                  open(path).read())
    with open(path, 'w') as f:
        f.write(text)
    return path


def _float_vrt_with_nodata(tmp_path, nodata):
    """A Float32 VRT whose bands state a nodata float32 cannot hold (a VRT keeps the double; a GeoTIFF reads inf)."""
    from osgeo import gdal

    base = synthetic.write_scene(str(tmp_path / 'base.tif'), width=8, height=6, seed=3)
    floats = str(tmp_path / 'float.tif')
    gdal.Translate(floats, base, outputType=gdal.GDT_Float32, noData='none')
    path = str(tmp_path / 'float.vrt')
    gdal.BuildVRT(path, [floats], srcNodata='none', VRTNodata=nodata)
    return path


def _all_bands(method, *args):
    def edit(ds):
        for index in range(1, ds.RasterCount + 1):
            getattr(ds.GetRasterBand(index), method)(*args)
    return edit


ODD_METADATA = {  # what 0.5.3 wrote into a .ehc file that no reader accepted; each now reads with a warning
    'nodata outside the type': (lambda p: _edited_copy(p, 'n.tif', _all_bands('SetNoDataValue', -99999)),
                                'declares nodata -99999, which Int16 data cannot hold'),
    'nodata NaN on integers': (lambda p: _edited_copy(p, 'nan.tif', _all_bands('SetNoDataValue', float('nan'))),
                               'declares nodata nan'),
    'a 5000-character band name': (lambda p: _edited_copy(p, 'name.tif',
                                                          lambda ds: ds.GetRasterBand(3).SetDescription('x' * 5000)),
                                   'the name of band 3 has 5000 characters; its first 4096 are kept'),
    'a NaN geotransform': (_nan_geotransform, 'has a geotransform that is not a set of numbers'),
    'nodata beyond float32': (lambda p: _float_vrt_with_nodata(p, 1e300),
                              'declares nodata 1e+300, which Float32 data cannot hold'),
}


@pytest.mark.parametrize('case', ODD_METADATA)
def test_metadata_a_file_cannot_state_is_read_with_a_warning_and_the_file_decodes(tmp_path, case):
    from enmap_compress.plugin.core.codec import compress, decompress

    make, said = ODD_METADATA[case]
    source = make(tmp_path)
    result = compress(source, str(tmp_path / 'o.ehc'), 'pca', 3, 'cpu')
    assert any(said in w for w in result.warnings), result.warnings
    decompress(str(tmp_path / 'o.ehc'), str(tmp_path / 'o.tif'), 'cpu')


def test_the_writer_refuses_a_header_its_readers_would_refuse_before_writing_anything(tmp_path, monkeypatch):
    """Whatever a reader would refuse in the header (here a CRS no GDAL knows) stops compress with one InputError
    before any tile is written: no file that its own readers reject."""
    from enmap_compress.plugin.core import codec

    packed = codec.pack_raster
    monkeypatch.setattr(codec, 'pack_raster', lambda *a: dict(packed(*a), crs='not a CRS'))
    source = synthetic.write_scene(str(tmp_path / 'base.tif'), width=8, height=6, seed=3)
    with pytest.raises(InputError, match=r'cannot be stored as a \.ehc file \(the header field raster\.crs'):
        codec.compress(source, str(tmp_path / 'o.ehc'), 'pca', 3, 'cpu')
    assert not os.path.exists(tmp_path / 'o.ehc')


def _signed_byte_scene(tmp_path):
    """The synthetic scene as GeoTIFF signed bytes (PIXELTYPE=SIGNEDBYTE, nodata -128, negative values too)."""
    from osgeo import gdal

    base = gdal.Open(synthetic.write_scene(str(tmp_path / 'base.tif'), width=8, height=6, seed=2))
    path = str(tmp_path / 'signed.tif')
    ds = gdal.GetDriverByName('GTiff').Create(path, 8, 6, 224, gdal.GDT_Byte, ['PIXELTYPE=SIGNEDBYTE'])
    ds.SetGeoTransform(base.GetGeoTransform())
    ds.SetProjection(base.GetProjection())
    for index in range(1, 225):
        dn = base.GetRasterBand(index).ReadAsArray()
        values = np.where(dn == -32768, -128, np.clip(dn // 40 - 60, -127, 127)).astype(np.int8)
        band = ds.GetRasterBand(index)
        band.WriteArray(values.view(np.uint8))
        band.SetNoDataValue(-128)
        band.SetMetadata(base.GetRasterBand(index).GetMetadata())
        band.SetScale(0.004)
        band.SetOffset(0.24)
    ds = None
    return path


@pytest.mark.parametrize('max_error', [0, None])
def test_signed_bytes_are_read_as_their_values_with_their_nodata(tmp_path, max_error):
    """GDAL 3.6 reads PIXELTYPE=SIGNEDBYTE bands as Byte: 0.7.2 read -1 as 255 and -128 (nodata) as 128, dropped the
    nodata ('Byte data cannot hold -128') and wrote an unsigned output, even in lossless mode."""
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import compress, decompress

    path = _signed_byte_scene(tmp_path)
    with open_spectral(path) as raster:
        assert raster.dtype == np.int16 and raster.nodata == -128
        cube = raster.read(0, 0, 8, 6)
        assert cube.min() == -128 and (cube[~np.isin(cube, [-128])] < 0).any()
        assert any('signed bytes' in w for w in raster.warnings)
    result = compress(path, str(tmp_path / 's.ehc'), 'pca', 5 if max_error is None else None, 'cpu',
                      max_error=max_error)
    assert not any('cannot hold' in w for w in result.warnings)
    decompress(str(tmp_path / 's.ehc'), str(tmp_path / 's.tif'), 'cpu')
    out = gdal.Open(str(tmp_path / 's.tif'))
    assert out.GetRasterBand(1).DataType == gdal.GDT_Int16 and out.GetRasterBand(1).GetNoDataValue() == -128
    original = gdal.Open(path).ReadAsArray()  # (the Python bindings give the int8 values)
    assert original.dtype == np.int8
    back, nodata = out.ReadAsArray(), (original == -128).all(axis=0)
    assert nodata.any() and (back[:, nodata] == -128).all()  # the nodata pixels come back as nodata
    if max_error == 0:
        assert np.array_equal(back, original.astype(np.int16))


def test_an_alpha_band_is_refused_with_how_to_make_it_a_mask(tmp_path):
    """gdalbuildvrt -addalpha (or gdalwarp -dstalpha) adds band 225, an alpha band GDAL does not make a mask of for a
    225-band raster: 0.7.2 refused it as having 'no wavelength metadata' (or, with wavelengths on it, read the alpha
    band as a spectral one)."""
    from osgeo import gdal

    base = synthetic.write_scene(str(tmp_path / 'base.tif'), width=8, height=6, seed=2)
    path = str(tmp_path / 'alpha.vrt')
    gdal.BuildVRT(path, [base], addAlpha=True)
    with pytest.raises(InputError, match=r'band 225 of 225 is an alpha band .*gdal_translate -mask 225 with -b 1'):
        open_spectral(path)
    masked = str(tmp_path / 'masked.tif')  # what the message says to do: a mask band, read as nodata
    gdal.Translate(masked, path, bandList=list(range(1, 225)), maskBand=225)
    with open_spectral(masked) as raster:
        assert raster.band_count == 224 and any('has a mask band' in w for w in raster.warnings)


@pytest.mark.parametrize('given', ['folder', 'zip', 'image'])
def test_a_product_image_that_is_a_vrt_reads_no_other_file(product, tmp_path, given):
    # before: GDAL picks a driver by content, so a -SPECTRAL_IMAGE.TIF holding a VRT was opened as one and read any
    # file it named (here the user's own, raw; also /vsicurl/ URLs or \\host\share) into the image compressed
    folder = shutil.copytree(product.folder, str(tmp_path / os.path.basename(product.folder)))
    image = os.path.join(folder, os.path.basename(product.image))
    secret = tmp_path / 'secret.bin'
    np.arange(224 * 6 * 8, dtype='<i2').tofile(str(secret))
    bands = ''.join(f'<VRTRasterBand dataType="Int16" band="{b + 1}" subClass="VRTRawRasterBand"><SourceFilename '
                    f'relativetoVRT="0">{secret}</SourceFilename><ImageOffset>{b * 96}</ImageOffset><PixelOffset>2'
                    '</PixelOffset><LineOffset>16</LineOffset></VRTRasterBand>' for b in range(224))
    with open(image, 'w') as f:
        f.write(f'<VRTDataset rasterXSize="8" rasterYSize="6">{bands}</VRTDataset>')
    source = {'folder': folder, 'image': image, 'zip': str(tmp_path / 'p.zip')}[given]
    if given == 'zip':
        with zipfile.ZipFile(source, 'w', zipfile.ZIP_DEFLATED) as archive:
            for name in os.listdir(folder):
                archive.write(os.path.join(folder, name), f'{os.path.basename(folder)}/{name}')
    with pytest.raises(InputError, match='is no GeoTIFF, ENVI or JPEG 2000 image that GDAL can read'):
        open_spectral(source)
    with open_spectral(shutil.copy(image, str(tmp_path / 'mine.vrt'))) as raster:  # a VRT a user names opens
        assert raster.band_count == 224
