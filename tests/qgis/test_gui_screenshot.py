"""QGIS with a real (virtual) display: the Compress dialog on a synthetic scene, saved to docs/img/dialog.png.

The test starts this file as a script under Xvfb (xvfb-run), so widgets are laid out and painted by the xcb
platform as on a desktop; it skips when Xvfb is not installed.
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS_IMG = os.path.join(PROJECT_ROOT, 'docs', 'img')
SCREEN = '1280x1024x24'

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def _xvfb_command():
    if shutil.which('xvfb-run'):
        return ['xvfb-run', '-a', '-s', f'-screen 0 {SCREEN}']
    return None


def test_dialog_screenshot_under_xvfb(installed_model, tmp_path):
    command = _xvfb_command()
    if command is None:
        pytest.skip('Xvfb is not installed (xvfb-run not found); install the xvfb package')
    env = dict(os.environ, QT_QPA_PLATFORM='xcb', PYTHONDONTWRITEBYTECODE='1')
    env.setdefault('XDG_RUNTIME_DIR', str(tmp_path / 'runtime'))
    os.makedirs(env['XDG_RUNTIME_DIR'], mode=0o700, exist_ok=True)
    env['QGIS_CUSTOM_CONFIG_PATH'] = str(tmp_path / 'config')
    env['PYTHONPATH'] = PROJECT_ROOT  # the synthetic scene comes from the repository's tools
    proc = subprocess.run([*command, sys.executable, os.path.abspath(__file__), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shot = tmp_path / 'dialog.png'
    assert shot.is_file() and shot.stat().st_size > 10_000
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(shot))
    assert image.width() >= 500 and image.height() >= 500
    os.makedirs(DOCS_IMG, exist_ok=True)
    for name in ('dialog.png', 'diagnostics.png'):
        shutil.copyfile(tmp_path / name, os.path.join(DOCS_IMG, name))


# --- the script run under Xvfb -----------------------------------------------------------------------------------

def _screenshots(folder):
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    app = QgsApplication([], True)
    app.initQgis()
    from enmap_compress.plugin.gui.diagnostics import DiagnosticsDialog
    from enmap_compress.plugin.gui.dialog import CompressDialog
    from tools import synthetic

    path = synthetic.write_scene(os.path.join(folder, 'ENMAP_L2A_sample.tif'), 160, 120, seed=4)
    layer = QgsRasterLayer(path, 'ENMAP_L2A_sample', 'gdal')
    QgsProject.instance().addMapLayer(layer)
    dialog = CompressDialog(None, layer)
    dialog.quality_spin.setValue(7)
    for _ in range(400):  # the valid-pixel count runs in a background task
        if not dialog.counting():
            break
        app.processEvents()
        time.sleep(0.025)
    dialog.output_widget.setFilePath('/data/enmap/ENMAP_L2A_sample_rdnet_q7.ehc')  # a tidy path for the docs
    _save(app, dialog, os.path.join(folder, 'dialog.png'))
    _save(app, DiagnosticsDialog(), os.path.join(folder, 'diagnostics.png'))
    QgsProject.instance().removeAllMapLayers()
    app.exitQgis()


def _save(app, widget, path):
    widget.show()
    for _ in range(20):
        app.processEvents()
    if not widget.grab().save(path):
        raise SystemExit(f'could not save {path}')
    widget.close()


if __name__ == '__main__':
    _screenshots(sys.argv[1])
