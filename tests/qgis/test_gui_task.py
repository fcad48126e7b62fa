"""Runs from the dialog as a user starts them: a background task with progress, layers and styles added on the
main thread when it finishes, nothing added (and nothing left on disk) when it is cancelled."""
import os

import pytest
from gui_helpers import RGB, STRETCH, part_files, rgb_and_stretch, styled_layer, wait_for
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QThread
from qgis.PyQt.QtWidgets import QPushButton

TIMEOUT_S = 90

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def _dialog_for(plugin, layer, output, evaluate=True):
    dialog = plugin.open_dialog(layer)
    dialog.output_widget.setFilePath(output)
    dialog.device_combo.setCurrentIndex(1)  # cpu: the same on every test machine
    (dialog.evaluate_radio if evaluate else dialog.compress_radio).setChecked(True)
    return dialog


def _group_layers(name):
    group = QgsProject.instance().layerTreeRoot().findGroup(name)
    return None if group is None else [node.layer() for node in group.findLayers()]


def _bar_texts(bar):
    return [item.text() for item in bar.items()]


def test_evaluate_adds_reconstruction_and_error_layers_styled_in_a_group(plugin, scene_layer, message_bar,
                                                                          tmp_path):
    output = str(tmp_path / 'scene.ehc')
    dialog = _dialog_for(plugin, scene_layer, output)
    progress = []
    job = dialog.start()
    assert job is not None, dialog.status_label.text()
    job.progressChanged.connect(progress.append)
    assert dialog.cancel_button.isEnabled() and not dialog.run_button.isEnabled()
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S), 'the task did not finish'
    assert job.outcome.ok, job.outcome.message
    assert progress and max(progress) == pytest.approx(100, abs=1)

    error, reconstruction = _group_layers('scene')
    assert reconstruction.name() == f'scene {dialog.model().model_id} q5 reconstructed'
    assert reconstruction.source() == str(tmp_path / 'scene_reconstructed.tif')
    assert reconstruction.renderer().type() == 'multibandcolor'
    assert rgb_and_stretch(reconstruction.renderer()) == (RGB, STRETCH)

    assert error.renderer().type() == 'singlebandpseudocolor'
    assert error.renderer().band() == 1 and error.renderer().classificationMax() > 0
    assert len(error.renderer().legendSymbologyItems()) >= 3
    assert error.bandCount() == 3 and 'spectral_angle_deg' in error.bandName(2)
    assert error.thread() == QThread.currentThread() == reconstruction.thread()

    (text,) = _bar_texts(message_bar)
    for part in ('PSNR', 'dB', 'SA', 'bpppb', 'ratio'):
        assert part in text
    buttons = message_bar.items()[0].findChildren(QPushButton, 'enmapcompress_open')
    assert [b.text() for b in buttons] == ['Open report']
    for name in ('scene.ehc', 'scene_reconstructed.tif', 'scene_error.tif', 'scene_report.html'):
        assert (tmp_path / name).is_file(), name
    assert part_files(tmp_path) == []
    assert dialog.progress.value() == 100 and dialog.status_label.text().startswith('Done.')
    assert dialog.run_button.isEnabled() and not dialog.cancel_button.isEnabled()
    dialog.close()


def test_compress_only_writes_the_file_and_reports_the_rate(plugin, scene_layer, message_bar, tmp_path):
    dialog = _dialog_for(plugin, scene_layer, str(tmp_path / 'only.ehc'), evaluate=False)
    job = dialog.start()
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
    assert job.outcome.ok, job.outcome.message
    assert os.listdir(tmp_path) == ['only.ehc']
    assert _group_layers('scene') is None
    (text,) = _bar_texts(message_bar)
    assert 'only.ehc' in text and 'bpppb' in text and 'ratio' in text
    dialog.close()


class _CancelAfterFirstTile:
    """Replaces CompressJob: cancels from the worker thread as soon as the first tile reports progress."""

    def __init__(self, job_class):
        self.job_class = job_class
        self.seen = []

    def __call__(self, request):
        job = self.job_class(request)

        def on_progress(percent):
            self.seen.append(percent)
            if percent > 0:
                job.feedback.cancel()

        job.feedback.progressChanged.connect(on_progress, Qt.DirectConnection)
        return job


def test_cancel_stops_within_a_tile_removes_partial_files_and_adds_nothing(plugin, message_bar, wide_scene,
                                                                            tmp_path, monkeypatch):
    from enmap_compress.plugin.gui import dialog as dialog_module

    layer = styled_layer(wide_scene, 'wide')
    try:
        hook = _CancelAfterFirstTile(dialog_module.CompressJob)
        monkeypatch.setattr(dialog_module, 'CompressJob', hook)
        layers_before = set(QgsProject.instance().mapLayers())
        dialog = _dialog_for(plugin, layer, str(tmp_path / 'wide.ehc'))
        job = dialog.start()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        assert job.outcome.cancelled and not job.outcome.ok
        assert hook.seen and max(hook.seen) < 45, f'the run went past the first tile of compress: {hook.seen}'
        assert os.listdir(tmp_path) == [], 'a cancelled run must leave no file behind'
        assert set(QgsProject.instance().mapLayers()) == layers_before
        assert _group_layers('wide') is None
        assert any('cancelled' in text for text in _bar_texts(message_bar))
        assert 'Cancelled' in dialog.status_label.text()
        assert dialog.run_button.isEnabled()
        dialog.close()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_cancel_button_stops_the_run(plugin, scene_layer, tmp_path):
    dialog = _dialog_for(plugin, scene_layer, str(tmp_path / 'c.ehc'))
    job = dialog.start()
    dialog.cancel_button.click()
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
    if job.outcome.ok:
        pytest.skip('the run finished before Cancel reached it')
    assert job.outcome.cancelled
    assert os.listdir(tmp_path) == []
    assert _group_layers('scene') is None
    dialog.close()


def test_a_closed_dialog_still_delivers_its_layers(plugin, scene_layer, tmp_path):
    dialog = _dialog_for(plugin, scene_layer, str(tmp_path / 'closed.ehc'))
    job = dialog.start()
    dialog.close()
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
    assert job.outcome.ok, job.outcome.message
    assert all(isinstance(layer, QgsRasterLayer) for layer in _group_layers('scene'))


def test_a_product_zip_layer_is_read_from_the_zip(plugin, tmp_path):
    """QGIS opens a product ZIP in place (/vsizip/...); the run gets the ZIP, with its METADATA.XML."""
    from tools import synthetic

    product = synthetic.write_product(str(tmp_path / 'product'), width=24, height=20, seed=2, make_zip=True)
    member = os.path.relpath(product.image, os.path.dirname(product.folder)).replace(os.sep, '/')
    layer = QgsRasterLayer(f'/vsizip/{product.zip}/{member}', 'product', 'gdal')
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    try:
        dialog = _dialog_for(plugin, layer, str(tmp_path / 'product.ehc'))
        assert dialog.request().source == product.zip
        job = dialog.start()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        assert job.outcome.ok, job.outcome.message
        assert len(_group_layers('product')) == 2
        dialog.close()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_a_cancelled_run_ends_complete_for_qgis_so_it_shows_no_task_failed(plugin, scene_layer, tmp_path):
    """QGIS shows "Task failed" for every task the task manager announces as Terminated (after 5 s or more); a
    cancel is not a failure: the task manager announces Complete, with a description that says cancelled."""
    from qgis.core import QgsApplication, QgsTask

    announced = []

    def record(task_id, status):
        task = QgsApplication.taskManager().task(task_id)
        if status in (QgsTask.Complete, QgsTask.Terminated) and task is not None:
            announced.append((status, task.description(), task))

    manager = QgsApplication.taskManager()
    manager.statusChanged.connect(record)
    try:
        dialog = _dialog_for(plugin, scene_layer, str(tmp_path / 'c.ehc'))
        job = dialog.start()
        # a task cancelled while still queued never runs and ends Terminated at once (after 0 s: no notification);
        # the case that matters is a running one
        assert wait_for(lambda: job.task.status() != QgsTask.Queued, TIMEOUT_S)
        job.task.cancel()  # as the task manager's own cancel button does
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        if job.outcome.ok:
            pytest.skip('the run finished before Cancel reached it')
        assert job.outcome.cancelled and 'Cancelled' in dialog.status_label.text()
        # the run's own announcement: the dialog's valid-pixel count is a task too, and may end after the run
        assert wait_for(lambda: any(task is job.task for *_, task in announced), 10)
        status, description, _ = next(entry for entry in reversed(announced) if entry[2] is job.task)
        assert status == QgsTask.Complete, 'QGIS would show "Task failed" for a cancelled run'
        assert description.endswith('(cancelled, nothing written)') and 'scene' in description
        assert os.listdir(tmp_path) == []
        dialog.close()
    finally:
        manager.statusChanged.disconnect(record)


def test_a_failed_run_still_ends_terminated(plugin, scene_layer, tmp_path, monkeypatch):
    """Only a cancel is turned into Complete: a run that fails is still announced as a failure."""
    from qgis.core import QgsApplication, QgsTask

    from enmap_compress.plugin.core.errors import InputError
    from enmap_compress.plugin.processing import algorithms

    def failing(self, parameters, context, feedback):
        raise InputError('the disk went away')

    monkeypatch.setattr(algorithms.EvaluateAlgorithm, 'execute', failing)
    announced = []
    manager = QgsApplication.taskManager()

    def record(task_id, status):
        announced.append(status)

    manager.statusChanged.connect(record)
    try:
        dialog = _dialog_for(plugin, scene_layer, str(tmp_path / 'f.ehc'))
        job = dialog.start()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        assert not job.outcome.ok and not job.outcome.cancelled and 'disk went away' in job.outcome.message
        assert wait_for(lambda: QgsTask.Terminated in announced, 10)
        dialog.close()
    finally:
        manager.statusChanged.disconnect(record)


def test_a_job_that_fails_after_another_run_made_its_outputs_keeps_them(plugin, scene_layer, tmp_path, monkeypatch):
    """A job noted which outputs existed when it was made: queued behind another run for the same outputs, its
    failure deleted that run's finished files. It notes them when its task starts."""
    from enmap_compress.plugin.core.errors import InputError
    from enmap_compress.plugin.gui.job import CompressJob, JobRequest
    from enmap_compress.plugin.processing import algorithms

    request = JobRequest(source=scene_layer.source(), layer_id=scene_layer.id(), layer_name='scene',
                         model_id='pca', quality=3, device_index=1, output=str(tmp_path / 'out.ehc'), evaluate=False)
    first, second = CompressJob(request), CompressJob(request)  # made together, as from two dialogs
    first.start()
    assert wait_for(lambda: first.outcome is not None, TIMEOUT_S) and first.outcome.ok

    def failing(self, parameters, context, feedback):
        raise InputError('the second run fails')

    monkeypatch.setattr(algorithms.CompressAlgorithm, 'execute', failing)
    second.start()
    assert wait_for(lambda: second.outcome is not None, TIMEOUT_S) and not second.outcome.ok
    assert os.path.isfile(tmp_path / 'out.ehc'), "the failed run deleted the first run's file"


def test_processing_errors_reach_the_user_as_one_line(plugin, scene_layer, tmp_path, monkeypatch):
    """An OSError the core does not turn into its own (a network share failing) and a bug showed QGIS's whole
    traceback on the message bar; a layer that is not a file was said not to exist."""
    import errno

    import processing
    from qgis.core import QgsProcessingException

    from enmap_compress.plugin.core import codec

    def broken_share(*args, **kwargs):
        raise OSError(errno.EIO, 'Input/output error', args[0])

    def bug(*args, **kwargs):
        raise ZeroDivisionError('a bug')

    for replacement, expected in ((broken_share, 'Input/output error: '), (bug, 'unexpected ZeroDivisionError: a bug')):
        monkeypatch.setattr(codec, 'compress', replacement)  # (the algorithm imports it when it runs)
        with pytest.raises(QgsProcessingException) as raised:
            processing.run('enmapcompress:compress', {'INPUT': scene_layer.source(), 'DEVICE': 1,
                                                      'OUTPUT': str(tmp_path / 'x.ehc')})
        assert str(raised.value).startswith(expected) and 'Traceback' not in str(raised.value)
    virtual = QgsRasterLayer(f'?crs=EPSG:32633&extent=0,0,16,16&width=16&height=16&formula=%22s@1%22'
                             f'&s:uri={scene_layer.source()}&s:provider=gdal', 'virtual', 'virtualraster')
    QgsProject.instance().addMapLayer(virtual)  # (the project owns it: a free layer outliving QGIS crashed the exit)
    try:
        with pytest.raises(QgsProcessingException, match='The layer virtual is not read from a file .*virtualraster'):
            processing.run('enmapcompress:compress', {'INPUT': virtual.id(), 'DEVICE': 1,
                                                      'OUTPUT': str(tmp_path / 'v.ehc')})
    finally:
        QgsProject.instance().removeMapLayer(virtual.id())


def test_a_run_refused_as_busy_keeps_the_outputs_of_the_run_that_writes_them(plugin, scene_layer, tmp_path,
                                                                             monkeypatch):
    """Two runs for the same outputs at once (two dialogs): the second is refused (another run is writing them).
    Its clean-up deleted every output that was not there when it started, and the first run had just finished
    them: the first run said done and its files were gone."""
    import threading
    import time

    from qgis.PyQt.QtCore import QThreadPool

    from enmap_compress.plugin.gui.job import CompressJob, JobRequest, RunFeedback

    if QThreadPool.globalInstance().maxThreadCount() < 2:
        pytest.skip('the task manager runs one task at a time here')
    refused = threading.Event()

    def report_error(self, error, fatal_error=False):  # worker thread: the second run is refused
        original(self, error, fatal_error)
        refused.set()

    original = RunFeedback.reportError
    monkeypatch.setattr(RunFeedback, 'reportError', report_error)
    request = JobRequest(source=scene_layer.source(), layer_id=scene_layer.id(), layer_name='scene',
                         model_id='pca', quality=3, device_index=1, output=str(tmp_path / 'out.ehc'))
    first, second = CompressJob(request), CompressJob(request)
    # the first run holds its outputs (claimed before its first progress) until the second has been refused
    first.feedback.progressChanged.connect(lambda _percent: refused.wait(TIMEOUT_S), Qt.DirectConnection)
    first.start()
    deadline = time.monotonic() + TIMEOUT_S  # the second starts once the first holds its outputs (else it may win)
    while not any(name.endswith('.enmapcompress.part') for name in os.listdir(tmp_path)) and \
            time.monotonic() < deadline:
        time.sleep(0.005)
    second.start()
    deadline = time.monotonic() + TIMEOUT_S  # the main thread is busy (no events) while the first run finishes
    while not all(os.path.exists(path) for path in request.files()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wait_for(lambda: first.outcome is not None and second.outcome is not None, TIMEOUT_S)
    assert first.outcome.ok, first.outcome.message
    assert not second.outcome.ok and 'is writing' in second.outcome.message, second.outcome.message
    assert sorted(os.listdir(tmp_path)) == ['out.ehc', 'out_error.tif', 'out_reconstructed.tif', 'out_report.html']


def test_a_cancel_that_comes_when_the_run_has_written_its_files_is_too_late(plugin, scene_layer, tmp_path,
                                                                          monkeypatch):
    """Cancel clicked as the run ends, after its files were written (here: replacing those of an earlier run):
    the run said "Cancelled; nothing was written" while the files had been replaced. It is done."""
    from qgis.core import QgsApplication, QgsTask

    from enmap_compress.plugin.gui.job import CompressJob, JobRequest
    from enmap_compress.plugin.processing import algorithms

    def cancelled_at_the_end(self, parameters, context, feedback):
        results = execute(self, parameters, context, feedback)
        feedback.cancel()  # as the Cancel button does, between the core's return and the task's
        return results

    execute = algorithms.CompressAlgorithm.execute
    monkeypatch.setattr(algorithms.CompressAlgorithm, 'execute', cancelled_at_the_end)
    output = tmp_path / 'out.ehc'
    output.write_bytes(b'an earlier run')
    job = CompressJob(JobRequest(source=scene_layer.source(), layer_id=scene_layer.id(), layer_name='scene',
                                 model_id='pca', quality=3, device_index=1, output=str(output), evaluate=False))
    announced = []
    manager = QgsApplication.taskManager()

    def record(task_id, status):
        if manager.task(task_id) is job.task and status in (QgsTask.Complete, QgsTask.Terminated):
            announced.append((status, job.task.description()))

    manager.statusChanged.connect(record)
    try:
        job.start()
        assert wait_for(lambda: job.outcome is not None and announced, TIMEOUT_S)
    finally:
        manager.statusChanged.disconnect(record)
    assert job.outcome.ok and not job.outcome.cancelled, job.outcome
    assert job.outcome.results['OUTPUT'] == str(output) and output.read_bytes() != b'an earlier run'
    assert announced == [(QgsTask.Complete, 'EnMAP Compress: compressing scene')]
