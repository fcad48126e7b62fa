"""Layer styles for the outputs: the reconstruction looks like its input, the error layer gets a colour ramp.

Used by the Processing post-processors and by the dialog's task, so both paths style layers the same way.
Main thread only (renderers belong to layers in the project).
"""
import re

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor

TRUE_COLOUR_NM = (640.0, 550.0, 460.0)  # red, green, blue
ERROR_RAMP = 'Magma'
ERROR_CUT = 0.98  # the ramp ends at this quantile of rmse_dn, so a few outliers do not wash it out
_WAVELENGTH_IN_NAME = re.compile(r'\(([\d.]+)\s*(?:nm|nanometers)\)', re.IGNORECASE)


def band_wavelengths(layer):
    """Wavelength (nm) per band from the GDAL band metadata or the band names; None where unknown."""
    values = [None] * layer.bandCount()
    try:
        from osgeo import gdal

        dataset = gdal.Open(layer.source())
    except (ImportError, RuntimeError):
        dataset = None
    for index in range(layer.bandCount()):
        text = dataset.GetRasterBand(index + 1).GetMetadataItem('wavelength') if dataset is not None else None
        if text is None:
            match = _WAVELENGTH_IN_NAME.search(layer.bandName(index + 1) or '')
            text = match.group(1) if match else None
        try:
            values[index] = float(text) if text is not None else None
        except ValueError:
            values[index] = None
    return values


def true_colour_bands(layer):
    """1-based (red, green, blue) bands nearest to 640/550/460 nm, or None without wavelengths."""
    wavelengths = band_wavelengths(layer)
    known = [(i + 1, w) for i, w in enumerate(wavelengths) if w]
    if len(known) < 3:
        return None
    return tuple(min(known, key=lambda item, t=target: abs(item[1] - t))[0] for target in TRUE_COLOUR_NM)


def _stretched(layer):
    """Cumulative-cut (2-98 %) stretch on every band of the layer's renderer, like QGIS's default."""
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)


def style_true_colour(layer):
    """An RGB renderer on the true-colour bands with a 2-98 % stretch; False when the bands are unknown."""
    bands = true_colour_bands(layer) if layer.bandCount() >= 3 else None
    if bands is None:
        return False
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), *bands))
    _stretched(layer)
    return True


def _renderer_bands(renderer):
    try:
        return [b for b in renderer.usesBands() if b > 0]
    except AttributeError:  # very old renderer classes
        return []


def style_like(layer, template=None):
    """Render `layer` like `template` (a QgsRasterLayer or QgsRasterRenderer): same bands and stretch.

    Falls back to true colour when there is no template or it uses bands the layer does not have.
    """
    renderer = template.renderer() if isinstance(template, QgsRasterLayer) else template
    bands = _renderer_bands(renderer) if renderer is not None else []
    if renderer is not None and bands and max(bands) <= layer.bandCount():
        layer.setRenderer(renderer.clone())  # the pipe connects the clone to this layer's provider
    elif not style_true_colour(layer):
        return
    layer.triggerRepaint()


def error_ramp():
    ramp = QgsStyle.defaultStyle().colorRamp(ERROR_RAMP)
    if ramp is not None:
        return ramp
    stops = [QgsGradientStop(0.25, QColor(81, 18, 124)), QgsGradientStop(0.5, QColor(183, 55, 121)),
             QgsGradientStop(0.75, QColor(252, 137, 97))]
    return QgsGradientColorRamp(QColor(0, 0, 4), QColor(252, 253, 191), False, stops)


def style_error(layer, band=1):
    """Singleband pseudocolor on rmse_dn (band 1) from 0 to its 98 % quantile, with a legend; other bands stay
    selectable in the layer properties."""
    provider = layer.dataProvider()
    _low, high = provider.cumulativeCut(band, 0.0, ERROR_CUT)
    high = high if high > 0 else 1.0
    function = QgsColorRampShader(0.0, high, error_ramp(), QgsColorRampShader.Interpolated,
                                  QgsColorRampShader.EqualInterval)
    function.classifyColorRamp(6, band)
    shader = QgsRasterShader(0.0, high)
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
