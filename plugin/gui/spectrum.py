"""The spectrum inspector: click the map, see the original and the reconstructed spectrum at that pixel and their
difference (DN against wavelength), for any pair of layers: an input and the reconstruction the plugin made of it
are paired by themselves."""
import math
import os

from qgis.core import (
    QgsCoordinateTransform,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsMapLayerComboBox, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import QPointF, QRectF, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QPainter, QPainterPath, QPen
from qgis.PyQt.QtWidgets import QDockWidget, QFormLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..core import preview
from .dialog import input_path
from .results import ORIGINAL_PROPERTY, ROLE_PROPERTY

ORIGINAL_COLOUR, RECONSTRUCTED_COLOUR, DIFFERENCE_COLOUR = QColor('#1f77b4'), QColor('#d62728'), QColor('#444444')
TEXT_COLOUR = QColor('#333333')  # on the plot's white
MARGIN = (58, 12, 12, 30)  # left, top, right, bottom (px)


def _finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


class SpectrumPlot(QWidget):
    """Two panels painted with QPainter: both spectra (DN), and reconstructed − original (DN), against
    wavelength; gaps where a band is nodata or not coded."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.wavelengths, self.original, self.reconstructed = [], [], []
        self.setMinimumSize(320, 300)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_data(self, wavelengths, original, reconstructed):
        self.wavelengths, self.original, self.reconstructed = list(wavelengths), list(original), list(reconstructed)
        self.update()

    def difference(self):
        return [b - a if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) else math.nan
                for a, b in zip(self.original, self.reconstructed)]

    def paintEvent(self, _event):  # noqa: N802 (Qt API name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor('white'))
        painter.setPen(QPen(TEXT_COLOUR))  # not the theme's text colour: a dark theme's is light, as the plot is
        if not self.wavelengths:
            painter.drawText(self.rect(), Qt.AlignCenter, 'Click the map to see the spectra at a pixel.')
            return
        height = self.height() * 0.62
        top = QRectF(0, 0, self.width(), height)
        bottom = QRectF(0, height, self.width(), self.height() - height)
        top_series = [(self.original, ORIGINAL_COLOUR, Qt.SolidLine, 'original'),
                      (self.reconstructed, RECONSTRUCTED_COLOUR, Qt.DashLine, 'reconstructed')]
        plot = self._panel(painter, top, top_series, 'DN', False)
        self._legend(painter, plot, top_series)
        self._panel(painter, bottom, [(self.difference(), DIFFERENCE_COLOUR, Qt.SolidLine, 'error')],
                    'error (DN)', True)
        painter.end()

    @staticmethod
    def _legend(painter, plot, series):
        """Which line is which, in the top right corner of the plot."""
        metrics = painter.fontMetrics()
        row, swatch = metrics.height() + 2, 22
        width = swatch + 10 + max(metrics.horizontalAdvance(name) if hasattr(metrics, 'horizontalAdvance')
                                  else metrics.width(name) for *_, name in series)
        box = QRectF(plot.right() - width - 8, plot.top() + 4, width + 4, row * len(series) + 4)
        painter.fillRect(box, QColor(255, 255, 255, 220))
        for index, (_values, colour, style, name) in enumerate(series):
            y = box.top() + 2 + row * index + row / 2
            painter.setPen(QPen(colour, 1.5, style))
            painter.drawLine(QPointF(box.left() + 4, y), QPointF(box.left() + 4 + swatch, y))
            painter.setPen(QPen(TEXT_COLOUR))
            painter.drawText(QRectF(box.left() + swatch + 8, y - row / 2, width, row), Qt.AlignVCenter, name)

    def _panel(self, painter, area, series, y_label, zero_line):
        left, top, right, bottom = MARGIN
        plot = area.adjusted(left, top, -right, -bottom)
        ys = [v for values, *_ in series for v in _finite(values)] or [0.0, 1.0]
        low, high = min(ys + ([0.0] if zero_line else [])), max(ys + ([0.0] if zero_line else []))
        if high <= low:
            low, high = low - 1.0, high + 1.0
        xs = _finite(self.wavelengths)
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1.0

        def point(x, y):
            return QPointF(plot.left() + (x - x0) / (x1 - x0) * plot.width(),
                           plot.bottom() - (y - low) / (high - low) * plot.height())

        painter.setPen(QPen(QColor('#888888')))
        painter.drawRect(plot)
        painter.drawText(QRectF(area.left(), plot.top(), left - 4, 14), Qt.AlignRight, f'{high:.0f}')
        painter.drawText(QRectF(area.left(), plot.bottom() - 14, left - 4, 14), Qt.AlignRight, f'{low:.0f}')
        painter.save()  # the unit runs up the left edge: across, 'error (DN)' did not fit the margin ('ror (DN)')
        painter.translate(area.left() + 2, plot.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-plot.height() / 2, 0, plot.height(), 16), Qt.AlignCenter, y_label)
        painter.restore()
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 14), Qt.AlignCenter,
                         f'wavelength (nm), {x0:.0f}–{x1:.0f}')
        if zero_line:
            painter.setPen(QPen(QColor('#bbbbbb'), 1, Qt.DotLine))
            painter.drawLine(point(x0, 0.0), point(x1, 0.0))
        for values, colour, style, _name in series:
            painter.setPen(QPen(colour, 1.5, style))
            painter.drawPath(self._path(values, point))
        return plot

    def _path(self, values, point):
        path, drawing = QPainterPath(), False
        for x, y in zip(self.wavelengths, values):
            if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
                drawing = False
                continue
            (path.lineTo if drawing else path.moveTo)(point(x, y))
            drawing = True
        return path


def pixel_values(layer, point, crs):
    """Values of every band of `layer` at `point` (in `crs`), read by the core: DN at EnMAP's scale for an EnMAP
    image, whatever scale it stores (QGIS's identify would hand back float32 DN x scale); NaN for nodata, None
    outside the layer."""
    if crs != layer.crs():
        point = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()).transform(point)
    return preview.spectrum_at(input_path(layer), point.x(), point.y())


def partner_of(layer, project):
    """The input of a reconstruction the plugin made (or the reconstruction of an input), when in the project."""
    layers = [lay for lay in project.mapLayers().values() if isinstance(lay, QgsRasterLayer)]
    original = layer.customProperty(ORIGINAL_PROPERTY)
    if original:
        return next((lay for lay in layers if lay is not layer and input_path(lay) == original
                     and not lay.customProperty(ROLE_PROPERTY)), None)
    source = input_path(layer)
    return next((lay for lay in layers if lay.customProperty(ORIGINAL_PROPERTY) == source
                 and lay.customProperty(ROLE_PROPERTY) == 'reconstruction'), None)


class SpectrumDock(QDockWidget):
    """The inspector's panel: which two layers, the plot, and the numbers at the clicked pixel."""

    inspected = pyqtSignal(object)  # the (x, y) map point

    def __init__(self, project=None, parent=None):
        super().__init__('EnMAP Compress — spectrum inspector', parent)
        self.setObjectName('EnmapCompressSpectrum')
        self.project = project or QgsProject.instance()
        self._wavelengths = {}
        body = QWidget()
        layout = QVBoxLayout(body)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.WrapAllRows)  # the names differ at their end ('… q5 reconstructed'):
        # beside their labels both lists showed the same cut 'enmap_potsdam_tile_1'
        self.original_combo, self.reconstructed_combo = QgsMapLayerComboBox(), QgsMapLayerComboBox()
        for combo in (self.original_combo, self.reconstructed_combo):
            combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
            combo.setAllowEmptyLayer(True)
        self.reconstructed_combo.layerChanged.connect(self._pair_with_reconstruction)
        form.addRow('Original', self.original_combo)
        form.addRow('Reconstructed', self.reconstructed_combo)
        layout.addLayout(form)
        self.plot = SpectrumPlot()
        layout.addWidget(self.plot, 1)
        self.info_label = QLabel('Pick the two layers, then click the map.')
        self.info_label.setWordWrap(True)
        self.info_label.setTextFormat(Qt.PlainText)  # it shows layer and file names: '<b>' in one is no markup
        layout.addWidget(self.info_label)
        self.setWidget(body)
        self.choose_default_pair()

    def choose_default_pair(self):
        """The most recent reconstruction the plugin added, with its input; else the most recent decoded .ehc. The
        two lists never start on the same layer (a layer against itself shows an error of 0 everywhere)."""
        layers = list(reversed(list(self.project.mapLayers().values())))
        for role in ('reconstruction', 'decoded'):
            layer = next((lay for lay in layers if lay.customProperty(ROLE_PROPERTY) == role), None)
            if layer is not None:
                self.reconstructed_combo.setLayer(layer)
                break
        if self.original_combo.currentLayer() is not None and \
                self.original_combo.currentLayer() is self.reconstructed_combo.currentLayer():
            other = next((lay for lay in layers if isinstance(lay, QgsRasterLayer) and not lay.customProperty(
                ROLE_PROPERTY) and lay.bandCount() == self.reconstructed_combo.currentLayer().bandCount()), None)
            self.original_combo.setLayer(other)

    def _pair_with_reconstruction(self, layer):
        partner = partner_of(layer, self.project) if isinstance(layer, QgsRasterLayer) else None
        if partner is not None:
            self.original_combo.setLayer(partner)

    def wavelengths(self, layer):
        """Wavelengths as the core reads them (cached per file), else the band numbers."""
        source = input_path(layer)
        if source not in self._wavelengths:
            self._wavelengths[source] = preview.wavelengths(source)
        known = self._wavelengths[source]
        return known if known and len(known) == layer.bandCount() else list(range(1, layer.bandCount() + 1))

    def inspect(self, point, crs):
        """Show the spectra at map `point` (in `crs`); returns (original, reconstructed) values or None."""
        original, reconstructed = self.original_combo.currentLayer(), self.reconstructed_combo.currentLayer()
        if not (isinstance(original, QgsRasterLayer) and isinstance(reconstructed, QgsRasterLayer)):
            return self._nothing('Pick an original and a reconstructed layer first.')
        if original is reconstructed:
            return self._nothing(f'Original and Reconstructed are both {original.name()}: pick two different '
                                 'layers (the input, and its reconstruction or decoded .ehc).')
        if original.bandCount() != reconstructed.bandCount():
            return self._nothing(f'{original.name()} has {original.bandCount()} bands and '
                                 f'{reconstructed.name()} {reconstructed.bandCount()}: not a pair.')
        a, b = pixel_values(original, point, crs), pixel_values(reconstructed, point, crs)
        if a is None or b is None:
            return self._nothing('That point lies outside the layers.')
        self.plot.set_data(self.wavelengths(original), a, b)
        self.info_label.setText(self._numbers(point, original))
        self.inspected.emit(point)
        return a, b

    def _nothing(self, text):
        """No spectra for this click: say why, and clear the plot (it showed the previous pixel)."""
        self.plot.set_data([], [], [])
        self.info_label.setText(text)
        return None

    def _numbers(self, point, layer):
        errors = _finite(self.plot.difference())
        if not errors:
            return f'x {point.x():.1f}, y {point.y():.1f}: nodata'
        rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
        worst = max(errors, key=abs)
        return (f'{os.path.basename(input_path(layer))} at x {point.x():.1f}, y {point.y():.1f}: RMSE {rmse:.1f} DN, '
                f'largest error {worst:+.0f} DN over {len(errors)} bands')


class SpectrumTool(QgsMapToolEmitPoint):
    """The map tool: each click shows the spectra at that pixel in the dock."""

    def __init__(self, canvas, dock):
        super().__init__(canvas)
        self.dock = dock
        self.canvasClicked.connect(self._clicked)
        self.setCursor(Qt.CrossCursor)

    def _clicked(self, point, _button):
        self.dock.show()
        self.dock.inspect(point, self.canvas().mapSettings().destinationCrs())
