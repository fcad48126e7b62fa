"""What a finished job shows: result layers in the input's group, and one message-bar line that expires.

The group is found by the input it belongs to (a custom property), not by its name, so two scenes with the same
layer name get their own groups, and a renamed group still gets its results. A re-run that writes the same files
replaces its layers instead of stacking duplicates. Runs on the main thread only (connected to
CompressJob.finished, which QgsTask emits from finished()).
"""
import html
import math
import os
import re

from qgis.core import Qgis, QgsLayerTreeGroup, QgsProject, QgsRasterLayer
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QPushButton

from ..processing import styling
from .estimate import human_bytes

TITLE = 'EnMAP Compress'
SUCCESS_SECONDS = 30  # long enough to read the metrics and click the button
PROBLEM_SECONDS = 60
SOURCE_PROPERTY = 'enmapcompress/source'  # on a result group: the input it belongs to
ROLE_PROPERTY = styling.ROLE_PROPERTY  # on a layer: 'reconstruction' | 'error' | 'decoded'
ORIGINAL_PROPERTY = 'enmapcompress/original'  # on a result layer: the input's file (the spectrum inspector)
MESSAGE_PROPERTY = 'enmapcompress_message'
SUBJECT_PROPERTY = 'enmapcompress_subject'  # on a message: the output or file it is about
_ENMAP_NAME = re.compile(r'ENMAP\d\d-_*L(\w+?)-(DT\d+)_(\d{8})T\d+Z_(\d{3})', re.IGNORECASE)
_NOISE = re.compile(r'[-_](SPECTRAL_IMAGE|METADATA)$', re.IGNORECASE)
MAX_NAME = 40


def scene_label(name):
    """A short scene id for layer and group names: 'L2A DT0000999999_001 2024-01-01' for an EnMAP product (its
    layer names can be 150 characters of ZIP path), else the name, shortened in the middle."""
    base = os.path.splitext(os.path.basename(str(name).rstrip('/\\')))[0] or str(name)
    match = _ENMAP_NAME.search(base)
    if match:
        level, datatake, day, tile = match.groups()
        return f'L{level.upper()} {datatake.upper()}_{tile} {day[:4]}-{day[4:6]}-{day[6:]}'
    base = _NOISE.sub('', base)
    return base if len(base) <= MAX_NAME else base[:MAX_NAME // 2 - 1] + '…' + base[-(MAX_NAME // 2):]


def setting_label(request):
    """The model and what was asked of it: 'rdnet q5', 'rdnet ≤ 10 DN', 'rdnet lossless', 'rdnet per-band'."""
    if request.max_error == 0:
        return f'{request.model_id} lossless'
    if request.band_max_errors:
        return f'{request.model_id} per-band'
    if request.max_error is not None:
        return f'{request.model_id} ≤ {request.max_error} DN'
    if request.relative_error is not None:
        return f'{request.model_id} ≤ {request.relative_error * 100:g} %'
    return f'{request.model_id} q{request.quality}'


def _groups(node):
    for child in node.children():
        if isinstance(child, QgsLayerTreeGroup):
            yield child
            yield from _groups(child)


def result_group(project, request):
    """The group of this input (made visible: results must not arrive hidden), created at the top if needed."""
    root = project.layerTreeRoot()
    group = next((g for g in _groups(root) if g.customProperty(SOURCE_PROPERTY) == request.source), None)
    if group is None:
        group = root.insertGroup(0, scene_label(request.layer_name or request.source))
        group.setCustomProperty(SOURCE_PROPERTY, request.source)
    node = group
    while isinstance(node, QgsLayerTreeGroup):
        node.setItemVisibilityChecked(True)
        node = node.parent()
    return group


def _same_file(a, b):
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _replace_previous(project, group, path):
    """Remove layers of `group` that show `path` (an earlier run wrote the same file); returns their index."""
    index = None
    for position, node in enumerate(group.children()):
        layer = getattr(node, 'layer', lambda: None)()
        if isinstance(layer, QgsRasterLayer) and _same_file(layer.source(), path):
            index = position if index is None else index
            project.removeMapLayer(layer.id())
    return index


def _unique_name(group, name):
    taken = {node.name() for node in group.children()}
    if name not in taken:
        return name
    return next(f'{name} ({n})' for n in range(2, 10_000) if f'{name} ({n})' not in taken)


def _load(path, name, role, request):
    layer = QgsRasterLayer(path, name, 'gdal')
    if not layer.isValid():
        return None
    layer.setCustomProperty(ROLE_PROPERTY, role)
    layer.setCustomProperty(ORIGINAL_PROPERTY, request.source)
    return layer


def add_result_layers(request, results, project=None):
    """Load, style and group the reconstruction and the error layer; returns (group, [layers])."""
    project = project or QgsProject.instance()
    prefix = f'{scene_label(request.layer_name or request.source)} {setting_label(request)}'
    template = project.mapLayer(request.layer_id)
    reconstruction = _load(results['RECONSTRUCTED'], f'{prefix} reconstructed', 'reconstruction', request)
    error = _load(results['ERROR'], f'{prefix} error (RMSE, DN)', 'error', request)
    layers = [layer for layer in (error, reconstruction) if layer is not None]  # error on top: it is the news
    if reconstruction is not None:
        styling.style_like(reconstruction, template if isinstance(template, QgsRasterLayer) else None)
    if error is not None:
        styling.style_error(error)
    if not layers:
        return None, []
    group = result_group(project, request)
    for layer in layers:
        previous = _replace_previous(project, group, layer.source())
        layer.setName(_unique_name(group, layer.name()))
        project.addMapLayer(layer, False)
        group.insertLayer(previous if previous is not None else len(group.children()), layer)
    return group, layers


def summary(request, results):
    """PSNR first: it is what users compare; then the rate, and which scene and setting it was."""
    where = f'{scene_label(request.layer_name or request.source)}, {setting_label(request)}'
    if request.evaluate and results['PSNR'] == math.inf and results.get('MAX_ABS_ERROR') == 0:  # (NaN: none measured)
        return (f"bit-exact (lossless) at {results['BPPPB']:.4f} bpppb (ratio {results['COMPRESSION_RATIO']:.1f}:1) "
                f"— {where}")  # (not "PSNR inf dB ... SA 0.000°, max error 0 DN")
    if request.evaluate:
        return (f"PSNR {results['PSNR']:.2f} dB at {results['BPPPB']:.4f} bpppb (ratio "
                f"{results['COMPRESSION_RATIO']:.1f}:1), SA {results['SA']:.3f}°, max error "
                f"{results.get('MAX_ABS_ERROR', float('nan')):.0f} DN — {where}")
    size = human_bytes(os.path.getsize(request.output)) if os.path.exists(request.output) else ''
    return (f"{results['BPPPB']:.4f} bpppb (ratio {results['COMPRESSION_RATIO']:.1f}:1), "
            f"{os.path.basename(request.output)} {size} — {where}")


def _open_button(label, path):
    button = QPushButton(label)
    button.setObjectName('enmapcompress_open')
    button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(path)))
    return button


def push(bar, item, level, seconds, subject=''):
    """Show `item`, replacing the plugin's previous message (they do not stack up over a session), except a problem
    with another `subject` (a run's output, an opened file): another run finishing took the only word of a failure."""
    for old in list(bar.items()):
        if old.property(MESSAGE_PROPERTY) and (old.property(SUBJECT_PROPERTY) == subject
                                               or old.level() not in (Qgis.Warning, Qgis.Critical)):
            bar.popWidget(old)
    item.setProperty(MESSAGE_PROPERTY, True)
    item.setProperty(SUBJECT_PROPERTY, subject)
    bar.pushWidget(item, level, seconds)
    return item


def message_item(text):
    """A message bar item showing `text` as it is: the item renders its text as HTML, so a message holding a file
    name or a field of a hostile .ehc header ('<a href=...>', 'R&D', 'a < b') showed a clickable link or lost
    everything after a '<'."""
    return QgsMessageBar.createMessage(TITLE, html.escape(text, quote=False))


def push_text(bar, text, level, seconds=PROBLEM_SECONDS, subject=''):
    return push(bar, message_item(text), level, seconds, subject)


def show_summary(bar, request, results, note=''):
    """A success line with a button that opens the report (evaluate) or the folder of the .ehc file."""
    item = message_item(summary(request, results) + note)
    report = results.get('REPORT')
    if request.evaluate and report and os.path.exists(report):
        item.layout().addWidget(_open_button('Open report', report))
    else:
        item.layout().addWidget(_open_button('Open folder', os.path.dirname(os.path.abspath(request.output))))
    return push(bar, item, Qgis.Success, SUCCESS_SECONDS, request.output)


def present(iface, request, outcome):
    """Add layers (evaluate) and tell the user; on cancel or failure add nothing."""
    bar = iface.messageBar()
    name = scene_label(request.layer_name or request.source)
    if outcome.cancelled:
        return push_text(bar, f'{name}: cancelled; nothing was written or added.', Qgis.Info, 10, request.output)
    if not outcome.ok:
        return push_text(bar, f'{name}: {outcome.message}', Qgis.Critical, subject=request.output)
    if request.evaluate and getattr(outcome, 'project_closed', False):  # its layers belong to a closed project
        return show_summary(bar, request, outcome.results,
                            note=' (its project was closed: the layers were not added; the files are written)')
    if request.evaluate and not add_result_layers(request, outcome.results)[1]:
        return push_text(bar, f'{name}: the outputs were written but QGIS cannot open them: '
                              f"{outcome.results.get('RECONSTRUCTED')}", Qgis.Warning, subject=request.output)
    return show_summary(bar, request, outcome.results)
