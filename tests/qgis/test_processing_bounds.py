"""Per-band and relative error bounds through `qgis_process run` (BAND_MAX_ERRORS, RELATIVE_ERROR, RELATIVE_FLOOR)."""
import json
import os

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.bounds import error_bound
from tools import synthetic

gdal.UseExceptions()


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('qpb') / 'scene.tif'), width=24, height=20, seed=4)


def _results(proc):
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return json.loads(proc.stdout[proc.stdout.index('{'):])['results']


def test_band_bounds_from_a_csv_file_and_a_relative_bound(qgis_process, scene, tmp_path):
    csv_path = tmp_path / 'bounds.csv'
    limits = {b: (30 if 127 <= b <= 141 or 161 <= b <= 167 else 4) for b in range(1, 225)}
    csv_path.write_text('band,bound\n' + ''.join(f'{b},{v}\n' for b, v in limits.items()), encoding='utf-8')
    ehc, rec = str(tmp_path / 'b.ehc'), str(tmp_path / 'b.tif')
    _results(qgis_process(['run', 'enmapcompress:compress', '--json', '--', f'INPUT={scene}', 'MODEL=0', 'DEVICE=1',
                           f'BAND_MAX_ERRORS={csv_path}', 'RELATIVE_ERROR=0.002', 'RELATIVE_FLOOR=1',
                           f'OUTPUT={ehc}']))
    _results(qgis_process(['run', 'enmapcompress:decompress', '--json', '--', f'INPUT={ehc}', 'DEVICE=1',
                           f'OUTPUT={rec}']))
    a, b = (gdal.Open(p).ReadAsArray().astype(np.int64) for p in (scene, rec))
    live = np.flatnonzero(~(a == -32768).all(axis=(1, 2)))
    bound = error_bound(band_max_errors=[limits[b] for b in range(1, 225)], relative_error=0.002, relative_floor=1)
    assert (np.abs(a[live] - b[live]).reshape(len(live), -1)
            <= bound.limits(a[live].reshape(len(live), -1), live)).all()


def test_evaluate_with_a_relative_bound(qgis_process, scene, tmp_path):
    metrics = _results(qgis_process([
        'run', 'enmapcompress:evaluate', '--json', '--', f'INPUT={scene}', 'MODEL=0', 'DEVICE=1',
        'RELATIVE_ERROR=0.01', 'RELATIVE_FLOOR=2', f'RECONSTRUCTED={tmp_path / "r.tif"}',
        f'ERROR={tmp_path / "e.tif"}']))
    assert 2 <= metrics['MAX_ABS_ERROR'] <= 0.01 * 32767


@pytest.mark.parametrize('parameter, words', [('BAND_MAX_ERRORS=1,2,3', 'give 224 values'),
                                              ('RELATIVE_FLOOR=3', 'needs RELATIVE_ERROR'),
                                              ('BAND_MAX_ERRORS=/tmp', 'names /tmp, which is not a CSV file'),
                                              ('QUALITY=nan', "quality must be an integer from 1 to 10, not 'nan'"),
                                              ('QUALITY=5.5', "quality must be an integer from 1 to 10, not '5.5'")])
def test_bad_bounds_and_qualities_are_one_clear_message(qgis_process, scene, tmp_path, parameter, words):
    proc = qgis_process(['run', 'enmapcompress:compress', '--', f'INPUT={scene}', 'MODEL=0', 'DEVICE=1', parameter,
                         f'OUTPUT={tmp_path / "x.ehc"}'])
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and words in text and 'Traceback' not in text
    assert not os.path.exists(tmp_path / 'x.ehc')
