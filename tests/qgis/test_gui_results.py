"""Results on the map: the group belongs to its input (not to a layer name), re-runs replace their layers, names
are short, error maps share one colour scale in DN, and messages expire and replace each other, PSNR first."""
import dataclasses
import os
import shutil

import pytest
from qgis.core import Qgis, QgsProject, QgsSettings

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)

PRODUCT_NAME = 'ENMAP01-____L2A-DT0000999999_20240101T101010Z_001_V010400_20240102T000000Z'


@pytest.fixture(scope='module')
def outputs(scene, installed_model, tmp_path_factory):
    """A real reconstruction and error raster of the test scene (core evaluate, as the job's algorithm does)."""
    from enmap_compress.plugin.core.evaluate import evaluate

    folder = tmp_path_factory.mktemp('results')
    result = evaluate(scene, str(folder / 'rec.tif'), installed_model, 4, 'cpu', error=str(folder / 'err.tif'))
    return {'RECONSTRUCTED': str(folder / 'rec.tif'), 'ERROR': str(folder / 'err.tif'), 'PSNR': result.psnr,
            'SA': result.sa_deg, 'BPPPB': result.bpppb, 'COMPRESSION_RATIO': result.compression_ratio,
            'MAX_ABS_ERROR': result.max_abs_error_dn}


@pytest.fixture
def project():
    yield QgsProject.instance()
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


def _request(source, name, model='pca', quality=4, max_error=None, layer_id=''):
    from enmap_compress.plugin.gui.job import JobRequest

    return JobRequest(source=source, layer_id=layer_id, layer_name=name, model_id=model, quality=quality,
                      device_index=1, output=os.path.splitext(source)[0] + '.ehc', max_error=max_error)


def _copy_outputs(outputs, folder, stem):
    copied = dict(outputs)
    for key in ('RECONSTRUCTED', 'ERROR'):
        copied[key] = str(folder / f'{stem}_{key.lower()}.tif')
        shutil.copyfile(outputs[key], copied[key])
    return copied


def test_scene_labels_are_short():
    from enmap_compress.plugin.gui.results import scene_label

    assert scene_label(f'/vsizip/data/{PRODUCT_NAME}.ZIP/{PRODUCT_NAME}/{PRODUCT_NAME}-SPECTRAL_IMAGE.TIF') == \
        'L2A DT0000999999_001 2024-01-01'
    assert scene_label(f'{PRODUCT_NAME}-SPECTRAL_IMAGE') == 'L2A DT0000999999_001 2024-01-01'
    assert scene_label('scene') == 'scene'
    long = scene_label('a_very_long_name_of_a_mosaic_that_someone_made_from_many_tiles_2024')
    assert len(long) <= 40 and '…' in long and long.startswith('a_very') and long.endswith('2024')


def test_groups_belong_to_their_input_not_to_a_layer_name(outputs, project, tmp_path):
    from enmap_compress.plugin.gui import results

    first, second = _copy_outputs(outputs, tmp_path, 'a'), _copy_outputs(outputs, tmp_path, 'b')
    group_a, _ = results.add_result_layers(_request('/data/a/scene.tif', 'scene'), first, project)
    group_b, _ = results.add_result_layers(_request('/data/b/scene.tif', 'scene'), second, project)
    assert group_a is not group_b, 'another scene with the same layer name must get its own group'
    group_a.setName('renamed by the user')
    again, _ = results.add_result_layers(_request('/data/a/scene.tif', 'scene', quality=6),
                                         _copy_outputs(outputs, tmp_path, 'a6'), project)
    assert again is group_a and len(again.findLayers()) == 4


def test_results_never_arrive_hidden(outputs, project, tmp_path):
    from enmap_compress.plugin.gui import results

    request = _request('/data/scene.tif', 'scene')
    group, _ = results.add_result_layers(request, _copy_outputs(outputs, tmp_path, 'x'), project)
    parent = project.layerTreeRoot().addGroup('my folder')
    parent.addChildNode(group.clone())
    project.layerTreeRoot().removeChildNode(group)
    parent.setItemVisibilityChecked(False)
    nested = next(g for g in parent.children())
    nested.setItemVisibilityChecked(False)
    group, layers = results.add_result_layers(request, _copy_outputs(outputs, tmp_path, 'y'), project)
    assert group is nested
    assert group.isVisible() and all(project.layerTreeRoot().findLayer(layer).isVisible() for layer in layers)


def test_a_rerun_replaces_its_layers_instead_of_stacking(outputs, project, tmp_path):
    from enmap_compress.plugin.gui import results

    request = _request('/data/scene.tif', 'scene')
    same = _copy_outputs(outputs, tmp_path, 'same')
    group, first = results.add_result_layers(request, same, project)
    first_ids = {layer.id() for layer in first}
    group, second = results.add_result_layers(request, same, project)
    assert len(group.findLayers()) == 2 and len(project.mapLayers()) == 2
    assert first_ids.isdisjoint(project.mapLayers())
    assert [node.name() for node in group.findLayers()] == ['scene pca q4 error (RMSE, DN)',
                                                            'scene pca q4 reconstructed']
    _, third = results.add_result_layers(request, _copy_outputs(outputs, tmp_path, 'other'), project)
    assert [layer.name() for layer in third] == ['scene pca q4 error (RMSE, DN) (2)', 'scene pca q4 reconstructed (2)']


def test_names_say_the_mode(outputs, project, tmp_path):
    from enmap_compress.plugin.gui import results

    _, bounded = results.add_result_layers(_request('/d/s.tif', 's', 'rdnet', max_error=10),
                                           _copy_outputs(outputs, tmp_path, 'e'), project)
    _, lossless = results.add_result_layers(_request('/d/s.tif', 's', 'rdnet', max_error=0),
                                            _copy_outputs(outputs, tmp_path, 'l'), project)
    assert bounded[1].name() == 's rdnet ≤ 10 DN reconstructed'
    assert lossless[1].name() == 's rdnet lossless reconstructed'
    per_band = dataclasses.replace(_request('/d/s.tif', 's', 'rdnet'), band_max_errors='/d/limits.csv')
    assert results.setting_label(per_band) == 'rdnet per-band'
    assert bounded[0].customProperty('enmapcompress/role') == 'error'
    assert bounded[1].customProperty('enmapcompress/original') == '/d/s.tif'


def test_error_maps_of_different_runs_share_one_scale_in_dn(outputs, project, tmp_path):
    from enmap_compress.plugin.gui import results
    from enmap_compress.plugin.processing import styling

    _, (error_a, _rec) = results.add_result_layers(_request('/d/a.tif', 'a'), _copy_outputs(outputs, tmp_path, 'a'),
                                                   project)
    _, (error_b, _rec) = results.add_result_layers(_request('/d/b.tif', 'b', quality=9),
                                                   _copy_outputs(outputs, tmp_path, 'b'), project)
    for layer in (error_a, error_b):
        renderer = layer.renderer()
        assert renderer.type() == 'singlebandpseudocolor' and renderer.band() == 1
        assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, styling.ERROR_SCALE_DN)
        labels = [label for label, _colour in renderer.legendSymbologyItems()]
        assert labels and all(label.endswith(' DN') for label in labels), labels
        assert renderer.shader().rasterShaderFunction().legendSettings().suffix() == ' DN'
    QgsSettings().setValue(styling.ERROR_SCALE_KEY, 120)
    try:
        styling.style_error(error_a)
        assert error_a.renderer().classificationMax() == 120
    finally:
        QgsSettings().remove(styling.ERROR_SCALE_KEY)


def test_messages_expire_replace_each_other_and_start_with_psnr(outputs, project, tmp_path, gui_iface, message_bar):
    from enmap_compress.plugin.gui import results
    from enmap_compress.plugin.gui.job import JobOutcome

    request = _request('/d/scene.tif', 'scene')
    for stem in ('m1', 'm2', 'm3'):
        results.present(gui_iface, request, JobOutcome(True, False, _copy_outputs(outputs, tmp_path, stem)))
    results.present(gui_iface, request, JobOutcome(False, True))
    results.present(gui_iface, request, JobOutcome(True, False, _copy_outputs(outputs, tmp_path, 'm4')))
    (item,) = message_bar.items()
    assert item.text().startswith(f"PSNR {outputs['PSNR']:.2f} dB at {outputs['BPPPB']:.4f} bpppb")
    assert 'scene, pca q4' in item.text()
    assert item.duration() == results.SUCCESS_SECONDS > 0 and item.level() == Qgis.Success


def test_a_failure_is_not_replaced_by_another_runs_message(outputs, project, tmp_path, gui_iface, message_bar):
    """Two runs at once: the one that failed told it on the message bar, and the other finishing a moment later took
    that message away (the dialogs may be closed: it was the failure's only word). A re-run of the same output
    still replaces it."""
    from enmap_compress.plugin.gui import results
    from enmap_compress.plugin.gui.job import JobOutcome

    failed, other = _request('/d/a.tif', 'a'), _request('/d/b.tif', 'b')
    results.present(gui_iface, failed, JobOutcome(False, False, {}, 'the disk is full'))
    results.present(gui_iface, other, JobOutcome(True, False, _copy_outputs(outputs, tmp_path, 'b')))
    results.present(gui_iface, other, JobOutcome(True, False, _copy_outputs(outputs, tmp_path, 'b2')))
    texts = [item.text() for item in message_bar.items()]
    assert len(texts) == 2 and 'a: the disk is full' in texts and any('b, pca q4' in text for text in texts)
    results.present(gui_iface, failed, JobOutcome(True, False, _copy_outputs(outputs, tmp_path, 'a')))
    (item,) = message_bar.items()
    assert 'a, pca q4' in item.text() and item.level() == Qgis.Success


def test_a_message_shows_its_text_not_markup(project, gui_iface, message_bar):
    """The message bar renders its text as HTML: a failure message quoting a hostile .ehc header field showed a
    clickable link, and one holding 'R&D' or 'a < b' lost what followed."""
    from qgis.PyQt.QtWidgets import QTextBrowser

    from enmap_compress.plugin.gui import results
    from enmap_compress.plugin.gui.job import JobOutcome

    message = "bad.ehc: the header field codec.model_id is not valid ('<a href=\"https://ev.il\">Fix</a>') R&D a<b c"
    results.present(gui_iface, _request('/d/scene.tif', 'scene'), JobOutcome(False, False, {}, message))
    (item,) = message_bar.items()
    (browser,) = item.findChildren(QTextBrowser)
    assert message in browser.toPlainText() and '<a href' not in browser.toHtml()


def test_the_toolbox_error_layer_gets_the_same_scale(plugin, scene_layer, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition

    from enmap_compress.plugin.processing import styling

    project = QgsProject.instance()
    err = str(tmp_path / 'err.tif')
    context = QgsProcessingContext()
    context.setProject(project)
    processing.runAndLoadResults('enmapcompress:evaluate', {
        'INPUT': scene_layer.id(), 'MODEL': 0, 'QUALITY': 2, 'DEVICE': 1,
        'RECONSTRUCTED': QgsProcessingOutputLayerDefinition(str(tmp_path / 'rec.tif'), project),
        'ERROR': QgsProcessingOutputLayerDefinition(err, project)}, context=context)
    (layer,) = [lay for lay in project.mapLayers().values() if lay.source() == err]
    assert layer.renderer().classificationMax() == styling.ERROR_SCALE_DN
    assert layer.customProperty('enmapcompress/role') == 'error'

