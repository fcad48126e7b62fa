"""Shared fixtures of the GUI tests, loaded by `pytest_plugins = ['gui_fixtures']` in tests/qgis/test_gui_*.py
(pytest puts this folder on sys.path); plain helpers are in gui_helpers.py.

- `installed_model`: the bundled models, or, while models/ is still empty, a small PCA model fitted on a synthetic
  scene in a session folder (ENMAP_COMPRESS_MODELS), so the GUI can be tested before the real models exist.
- `gui_iface`: pytest-qgis's iface stub plus what the stub lacks (a real QgsMessageBar, the layer-type actions,
  the Raster menu), recording every add/remove call.
- `plugin`: the plugin loaded with initGui() through classFactory, unloaded afterwards.
- `scene`, `wide_scene`: synthetic EnMAP scenes (one and two tiles wide); `scene_layer`: one in the project with
  a non-default RGB renderer and stretch.
"""
import os

import numpy as np
import pytest
from gui_helpers import GuiIface, flush_deletes, styled_layer
from qgis.core import QgsProject
from qgis.gui import QgsMessageBar

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _card(rows):
    lines = ['# pca — PCA transform coding (test model fitted on a synthetic scene)', '',
             '**What it is.** A PCA transform codec fitted on a synthetic EnMAP scene, for the GUI tests only.', '',
             '| quality | real bpppb | PSNR dB | mean SA ° | max abs error DN |', '|---|---|---|---|---|']
    lines += [f'| {q} | {b:.4f} | {p:.2f} | {s:.3f} | {m:.0f} |' for q, b, p, s, m in rows]
    return '\n'.join(lines) + '\n'


def build_test_model(folder):
    """A `pca` model package in `folder`/pca from a synthetic scene (no real data needed)."""
    from enmap_compress.plugin.core.enmap import open_spectral
    from tools import synthetic
    from training.model_package import write_model_package
    from training.train_pca import STEPS, fit_pca, linear_graph

    path = synthetic.write_scene(os.path.join(folder, 'train.tif'), 64, 64, seed=11)
    with open_spectral(path) as raster:
        view = raster.hyspecnet_view(0, 0, raster.width, raster.height).reshape(202, -1).T
    spectra = np.clip(view[view.any(axis=1)], 0, 1e4) * 1e-4
    mean, basis, _ = fit_pca(spectra)
    meta = {'id': 'pca', 'name': 'PCA (test)', 'kind': 'pixel', 'band_set': 'hyspecnet202', 'input_bands': 202,
            'latent_channels': int(basis.shape[1]), 'normalisation': {'clip_dn': [0, 10000], 'scale': 1e-4},
            'quality_levels': [{'level': i + 1, 'step': s} for i, s in enumerate(STEPS)], 'format_version': 1}
    rows = [(q, 0.04 * q * q, 30 + 2.5 * q, 3.0 / q, 900 / q) for q in range(1, 11)]
    write_model_package(os.path.join(folder, 'pca'), linear_graph('pca_encoder', mean, basis, True),
                        linear_graph('pca_decoder', mean, np.ascontiguousarray(basis.T), False), meta, _card(rows))


@pytest.fixture(scope='session')
def installed_model(tmp_path_factory):
    """The id of an installed model ('pca'), building the test model when models/ is empty."""
    from enmap_compress.plugin.core import runtime

    if not runtime.list_models():
        folder = tmp_path_factory.mktemp('test_models')
        build_test_model(str(folder))
        os.environ['ENMAP_COMPRESS_MODELS'] = str(folder)
    return runtime.list_models()[0].model_id


@pytest.fixture(scope='session')
def message_bar(qgis_app):
    return QgsMessageBar()


@pytest.fixture
def gui_iface(qgis_iface, message_bar):
    message_bar.clearWidgets()
    return GuiIface(qgis_iface, message_bar)


@pytest.fixture
def plugin(gui_iface, qgis_processing, installed_model):
    import enmap_compress

    loaded = enmap_compress.classFactory(gui_iface)
    loaded.initGui()
    yield loaded
    loaded.unload()
    flush_deletes()


@pytest.fixture(scope='session')
def scene(tmp_path_factory):
    from tools import synthetic

    return synthetic.write_scene(str(tmp_path_factory.mktemp('scene') / 'scene.tif'), 48, 40, seed=5)


@pytest.fixture(scope='session')
def wide_scene(tmp_path_factory):
    """Two tiles of the default 256-pixel tiling, so a run can be cancelled between them."""
    from tools import synthetic

    return synthetic.write_scene(str(tmp_path_factory.mktemp('wide') / 'wide_scene.tif'), 300, 24, seed=6)


@pytest.fixture
def scene_layer(scene, qgis_app):
    layer = styled_layer(scene, 'scene')
    yield layer
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()



@pytest.fixture(autouse=True)
def fresh_dialog_settings(qgis_app):
    """Each test opens the dialog as a first-time user: the remembered choices are cleared before and after."""
    from qgis.core import QgsSettings

    from enmap_compress.plugin.gui.dialog import SETTINGS_GROUP

    QgsSettings().remove(SETTINGS_GROUP)
    yield
    QgsSettings().remove(SETTINGS_GROUP)
