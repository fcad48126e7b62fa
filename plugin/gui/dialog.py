"""The Compress dialog: pick a layer, a model (with its card), quality, device and output; see the expected
size; run compress or evaluate in the background with progress and Cancel."""
import functools
import os
import re

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from .. import dependencies
from ..core import cards
from ..core.runtime import default_model_id
from ..paths import resource_path
from . import devices, estimate, results
from .job import CompressJob, JobRequest
from .modelcards import CardViewer, installed_models, short_text

TABLE_COLUMNS = ('quality', 'bpppb', 'PSNR dB', 'SA °')


def _writable_folder(path):
    folder = os.path.dirname(os.path.abspath(path)) if path else ''
    return folder if folder and os.path.isdir(folder) and os.access(folder, os.W_OK) else os.path.expanduser('~')


def default_output(source, model_id, quality):
    base = os.path.splitext(os.path.basename(source or 'image'))[0] or 'image'
    return os.path.join(_writable_folder(source), f'{base}_{model_id}_q{quality}.ehc')


def input_path(layer):
    """What the core opens for a layer: its file, or for a product ZIP that QGIS reads in place (/vsizip/...) the
    ZIP itself, which also gives the core the product's METADATA.XML."""
    source = layer.source()
    match = re.match(r'^/vsizip/(.+?\.zip)(?=/|$)', source, re.IGNORECASE)
    return match.group(1) if match else source


def _cell(value, digits):
    return '' if value is None else f'{value:.{digits}f}'


class CompressDialog(QDialog):
    """Non-modal. Widgets are attributes so tests (and users' scripts) can drive the dialog. Closing it leaves a
    running job running: it shows in the task manager and still adds its layers."""

    def __init__(self, iface, layer=None, parent=None):
        super().__init__(parent or (iface.mainWindow() if iface is not None else None))
        self.iface = iface
        self.job = None
        self.models = installed_models()
        self._pixels = {}  # source -> estimate.valid_pixels(), read once per layer
        self._auto_output = True
        self._setting_output = False
        self.setObjectName('EnmapCompressDialog')
        self.setWindowTitle('EnMAP Compress')
        self.setWindowIcon(QIcon(resource_path('icon.svg')))
        self._build()
        self._connect()
        if layer is not None:
            self.layer_combo.setLayer(layer)
        self._refresh_all()

    # --- building ---------------------------------------------------------------------------------------------

    def _build(self):
        layout = QVBoxLayout(self)
        self.banner = QLabel()
        self.banner.setObjectName('dependencyBanner')
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.banner.setStyleSheet('background:#fde2e1;border:1px solid #d9534f;padding:6px;')
        layout.addWidget(self.banner)
        layout.addWidget(self._input_box())
        layout.addWidget(self._model_box())
        layout.addWidget(self._run_box())
        layout.addWidget(self._progress_row())
        layout.addWidget(self._buttons())
        self.resize(640, 860)

    def _input_box(self):
        box = QGroupBox('Input')
        form = QFormLayout(box)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setToolTip('An EnMAP L2A image loaded in QGIS (224 bands). It is read from its file, '
                                    'not through the map.')
        form.addRow('Raster layer', self.layer_combo)
        return box

    def _model_box(self):
        box = QGroupBox('Compressor')
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        for info in self.models:
            self.model_combo.addItem(info.title, info.model_id)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(default_model_id())))
        self.card_button = QPushButton('Model card…')
        self.card_button.setToolTip('The full model card: what the model is, its training data and validation.')
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.card_button)
        form.addRow('Model', row)
        self.card_label = QLabel()
        self.card_label.setWordWrap(True)
        self.card_label.setObjectName('modelCard')
        form.addRow(self.card_label)
        self.card_table = QTableWidget(0, len(TABLE_COLUMNS))
        self.card_table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.card_table.verticalHeader().setVisible(False)
        self.card_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.card_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.card_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.card_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.card_table.setMinimumHeight(170)
        self.card_table.setMaximumHeight(240)
        self.card_table.setToolTip('Measured on held-out EnMAP tiles (the model card). Click a row to choose it.')
        form.addRow(self.card_table)
        self.quality_slider = QSlider(Qt.Horizontal)
        self.quality_slider.setRange(1, 10)
        self.quality_slider.setValue(5)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 10)
        self.quality_spin.setValue(5)
        row = QHBoxLayout()
        row.addWidget(QLabel('smallest'))
        row.addWidget(self.quality_slider, 1)
        row.addWidget(QLabel('best'))
        row.addWidget(self.quality_spin)
        form.addRow('Quality', row)
        self.expected_label = QLabel()
        form.addRow('Expected', self.expected_label)
        return box

    def _run_box(self):
        box = QGroupBox('Run')
        form = QFormLayout(box)
        self.device_combo = QComboBox()
        for option in devices.device_options():
            self.device_combo.addItem(option.label, option.device)
            index = self.device_combo.count() - 1
            self.device_combo.setItemData(index, option.tooltip, Qt.ToolTipRole)
            if not option.enabled:
                self.device_combo.model().item(index).setEnabled(False)
        self.device_label = QLabel()
        self.device_label.setWordWrap(True)
        column = QVBoxLayout()
        column.addWidget(self.device_combo)
        column.addWidget(self.device_label)
        form.addRow('Device', column)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter('EnMAP Compress (*.ehc)')
        self.output_widget.setConfirmOverwrite(True)
        form.addRow('Output (.ehc)', self.output_widget)
        self.size_label = QLabel()
        self.size_label.setWordWrap(True)
        form.addRow('Estimated size', self.size_label)
        self.evaluate_radio = QRadioButton('Compress and evaluate: add the reconstruction and the error layer, '
                                           'write an HTML report')
        self.compress_radio = QRadioButton('Compress only')
        self.evaluate_radio.setChecked(True)
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.evaluate_radio)
        self.mode_group.addButton(self.compress_radio)
        modes = QVBoxLayout()
        modes.addWidget(self.evaluate_radio)
        modes.addWidget(self.compress_radio)
        form.addRow('Mode', modes)
        return box

    def _progress_row(self):
        box = QGroupBox()
        row = QHBoxLayout(box)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status_label = QLabel('Ready.')
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.progress, 1)
        row.addWidget(self.status_label, 2)
        return box

    def _buttons(self):
        self.button_box = QDialogButtonBox()
        self.run_button = QPushButton('Run')
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton('Cancel')
        self.cancel_button.setEnabled(False)
        self.button_box.addButton(self.run_button, QDialogButtonBox.ActionRole)
        self.button_box.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        self.close_button = self.button_box.addButton(QDialogButtonBox.Close)
        return self.button_box

    def _connect(self):
        self.layer_combo.layerChanged.connect(self._on_layer_changed)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.quality_slider.valueChanged.connect(self.quality_spin.setValue)
        self.quality_spin.valueChanged.connect(self.quality_slider.setValue)
        self.quality_spin.valueChanged.connect(self._on_quality_changed)
        self.card_table.cellClicked.connect(self._on_card_row_clicked)
        self.card_button.clicked.connect(self.show_card)
        self.device_combo.currentIndexChanged.connect(self._refresh_device)
        self.output_widget.fileChanged.connect(self._on_output_edited)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)

    # --- state --------------------------------------------------------------------------------------------------

    def layer(self):
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def model(self):
        index = self.model_combo.currentIndex()
        return self.models[index] if 0 <= index < len(self.models) else None

    def quality(self):
        return self.quality_spin.value()

    def expected(self):
        model = self.model()
        return cards.expected_for(model.rows, self.quality()) if model is not None else None

    def output_path(self):
        path = self.output_widget.filePath().strip()
        return path if not path or path.lower().endswith('.ehc') else path + '.ehc'

    def problems(self):
        """Why Run is not possible now ([] when it is)."""
        missing = dependencies.missing()
        found = [dependencies.message(missing)] if missing else []
        if not self.models:
            found.append('No compression model is installed (the plugin folder models/ is empty).')
        if self.layer() is None:
            found.append('Choose a raster layer.')
        if not self.output_path():
            found.append('Choose an output file.')
        return found

    # --- refreshing -------------------------------------------------------------------------------------------

    def _refresh_all(self):
        self._on_model_changed()
        self._on_layer_changed()
        self._refresh_device()
        self._refresh_banner()

    def _refresh_banner(self):
        missing = dependencies.missing()
        text = dependencies.message(missing) if missing else ''
        if not self.models:
            text = (text + '\n' if text else '') + 'No compression model is installed.'
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self._refresh_run_button()

    def _refresh_run_button(self):
        running = self.job is not None and self.job.is_running()
        problems = self.problems()
        self.run_button.setEnabled(not running and not problems)
        self.run_button.setToolTip('\n'.join(problems))

    def _on_layer_changed(self, *_):
        self._refresh_output()
        self._refresh_size()
        self._refresh_run_button()

    def _on_model_changed(self, *_):
        model = self.model()
        self.card_label.setText(short_text(model.summary) if model else 'No model installed.')
        self.card_label.setToolTip(model.summary if model else '')
        self.card_button.setEnabled(model is not None)
        self.card_table.setRowCount(len(model.rows) if model else 0)
        for row, entry in enumerate(model.rows if model else ()):
            values = (str(entry.level), _cell(entry.bpppb, 3), _cell(entry.psnr, 2), _cell(entry.sa_deg, 3))
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter)
                self.card_table.setItem(row, column, item)
        self._on_quality_changed()

    def _on_quality_changed(self, *_):
        expected = self.expected()
        if expected is None:
            self.expected_label.setText('no measurements in this model\'s card')
        else:
            psnr = f', PSNR ≈ {expected.psnr:.1f} dB' if expected.psnr is not None else ''
            self.expected_label.setText(f'≈ {expected.bpppb:.3f} bpppb{psnr} (model card, held-out tiles)')
        self._select_card_row()
        self._refresh_output()
        self._refresh_size()

    def _select_card_row(self):
        model = self.model()
        levels = [row.level for row in model.rows] if model else []
        if self.quality() in levels:
            row = levels.index(self.quality())
            self.card_table.selectRow(row)
            self.card_table.scrollToItem(self.card_table.item(row, 0), QAbstractItemView.PositionAtCenter)
        else:
            self.card_table.clearSelection()

    def show_card(self):
        """The whole card (Markdown) in a small window."""
        model = self.model()
        if model is None:
            return None
        viewer = CardViewer(model, self)
        viewer.show()
        return viewer

    def _on_card_row_clicked(self, row, _column):
        model = self.model()
        if model and 0 <= row < len(model.rows):
            self.quality_spin.setValue(model.rows[row].level)

    def _refresh_device(self, *_):
        option = devices.device_options()[max(0, self.device_combo.currentIndex())]
        self.device_label.setText(option.tooltip)

    def _refresh_output(self):
        layer, model = self.layer(), self.model()
        if not self._auto_output or layer is None:
            return
        self._setting_output = True
        self.output_widget.setFilePath(default_output(input_path(layer), model.model_id if model else 'model',
                                                      self.quality()))
        self._setting_output = False

    def _on_output_edited(self, *_):
        if not self._setting_output:
            self._auto_output = False
        self._refresh_run_button()

    def _refresh_size(self):
        layer, expected = self.layer(), self.expected()
        if layer is not None and layer.source() not in self._pixels:
            self._pixels[layer.source()] = estimate.valid_pixels(layer.source())
        pixels = self._pixels.get(layer.source()) if layer is not None else None
        found = estimate.from_pixels(pixels, expected.bpppb if expected else None) if pixels else None
        if found is None:
            self.size_label.setText('unknown (choose a raster layer)')
            return
        original = estimate.human_bytes(found.original_bytes)
        if found.compressed_bytes is None:
            self.size_label.setText(f'unknown rate; {found.valid_pixels:,} valid pixels ({original} as int16)')
            return
        self.size_label.setText(
            f'≈ {estimate.human_bytes(found.compressed_bytes)}: {found.valid_pixels:,} valid pixels × 202 bands × '
            f'{expected.bpppb:.3f} bpppb ÷ 8 (the 202 bands as int16: {original})')

    # --- running ----------------------------------------------------------------------------------------------

    def request(self):
        layer, model = self.layer(), self.model()
        return JobRequest(source=input_path(layer), layer_id=layer.id(), layer_name=layer.name(),
                          model_index=self.model_combo.currentIndex(), model_id=model.model_id,
                          quality=self.quality(), device_index=max(0, self.device_combo.currentIndex()),
                          output=self.output_path(), evaluate=self.evaluate_radio.isChecked())

    def start(self):
        """Launch the run in the background (returns the job, or None when something is missing)."""
        problems = self.problems()
        if problems or (self.job is not None and self.job.is_running()):
            self.status_label.setText('\n'.join(problems))
            return None
        request = self.request()
        self.job = CompressJob(request)
        self.job.progressChanged.connect(self._on_progress)
        self.job.finished.connect(functools.partial(results.present, self.iface, request))
        self.job.finished.connect(self._on_finished)
        try:
            self.job.start()
        except RuntimeError as exc:
            self.status_label.setText(str(exc))
            return None
        self._set_running(True)
        self.status_label.setText('Evaluating…' if request.evaluate else 'Compressing…')
        return self.job

    def cancel(self):
        if self.job is not None and self.job.is_running():
            self.status_label.setText('Cancelling after the current tile…')
            self.job.cancel()

    def _set_running(self, running):
        for widget in (self.layer_combo, self.model_combo, self.card_table, self.quality_slider,
                       self.quality_spin, self.device_combo, self.output_widget, self.evaluate_radio,
                       self.compress_radio):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setValue(0)
        self._refresh_run_button()

    def _on_progress(self, percent):
        self.progress.setValue(int(percent))

    def _on_finished(self, outcome):
        self._set_running(False)
        if outcome.ok:
            self.progress.setValue(100)
            self.status_label.setText('Done. ' + results.summary(self.job.request, outcome.results))
        else:
            self.status_label.setText(outcome.message)
