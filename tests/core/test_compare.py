"""Evaluate's one comparison pass: each image read once, the same metrics as a plain whole-image computation,
progress that moves with labelled phases, a prompt cancel, and bounded memory."""
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import compare as compare_module
from enmap_compress.plugin.core import enmap
from enmap_compress.plugin.core.bands import hyspecnet_keep_mask
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.compare import StreamedComparison, compare
from enmap_compress.plugin.core.errors import CancelledError
from enmap_compress.plugin.core.evaluate import evaluate
from enmap_compress.plugin.core.report_data import HIST_LIMIT_DN, _rebinned
from tools import synthetic


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    """A small product with nodata around its footprint and a lossy reconstruction of it."""
    folder = tmp_path_factory.mktemp('compare')
    product = synthetic.write_product(folder, width=61, height=45, seed=11)
    rec = str(folder / 'rec.tif')
    evaluate(product.folder, rec, 'pca', 3, 'cpu')
    return product, rec


def _reference(original, reconstructed):
    """The metrics as the old code defined them, on the whole image at once, in float64."""
    a_ds, b_ds = gdal.Open(original), gdal.Open(reconstructed)
    a, b = a_ds.ReadAsArray().astype(np.float64), b_ds.ReadAsArray().astype(np.float64)
    nodata = -32768.0
    live = ~(a == nodata).reshape(a.shape[0], -1).all(axis=1)
    valid = ~(a[live] == nodata).all(axis=0)
    bands = hyspecnet_keep_mask() & live  # the synthetic bands are in ascending order: file order is canonical
    a, b = a[bands], b[bands]
    x, y = np.clip(a, 0, 1e4) / 1e4, np.clip(b, 0, 1e4) / 1e4
    mse = ((x - y)[:, valid] ** 2).mean()
    nx, ny = np.linalg.norm(x, axis=0), np.linalg.norm(y, axis=0)
    cos = np.where((nx == 0) & (ny == 0), 1.0, (x * y).sum(axis=0) / np.maximum(nx * ny, 1e-12))
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))

    def box(img, win=7):  # the old summed-area-table SSIM, whole image as one tile
        c = np.cumsum(np.cumsum(np.pad(img, ((0, 0), (1, 0), (1, 0))), axis=1), axis=2)
        return (c[:, win:, win:] - c[:, :-win, win:] - c[:, win:, :-win] + c[:, :-win, :-win]) / win ** 2

    inside = box(valid[None].astype(np.float64))[0] > 1 - 1e-9
    xs, ys = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    mx, my = box(xs), box(ys)
    vx, vy, cxy = box(xs * xs) - mx * mx, box(ys * ys) - my * my, box(xs * ys) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    diff = (b - a)[:, valid]
    hist = np.bincount((np.clip(np.rint(diff), -HIST_LIMIT_DN, HIST_LIMIT_DN) + HIST_LIMIT_DN).astype(int).ravel(),
                       minlength=2 * HIST_LIMIT_DN + 1)
    return {'psnr': 10 * math.log10(1 / mse), 'rmse_dn': math.sqrt(mse) * 1e4, 'sa_deg': angles[valid].mean(),
            'ssim': ssim[:, inside].mean(), 'max_abs_error_dn': np.abs(diff).max(), 'valid_pixels': int(valid.sum()),
            'band_rmse': np.sqrt((diff ** 2).mean(axis=1)), 'histogram': _rebinned(hist)}


@pytest.mark.parametrize('tile_size, by_strips', [(16, True), (256, True), (4, True), (16, False)])
def test_metrics_equal_the_whole_image_computation_at_any_tile_size(pair, tile_size, by_strips, monkeypatch):
    product, rec = pair
    if not by_strips:  # too wide for strips: read tile by tile
        monkeypatch.setattr(compare_module, 'STRIP_BYTES', 0)
    reference = _reference(product.image, rec)
    result = compare(product.folder, rec, tile_size=tile_size, with_report=True)
    for key in ('psnr', 'rmse_dn', 'sa_deg', 'ssim', 'max_abs_error_dn', 'valid_pixels'):
        assert result.metrics[key] == pytest.approx(reference[key], rel=1e-6), key
    band_rmse = np.array(result.report.band_rmse_dn)
    assert np.allclose(band_rmse[np.isfinite(band_rmse)], reference['band_rmse'], rtol=1e-6)
    assert (result.report.hist_edges, result.report.hist_counts) == reference['histogram']


def _reads_and_drops(monkeypatch):
    """Every read (x, y, width, height) and cache drop ('drop') of each raster, in order, by GDAL path."""
    events = {}
    read, drop = enmap.SpectralRaster.read, enmap.SpectralRaster.drop_cache

    def counting(self, x, y, width, height, bands=None, writable=True):
        events.setdefault(self.gdal_path, []).append((x, y, width, height))
        return read(self, x, y, width, height, bands, writable)

    def dropping(self):
        events.setdefault(self.gdal_path, []).append('drop')
        return drop(self)

    monkeypatch.setattr(enmap.SpectralRaster, 'read', counting)
    monkeypatch.setattr(enmap.SpectralRaster, 'drop_cache', dropping)
    return events


def test_each_image_is_read_once(pair, monkeypatch):
    """Strip by strip, each row once (the SSIM margins above and left of a tile are kept from the tiles before),
    GDAL's cache dropped after each strip."""
    product, rec = pair
    with enmap.open_spectral(product.folder) as original:
        dead = original.canonical_dead_bands
        events = _reads_and_drops(monkeypatch)  # the dead-band scan is the reader's, done once per opened raster
        compare(original, rec, tile_size=16, dead=dead)
    assert len(events) == 2
    expected = []
    for y in (0, 16, 32):  # 3 rows of 4 tiles, 45 rows
        expected += [(0, y, 61, min(16, 45 - y)), 'drop']
    for sequence in events.values():
        assert sequence == expected


def test_a_raster_too_wide_for_strips_is_read_tile_by_tile(pair, monkeypatch):
    product, rec = pair
    monkeypatch.setattr(compare_module, 'STRIP_BYTES', 61 * 16 * 224 * 2 * 2 - 1)  # one strip of both images
    with enmap.open_spectral(product.folder) as original:
        dead = original.canonical_dead_bands
        events = _reads_and_drops(monkeypatch)
        compare(original, rec, tile_size=16, dead=dead)
    for sequence in events.values():
        windows = [event for event in sequence if event != 'drop']
        assert len(windows) == 12  # 4 x 3 tiles, one read each
        covered = np.zeros((45, 61), int)
        for x, y, w, h in windows:
            covered[y:y + h, x:x + w] += 1
        assert covered.min() == covered.max() == 1  # every pixel once: the SSIM margins are kept


def _float_copy(source, path):
    """The image as float32 DN (EnMAP's scale) with NaN for nodata, and one +Inf on a valid pixel (restored as it
    was: no error)."""
    ds = gdal.Translate(path, source, outputType=gdal.GDT_Float32, noData='nan')
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        band.SetScale(1e-4)
        data = band.ReadAsArray()
        data[data == -32768] = np.nan
        if index == 40:
            data[20, 30] = np.inf
        band.WriteArray(data)
    ds = None
    return path


def _same_comparison(streamed, read):
    for key, value in read.metrics.items():
        assert streamed.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    a, b = streamed.report, read.report
    assert np.allclose(a.band_rmse_dn, b.band_rmse_dn, rtol=1e-9, atol=0, equal_nan=True)
    assert (a.wavelengths, a.evaluated, a.hist_edges, a.hist_counts, a.quicklook) == \
        (b.wavelengths, b.evaluated, b.hist_edges, b.hist_counts, b.quicklook)
    assert repr(a.samples) == repr(b.samples)  # NaN outside the evaluated bands


@pytest.mark.parametrize('tile_size, dtype', [(16, 'int16'), (13, 'int16'), (64, 'int16'), (13, 'float32')])
def test_streamed_comparison_equals_compare_of_the_files(pair, tmp_path, tile_size, dtype):
    """What evaluate measures from the tiles decompress hands over equals compare() of the written files (the
    metrics at another tile size too; the report's sample spectra are picked per tile): nodata around the footprint,
    tiles that do not divide the 61 x 45 image (or one tile), float input with NaN and a restored +Inf. The error
    rasters are equal sample for sample."""
    product, _ = pair
    source = product.folder if dtype == 'int16' else _float_copy(product.image, str(tmp_path / 'float.tif'))
    ehc, rec = str(tmp_path / 'c.ehc'), str(tmp_path / 'rec.tif')
    compress(source, ehc, 'pca', 3, 'cpu', tile_size=tile_size)
    errors = {name: str(tmp_path / f'{name}.tif') for name in ('streamed', 'read')}
    with enmap.open_spectral(source) as original:
        with StreamedComparison(original, errors['streamed'], with_report=True) as streamed:
            decompress(ehc, rec, 'cpu', on_tile=streamed.add)
            result = streamed.result(7)
        reference = compare(original, rec, errors['read'], tile_size=tile_size, max_error=7, with_report=True)
        other_tiles = compare(original, rec, tile_size=32)
    assert result.metrics['valid_pixels'] > 0 and 0 < result.metrics['ssim'] < 1
    _same_comparison(result, reference)
    for key, value in other_tiles.metrics.items():  # SSIM's window sums are float32
        assert result.metrics[key] == pytest.approx(value, rel=1e-6 if key == 'ssim' else 1e-9, abs=1e-12), key
    streamed_ds, read_ds = gdal.Open(errors['streamed']), gdal.Open(errors['read'])
    assert np.array_equal(streamed_ds.ReadAsArray(), read_ds.ReadAsArray())
    assert streamed_ds.GetMetadata() == read_ds.GetMetadata()


def test_streamed_comparison_refuses_tiles_out_of_order_and_missing_tiles(pair, tmp_path):
    from enmap_compress.plugin.core.tiling import Tile

    product, _ = pair
    with enmap.open_spectral(product.folder) as original:
        cube = original.read_canonical(0, 0, 16, 16)
        with StreamedComparison(original) as streamed:
            with pytest.raises(ValueError, match='0, 0 first'):
                streamed.add(Tile(16, 0, 16, 16), cube)
        with StreamedComparison(original) as streamed:
            streamed.add(Tile(0, 0, 16, 16), cube)
            with pytest.raises(ValueError, match='row-major order'):
                streamed.add(Tile(0, 16, 16, 16), cube)
            with pytest.raises(ValueError, match='1 of 12 tiles'):
                streamed.result()
    with pytest.raises(ValueError, match='0 of 0 tiles'):
        StreamedComparison(original).result()


def test_a_failed_streamed_comparison_writes_no_error_raster(pair, tmp_path):
    product, _ = pair
    ehc, error = str(tmp_path / 'c.ehc'), tmp_path / 'err.tif'
    compress(product.folder, ehc, 'pca', 3, 'cpu', tile_size=16)
    calls = []

    def is_cancelled():
        calls.append(1)
        return len(calls) > 5

    with enmap.open_spectral(product.folder) as original, pytest.raises(CancelledError):
        with StreamedComparison(original, str(error)) as streamed:
            decompress(ehc, str(tmp_path / 'rec.tif'), 'cpu', is_cancelled=is_cancelled, on_tile=streamed.add)
    assert sorted(os.listdir(tmp_path)) == ['c.ehc']


def test_evaluate_opens_the_input_once(pair, tmp_path, monkeypatch):
    product, _ = pair
    opened = []
    open_spectral = enmap.open_spectral

    def counting(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return open_spectral(path, *args, **kwargs)

    from enmap_compress.plugin.core import evaluate as evaluate_module
    monkeypatch.setattr(evaluate_module, 'open_spectral', counting)
    monkeypatch.setattr(compare_module, 'open_spectral', counting)
    evaluate(product.folder, str(tmp_path / 'rec.tif'), 'pca', 3, 'cpu', error=str(tmp_path / 'err.tif'))
    assert opened == [product.folder]  # the input once; the reconstruction is measured as decompress writes it


def test_progress_moves_through_labelled_phases_to_100(pair, tmp_path):
    product, _ = pair
    percents, labels = [], []
    from enmap_compress.plugin.core.tiling import Progress

    progress = Progress(1, percents.append, describe=labels.append)
    evaluate(product.zip or product.folder, str(tmp_path / 'rec.tif'), 'pca', 3, 'cpu',
             error=str(tmp_path / 'err.tif'), report=str(tmp_path / 'report.html'), progress=progress)
    assert percents == sorted(percents) and percents[-1] == pytest.approx(100.0)
    for phase in ('compressing tile 1 of', 'decoding tile 1 of', 'measuring tile 1 of', 'writing the report'):
        assert any(label.startswith(phase) for label in labels), phase
    assert max(np.diff([0.0, *percents])) < 50


def test_cancel_while_measuring_is_prompt_and_leaves_nothing(tmp_path):
    product = synthetic.write_product(tmp_path, width=160, height=144, seed=3)
    outputs = [tmp_path / 'rec.tif', tmp_path / 'err.tif', tmp_path / 'report.html', tmp_path / 'c.ehc']
    state = {}

    def describe(text):
        if text.startswith('measuring tile 1 ') and 'asked' not in state:
            state['asked'] = time.perf_counter()

    def is_cancelled():
        return 'asked' in state

    from enmap_compress.plugin.core.tiling import Progress

    with pytest.raises(CancelledError):
        try:
            evaluate(product.folder, str(outputs[0]), 'pca', 3, 'cpu', compressed=str(outputs[3]),
                     error=str(outputs[1]), report=str(outputs[2]), progress=Progress(1, describe=describe),
                     is_cancelled=is_cancelled)
        finally:
            state['stopped'] = time.perf_counter()
    assert state['stopped'] - state['asked'] < 3.0
    assert not any(path.exists() for path in outputs)


@pytest.mark.parametrize('failure', ['cancel while measuring', 'report not written'])
def test_a_failed_evaluation_keeps_the_files_it_would_have_replaced(pair, tmp_path, monkeypatch, failure):
    """Each output used to replace the old file as soon as it was made, and the cleanup after a later failure
    then deleted it: now all are moved into place together, only after everything succeeded."""
    from enmap_compress.plugin.core import evaluate as evaluate_module
    from enmap_compress.plugin.core.errors import OutputError
    from enmap_compress.plugin.core.tiling import Progress

    product, _rec = pair
    outputs = {name: tmp_path / name for name in ('rec.tif', 'err.tif', 'report.html', 'c.ehc')}
    for name, path in outputs.items():
        path.write_bytes(b'old ' + name.encode())
    state = {}
    if failure == 'report not written':
        def refused(*_args, **_kwargs):
            raise OutputError('Cannot write the report (the disk is full).')
        monkeypatch.setattr(evaluate_module, 'write_report', refused)
    with pytest.raises(CancelledError if failure.startswith('cancel') else OutputError):
        evaluate(product.folder, str(outputs['rec.tif']), 'pca', 3, 'cpu', compressed=str(outputs['c.ehc']),
                 error=str(outputs['err.tif']), report=str(outputs['report.html']),
                 progress=Progress(1, describe=lambda text: text.startswith('measuring') and state.update(asked=1)),
                 is_cancelled=lambda: failure.startswith('cancel') and 'asked' in state)
    assert {name: path.read_bytes() for name, path in outputs.items()} == \
        {name: b'old ' + name.encode() for name in outputs}
    assert sorted(os.listdir(tmp_path)) == sorted(outputs)


MEMORY_SCRIPT = r'''
import json, sys
def own_peak_kb():  # VmHWM: this process's peak; ru_maxrss of a child starts at its parent's (fork/vfork + exec)
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM'))
from enmap_compress.plugin.core.evaluate import evaluate
zip_path, folder = sys.argv[1:]
result = evaluate(zip_path, folder + '/rec.tif', 'pca', 5, 'cpu', error=folder + '/err.tif',
                  report=folder + '/report.html')
print(json.dumps({'peak_mb': own_peak_kb() / 1024, 'psnr': result.psnr}))
'''


def test_evaluate_memory_is_bounded(tmp_path):
    """640 x 512 x 224 int16 (147 MB raw) from its ZIP, with error raster and report, in a fresh process: the
    old evaluate peaked at about five times the raw size (2 GB at 400 x 400 already)."""
    product = synthetic.write_product(tmp_path, width=640, height=512, seed=2, make_zip=True)
    proc = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, product.zip, str(tmp_path)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    print(stats)
    assert stats['peak_mb'] < 1100, stats
    assert stats['psnr'] > 30


@pytest.mark.parametrize('dtype', [np.int16, np.float32])
def test_valid_pixels_band_by_band_equals_the_whole_cube_rule(dtype):
    """The comparison (and the codec) ask tiling.valid_pixels for every tile; it stops early, so check it against
    the rule itself: a pixel is invalid only when every live band holds nodata, NaN or +-Inf."""
    from enmap_compress.plugin.core.tiling import valid_pixels

    rng = np.random.default_rng(5)
    cube = rng.integers(0, 5000, (30, 12, 10)).astype(dtype)
    cube[:, :3] = -32768  # nodata in every band
    cube[4:, 3:5, :4] = -32768  # nodata in most bands only: valid
    live = np.ones(30, bool)
    live[[0, 1, 2, 3]] = False  # ... and the other bands are dead: invalid
    if dtype == np.float32:
        cube[:, 6, :2] = np.nan
        cube[:15, 7, :3], cube[15:, 7, :3] = np.inf, -32768
        cube[:, 8, 0] = np.nan
        cube[20, 8, 0] = 7.0  # one real value keeps the pixel valid
    for nodata in (-32768.0, None):
        for bands in (live, np.flatnonzero(live), np.zeros(30, bool)):
            data = cube[bands]
            rule = ~((~np.isfinite(data)) | ((data == nodata) if nodata is not None else False)).all(axis=0)
            assert np.array_equal(valid_pixels(cube, nodata, bands), rule)


def test_the_histogram_counts_every_error_the_tails_in_its_outer_bins():
    """The chart shows the range of 99.9 % of the errors; the rarer, larger ones are in its outermost bins."""
    hist = np.zeros(2 * HIST_LIMIT_DN + 1, np.int64)
    hist[HIST_LIMIT_DN - 3:HIST_LIMIT_DN + 4] = 100_000
    hist[HIST_LIMIT_DN - 988] = 7  # beyond the shown range, on each side
    hist[HIST_LIMIT_DN + 2500] = 5
    edges, counts = _rebinned(hist)
    assert sum(counts) == hist.sum()
    assert edges[0] > -988 and edges[-1] < 2500  # the tails are not shown as such ...
    assert counts[0] >= 7 and counts[-1] >= 5  # ... but counted in the outer bins


def _stored_as(path, out, dtype, factor, scale):
    """The raster at `path` with every valid sample times `factor`, as `dtype`, its bands' scale `scale` (None: no
    scale stated: a GeoTIFF leaves out scale 1 and offset 0); nodata stays -32768."""
    ds = gdal.Translate(out, path, outputType=gdal.GetDataTypeByName(dtype), noData=-32768)
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        data = band.ReadAsArray().astype(np.float64)
        data[data != -32768] *= factor
        band.WriteArray(data)
        band.SetScale(1.0 if scale is None else scale)
        band.SetOffset(0.0)
    ds = None
    return out


@pytest.mark.parametrize('dtype, factor, scale', [('Float32', 1e-4, None), ('Float32', 0.5, 2e-4),
                                                  ('Int32', 2.0, 5e-5)])
def test_metrics_do_not_depend_on_how_the_file_stores_reflectance(pair, tmp_path, dtype, factor, scale):
    """Float reflectance, or DN at another scale: every metric is measured in DN at EnMAP's scale (reflectance x
    10000), as for EnMAP's own files (the fixed 10000 DN peak gave a float reflectance file 80 dB too many)."""
    product, rec = pair
    original = _stored_as(product.image, str(tmp_path / 'a.tif'), 'Int16', 1.0, 1e-4)
    reference = compare(original, rec).metrics
    stored = compare(_stored_as(original, str(tmp_path / 'a2.tif'), dtype, factor, scale),
                     _stored_as(rec, str(tmp_path / 'b2.tif'), dtype, factor, scale)).metrics
    for key in ('psnr', 'sa_deg', 'ssim', 'rmse_dn', 'max_abs_error_dn'):
        assert stored[key] == pytest.approx(reference[key], rel=1e-5), key
    assert stored['valid_pixels'] == reference['valid_pixels']
