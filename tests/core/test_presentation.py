"""What presents an evaluation's results on edge inputs: the error histogram of int32 and float data with huge
errors, its bins, the report's numbers and charts, the worst pixel of float data with NaN samples, `info` on a
.ehc file whose header texts hold terminal escapes, and `verify` of a bit-exact float file with NaN samples."""
import json
import math
import os
import sys
import time
import xml.etree.ElementTree as ElementTree  # noqa: S405 (parses our own SVG output)

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import metrics, svgplot
from enmap_compress.plugin.core.metrics import MetricsAccumulator
from enmap_compress.plugin.core.report import _fmt, render_report
from enmap_compress.plugin.core.report_data import HIST_BINS, HIST_LIMIT_DN, ReportCollector, _rebinned
from enmap_compress.plugin.core.tiling import Tile
from tools import synthetic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ehc_forge import EhcParts  # noqa: E402


@pytest.mark.parametrize('dtype, value', [(np.int32, -2 ** 31 + 2), (np.float32, -1e12), (np.float64, -1e300)])
def test_a_huge_positive_error_is_counted_in_the_top_bin_at_once(dtype, value):
    """An unflagged fill value (-2^31 + 2 in an int32 image) that a lossy model gives back as ~0: an error of 2^31
    DN made np.bincount allocate 2^31 counts (16 GB) for each band of each tile (6 s each, a MemoryError beyond
    the machine's memory); a float error beyond 2^63 was cast to -2^63 and counted in the lowest bin."""
    original = np.full((3, 8, 8), 100, dtype)
    reconstructed = original.copy()
    original[0, 0, 0] = value
    started = time.perf_counter()
    with np.errstate(over='ignore'):
        errors = metrics.tile_errors(original, reconstructed, np.ones((8, 8), bool), hist_limit=HIST_LIMIT_DN)
    assert time.perf_counter() - started < 2.0
    assert errors.histogram[-1] == 1 and errors.histogram[0] == 0
    assert errors.histogram.sum() == original.size


def test_a_nan_error_of_float_data_is_counted_as_large():
    original = np.full((2, 8, 8), 100, np.float32)
    reconstructed = original.copy()
    reconstructed[1, 2, 2] = np.nan  # not restored: an error that is no number
    errors = metrics.tile_errors(original, reconstructed, np.ones((8, 8), bool), hist_limit=HIST_LIMIT_DN)
    assert errors.histogram[-1] == 1 and errors.histogram[0] == 0


@pytest.mark.parametrize('spread', [0, 1, 5, 30, 100, 700, 3000])
def test_histogram_bins_are_centred_on_zero_and_as_wide_as_their_edges_say(spread):
    """The bins were an even number of DN wide (the zero bin held -1 and 0 DN, so a bit-exact image's bar stood
    left of 0), there were 62 of them, and the last one was drawn twice as wide as it was."""
    hist = np.zeros(2 * HIST_LIMIT_DN + 1, np.int64)
    hist[HIST_LIMIT_DN - spread:HIST_LIMIT_DN + spread + 1] = 10
    edges, counts = _rebinned(hist)
    assert len(counts) == HIST_BINS and len(edges) == HIST_BINS + 1 and sum(counts) == hist.sum()
    middle = HIST_BINS // 2
    assert edges[middle] == -edges[middle + 1] and edges[middle] < 0  # the middle bin is centred on 0
    assert edges == [-e for e in reversed(edges)]
    widths = set(np.diff(edges))
    assert len(widths) == 1 and int(widths.pop()) % 2 == 1
    centres = np.arange(-HIST_LIMIT_DN, HIST_LIMIT_DN + 1)
    for left, right, count in zip(edges[1:-1], edges[2:-1], counts[1:-1]):  # every inner bin: what it says
        assert count == hist[(centres > left) & (centres < right)].sum()
    if spread < HIST_BINS // 2:
        assert edges[middle:middle + 2] == [-0.5, 0.5]  # small errors: 1-DN bins


def _collector_pair():
    rng = np.random.default_rng(2)
    a = rng.uniform(100, 5000, (224, 12, 12)).astype(np.float32)
    b = a + rng.normal(0, 3, a.shape).astype(np.float32)
    b[:, 1, 1] += 20
    a[40, 1, 1] = b[40, 1, 1] = np.nan  # the worst pixel of the first tile holds a NaN sample that came back
    b[:, 9, 9] += 50  # the worst pixel of the image, in a later tile
    return a, b


def test_the_worst_pixel_of_float_data_with_a_restored_nan_sample():
    """The sample spectra's RMSE counted a restored NaN sample as NaN: the worst pixel then read 'RMSE nan DN',
    and no later pixel could replace it (x > NaN is never true)."""
    a, b = _collector_pair()
    evaluated = np.ones(224, bool)
    collector = ReportCollector(12, 12, evaluated)
    for y in range(0, 12, 4):
        for x in range(0, 12, 4):
            tile = Tile(x, y, 4, 4)
            ta, tb = a[:, y:y + 4, x:x + 4], b[:, y:y + 4, x:x + 4]
            errors = metrics.tile_errors(ta, tb, np.ones((4, 4), bool), hist_limit=HIST_LIMIT_DN)
            collector.update(tile, ta, tb, errors)
    worst = collector.result(np.arange(224.0)).samples[-1]
    assert (worst.x, worst.y) == (9, 9) and worst.rmse_dn == pytest.approx(50, abs=1)
    assert all(math.isfinite(s.rmse_dn) for s in collector.result(np.arange(224.0)).samples)


def test_nothing_measured_is_not_a_perfect_psnr():
    """No valid pixel: PSNR was inf ('inf dB', a bit-exact reconstruction) and SA 0; now NaN (JSON null)."""
    accumulator = MetricsAccumulator()
    accumulator.update(np.zeros((3, 4, 4)), np.ones((3, 4, 4)), np.zeros((4, 4), bool))
    result = accumulator.result()
    assert math.isnan(result['psnr']) and math.isnan(result['rmse_dn']) and math.isnan(result['sa_deg'])
    assert result['valid_pixels'] == 0


def test_no_evaluated_band_is_no_maximum_error_of_0():
    """Valid pixels but no evaluated band (an image whose 202 HySpecNet bands are all dead, coded with
    --code-all-bands): the maximum error was 0 DN, which with a null PSNR reads as a bit-exact reconstruction."""
    accumulator = MetricsAccumulator()
    accumulator.update(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)), np.ones((4, 4), bool))
    result = accumulator.result()
    assert math.isnan(result['max_abs_error_dn']) and math.isnan(result['psnr'])


def test_the_report_shows_infinite_psnr_and_unmeasured_ssim_in_words():
    assert _fmt('{:.2f} dB', math.inf) == '\u221e dB'
    assert _fmt('{:.4f}', math.nan) == 'n/a'
    assert _fmt('{:.2f} dB', 41.234) == '41.23 dB'
    page = render_report({'psnr': math.inf, 'ssim': math.nan, 'model': 'pca', 'quality': 5}, 'x.tif')
    assert '\u221e dB' in page and 'inf dB' not in page and '>nan<' not in page


@pytest.mark.parametrize('ys', [[-1.7e308, 1.7e308], [1.0], [math.nan, math.nan], [5.0, 5.0]])
def test_charts_of_any_values_are_well_formed_svg(ys):
    """A span beyond float range (float64 data near its limits) raised OverflowError in nice_ticks."""
    chart = svgplot.line_chart([('a', list(range(len(ys))), ys, False)], 't', 'x', 'y')
    ElementTree.fromstring(chart)  # noqa: S314
    assert 'nan' not in chart.replace('>nan<', '') and 'inf' not in chart


def test_nice_ticks_of_a_huge_span():
    ticks = svgplot.nice_ticks(-1.7e308, 1.7e308)
    assert all(math.isfinite(t) for t in ticks) and len(ticks) >= 2


@pytest.fixture(scope='module')
def lossless_ehc(tmp_path_factory):
    from enmap_compress.plugin.core.codec import compress

    folder = tmp_path_factory.mktemp('presentation')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), 12, 12, seed=3)
    compress(scene, str(folder / 'scene.ehc'), 'pca', None, 'cpu', 1, max_error=0)
    return str(folder / 'scene.ehc')


def _forged(source, target, edit):
    parts = EhcParts.read(source)
    edit(parts.header)
    with open(target, 'wb') as handle:
        handle.write(parts.build())
    return target


def test_info_prints_no_terminal_escapes_from_the_header(lossless_ehc, tmp_path, capsys):
    """product_name, created and software are free texts of the header: ESC sequences in them cleared the screen
    and retitled the terminal, CR LF printed a line of their own ('model: trusted')."""
    from enmap_compress.plugin.cli.main import main

    def edit(header):
        header['raster']['product_name'] = '\x1b]0;owned\x07\x1b[2JFAKE\u202e\r\nmodel: trusted'
        header['created'] = '2024\x1b[31m'
        header['software'] = {'x\x1b[1m': 'y\nz'}

    path = _forged(lossless_ehc, str(tmp_path / 'escapes.ehc'), edit)
    assert main(['info', path]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in '\x1b\x07\r\u202e')
    assert '\nmodel: trusted' not in out and 'model: trusted' in out  # shown, on the product's own line
    assert all(line[:1].strip() for line in out.splitlines())  # every line starts with a key
    assert main(['info', '--json', path]) == 0
    assert json.loads(capsys.readouterr().out)['product_name'].startswith('\x1b]0;owned')  # JSON: as stored


def test_a_header_without_wavelengths_is_a_format_error(lossless_ehc, tmp_path):
    """The checks let `wavelengths_delta: null` through; describe (info, the Browser) and the decoder then failed
    with a TypeError."""
    from enmap_compress.plugin.core.ehcinfo import describe
    from enmap_compress.plugin.core.errors import FormatError

    def edit(header):
        header['raster']['wavelengths_delta'] = None
        header['raster']['band_names'] = [f'band {i}' for i in range(224)]

    path = _forged(lossless_ehc, str(tmp_path / 'nowl.ehc'), edit)
    with pytest.raises(FormatError, match='wavelengths_delta'):
        describe(path)


def test_verify_calls_a_lossless_float_file_with_nan_samples_bit_exact(tmp_path):
    """np.array_equal said NaN != NaN: 'bit-exact: no' for a file whose every bit came back."""
    from enmap_compress.plugin.cli.inspect import verify
    from enmap_compress.plugin.core.codec import compress

    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), 12, 12, seed=4, dtype='float32')
    rng = np.random.default_rng(4)
    ds = gdal.Open(scene, gdal.GA_Update)
    for index in range(1, ds.RasterCount + 1):  # integer DN (error bounds need them), one NaN sample
        values = np.rint(rng.uniform(100, 5000, (12, 12))).astype(np.float32)
        if index == 41:
            values[3, 3] = np.nan
        ds.GetRasterBand(index).WriteArray(values)
    ds = None
    compress(scene, str(tmp_path / 'scene.ehc'), 'pca', None, 'cpu', 1, max_error=0)
    result = verify(str(tmp_path / 'scene.ehc'), against=scene, device='cpu')
    assert result['ok'] and result['exact']
