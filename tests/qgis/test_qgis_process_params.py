"""Parameter values as `qgis_process run`, batch rows and scripts give them: a refused value is one line that says
what the parameter takes; an INPUT QGIS cannot load as a layer goes to the core, which opens it (a /vsizip/ path)
or names what is wrong; a QgsProperty (processing.run) is evaluated before the core checks it."""
import os
import zipfile

import pytest
from qgis.core import QgsProcessingContext, QgsProperty

from tools import synthetic


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('qpp') / 'scene.tif'), width=24, height=20, seed=4)


def _text(proc):
    return proc.stdout + proc.stderr


@pytest.mark.parametrize('parameter, words', [
    ('QUALITY=0', "QUALITY must be an integer from 1 to 10, not '0'"),
    ('MODEL=pca', "MODEL must be the number of one of its options (0: pca, "),
    ('DEVICE=3', "DEVICE must be the number of one of its options (0: auto, 1: cpu, 2: cuda), not '3'"),
    ('MAX_ERROR=-1', "MAX_ERROR must be an integer of at least 0 (or empty), not '-1'")])
def test_a_refused_value_says_what_the_parameter_takes(qgis_process, scene, tmp_path, parameter, words):
    name = parameter.split('=')[0]
    fixed = [p for p in ('MODEL=0', 'DEVICE=1') if not p.startswith(name + '=')]
    proc = qgis_process(['run', 'enmapcompress:compress', '--', f'INPUT={scene}', *fixed, parameter,
                         f'OUTPUT={tmp_path / "x.ehc"}'])
    text = _text(proc)
    assert proc.returncode != 0 and words in text and 'Traceback' not in text, text[-1500:]
    assert os.listdir(tmp_path) == []


def test_an_input_qgis_cannot_load_goes_to_the_core(qgis_process, scene, tmp_path):
    archive = tmp_path / 'in.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.write(scene, 'scene.tif')
    out = tmp_path / 'out'
    out.mkdir()
    packed = qgis_process(['run', 'enmapcompress:compress', '--', f'INPUT=/vsizip/{archive}/scene.tif', 'MODEL=0',
                           'DEVICE=1', f'OUTPUT={out / "z.ehc"}'])
    assert packed.returncode == 0, _text(packed)[-1500:]
    (tmp_path / 'fake.tif').write_text('not a raster', encoding='utf-8')
    for source, words in ((tmp_path / 'missing.tif', 'missing.tif does not exist'),
                          (tmp_path / 'fake.tif', 'fake.tif is not a raster GDAL can open')):
        proc = qgis_process(['run', 'enmapcompress:compress', '--', f'INPUT={source}', 'MODEL=0', 'DEVICE=1',
                             f'OUTPUT={out / "x.ehc"}'])
        text = _text(proc)
        assert proc.returncode != 0 and words in text and 'Traceback' not in text, text[-1500:]
    assert os.listdir(out) == ['z.ehc']


def test_evaluate_names_a_wrongly_named_compressed_output_as_given(qgis_process, scene, tmp_path):
    proc = qgis_process(['run', 'enmapcompress:evaluate', '--', f'INPUT={scene}', 'MODEL=0', 'DEVICE=1',
                         f'RECONSTRUCTED={tmp_path / "r.tif"}', f'ERROR={tmp_path / "e.tif"}',
                         f'COMPRESSED={tmp_path / "c.tif"}'])
    text = _text(proc)
    assert proc.returncode != 0 and f'must end with .ehc: {tmp_path / "c.tif"}' in text, text[-1500:]
    assert 'enmapcompress.part' not in text and os.listdir(tmp_path) == []


def test_error_bounds_given_as_properties_are_evaluated():
    """processing.run takes a QgsProperty for any parameter; MAX_ERROR=QgsProperty.fromValue(3) was refused as
    'not <QgsProperty: static (3)>'."""
    from enmap_compress.plugin.processing.algorithms import CompressAlgorithm

    algorithm = CompressAlgorithm()
    algorithm.initAlgorithm()
    context = QgsProcessingContext()
    bounds, bounded = algorithm.error_bound_args({'MAX_ERROR': QgsProperty.fromExpression('1 + 2'),
                                                  'RELATIVE_ERROR': QgsProperty.fromValue(0.01)}, context)
    assert bounded and bounds['max_error'] == 3 and bounds['relative_error'] == 0.01
    assert algorithm.quality_arg({'QUALITY': QgsProperty.fromValue('7')}, context) == 7
