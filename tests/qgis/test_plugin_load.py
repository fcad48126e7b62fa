"""The plugin loads in QGIS (headless, pytest-qgis), registers its Processing provider once, and unload() takes back
everything it added. It also loads from a folder with another name (all its imports are relative)."""
import importlib
import importlib.abc
import shutil
import sys
from unittest.mock import MagicMock

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QMenu, QToolBar

PROVIDER_ID = 'enmapcompress'
PROVIDER_NAME = 'EnMAP Compress'

# iface methods that add something, the method that takes it back, and which argument is the added object
# (None: the returned object).
ADD_REMOVE = {
    'addPluginToMenu': ('removePluginMenu', 1),
    'addPluginToRasterMenu': ('removePluginRasterMenu', 1),
    'addPluginToVectorMenu': ('removePluginVectorMenu', 1),
    'addPluginToDatabaseMenu': ('removePluginDatabaseMenu', 1),
    'addPluginToWebMenu': ('removePluginWebMenu', 1),
    'addPluginToMeshMenu': ('removePluginMeshMenu', 1),
    'addToolBarIcon': ('removeToolBarIcon', 0),
    'addRasterToolBarIcon': ('removeRasterToolBarIcon', 0),
    'addVectorToolBarIcon': ('removeVectorToolBarIcon', 0),
    'addDatabaseToolBarIcon': ('removeDatabaseToolBarIcon', 0),
    'addWebToolBarIcon': ('removeWebToolBarIcon', 0),
    'addToolBarWidget': ('removeToolBarIcon', None),
    'addRasterToolBarWidget': ('removeRasterToolBarIcon', None),
    'addDockWidget': ('removeDockWidget', 1),
    'addTabifiedDockWidget': ('removeDockWidget', 1),
    'registerMainWindowAction': ('unregisterMainWindowAction', 0),
    'addCustomActionForLayerType': ('removeCustomActionForLayerType', 0),
    'addCustomActionForLayer': ('removeCustomActionForLayerType', 0),
    'registerMapLayerConfigWidgetFactory': ('unregisterMapLayerConfigWidgetFactory', 0),
    'registerOptionsWidgetFactory': ('unregisterOptionsWidgetFactory', 0),
    'registerProjectPropertiesWidgetFactory': ('unregisterProjectPropertiesWidgetFactory', 0),
    'registerDevToolWidgetFactory': ('unregisterDevToolWidgetFactory', 0),
    'registerCustomDropHandler': ('unregisterCustomDropHandler', 0),
    'registerCustomLayoutDropHandler': ('unregisterCustomLayoutDropHandler', 0),
    'registerCustomProjectOpenHandler': ('unregisterCustomProjectOpenHandler', 0),
    'registerApplicationExitBlocker': ('unregisterApplicationExitBlocker', 0),
    'registerLocatorFilter': ('deregisterLocatorFilter', 0),
}


class RecordingIface:
    """Wraps pytest-qgis's iface stub: records add/register/remove calls, and stands in (MagicMock) for methods the
    2.1.0 stub lacks, so the plugin's initGui runs as in QGIS and every signal it connects can be checked."""

    def __init__(self, iface):
        self._iface = iface
        self.calls = []
        self.mocks = {}

    def __getattr__(self, name):
        target = getattr(self._iface, name, None)
        if target is None:
            target = self.mocks.setdefault(name, MagicMock(name=f'iface.{name}'))
        if not callable(target) or not name.startswith(('add', 'register', 'remove', 'unregister', 'deregister')):
            return target

        def recorder(*args, **kwargs):
            result = target(*args, **kwargs)
            self.calls.append((name, args, result))
            return result

        return recorder

    def leftovers(self):
        """What was added and never taken back, as readable strings."""
        removed = {}
        for name, args, _result in self.calls:
            for arg in args:
                removed.setdefault(name, []).append(arg)
        problems = []
        for name, args, result in self.calls:
            if name not in ADD_REMOVE:
                continue
            remover, index = ADD_REMOVE[name]
            added = result if index is None else (args[index] if len(args) > index else None)
            if added is not None and not any(a is added for a in removed.get(remover, [])):
                problems.append(f'{name}({added!r}) was never undone with {remover}()')
        # On stand-ins (e.g. iface.layerTreeView(), iface.rasterMenu()): every signal connected must be disconnected
        # and every action added must be removed.
        undo = {'.connect': ('.disconnect', True), '.addAction': ('.removeAction', False)}
        for name, mock in self.mocks.items():
            for call_name, args, _ in mock.mock_calls:
                for suffix, (reverse, bare_ok) in undo.items():
                    if not call_name.endswith(suffix) or not args:
                        continue
                    reverse_name = call_name[:-len(suffix)] + reverse
                    if not any(c[0] == reverse_name and ((bare_ok and not c[1]) or c[1][:1] == args[:1])
                               for c in mock.mock_calls):
                        problems.append(f'iface.{name}: {call_name}{args} was never undone with {reverse[1:]}()')
        return problems


class BlockImports(importlib.abc.MetaPathFinder):
    """Makes `import enmap_compress...` / `import plugin...` fail, to prove a renamed copy never uses those names."""

    def __init__(self, names):
        self.names = set(names)
        self.attempts = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split('.')[0] in self.names:
            self.attempts.append(fullname)
            raise ImportError(f'absolute import of {fullname} is blocked in this test')
        return None


def provider_ids():
    return [p.id() for p in QgsApplication.processingRegistry().providers()]


def _flush_deletes():
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QCoreApplication.processEvents()


def ui_snapshot(iface):
    """Everything a plugin could leave behind in the main window and the application registries."""
    _flush_deletes()
    window = iface.mainWindow()
    registry = QgsApplication.processingRegistry()
    return {
        'actions': len(window.findChildren(QAction)),
        'menus': len(window.findChildren(QMenu)),
        'toolbars': len(window.findChildren(QToolBar)),
        'docks': len(window.findChildren(QDockWidget)),
        'menu bar actions': len(window.menuBar().actions()) if window.menuBar() else 0,
        'providers': sorted(provider_ids()),
        'parameter types': sorted(t.id() for t in registry.parameterTypes()),
        'data item providers': sorted(p.name() for p in QgsApplication.dataItemProviderRegistry().providers()),
    }


@pytest.fixture
def iface(qgis_iface, qgis_processing):
    assert PROVIDER_ID not in provider_ids(), 'a previous test left the provider registered'
    return RecordingIface(qgis_iface)


@pytest.fixture
def plugin_module():
    import enmap_compress  # made importable by tests/conftest.py (a link named like the installed folder)

    return enmap_compress


def test_classfactory_initprocessing_registers_provider_and_unload_removes_it(plugin_module, iface):
    before = ui_snapshot(iface)
    plugin = plugin_module.classFactory(iface)
    assert PROVIDER_ID not in provider_ids(), 'classFactory() must not register anything yet'
    try:
        plugin.initProcessing()
        provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
        assert provider is not None
        assert provider.name() == PROVIDER_NAME
        assert provider.supportedOutputRasterLayerExtensions() == ['tif', 'tiff']  # the algorithms write GeoTIFF
        algorithms = provider.algorithms()
        assert algorithms, 'provider has no algorithms (did plugin/processing/algorithms.py fail to import?)'
        assert all(a.id().startswith(f'{PROVIDER_ID}:') for a in algorithms)
        assert all(QgsApplication.processingRegistry().algorithmById(a.id()) is not None for a in algorithms)
    finally:
        plugin.unload()
    assert PROVIDER_ID not in provider_ids()
    assert ui_snapshot(iface) == before


def test_initgui_then_unload_leaves_nothing_behind(plugin_module, iface):
    before = ui_snapshot(iface)
    plugin = plugin_module.classFactory(iface)
    try:
        plugin.initGui()
        assert provider_ids().count(PROVIDER_ID) == 1
        assert QgsApplication.processingRegistry().providerById(PROVIDER_ID).name() == PROVIDER_NAME
    finally:
        plugin.unload()
    assert PROVIDER_ID not in provider_ids()
    assert iface.leftovers() == []
    assert ui_snapshot(iface) == before


def test_loading_twice_registers_once(plugin_module, iface):
    """QGIS calls initProcessing() and then initGui(); a reload (Plugin Reloader) is unload() + a new instance."""
    before = ui_snapshot(iface)
    plugin = plugin_module.classFactory(iface)
    try:
        plugin.initProcessing()
        plugin.initGui()
        plugin.initProcessing()
        assert provider_ids().count(PROVIDER_ID) == 1
    finally:
        plugin.unload()
    assert PROVIDER_ID not in provider_ids()
    plugin.unload()  # a second unload is harmless

    again = plugin_module.classFactory(iface)
    try:
        again.initGui()
        again.initProcessing()
        assert provider_ids().count(PROVIDER_ID) == 1
        assert QgsApplication.processingRegistry().providerById(PROVIDER_ID).algorithms()
    finally:
        again.unload()
    assert PROVIDER_ID not in provider_ids()
    assert iface.leftovers() == []
    assert ui_snapshot(iface) == before


def test_plugin_loads_from_a_folder_with_another_name(tmp_path, package_tool, iface):
    """Copy what ships into tmp_path/some_other_name and import it under that name: only relative imports work."""
    try:
        files = package_tool.shipped_files(package_tool.PROJECT_ROOT, 'git-untracked')
    except package_tool.PackageError:  # not a git checkout
        files = package_tool.shipped_files(package_tool.PROJECT_ROOT, 'walk')
    folder = tmp_path / 'some_other_name'
    for rel in files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package_tool.PROJECT_ROOT / rel, folder / rel)
    assert not (folder / 'tests').exists()

    blocked = ('enmap_compress', 'plugin')
    hidden = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split('.')[0] in blocked}
    blocker = BlockImports(blocked)
    sys.meta_path.insert(0, blocker)
    sys.path.insert(0, str(tmp_path))
    plugin = None
    try:
        module = importlib.import_module('some_other_name')
        assert module.__file__.startswith(str(folder))
        plugin = module.classFactory(iface)
        plugin.initProcessing()
        provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
        assert provider is not None and provider.name() == PROVIDER_NAME
        assert type(provider).__module__.startswith('some_other_name.')
        assert provider.algorithms(), 'no algorithms loaded from the renamed copy'
        plugin.initGui()
        assert 'some_other_name.plugin.plugin' in sys.modules
        assert blocker.attempts == [], f'the renamed plugin imported itself by absolute name: {blocker.attempts}'
    finally:
        if plugin is not None:
            plugin.unload()
        sys.meta_path.remove(blocker)
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split('.')[0] in ('some_other_name', *blocked)]:
            del sys.modules[name]
        sys.modules.update(hidden)
    assert PROVIDER_ID not in provider_ids()
