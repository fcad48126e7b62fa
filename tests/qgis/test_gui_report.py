"""The evaluation report: self-contained HTML with the metrics, sample spectra, per-band error, error histogram
and the rate-distortion chart, its data computed tile by tile in the core."""
import math
import os
import re

import numpy as np
import pytest

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


@pytest.fixture(scope='module')
def evaluated(scene, installed_model, tmp_path_factory):
    from enmap_compress.plugin.core.evaluate import evaluate

    folder = tmp_path_factory.mktemp('report')
    result = evaluate(scene, str(folder / 'rec.tif'), installed_model, 4, 'cpu', error=str(folder / 'err.tif'),
                      report=str(folder / 'report.html'))
    return result, folder


def test_report_is_self_contained_with_all_charts(evaluated, installed_model):
    result, folder = evaluated
    text = (folder / 'report.html').read_text(encoding='utf-8')
    for forbidden in ('<script', '<link', 'http://', 'https://', '@import'):
        assert forbidden not in text, forbidden
    assert re.findall(r'src="([^:"]*):', text) == ['data'] * 3, 'only the three inline quick looks'
    for heading in ('The image', 'Rate-distortion', 'Spectra at sample pixels', 'Error per band', 'Error histogram'):
        assert f'<h2>{heading}</h2>' in text
    assert text.count('<svg') >= 6  # RD, >= 2 sample spectra + worst pixel, band error, histogram
    assert 'worst pixel' in text and f'{installed_model} (card)' in text
    assert f'{result.psnr:.2f} dB' in text and f'{result.bpppb:.4f} bpppb' in text


def _reference_band_rmse(original, reconstructed):
    from osgeo import gdal

    from enmap_compress.plugin.core.bands import hyspecnet_keep_mask

    a_ds, b_ds = gdal.Open(original), gdal.Open(reconstructed)
    a, b = a_ds.ReadAsArray().astype(np.float64), b_ds.ReadAsArray().astype(np.float64)
    nodata = a_ds.GetRasterBand(1).GetNoDataValue()
    live = ~(a == nodata).reshape(a.shape[0], -1).all(axis=1)
    valid = ~(a[live] == nodata).all(axis=0)
    rmse = np.sqrt(((b - a)[:, valid] ** 2).mean(axis=1))
    rmse[~(hyspecnet_keep_mask() & live)] = np.nan
    return rmse


def test_report_data_matches_a_whole_image_reference(evaluated, scene):
    from enmap_compress.plugin.core.report_data import report_data

    result, folder = evaluated
    data = report_data(scene, result.reconstructed, tile_size=16)  # several tiles, as on a real image
    reference = _reference_band_rmse(scene, result.reconstructed)
    assert np.allclose(np.array(data.band_rmse_dn), reference, rtol=1e-6, equal_nan=True)
    assert len(data.wavelengths) == 224 and data.wavelengths == sorted(data.wavelengths)
    assert sum(data.evaluated) == int(np.isfinite(reference).sum())
    assert len(data.hist_edges) == len(data.hist_counts) + 1 and sum(data.hist_counts) > 0
    assert data.hist_edges[0] < 0 < data.hist_edges[-1]
    worst = data.samples[-1]
    assert worst.label == 'worst pixel'
    assert all(s.rmse_dn <= worst.rmse_dn + 1e-9 for s in data.samples)
    assert len(data.samples) >= 3


def test_report_data_of_an_identical_image_has_no_error(scene):
    from enmap_compress.plugin.core.report_data import report_data

    data = report_data(scene, scene)
    assert np.nanmax(data.band_rmse_dn) == 0
    assert sum(c for c, lo in zip(data.hist_counts, data.hist_edges) if lo > 0.5 or lo < -1.5) == 0
    for sample in data.samples:
        assert sample.original == sample.reconstructed or all(
            (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(sample.original, sample.reconstructed))


def test_charts_break_lines_at_gaps_and_use_round_ticks():
    from enmap_compress.plugin.core import svgplot

    assert svgplot.nice_ticks(418, 2446) == [0, 500, 1000, 1500, 2000, 2500]
    ticks = svgplot.nice_ticks(0.117, 1.278)
    assert ticks[0] <= 0.117 and ticks[-1] >= 1.278, 'the axis must cover every point'
    svg = svgplot.line_chart([('a', [1, 2, 3, 4, 5], [1, 2, math.nan, 4, 5], False)], 't', 'x', 'y')
    assert len(re.findall('<polyline', svg)) == 2
    bars = svgplot.histogram([-1.5, -0.5, 0.5, 1.5], [1, 5, 2], 'h', 'x')
    assert bars.count('class="bar"') == 3


def test_card_curves_of_the_installed_models(installed_model):
    from enmap_compress.plugin.core.report import model_curves

    curves = dict(model_curves())
    assert installed_model in curves
    rows = curves[installed_model]
    assert [r.level for r in rows] == sorted(r.level for r in rows) and all(r.bpppb > 0 for r in rows)


def test_report_without_plots_still_has_the_metrics(tmp_path):
    from enmap_compress.plugin.core.report import write_report

    path = tmp_path / 'r.html'
    write_report(str(path), {'psnr': 40.0, 'bpppb': 0.5, 'model': 'pca', 'quality': 3}, 'x.tif', plots=False)
    text = path.read_text(encoding='utf-8')
    assert '40.00 dB' in text and '<svg' not in text
    assert os.listdir(tmp_path) == ['r.html']


def _png_image(text, index):
    from qgis.PyQt.QtCore import QByteArray
    from qgis.PyQt.QtGui import QImage

    encoded = re.findall(r'src="data:image/png;base64,([^"]+)"', text)[index]
    image = QImage()
    assert image.loadFromData(QByteArray.fromBase64(encoded.encode('ascii')), 'PNG')
    return image


def test_the_report_reads_alone_images_residuals_and_a_wrapping_title(evaluated, scene):
    from osgeo import gdal

    from enmap_compress.plugin.core.quicklook import SIZE

    result, folder = evaluated
    text = (folder / 'report.html').read_text(encoding='utf-8')
    assert 'overflow-wrap:anywhere' in text
    assert text.count('residual (DN)') == text.count('<h3>') >= 3, 'each spectra chart has its residual'
    dataset = gdal.Open(scene)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    band = dataset.GetRasterBand(112)
    nodata = band.ReadAsArray() == band.GetNoDataValue()
    original, reconstruction, error = (_png_image(text, i) for i in range(3))
    assert (original.width(), original.height()) == (width, height) and max(width, height) <= SIZE
    assert (reconstruction.width(), reconstruction.height()) == (error.width(), error.height()) == (width, height)
    y, x = np.argwhere(nodata)[0]
    vy, vx = np.argwhere(~nodata)[len(np.argwhere(~nodata)) // 2]
    assert original.pixelColor(int(x), int(y)).alpha() == 0, 'no data is transparent'
    assert original.pixelColor(int(vx), int(vy)).alpha() == 255 and error.pixelColor(int(vx), int(vy)).alpha() == 255
    colours = {original.pixel(i, j) for i in range(width) for j in range(height)}
    assert len(colours) > 50, 'a true-colour image, not a flat fill'
    assert 'RMSE (DN)' in text and 'The error map runs from 0 to' in text


def test_quick_looks_read_from_the_files_match_those_gathered_in_the_pass(evaluated, scene):
    from enmap_compress.plugin.core.quicklook import from_files
    from enmap_compress.plugin.core.report_data import report_data

    result, _folder = evaluated
    gathered = report_data(scene, result.reconstructed).quicklook
    read = from_files(scene, result.reconstructed)
    if gathered is None:
        pytest.skip('this report_data does not gather quick looks (the report reads them from the files)')
    assert gathered.original_png == read.original_png and gathered.reconstructed_png == read.reconstructed_png
    assert gathered.step == read.step and gathered.bands == read.bands


def test_a_large_image_is_sampled_down_to_the_quick_look_size():
    from enmap_compress.plugin.core.quicklook import QuickLookCollector
    from enmap_compress.plugin.core.tiling import tile_grid

    collector = QuickLookCollector(1000, 700, size=320, bands=(0, 1, 2))
    assert collector.step == 4 and collector.valid.shape == (175, 250)
    for tile in tile_grid(1000, 700, 256):
        a = np.full((3, tile.height, tile.width), 100.0, np.float32)
        ys, xs = np.mgrid[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width]
        a[0] = xs  # red grows to the right: the sampled columns must land in order
        collector.update(tile, a, a, np.ones((tile.height, tile.width), bool), np.zeros((tile.height, tile.width)))
    assert collector.valid.all()
    assert np.array_equal(collector.original[0][0], np.arange(0, 1000, 4))
