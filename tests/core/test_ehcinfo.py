"""What the Browser and the layer names show of a .ehc file: the model and the bound as the user chose it."""
import pytest

from enmap_compress.plugin.core.codec import compress
from enmap_compress.plugin.core.ehcinfo import describe
from tools import synthetic

pytest.importorskip('onnxruntime')


@pytest.mark.parametrize('options, text', [
    ({'quality': 5}, 'q5'),
    ({'quality': None, 'max_error': 10}, '<= 10 DN'),
    ({'quality': None, 'max_error': 0}, 'lossless'),
    ({'quality': None, 'relative_error': 0.02, 'relative_floor': 4}, '<= 2 % of the value, at least 4 DN'),
])
def test_the_bound_is_named_as_chosen(tmp_path, options, text):
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), 20, 16, seed=2)
    quality = options.pop('quality')
    compress(scene, str(tmp_path / 'x.ehc'), 'pca', quality, 'cpu', 1, **options)
    info = describe(str(tmp_path / 'x.ehc'))
    assert info.model_id == 'pca' and info.quality_text() == text
    assert info.width == 20 and info.height == 16 and info.bpppb > 0
