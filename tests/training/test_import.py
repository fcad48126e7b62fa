"""Importer: the authors' checkpoint layouts (random weights) become packages the real codec runs."""
import json
import os

import numpy as np
import pytest
import torch

from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.evaluate import measure
from tools import synthetic
from training.import_checkpoint import import_checkpoint, load_state_dict, net_for
from training.nets import (
    ConvolutionalAutoencoder1D,
    ConvolutionalAutoencoder3D,
    HyperspectralCompressionTransformer,
    ModifiedConvolutionalAutoencoder1D,
    SpectralSignalsCompressorNetwork,
    build,
)


def _save(net, path, prefix=''):
    torch.save({'state_dict': {prefix + k: v for k, v in net.state_dict().items()}}, path)
    return str(path)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('scene') / 'scene.tif'), width=40, height=24, seed=5)


def test_both_cae1d_layouts_and_module_prefix(tmp_path):
    plain = net_for('cae1d', load_state_dict(_save(build('cae1d_cr4'), tmp_path / 'a.pth.tar', 'module.')))
    assert isinstance(plain, ConvolutionalAutoencoder1D) and plain.latent_channels == 51
    for name, latent in (('cae1d_cr8', 26), ('cae1d_cr16', 13)):
        net = net_for('cae1d', load_state_dict(_save(build(name), tmp_path / f'{name}.pth.tar')))
        assert isinstance(net, ModifiedConvolutionalAutoencoder1D) and net.latent_channels == latent


def test_latent_widths_are_inferred_including_the_sscnet_discrepancy(tmp_path):
    # The 2023 README's 8.08 / 2.02 bpppc SSCNet files have 3264 / 816 channels, the HyCoT code builds 3232 / 808.
    for width in (3264, 816):
        path = _save(SpectralSignalsCompressorNetwork(latent_channels=width), tmp_path / f's{width}.pth.tar')
        net = net_for('sscnet', load_state_dict(path))
        assert net.latent_channels == width
        os.remove(path)
    path = _save(ConvolutionalAutoencoder3D(latent_channels=5), tmp_path / 'c.pth.tar')
    net = net_for('cae3d', load_state_dict(path))
    assert net.latent_dims == [5, 51]
    net = net_for('hycot', load_state_dict(
        _save(HyperspectralCompressionTransformer(target_compression_ratio=64), tmp_path / 'h.pth.tar')))
    assert net.latent_channels == 4


def test_wrong_layout_is_refused(tmp_path):
    path = _save(build('hycot_cr32'), tmp_path / 'h.pth.tar')
    with pytest.raises((ValueError, KeyError, RuntimeError)):
        net_for('cae1d', load_state_dict(path))


def _meta(folder):
    import onnx

    model = onnx.load(os.path.join(folder, 'decoder.onnx'))
    return json.loads({p.key: p.value for p in model.metadata_props}['enmap_compress'])


@pytest.mark.parametrize('arch, net_factory, fp16', [
    ('cae1d', lambda: build('cae1d_cr8'), False),
    ('hycot', lambda: build('hycot_cr32'), False),
    ('sscnet', lambda: SpectralSignalsCompressorNetwork(latent_channels=101), True),
    ('cae3d', lambda: build('cae3d_cr32'), False),
])
def test_imported_package_runs_through_the_real_codec(arch, net_factory, fp16, tmp_path, scene):
    torch.manual_seed(3)
    ckpt = _save(net_factory(), tmp_path / f'{arch}.pth.tar', 'module.' if arch == 'sscnet' else '')
    folder = import_checkpoint(arch, ckpt, str(tmp_path / f'my_{arch}'), fp16=fp16)
    assert sorted(os.listdir(folder)) == ['card.md', 'decoder.onnx', 'encoder.onnx']
    with open(os.path.join(folder, 'card.md'), encoding='utf-8') as handle:
        assert handle.readline().startswith(f'# my_{arch} — ')
    meta = _meta(folder)
    assert meta['id'] == f'my_{arch}' and len(meta['quality_levels']) == 10
    steps = [q['step'] for q in meta['quality_levels']]
    assert all(a > b for a, b in zip(steps, steps[1:]))
    assert len(meta['channel_step_scale']) == meta['latent_channels']
    if meta['kind'] == 'spatial':
        assert meta['spatial_factor'] == 8 and int(np.prod(meta['latent_dims'])) == meta['latent_channels']
    ehc, rec = str(tmp_path / 'x.ehc'), str(tmp_path / 'x.tif')
    result = compress(scene, ehc, folder, 10, 'cpu')
    assert result.file_bytes == os.path.getsize(ehc) and result.bpppb > 0
    decompress(ehc, rec, 'cpu')
    assert np.isfinite(measure(scene, rec)['psnr'])
