"""The dialog's second pass: the three modes, remembered settings, a form that fits 768 px, the far-behind
warning, row clicks, a size estimate that counts product nodata, inputs that cannot be compressed, outputs that
are not overwritten without asking, and Cancel (also from QGIS's task manager) reported as cancelled."""
import os

import numpy as np
import pytest
from gui_helpers import styled_layer, wait_for
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QPoint, Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QMessageBox

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)

TIMEOUT_S = 90


@pytest.fixture
def dialog(plugin, scene_layer):
    opened = plugin.open_dialog(scene_layer)
    opened.device_combo.setCurrentIndex(1)  # cpu
    yield opened
    opened.close()


def _parameters(request):
    from enmap_compress.plugin.gui.job import model_index

    algorithm = QgsApplication.processingRegistry().algorithmById(request.algorithm_id())
    return request.parameters(model_index(algorithm, request.model_id)), algorithm


def test_each_mode_says_when_to_use_it_and_sets_max_error(dialog):
    from enmap_compress.plugin.gui.dialog import BOUNDED, LOSSLESS, LOSSY, MODE_TEXT

    for mode in (LOSSY, BOUNDED, LOSSLESS):
        assert dialog.mode_buttons[mode].toolTip() == MODE_TEXT[mode][1]
        assert MODE_TEXT[mode][1].endswith('.') and len(MODE_TEXT[mode][1]) > 40
    parameters, algorithm = _parameters(dialog.request())
    assert 'MAX_ERROR' not in parameters and dialog.quality_spin.isEnabled()
    options = algorithm.parameterDefinition('MODEL').options()
    assert options[parameters['MODEL']].startswith(dialog.model().model_id + ' ')
    dialog.mode_buttons[BOUNDED].setChecked(True)
    dialog.max_error_spin.setValue(12)
    assert not dialog.quality_spin.isEnabled() and dialog.max_error_spin.isEnabled()
    assert _parameters(dialog.request())[0]['MAX_ERROR'] == 12
    assert dialog.output_path().endswith(f'_{dialog.model().model_id}_e12.ehc')
    assert 'within 12 DN' in dialog.expected_label.text()
    dialog.mode_buttons[LOSSLESS].setChecked(True)
    assert _parameters(dialog.request())[0]['MAX_ERROR'] == 0
    assert dialog.output_path().endswith('_lossless.ehc') and not dialog.code_all_check.isEnabled()
    dialog.mode_buttons[LOSSY].setChecked(True)
    dialog.compress_radio.setChecked(True)
    dialog.code_all_check.setChecked(True)
    assert _parameters(dialog.request())[0]['CODE_ALL_BANDS'] is True
    dialog.evaluate_radio.setChecked(True)  # evaluate codes what compress would (0.7.2 had no such parameter)
    assert dialog.code_all_check.isEnabled() and _parameters(dialog.request())[0]['CODE_ALL_BANDS'] is True


def test_an_error_bounded_run_keeps_every_sample_within_the_bound(dialog, scene, tmp_path):
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import decompress
    from enmap_compress.plugin.gui.dialog import BOUNDED

    dialog.mode_buttons[BOUNDED].setChecked(True)
    dialog.max_error_spin.setValue(7)
    dialog.compress_radio.setChecked(True)
    dialog.output_widget.setFilePath(str(tmp_path / 'bounded.ehc'))
    job = dialog.start()
    assert job is not None, dialog.status_label.text()
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
    assert job.outcome.ok, job.outcome.message
    decompress(str(tmp_path / 'bounded.ehc'), str(tmp_path / 'back.tif'), 'cpu')
    source = gdal.Open(scene)  # kept referenced while its band is used
    original, back = source.ReadAsArray(), gdal.Open(str(tmp_path / 'back.tif')).ReadAsArray()
    nodata = source.GetRasterBand(1).GetNoDataValue()
    coded = (original != nodata) & (back != nodata)
    assert coded.sum() > 0.5 * original.size
    assert np.abs(original[coded].astype(int) - back[coded].astype(int)).max() <= 7


def test_choices_are_remembered_between_openings(plugin, scene_layer):
    from enmap_compress.plugin.gui.dialog import BOUNDED

    first = plugin.open_dialog(scene_layer)
    models = [first.model_combo.itemData(i) for i in range(first.model_combo.count())]
    first.model_combo.setCurrentIndex(len(models) - 1)
    first.mode_buttons[BOUNDED].setChecked(True)
    first.max_error_spin.setValue(23)
    first.quality_spin.setValue(9)
    first.compress_radio.setChecked(True)
    first.device_combo.setCurrentIndex(1)
    first.close()
    second = plugin.open_dialog(scene_layer)
    assert second.model().model_id == models[-1]
    assert second.mode() == BOUNDED and second.max_error_spin.value() == 23 and second.quality() == 9
    assert second.compress_radio.isChecked() and second.device_combo.currentData() == 'cpu'
    second.close()


def test_the_form_scrolls_on_a_768_pixel_high_screen(dialog):
    dialog.show()
    dialog.resize(660, 640)  # what is left of 768 px under a title bar and a taskbar
    QApplication.processEvents()
    assert dialog.minimumSizeHint().height() <= 640
    assert dialog.height() <= 640
    assert dialog.scroll.verticalScrollBar().maximum() > 0, 'the form is taller than the window: it must scroll'
    assert dialog.scroll.widget().width() <= dialog.scroll.viewport().width(), 'no sideways scrolling'
    assert dialog.card_table.geometry().right() <= dialog.scroll.viewport().width()
    dialog.scroll.ensureWidgetVisible(dialog.compress_radio)
    QApplication.processEvents()
    top_left = dialog.compress_radio.mapTo(dialog.scroll.viewport(), QPoint(0, 0))
    assert 0 <= top_left.y() <= dialog.scroll.viewport().height()
    assert dialog.run_button.isVisible(), 'Run stays outside the scrolled part'


def test_models_far_behind_get_a_plain_warning(dialog):
    from enmap_compress.plugin.core.cards import CardRow
    from enmap_compress.plugin.gui.modelcards import ModelInfo, far_behind_warning

    reference = ModelInfo('pca', 'pca', '', tuple(CardRow(q, 0.1 * q, 40 + 2 * q) for q in range(1, 11)), '')
    close = ModelInfo('good', 'good', '', tuple(CardRow(q, 0.1 * q, 39 + 2 * q) for q in range(1, 11)), '')
    behind = ModelInfo('seed', 'seed', '', tuple(CardRow(q, 0.1 * q, 28 + 2 * q) for q in range(1, 11)), '')
    assert far_behind_warning(close, [reference, close]) == ''
    text = far_behind_warning(behind, [reference, behind])
    assert 'about 4 times the error' in text and '12 dB lower PSNR' in text
    for jargon in ('bpppb', 'epoch', 'latent', 'QAT', 'seed'):
        assert jargon not in text
    seeds = [i for i, m in enumerate(dialog.models) if far_behind_warning(m, dialog.models)]
    for index, model in enumerate(dialog.models):
        dialog.model_combo.setCurrentIndex(index)
        assert dialog.behind_label.isVisibleTo(dialog) == (index in seeds), model.model_id
    if any(m.model_id in ('cae1d', 'hycot') for m in dialog.models):
        assert seeds, 'the bundled seed models are far behind pca'


def test_a_click_on_a_table_row_selects_it_and_its_quality(dialog):
    from enmap_compress.plugin.gui.dialog import BOUNDED

    model = dialog.model()
    if len(model.rows) < 3:
        pytest.skip('the model card has no rate table')
    dialog.show()
    dialog.mode_buttons[BOUNDED].setChecked(True)
    QApplication.processEvents()
    table = dialog.card_table
    table.scrollToItem(table.item(2, 0))
    QApplication.processEvents()
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier, table.visualItemRect(table.item(2, 1)).center())
    assert [index.row() for index in table.selectionModel().selectedRows()] == [2]
    assert dialog.quality() == model.rows[2].level and dialog.mode() == 'lossy'
    QTest.keyClick(table, Qt.Key_Down)
    assert dialog.quality() == model.rows[3].level
    assert [index.row() for index in table.selectionModel().selectedRows()] == [3]


def test_the_size_estimate_counts_only_valid_pixels_of_a_product_zip(plugin, tmp_path):
    from enmap_compress.plugin.core.enmap import open_spectral
    from enmap_compress.plugin.core.tiling import valid_pixels
    from tools import synthetic

    product = synthetic.write_product(str(tmp_path / 'product'), width=60, height=50, seed=3, make_zip=True)
    member = os.path.relpath(product.image, os.path.dirname(product.folder)).replace(os.sep, '/')
    layer = QgsRasterLayer(f'/vsizip/{product.zip}/{member}', 'product', 'gdal')
    QgsProject.instance().addMapLayer(layer)
    try:
        with open_spectral(product.zip) as raster:
            cube = raster.read_canonical(0, 0, raster.width, raster.height)
            exact = int(valid_pixels(cube, raster.nodata, ~raster.canonical_dead_bands).sum())
        assert exact < 0.9 * 60 * 50, 'the synthetic product has a nodata border'
        opened = plugin.open_dialog(layer)
        assert opened.counting() and 'counting' in opened.size_label.text(), 'the main thread never waits for it'
        assert wait_for(lambda: not opened.counting(), 60)
        assert opened.input_summary().valid_pixels == exact
        assert f'{exact:,} valid pixels' in opened.size_label.text()
        opened.close()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_an_input_that_cannot_be_compressed_is_flagged_before_run(plugin, tmp_path):
    from osgeo import gdal

    path = str(tmp_path / 'rgb.tif')
    dataset = gdal.GetDriverByName('GTiff').Create(path, 20, 10, 3, gdal.GDT_Byte)
    dataset.GetRasterBand(1).Fill(100)
    dataset = None
    layer = QgsRasterLayer(path, 'rgb', 'gdal')
    QgsProject.instance().addMapLayer(layer)
    try:
        opened = plugin.open_dialog(layer)
        assert opened.input_problem.isVisibleTo(opened) and '3 bands' in opened.input_problem.text()
        assert not opened.run_button.isEnabled() and 'cannot be compressed' in opened.run_button.toolTip()
        assert opened.start() is None
        opened.close()
    finally:
        QgsProject.instance().removeAllMapLayers()


def _answer(text):
    """Click the button labelled `text` in the message box that is about to open."""
    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            next(b for b in box.buttons() if b.text().replace('&', '') == text).click()
        else:
            QTimer.singleShot(20, click)
    QTimer.singleShot(20, click)


def test_existing_outputs_are_not_overwritten_without_asking(dialog, tmp_path):
    output = tmp_path / 'kept.ehc'
    output.write_bytes(b'precious')
    dialog.compress_radio.setChecked(True)
    dialog.output_widget.setFilePath(str(output))
    _answer('Cancel')
    assert dialog.start() is None and output.read_bytes() == b'precious'
    assert 'kept' in dialog.status_label.text()
    _answer('Keep both (new names)')
    job = dialog.start()
    assert job is not None and job.request.output == str(tmp_path / 'kept_2.ehc')
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S) and job.outcome.ok, job.outcome.message
    assert output.read_bytes() == b'precious' and (tmp_path / 'kept_2.ehc').stat().st_size > 100
    dialog.output_widget.setFilePath(str(output))
    _answer('Replace')
    job = dialog.start()
    assert job is not None and job.request.output == str(output)
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S) and job.outcome.ok
    assert output.read_bytes() != b'precious'


def test_a_cancelled_run_s_bar_keeps_its_value_and_says_cancelled(plugin, wide_scene, tmp_path):
    """The bar stays where the run stopped and reads 'Cancelled at N%' (it used to drop to 0 %); the next run
    starts from 0 % with the plain format."""
    layer = styled_layer(wide_scene, 'wide')
    opened = plugin.open_dialog(layer)
    try:
        opened.device_combo.setCurrentIndex(1)
        opened.output_widget.setFilePath(str(tmp_path / 'bar.ehc'))
        job = opened.start()
        assert wait_for(lambda: opened.progress.value() > 0 or job.outcome is not None, TIMEOUT_S)
        opened.cancel_button.click()
        reached = opened.progress.value()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        if job.outcome.ok:
            pytest.skip('the run finished before Cancel reached it')
        assert job.outcome.cancelled
        assert opened.progress.value() >= reached > 0, 'a cancelled run keeps the bar where it stopped'
        assert opened.progress.text() == f'Cancelled at {opened.progress.value()}%'
        opened.output_widget.setFilePath(str(tmp_path / 'bar2.ehc'))
        job = opened.start()
        assert opened.progress.text() in ('0%', f'{opened.progress.value()}%')
        job.cancel()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
    finally:
        opened.close()


class _CancelFromTaskManager:
    """Replaces CompressJob: at the first tile, cancels the task the way QGIS's task manager does (task.cancel(),
    which does not cancel a feedback the task does not own)."""

    def __init__(self, job_class):
        self.job_class = job_class

    def __call__(self, request):
        job = self.job_class(request)
        job.feedback.progressChanged.connect(lambda p: job.task.cancel() if p > 0 else None, Qt.DirectConnection)
        return job


def test_cancel_is_disabled_while_cancelling_and_reported_as_cancelled(plugin, wide_scene, message_bar, tmp_path,
                                                                       monkeypatch):
    from enmap_compress.plugin.gui import dialog as dialog_module

    layer = styled_layer(wide_scene, 'wide')
    try:
        opened = plugin.open_dialog(layer)
        opened.device_combo.setCurrentIndex(1)
        opened.output_widget.setFilePath(str(tmp_path / 'w.ehc'))
        job = opened.start()
        opened.cancel_button.click()
        assert not opened.cancel_button.isEnabled()
        assert opened.status_label.text() in ('Cancelling…', 'Cancelled; nothing was written.')
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        if not job.outcome.ok:
            assert job.outcome.cancelled and 'Cancelled' in opened.status_label.text()
        monkeypatch.setattr(dialog_module, 'CompressJob', _CancelFromTaskManager(dialog_module.CompressJob))
        opened.output_widget.setFilePath(str(tmp_path / 'w2.ehc'))
        job = opened.start()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        assert job.outcome.cancelled and not job.outcome.ok, job.outcome.message
        assert 'failed' not in job.outcome.message.lower()
        assert [item.text() for item in message_bar.items()][-1].endswith('cancelled; nothing was written or added.')
        assert not os.path.exists(tmp_path / 'w2.ehc') and not opened.cancel_button.isEnabled()
        assert opened.run_button.isEnabled()
        opened.close()
    finally:
        QgsProject.instance().removeAllMapLayers()


def _decoded_against(scene, ehc):
    """The scene, the decoded .ehc beside it (float DN) and where both have data (most of the scene)."""
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import decompress

    back_path = str(ehc.with_suffix('.back.tif'))
    decompress(str(ehc), back_path, 'cpu')
    source = gdal.Open(scene)
    original = source.ReadAsArray().astype(float)
    back = gdal.Open(back_path).ReadAsArray().astype(float)
    nodata = source.GetRasterBand(1).GetNoDataValue()
    coded = (original != nodata) & (back != nodata)
    assert coded.sum() > 0.5 * original.size
    return original, back, coded


def test_a_relative_bound_keeps_every_sample_within_its_share_of_the_value(dialog, scene, tmp_path):
    from enmap_compress.plugin.gui.dialog import BOUNDED

    dialog.mode_buttons[BOUNDED].setChecked(True)
    dialog.bound_kind.setCurrentIndex(dialog.bound_kind.findData('relative'))
    dialog.relative_spin.setValue(2.0)
    dialog.max_error_spin.setValue(5)
    assert dialog.relative_spin.isVisibleTo(dialog) and '2 % of its value (at least 5 DN)' in \
        dialog.expected_label.text()
    assert dialog.output_path().endswith('_r2pct.ehc')
    parameters, _algorithm = _parameters(dialog.request())
    assert parameters['RELATIVE_ERROR'] == 0.02 and parameters['RELATIVE_FLOOR'] == 5 and 'MAX_ERROR' not in parameters
    dialog.compress_radio.setChecked(True)
    dialog.output_widget.setFilePath(str(tmp_path / 'relative.ehc'))
    job = dialog.start()
    assert job is not None and wait_for(lambda: job.outcome is not None, TIMEOUT_S) and job.outcome.ok, \
        job.outcome.message if job else dialog.status_label.text()
    original, back, coded = _decoded_against(scene, tmp_path / 'relative.ehc')
    allowed = np.maximum(0.02 * np.abs(original[coded]), 5)
    assert (np.abs(back[coded] - original[coded]) <= allowed + 1e-9).all()


def _per_band(dialog, text):
    from enmap_compress.plugin.gui.dialog import BOUNDED

    dialog.mode_buttons[BOUNDED].setChecked(True)
    dialog.bound_kind.setCurrentIndex(dialog.bound_kind.findData('per_band'))
    dialog.band_limits_widget.setFilePath(text)


def test_per_band_limits_are_checked_before_run_with_one_message(dialog):
    _per_band(dialog, '')
    assert dialog.band_limits_widget.isVisibleTo(dialog) and not dialog.max_error_spin.isVisibleTo(dialog)
    assert not dialog.run_button.isEnabled() and 'Give the per-band limits' in dialog.run_button.toolTip()
    _per_band(dialog, '10, 10, 10')
    problem = dialog.band_limits_problem()
    assert problem.startswith('The per-band limits cannot be used: ') and '224' in problem, problem
    assert not dialog.run_button.isEnabled() and problem in dialog.expected_label.text()
    assert dialog.start() is None and problem in dialog.status_label.text()
    assert '\n' not in problem and 'Traceback' not in problem
    _per_band(dialog, ','.join(['12'] * 224))
    assert dialog.band_limits_problem() == '' and dialog.run_button.isEnabled()
    assert 'within the limit of its band' in dialog.expected_label.text()


def test_a_per_band_csv_changed_while_the_dialog_is_open_is_checked_again(dialog, tmp_path, monkeypatch):
    from enmap_compress.plugin.gui import dialog as dialog_module

    checks = []
    check = dialog_module.bounds.error_bound
    monkeypatch.setattr(dialog_module.bounds, 'error_bound', lambda **kw: checks.append(kw) or check(**kw))
    csv = tmp_path / 'limits.csv'
    csv.write_text('band,bound\n' + ''.join(f'{band},10\n' for band in range(1, 225)))
    _per_band(dialog, str(csv))
    assert dialog.band_limits_problem() == '' and dialog.run_button.isEnabled()
    count = len(checks)
    assert dialog.band_limits_problem() == '' and len(checks) == count  # unchanged: not read again
    csv.write_text('band,bound\n1,10\n')  # edited in place: one band left
    os.utime(csv, ns=(0, os.stat(csv).st_mtime_ns + 10 ** 9))
    problem = dialog.band_limits_problem()
    assert problem.startswith('The per-band limits cannot be used: ') and len(checks) == count + 1, problem
    assert dialog.start() is None and problem in dialog.status_label.text()


def test_per_band_limits_are_remembered_and_run_through_processing(plugin, scene_layer, scene, tmp_path):
    limits = [3 if band <= 100 else 40 for band in range(1, 225)]
    csv = tmp_path / 'limits.csv'
    csv.write_text('band,bound\n' + ''.join(f'{band},{limit}\n' for band, limit in enumerate(limits, 1)))
    first = plugin.open_dialog(scene_layer)
    first.device_combo.setCurrentIndex(1)
    _per_band(first, str(csv))
    first.close()
    dialog = plugin.open_dialog(scene_layer)
    try:
        assert dialog.bound_kind.currentData() == 'per_band' and dialog.band_max_errors() == str(csv)
        assert dialog.output_path().endswith('_perband.ehc')
        parameters, _algorithm = _parameters(dialog.request())
        assert parameters['BAND_MAX_ERRORS'] == str(csv) and 'MAX_ERROR' not in parameters
        dialog.compress_radio.setChecked(True)
        dialog.output_widget.setFilePath(str(tmp_path / 'perband.ehc'))
        job = dialog.start()
        assert job is not None and wait_for(lambda: job.outcome is not None, TIMEOUT_S) and job.outcome.ok, \
            job.outcome.message if job else dialog.status_label.text()
    finally:
        dialog.close()
    original, back, coded = _decoded_against(scene, tmp_path / 'perband.ehc')
    error = np.where(coded, np.abs(back - original), 0.0).reshape(224, -1).max(axis=1)
    assert (error <= np.array(limits)).all()
    assert error[:100].max() <= 3 < error[100:].max(), 'the per-band limits must be the ones that applied'
