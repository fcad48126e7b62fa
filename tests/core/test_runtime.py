"""Device choice and the model registry (CPU here; the CUDA paths are exercised with a fake onnxruntime)."""
import pytest

from enmap_compress.plugin.core import runtime
from enmap_compress.plugin.core.errors import DeviceError, ModelNotFoundError


class FakeOrt:
    def __init__(self, providers):
        self._providers = providers

    def get_available_providers(self):
        return self._providers


def test_cpu_only_onnxruntime(monkeypatch):
    monkeypatch.setattr(runtime, 'onnxruntime', lambda: FakeOrt(['CPUExecutionProvider']))
    assert runtime.choose_device('auto').device == 'cpu'
    assert 'CPU only' in runtime.choose_device('auto').reason
    with pytest.raises(DeviceError, match='onnxruntime-gpu'):
        runtime.choose_device('cuda')


def test_cuda_listed(monkeypatch):
    monkeypatch.setattr(runtime, 'onnxruntime', lambda: FakeOrt(['CUDAExecutionProvider', 'CPUExecutionProvider']))
    choice = runtime.choose_device('auto')
    assert choice.device == 'cuda' and choice.providers[0] == 'CUDAExecutionProvider'
    assert runtime.choose_device('cpu').device == 'cpu'


def test_unknown_device():
    with pytest.raises(DeviceError, match='unknown device'):
        runtime.choose_device('tpu')


def test_registry_lists_pca_first_and_reads_metadata():
    models = runtime.list_models()
    assert models[0].model_id == 'pca'
    meta = models[0].meta
    assert meta.id == 'pca' and len(meta.quality_levels) == 10
    steps = [q.step for q in meta.quality_levels]
    assert steps == sorted(steps, reverse=True)


def test_bundled_models_keep_their_enum_index_when_models_are_added():
    # the MODEL enum index is what saved Processing models and scripts store: earlier ids keep their place
    assert runtime.PREFERRED_ORDER[:4] == ('pca', 'cae1d', 'hycot', 'rdnet')
    bundled = [p.model_id for p in runtime.list_models() if p.model_id in runtime.PREFERRED_ORDER]
    assert bundled == [m for m in runtime.PREFERRED_ORDER if m in bundled]


def test_missing_model_names_what_is_installed():
    with pytest.raises(ModelNotFoundError, match='installed: pca'):
        runtime.find_model('nope')


def test_runner_on_cpu_reports_its_provider():
    runner = runtime.OnnxRunner(runtime.find_model('pca'), 'cpu', threads=1)
    assert runner.provider == 'CPUExecutionProvider'
