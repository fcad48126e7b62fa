"""What a finished job shows: result layers in a group named after the input, and one message-bar line.

Runs on the main thread only (connected to CompressJob.finished, which QgsTask emits from finished()).
"""
import os

from qgis.core import Qgis, QgsProject, QgsRasterLayer
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QPushButton

from ..processing import styling
from .estimate import human_bytes

TITLE = 'EnMAP Compress'
MESSAGE_SECONDS = 0  # stays until closed: it carries the metrics and the report button


def result_group(project, name):
    """The top-level group named after the input (created at the top when missing)."""
    root = project.layerTreeRoot()
    return root.findGroup(name) or root.insertGroup(0, name)


def _load(path, name):
    layer = QgsRasterLayer(path, name, 'gdal')
    return layer if layer.isValid() else None


def add_result_layers(request, results, project=None):
    """Load, style and group the reconstruction and the error layer; returns (group, [layers])."""
    project = project or QgsProject.instance()
    suffix = f'({request.model_id} q{request.quality})'
    template = project.mapLayer(request.layer_id)
    reconstruction = _load(results['RECONSTRUCTED'], f'{request.layer_name} reconstructed {suffix}')
    error = _load(results['ERROR'], f'{request.layer_name} error {suffix}')
    layers = [layer for layer in (error, reconstruction) if layer is not None]  # error on top: it is the news
    if reconstruction is not None:
        styling.style_like(reconstruction, template if isinstance(template, QgsRasterLayer) else None)
    if error is not None:
        styling.style_error(error)
    if not layers:
        return None, []
    group = result_group(project, request.layer_name)
    for index, layer in enumerate(layers):
        project.addMapLayer(layer, False)
        group.insertLayer(index, layer)
    return group, layers


def summary(request, results):
    if request.evaluate:
        return (f"{request.layer_name}: PSNR {results['PSNR']:.2f} dB, SA {results['SA']:.3f}°, "
                f"{results['BPPPB']:.4f} bpppb, ratio {results['COMPRESSION_RATIO']:.1f}:1")
    size = human_bytes(os.path.getsize(request.output)) if os.path.exists(request.output) else ''
    return (f"{request.layer_name} compressed to {os.path.basename(request.output)} ({size}): "
            f"{results['BPPPB']:.4f} bpppb, ratio {results['COMPRESSION_RATIO']:.1f}:1")


def _open_button(label, path):
    button = QPushButton(label)
    button.setObjectName('enmapcompress_open')
    button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(path)))
    return button


def show_summary(bar, request, results):
    """A success line with a button that opens the report (evaluate) or the folder of the .ehc file."""
    item = QgsMessageBar.createMessage(TITLE, summary(request, results))
    report = results.get('REPORT')
    if request.evaluate and report and os.path.exists(report):
        item.layout().addWidget(_open_button('Open report', report))
    else:
        item.layout().addWidget(_open_button('Open folder', os.path.dirname(os.path.abspath(request.output))))
    bar.pushWidget(item, Qgis.Success, MESSAGE_SECONDS)
    return item


def present(iface, request, outcome):
    """Add layers (evaluate) and tell the user; on cancel or failure add nothing."""
    bar = iface.messageBar()
    if outcome.cancelled:
        bar.pushMessage(TITLE, f'{request.layer_name}: cancelled; nothing was written or added.', Qgis.Info, 5)
        return None
    if not outcome.ok:
        bar.pushMessage(TITLE, f'{request.layer_name}: {outcome.message}', Qgis.Critical, 0)
        return None
    if request.evaluate and not add_result_layers(request, outcome.results)[1]:
        bar.pushMessage(TITLE, f'{request.layer_name}: the outputs were written but QGIS cannot open them: '
                               f"{outcome.results.get('RECONSTRUCTED')}", Qgis.Warning, 0)
    return show_summary(bar, request, outcome.results)
