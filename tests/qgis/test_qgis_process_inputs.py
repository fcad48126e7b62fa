"""Hostile inputs (raster, product folder, METADATA.XML, ZIP, .ehc) through `qgis_process run compress/decompress`: one
clear message, no traceback, no output; and a NaN-laden float raster round-trips bit-exactly in lossless mode."""
import os
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.codec import compress
from tools import synthetic


def _nan_raster(path):
    """float32, nodata NaN, with NaN, +Inf and -Inf samples inside valid pixels."""
    base = synthetic.write_scene(path + '.int16.tif', width=24, height=20, seed=7)
    ds = gdal.Translate(path, base, outputType=gdal.GDT_Float32, noData='nan')
    for index in range(1, 225):
        band = ds.GetRasterBand(index)
        data = band.ReadAsArray()
        data[data == -32768] = np.nan
        if index in (30, 31, 32):
            data[10 + index - 30, 10] = (np.nan, np.inf, -np.inf)[index - 30]
        band.WriteArray(data)
    ds = None
    os.remove(base)
    return path


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('hostile'))
    scene = synthetic.write_scene(os.path.join(folder, 'scene.tif'), width=32, height=32, seed=2)
    data = open(scene, 'rb').read()
    open(os.path.join(folder, 'truncated.tif'), 'wb').write(data[:len(data) * 3 // 5])
    product = synthetic.write_product(os.path.join(folder, 'p'), width=8, height=6, seed=1)
    xml = open(product.xml, 'rb').read().replace(b'<bandID number="2">', b'<bandID number="1">', 1)
    open(product.xml, 'wb').write(xml)
    archive = os.path.join(folder, 'duplicate.zip')
    with zipfile.ZipFile(archive, 'w') as zf:
        for name in os.listdir(product.folder):
            zf.write(os.path.join(product.folder, name), f'{os.path.basename(product.folder)}/{name}')
    ehc = os.path.join(folder, 'scene.ehc')
    compress(scene, ehc, 'pca', 5, 'cpu')
    packed = open(ehc, 'rb').read()
    open(os.path.join(folder, 'truncated.ehc'), 'wb').write(packed[:-40])
    return {'truncated GeoTIFF': (os.path.join(folder, 'truncated.tif'), 'may be truncated or damaged'),
            'duplicate bandID folder': (product.folder, 'bandID number 1 appears 2 times'),
            'duplicate bandID XML': (product.xml, 'bandID number 1 appears 2 times'),
            'duplicate bandID ZIP': (archive, 'bandID number 1 appears 2 times'),
            'truncated .ehc': (os.path.join(folder, 'truncated.ehc'), 'truncated')}


CASES = ['truncated GeoTIFF', 'duplicate bandID folder', 'duplicate bandID XML', 'duplicate bandID ZIP',
         'truncated .ehc']


@pytest.mark.parametrize('case', CASES)
def test_hostile_input_is_one_message_without_traceback(qgis_process, hostile, tmp_path, case):
    source, message = hostile[case]
    if source.endswith('.ehc'):
        output = tmp_path / 'out.tif'
        args = ['run', 'enmapcompress:decompress', '--', f'INPUT={source}', 'DEVICE=1', f'OUTPUT={output}']
    else:
        output = tmp_path / 'out.ehc'
        args = ['run', 'enmapcompress:compress', '--', f'INPUT={source}', 'MODEL=0', 'DEVICE=1', f'OUTPUT={output}']
    proc = qgis_process(args)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-2000:]
    assert message in text and 'Traceback' not in text and 'RuntimeError' not in text, text[-2000:]
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


def test_nan_laden_float_raster_is_lossless_through_qgis_process(qgis_process, tmp_path):
    source = _nan_raster(str(tmp_path / 'nan.tif'))
    ehc, rec = tmp_path / 'nan.ehc', tmp_path / 'nan_rec.tif'
    packed = qgis_process(['run', 'enmapcompress:compress', '--', f'INPUT={source}', 'MODEL=0', 'DEVICE=1',
                           'MAX_ERROR=0', f'OUTPUT={ehc}'])
    assert packed.returncode == 0 and 'Traceback' not in packed.stdout + packed.stderr, packed.stderr[-2000:]
    assert '3 NaN or infinite samples' in packed.stdout + packed.stderr
    unpacked = qgis_process(['run', 'enmapcompress:decompress', '--', f'INPUT={ehc}', 'DEVICE=1', f'OUTPUT={rec}'])
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    a, b = gdal.Open(source).ReadAsArray(), gdal.Open(str(rec)).ReadAsArray()
    assert np.array_equal(a, b, equal_nan=True)
