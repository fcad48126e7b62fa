"""The Compress dialog's controls: model card, quality, device, output name and the size estimate."""
import os
import sys

import pytest
from gui_helpers import wait_for
from qgis.PyQt.QtCore import Qt

CARD = """# demo — a demo model

**What it is.** A *demo* codec for the tests.

Some other paragraph.

| quality | real bpppb | PSNR dB | mean SA ° | max abs error DN |
|---|---|---|---|---|
| 2 | 0.2000 | 35.10 | 1.500 | 700 |
| 1 | 0.1000 | 33.00 | 2.000 | 900 |

| other | table |
|---|---|
| 1 | 2 |
"""

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def test_card_rows_are_read_by_column_name():
    from enmap_compress.plugin.core import cards

    rows = cards.card_rows(CARD)
    assert [(r.level, r.bpppb, r.psnr, r.sa_deg, r.max_abs_error_dn) for r in rows] == \
        [(1, 0.1, 33.0, 2.0, 900.0), (2, 0.2, 35.1, 1.5, 700.0)]
    assert cards.expected_for(rows, 2).psnr == 35.1 and cards.expected_for(rows, 7) is None
    assert cards.card_summary(CARD) == 'A *demo* codec for the tests.'
    assert cards.card_rows('# no table here') == []
    assert cards.estimated_bytes(1000, 0.5) == 1000 * 202 * 0.5 / 8


@pytest.fixture
def dialog(plugin, scene_layer):
    opened = plugin.open_dialog(scene_layer)
    yield opened
    opened.close()


def test_quality_slider_spin_and_card_table_stay_in_step(dialog):
    dialog.quality_slider.setValue(8)
    assert dialog.quality() == 8 == dialog.quality_spin.value()
    model = dialog.model()
    if model.rows:
        assert dialog.card_table.rowCount() == len(model.rows)
        selected = dialog.card_table.selectionModel().selectedRows()
        assert [model.rows[i.row()].level for i in selected] == [8]
        dialog._on_card_row_clicked(2, 0)
        assert dialog.quality() == model.rows[2].level
        assert f'{model.rows[2].bpppb:.3f} bpppb' in dialog.expected_label.text()
    assert model.summary and dialog.card_label.toolTip() == model.summary
    assert dialog.card_label.text().rstrip(' …') in model.summary
    viewer = dialog.show_card()
    assert model.model_id in viewer.windowTitle() and 'bpppb' in viewer.browser.toPlainText()
    viewer.close()


def test_every_label_shows_its_text_as_it_is(dialog):
    from qgis.PyQt.QtWidgets import QLabel

    labels = [w for w in vars(dialog).values() if isinstance(w, QLabel)]  # the ones the dialog writes to
    assert dialog.status_label in labels and dialog.input_problem in labels and dialog.card_label in labels
    assert {label.textFormat() for label in labels} == {Qt.PlainText}  # (an error naming '<b>x.tif' is no markup)


def test_size_estimate_is_valid_pixels_times_bands_times_rate(dialog, scene):
    from osgeo import gdal

    from enmap_compress.plugin.gui import estimate

    dialog.quality_spin.setValue(6)
    expected = dialog.expected()
    assert expected is not None, 'the model card has no rate table'
    dataset = gdal.Open(scene)  # keep the dataset referenced while its band is used
    band = dataset.GetRasterBand(112)
    data = band.ReadAsArray()
    valid = int((data != band.GetNoDataValue()).sum())
    found = estimate.estimate(scene, expected.bpppb)
    assert wait_for(lambda: not dialog.counting(), 30), 'the valid pixels are counted in a background task'
    assert found.valid_pixels == valid  # the scene is smaller than the sampling size: the count is exact
    assert found.compressed_bytes == round(valid * 202 * expected.bpppb / 8)
    assert estimate.human_bytes(found.compressed_bytes) in dialog.size_label.text()
    assert f'{valid:,} valid pixels' in dialog.size_label.text()


def test_device_choices_follow_the_algorithm_enum_and_say_what_runs(dialog):
    from enmap_compress.plugin.core import runtime

    assert [dialog.device_combo.itemData(i) for i in range(dialog.device_combo.count())] == list(runtime.DEVICES)
    auto = dialog.device_combo.itemText(0)
    cuda_enabled = dialog.device_combo.model().item(2).isEnabled()
    if cuda_enabled:
        assert 'GPU' in auto
    else:
        assert auto == 'auto — CPU only' and 'CPU only' in dialog.device_label.text()


def test_output_name_follows_model_and_quality_until_the_user_edits_it(dialog, tmp_path):
    dialog.quality_spin.setValue(3)
    assert dialog.output_path().endswith(f'_{dialog.model().model_id}_q3.ehc')
    custom = str(tmp_path / 'mine')
    dialog.output_widget.setFilePath(custom)
    dialog.quality_spin.setValue(4)
    assert dialog.output_path() == custom + '.ehc'
    assert os.path.dirname(dialog.output_path()) == str(tmp_path)


@pytest.mark.skipif(sys.platform.startswith('win'), reason='the fake nvidia-smi is a POSIX script')
def test_a_cuda_machine_names_its_gpu(monkeypatch, tmp_path):
    from enmap_compress.plugin.gui import devices

    fake = tmp_path / 'nvidia-smi'
    fake.write_text('#!/bin/sh\necho "NVIDIA H100 80GB HBM3"\n', encoding='utf-8')
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.setattr(devices, 'providers', lambda: ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    devices.gpu_names.cache_clear()
    try:
        auto, cpu, cuda = devices.device_options()
        assert auto.label == 'auto — GPU: NVIDIA H100 80GB HBM3'
        assert cuda.enabled and cuda.label == 'cuda — NVIDIA H100 80GB HBM3'
        assert cpu.device == 'cpu' and cpu.enabled
    finally:
        devices.gpu_names.cache_clear()
