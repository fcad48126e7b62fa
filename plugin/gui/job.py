"""One compress or evaluate run from the dialog, as a background QgsProcessingAlgRunnerTask (a cancel is not
reported to QGIS as a failure: RunnerTask).

The Processing algorithm does the work (single source of truth); this object builds its parameters, keeps the
task, context and feedback alive, relays progress, and hands the results to the main thread. The input is passed
as its file path, so the worker opens its own GDAL handle and never reads through the project's layer.
"""
import contextlib
import os
from dataclasses import dataclass, field
from typing import Optional

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

COMPRESS_ID = 'enmapcompress:compress'
EVALUATE_ID = 'enmapcompress:evaluate'
CANCELLED_NOTE = ' (cancelled, nothing written)'
_RUNNING = set()  # jobs stay referenced until their task has finished, even when the dialog is closed


@dataclass
class JobRequest:
    """What the user asked for; `source` is the input's file path, `layer_id`/`layer_name` name it in the map."""

    source: str
    layer_id: str
    layer_name: str
    model_id: str  # resolved to the algorithm's own MODEL index at start (model_index)
    quality: int
    device_index: int
    output: str  # the .ehc file
    evaluate: bool = True
    max_error: Optional[int] = None  # None: lossy at `quality`; 0: lossless; E: every sample within E DN
    code_all_bands: bool = False
    relative_error: Optional[float] = None  # every sample within this fraction of its value ...
    relative_floor: Optional[int] = None  # ... but at least this many DN
    band_max_errors: Optional[str] = None  # a limit per band: a CSV file "band,bound" or 224 numbers

    def outputs(self):
        """Paths written next to the .ehc file (evaluate mode)."""
        root = os.path.splitext(self.output)[0]
        return {'RECONSTRUCTED': root + '_reconstructed.tif', 'ERROR': root + '_error.tif',
                'REPORT': root + '_report.html'}

    def algorithm_id(self):
        return EVALUATE_ID if self.evaluate else COMPRESS_ID

    def parameters(self, model_index):
        common = {'INPUT': self.source, 'MODEL': model_index, 'QUALITY': self.quality,
                  'DEVICE': self.device_index}
        if self.max_error is not None:
            common['MAX_ERROR'] = self.max_error
        if self.relative_error is not None:
            common.update(RELATIVE_ERROR=self.relative_error, RELATIVE_FLOOR=self.relative_floor or 0)
        if self.band_max_errors is not None:
            common['BAND_MAX_ERRORS'] = self.band_max_errors
        if not self.evaluate:
            return {**common, 'CODE_ALL_BANDS': self.code_all_bands, 'OUTPUT': self.output}
        extra = {'CODE_ALL_BANDS': True} if self.code_all_bands and has_parameter(EVALUATE_ID, 'CODE_ALL_BANDS') \
            else {}
        return {**common, **extra, 'COMPRESSED': self.output, **self.outputs()}

    def files(self):
        return [self.output] + (list(self.outputs().values()) if self.evaluate else [])


def has_parameter(algorithm_id, name):
    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    return algorithm is not None and algorithm.parameterDefinition(name) is not None


def model_index(algorithm, model_id):
    """The MODEL enum index of `model_id` in this algorithm's own option list (each label begins with the id),
    so a dialog opened before the models changed still runs the model it shows."""
    for index, label in enumerate(algorithm.parameterDefinition('MODEL').options()):
        if label.split(' ', 1)[0] == model_id:
            return index
    raise RuntimeError(f'the model {model_id} is not installed any more; reopen the dialog')


class RunFeedback(QgsProcessingFeedback):
    """Keeps the last error text (reportError is called from the worker thread; only a string is stored), relays
    what the run is doing ("tile 37 of 64") as textChanged, and counts a Cancel from QGIS's task manager too:
    QgsProcessingAlgRunnerTask only cancels feedback it owns."""

    textChanged = pyqtSignal(str)  # noqa: N815 (Qt naming; QgsProcessingFeedback has no such signal in 3.22)

    def __init__(self):
        super().__init__()
        self.errors = []
        self.task = None

    def isCanceled(self):  # noqa: N802 (QGIS API name; the core's progress hooks call it)
        return super().isCanceled() or (self.task is not None and self.task.isCanceled())

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 (QGIS API names)
        self.errors.append(error)
        super().reportError(error, fatalError)

    def setProgressText(self, text):  # noqa: N802 (QGIS API name; the core's Progress.say calls it)
        super().setProgressText(text)
        self.textChanged.emit(str(text))  # queued to the main thread


class RunnerTask(QgsProcessingAlgRunnerTask):
    """A QgsProcessingAlgRunnerTask whose cancelled run ends as Complete, not Terminated.

    QGIS (QgisApp::onTaskCompleteShowNotify, 3.22 and every later version) shows a "Task failed" system notification
    for each top-level task that ends Terminated after running 5 s or more, and a cancel is not a failure. QGIS 3.26's
    Silent flag would also silence a finished run, and flags are fixed before anyone cancels, so this works on the
    outcome instead: a cancelled run reports Complete, its description says it was cancelled (that is the
    notification's text, when QGIS shows one), and the job reads the outcome from the feedback.

    `returned`: the algorithm returned its results, so every output is written (a Cancel that came after that came
    too late: the run is done). A run that failed or stopped wrote nothing (the core writes atomically)."""

    def __init__(self, algorithm, parameters, context, feedback):
        super().__init__(algorithm, parameters, context, feedback)
        self._run_feedback = feedback
        self.returned = False
        self.executed.connect(self._note_returned)  # (first: before the job reads the outcome)

    def run(self):  # worker thread
        finished = super().run()
        return finished or self._run_feedback.isCanceled()

    def _note_returned(self, _ok, results):
        self.returned = bool(results)  # (QGIS passes the algorithm's results once it returned, even when cancelled)

    def cancelled(self):
        return self._run_feedback.isCanceled() and not self.returned

    def finished(self, result):  # main thread, before the task manager announces the status
        super().finished(result)  # emits executed
        if self.cancelled():
            self.setDescription(self.description() + CANCELLED_NOTE)


@dataclass
class JobOutcome:
    ok: bool
    cancelled: bool
    results: dict = field(default_factory=dict)
    message: str = ''
    project_closed: bool = False  # the project it was started in was closed (new or other project) meanwhile


class CompressJob(QObject):
    """Signals arrive on the main thread: progressChanged(percent), progressTextChanged(text) and
    finished(JobOutcome)."""

    progressChanged = pyqtSignal(float)  # noqa: N815 (Qt naming)
    progressTextChanged = pyqtSignal(str)  # noqa: N815 (Qt naming)
    finished = pyqtSignal(object)

    def __init__(self, request, parent=None):
        super().__init__(parent)
        self.request = request
        self.outcome = None
        self.context = QgsProcessingContext()  # no project: the worker must not touch project layers
        self.feedback = RunFeedback()
        self.feedback.textChanged.connect(self.progressTextChanged)
        self.task = None
        self.project_closed = False

    def _on_project_cleared(self):
        self.project_closed = True

    def start(self):
        algorithm = QgsApplication.processingRegistry().algorithmById(self.request.algorithm_id())
        if algorithm is None:
            raise RuntimeError(f'the Processing algorithm {self.request.algorithm_id()} is not registered')
        name = 'Evaluating' if self.request.evaluate else 'Compressing'
        parameters = self.request.parameters(model_index(algorithm, self.request.model_id))
        self.task = RunnerTask(algorithm, parameters, self.context, self.feedback)
        self.feedback.task = self.task
        self.task.setDescription(f'EnMAP Compress: {name.lower()} {self.request.layer_name}')
        self.task.progressChanged.connect(self._relay_progress)
        self.task.executed.connect(self._on_executed)
        _RUNNING.add(self)
        QgsProject.instance().cleared.connect(self._on_project_cleared)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self):
        if self.task is not None and self.outcome is None:
            self.feedback.cancel()
            self.task.cancel()

    def is_running(self):
        return self.task is not None and self.outcome is None

    def _relay_progress(self, percent):
        """The run's progress, up to a cancel: a cancelled RunnerTask ends Complete, and QgsTask then reports
        100 %, which would show a run cancelled at 23 % as "Cancelled at 100%"."""
        if self.outcome is None and not self.feedback.isCanceled():
            self.progressChanged.emit(float(percent))

    def _on_executed(self, ok, results):
        cancelled = self.task.cancelled()
        success = bool(ok) and not cancelled
        # nothing to clean up on failure or cancel: the core leaves no output behind, and deleting what was not
        # there at the start deleted the finished files of another run for the same outputs (which made this run
        # fail as busy)
        message = 'Cancelled; nothing was written.' if cancelled else (self.feedback.errors[-1:] or [''])[0]
        if not success and not message:
            message = 'The run failed; see the Processing log for details.'
        self.outcome = JobOutcome(success, cancelled, dict(results or {}) if success else {}, message,
                                  self.project_closed)
        with contextlib.suppress(TypeError, RuntimeError):  # (not connected: start() failed)
            QgsProject.instance().cleared.disconnect(self._on_project_cleared)
        _RUNNING.discard(self)
        self.finished.emit(self.outcome)


def running_jobs():
    return list(_RUNNING)


def cancel_all():
    for job in running_jobs():
        job.cancel()
