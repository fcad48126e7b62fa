"""Hostile custom model packages (a copy of a bundled one, changed): each is refused with one ModelError naming the
part, before a file is written where the encoder is at fault, and never decoded to noise."""
import json
import os
import shutil

import numpy as np
import pytest
from ehc_forge import EhcParts

from enmap_compress.plugin.core import cards, codec, onnxproto
from enmap_compress.plugin.core.errors import FormatError, ModelError
from enmap_compress.plugin.core.runtime import ModelPackage, find_model
from enmap_compress.plugin.paths import MODELS_DIR
from tools import synthetic

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('s') / 'scene.tif'), width=8, height=8, seed=1)


def _package(tmp_path, change=None, model='pca', meta=None):
    """A copy of a bundled package in tmp_path/<model>; change(encoder, decoder) edits the ModelProtos, meta(dict)
    the metadata of both."""
    folder = tmp_path / model
    shutil.copytree(os.path.join(MODELS_DIR, model), folder)
    protos = [onnx.load(str(folder / f'{w}.onnx')) for w in ('encoder', 'decoder')]
    if change is not None:
        change(*protos)
    for proto, which in zip(protos, ('encoder', 'decoder')):
        if meta is not None:
            data = json.loads(proto.metadata_props[0].value)
            meta(data)
            proto.metadata_props[0].value = json.dumps(data)
        (folder / f'{which}.onnx').write_bytes(proto.SerializeToString())
    return str(folder)


def _then(name, op, *constants, dims=None, elem=TensorProto.FLOAT, **attributes):
    """A change that puts `op` (with these constant inputs) after the graph `name`'s output."""
    def change(encoder, decoder):
        graph = (encoder if name == 'encoder' else decoder).graph
        out = graph.output[0]
        graph.node[-1].output[0] = out.name + '_before'
        names = [f'c{i}' for i in range(len(constants))]
        graph.initializer.extend(numpy_helper.from_array(np.asarray(c), n) for c, n in zip(constants, names))
        graph.node.append(helper.make_node(op, [out.name + '_before', *names], [out.name], **attributes))
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info(out.name, elem, dims or ['n', 202]))
    return change


def _compress(scene, folder, tmp_path, **kw):
    return codec.compress(scene, str(tmp_path / 'out.ehc'), model=folder, quality=5, device='cpu', threads=1, **kw)


def test_external_data_is_refused_before_onnxruntime_reads_it(scene, tmp_path):
    # the decoder's sha256 (what a file names) does not cover the external file: changed weights decoded to noise
    def external(encoder, decoder):
        tensor = decoder.graph.initializer[0]
        (tmp_path / 'pca').joinpath('w.bin').write_bytes(numpy_helper.to_array(tensor).tobytes())
        tensor.ClearField('raw_data')
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = 'location', 'w.bin'
    folder = _package(tmp_path, external)
    with pytest.raises(ModelError, match='decoder.onnx keeps tensor "mean" in another file'):
        _compress(scene, folder, tmp_path)
    assert not (tmp_path / 'out.ehc').exists()


@pytest.mark.parametrize('change, meta, problem', [
    (None, lambda m: m.update(latent_channels=100), r'shape \[(\d+), 202\] .* not \[\1, 100\]: its graph disagrees'),
    (_then('encoder', 'Slice', [0], [100], [1], dims=['n', 100]), None, r'shape \[\d+, 100\]'),
    (_then('encoder', 'ReduceMean', axes=[0], keepdims=1, dims=[1, 202]), None, r'shape \[1, 202\]'),
    (_then('encoder', 'Mul', np.float32(np.nan)), None, 'gives latent values that are not finite'),
    (_then('encoder', 'Cast', to=TensorProto.INT64, elem=TensorProto.INT64), None, 'gives int64 values'),
    (None, lambda m: m['quality_levels'][4].update(step=1e-300), 'beyond 2e\\+07 quantiser steps of quality 5'),
    (_then('encoder', 'Mul', np.float32(1e30)), None, 'beyond 2e\\+07 quantiser steps'),
])
def test_an_encoder_at_odds_with_its_metadata_is_one_model_error_and_no_file(scene, tmp_path, change, meta, problem):
    # before: ValueError / IndexError deep in a latent coder, or a file of wrapped-around symbols (PSNR 5 dB)
    with pytest.raises(ModelError, match=problem):
        _compress(scene, _package(tmp_path, change, meta=meta), tmp_path)
    assert not (tmp_path / 'out.ehc').exists()


def test_a_spatial_factor_the_graph_does_not_have_writes_no_file(scene, tmp_path):
    # before: compress wrote a file that every decoder refused ("latent stream is corrupt")
    folder = _package(tmp_path, model='rdnet', meta=lambda m: m.update(spatial_factor=4))
    with pytest.raises(ModelError, match=r"rdnet.* shape \[1, 12928, 1, 1\] .* not \[1, 12928, 2, 2\]"):
        _compress(scene, folder, tmp_path)
    assert not (tmp_path / 'out.ehc').exists()


@pytest.mark.parametrize('model', ['pca', 'rdnet'])
def test_a_decoder_giving_nan_is_refused_not_decoded_to_noise(scene, tmp_path, model):
    def nan_decoder(encoder, decoder):
        if model == 'pca':
            _then('decoder', 'Mul', np.float32(np.nan))(encoder, decoder)
            return
        for node in decoder.graph.node:  # rdnet: the spectral map's bias (the folded synthesis reads it too)
            if node.op_type == 'Constant' and node.output[0] == decoder.graph.node[-1].input[2]:
                value = numpy_helper.to_array(node.attribute[0].t).copy()
                value[:] = np.nan
                node.attribute[0].t.CopyFrom(numpy_helper.from_array(value))
    folder = _package(tmp_path, nan_decoder, model=model)
    _compress(scene, folder, tmp_path)
    with pytest.raises(ModelError, match=f'decoder of model "{model}" .* gives NaN or infinite values'):
        codec.decompress(str(tmp_path / 'out.ehc'), str(tmp_path / 'out.tif'), device='cpu', threads=1)
    assert not (tmp_path / 'out.tif').exists()


def test_a_graph_taking_other_inputs_is_named(scene, tmp_path):
    def two_inputs(encoder, decoder):
        encoder.graph.input.append(helper.make_tensor_value_info('extra', TensorProto.FLOAT, ['n', 3]))
    with pytest.raises(ModelError, match=r'encoder.onnx takes 2 inputs'):
        _compress(scene, _package(tmp_path, two_inputs), tmp_path)


def test_onnxproto_tensor_sizes_do_not_wrap():
    # an unused initializer of dims [2**32, 2**32] and no data: int64 product 0, then a ValueError from reshape
    tensor = onnxproto.integer(1, 2 ** 32) + onnxproto.integer(1, 2 ** 32) + onnxproto.integer(2, onnxproto.FLOAT)
    data = onnxproto.integer(1, 8) + onnxproto.text(7, onnxproto.text(5, tensor + onnxproto.text(8, 'w')))
    with pytest.raises(FormatError, match='holds 0 bytes'):
        onnxproto.read_graph(data)


def test_external_tensors_are_found_in_subgraphs():
    tensor = onnxproto.text(8, 'w') + onnxproto.integer(14, 1)
    attribute = onnxproto.text(1, 'then_branch') + onnxproto.text(6, onnxproto.text(5, tensor))
    graph = onnxproto.text(1, onnxproto.node('If', ['c'], ['y']) + onnxproto.text(5, attribute))
    assert onnxproto.external_tensors(onnxproto.integer(1, 8) + onnxproto.text(7, graph)) == ['w']
    assert onnxproto.external_tensors(open(find_model('pca').decoder_path, 'rb').read()) == []


def test_a_bad_card_does_not_break_the_listing_of_models(tmp_path):
    # before: UnicodeDecodeError / OverflowError from title() and package_rows(), in the Processing MODEL choices,
    # the dialog and every evaluate --report
    (tmp_path / 'card.md').write_bytes(b'# A \xff model\n\n| quality | real bpppb |\n|---|---|\n| 1e400 | 0.5 |\n'
                                       b'| 3 | 0.25 |\n')
    package = ModelPackage(str(tmp_path), 'x')
    assert package.title() == 'A \ufffd model'
    assert [row.level for row in cards.package_rows(package)] == [3]


@pytest.mark.skipif(os.name == 'nt', reason='Windows file names are text')
def test_a_package_folder_whose_name_is_not_text_is_named(scene, tmp_path):
    # before: onnxruntime's "incompatible constructor arguments" as "not a readable ONNX model"
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b'/\xff')
    try:
        os.mkdir(odd)
    except OSError:
        pytest.skip('this file system takes UTF-8 names only')
    shutil.copytree(os.path.join(MODELS_DIR, 'pca'), os.path.join(odd, 'pca'))
    with pytest.raises(ModelError, match='has a name that is not text'):
        _compress(scene, os.path.join(odd, 'pca'), tmp_path)


@pytest.mark.skipif(os.name == 'nt', reason='//x is a network path on Windows; the POSIX spelling of a local one here')
@pytest.mark.parametrize('stated', ['relative', 'network'])
def test_a_header_cannot_name_a_package_elsewhere(scene, tmp_path, monkeypatch, stated):
    # before: the decoder loaded and ran the package at whatever model_path a file states: relative to the folder
    # it runs in, or on Windows \\host\share (reached, with the user's credentials, by decoding or `info`)
    def changed(encoder, decoder):
        tensor = decoder.graph.initializer[0]
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) + np.float32(0.05), tensor.name))
    _compress(scene, _package(tmp_path, changed), tmp_path)
    os.makedirs(tmp_path / 'drop')
    shutil.move(str(tmp_path / 'pca'), str(tmp_path / 'drop' / 'pca'))  # only the forged path finds the package
    parts = EhcParts.read(str(tmp_path / 'out.ehc'))
    parts.header['codec']['model_path'] = 'drop/pca' if stated == 'relative' else '/' + str(tmp_path / 'drop' / 'pca')
    (tmp_path / 'forged.ehc').write_bytes(parts.build())
    monkeypatch.chdir(tmp_path)
    opened = []
    monkeypatch.setattr(codec, 'find_model', lambda model: opened.append(model) or find_model(model))
    with pytest.raises(FormatError, match='different version of model "pca"'):
        codec.decompress(str(tmp_path / 'forged.ehc'), str(tmp_path / 'out.tif'), device='cpu', threads=1)
    assert opened == ['pca'] and not (tmp_path / 'out.tif').exists()
