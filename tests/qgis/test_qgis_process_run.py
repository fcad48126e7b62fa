"""The three algorithms through `qgis_process run`, the way acceptance drives them."""
import json
import os

import numpy as np
import pytest
from osgeo import gdal

from tools import synthetic

gdal.UseExceptions()


def _results(proc):
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return json.loads(proc.stdout[proc.stdout.index('{'):])['results']


@pytest.fixture(scope='module')
def product_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp('qp')
    return synthetic.write_product(str(folder / 'product'), width=48, height=40, seed=9, make_zip=True).zip


def test_compress_decompress_evaluate(qgis_process, product_zip, tmp_path):
    ehc, rec = str(tmp_path / 's.ehc'), str(tmp_path / 's.tif')
    packed = _results(qgis_process(['run', 'enmapcompress:compress', '--json', '--', f'INPUT={product_zip}',
                                    'MODEL=0', 'QUALITY=7', 'DEVICE=1', f'OUTPUT={ehc}']))
    assert packed['BPPPB'] > 0 and os.path.getsize(ehc) > 0
    _results(qgis_process(['run', 'enmapcompress:decompress', '--json', '--', f'INPUT={ehc}', 'DEVICE=1',
                           f'OUTPUT={rec}']))
    out = gdal.Open(rec)
    assert (out.RasterXSize, out.RasterYSize, out.RasterCount) == (48, 40, 224)
    data = out.ReadAsArray()
    valid = ~(data == -32768).all(axis=0)
    assert packed['BPPPB'] == pytest.approx(os.path.getsize(ehc) * 8 / (valid.sum() * 202), rel=1e-6)
    metrics = _results(qgis_process([
        'run', 'enmapcompress:evaluate', '--json', '--', f'INPUT={product_zip}', 'MODEL=0', 'QUALITY=7', 'DEVICE=1',
        f'RECONSTRUCTED={tmp_path / "e.tif"}', f'ERROR={tmp_path / "err.tif"}', f'REPORT={tmp_path / "r.html"}']))
    assert metrics['PSNR'] > 45 and metrics['SSIM'] > 0.9
    assert metrics['BPPPB'] == pytest.approx(packed['BPPPB'], rel=1e-3)  # the header's timestamp varies
    assert os.path.exists(tmp_path / 'r.html') and gdal.Open(str(tmp_path / 'err.tif')).RasterCount == 3


def test_max_error_through_qgis_process(qgis_process, product_zip, tmp_path):
    rec = tmp_path / 'b.tif'
    metrics = _results(qgis_process([
        'run', 'enmapcompress:evaluate', '--json', '--', f'INPUT={product_zip}', 'MODEL=0', 'DEVICE=1',
        'MAX_ERROR=7', f'RECONSTRUCTED={rec}', f'ERROR={tmp_path / "err.tif"}']))
    assert metrics['MAX_ABS_ERROR'] <= 7


def test_bad_input_is_one_clear_message(qgis_process, tmp_path):
    rgb = tmp_path / 'rgb.tif'
    ds = gdal.GetDriverByName('GTiff').Create(str(rgb), 8, 8, 3, gdal.GDT_Byte)
    ds.GetRasterBand(1).WriteArray(np.ones((8, 8), np.uint8))
    ds = None
    proc = qgis_process(['run', 'enmapcompress:compress', '--', f'INPUT={rgb}', 'MODEL=0', 'DEVICE=1',
                         f'OUTPUT={tmp_path / "x.ehc"}'])
    assert proc.returncode != 0
    assert 'hyperspectral' in (proc.stdout + proc.stderr) and 'Traceback' not in (proc.stdout + proc.stderr)
    assert not os.path.exists(tmp_path / 'x.ehc')
