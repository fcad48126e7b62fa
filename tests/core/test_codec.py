"""Round trips through the real codec (PCA model, entropy coding, .ehc container, GeoTIFF output)."""
import os

import numpy as np
import pytest
from held_resources import datasets_held_by
from osgeo import gdal

from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.errors import CancelledError, FormatError, InputError, OutputError
from enmap_compress.plugin.core.evaluate import evaluate, measure
from enmap_compress.plugin.core.rasterheader import unpack_raster
from enmap_compress.plugin.core.runtime import find_model
from tools import synthetic

gdal.UseExceptions()


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp('scene')
    return synthetic.write_scene(str(folder / 'scene.tif'), width=70, height=52, seed=3)


def _files(folder):
    return sorted(os.listdir(folder))


def test_round_trip_restores_layout_and_measures_rate_from_the_file(scene, tmp_path):
    ehc, rec = str(tmp_path / 'a.ehc'), str(tmp_path / 'a.tif')
    result = compress(scene, ehc, 'pca', 8, 'cpu', tile_size=32)
    assert result.file_bytes == os.path.getsize(ehc)
    assert result.bpppb == pytest.approx(os.path.getsize(ehc) * 8 / (result.valid_pixels * 202))
    assert result.compression_ratio == pytest.approx(16 / result.bpppb)
    decompress(ehc, rec, 'cpu')
    src, out = gdal.Open(scene), gdal.Open(rec)
    assert (out.RasterXSize, out.RasterYSize, out.RasterCount) == (src.RasterXSize, src.RasterYSize, src.RasterCount)
    assert out.GetGeoTransform() == src.GetGeoTransform()
    assert out.GetSpatialRef().IsSame(src.GetSpatialRef())
    assert out.GetRasterBand(1).DataType == gdal.GDT_Int16
    for index in (1, 50, 224):
        a, b = src.GetRasterBand(index), out.GetRasterBand(index)
        assert b.GetNoDataValue() == a.GetNoDataValue() == -32768
        assert float(b.GetMetadataItem('wavelength')) == pytest.approx(float(a.GetMetadataItem('wavelength')), abs=1e-3)
        assert float(b.GetMetadataItem('fwhm')) == pytest.approx(float(a.GetMetadataItem('fwhm')), abs=1e-3)
        assert b.GetScale() == pytest.approx(1e-4)


def test_nodata_pixels_dead_and_uncoded_bands_come_back_as_nodata(scene, tmp_path):
    ehc, rec = str(tmp_path / 'b.ehc'), str(tmp_path / 'b.tif')
    compress(scene, ehc, 'pca', 5, 'cpu')
    decompress(ehc, rec, 'cpu')
    with open_spectral(scene) as a, open_spectral(rec) as b:
        original = a.read_canonical(0, 0, a.width, a.height)
        restored = b.read_canonical(0, 0, b.width, b.height)
        dead = a.to_canonical(np.asarray(a.dead_bands)[:, None])[:, 0]
    assert dead.any()
    assert (restored[dead] == -32768).all()
    border = (original == -32768).all(axis=0)
    assert border.any() and (restored[:, border] == -32768).all()
    for band in (126, 140, 160, 166):  # 0-based canonical indices of dropped water-vapour bands
        assert (restored[band] == -32768).all()


def test_header_fields_survive(scene, tmp_path):
    ehc = str(tmp_path / 'c.ehc')
    compress(scene, ehc, 'pca', 3, 'cpu')
    with EhcReader(ehc) as reader, open_spectral(scene) as raster:
        header = reader.header
        unpacked = unpack_raster(header['raster'])
        assert unpacked['crs_wkt'] == raster.crs_wkt
        assert unpacked['band_names'] == list(raster.band_names)
        np.testing.assert_array_equal(unpacked['canonical_index'], raster.canonical_index)
        assert header['raster']['width'] == raster.width and header['raster']['height'] == raster.height
        assert header['raster']['nodata'] == -32768
        assert header['codec']['model_id'] == 'pca' and header['codec']['quality'] == 3
        assert header['codec']['model_sha256'] == find_model('pca').decoder_sha256()[:16]
        assert header['device']['used'] == 'cpu'
        np.testing.assert_allclose(unpacked['wavelengths'], raster.wavelengths, atol=1e-3)
        np.testing.assert_allclose(unpacked['fwhm'], raster.fwhm, atol=1e-3)


def test_quality_levels_are_monotonic_in_rate_and_psnr(scene, tmp_path):
    rates, psnrs = [], []
    for level in (1, 4, 7, 10):
        result = evaluate(scene, str(tmp_path / f'r{level}.tif'), 'pca', level, 'cpu')
        rates.append(result.bpppb)
        psnrs.append(result.psnr)
    assert rates == sorted(rates) and psnrs == sorted(psnrs), (rates, psnrs)
    assert psnrs[-1] > 50


def test_detector_order_float_input_round_trips_in_its_own_order(tmp_path):
    source = synthetic.write_scene(str(tmp_path / 'det.tif'), width=40, height=33, seed=5, band_order='detector',
                                   dtype='float32')
    ehc, rec = str(tmp_path / 'det.ehc'), str(tmp_path / 'det_rec.tif')
    compress(source, ehc, 'pca', 9, 'cpu')
    decompress(ehc, rec, 'cpu')
    src, out = gdal.Open(source), gdal.Open(rec)
    assert out.GetRasterBand(1).DataType == gdal.GDT_Float32
    wl_src = [float(src.GetRasterBand(i).GetMetadataItem('wavelength')) for i in range(1, 225)]
    wl_out = [float(out.GetRasterBand(i).GetMetadataItem('wavelength')) for i in range(1, 225)]
    np.testing.assert_allclose(wl_out, wl_src, atol=1e-3)
    assert measure(source, rec)['psnr'] > 45


def test_corrupt_and_truncated_files_fail_clearly(scene, tmp_path):
    ehc = str(tmp_path / 'd.ehc')
    compress(scene, ehc, 'pca', 5, 'cpu')
    data = bytearray(open(ehc, 'rb').read())
    corrupt = tmp_path / 'corrupt.ehc'
    middle = len(data) // 2
    corrupt.write_bytes(bytes(data[:middle]) + bytes([data[middle] ^ 0xFF]) + bytes(data[middle + 1:]))
    truncated = tmp_path / 'truncated.ehc'
    truncated.write_bytes(bytes(data[:len(data) - 40]))
    for bad in (corrupt, truncated):
        out = tmp_path / (bad.stem + '.tif')
        with pytest.raises(FormatError):
            decompress(str(bad), str(out), 'cpu')
        assert not out.exists()


def test_a_truncated_input_is_one_input_error_that_keeps_no_file_open(scene, tmp_path):
    tiled = str(tmp_path / 'tiled.tif')
    gdal.Translate(tiled, scene, creationOptions=['TILED=YES', 'BLOCKXSIZE=16', 'BLOCKYSIZE=16', 'COMPRESS=DEFLATE'])
    data = open(tiled, 'rb').read()
    truncated = tmp_path / 'truncated.tif'
    truncated.write_bytes(data[:len(data) * 2 // 3])
    output = tmp_path / 'truncated.ehc'
    with pytest.raises(InputError, match='truncated or damaged') as raised:
        compress(str(truncated), str(output), 'pca', 5, 'cpu', tile_size=16)
    assert not output.exists()
    assert datasets_held_by(raised.value) == []


def test_cancelling_leaves_nothing(scene, tmp_path):
    calls = []

    def cancel_after_two_tiles():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(CancelledError):
        compress(scene, str(tmp_path / 'x.ehc'), 'pca', 5, 'cpu', tile_size=16, is_cancelled=cancel_after_two_tiles)
    assert _files(tmp_path) == []
    ehc = str(tmp_path / 'ok.ehc')
    compress(scene, ehc, 'pca', 5, 'cpu', tile_size=16)
    calls.clear()
    with pytest.raises(CancelledError):
        decompress(ehc, str(tmp_path / 'y.tif'), 'cpu', is_cancelled=cancel_after_two_tiles)
    assert _files(tmp_path) == ['ok.ehc']


def test_bad_requests_fail_clearly(scene, tmp_path):
    with pytest.raises(OutputError, match='.ehc'):
        compress(scene, str(tmp_path / 'x.bin'), 'pca', 5, 'cpu')
    with pytest.raises(InputError, match='quality'):
        compress(scene, str(tmp_path / 'x.ehc'), 'pca', 11, 'cpu')
    with pytest.raises(Exception, match='not installed'):
        compress(scene, str(tmp_path / 'x.ehc'), 'no_such_model', 5, 'cpu')
    assert _files(tmp_path) == []


def test_evaluate_writes_error_layer_and_report(scene, tmp_path):
    result = evaluate(scene, str(tmp_path / 'rec.tif'), 'pca', 6, 'cpu', compressed=str(tmp_path / 'e.ehc'),
                      error=str(tmp_path / 'err.tif'), report=str(tmp_path / 'report.html'))
    err = gdal.Open(str(tmp_path / 'err.tif'))
    assert err.RasterCount == 3
    assert [err.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] == \
        ['rmse_dn', 'spectral_angle_deg', 'max_abs_error_dn']
    worst = err.GetRasterBand(3).ReadAsArray()
    assert worst.max() == pytest.approx(result.max_abs_error_dn)
    assert 'PSNR' in (tmp_path / 'report.html').read_text(encoding='utf-8')
    assert result.bpppb == pytest.approx(os.path.getsize(tmp_path / 'e.ehc') * 8 / (result.valid_pixels * 202))
    assert result.model == 'pca'


def test_evaluate_names_the_default_model_when_none_is_asked_for(scene, tmp_path):
    result = evaluate(scene, str(tmp_path / 'rec.tif'), quality=1, device='cpu')
    assert result.model == 'rdnet'


def test_a_blank_band_max_errors_is_no_option(scene, tmp_path):
    """A BAND_MAX_ERRORS of spaces (a form's empty field) is no bound, and it no longer codes every band."""
    extra = []
    for name, options in (('plain', {}), ('blank', {'band_max_errors': '   '})):
        result = compress(scene, str(tmp_path / f'{name}.ehc'), 'pca', 3, 'cpu', **options)
        assert result.error_bound is None
        with EhcReader(str(tmp_path / f'{name}.ehc')) as reader:
            extra.append(reader.header['codec']['extra_bands'])
    assert extra[0] == extra[1] == []


def test_bands_left_out_of_an_image_without_nodata_are_said_to_come_back_as_0(scene, tmp_path):
    """Without a nodata value the 22 bands a lossy or bounded file does not code came back as 0 DN, silently."""
    plain = str(tmp_path / 'no_nodata.tif')
    gdal.Translate(plain, scene, noData='none')
    for source, options, warned in ((plain, {}, True), (plain, {'max_error': 10}, True), (scene, {}, False),
                                    (plain, {'max_error': 0}, False), (plain, {'code_all_bands': True}, False)):
        result = compress(source, str(tmp_path / 'x.ehc'), 'pca', 3, 'cpu', **options)
        said = [w for w in result.warnings if 'declares no nodata value' in w]
        assert bool(said) == warned, (source, options, result.warnings)
        if warned:
            assert 'the 22 bands this file does not code (bands 127, 128' in said[0]


def test_potsdam_tiles_round_trip_above_the_anchor(potsdam_tile_paths, tmp_path):
    """Held-out real tiles: PCA at quality 6 reaches about 56 dB at about 0.4 real bpppb (the classical anchor)."""
    held_out = [p for p in potsdam_tile_paths if os.path.basename(p) in
                ('enmap_potsdam_tile_128_0.tif', 'enmap_potsdam_tile_64_32.tif', 'enmap_potsdam_tile_96_96.tif')]
    for path in held_out:
        result = evaluate(path, str(tmp_path / 'rec.tif'), 'pca', 6, 'cpu', compressed=str(tmp_path / 'p.ehc'))
        assert result.psnr > 55.5 and result.bpppb < 0.45, (path, result.psnr, result.bpppb)
        assert result.bpppb == pytest.approx(os.path.getsize(tmp_path / 'p.ehc') * 8 / (result.valid_pixels * 202))


def test_default_model_is_rdnet_and_it_round_trips_partial_and_empty_tiles(scene, tmp_path):
    """rdnet (a spatial model with a learned prior): edge tiles padded to its block size, a tile with no valid pixel
    (an empty latent section), nodata restored, quality levels monotonic."""
    from enmap_compress.plugin.core.runtime import default_model_id, find_model

    if default_model_id() != 'rdnet':
        pytest.skip('rdnet is not installed')
    assert find_model('rdnet').meta.entropy_model.family == 'laplace'
    holey = str(tmp_path / 'holey.tif')
    gdal.Translate(holey, scene)
    ds = gdal.Open(holey, gdal.GA_Update)
    for index in range(1, 225):
        band = ds.GetRasterBand(index)
        data = band.ReadAsArray()
        data[16:32, 16:32] = -32768  # one whole 16 x 16 tile without a valid pixel
        band.WriteArray(data)
    ds = None
    rates, psnrs = [], []
    for level in (2, 6, 10):
        ehc, rec = str(tmp_path / f'r{level}.ehc'), str(tmp_path / f'r{level}.tif')
        result = compress(holey, ehc, None, level, 'cpu', tile_size=16)
        with EhcReader(ehc) as reader:
            assert reader.header['codec']['model_id'] == 'rdnet'
        decompress(ehc, rec, 'cpu')
        restored = gdal.Open(rec).ReadAsArray()
        assert (restored[:, 16:32, 16:32] == -32768).all()
        rates.append(result.bpppb)
        psnrs.append(measure(holey, rec)['psnr'])
    assert rates == sorted(rates) and psnrs == sorted(psnrs), (rates, psnrs)
    assert psnrs[-1] > 45


@pytest.mark.parametrize('threads', [-1, 2.5, '2', True, 257, 10 ** 20])
def test_a_thread_count_that_is_no_whole_number_is_one_clear_input_error(tmp_path, threads):
    """0.5.3 passed -1 on to onnxruntime and let 2.5 or '2' raise onnxruntime's TypeError; 10 ** 6 made the
    thread pools grow until the kernel killed the process, 10 ** 20 was onnxruntime's TypeError."""
    from enmap_compress.plugin.core.errors import InputError
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 's.tif'), width=8, height=6, seed=1)
    with pytest.raises(InputError, match='threads must be a whole number'):
        compress(source, str(tmp_path / 's.ehc'), 'pca', 3, 'cpu', threads)
    assert not os.path.exists(tmp_path / 's.ehc')


@pytest.mark.parametrize('quality, accepted', [(5.5, None), ('5.5', None), (True, None), ('x', None), ('5', 5),
                                               (5.0, 5), (np.int64(7), 7)])
def test_a_quality_that_is_no_level_is_one_clear_input_error(tmp_path, quality, accepted):
    """0.5.3 read 5.5 as quality 5 and let '5.5' raise a ValueError."""
    from enmap_compress.plugin.core.errors import InputError
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 's.tif'), width=8, height=6, seed=1)
    if accepted is None:
        with pytest.raises(InputError, match='quality must be an integer from 1 to 10'):
            compress(source, str(tmp_path / 's.ehc'), 'pca', quality, 'cpu')
    else:
        assert compress(source, str(tmp_path / 's.ehc'), 'pca', quality, 'cpu').quality == accepted


TILE_SIZE_REFUSED = 'tile size must be from 1 to 256 px, a whole number'


@pytest.mark.parametrize('options, message', [
    (dict(tile_size='abc'), TILE_SIZE_REFUSED), (dict(tile_size=2.5), TILE_SIZE_REFUSED),
    (dict(tile_size=True), TILE_SIZE_REFUSED), (dict(quality=None, max_error=True), 'MAX_ERROR must be'),
    (dict(quality=None, max_error=1e30), r'MAX_ERROR must be an integer number of DN from 0 to 2\^53'),
    (dict(model=5), 'model must be a model id or a model package folder'),
])
def test_other_arguments_of_the_wrong_kind_are_one_clear_input_error(tmp_path, options, message):
    """0.5.3 raised ValueError for tile_size 'abc', read 2.5 as 2, took True for 1, raised OverflowError for
    max_error 1e30 and TypeError for model 5."""
    from enmap_compress.plugin.core.errors import InputError
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 's.tif'), width=8, height=6, seed=1)
    options = dict(dict(model='pca', quality=3), **options)
    with pytest.raises(InputError, match=message):
        compress(source, str(tmp_path / 's.ehc'), options.pop('model'), options.pop('quality'), 'cpu', **options)
