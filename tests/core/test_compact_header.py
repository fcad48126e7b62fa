"""The compact header of 3.x files (docs/format.md, "Compact header"): what it stores in short forms comes back
exactly (band tables that are not the standard one, CRSs with and without an authority code, geotransforms), the
short model sha256 still names one decoder, and a 2.x reader refuses the file by its version."""
import numpy as np
import pytest
from osgeo import gdal, osr

from enmap_compress.plugin.core import container, rasterheader
from enmap_compress.plugin.core.bands import standard_fwhm, standard_wavelengths
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.rasterheader import unpack_raster
from tools import synthetic

RNG = np.random.default_rng(14)
WAVELENGTH_TABLES = {  # as a GeoTIFF states them: text
    'standard': [f'{w:g}' for w in standard_wavelengths()],
    'shifted at 6 digits': [f'{w + 0.04 + 2e-4 * i:g}' for i, w in enumerate(standard_wavelengths())],
    'noisy at 4 decimals': [f'{w + n:.4f}' for w, n in zip(standard_wavelengths(), RNG.normal(0, 0.02, 224))],
    'recalibrated': [f'{w + 1.5 * np.sin(i / 9):.2f}' for i, w in enumerate(standard_wavelengths())],
}


def _utm33n():
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    return srs.ExportToWkt()


def _custom_tm():
    srs = osr.SpatialReference()
    srs.SetProjCS('custom TM')
    srs.SetWellKnownGeogCS('WGS84')
    srs.SetTM(0, 14.1, 0.9996, 500000, 0)
    return srs.ExportToWkt()


CRS_CASES = {  # WKT, what the header stores
    'EPSG code': (_utm33n(), 'EPSG:32633'),
    'no authority code': (_custom_tm(), 'wkt'),
    'none': ('', ''),
}


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('compact') / 'scene.tif'), width=10, height=8, seed=3)


def _variant(scene, path, wavelengths=None, fwhm=None, wkt=None, geotransform=None):
    """A copy of the scene with other band tables, CRS or geotransform."""
    gdal.Translate(str(path), scene)
    ds = gdal.Open(str(path), gdal.GA_Update)
    for i in range(224):
        band = ds.GetRasterBand(i + 1)
        if wavelengths is not None:
            band.SetMetadataItem('wavelength', wavelengths[i])
        if fwhm is not None:
            band.SetMetadataItem('fwhm', fwhm[i])
    if wkt is not None:
        ds.SetProjection(wkt)
    if geotransform is not None:
        ds.SetGeoTransform(geotransform)
    ds = None
    return str(path)


def _round_trip(source, tmp_path):
    """(stored raster header, unpacked raster header, the source as read, the decoded GeoTIFF)."""
    ehc, out = str(tmp_path / 'a.ehc'), str(tmp_path / 'a.tif')
    compress(source, ehc, 'pca', 3, 'cpu')
    decompress(ehc, out, 'cpu')
    with EhcReader(ehc) as reader:
        stored = reader.header['raster']
    with open_spectral(source) as raster:
        read = {'wavelengths': list(raster.wavelengths), 'fwhm': list(raster.fwhm), 'crs_wkt': raster.crs_wkt,
                'geotransform': list(raster.geotransform), 'band_names': list(raster.band_names)}
    return stored, unpack_raster(stored), read, gdal.Open(out)


@pytest.mark.parametrize('name', WAVELENGTH_TABLES)
def test_a_band_table_comes_back_exactly_and_never_costs_more_than_in_2_0(scene, tmp_path, name):
    fwhm = [f'{f * 1.01:.5f}' for f in standard_fwhm()] if name == 'recalibrated' else None
    source = _variant(scene, tmp_path / 's.tif', WAVELENGTH_TABLES[name], fwhm)
    stored, unpacked, read, out = _round_trip(source, tmp_path)
    for key in ('wavelengths', 'fwhm', 'band_names'):
        assert unpacked[key] == read[key], key
    for i in (0, 100, 223):  # the GeoTIFF writer states them exactly (0.7.2 cut them to 6 significant digits:
        band = out.GetRasterBand(i + 1)  # 2439.7612 nm came back as 2439.76), as before where 6 digits hold them
        for key, item in (('wavelengths', 'wavelength'), ('fwhm', 'fwhm')):
            text = band.GetMetadataItem(item)
            assert float(text) == read[key][i], (key, i, text)
            assert text == f'{read[key][i]:.6g}' or name == 'noisy at 4 decimals', (key, i, text)
    reference = standard_wavelengths()
    values = np.asarray(read['wavelengths'])
    old = next(s for e in range(3, 10) for s in [rasterheader._table_strings(values, reference, str(e))[:2]]
               if s[0] is not None)  # what 2.0 chose from: the fewest decimals, deltas or their differences
    packed = stored['wavelengths_delta']
    assert rasterheader._deflated_length(packed) <= min(map(rasterheader._deflated_length, old))


@pytest.mark.parametrize('name', WAVELENGTH_TABLES)
def test_the_shortest_exact_form_is_stored(name):
    reference = standard_wavelengths()
    values = np.asarray([float(w) for w in WAVELENGTH_TABLES[name]])
    fixed = next(f for e in '3456789' for f in [rasterheader._table_strings(values, reference, e)] if f[0])
    forms = fixed + rasterheader._table_strings(values, reference, 's')
    exact = [f for f in forms if f is not None]
    assert all(rasterheader._unpack_table(f, reference) == values.tolist() for f in exact)
    packed = rasterheader._pack_table(values, reference)
    assert rasterheader._deflated_length(packed) == min(map(rasterheader._deflated_length, exact))
    assert (forms[3] is not None) == (name != 'noisy at 4 decimals')  # six significant digits (or fewer): 's'


def test_six_significant_digits_of_the_reference():
    assert rasterheader._band_decimals('s', [418.2, 999.99, 1004.21, 6.99561, 0.5]) == [3, 3, 2, 5, 5]
    assert rasterheader._band_decimals('4', [418.2, 1004.21]) == [4, 4]


@pytest.mark.parametrize('values', [[0] * 7, [1, -1, 0, 2, -2, 0, 1], [0, 0, 5, 0, 0, 0, -100000, 1, 2 ** 40],
                                    [3], [-1, 1], list(range(-40, 40))])
def test_packed_digits_round_trip(values):
    text = rasterheader._packed_digits(values)
    assert rasterheader._unpacked_digits(text, len(values)) == values
    if all(-1 <= v <= 1 for v in values):
        assert len(text) == -(-len(values) // 3)  # three to a character


@pytest.mark.parametrize('name', CRS_CASES)
def test_a_crs_comes_back_exactly_whatever_form_it_is_stored_in(scene, tmp_path, name):
    wkt, form = CRS_CASES[name]
    source = _variant(scene, tmp_path / 'c.tif', wkt=wkt)
    stored, unpacked, read, out = _round_trip(source, tmp_path)
    assert stored['crs'] == (read['crs_wkt'] if form == 'wkt' else form)
    assert unpacked['crs_wkt'] == read['crs_wkt'] and out.GetProjection() == read['crs_wkt']


def test_a_crs_whose_code_would_not_reproduce_it_is_stored_as_wkt():
    """(A GeoTIFF states such a CRS by its code anyway; other inputs, ENVI or VRT, keep the WKT.)"""
    renamed = _utm33n().replace('"WGS 84 / UTM zone 33N"', '"UTM 33N, renamed"')
    srs = osr.SpatialReference()
    srs.ImportFromWkt(renamed)
    assert srs.AutoIdentifyEPSG() == 0 and srs.GetAuthorityCode(None) == '32633'  # the code is found ...
    assert rasterheader._pack_crs(renamed) == renamed == rasterheader._unpack_crs(renamed)  # ... but not used


def test_a_geotransform_comes_back_exactly(scene, tmp_path):
    geotransform = (365055.5, 29.999999, 0.0, 5809005.0, 0.0, -30.000001)
    stored, unpacked, read, out = _round_trip(_variant(scene, tmp_path / 'g.tif', geotransform=geotransform), tmp_path)
    assert stored['geotransform'] == [365055.5, 29.999999, 0, 5809005, 0, -30.000001]  # integral ones as ints
    assert unpacked['geotransform'] == read['geotransform'] == list(geotransform)
    assert all(isinstance(v, float) for v in unpacked['geotransform'])
    assert out.GetGeoTransform() == geotransform
    assert np.signbit(rasterheader._short_number(-0.0)) and rasterheader._short_number(2.0 ** 60) == 2.0 ** 60
    assert isinstance(rasterheader._short_number(2.0 ** 60), float)


def test_an_image_without_georeferencing_comes_back_without(scene, tmp_path):
    """The output stated GDAL's stand-in (0, 1, 0, 0, 0, 1): georeferenced, and upside down."""
    source, original = str(tmp_path / 'plain.tif'), gdal.Open(scene)
    ds = gdal.GetDriverByName('GTiff').Create(source, original.RasterXSize, original.RasterYSize, 224, gdal.GDT_Int16)
    for index in range(1, 225):
        band, was = ds.GetRasterBand(index), original.GetRasterBand(index)
        band.WriteArray(was.ReadAsArray())
        band.SetNoDataValue(was.GetNoDataValue())
        band.SetMetadata(was.GetMetadata())
    ds = None
    assert gdal.Open(source).GetGeoTransform(can_return_null=True) is None
    _stored, _unpacked, _read, out = _round_trip(source, tmp_path)
    assert out.GetGeoTransform(can_return_null=True) is None and out.GetGCPCount() == 0


def test_a_new_header_leaves_out_what_the_model_gives_and_the_thread_count(scene, tmp_path):
    ehc = str(tmp_path / 'v.ehc')
    compress(scene, ehc, 'pca', 3, 'cpu')
    with EhcReader(ehc) as reader:
        assert len(reader.header['codec']['model_sha256']) == 16 and 'step' not in reader.header['codec']
        assert set(reader.header['device']) == {'used', 'provider'}


def test_a_2_x_reader_refuses_a_3_0_file_by_its_version(scene, tmp_path, monkeypatch):
    ehc = str(tmp_path / 'n.ehc')
    compress(scene, ehc, 'pca', 3, 'cpu')
    monkeypatch.setattr(container, 'READ_MAJORS', (1, 2))  # what 0.3.0 reads
    with pytest.raises(FormatError, match=r'n\.ehc is a version 3\.0 \.ehc file; this EnMAP Compress reads versions '
                                          r'1\.x, 2\.x only\. Update the plugin to read it\.'):
        EhcReader(ehc)


def test_a_small_file_spends_little_on_its_header(scene, tmp_path):
    ehc = str(tmp_path / 'h.ehc')
    compress(scene, ehc, 'pca', 3, 'cpu')
    with EhcReader(ehc) as reader:
        header = container.store_json(container.to_json_bytes(reader.header))
        old = container.store_json(container.to_json_bytes(reader.header), (2, 0))
    assert len(header) < 110 < len(old)
    assert container.fixed_bytes() == 44 and container.fixed_bytes((2, 0)) == 52


def test_the_writer_keeps_the_shorter_of_two_deflate_strategies(scene, tmp_path):
    import zlib

    from enmap_compress.plugin.core.headerdict import DICTIONARY_3

    ehc = str(tmp_path / 's.ehc')
    compress(scene, ehc, 'pca', 3, 'cpu')
    with EhcReader(ehc) as reader:
        data = container.to_json_bytes(reader.header)
    lengths = []
    for strategy in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED):
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, strategy, DICTIONARY_3)
        lengths.append(len(deflater.compress(data) + deflater.flush()))
    stored = container.deflate_json(data)
    assert len(stored) == min(lengths) and zlib.decompressobj(-15, DICTIONARY_3).decompress(stored) == data


def test_with_source_date_epoch_the_same_input_gives_the_same_file(scene, tmp_path, monkeypatch):
    """No header field varies from run to run but the creation time; SOURCE_DATE_EPOCH fixes that too."""
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1700000000')
    first, second = str(tmp_path / '1.ehc'), str(tmp_path / '2.ehc')
    compress(scene, first, 'pca', 3, 'cpu', threads=1)
    compress(scene, second, 'pca', 3, 'cpu', threads=2)
    assert open(first, 'rb').read() == open(second, 'rb').read()
    with EhcReader(first) as reader:
        assert reader.header['created'] == '2023-11-14T22:13:20Z'


@pytest.mark.parametrize('epoch', ['\u00b2', '9' * 20, '32503680000'])
def test_a_source_date_epoch_that_is_no_time_is_ignored_as_any_other(monkeypatch, epoch):
    # before: '²' (a digit to str.isdigit, not to int) raised ValueError, 20 nines OverflowError, in every compress
    from enmap_compress.plugin.core.codec import creation_time

    monkeypatch.setenv('SOURCE_DATE_EPOCH', 'x')
    now = creation_time()
    monkeypatch.setenv('SOURCE_DATE_EPOCH', epoch)
    assert creation_time()[:4] == now[:4]
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '32503679999')
    assert creation_time() == '2999-12-31T23:59:59Z'


def test_ground_control_points_and_rpcs_come_back_exactly(scene, tmp_path):
    """A raster georeferenced by GCPs (not yet orthorectified) and RPC metadata keeps both; 0.5.3 dropped them
    without a word. A raster without them stores neither key."""
    source = str(tmp_path / 'gcp.tif')
    gdal.Translate(source, scene)
    ds = gdal.Open(source, gdal.GA_Update)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    points = [(0.0, 0.0, 13.25, 52.5, 0.0), (24.0, 0.5, 13.2512345678, 52.5, 40.0), (0.0, 20.0, 13.25, 52.49, 0.0)]
    ds.SetGCPs([gdal.GCP(x, y, z, pixel, line) for pixel, line, x, y, z in points], srs.ExportToWkt())
    rpc = {'LINE_OFF': '10', 'SAMP_OFF': '12', 'LAT_OFF': '52.5', 'LONG_OFF': '13.25', 'HEIGHT_OFF': '0',
           'LINE_SCALE': '10', 'SAMP_SCALE': '12', 'LAT_SCALE': '0.1', 'LONG_SCALE': '0.1', 'HEIGHT_SCALE': '100',
           'LINE_NUM_COEFF': ' '.join(['0'] * 19 + ['1']), 'LINE_DEN_COEFF': ' '.join(['1'] + ['0'] * 19),
           'SAMP_NUM_COEFF': ' '.join(['0'] * 19 + ['1']), 'SAMP_DEN_COEFF': ' '.join(['1'] + ['0'] * 19)}
    ds.SetMetadata(rpc, 'RPC')
    ds = None
    ds = gdal.Open(source)  # as a reader sees them (GDAL adds ERR_BIAS and ERR_RAND)
    wanted_rpc, wanted_wkt = ds.GetMetadata('RPC'), ds.GetGCPProjection()
    ds = None
    stored, unpacked, _read, out = _round_trip(source, tmp_path)
    assert stored['gcps']['crs'] == 'EPSG:4326' and len(stored['gcps']['points']) == 3
    assert [(g.GCPPixel, g.GCPLine, g.GCPX, g.GCPY, g.GCPZ) for g in out.GetGCPs()] == points
    assert out.GetGCPProjection() == wanted_wkt
    assert out.GetMetadata('RPC') == wanted_rpc
    plain, _unpacked, _read, plain_out = _round_trip(scene, tmp_path)
    assert 'gcps' not in plain and 'rpc' not in plain and plain_out.GetGCPCount() == 0


def test_pixel_is_point_comes_back_with_the_same_corners(scene, tmp_path):
    """AREA_OR_POINT=Point (the values are samples at the pixels' centres) was dropped without a word: the output
    said Area. A raster without it stores no key."""
    source = str(tmp_path / 'point.tif')
    gdal.Translate(source, scene)
    ds = gdal.Open(source, gdal.GA_Update)
    ds.SetMetadataItem('AREA_OR_POINT', 'Point')
    ds = None
    wanted = gdal.Open(source).GetGeoTransform()
    stored, unpacked, read, out = _round_trip(source, tmp_path)
    assert stored['pixel_is_point'] is True and unpacked['pixel_is_point'] is True
    assert out.GetMetadataItem('AREA_OR_POINT') == 'Point' and out.GetGeoTransform() == wanted
    plain, _unpacked, _read, plain_out = _round_trip(scene, tmp_path)
    assert 'pixel_is_point' not in plain and plain_out.GetMetadataItem('AREA_OR_POINT') == 'Area'


def test_an_envi_bad_band_list_comes_back_with_the_dead_bands(tmp_path):
    """An ENVI header's bbl was not read: the output's bbl flagged only the bands without data, so bands the input
    flagged bad came back flagged good."""
    source = synthetic.write_scene(str(tmp_path / 'scene.bsq'), width=10, height=8, seed=3, driver='ENVI')
    flags = ['0' if i in (3, 130) else '1' for i in range(224)]
    with open(str(tmp_path / 'scene.hdr'), 'a') as header:
        header.write('bbl = {' + ', '.join(flags) + '}\n')
    stored, _unpacked, _read, out = _round_trip(source, tmp_path)
    assert stored['bad_bands'] == [3, 130]
    written = [i for i, v in enumerate(out.GetMetadataItem('bbl', 'ENVI').strip('{}').split(',')) if v.strip() == '0']
    assert written == sorted({3, 130} | set(stored['dead_bands']))
    plain, _unpacked, _read, _out = _round_trip(synthetic.write_scene(str(tmp_path / 'plain.bsq'), width=10, height=8,
                                                                      seed=3, driver='ENVI'), tmp_path)
    assert 'bad_bands' not in plain
