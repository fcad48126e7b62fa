"""What using the plugin in the real QGIS window showed, checked headless: a cancelled run's bar keeps where it
stopped, the reconstruction of a product that declares no nodata comes in true colour (not QGIS's washed-out
default), the dialog fits a small screen, a read-only output folder is said before Run, results of a run whose
project was closed stay out of the next project, the spectrum inspector never pairs a layer with itself, text stays
readable in a dark theme, and Enter runs the dialog."""
import os

import pytest
from gui_helpers import styled_layer, wait_for
from qgis.core import (
    QgsApplication,
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsTask,
)
from qgis.PyQt.QtCore import QRect, Qt
from qgis.PyQt.QtGui import QGuiApplication

TIMEOUT_S = 90

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def _dialog_for(plugin, layer, output, evaluate=True):
    dialog = plugin.open_dialog(layer)
    dialog.output_widget.setFilePath(output)
    dialog.device_combo.setCurrentIndex(1)
    (dialog.evaluate_radio if evaluate else dialog.compress_radio).setChecked(True)
    return dialog


# --- progress after a cancel --------------------------------------------------------------------------------------

def test_a_cancelled_run_keeps_the_progress_where_it_stopped(plugin, wide_scene, tmp_path, monkeypatch):
    """A cancelled run ends Complete for QGIS (no "Task failed"), and QgsTask then reports 100 %: the bar read
    "Cancelled at 100%" for a run cancelled at 23 %."""
    from enmap_compress.plugin.gui import dialog as dialog_module

    job_class = dialog_module.CompressJob

    def cancelling_job(request):
        job = job_class(request)
        job.feedback.progressChanged.connect(lambda p: p > 0 and job.feedback.cancel(), Qt.DirectConnection)
        return job

    monkeypatch.setattr(dialog_module, 'CompressJob', cancelling_job)
    layer = styled_layer(wide_scene, 'wide')
    ended = []
    manager = QgsApplication.taskManager()

    def record(task_id, status):
        if status in (QgsTask.Complete, QgsTask.Terminated):
            ended.append(manager.task(task_id))

    manager.statusChanged.connect(record)
    try:
        dialog = _dialog_for(plugin, layer, str(tmp_path / 'wide.ehc'), evaluate=False)
        job = dialog.start()
        assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
        if job.outcome.ok:
            pytest.skip('the run finished before the cancel reached it')
        assert wait_for(lambda: job.task in ended, 10), 'the task manager announces the end'
        wait_for(lambda: False, 0.3)  # and whatever QGIS queues after it
        assert dialog.progress.value() < 100, dialog.progress.text()
        assert dialog.progress.text().startswith('Cancelled at') and '100' not in dialog.progress.text()
        dialog.close()
    finally:
        manager.statusChanged.disconnect(record)
        QgsProject.instance().removeAllMapLayers()


# --- the reconstruction's style -----------------------------------------------------------------------------------

def _qgis_default_style_of_a_product(layer):
    """What QGIS gives DLR's SPECTRAL_IMAGE.TIF (no nodata declared): bands 1, 2, 3 stretched from -32768."""
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, setter in zip((1, 2, 3), setters):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(-32768.0)
        enhancement.setMaximumValue(1118.0)
        setter(enhancement)
    return renderer


def test_a_default_styled_product_gets_a_true_colour_reconstruction(scene, installed_model, tmp_path, qgis_app):
    from enmap_compress.plugin.core.evaluate import evaluate
    from enmap_compress.plugin.processing import styling

    evaluate(scene, str(tmp_path / 'rec.tif'), installed_model, 4, 'cpu', error=str(tmp_path / 'err.tif'))
    template = QgsRasterLayer(scene, 'input', 'gdal')
    reconstruction = QgsRasterLayer(str(tmp_path / 'rec.tif'), 'rec', 'gdal')
    template.setRenderer(_qgis_default_style_of_a_product(template))
    styling.style_like(reconstruction, template)
    renderer = reconstruction.renderer()
    bands = (renderer.redBand(), renderer.greenBand(), renderer.blueBand())
    assert bands == styling.true_colour_bands(reconstruction) != (1, 2, 3)
    assert renderer.redContrastEnhancement().minimumValue() > -32768

    user = styled_layer(scene, 'styled by the user')  # a stretch the user chose is still copied
    try:
        styling.style_like(reconstruction, user)
        renderer = reconstruction.renderer()
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (48, 30, 16)
    finally:
        QgsProject.instance().removeAllMapLayers()


# --- the dialog on a small screen, and a read-only output folder --------------------------------------------------

def test_the_dialog_fits_a_small_screen():
    from enmap_compress.plugin.gui.dialog import DIALOG_SIZE, fitted_size

    assert fitted_size(QRect(0, 0, 1920, 1080)) == DIALOG_SIZE
    width, height = fitted_size(QRect(0, 0, 1024, 700))
    assert width <= 1024 and height <= 700 - 40, 'room for the title bar: Run and Close stay on the screen'
    assert fitted_size(None) == DIALOG_SIZE


def test_the_dialog_opens_inside_the_screen(plugin, scene_layer):
    dialog = plugin.open_dialog(scene_layer)
    available = QGuiApplication.primaryScreen().availableGeometry()
    assert dialog.height() <= max(available.height(), 360) and dialog.width() <= max(available.width(), 420)
    dialog.close()


def test_a_read_only_output_folder_is_said_before_run(plugin, scene_layer, tmp_path, monkeypatch):
    from enmap_compress.plugin.gui import dialog as dialog_module

    folder = tmp_path / 'read_only'
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(dialog_module.os, 'access',  # (chmod does not stop root, who runs some test machines)
                        lambda path, mode: False if os.path.abspath(path) == str(folder) else real_access(path, mode))
    dialog = _dialog_for(plugin, scene_layer, str(folder / 'x.ehc'))
    assert not dialog.run_button.isEnabled()
    assert 'Cannot write to the folder' in dialog.run_button.toolTip()
    assert not dialog.output_problem.isHidden() and str(folder) in dialog.output_problem.text()
    assert dialog.start() is None
    dialog.output_widget.setFilePath(str(tmp_path / 'x.ehc'))
    assert dialog.run_button.isEnabled() and dialog.output_problem.isHidden()
    dialog.output_widget.setFilePath(str(tmp_path / 'not_yet' / 'x.ehc'))  # the run creates it
    assert dialog.run_button.isEnabled()
    dialog.output_widget.setFilePath(str(folder))  # a folder typed as the output: 0.7.2 wrote read_only.ehc beside it
    assert not dialog.run_button.isEnabled() and 'is a folder: name the .ehc file in it' in dialog.output_problem.text()
    dialog.close()


# --- a run that outlives its project ------------------------------------------------------------------------------

def test_results_of_a_run_whose_project_was_closed_stay_out_of_the_next_project(plugin, scene_layer, message_bar,
                                                                                 tmp_path):
    dialog = _dialog_for(plugin, scene_layer, str(tmp_path / 'scene.ehc'))
    job = dialog.start()
    dialog.close()
    QgsProject.instance().clear()  # File > New project, or opening another one, while the run goes on
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S)
    assert job.outcome.ok, job.outcome.message
    assert QgsProject.instance().mapLayers() == {}, 'the layers of a closed project must not land in the new one'
    assert QgsProject.instance().layerTreeRoot().children() == []
    texts = [item.text() for item in message_bar.items()]
    assert any('PSNR' in text and 'not added' in text for text in texts), texts
    assert (tmp_path / 'scene.ehc').is_file() and (tmp_path / 'scene_report.html').is_file()


# --- the spectrum inspector ---------------------------------------------------------------------------------------

def test_the_inspector_never_compares_a_layer_with_itself(plugin, scene, qgis_app):
    from qgis.core import QgsPointXY

    from enmap_compress.plugin.gui.spectrum import SpectrumDock

    layer = QgsRasterLayer(scene, 'only layer', 'gdal')
    layer.setCustomProperty('enmapcompress/role', 'decoded')  # an opened .ehc, alone in the project
    QgsProject.instance().addMapLayer(layer)
    try:
        dock = SpectrumDock(QgsProject.instance())
        assert dock.reconstructed_combo.currentLayer() is layer
        assert dock.original_combo.currentLayer() is not layer
        dock.original_combo.setLayer(layer)
        centre = layer.extent().center()
        assert dock.inspect(QgsPointXY(centre.x(), centre.y()), layer.crs()) is None
        assert 'pick two different layers' in dock.info_label.text()
        assert dock.plot.wavelengths == [], 'no plot of a layer against itself'
        dock.deleteLater()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_a_click_outside_clears_the_previous_spectra(plugin, scene, qgis_app):
    from qgis.core import QgsPointXY

    from enmap_compress.plugin.gui.spectrum import SpectrumDock

    original = QgsRasterLayer(scene, 'original', 'gdal')
    other = QgsRasterLayer(scene, 'other', 'gdal')
    QgsProject.instance().addMapLayers([original, other])
    try:
        dock = SpectrumDock(QgsProject.instance())
        dock.original_combo.setLayer(original)
        dock.reconstructed_combo.setLayer(other)
        centre = original.extent().center()
        assert dock.inspect(QgsPointXY(centre.x(), centre.y()), original.crs()) is not None
        assert dock.plot.wavelengths
        dock.plot.resize(400, 320)
        assert not dock.plot.grab().isNull()  # paints with its legend and the rotated unit
        extent = original.extent()
        assert dock.inspect(QgsPointXY(extent.xMinimum() - 1000, extent.yMaximum() + 1000), original.crs()) is None
        assert dock.info_label.text() == 'That point lies outside the layers.'
        assert dock.plot.wavelengths == [], 'the plot no longer shows the previous pixel'
        dock.deleteLater()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_the_replace_question_names_each_folder_once():
    from enmap_compress.plugin.gui.dialog import existing_files_text

    folder = os.path.join(os.sep, 'data', 'ENMAP01-____L2A-DT0000999999_001')
    text = existing_files_text([os.path.join(folder, name) for name in ('a.ehc', 'a_reconstructed.tif')])
    assert text.count(folder) == 1 and 'a.ehc' in text and 'a_reconstructed.tif' in text


def test_a_lossless_evaluation_says_bit_exact_not_psnr_inf():
    from enmap_compress.plugin.gui.job import JobRequest
    from enmap_compress.plugin.gui.results import summary

    request = JobRequest(source='/data/scene.tif', layer_id='', layer_name='scene', model_id='pca', quality=5,
                         device_index=1, output='/data/scene.ehc', max_error=0)
    text = summary(request, {'PSNR': float('inf'), 'BPPPB': 6.392, 'COMPRESSION_RATIO': 2.5, 'SA': 0.0,
                             'MAX_ABS_ERROR': 0.0})
    assert text.startswith('bit-exact (lossless) at 6.3920 bpppb') and 'inf' not in text, text
    assert summary(request, {'PSNR': 49.27, 'BPPPB': 0.22, 'COMPRESSION_RATIO': 71.6, 'SA': 0.9,
                             'MAX_ABS_ERROR': 193.0}).startswith('PSNR 49.27 dB')


# --- a dark theme and the keyboard -----------------------------------------------------------------------------------

DARK_THEME = 'QWidget { color: #aaaaaa; background-color: #323232; }'  # what QGIS's Night Mapping theme sets


def _luminance(colour):
    def channel(value):
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(colour.red()) + 0.7152 * channel(colour.green()) + 0.0722 * channel(colour.blue())


def text_contrast(widget):
    """Contrast ratio of the text a widget paints against its background (the commonest colour in it)."""
    from collections import Counter

    from qgis.PyQt.QtGui import QColor

    image = widget.grab().toImage()
    colours = Counter(image.pixel(x, y) for x in range(0, image.width(), 2) for y in range(image.height()))
    background = _luminance(QColor(colours.most_common(1)[0][0]))
    text = max((_luminance(QColor(pixel)) for pixel in colours), key=lambda value: abs(value - background))
    return (max(text, background) + 0.05) / (min(text, background) + 0.05)


@pytest.fixture
def dark_theme(qgis_app):
    qgis_app.setStyleSheet(DARK_THEME)
    yield
    qgis_app.setStyleSheet('')


def test_the_dialog_text_is_readable_in_a_dark_theme(dark_theme, plugin, scene_layer, tmp_path):
    """Notes were a fixed #555 and the card #222 on Night Mapping's #323232, and the light problem boxes kept the
    theme's light text."""
    dialog = plugin.open_dialog(scene_layer)
    try:
        dialog.output_widget.setFilePath(str(tmp_path))  # a folder: the output problem box shows
        notes = [dialog.card_label, dialog.code_all_note, dialog.output_problem,
                 *[label for label in dialog.findChildren(type(dialog.card_label))
                   if label.wordWrap() and label.text() and label.isVisibleTo(dialog)]]
        assert dialog.output_problem.isVisibleTo(dialog)
        low = {label.text()[:40]: round(text_contrast(label), 2) for label in notes if text_contrast(label) < 3}
        assert not low, low
    finally:
        dialog.close()


def test_the_spectrum_plot_text_is_dark_on_its_white_in_a_dark_theme(dark_theme, qgis_app):
    from enmap_compress.plugin.gui.spectrum import SpectrumPlot

    plot = SpectrumPlot()
    plot.resize(360, 300)
    assert text_contrast(plot) > 4.5, 'the placeholder "Click the map ..." was the theme\'s light grey on white'


def test_enter_in_the_form_runs(plugin, scene_layer):
    """Run was made the default before it was in the dialog, so on show QDialog made the first button in the focus
    chain (the hidden Install button) its default, and Enter did nothing."""
    from qgis.PyQt.QtTest import QTest

    dialog = plugin.open_dialog(scene_layer)
    try:
        dialog.run_button.clicked.disconnect(dialog.start)
        clicks = []
        dialog.run_button.clicked.connect(lambda: clicks.append('run'))
        for widget in (dialog.output_widget.lineEdit(), dialog.quality_spin):
            widget.setFocus()
            QTest.keyClick(widget, Qt.Key_Return)
        assert clicks == ['run', 'run'] and dialog.run_button.isDefault()
    finally:
        dialog.close()


def test_the_inspector_lists_get_the_whole_width(plugin, qgis_app):
    """Beside their labels both lists showed the same cut start of the names, which differ at their end."""
    from enmap_compress.plugin.gui.spectrum import SpectrumDock

    dock = SpectrumDock(QgsProject.instance())
    dock.resize(320, 600)
    dock.show()
    QgsApplication.processEvents()
    try:
        for combo in (dock.original_combo, dock.reconstructed_combo):
            assert combo.width() > dock.widget().width() - 40
    finally:
        dock.close()
        dock.deleteLater()


def test_after_a_run_enter_runs_again_instead_of_closing(plugin, scene_layer, qgis_app):
    """Run and Cancel are disabled in turn during a run, which moved the focus on to Close: Enter for a retry
    after an error closed the dialog."""
    from enmap_compress.plugin.gui.job import JobOutcome

    dialog = plugin.open_dialog(scene_layer)
    try:
        dialog.activateWindow()
        dialog.run_button.setFocus()
        assert wait_for(lambda: dialog.focusWidget() is dialog.run_button, 5)
        for running in (True, False):  # what start() and a finished job do to the buttons
            dialog.run_button.setEnabled(not running)
            dialog.cancel_button.setEnabled(running)
        assert dialog.focusWidget() is dialog.close_button
        dialog._on_finished(JobOutcome(False, False, message='The input x.tif does not exist.'))
        assert dialog.focusWidget() is dialog.run_button and dialog.isVisible()
    finally:
        dialog.close()
