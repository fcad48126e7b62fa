"""Helpers of the GUI tests (plain functions and constants; the fixtures are in gui_fixtures.py)."""
import os
import shutil
import signal
import subprocess
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


QGIS_BIN = '/usr/bin/qgis'
SYSTEM_PYTHON = '/usr/bin/python3'  # has dbus-python and GLib's bindings (notification_server.py)
WINDOW_LAUNCHER = '''import os, sys, traceback
sys.path.insert(0, {folder!r})
try:
    import {module}
    {module}.{function}()
except Exception:
    traceback.print_exc()
    os._exit(4)
'''


def qgis_window_missing(notifications=False):
    """Why the real QGIS window cannot run here ('' when it can)."""
    needed = ['xvfb-run'] + (['dbus-run-session'] if notifications else [])
    if not all(shutil.which(tool) for tool in needed) or not os.path.isfile(QGIS_BIN):
        return f'needs {", ".join(needed)} and the QGIS application ({QGIS_BIN})'
    if notifications and subprocess.run([SYSTEM_PYTHON, '-c', 'import dbus, gi'], capture_output=True).returncode:
        return 'needs dbus-python and gi for the system Python (python3-dbus, python3-gi)'
    return ''


def run_qgis_window(qgis_env_tool, tmp_path, module, function, extra_env, screen='1280x900x24', timeout=240,
                    notifications=None):
    """Start the real QGIS application under Xvfb with the plugin enabled in a throw-away profile, running
    module.function() (a module in tests/qgis) as its --code script; returns (stdout, stderr). notifications: a
    file that gets each desktop notification QGIS sends, as a JSON line (a private D-Bus session with a server)."""
    home = tmp_path / 'home'
    env = qgis_env_tool.qgis_process_env(home)
    qgis_env_tool.enable_plugin(home, env)
    env.update({'QT_QPA_PLATFORM': 'xcb', **extra_env})
    if os.environ.get('ENMAP_COMPRESS_MODELS'):
        env['ENMAP_COMPRESS_MODELS'] = os.environ['ENMAP_COMPRESS_MODELS']
    else:
        env.pop('ENMAP_COMPRESS_MODELS', None)
    launcher = tmp_path / f'launch_{module}.py'  # QGIS exec()s --code scripts, without __file__
    launcher.write_text(WINDOW_LAUNCHER.format(folder=os.path.dirname(os.path.abspath(__file__)), module=module,
                                               function=function), encoding='utf-8')
    command = ['xvfb-run', '-a', '-s', f'-screen 0 {screen}', QGIS_BIN, '--nologo', '--noversioncheck', '--code',
               str(launcher)]
    if notifications is not None:
        server = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'notification_server.py')
        command = ['dbus-run-session', '--', SYSTEM_PYTHON, server, str(notifications), '--', *command]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: QGIS and Xvfb end together
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()
