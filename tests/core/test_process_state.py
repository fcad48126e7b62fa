"""A long QGIS session: hundreds of runs in one process behave exactly as each run does in a fresh process, and
the core never changes GDAL's process-wide exception mode (finding 6: after a decompress, a truncated GeoTIFF gave
a raw RuntimeError, because the core had switched GDAL's exceptions on for everybody)."""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.codec import compress
from tools import synthetic

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'state_runner.py')
ROUNDS = 20  # x 10 cases = 200 runs in one process


def _write_inputs(folder):
    os.makedirs(os.path.join(folder, 'out'))
    tiny = synthetic.write_scene(os.path.join(folder, 'tiny.tif'), width=8, height=8, seed=1)
    compress(tiny, os.path.join(folder, 'tiny.ehc'), 'pca', 5, 'cpu')
    big = synthetic.write_scene(os.path.join(folder, 'big.tif'), width=32, height=32, seed=2)
    data = open(big, 'rb').read()
    open(os.path.join(folder, 'truncated.tif'), 'wb').write(data[:len(data) * 3 // 5])
    ehc = open(os.path.join(folder, 'tiny.ehc'), 'rb').read()
    open(os.path.join(folder, 'truncated.ehc'), 'wb').write(ehc[:len(ehc) - 50])
    middle = len(ehc) // 2
    open(os.path.join(folder, 'corrupt.ehc'), 'wb').write(ehc[:middle] + bytes([ehc[middle] ^ 0x55]) + ehc[middle + 1:])
    open(os.path.join(folder, 'text.tif'), 'w').write('this is not a raster\n' * 20)
    with zipfile.ZipFile(os.path.join(folder, 'empty.zip'), 'w') as zf:
        zf.writestr('readme.txt', 'no product here')
    _write_duplicate_band_product(folder)
    _write_nan_raster(tiny, os.path.join(folder, 'nan.tif'))


def _write_duplicate_band_product(folder):
    product = synthetic.write_product(os.path.join(folder, 'p'), width=8, height=6, seed=1)
    target = shutil.move(product.folder, os.path.join(folder, 'dup_product'))
    xml = os.path.join(target, os.path.basename(product.xml))
    text = open(xml, 'rb').read().replace(b'<bandID number="2">', b'<bandID number="1">', 1)
    open(xml, 'wb').write(text)


def _write_nan_raster(source, path):
    ds = gdal.Translate(path, source, outputType=gdal.GDT_Float32, noData='nan')
    for index in range(1, 225):
        band = ds.GetRasterBand(index)
        values = band.ReadAsArray()
        values[values == -32768] = np.nan
        if index in (30, 100):
            values[4, 4] = np.nan if index == 30 else np.inf
        band.WriteArray(values)
    ds = None


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('state'))
    _write_inputs(folder)
    return folder


def _run(folder, rounds, *args):
    proc = subprocess.run([sys.executable, RUNNER, folder, str(rounds), *args], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and 'ERROR' not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gist(outcome):
    """The outcome without GDAL's own wording, which depends on its exception mode."""
    return re.sub(r'\(.*$', '', outcome).strip()


def test_hundreds_of_runs_in_one_process_behave_as_in_a_fresh_one(inputs):
    names = list(_run(inputs, 0)['results'])
    fresh = {name: _run(inputs, 1, name)['results'][name][0] for name in names}
    expected_errors = {'truncated GeoTIFF': 'InputError', 'duplicate bandID product': 'InputError',
                       'not a raster': 'InputError', 'ZIP without METADATA.XML': 'InputError',
                       'corrupt .ehc': 'FormatError', 'truncated .ehc': 'FormatError'}
    for name, outcome in fresh.items():
        assert outcome.startswith(expected_errors.get(name, 'ok ')), (name, outcome)
    assert fresh['lossless float with NaN'] == 'ok exact=True'

    session = _run(inputs, ROUNDS)
    assert session['mode_changed_by'] == [] and session['leftovers'] == []
    for name, outcomes in session['results'].items():
        assert len(outcomes) == ROUNDS and set(outcomes) == {fresh[name]}, (name, set(outcomes), fresh[name])


def test_runs_behave_the_same_when_another_plugin_turned_gdal_exceptions_on(inputs):
    session = _run(inputs, 2, '--exceptions-on')
    assert session['mode_changed_by'] == []  # the core did not turn them off either
    reference = _run(inputs, 1)['results']
    for name, outcomes in session['results'].items():
        assert {_gist(o) for o in outcomes} == {_gist(reference[name][0])}, (name, outcomes, reference[name])


def test_the_library_never_switches_gdal_exceptions(inputs):
    """In this very process too: whatever the mode before, it is the same after a compress and a decompress."""
    before = gdal.GetUseExceptions()
    try:
        for mode in (0, 1):
            gdal.UseExceptions() if mode else gdal.DontUseExceptions()
            compress(os.path.join(inputs, 'tiny.tif'), os.path.join(inputs, 'out', 'x.ehc'), 'pca', 5, 'cpu')
            assert gdal.GetUseExceptions() == mode
    finally:
        gdal.UseExceptions() if before else gdal.DontUseExceptions()
