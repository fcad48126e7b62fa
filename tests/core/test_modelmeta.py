"""The model-package contract: every bundled package reads and writes back unchanged; bad fields are named."""
import copy
import json

import pytest

from enmap_compress.plugin.core.errors import ModelError
from enmap_compress.plugin.core.modelmeta import DEFAULT_TILE_SIZE, ModelMetadata, QualityLevel
from enmap_compress.plugin.core.runtime import list_models, read_onnx_metadata

pytest.importorskip('onnxruntime')

PIXEL = {'id': 'toy', 'name': 'a toy', 'kind': 'pixel', 'band_set': 'hyspecnet202', 'input_bands': 202,
         'latent_channels': 4, 'quality_levels': [{'level': 1, 'step': 0.5}, {'level': 2, 'step': 0.25}],
         'format_version': 1, 'channel_step_scale': [1.0, 1.0, 0.5, 0.5]}
SPATIAL = dict(PIXEL, kind='spatial', latent_channels=8, latent_dims=[2, 4], spatial_factor=8,
               channel_step_scale=None, entropy_model={'family': 'laplace', 'reconstruction_offset': 0.0,
                                                       'scales': [1.0] * 8})


@pytest.mark.parametrize('package', list_models(), ids=lambda p: p.model_id)
def test_bundled_packages_round_trip_exactly(package):
    raw = read_onnx_metadata(package.decoder_path)
    meta = ModelMetadata.from_json(raw, package.model_id)
    assert json.dumps(meta.to_json(), sort_keys=True) == json.dumps(raw, sort_keys=True)
    assert package.meta == meta and package.meta.id == package.model_id


def test_typed_fields_and_the_one_place_of_defaults():
    meta = ModelMetadata.from_json(json.dumps({k: v for k, v in SPATIAL.items() if v is not None}))
    assert meta.effective_tile_size == DEFAULT_TILE_SIZE['spatial'] and meta.latent_dims == (2, 4)
    assert meta.level(2) == QualityLevel(2, 0.25) and meta.entropy_model.scales == (1.0,) * 8
    assert ModelMetadata.from_json(PIXEL).effective_tile_size == DEFAULT_TILE_SIZE['pixel']
    with pytest.raises(ModelError, match='no quality level 7'):
        meta.level(7)


def test_fields_of_newer_versions_are_kept():
    raw = dict(PIXEL, future_field={'a': 1})
    assert ModelMetadata.from_json(raw).to_json()['future_field'] == {'a': 1}


def _broken(base, path, value):
    raw = copy.deepcopy(base)
    target = raw
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


@pytest.mark.parametrize('base, path, value, field', [
    (PIXEL, ('kind',), 'volumetric', '"kind"'),
    (PIXEL, ('id',), '../escape', '"id"'),
    (PIXEL, ('band_set',), 'sentinel2', '"band_set"'),
    (PIXEL, ('input_bands',), 224, '"input_bands"'),
    (PIXEL, ('latent_channels',), 0, '"latent_channels"'),
    (PIXEL, ('latent_channels',), '4', '"latent_channels"'),
    (PIXEL, ('latent_channels',), 10 ** 12, '"latent_channels"'),  # (was a MemoryError in the tile coder)
    (PIXEL, ('quality_levels',), [], '"quality_levels"'),
    (PIXEL, ('quality_levels', 0, 'step'), -1.0, '"quality_levels[0].step"'),
    (PIXEL, ('quality_levels', 1, 'level'), 1, 'more than once'),
    (PIXEL, ('quality_levels', 0, 'level'), 11, '"quality_levels[0].level"'),
    (PIXEL, ('channel_step_scale',), [1.0, 2.0], '"channel_step_scale"'),
    (PIXEL, ('channel_step_scale', 2), float('nan'), '"channel_step_scale[2]"'),
    (PIXEL, ('format_version',), 2, '"format_version"'),
    (PIXEL, ('normalisation',), {'clip_dn': [0, 4095], 'scale': 0.0001}, '"normalisation"'),
    (PIXEL, ('tile_size',), 100000, '"tile_size"'),
    (PIXEL, ('training',), 'yesterday', '"training"'),
    (SPATIAL, ('latent_dims',), [3, 4], '"latent_dims"'),
    (SPATIAL, ('spatial_factor',), KeyError, '"spatial_factor"'),
    (SPATIAL, ('entropy_model', 'family'), 'gaussian', '"entropy_model.family"'),
    (SPATIAL, ('entropy_model', 'scales'), [1.0] * 7, '"entropy_model.scales"'),
])
def test_a_bad_field_is_one_model_error_naming_it(base, path, value, field):
    raw = {k: v for k, v in _broken(base, path, value).items() if v is not None}
    with pytest.raises(ModelError, match=field.replace('[', r'\[').replace(']', r'\]').replace('.', r'\.')) as info:
        ModelMetadata.from_json(raw, 'custom package X')
    assert 'custom package X' in str(info.value)


def test_not_json_and_not_an_object():
    with pytest.raises(ModelError, match='not valid JSON'):
        ModelMetadata.from_json('{"id": ')
    with pytest.raises(ModelError, match='JSON object'):
        ModelMetadata.from_json('[1, 2]')
