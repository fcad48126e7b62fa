"""The command line runs numpy's BLAS on one thread (its idle threads spun on the free cores: a third more wall
time), set before numpy loads and never inside QGIS."""
import json
import os
import subprocess
import sys

PROBE = r'''
import json, os, sys
import enmap_compress.plugin.cli
before_numpy = 'numpy' not in sys.modules
import enmap_compress.plugin.cli.main  # noqa: F401 (the console script's module)
print(json.dumps({'value': os.environ.get('OPENBLAS_NUM_THREADS'), 'before_numpy': before_numpy}))
'''

QGIS_SIDE = r'''
import sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
import enmap_compress
from enmap_compress.plugin import plugin
from enmap_compress.plugin.processing import algorithms, provider
from enmap_compress.plugin.gui import dialog, diagnostics, installer, opener, results, spectrum
print('enmap_compress.plugin.cli' in sys.modules)
'''


def _run(script, **env):
    environ = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_NUM_THREADS'}
    environ.update(env)
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=environ, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_the_command_line_sets_one_blas_thread_before_numpy_loads_unless_the_user_chose():
    assert json.loads(_run(PROBE)) == {'value': '1', 'before_numpy': True}
    assert json.loads(_run(PROBE, OPENBLAS_NUM_THREADS='3'))['value'] == '3'


def test_the_qgis_plugin_does_not_import_the_command_line():
    assert _run(QGIS_SIDE, QT_QPA_PLATFORM='offscreen') == 'False'
