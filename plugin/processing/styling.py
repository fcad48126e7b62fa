"""Layer styles for the outputs: the reconstruction looks like its input, the error layer gets a colour ramp.

Used by the Processing post-processors and by the dialog's task, so both paths style layers the same way.
Error layers of every run share one colour scale (0 to ERROR_SCALE_DN, a setting), so two error maps side by side
compare at a glance; the legend says the unit. Main thread only (renderers belong to layers in the project).
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
    QgsSettings,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor

TRUE_COLOUR_NM = (640.0, 550.0, 460.0)  # red, green, blue
ERROR_RAMP = 'Magma'
ERROR_SCALE_KEY = 'enmapcompress/error_scale_dn'  # QgsSettings: the top of the shared error colour scale
ERROR_SCALE_DN = 50.0  # RMSE of rdnet from q3 to q8 on real tiles lies well inside; larger errors saturate
ERROR_CLASSES = 6
ROLE_PROPERTY = 'enmapcompress/role'  # layer custom property: 'reconstruction' | 'error' | 'decoded'
_WAVELENGTH_IN_NAME = re.compile(r'\(([\d.]+)\s*(?:nm|nanometers)\)', re.IGNORECASE)


def band_wavelengths(layer):
    """Wavelength (nm) per band as the core reads the file, else from the band names; None where unknown."""
    from ..core.preview import wavelengths

    known = wavelengths(layer.source()) if layer.bandCount() >= 3 else None
    if known is not None and len(known) == layer.bandCount():
        return known
    values = []
    for index in range(layer.bandCount()):
        match = _WAVELENGTH_IN_NAME.search(layer.bandName(index + 1) or '')
        values.append(float(match.group(1)) if match else None)
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


ENMAP_NODATA = -32768.0


def _stretches(renderer):
    """The contrast enhancements of a multiband colour or single band gray renderer (others: none)."""
    getters = ('redContrastEnhancement', 'greenContrastEnhancement', 'blueContrastEnhancement', 'contrastEnhancement')
    found = [getattr(renderer, name)() for name in getters if hasattr(renderer, name)]
    return [enhancement for enhancement in found if enhancement is not None]


def _stretch_spans_nodata(renderer, layer):
    """True when the template's stretch reaches down to the nodata value of `layer` (or EnMAP's -32768).

    DLR's SPECTRAL_IMAGE.TIF declares no nodata, so QGIS's own style of it stretches from -32768 (the samples
    outside the footprint) to the brightest value: the image shows almost white. Copied to the reconstruction (which
    declares its nodata), that style would make the result look broken; true colour is what the user expects."""
    provider = layer.dataProvider()
    nodata = provider.sourceNoDataValue(1) if provider.sourceHasNoDataValue(1) else ENMAP_NODATA
    floor = nodata if nodata < 0 else ENMAP_NODATA  # (a nodata of 0 is a valid reflectance to stretch from)
    return any(min(e.minimumValue(), e.maximumValue()) <= floor for e in _stretches(renderer))


def style_like(layer, template=None):
    """Render `layer` like `template` (a QgsRasterLayer or QgsRasterRenderer): same bands and stretch.

    Falls back to true colour when there is no template, it uses bands the layer does not have, or its stretch
    starts at the nodata value (QGIS's default style of a product that declares no nodata: a washed-out image).
    """
    renderer = template.renderer() if isinstance(template, QgsRasterLayer) else template
    bands = _renderer_bands(renderer) if renderer is not None else []
    if renderer is not None and bands and max(bands) <= layer.bandCount() \
            and not _stretch_spans_nodata(renderer, layer):
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


def error_scale_dn():
    """The top of the shared error colour scale (DN): the user's setting, else ERROR_SCALE_DN."""
    try:
        value = float(QgsSettings().value(ERROR_SCALE_KEY, ERROR_SCALE_DN))
    except (TypeError, ValueError):
        value = ERROR_SCALE_DN
    return value if value > 0 else ERROR_SCALE_DN


def style_error(layer, band=1, maximum=None):
    """Singleband pseudocolor on rmse_dn (band 1) from 0 to the shared scale (or `maximum`) DN, with a legend in
    DN; other bands stay selectable in the layer properties."""
    provider = layer.dataProvider()
    high = float(maximum) if maximum else error_scale_dn()
    function = QgsColorRampShader(0.0, high, error_ramp(), QgsColorRampShader.Interpolated,
                                  QgsColorRampShader.EqualInterval)
    ramp = error_ramp()
    values = [high * i / (ERROR_CLASSES - 1) for i in range(ERROR_CLASSES)]
    function.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, ramp.color(v / high), f'{v:g} DN')
                                   for v in values])
    function.setClip(False)  # errors beyond the scale show in the top colour
    if hasattr(function, 'legendSettings'):  # QGIS >= 3.18: the continuous legend bar's labels
        legend = function.legendSettings()
        legend.setSuffix(' DN')
        function.setLegendSettings(legend)
    shader = QgsRasterShader(0.0, high)
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.setCustomProperty(ROLE_PROPERTY, 'error')
    layer.triggerRepaint()
