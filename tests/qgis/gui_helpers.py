"""Helpers of the GUI tests (plain functions and constants; the fixtures are in gui_fixtures.py)."""
import os
import time

from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QEvent

RGB = (48, 30, 16)  # the test layer's red, green, blue bands (deliberately not QGIS's default 1, 2, 3)
STRETCH = ((300.0, 2500.0), (250.0, 1800.0), (200.0, 1500.0))


def flush_deletes():
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QCoreApplication.processEvents()


def styled_layer(path, name):
    """A raster layer in the project, rendered with RGB and STRETCH as a user might have set them."""
    layer = QgsRasterLayer(path, name, 'gdal')
    assert layer.isValid(), path
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *RGB)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, (low, high), setter in zip(RGB, STRETCH, setters):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)
    layer.setRenderer(renderer)
    QgsProject.instance().addMapLayer(layer)
    return layer


def rgb_and_stretch(renderer):
    """((r, g, b), ((min, max) x 3)) of a multiband colour renderer."""
    enhancements = (renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(),
                    renderer.blueContrastEnhancement())
    return ((renderer.redBand(), renderer.greenBand(), renderer.blueBand()),
            tuple((e.minimumValue(), e.maximumValue()) for e in enhancements))


def wait_for(predicate, timeout=60.0):
    """Process Qt events until predicate() is true; False on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QCoreApplication.processEvents()
        time.sleep(0.005)
    return True


def part_files(folder):
    """Temporary files of atomic outputs left behind in `folder`."""
    return [name for name in os.listdir(folder) if '.part' in name]


class GuiIface:
    """pytest-qgis's QgisInterface stub, completed with what the GUI uses and recording add/remove calls."""

    def __init__(self, iface, message_bar):
        self._iface = iface
        self._bar = message_bar
        self.calls = []
        self.layer_actions = []
        self.layer_action_layers = {}  # action -> [layers it is offered on]
        self.raster_menu = {}
        self.add_layer_actions = []
        self.drop_handlers = []
        self.docks = []

    def __getattr__(self, name):
        return getattr(self._iface, name)

    def messageBar(self):
        return self._bar

    def _record(self, name, *args):
        self.calls.append((name, args))

    def addCustomActionForLayerType(self, action, menu, layer_type, all_layers):
        self._record('addCustomActionForLayerType', action, menu, layer_type, all_layers)
        self.layer_actions.append(action)

    def removeCustomActionForLayerType(self, action):
        self._record('removeCustomActionForLayerType', action)
        if action in self.layer_actions:
            self.layer_actions.remove(action)
            return True
        return False

    def addCustomActionForLayer(self, action, layer):
        self._record('addCustomActionForLayer', action, layer)
        self.layer_action_layers.setdefault(action, []).append(layer)

    def insertAddLayerAction(self, action):
        self._record('insertAddLayerAction', action)
        self.add_layer_actions.append(action)

    def removeAddLayerAction(self, action):
        self._record('removeAddLayerAction', action)
        self.add_layer_actions.remove(action)

    def registerCustomDropHandler(self, handler):
        self._record('registerCustomDropHandler', handler)
        self.drop_handlers.append(handler)

    def unregisterCustomDropHandler(self, handler):
        self._record('unregisterCustomDropHandler', handler)
        self.drop_handlers.remove(handler)

    def addDockWidget(self, area, dock):
        self._record('addDockWidget', area, dock)
        self.docks.append(dock)

    def removeDockWidget(self, dock):
        self._record('removeDockWidget', dock)
        self.docks.remove(dock)

    def addPluginToRasterMenu(self, menu, action):
        self._record('addPluginToRasterMenu', menu, action)
        self.raster_menu.setdefault(menu, []).append(action)

    def removePluginRasterMenu(self, menu, action):
        self._record('removePluginRasterMenu', menu, action)
        self.raster_menu.get(menu, []).remove(action)
        if not self.raster_menu.get(menu):
            self.raster_menu.pop(menu, None)

    def addToolBarIcon(self, action):
        self._record('addToolBarIcon', action)
        return self._iface.addToolBarIcon(action)

    def removeToolBarIcon(self, action):
        self._record('removeToolBarIcon', action)
        return self._iface.removeToolBarIcon(action)
