"""The Compress dialog: pick a layer, a model (with its card), a mode (lossy quality, error-bounded or lossless),
device and output; see the expected size; run compress or evaluate in the background with progress and Cancel.

Choices are remembered between openings (QgsSettings) and the form scrolls, so it fits a 768 px high screen.
"""
import functools
import os

from qgis.core import QgsApplication, QgsMapLayerProxyModel, QgsRasterLayer, QgsSettings, QgsTask
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QGuiApplication, QIcon
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import dependencies
from ..core import bounds, cards, preview
from ..core.enmap import product_source
from ..core.errors import EnmapCompressError
from ..core.runtime import default_model_id
from ..paths import resource_path
from . import devices, estimate, installer, results
from .job import COMPRESS_ID, EVALUATE_ID, CompressJob, JobRequest, has_parameter
from .modelcards import CardViewer, far_behind_warning, installed_models, short_text

TABLE_COLUMNS = ('quality', 'bpppb', 'PSNR dB', 'SA °')
SETTINGS_GROUP = 'enmapcompress/dialog'
LOSSY, BOUNDED, LOSSLESS = 'lossy', 'bounded', 'lossless'
MODE_TEXT = {
    LOSSY: ('Lossy (quality 1–10)', 'The smallest files, for viewing, classification and most analysis; errors are '
                                   'small on average but not bounded per sample.'),
    BOUNDED: ('Error-bounded', 'Every valid sample comes back within the bound you set (checked before the file is '
                               'written); for methods that need a hard tolerance. 10–25 DN is below EnMAP\'s noise '
                               'in most bands.'),
    LOSSLESS: ('Lossless', 'Bit for bit, all 224 bands; for archiving. Files are several times larger than '
                           'lossy ones.'),
}
CODE_ALL_TEXT = ('Code all bands: also keep the 22 water-vapour bands (coarsely, a larger file) instead of '
                 'returning them as nodata; for users of the absorption bands.')
PER_BAND_TEXT = ('A limit for each of the 224 bands, for bands you need more exactly than others: a CSV file with '
                 'rows "band,bound" (band number 1-224, one row per band) or 224 numbers in band order separated by '
                 'commas. Every band is then coded.')
EVALUATE_TEXT = 'Adds the reconstruction and the error layer to the map and writes an HTML report.'
# (dark text: the boxes are light in a dark theme too, where the theme's light text was unreadable on them)
WARNING_STYLE = 'background:#fff3cd;color:#1a1a1a;border:1px solid #e0a800;padding:6px;'
PROBLEM_STYLE = 'background:#fde2e1;color:#1a1a1a;border:1px solid #d9534f;padding:6px;'
NOTE_WEIGHT = 0.75  # a note's text colour: this far from the background towards the theme's text colour
PROGRESS_FORMAT = '%p%'
CANCELLED_FORMAT = 'Cancelled at %p%'  # the bar keeps the value it had when the run stopped
FAILED_FORMAT = 'Failed at %p%'
DIALOG_SIZE = (660, 720)  # the most it opens at; smaller on a smaller screen (fitted_size); the form scrolls
MIN_DIALOG_SIZE = (420, 360)
FRAME_PX = (16, 48)  # a window frame and title bar around the dialog


def fitted_size(available):
    """DIALOG_SIZE, made smaller to fit `available` (a QRect: the screen less taskbars) with room for the window
    frame and title bar: on a 1024 x 700 screen a 720 px dialog had its Run and Close buttons off the screen. The
    form scrolls, so a shorter dialog loses nothing."""
    width, height = DIALOG_SIZE
    if available is None or available.isEmpty():
        return width, height
    return (max(MIN_DIALOG_SIZE[0], min(width, available.width() - FRAME_PX[0])),
            max(MIN_DIALOG_SIZE[1], min(height, available.height() - FRAME_PX[1])))


def _writable_folder(path):
    folder = os.path.dirname(os.path.abspath(path)) if path else ''
    return folder if folder and os.path.isdir(folder) and os.access(folder, os.W_OK) else os.path.expanduser('~')


def setting_suffix(model_id, quality, mode=LOSSY, max_error=None, relative=None, per_band=False):
    if mode == LOSSLESS:
        return f'{model_id}_lossless'
    if mode == BOUNDED and per_band:
        return f'{model_id}_perband'
    if mode == BOUNDED:
        return f'{model_id}_r{relative * 100:g}pct' if relative is not None else f'{model_id}_e{max_error}'
    return f'{model_id}_q{quality}'


def default_output(source, model_id, quality, mode=LOSSY, max_error=None, relative=None, per_band=False):
    base = os.path.splitext(os.path.basename(source or 'image'))[0] or 'image'
    suffix = setting_suffix(model_id, quality, mode, max_error, relative, per_band)
    return os.path.join(_writable_folder(source), f'{base}_{suffix}.ehc')


def input_path(layer):
    """What the core opens for a layer: its file, or the product ZIP QGIS reads it from (the core decides)."""
    return product_source(layer.source())


def _file_state(path):
    """(modification time, size) of the file at `path`; None when there is none (the text is a list of numbers)."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return found.st_mtime_ns, found.st_size


def existing_files_text(paths):
    """'These files exist …' with each folder once: four full paths of a product folder filled the screen."""
    folders = {}
    for path in paths:
        folders.setdefault(os.path.dirname(os.path.abspath(path)), []).append(os.path.basename(path))
    lines = ['These files exist and would be replaced:']
    for folder, names in folders.items():
        lines += [f'in {folder}:'] + [f'    {name}' for name in names]
    return '\n'.join(lines)


def versioned(path, taken):
    """`path` with _2, _3 ... before the extension until none of the files `taken(candidate)` exist."""
    root, ext = os.path.splitext(path)
    return next(f'{root}_{n}{ext}' for n in range(2, 10_000) if not taken(f'{root}_{n}{ext}'))


def _cell(value, digits):
    return '' if value is None else f'{value:.{digits}f}'


def _label(text=''):
    """A label that shows its text as it is: QLabel guesses rich text, and a message or file name holding '<b>' or
    '<a href=...>' (from a layer, a path or a hostile file) would be markup."""
    label = QLabel(text)
    label.setTextFormat(Qt.PlainText)
    return label


def _dimmed(label):
    """A stylesheet that dims `label`'s text in the colours the theme gives it: a fixed grey (#555) was nearly
    invisible on QGIS's dark 'Night Mapping' theme."""
    label.ensurePolished()  # the application's stylesheet (a QGIS theme) sets the palette here
    palette = label.palette()
    text, back = palette.color(label.foregroundRole()), palette.color(label.backgroundRole())
    mixed = [round(b + NOTE_WEIGHT * (t - b)) for t, b in zip(text.getRgb()[:3], back.getRgb()[:3])]
    return 'color:rgb({}, {}, {});'.format(*mixed)


def _note(text, style=None):
    """A wrapped label, dimmed (style None) or in `style` ('': the theme's own text colour)."""
    label = _label(text)
    label.setWordWrap(True)
    label.setStyleSheet(_dimmed(label) if style is None else style)
    return label


class CompressDialog(QDialog):
    """Non-modal. Widgets are attributes so tests (and users' scripts) can drive the dialog. Closing it leaves a
    running job running: it shows in the task manager and still adds its layers."""

    def __init__(self, iface, layer=None, parent=None):
        super().__init__(parent or (iface.mainWindow() if iface is not None else None))
        self.iface = iface
        self.job = None
        self.installer = None
        self.models = installed_models()
        self._inputs = {}  # source -> core InputSummary, read once per layer
        self._band_limits_checked = {}  # (limits text, file state) -> its problem ('' when none)
        self._counting = {}  # source -> the background task counting its valid pixels
        self._auto_output = True
        self._setting_output = False
        self.setObjectName('EnmapCompressDialog')
        self.setWindowTitle('EnMAP Compress')
        self.setWindowIcon(QIcon(resource_path('icon.svg')))
        self._build()
        self._restore_settings()
        self._connect()
        if layer is not None:
            self.layer_combo.setLayer(layer)
        self._refresh_all()

    # --- building ---------------------------------------------------------------------------------------------

    def _build(self):
        outer = QVBoxLayout(self)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the form follows the window's width
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self._banner())
        layout.addWidget(self._input_box())
        layout.addWidget(self._model_box())
        layout.addWidget(self._mode_box())
        layout.addWidget(self._run_box())
        layout.addStretch(1)
        for combo in body.findChildren(QComboBox):  # long model titles and device names must not widen the form
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
        self.scroll.setWidget(body)
        outer.addWidget(self.scroll, 1)
        outer.addWidget(self._progress_row())
        outer.addWidget(self._buttons())
        # Enter runs: only once the button is in the dialog (set before, QDialog made the first button in the
        # focus chain its default when shown: the hidden Install button, and Enter did nothing)
        self.run_button.setDefault(True)
        self.resize(*fitted_size(self._available_geometry()))

    def _available_geometry(self):
        """The free part of the screen the dialog opens on (its parent's; QWidget.screen() is Qt >= 5.14)."""
        anchor = self.parentWidget() or self
        screen = anchor.screen() if hasattr(anchor, 'screen') else None
        screen = screen or QGuiApplication.primaryScreen()
        return screen.availableGeometry() if screen is not None else None

    def _banner(self):
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.banner = _note('', PROBLEM_STYLE)
        self.banner.setObjectName('dependencyBanner')
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.install_button = QPushButton(installer.BUTTON_TEXT)
        self.install_button.clicked.connect(self.install_packages)
        row.addWidget(self.banner, 1)
        row.addWidget(self.install_button, 0, Qt.AlignTop)
        self.banner_box = box
        return box

    def _input_box(self):
        box = QGroupBox('Input')
        form = QFormLayout(box)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setToolTip('An EnMAP L2A image loaded in QGIS (224 bands). It is read from its file, '
                                    'not through the map.')
        form.addRow('Raster layer', self.layer_combo)
        self.input_problem = _note('', PROBLEM_STYLE)
        self.input_problem.setObjectName('inputProblem')
        form.addRow(self.input_problem)
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
        self.card_label = _note('', '')
        self.card_label.setObjectName('modelCard')
        form.addRow(self.card_label)
        self.behind_label = _note('', WARNING_STYLE)
        self.behind_label.setObjectName('farBehind')
        form.addRow(self.behind_label)
        self.card_table = QTableWidget(0, len(TABLE_COLUMNS))
        self.card_table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.card_table.verticalHeader().setVisible(False)
        self.card_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.card_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.card_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.card_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.card_table.setMinimumHeight(150)
        self.card_table.setMaximumHeight(200)
        self.card_table.setToolTip('Measured on held-out EnMAP tiles (the model card). Click a row to choose it.')
        form.addRow(self.card_table)
        return box

    def _mode_box(self):
        box = QGroupBox('Mode')
        column = QVBoxLayout(box)
        self.mode_buttons = {}
        self.mode_group = QButtonGroup(self)
        for mode, (label, sentence) in MODE_TEXT.items():
            button = QRadioButton(label)
            button.setToolTip(sentence)
            self.mode_buttons[mode] = button
            self.mode_group.addButton(button)
            column.addWidget(button)
            if mode == LOSSY:
                column.addLayout(self._quality_row())
            elif mode == BOUNDED:
                column.addLayout(self._bound_row())
            column.addWidget(_note(sentence))
        self.mode_buttons[LOSSY].setChecked(True)
        self.code_all_check = QCheckBox('Code all bands')
        self.code_all_check.setToolTip(CODE_ALL_TEXT)
        column.addWidget(self.code_all_check)
        self.code_all_note = _note(CODE_ALL_TEXT)
        column.addWidget(self.code_all_note)
        self.expected_label = _label()
        self.expected_label.setWordWrap(True)
        column.addWidget(self.expected_label)
        return box

    def _quality_row(self):
        self.quality_slider = QSlider(Qt.Horizontal)
        self.quality_slider.setRange(1, 10)
        self.quality_slider.setValue(5)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 10)
        self.quality_spin.setValue(5)
        row = QHBoxLayout()
        row.addSpacing(24)
        row.addWidget(_label('smallest'))
        row.addWidget(self.quality_slider, 1)
        row.addWidget(_label('best'))
        row.addWidget(self.quality_spin)
        return row

    def _bound_row(self):
        """'within E DN' (MAX_ERROR), 'within P % of the value, at least E DN' (RELATIVE_ERROR with
        RELATIVE_FLOOR) or a limit per band from a CSV file or a list (BAND_MAX_ERRORS)."""
        self.bound_kind = QComboBox()
        self.bound_kind.addItem('in DN', 'absolute')
        self.bound_kind.addItem('relative to the value', 'relative')
        self.bound_kind.addItem('per band', 'per_band')
        self.bound_kind.setItemData(2, PER_BAND_TEXT, Qt.ToolTipRole)
        self.bound_kind.setToolTip('Relative: bright samples may be off by more DN than dark ones, never by more '
                                   'than the percentage of their value; the DN value is then the least allowed.')
        self.relative_spin = QDoubleSpinBox()
        self.relative_spin.setRange(0.01, 100.0)
        self.relative_spin.setDecimals(2)
        self.relative_spin.setValue(1.0)
        self.relative_spin.setSuffix(' %')
        self.max_error_spin = QSpinBox()
        self.max_error_spin.setRange(1, 1000)
        self.max_error_spin.setValue(10)
        self.max_error_spin.setSuffix(' DN')
        self.max_error_spin.setToolTip('MAX_ERROR: the largest difference allowed between any valid sample and '
                                       'its reconstruction.')
        self.floor_label = _label('at least')
        row = QHBoxLayout()
        row.addSpacing(24)
        row.addWidget(_label('Maximum error'))
        for widget in (self.bound_kind, self.relative_spin, self.floor_label, self.max_error_spin):
            row.addWidget(widget)
        row.addStretch(1)
        self.band_limits_widget = QgsFileWidget()
        self.band_limits_widget.setStorageMode(QgsFileWidget.GetFile)
        self.band_limits_widget.setFilter('Per-band limits (*.csv *.txt);;All files (*)')
        self.band_limits_widget.setToolTip(PER_BAND_TEXT)
        self.band_limits_widget.lineEdit().setPlaceholderText('a CSV file "band,bound", or 224 numbers: 10, 10, 25, …')
        self.band_limits_note = _note(PER_BAND_TEXT)
        per_band = QVBoxLayout()
        per_band.setContentsMargins(24, 0, 0, 0)
        per_band.addWidget(self.band_limits_widget)
        per_band.addWidget(self.band_limits_note)
        column = QVBoxLayout()
        column.addLayout(row)
        column.addLayout(per_band)
        return column

    def _bound_kind(self):
        """'absolute', 'relative' or 'per_band' in the error-bounded mode, else None."""
        return self.bound_kind.currentData() if self.mode() == BOUNDED else None

    def relative(self):
        """The relative bound as a fraction (None: another kind of bound or another mode)."""
        return self.relative_spin.value() / 100.0 if self._bound_kind() == 'relative' else None

    def band_max_errors(self):
        """BAND_MAX_ERRORS as the user gave it (a CSV path or a list of numbers; None: another bound or mode)."""
        return self.band_limits_widget.filePath().strip() if self._bound_kind() == 'per_band' else None

    def band_limits_problem(self):
        """Why the per-band limits cannot be used ('' when they can, or when they are not asked for), in the
        core's own words (bounds.error_bound reads the file or the list as the run will)."""
        text = self.band_max_errors()
        if text is None:
            return ''
        if not text:
            return 'Give the per-band limits: a CSV file with rows "band,bound" or 224 numbers separated by commas.'
        key = (text, _file_state(text))  # a CSV edited or replaced while the dialog is open is checked again
        if key not in self._band_limits_checked:
            try:
                bounds.error_bound(band_max_errors=text)
                self._band_limits_checked[key] = ''
            except EnmapCompressError as exc:
                self._band_limits_checked[key] = f'The per-band limits cannot be used: {exc}'
        return self._band_limits_checked[key]

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
        self.device_label = _label()
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
        self.output_problem = _note('', PROBLEM_STYLE)
        self.output_problem.setObjectName('outputProblem')
        self.output_problem.setVisible(False)
        form.addRow(self.output_problem)
        self.size_label = _label()
        self.size_label.setWordWrap(True)
        form.addRow('Estimated size', self.size_label)
        self.evaluate_radio = QRadioButton('Compress and evaluate')
        self.evaluate_radio.setToolTip(EVALUATE_TEXT)
        self.compress_radio = QRadioButton('Compress only')
        self.evaluate_radio.setChecked(True)
        self.run_group = QButtonGroup(self)
        self.run_group.addButton(self.evaluate_radio)
        self.run_group.addButton(self.compress_radio)
        modes = QVBoxLayout()
        modes.addWidget(self.evaluate_radio)
        modes.addWidget(_note(EVALUATE_TEXT))
        modes.addWidget(self.compress_radio)
        form.addRow('Do', modes)
        return box

    def _progress_row(self):
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status_label = _label('Ready.')
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.progress, 1)
        row.addWidget(self.status_label, 2)
        return box

    def _buttons(self):
        self.button_box = QDialogButtonBox()
        self.run_button = QPushButton('Run')
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
        self.max_error_spin.valueChanged.connect(self._on_mode_changed)
        self.relative_spin.valueChanged.connect(self._on_mode_changed)
        self.bound_kind.currentIndexChanged.connect(self._on_mode_changed)
        self.band_limits_widget.fileChanged.connect(self._on_mode_changed)
        self.mode_group.buttonToggled.connect(self._on_mode_changed)
        self.run_group.buttonToggled.connect(self._on_mode_changed)
        self.card_table.cellClicked.connect(self._on_card_row_clicked)
        self.card_table.currentCellChanged.connect(lambda row, *_: self._on_card_row_clicked(row, 0))
        self.card_button.clicked.connect(self.show_card)
        self.device_combo.currentIndexChanged.connect(self._refresh_device)
        self.output_widget.fileChanged.connect(self._on_output_edited)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)

    # --- remembered settings ----------------------------------------------------------------------------------

    def _restore_settings(self):
        settings = QgsSettings()
        settings.beginGroup(SETTINGS_GROUP)
        model = self.model_combo.findData(settings.value('model', ''))
        if model >= 0:
            self.model_combo.setCurrentIndex(model)
        self.quality_spin.setValue(int(settings.value('quality', 5)))
        self.quality_slider.setValue(self.quality_spin.value())
        self.max_error_spin.setValue(int(settings.value('max_error', 10)))
        self.relative_spin.setValue(float(settings.value('relative_percent', 1.0)))
        self.bound_kind.setCurrentIndex(max(0, self.bound_kind.findData(settings.value('bound_kind', 'absolute'))))
        self.band_limits_widget.setFilePath(str(settings.value('band_limits', '') or ''))
        self.mode_buttons.get(settings.value('mode', LOSSY), self.mode_buttons[LOSSY]).setChecked(True)
        self.code_all_check.setChecked(settings.value('code_all_bands', False, type=bool))
        device = self.device_combo.findData(settings.value('device', 'auto'))
        if device >= 0 and self.device_combo.model().item(device).isEnabled():
            self.device_combo.setCurrentIndex(device)
        (self.evaluate_radio if settings.value('evaluate', True, type=bool) else self.compress_radio).setChecked(True)
        settings.endGroup()

    def save_settings(self):
        model = self.model()
        settings = QgsSettings()
        settings.beginGroup(SETTINGS_GROUP)
        for key, value in (('model', model.model_id if model else ''), ('quality', self.quality()),
                           ('max_error', self.max_error_spin.value()), ('mode', self.mode()),
                           ('relative_percent', self.relative_spin.value()),
                           ('bound_kind', self.bound_kind.currentData()),
                           ('band_limits', self.band_limits_widget.filePath().strip()),
                           ('code_all_bands', self.code_all_check.isChecked()),
                           ('device', self.device_combo.currentData()), ('evaluate', self.evaluate_radio.isChecked())):
            settings.setValue(key, value)
        settings.endGroup()

    def closeEvent(self, event):  # noqa: N802 (Qt API name)
        self.save_settings()
        super().closeEvent(event)

    # --- state --------------------------------------------------------------------------------------------------

    def layer(self):
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def model(self):
        index = self.model_combo.currentIndex()
        return self.models[index] if 0 <= index < len(self.models) else None

    def quality(self):
        return self.quality_spin.value()

    def mode(self):
        return next(mode for mode, button in self.mode_buttons.items() if button.isChecked())

    def max_error(self):
        """MAX_ERROR for the run: None (lossy, relative or per band), 0 (lossless) or the bound in DN."""
        if self._bound_kind() in ('relative', 'per_band'):
            return None
        return {LOSSY: None, LOSSLESS: 0}.get(self.mode(), self.max_error_spin.value())

    def expected(self):
        model = self.model()
        if model is None or self.mode() != LOSSY:
            return None
        return cards.expected_for(model.rows, self.quality())

    def input_summary(self):
        """The core's InputSummary of the current layer (cached per source)."""
        layer = self.layer()
        if layer is None:
            return None
        source = input_path(layer)
        if source not in self._inputs:
            self._inputs[source] = preview.summarize(source, sample_rows=0)  # opening only: milliseconds
            if self._inputs[source].compressible:
                self._count_valid_pixels(source)
        return self._inputs[source]

    def _count_valid_pixels(self, source):
        """Count valid pixels in a background task (seconds on a product ZIP); the size label follows."""
        def counted(exception, summary=None):
            self._counting.pop(source, None)
            if exception is None and summary is not None and not sip.isdeleted(self):
                self._inputs[source] = summary
                self._refresh_size()

        task = QgsTask.fromFunction(f'EnMAP Compress: counting the valid pixels of {os.path.basename(source)}',
                                    lambda _task: preview.summarize(source), on_finished=counted)
        self._counting[source] = task
        QgsApplication.taskManager().addTask(task)

    def counting(self):
        """True while a valid-pixel count is running."""
        return bool(self._counting)

    def output_path(self):
        path = self.output_widget.filePath().strip()
        return path if not path or path.lower().endswith('.ehc') else path + '.ehc'

    def _code_all_supported(self):
        return not self.evaluate_radio.isChecked() or has_parameter(EVALUATE_ID, 'CODE_ALL_BANDS')

    def problems(self):
        """Why Run is not possible now ([] when it is)."""
        missing = dependencies.missing()
        found = [dependencies.message(missing)] if missing else []
        if not self.models:
            found.append('No compression model is installed (the plugin folder models/ is empty).')
        summary = self.input_summary()
        if self.layer() is None:
            found.append('Choose a raster layer.')
        elif summary is not None and not summary.compressible:
            found.append(f'This layer cannot be compressed: {summary.problem}')
        found.append(self.band_limits_problem())
        found.append(self.output_folder_problem() if self.output_path() else 'Choose an output file.')
        return [problem for problem in found if problem]

    def output_folder_problem(self):
        """Why the output's folder cannot take the files, or the output is a folder ('' when it can, or when it
        does not exist yet: the run creates it), said before Run rather than after a failed run."""
        typed = self.output_widget.filePath().strip()
        if typed and os.path.isdir(typed):  # (output_path would write <folder>.ehc beside it, unasked)
            return (f'{typed} is a folder: name the .ehc file in it (for example '
                    f'{os.path.join(typed, "scene.ehc")}).')
        folder = os.path.dirname(os.path.abspath(self.output_path()))
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            return f'Cannot write to the folder {folder} (read-only or no permission): choose another output folder.'
        return ''

    # --- refreshing -------------------------------------------------------------------------------------------

    def _refresh_all(self):
        self._on_model_changed()
        self._on_mode_changed()
        self._on_layer_changed()
        self._refresh_device()
        self._refresh_banner()

    def _refresh_banner(self):
        missing = dependencies.missing()
        text = dependencies.message(missing) if missing else ''
        if not self.models:
            text = (text + '\n' if text else '') + 'No compression model is installed.'
        self.banner.setText(text)
        self.banner_box.setVisible(bool(text))
        self.install_button.setVisible(bool(missing))
        self._refresh_run_button()

    def _refresh_run_button(self):
        running = self.job is not None and self.job.is_running()
        problems = self.problems()
        self.run_button.setEnabled(not running and not problems)
        self.run_button.setToolTip('\n'.join(problems))
        folder_problem = self.output_folder_problem() if self.output_path() else ''
        self.output_problem.setText(folder_problem)
        self.output_problem.setVisible(bool(folder_problem))

    def _on_layer_changed(self, *_):
        summary = self.input_summary()
        problem = summary.problem if summary is not None and not summary.compressible else ''
        self.input_problem.setText(f'Cannot be compressed: {problem}' if problem else '')
        self.input_problem.setVisible(bool(problem))
        self._refresh_output()
        self._refresh_size()
        self._refresh_run_button()

    def _on_model_changed(self, *_):
        model = self.model()
        self.card_label.setText(short_text(model.summary) if model else 'No model installed.')
        self.card_label.setToolTip(model.summary if model else '')
        warning = far_behind_warning(model, self.models)
        self.behind_label.setText(warning)
        self.behind_label.setVisible(bool(warning))
        self.card_button.setEnabled(model is not None)
        self.card_table.blockSignals(True)
        self.card_table.setRowCount(len(model.rows) if model else 0)
        for row, entry in enumerate(model.rows if model else ()):
            values = (str(entry.level), _cell(entry.bpppb, 3), _cell(entry.psnr, 2), _cell(entry.sa_deg, 3))
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter)
                self.card_table.setItem(row, column, item)
        self.card_table.blockSignals(False)
        self._on_quality_changed()

    def _on_mode_changed(self, *_):
        mode = self.mode()
        for widget in (self.quality_slider, self.quality_spin):
            widget.setEnabled(mode == LOSSY and not self._running())
        kind = self.bound_kind.currentData()
        for widget in (self.bound_kind, self.max_error_spin, self.relative_spin, self.band_limits_widget):
            widget.setEnabled(mode == BOUNDED and not self._running())
        self.bound_kind.setEnabled(self.bound_kind.isEnabled() and has_parameter(COMPRESS_ID, 'RELATIVE_ERROR'))
        self.relative_spin.setVisible(kind == 'relative')
        self.floor_label.setVisible(kind == 'relative')
        self.max_error_spin.setVisible(kind != 'per_band')
        for widget in (self.band_limits_widget, self.band_limits_note):
            widget.setVisible(kind == 'per_band')
        self.code_all_check.setEnabled(mode != LOSSLESS and self._code_all_supported() and not self._running())
        self.code_all_note.setEnabled(self.code_all_check.isEnabled())
        self._on_quality_changed()
        self._refresh_run_button()  # the per-band limits may have become usable or not

    def _on_quality_changed(self, *_):
        expected, mode = self.expected(), self.mode()
        if mode == LOSSLESS:
            self.expected_label.setText('Expected: bit-exact; the size depends on the image (the report measures '
                                        'it).')
        elif mode == BOUNDED and self._bound_kind() == 'per_band':
            self.expected_label.setText(self.band_limits_problem() or 'Expected: every sample within the limit of '
                                        'its band; the model quality is chosen for the smallest file.')
        elif mode == BOUNDED:
            bound = (f'{self.relative_spin.value():g} % of its value (at least {self.max_error_spin.value()} DN)'
                     if self.relative() is not None else f'{self.max_error_spin.value()} DN')
            self.expected_label.setText(f'Expected: every sample within {bound}; the model quality is chosen for '
                                        'the smallest file.')
        elif expected is None:
            self.expected_label.setText('Expected: no measurements in this model\'s card')
        else:
            psnr = f', PSNR ≈ {expected.psnr:.1f} dB' if expected.psnr is not None else ''
            self.expected_label.setText(f'Expected: ≈ {expected.bpppb:.3f} bpppb{psnr} (model card, held-out '
                                        'tiles)')
        self._select_card_row()
        self._refresh_output()
        self._refresh_size()

    def _select_card_row(self):
        model = self.model()
        levels = [row.level for row in model.rows] if model else []
        self.card_table.blockSignals(True)
        if self.mode() == LOSSY and self.quality() in levels:
            row = levels.index(self.quality())
            self.card_table.selectRow(row)
            self.card_table.scrollToItem(self.card_table.item(row, 0), QAbstractItemView.EnsureVisible)
        else:
            self.card_table.clearSelection()
        self.card_table.blockSignals(False)

    def show_card(self):
        """The whole card (Markdown) in a small window."""
        model = self.model()
        if model is None:
            return None
        viewer = CardViewer(model, self)
        viewer.show()
        return viewer

    def _on_card_row_clicked(self, row, _column):
        """A click on a row chooses that quality (lossy mode) and selects the row."""
        model = self.model()
        if model and 0 <= row < len(model.rows):
            self.mode_buttons[LOSSY].setChecked(True)
            self.quality_spin.setValue(model.rows[row].level)
            self._select_card_row()

    def _refresh_device(self, *_):
        option = devices.device_options()[max(0, self.device_combo.currentIndex())]
        self.device_label.setText(option.tooltip)

    def _refresh_output(self):
        layer, model = self.layer(), self.model()
        if not self._auto_output or layer is None:
            return
        self._setting_output = True
        self.output_widget.setFilePath(default_output(input_path(layer), model.model_id if model else 'model',
                                                      self.quality(), self.mode(), self.max_error_spin.value(),
                                                      self.relative(), self._bound_kind() == 'per_band'))
        self._setting_output = False

    def _on_output_edited(self, *_):
        if not self._setting_output:
            self._auto_output = False
        self._refresh_run_button()

    def _refresh_size(self):
        expected = self.expected()
        found = estimate.from_summary(self.input_summary(), expected.bpppb if expected else None)
        if found is None:
            self.size_label.setText('counting the valid pixels…' if self.counting() else
                                    'unknown (choose an EnMAP image)')
            return
        original = estimate.human_bytes(found.original_bytes)
        if found.compressed_bytes is None:
            self.size_label.setText(f'depends on the image; {found.valid_pixels:,} valid pixels ({original} as '
                                    'int16)')
            return
        self.size_label.setText(
            f'≈ {estimate.human_bytes(found.compressed_bytes)}: {found.valid_pixels:,} valid pixels × '
            f'{estimate.CODED_BANDS} bands × {expected.bpppb:.3f} bpppb ÷ 8 (the {estimate.CODED_BANDS} bands as '
            f'int16: {original})')

    # --- running ----------------------------------------------------------------------------------------------

    def request(self, output=None):
        layer, model = self.layer(), self.model()
        return JobRequest(source=input_path(layer), layer_id=layer.id(), layer_name=layer.name(),
                          model_id=model.model_id, quality=self.quality(),
                          device_index=max(0, self.device_combo.currentIndex()), output=output or self.output_path(),
                          evaluate=self.evaluate_radio.isChecked(), max_error=self.max_error(),
                          code_all_bands=self.code_all_check.isChecked() and self.code_all_check.isEnabled(),
                          relative_error=self.relative(),
                          relative_floor=self.max_error_spin.value() if self.relative() is not None else None,
                          band_max_errors=self.band_max_errors())

    def _confirm_outputs(self, request):
        """The request to run, after asking when its files exist (None: the user cancelled)."""
        existing = [path for path in request.files() if os.path.exists(path)]
        if not existing:
            return request
        box = QMessageBox(QMessageBox.Question, 'EnMAP Compress', existing_files_text(existing), parent=self)
        replace = box.addButton('Replace', QMessageBox.DestructiveRole)
        keep = box.addButton('Keep both (new names)', QMessageBox.AcceptRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(keep)
        box.exec_()
        if box.clickedButton() is replace:
            return request
        if box.clickedButton() is keep:
            taken = lambda root: any(os.path.exists(p) for p in self.request(root).files())  # noqa: E731
            output = versioned(request.output, taken)
            self._setting_output = True
            self.output_widget.setFilePath(output)
            self._setting_output = False
            return self.request(output)
        return None

    def start(self):
        """Launch the run in the background (returns the job, or None when something is missing)."""
        problems = self.problems()
        if problems or self._running():
            self.status_label.setText('\n'.join(problems))
            return None
        request = self._confirm_outputs(self.request())
        if request is None:
            self.status_label.setText('Not started: the existing files are kept.')
            return None
        self.save_settings()
        self.job = CompressJob(request)
        self.job.progressChanged.connect(self._on_progress)
        self.job.progressTextChanged.connect(self._on_progress_text)
        self.job.finished.connect(functools.partial(results.present, self.iface, request))
        self.job.finished.connect(self._on_finished)
        try:
            self.job.start()
        except RuntimeError as exc:
            self.status_label.setText(str(exc))
            self.job = None
            return None
        self._set_running(True)
        self.status_label.setText('Evaluating…' if request.evaluate else 'Compressing…')
        return self.job

    def cancel(self):
        if self._running():
            self.status_label.setText('Cancelling…')
            self.cancel_button.setEnabled(False)  # one click is enough; the run stops at its next check
            self.job.cancel()

    def install_packages(self):
        self.installer = installer.ask_and_install(self)
        return self.installer

    def _running(self):
        return self.job is not None and self.job.is_running()

    def _set_running(self, running):
        for widget in (self.layer_combo, self.model_combo, self.card_table, self.device_combo, self.output_widget,
                       self.evaluate_radio, self.compress_radio, *self.mode_buttons.values()):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:  # a finished run's bar keeps where it ended (and says so) until the next run starts
            self.progress.setFormat(PROGRESS_FORMAT)
            self.progress.setValue(0)
        self._on_mode_changed()
        self._refresh_run_button()

    def _on_progress(self, percent):
        self.progress.setValue(int(percent))

    def _on_progress_text(self, text):
        if self.cancel_button.isEnabled():  # while cancelling, 'Cancelling…' stays
            self.status_label.setText(text[:1].upper() + text[1:] + '…')

    def _on_finished(self, outcome):
        self._set_running(False)
        # focus back on Run: Run and Cancel were disabled in turn, which left it on Close, and Enter for a retry
        # closed the dialog
        self.run_button.setFocus()
        if outcome.ok:
            self.progress.setValue(100)
            self.status_label.setText('Done. ' + results.summary(self.job.request, outcome.results))
        else:
            self.progress.setFormat(CANCELLED_FORMAT if outcome.cancelled else FAILED_FORMAT)
            self.status_label.setText(outcome.message)
