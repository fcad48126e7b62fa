"""One compress or evaluate run from the dialog, as a background QgsProcessingAlgRunnerTask.

The Processing algorithm does the work (single source of truth); this object builds its parameters, keeps the
task, context and feedback alive, relays progress, and hands the results to the main thread. The input is passed
as its file path, so the worker opens its own GDAL handle and never reads through the project's layer.
"""
import contextlib
import os
from dataclasses import dataclass, field

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

COMPRESS_ID = 'enmapcompress:compress'
EVALUATE_ID = 'enmapcompress:evaluate'
_RUNNING = set()  # jobs stay referenced until their task has finished, even when the dialog is closed


@dataclass
class JobRequest:
    """What the user asked for; `source` is the input's file path, `layer_id`/`layer_name` name it in the map."""

    source: str
    layer_id: str
    layer_name: str
    model_index: int
    model_id: str
    quality: int
    device_index: int
    output: str  # the .ehc file
    evaluate: bool = True

    def outputs(self):
        """Paths written next to the .ehc file (evaluate mode)."""
        root = os.path.splitext(self.output)[0]
        return {'RECONSTRUCTED': root + '_reconstructed.tif', 'ERROR': root + '_error.tif',
                'REPORT': root + '_report.html'}

    def algorithm_id(self):
        return EVALUATE_ID if self.evaluate else COMPRESS_ID

    def parameters(self):
        common = {'INPUT': self.source, 'MODEL': self.model_index, 'QUALITY': self.quality,
                  'DEVICE': self.device_index}
        if not self.evaluate:
            return {**common, 'CODE_ALL_BANDS': False, 'OUTPUT': self.output}
        return {**common, 'COMPRESSED': self.output, **self.outputs()}

    def files(self):
        return [self.output] + (list(self.outputs().values()) if self.evaluate else [])


class _Feedback(QgsProcessingFeedback):
    """Keeps the last error text (reportError is called from the worker thread; only a string is stored)."""

    def __init__(self):
        super().__init__()
        self.errors = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 (QGIS API names)
        self.errors.append(error)
        super().reportError(error, fatalError)


@dataclass
class JobOutcome:
    ok: bool
    cancelled: bool
    results: dict = field(default_factory=dict)
    message: str = ''


class CompressJob(QObject):
    """Signals arrive on the main thread: progressChanged(percent) and finished(JobOutcome)."""

    progressChanged = pyqtSignal(float)  # noqa: N815 (Qt naming)
    finished = pyqtSignal(object)

    def __init__(self, request, parent=None):
        super().__init__(parent)
        self.request = request
        self.outcome = None
        self._existing = {path for path in request.files() if os.path.exists(path)}
        self.context = QgsProcessingContext()  # no project: the worker must not touch project layers
        self.feedback = _Feedback()
        self.task = None

    def start(self):
        algorithm = QgsApplication.processingRegistry().algorithmById(self.request.algorithm_id())
        if algorithm is None:
            raise RuntimeError(f'the Processing algorithm {self.request.algorithm_id()} is not registered')
        name = 'Evaluating' if self.request.evaluate else 'Compressing'
        self.task = QgsProcessingAlgRunnerTask(algorithm, self.request.parameters(), self.context, self.feedback)
        self.task.setDescription(f'EnMAP Compress: {name.lower()} {self.request.layer_name}')
        self.task.progressChanged.connect(self._relay_progress)
        self.task.executed.connect(self._on_executed)
        _RUNNING.add(self)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self):
        if self.task is not None and self.outcome is None:
            self.feedback.cancel()
            self.task.cancel()

    def is_running(self):
        return self.task is not None and self.outcome is None

    def _relay_progress(self, percent):
        self.progressChanged.emit(float(percent))

    def _on_executed(self, ok, results):
        cancelled = self.feedback.isCanceled()
        success = bool(ok) and not cancelled
        if not success:
            self._remove_new_files()
        message = 'Cancelled; nothing was written.' if cancelled else (self.feedback.errors[-1:] or [''])[0]
        if not success and not message:
            message = 'The run failed; see the Processing log for details.'
        self.outcome = JobOutcome(success, cancelled, dict(results or {}) if success else {}, message)
        _RUNNING.discard(self)
        self.finished.emit(self.outcome)

    def _remove_new_files(self):
        """The core writes atomically; this also drops any output that did not exist before the run."""
        for path in self.request.files():
            if path not in self._existing and os.path.exists(path):
                with contextlib.suppress(OSError):
                    os.remove(path)


def running_jobs():
    return list(_RUNNING)


def cancel_all():
    for job in running_jobs():
        job.cancel()
