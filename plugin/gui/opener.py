"""An .ehc file opens in QGIS like any raster: dropped on the map or the layer panel, from Layer ▸ Add Layer, or
from the Browser panel. It is decoded once, in a background task with progress, to a GeoTIFF in a cache folder
(size-limited, reused while the .ehc is unchanged), and that GeoTIFF is added as a layer in true colour.
"""
import contextlib
import html
import math
import os
import re

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsDataItem,
    QgsDataItemProvider,
    QgsDataProvider,
    QgsProcessingContext,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
)
from qgis.gui import QgsCustomDropHandler
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QFileDialog

from ..core.decodecache import DecodeCache
from ..paths import resource_path
from ..processing import styling
from . import results
from .job import RunFeedback, RunnerTask

DECOMPRESS_ID = 'enmapcompress:decompress'
CACHE_LIMIT_KEY = 'enmapcompress/cache_limit_mb'
CACHE_LIMIT_MB = 4096
EHC_FILTER = 'EnMAP Compress (*.ehc *.EHC)'
EHC_PROPERTY = 'enmapcompress/ehc'  # on a decoded layer: the .ehc it shows


def is_ehc(path):
    return isinstance(path, str) and path.lower().endswith('.ehc') and os.path.isfile(path)


def cache_folder():
    return os.path.join(QgsApplication.qgisSettingsDirPath(), 'cache', 'enmap_compress')


def decode_cache():
    try:
        limit = float(QgsSettings().value(CACHE_LIMIT_KEY, CACHE_LIMIT_MB))
    except (TypeError, ValueError):
        limit = CACHE_LIMIT_MB
    if not math.isfinite(limit) or limit < 0:  # (nan, inf, 1e400: every open raised converting it)
        limit = CACHE_LIMIT_MB
    return DecodeCache(cache_folder(), int(limit * 1024 * 1024))


def layer_name(path):
    """The layer's name: the short scene id when the .ehc holds an EnMAP product, else the file name."""
    from ..core.ehcinfo import describe

    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        info = describe(path)
    except Exception:  # noqa: BLE001 (a name is never worth an error; decoding will say what is wrong)
        return stem
    # the dialog names files <input>_<model>_q5 / _e10 / _lossless: say the setting once
    stem = re.sub(rf'_{re.escape(info.model_id)}_(q\d+|e\d+|lossless)$', '', stem)
    scene = results.scene_label(info.product_name) if info.product_name else results.scene_label(stem)
    return f'{scene} {info.model_id} {info.quality_text()} (.ehc)'


class DecodeJob(QObject):
    """Decodes one .ehc to its cache entry through the Processing algorithm; `finished(path, message)` on the
    main thread (path None on failure or cancel). `project`: where its layer goes (project_closed: it was closed
    or replaced meanwhile, and the layer belongs to no project the user has open)."""

    finished = pyqtSignal(object, str)

    def __init__(self, ehc, target, project=None, parent=None):
        super().__init__(parent)
        self.ehc, self.target = ehc, target
        self.project = project or QgsProject.instance()
        self.context = QgsProcessingContext()
        self.feedback = RunFeedback()
        self.task = None
        self.done = False
        self.project_closed = False

    def _on_project_cleared(self):
        self.project_closed = True

    def start(self):
        algorithm = QgsApplication.processingRegistry().algorithmById(DECOMPRESS_ID)
        if algorithm is None:
            raise RuntimeError(f'the Processing algorithm {DECOMPRESS_ID} is not registered')
        os.makedirs(os.path.dirname(self.target), exist_ok=True)
        # (RunnerTask: a cancelled decode is not announced as "Task failed")
        self.task = RunnerTask(algorithm, {'INPUT': self.ehc, 'DEVICE': 0, 'OUTPUT': self.target}, self.context,
                                self.feedback)
        self.feedback.task = self.task
        self.task.setDescription(f'EnMAP Compress: opening {os.path.basename(self.ehc)}')
        self.task.executed.connect(self._on_executed)
        self.project.cleared.connect(self._on_project_cleared)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self):
        if self.task is not None and not self.done:
            self.feedback.cancel()
            self.task.cancel()

    def _on_executed(self, ok, _results):
        self.done = True
        with contextlib.suppress(TypeError, RuntimeError):
            self.project.cleared.disconnect(self._on_project_cleared)
        if self.task.cancelled():
            self.finished.emit(None, 'cancelled')
        elif ok and os.path.isfile(self.target):
            self.finished.emit(self.target, '')
        else:
            self.finished.emit(None, (self.feedback.errors[-1:] or ['decoding failed; see the Processing log'])[0])


class EhcOpener(QObject):
    """Opens .ehc files as layers; keeps its decode jobs alive. `opened(layer)` when a layer is added."""

    opened = pyqtSignal(object)

    def __init__(self, iface=None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.jobs = []

    def open(self, path, project=None):
        """Add the layer now when the cache has it (returns the layer), else start decoding (returns the job)."""
        project = project or QgsProject.instance()
        cache = decode_cache()
        try:  # (the cache key reads the file: gone from the Browser meanwhile, or not readable)
            target = cache.entry_path(path)  # (its key hashes the whole file: once per open)
        except OSError as exc:
            self._tell(f'{os.path.basename(path)}: cannot read it ({exc.strerror or exc})', Qgis.Critical, path)
            return None
        if cache.used(target) is not None:
            layer = self._add(path, target, project, quiet=True)
            if layer is not None:
                return layer
            cache.discard(target)  # damaged outside the plugin (a cut copy, a full disk): decoded again below
        running = next((job for job in self.running() if job.target == target), None)
        if running is not None:  # dropped again while decoding: one decode, one layer
            return running
        job = DecodeJob(path, target, project, self)
        job.finished.connect(lambda target, message, j=job: self._on_decoded(j, target, message, project))
        self.jobs.append(job)
        try:
            job.start()
        except (RuntimeError, OSError) as exc:
            self.jobs.remove(job)
            self._tell(f'{os.path.basename(path)}: {exc}', Qgis.Critical, path)
            return None
        return job

    def _on_decoded(self, job, target, message, project):
        if job in self.jobs:
            self.jobs.remove(job)
        if target is None:
            level = Qgis.Info if message == 'cancelled' else Qgis.Critical
            self._tell(f'{os.path.basename(job.ehc)}: {message}', level, job.ehc)
            return
        if job.project_closed:  # (its layer went into the project opened meanwhile)
            self._tell(f'{os.path.basename(job.ehc)}: decoded, but not added: its project was closed meanwhile '
                       '(open it again to add it)', Qgis.Info, job.ehc)
            return
        self._add(job.ehc, target, project)

    def _add(self, ehc, tif, project, quiet=False):
        layer = QgsRasterLayer(tif, layer_name(ehc), 'gdal')
        if not layer.isValid():
            if not quiet:
                self._tell(f'{os.path.basename(ehc)}: QGIS cannot open the decoded file {tif}', Qgis.Critical, ehc)
            return None
        layer.setCustomProperty(styling.ROLE_PROPERTY, 'decoded')
        layer.setCustomProperty(EHC_PROPERTY, ehc)
        styling.style_true_colour(layer)
        project.addMapLayer(layer)
        # never an entry a decode still running has made (its layer is not in the project yet)
        in_use = [lay.source() for lay in project.mapLayers().values()] + [job.target for job in self.running()]
        decode_cache().trim(keep=in_use)
        self.opened.emit(layer)
        return layer

    def _tell(self, text, level, ehc=''):
        if self.iface is not None:
            results.push_text(self.iface.messageBar(), text, level, subject=ehc)

    def choose_and_open(self, *_):
        """Layer ▸ Add Layer ▸ Add EnMAP Compress image: a file dialog, then open each chosen file."""
        parent = self.iface.mainWindow() if self.iface is not None else None
        paths, _filter = QFileDialog.getOpenFileNames(parent, 'Add EnMAP Compress image', '', EHC_FILTER)
        return [self.open(path) for path in paths if is_ehc(path)]

    def running(self):
        return [job for job in self.jobs if not job.done]

    def cancel_all(self):
        """Stop every decode (the plugin is unloaded: no layer may arrive from a plugin that is gone)."""
        for job in self.running():
            job.cancel()


class EhcDropHandler(QgsCustomDropHandler):
    """Files dropped on the map canvas or the layer panel: .ehc files are ours, the rest goes on to QGIS."""

    def __init__(self, opener):
        super().__init__()
        self.opener = opener

    def handleFileDrop(self, file):  # noqa: N802 (QGIS API name)
        if not is_ehc(file):
            return False
        self.opener.open(file)
        return True


class EhcDataItem(QgsDataItem):
    """An .ehc file in the Browser panel: its model, quality, rate and size as item info; double-click opens it."""

    def __init__(self, parent, path, opener):
        super().__init__(QgsDataItem.Custom, parent, os.path.basename(path), path)
        self.opener = opener
        self.file_path = path
        self.setState(QgsDataItem.Populated)  # no children
        self.setIcon(QIcon(resource_path('decompress.svg')))
        self.setToolTip(tooltip_text(item_info(path)))

    def hasChildren(self):  # noqa: N802 (QGIS API name)
        return False

    def handleDoubleClick(self):  # noqa: N802 (QGIS API name)
        self.opener.open(self.file_path)
        return True

    def actions(self, parent):
        action = QAction('Open (decode to a cached GeoTIFF)', parent)
        action.triggered.connect(lambda: self.opener.open(self.file_path))
        return [action]


def tooltip_text(text):
    """`text` as a tooltip shows it as it is: Qt renders a tooltip that looks like rich text as HTML, and the item
    info holds a .ehc header's fields (a product name '<a href=...>' would be a link)."""
    return '<qt>' + html.escape(text, quote=False).replace('\n', '<br>') + '</qt>'


def item_info(path):
    """The Browser's item info: model, quality, rate and size, or why the file cannot be read."""
    from ..core.ehcinfo import describe
    from ..core.errors import EnmapCompressError

    try:
        info = describe(path)
    except (EnmapCompressError, OSError) as exc:
        return f'{os.path.basename(path)}: not readable ({exc})'
    return '\n'.join(line for line in [os.path.basename(path), *info.lines()] if line)


class EhcDataItemProvider(QgsDataItemProvider):
    def __init__(self, opener):
        super().__init__()
        self.opener = opener

    def name(self):
        return 'EnMAP Compress'

    def capabilities(self):
        return QgsDataProvider.File

    def createDataItem(self, path, parent_item):  # noqa: N802 (QGIS API name)
        return EhcDataItem(parent_item, path, self.opener) if is_ehc(path) else None
