"""The algorithms as Processing users meet them: processing.run, outputs loaded with the plugin's styles
(toolbox and batch dialog), batch mode over several layers, and a graphical-modeler model chaining
compress -> decompress."""
import os

import pytest
from gui_helpers import RGB, STRETCH, part_files, rgb_and_stretch, styled_layer, wait_for
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsProxyProgressTask,
)
from qgis.PyQt import sip

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_FILE = os.path.join(HERE, 'compress_decompress.model3')
CPU = 1  # DEVICE enum index

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def _layers_by_source():
    return {layer.source(): layer for layer in QgsProject.instance().mapLayers().values()}


def _finish_proxy_tasks(prefix):
    """QGIS 3.22's batch dialog leaves its QgsScopedProxyProgressTask running (a signal keeps it referenced),
    and exitQgis() would wait for it forever: finalize it as the dialog's destructor would."""
    for task in QgsApplication.taskManager().tasks():
        if task.description().startswith(prefix):
            sip.cast(task, QgsProxyProgressTask).finalize(True)
    assert wait_for(lambda: not any(t.description().startswith(prefix)
                                    for t in QgsApplication.taskManager().tasks()), 10)


def test_compress_decompress_evaluate_through_processing_run(plugin, scene, tmp_path):
    import processing

    ehc, rec = str(tmp_path / 'a.ehc'), str(tmp_path / 'a.tif')
    packed = processing.run('enmapcompress:compress', {'INPUT': scene, 'MODEL': 0, 'QUALITY': 6, 'DEVICE': CPU,
                                                       'OUTPUT': ehc})
    assert packed['OUTPUT'] == ehc and os.path.getsize(ehc) > 0
    assert packed['BPPPB'] > 0 and packed['COMPRESSION_RATIO'] == pytest.approx(16 / packed['BPPPB'])
    assert processing.run('enmapcompress:decompress', {'INPUT': ehc, 'DEVICE': CPU, 'OUTPUT': rec})['OUTPUT'] == rec
    outputs = {name: str(tmp_path / f'e_{name.lower()}{ext}') for name, ext in
               (('RECONSTRUCTED', '.tif'), ('ERROR', '.tif'), ('REPORT', '.html'), ('COMPRESSED', '.ehc'))}
    result = processing.run('enmapcompress:evaluate', {'INPUT': scene, 'MODEL': 0, 'QUALITY': 6, 'DEVICE': CPU,
                                                       **outputs})
    assert result['PSNR'] > 20 and 0 <= result['SA'] < 30 and result['BPPPB'] > 0
    assert all(os.path.isfile(path) for path in outputs.values())
    assert part_files(tmp_path) == []


def test_toolbox_outputs_load_with_the_input_style_and_the_error_ramp(plugin, scene_layer, tmp_path):
    """processing.runAndLoadResults loads outputs like the toolbox dialog: through the post-processors."""
    import processing

    project = QgsProject.instance()
    rec, err = str(tmp_path / 'rec.tif'), str(tmp_path / 'err.tif')
    context = QgsProcessingContext()
    context.setProject(project)
    processing.runAndLoadResults('enmapcompress:evaluate', {
        'INPUT': scene_layer.id(), 'MODEL': 0, 'QUALITY': 4, 'DEVICE': CPU,
        'RECONSTRUCTED': QgsProcessingOutputLayerDefinition(rec, project),
        'ERROR': QgsProcessingOutputLayerDefinition(err, project)}, context=context)
    loaded = _layers_by_source()
    assert rgb_and_stretch(loaded[rec].renderer()) == (RGB, STRETCH)
    assert loaded[err].renderer().type() == 'singlebandpseudocolor'

    out = str(tmp_path / 'dec.tif')
    ehc = str(tmp_path / 'x.ehc')
    processing.run('enmapcompress:compress', {'INPUT': scene_layer.source(), 'DEVICE': CPU, 'OUTPUT': ehc})
    processing.runAndLoadResults('enmapcompress:decompress', {
        'INPUT': ehc, 'DEVICE': CPU, 'OUTPUT': QgsProcessingOutputLayerDefinition(out, project)}, context=context)
    decoded = _layers_by_source()[out]
    assert decoded.renderer().type() == 'multibandcolor'
    bands = (decoded.renderer().redBand(), decoded.renderer().greenBand(), decoded.renderer().blueBand())
    assert bands != (1, 2, 3), 'the decompressed image should open in true colour, not bands 1-2-3'


def test_batch_dialog_over_several_layers_loads_styled_outputs(plugin, scene_layer, tmp_path):
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

    from tools import synthetic

    second = styled_layer(synthetic.write_scene(str(tmp_path / 'second.tif'), 40, 32, seed=9), 'second')
    algorithm = QgsApplication.processingRegistry().algorithmById('enmapcompress:evaluate')
    dialog = BatchAlgorithmDialog(algorithm.create())
    panel = dialog.mainWidget()
    panel.checkLoadLayersOnCompletion.setChecked(True)
    panel.addRow()
    context = QgsProcessingContext()
    rows = [(scene_layer, 'first'), (second, 'second')]
    for row, (layer, name) in enumerate(rows):
        for parameter, value in (('INPUT', layer.source()), ('QUALITY', 3 + row), ('DEVICE', CPU)):
            panel.wrappers[row][panel.parameter_to_column[parameter]].setParameterValue(value, context)
        for output in ('RECONSTRUCTED', 'ERROR'):
            widget = panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column[output])
            widget.setValue(str(tmp_path / f'{name}_{output.lower()}.tif'))
    assert panel.batchRowCount() == 2
    try:
        dialog.runAlgorithm()
    finally:
        dialog.close()
        _finish_proxy_tasks('Batch Processing')
    loaded = _layers_by_source()
    for _layer, name in rows:
        rec, err = str(tmp_path / f'{name}_reconstructed.tif'), str(tmp_path / f'{name}_error.tif')
        assert rec in loaded and err in loaded, f'batch row {name} did not load its outputs'
        assert rgb_and_stretch(loaded[rec].renderer())[0] == RGB
        assert loaded[err].renderer().type() == 'singlebandpseudocolor'


def test_modeler_model_chains_compress_and_decompress(plugin, scene, tmp_path):
    import processing

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(MODEL_FILE), MODEL_FILE
    assert [c.algorithmId() for c in sorted(model.childAlgorithms().values(), key=lambda c: c.childId())] == \
        ['enmapcompress:compress', 'enmapcompress:decompress']
    ehc, rec = str(tmp_path / 'model.ehc'), str(tmp_path / 'model.tif')
    outputs = {p.name(): p for p in model.destinationParameterDefinitions()}
    compressed = next(name for name in outputs if name.endswith(':compressed'))
    reconstructed = next(name for name in outputs if name.endswith(':reconstructed'))
    feedback = QgsProcessingFeedback()
    result = processing.run(model, {'image': scene, 'quality': 7, compressed: ehc, reconstructed: rec},
                            feedback=feedback)
    assert os.path.isfile(ehc) and os.path.isfile(rec)
    assert result[reconstructed] == rec
    from osgeo import gdal

    assert gdal.Open(rec).RasterCount == gdal.Open(scene).RasterCount


@pytest.mark.parametrize('algorithm_id', ['enmapcompress:compress', 'enmapcompress:evaluate',
                                          'enmapcompress:decompress'])
def test_the_algorithm_dialog_form_fits_its_default_size(plugin, scene_layer, algorithm_id, monkeypatch):
    """Labels and model names fit the form of the dialog as it first opens, Advanced Parameters open: an
    80-character input label and model title widened the form past it, and a horizontal scroll bar hid the file
    buttons of every row."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.gui import QgsCollapsibleGroupBoxBasic
    from qgis.PyQt.QtGui import QFont
    from qgis.PyQt.QtWidgets import QGroupBox, QScrollArea

    monkeypatch.setattr('processing.gui.ParametersPanel.iface', None)  # (pytest-qgis's stub has no browserModel)
    font = QgsApplication.font()
    desktop = QFont(font)
    desktop.setPointSizeF(9)  # QGIS's size on an X11 desktop (the offscreen platform's 12 pt fits nothing)
    QgsApplication.setFont(desktop)
    dialog = AlgorithmDialog(QgsApplication.processingRegistry().algorithmById(algorithm_id).create())
    try:
        dialog.show()
        for box in dialog.findChildren(QGroupBox):
            if 'Advanced' in box.title():
                sip.cast(box, QgsCollapsibleGroupBoxBasic).setCollapsed(False)
        QgsApplication.processEvents()
        (form,) = [area for area in dialog.mainWidget().findChildren(QScrollArea) if area.widget() is not None]
        assert form.widget().minimumSizeHint().width() <= form.viewport().width()
    finally:
        dialog.close()
        QgsApplication.setFont(font)
