"""The plugin's GUI entries as a user meets them: the layer context action, the Raster menu and toolbar, the
Diagnostics dialog, and the one clear message when a dependency is missing."""
import importlib
import importlib.abc
import sys

import pytest
from gui_helpers import flush_deletes
from qgis.core import QgsApplication, QgsMapLayerType, QgsProcessingException
from qgis.PyQt.QtWidgets import QAction, QPushButton

PROVIDER_ID = 'enmapcompress'

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def _load(iface):
    import enmap_compress

    loaded = enmap_compress.classFactory(iface)
    loaded.initGui()
    return loaded


def test_context_action_menu_and_toolbar_are_added_and_removed(gui_iface, qgis_processing, installed_model):
    plugin = _load(gui_iface)
    try:
        (action,) = gui_iface.layer_actions
        assert action.text() == 'Compress with EnMAP Compress…'
        add = next(args for name, args in gui_iface.calls if name == 'addCustomActionForLayerType')
        assert add[1:] == ('', QgsMapLayerType.RasterLayer, False), 'offered per layer, on hyperspectral ones'
        (entries,) = gui_iface.raster_menu.values()
        assert [a.text() for a in entries] == ['Compress / evaluate EnMAP image…', 'Decompress…',
                                               'Spectrum inspector', 'Diagnostics…']
        toolbar = [args[0].text() for name, args in gui_iface.calls if name == 'addToolBarIcon']
        assert toolbar == ['Compress / evaluate EnMAP image…', 'Decompress…', 'Spectrum inspector']
        assert [a.text() for a in gui_iface.add_layer_actions] == ['Add EnMAP Compress Image (.ehc)…']
        assert len(gui_iface.drop_handlers) == 1
    finally:
        plugin.unload()
    flush_deletes()
    assert gui_iface.layer_actions == [] and gui_iface.raster_menu == {}
    assert gui_iface.add_layer_actions == [] and gui_iface.drop_handlers == []
    removed = [args[0] for name, args in gui_iface.calls if name == 'removeCustomActionForLayerType']
    assert removed == [action]
    assert any(name == 'removeToolBarIcon' for name, _ in gui_iface.calls)
    assert PROVIDER_ID not in [p.id() for p in QgsApplication.processingRegistry().providers()]
    assert not [a for a in gui_iface.mainWindow().findChildren(QAction) if 'EnMAP' in a.text()]


def test_right_click_action_opens_the_dialog_prefilled_with_that_layer(plugin, gui_iface, scene_layer):
    gui_iface.setActiveLayer(scene_layer)
    gui_iface.layer_actions[0].trigger()
    dialog = plugin.dialogs[-1]
    assert dialog.isVisible()
    assert dialog.layer() is scene_layer
    assert dialog.output_path().endswith('.ehc')
    assert dialog.output_path().startswith(scene_layer.source().rsplit('.', 1)[0])
    assert dialog.model_combo.count() >= 1 and dialog.model().model_id
    assert dialog.run_button.isEnabled(), dialog.run_button.toolTip()
    assert not dialog.banner.isVisible()
    dialog.close()


def test_the_context_action_is_offered_only_on_hyperspectral_layers(plugin, gui_iface, scene_layer, tmp_path):
    from osgeo import gdal
    from qgis.core import QgsProject, QgsRasterLayer

    path = str(tmp_path / 'rgb.tif')
    gdal.GetDriverByName('GTiff').Create(path, 8, 8, 3, gdal.GDT_Byte).FlushCache()
    rgb = QgsRasterLayer(path, 'rgb', 'gdal')
    error = QgsRasterLayer(scene_layer.source(), 'an error layer', 'gdal')
    error.setCustomProperty('enmapcompress/role', 'error')
    QgsProject.instance().addMapLayers([rgb, error])
    offered = gui_iface.layer_action_layers[plugin.layer_action]
    assert scene_layer in offered and rgb not in offered and error not in offered


def test_menu_entry_opens_the_dialog_for_the_current_layer(plugin, gui_iface, scene_layer):
    gui_iface.setActiveLayer(scene_layer)
    menu_action = next(iter(gui_iface.raster_menu.values()))[0]
    menu_action.trigger()
    assert plugin.dialogs[-1].layer() is scene_layer
    plugin.dialogs[-1].close()


def test_diagnostics_dialog_shows_versions_devices_and_models(plugin, gui_iface, installed_model):
    entries = next(iter(gui_iface.raster_menu.values()))
    entries[-1].trigger()
    dialog = plugin.dialogs[-1]
    text = dialog.browser.toPlainText()
    for expected in ('QGIS', 'Python', 'numpy', 'onnxruntime', 'onnxruntime providers', 'CPUExecutionProvider',
                     'GPU (nvidia-smi)', 'torch', installed_model):
        assert expected in text
    dialog.copy()
    assert 'EnMAP Compress' in QgsApplication.clipboard().text()
    dialog.setStyleSheet('QPushButton { }')  # a style change (as in QGIS) lays the button box out again
    QgsApplication.processEvents()
    assert dialog.install_button.isHidden(), 'nothing is missing: no Install button that does nothing'
    dialog.close()


@pytest.fixture
def onnxruntime_missing(monkeypatch):
    """A required module that really cannot be imported, under a name that exists nowhere."""
    from enmap_compress.plugin import dependencies

    monkeypatch.setattr(dependencies, 'REQUIRED', (*dependencies.REQUIRED, 'onnxruntime_enmap_test_absent'))


def test_missing_dependency_gives_one_clear_message_and_the_provider_still_loads(
        onnxruntime_missing, gui_iface, message_bar, qgis_processing, installed_model, scene_layer):
    plugin = _load(gui_iface)
    try:
        registry = QgsApplication.processingRegistry()
        assert registry.providerById(PROVIDER_ID) is not None
        messages = [item.text() for item in message_bar.items()]
        assert len(messages) == 1 and 'pip install' in messages[0] and 'onnxruntime_enmap_test_absent' in messages[0]
        assert message_bar.items()[0].findChildren(QPushButton, 'enmapcompress_install')
        algorithm = registry.algorithmById('enmapcompress:compress')
        ok, hint = algorithm.canExecute()
        assert not ok and hint == messages[0], 'Processing and the GUI say the same'
        import processing  # on sys.path once pytest-qgis's qgis_processing fixture has run

        with pytest.raises(QgsProcessingException, match='onnxruntime_enmap_test_absent'):
            processing.run('enmapcompress:compress', {'INPUT': scene_layer.source(), 'OUTPUT': 'x.ehc'})
        dialog = plugin.open_dialog(scene_layer)
        assert dialog.banner.isVisible() and 'pip install' in dialog.banner.text()
        assert not dialog.run_button.isEnabled()
        assert dialog.start() is None
        dialog.close()
    finally:
        plugin.unload()
        flush_deletes()


class _Missing(importlib.abc.MetaPathFinder):
    """Makes the given top-level packages unimportable, as on a QGIS without them."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split('.')[0] in self.names:
            raise ModuleNotFoundError(f'No module named {fullname!r}', name=fullname)
        return None


@pytest.fixture
def without_runtime_packages(monkeypatch):
    """A fresh import of the plugin while onnxruntime, constriction and defusedxml cannot be imported."""
    blocked = ('onnxruntime', 'constriction', 'defusedxml')
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split('.')[0] in (*blocked, 'enmap_compress')}
    finder = _Missing(blocked)
    sys.meta_path.insert(0, finder)
    try:
        yield importlib.import_module('enmap_compress')
    finally:
        sys.meta_path.remove(finder)
        for name in [m for m in sys.modules if m.split('.')[0] in (*blocked, 'enmap_compress')]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_plugin_loads_and_explains_when_runtime_packages_are_really_missing(
        without_runtime_packages, gui_iface, message_bar, qgis_processing, scene_layer):
    plugin = without_runtime_packages.classFactory(gui_iface)
    plugin.initGui()
    try:
        assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None
        (text,) = [item.text() for item in message_bar.items()]
        assert 'onnxruntime, constriction, defusedxml' in text and 'pip install' in text
        algorithm = QgsApplication.processingRegistry().algorithmById('enmapcompress:evaluate')
        assert algorithm.canExecute()[0] is False
        dialog = plugin.open_dialog(scene_layer)
        assert 'pip install' in dialog.banner.text() and not dialog.run_button.isEnabled()
        assert dialog.device_combo.itemText(0) == 'auto — CPU only'
        assert 'onnxruntime is not installed' in dialog.device_label.text()
        dialog.close()
        diagnostics = plugin.show_diagnostics()
        software = dict(dict(diagnostics.sections)['Software'])
        assert software['onnxruntime'] == software['constriction'] == 'not installed'
        assert 'pip install' in dict(dict(diagnostics.sections)['Dependencies'])['install with']
        assert not diagnostics.install_button.isHidden()
        diagnostics.close()
    finally:
        plugin.unload()
        flush_deletes()
