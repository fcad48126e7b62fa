"""The real QGIS application in a (virtual) window: an .ehc file dropped on the main window opens as a layer,
decoded in the background, exactly as a user's drag and drop; a screenshot of the window goes to
docs/img/open_ehc.png.

The test starts /usr/bin/qgis under Xvfb with the plugin enabled in a throw-away profile and run_in_qgis() as
its --code script; the script drops one file on the map and another on the layer panel (DragEnter and Drop with
the file's URL, the events QGIS gets from the desktop), waits for both layers and the map to render, saves the
screenshot and a JSON of what it saw, and quits.
"""
import json
import os
import shutil

import pytest
from gui_helpers import qgis_window_missing, run_qgis_window

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS_IMG = os.path.join(PROJECT_ROOT, 'docs', 'img')
TIMEOUT_S = 240

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def test_an_ehc_dropped_on_the_real_qgis_window_opens_as_a_layer(installed_model, qgis_env_tool, tmp_path):
    if qgis_window_missing():
        pytest.skip(qgis_window_missing())
    from enmap_compress.plugin.core.codec import compress
    from enmap_compress.plugin.core.runtime import default_model_id
    from tools import synthetic

    model = default_model_id() or installed_model
    scene = synthetic.write_scene(str(tmp_path / 'ENMAP_L2A_sample.tif'), 320, 240, seed=4)
    ehc = str(tmp_path / f'ENMAP_L2A_sample_{model}_q6.ehc')
    compress(scene, ehc, model, 6, 'cpu')
    second = str(tmp_path / 'second_scene.ehc')
    shutil.copyfile(ehc, second)
    out, err = run_qgis_window(qgis_env_tool, tmp_path, 'test_gui_qgis_window', 'run_in_qgis',
                               {'ENMAP_SHOT_EHC': ehc, 'ENMAP_SHOT_EHC2': second, 'ENMAP_SHOT_DIR': str(tmp_path)},
                               timeout=TIMEOUT_S)
    seen_path, log = tmp_path / 'seen.json', tmp_path / 'steps.log'
    steps = log.read_text(encoding='utf-8') if log.is_file() else ''
    assert seen_path.is_file(), steps + out[-3000:] + err[-3000:]
    seen = json.loads(seen_path.read_text(encoding='utf-8'))
    assert seen['accepted'], seen
    assert seen['bands'] == 224 and seen['renderer'] == 'multibandcolor', seen
    assert seen['name'].endswith('(.ehc)') and seen['source'].endswith('.tif'), seen
    assert seen['name'] == f'ENMAP_L2A_sample {model} q6 (.ehc)', seen
    assert seen['in_layer_tree'], seen
    assert seen['accepted_panel'] and seen['panel_drop'] == f'second_scene {model} q6 (.ehc)', seen
    shot = tmp_path / 'open_ehc.png'
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(shot))
    assert image.width() >= 1000 and image.height() >= 700
    canvas = seen['canvas']  # the map area of the screenshot must show the image, not an empty map
    colours = {image.pixel(x, y) for x in range(canvas[0], canvas[0] + canvas[2], 7)
               for y in range(canvas[1], canvas[1] + canvas[3], 7)}
    assert len(colours) > 200, 'the map canvas shows the decoded image'
    os.makedirs(DOCS_IMG, exist_ok=True)
    shutil.copyfile(shot, os.path.join(DOCS_IMG, 'open_ehc.png'))


# --- the script QGIS runs (--code) --------------------------------------------------------------------------------

def run_in_qgis():
    from qgis.core import QgsApplication, QgsProject
    from qgis.PyQt.QtCore import QMimeData, QPoint, Qt, QTimer, QUrl
    from qgis.PyQt.QtGui import QDragEnterEvent, QDropEvent
    from qgis.PyQt.QtWidgets import QDockWidget
    from qgis.utils import iface, plugins

    ehc, second, folder = (os.environ[key] for key in ('ENMAP_SHOT_EHC', 'ENMAP_SHOT_EHC2', 'ENMAP_SHOT_DIR'))
    plugin = plugins['enmap_compress']
    window, canvas = iface.mainWindow(), iface.mapCanvas()
    window.resize(1280, 860)
    layers = window.findChild(QDockWidget, 'Layers')
    if layers is not None:  # wide enough to read the layer's name in the screenshot
        window.resizeDocks([layers], [420], Qt.Horizontal)
    seen = {'accepted': False}

    def step(text):
        with open(os.path.join(folder, 'steps.log'), 'a', encoding='utf-8') as handle:
            handle.write(text + '\n')

    def task_added(task_id):
        step(f'task {QgsApplication.taskManager().task(task_id).description()}')

    QgsApplication.taskManager().taskAdded.connect(task_added)
    iface.messageBar().widgetAdded.connect(lambda item: step(f'message {item.text()}'))
    step(f'started; plugin {plugin}; drop handler {plugin.drop_handler}')

    def drop(path, target):
        """What the desktop sends when a file is dragged onto a widget: DragEnter, then Drop."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(path)])
        where = target.rect().center()
        enter = QDragEnterEvent(where, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        QgsApplication.sendEvent(target, enter)
        event = QDropEvent(where, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        QgsApplication.sendEvent(target, event)
        step(f'dropped {path} on {type(target.parent()).__name__}: {enter.isAccepted()} {event.isAccepted()}')
        return enter.isAccepted() and event.isAccepted()

    def opened(layer):
        step(f'opened {layer.name()}')
        if layer.customProperty('enmapcompress/ehc') == second:
            seen['panel_drop'] = layer.name()
            return zoom(QgsProject.instance().mapLayersByName(seen['name'])[0])
        seen.update(name=layer.name(), bands=layer.bandCount(), renderer=layer.renderer().type(),
                    source=layer.source(),
                    in_layer_tree=QgsProject.instance().layerTreeRoot().findLayer(layer.id()) is not None)
        seen['accepted_panel'] = drop(second, iface.layerTreeView().viewport())  # and one onto the layer panel

    def zoom(layer):
        canvas.setExtent(layer.extent())
        canvas.zoomByFactor(1.1)
        canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(1500, shoot))
        canvas.refresh()

    def shoot():
        if 'canvas' in seen:
            return
        iface.layerTreeView().setCurrentLayer(QgsProject.instance().mapLayersByName(seen['name'])[0])
        top_left = canvas.mapTo(window, QPoint(0, 0))
        seen['canvas'] = [top_left.x(), top_left.y(), canvas.width(), canvas.height()]
        window.grab().save(os.path.join(folder, 'open_ehc.png'))
        with open(os.path.join(folder, 'seen.json'), 'w', encoding='utf-8') as handle:
            json.dump(seen, handle)
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(200, lambda: os._exit(0))  # QGIS's own exit may ask questions nobody can answer here

    plugin.opener.opened.connect(opened)
    QTimer.singleShot(2000, lambda: seen.update(accepted=drop(ehc, canvas.viewport())))
    QTimer.singleShot((TIMEOUT_S - 30) * 1000, lambda: os._exit(3))

