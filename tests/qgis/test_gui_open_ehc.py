"""An .ehc opens like any raster: the drop handler, Layer ▸ Add, the Browser's data items (with their info), the
decode cache (reused while the file is unchanged, kept under its limit) and the background task; plus the
Decompress… entry and the spectrum inspector."""
import os
import shutil
import time

import numpy as np
import pytest
from gui_helpers import flush_deletes, wait_for
from qgis.core import QgsApplication, QgsDataItem, QgsPointXY, QgsProject, QgsSettings
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis/test_gui_*.py)

TIMEOUT_S = 90


@pytest.fixture(scope='module')
def ehc_file(scene, installed_model, tmp_path_factory):
    from enmap_compress.plugin.core.codec import compress

    path = str(tmp_path_factory.mktemp('ehc') / 'scene.ehc')
    compress(scene, path, installed_model, 5, 'cpu')
    return path


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    from enmap_compress.plugin.gui import opener

    folder = tmp_path / 'cache'
    monkeypatch.setattr(opener, 'cache_folder', lambda: str(folder))
    yield folder
    QgsProject.instance().removeAllMapLayers()


def _open_and_wait(opener, path):
    added = []
    opener.opened.connect(added.append)
    result = opener.open(path)
    assert wait_for(lambda: added or not opener.running(), TIMEOUT_S), 'the decode task did not finish'
    opener.opened.disconnect(added.append)
    return result, added


def test_the_decode_cache_keys_on_the_file_and_stays_under_its_limit(tmp_path):
    from enmap_compress.plugin.core.decodecache import DecodeCache

    ehc = tmp_path / 'a.ehc'
    ehc.write_bytes(b'one')
    cache = DecodeCache(str(tmp_path / 'cache'), 2500)
    first = cache.entry_path(str(ehc))
    assert cache.entry_path(str(ehc)) == first and cache.lookup(str(ehc)) is None
    os.makedirs(os.path.dirname(first))
    open(first, 'wb').write(b'x' * 1000)
    assert cache.lookup(str(ehc)) == first
    stat = os.stat(ehc)
    ehc.write_bytes(b'two')  # same size, same time: only the content tells
    os.utime(ehc, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.entry_path(str(ehc)) != first and cache.lookup(str(ehc)) is None
    paths = []
    for index in range(3):
        path = os.path.join(str(tmp_path / 'cache'), f'e{index}.tif')
        open(path, 'wb').write(b'y' * 1000)
        os.utime(path, (time.time() - 100 + index, time.time() - 100 + index))
        paths.append(path)
    os.utime(first, (time.time() - 1000, time.time() - 1000))
    removed = cache.trim(keep=[first])
    assert first not in removed and os.path.isfile(first), 'an entry in use is never removed'
    assert removed == paths[:2] and cache.total_bytes() <= 2500


def test_a_dropped_ehc_decodes_in_a_task_and_opens_in_true_colour(plugin, gui_iface, ehc_file, fresh_cache, scene):
    from osgeo import gdal

    (handler,) = gui_iface.drop_handlers
    assert handler.handleFileDrop(str(fresh_cache / 'nothing.tif')) is False
    added = []
    plugin.opener.opened.connect(added.append)
    tasks = []
    QgsApplication.taskManager().taskAdded.connect(lambda task_id: tasks.append(
        QgsApplication.taskManager().task(task_id).description()))
    assert handler.handleFileDrop(ehc_file) is True
    assert wait_for(lambda: added, TIMEOUT_S), 'the decode task did not finish'
    assert tasks == ['EnMAP Compress: opening scene.ehc']
    (layer,) = added
    assert layer.isValid() and layer.bandCount() == 224 and QgsProject.instance().mapLayer(layer.id())
    assert layer.source().startswith(str(fresh_cache)) and layer.source().endswith('.tif')
    assert layer.customProperty('enmapcompress/ehc') == ehc_file
    assert layer.renderer().type() == 'multibandcolor' and layer.renderer().redBand() != 1
    assert layer.name().startswith('scene ') and layer.name().endswith('(.ehc)')
    decoded, original = gdal.Open(layer.source()), gdal.Open(scene)
    assert decoded.GetGeoTransform() == original.GetGeoTransform()
    # unchanged file: the cached GeoTIFF is reused at once, no second task
    again = plugin.opener.open(ehc_file)
    assert again.source() == layer.source() and len(tasks) == 1


def test_a_file_that_cannot_be_decoded_says_why(plugin, gui_iface, message_bar, fresh_cache, tmp_path):
    bad = tmp_path / 'broken.ehc'
    bad.write_bytes(b'not an ehc file at all')
    _result, added = _open_and_wait(plugin.opener, str(bad))
    assert not added and not QgsProject.instance().mapLayers()
    (text,) = [item.text() for item in message_bar.items()]
    assert text.startswith('broken.ehc: ') and 'Traceback' not in text
    assert not fresh_cache.exists() or os.listdir(fresh_cache) == []


def test_the_browser_shows_ehc_files_with_their_info(plugin, ehc_file, fresh_cache, installed_model):
    providers = [p for p in QgsApplication.dataItemProviderRegistry().providers() if p.name() == 'EnMAP Compress']
    (provider,) = providers
    assert provider.createDataItem(ehc_file + '.missing', None) is None
    item = provider.createDataItem(ehc_file, None)
    assert item is not None and item.name() == 'scene.ehc' and item.state() == QgsDataItem.Populated
    info = item.toolTip()
    assert f'model {installed_model}, q5' in info and 'bpppb' in info and 'KB on disk' in info
    assert '48 x 40 px, 224 bands' in info
    from enmap_compress.plugin.gui.opener import item_info, tooltip_text
    assert info == tooltip_text(item_info(ehc_file))
    assert tooltip_text('<a href="x">R&D\nb') == '<qt>&lt;a href="x"&gt;R&amp;D<br>b</qt>'  # shown, not a link
    added = []
    plugin.opener.opened.connect(added.append)
    assert item.handleDoubleClick()
    assert wait_for(lambda: added, TIMEOUT_S)
    assert [a.text() for a in item.actions(None)] == ['Open (decode to a cached GeoTIFF)']


def test_layer_add_menu_opens_the_chosen_files(plugin, gui_iface, ehc_file, fresh_cache, monkeypatch):
    from qgis.PyQt.QtWidgets import QFileDialog

    (action,) = gui_iface.add_layer_actions
    monkeypatch.setattr(QFileDialog, 'getOpenFileNames', lambda *args: ([ehc_file], ''))  # the user's choice
    added = []
    plugin.opener.opened.connect(added.append)
    action.trigger()
    assert wait_for(lambda: added, TIMEOUT_S) and added[0].bandCount() == 224


def test_the_cache_limit_is_a_setting(plugin, ehc_file, fresh_cache, tmp_path):
    from enmap_compress.plugin.gui import opener

    QgsSettings().setValue(opener.CACHE_LIMIT_KEY, 0.001)  # about 1 KB: every entry is over it
    try:
        copy = str(tmp_path / 'copy.ehc')
        shutil.copyfile(ehc_file, copy)
        _open_and_wait(plugin.opener, ehc_file)
        _open_and_wait(plugin.opener, copy)
        assert len(os.listdir(fresh_cache)) == 2, 'both are in use as layers: neither is removed'
        QgsProject.instance().removeAllMapLayers()
        opener.decode_cache().trim()
        assert os.listdir(fresh_cache) == []
    finally:
        QgsSettings().remove(opener.CACHE_LIMIT_KEY)


def test_two_files_decoded_at_once_both_open_under_a_small_cache_limit(plugin, message_bar, ehc_file, fresh_cache,
                                                                       tmp_path):
    """The first decode to be added trimmed the cache to its limit, and the other decode's finished file was not a
    layer yet: it was removed, and that open failed with "decoding failed"."""
    from enmap_compress.plugin.gui import opener

    QgsSettings().setValue(opener.CACHE_LIMIT_KEY, 0.001)  # about 1 KB: every entry is over it
    try:
        copy = str(tmp_path / 'copy.ehc')
        shutil.copyfile(ehc_file, copy)
        added = []
        plugin.opener.opened.connect(added.append)
        jobs = [plugin.opener.open(ehc_file), plugin.opener.open(copy)]
        deadline = time.monotonic() + TIMEOUT_S  # both written before either is added (the main thread is busy)
        while not all(os.path.isfile(job.target) for job in jobs) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert wait_for(lambda: not plugin.opener.running(), TIMEOUT_S)
        assert sorted(layer.customProperty('enmapcompress/ehc') for layer in added) == sorted([ehc_file, copy])
        assert [item.text() for item in message_bar.items()] == []
    finally:
        QgsSettings().remove(opener.CACHE_LIMIT_KEY)


def test_a_file_decoded_after_its_project_was_closed_is_not_added_to_the_next(plugin, message_bar, ehc_file,
                                                                            fresh_cache):
    """New project (or another one opened) while an .ehc decodes: its layer arrived in the next project."""
    job = plugin.opener.open(ehc_file)
    QgsProject.instance().clear()
    assert wait_for(lambda: not plugin.opener.running(), TIMEOUT_S)
    assert QgsProject.instance().mapLayers() == {} and job.done
    (text,) = [item.text() for item in message_bar.items()]
    assert text.startswith('scene.ehc: decoded, but not added: its project was closed')


def test_unloading_the_plugin_stops_its_decodes(plugin, message_bar, ehc_file, fresh_cache, monkeypatch):
    """Plugin Manager's unload (or a reload) while an .ehc decodes: the decode ran on and added its layer from a
    plugin that was gone. It is cancelled, and QGIS is told Complete (a cancel is no "Task failed")."""
    import threading

    from qgis.core import QgsTask

    from enmap_compress.plugin.processing import algorithms

    manager, announced = QgsApplication.taskManager(), []

    def record(task_id, status):
        if status in (QgsTask.Complete, QgsTask.Terminated) and manager.task(task_id).description().endswith(
                'opening scene.ehc (cancelled, nothing written)'):
            announced.append(status)

    running, unloaded = threading.Event(), threading.Event()

    def after_unload(self, parameters, context, feedback):
        running.set()
        unloaded.wait(TIMEOUT_S)
        return execute(self, parameters, context, feedback)

    execute = algorithms.DecompressAlgorithm.execute
    monkeypatch.setattr(algorithms.DecompressAlgorithm, 'execute', after_unload)
    manager.statusChanged.connect(record)
    try:
        job = plugin.opener.open(ehc_file)
        assert running.wait(TIMEOUT_S)  # (a task cancelled before it runs ends at once, Terminated, told nowhere)
        plugin.unload()
        unloaded.set()
        assert wait_for(lambda: job.done and announced, TIMEOUT_S)
    finally:
        manager.statusChanged.disconnect(record)
    assert QgsProject.instance().mapLayers() == {}
    assert announced == [QgsTask.Complete]
    assert [item.text() for item in message_bar.items()] == ['scene.ehc: cancelled']
    assert not fresh_cache.exists() or list(fresh_cache.glob('*.tif')) == []


@pytest.mark.parametrize('value', ['nan', 'inf', '1e400', '-5'])
def test_a_cache_limit_that_is_no_size_falls_back_to_the_default(value):
    """'nan' raised ValueError and 'inf' OverflowError on every open of an .ehc."""
    from enmap_compress.plugin.gui import opener

    QgsSettings().setValue(opener.CACHE_LIMIT_KEY, value)
    try:
        assert opener.decode_cache().limit_bytes == opener.CACHE_LIMIT_MB * 1024 * 1024
    finally:
        QgsSettings().remove(opener.CACHE_LIMIT_KEY)


def test_a_file_gone_from_the_browser_says_so(plugin, message_bar, fresh_cache, tmp_path):
    """os.stat of the cache key raised FileNotFoundError out of the Browser's double-click."""
    result = plugin.opener.open(str(tmp_path / 'gone.ehc'))
    assert result is None and not plugin.opener.running()
    (text,) = [item.text() for item in message_bar.items()]
    assert text.startswith('gone.ehc: cannot read it') and 'Traceback' not in text


def test_a_damaged_cache_entry_is_decoded_again(plugin, ehc_file, fresh_cache):
    """A cached GeoTIFF cut to nothing outside the plugin failed every later open of its file."""
    _open_and_wait(plugin.opener, ehc_file)
    QgsProject.instance().removeAllMapLayers()
    flush_deletes()
    (entry,) = fresh_cache.glob('*.tif')
    entry.write_bytes(b'')
    _result, added = _open_and_wait(plugin.opener, ehc_file)
    assert added and added[0].isValid() and added[0].bandCount() == 224 and entry.stat().st_size > 0


def test_the_decompress_entry_opens_the_processing_dialog(plugin, gui_iface, monkeypatch):
    import qgis.utils
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()  # the one thing pytest-qgis's iface lacks for Processing's file widgets
    monkeypatch.setattr(qgis.utils.iface, 'browserModel', lambda: model, raising=False)
    action = plugin.actions['decompress']
    assert action.text() == 'Decompress…'
    assert action in next(iter(gui_iface.raster_menu.values()))
    action.trigger()
    dialog = plugin.dialogs[-1]
    assert dialog.isVisible() and dialog.algorithm().id() == 'enmapcompress:decompress'
    dialog.close()
    flush_deletes()


@pytest.fixture
def evaluated_pair(plugin, scene_layer, tmp_path):
    """The test scene and the reconstruction a dialog run put on the map."""
    dialog = plugin.open_dialog(scene_layer)
    dialog.device_combo.setCurrentIndex(1)
    dialog.quality_spin.setValue(2)
    dialog.output_widget.setFilePath(str(tmp_path / 'pair.ehc'))
    job = dialog.start()
    assert wait_for(lambda: job.outcome is not None, TIMEOUT_S) and job.outcome.ok, job.outcome.message
    dialog.close()
    (reconstruction,) = [lay for lay in QgsProject.instance().mapLayers().values()
                         if lay.customProperty('enmapcompress/role') == 'reconstruction']
    return scene_layer, reconstruction


def test_the_spectrum_inspector_shows_both_spectra_and_their_difference(plugin, gui_iface, evaluated_pair):
    from osgeo import gdal
    from qgis.gui import QgsMapCanvas, QgsMapMouseEvent

    from enmap_compress.plugin.core.preview import wavelengths

    original, reconstruction = evaluated_pair
    canvas = QgsMapCanvas()
    canvas.resize(400, 400)
    canvas.setDestinationCrs(original.crs())
    canvas.setExtent(original.extent())
    canvas.setLayers([original])
    canvas.refresh()
    monkey_canvas = gui_iface._iface.mapCanvas
    gui_iface._iface.mapCanvas = lambda: canvas
    try:
        plugin.actions['spectrum'].trigger()
        tool, dock = plugin.spectrum_tool, plugin.spectrum_dock
        assert canvas.mapTool() is tool and dock in gui_iface.docks
        assert dock.reconstructed_combo.currentLayer() is reconstruction
        assert dock.original_combo.currentLayer() is original, 'the input is paired by itself'
        x, y = 20, 13  # a pixel (column, row) of the scene
        transform = original.dataProvider().extent()
        px = original.rasterUnitsPerPixelX()
        point = QgsPointXY(transform.xMinimum() + (x + 0.5) * px,
                           transform.yMaximum() - (y + 0.5) * original.rasterUnitsPerPixelY())
        screen = canvas.getCoordinateTransform().transform(point)
        event = QgsMapMouseEvent(canvas, QEvent.MouseButtonPress, QPoint(int(screen.x()), int(screen.y())),
                                 Qt.LeftButton)
        tool.canvasPressEvent(event)
        plot = dock.plot
        a_ds, b_ds = gdal.Open(original.source()), gdal.Open(reconstruction.source())
        a = a_ds.ReadAsArray(x, y, 1, 1)[:, 0, 0].astype(float)
        b = b_ds.ReadAsArray(x, y, 1, 1)[:, 0, 0].astype(float)
        nodata = a_ds.GetRasterBand(1).GetNoDataValue()
        a[a == nodata], b[b == nodata] = np.nan, np.nan
        assert np.allclose(plot.original, a, equal_nan=True) and np.allclose(plot.reconstructed, b, equal_nan=True)
        assert np.allclose(plot.difference(), b - a, equal_nan=True)
        assert plot.wavelengths == wavelengths(original.source())
        assert 'RMSE' in dock.info_label.text() and 'DN' in dock.info_label.text()
        image = plot.grab().toImage()
        colours = {image.pixel(i, j) for i in range(0, image.width(), 3) for j in range(0, image.height(), 3)}
        assert len(colours) > 4, 'the plot draws curves'
        plugin.actions['spectrum'].trigger()  # toggles off
        assert canvas.mapTool() is not tool
    finally:
        gui_iface._iface.mapCanvas = monkey_canvas
