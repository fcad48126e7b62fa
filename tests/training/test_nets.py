"""The torch compressors: latent and output shapes, parameter counts, state_dict key layouts (reference-models §3)."""
import pytest
import torch

from training.nets import REGISTRY, build, count_parameters

EXACT_PARAMS = {
    'cae1d_cr4': 56_130, 'cae1d_cr8': 238_018, 'cae1d_cr16': 962_242, 'cae1d_cr32': 3_852_482,
    'cae3d_cr4': 933_539, 'cae3d_cr8': 677_443, 'cae3d_cr16': 549_395, 'cae3d_cr32': 485_371,
    'hycot_cr4': 488_225, 'hycot_cr8': 437_000, 'hycot_cr16': 410_363, 'hycot_cr32': 398_069,
}
ROUNDED_PARAMS = {'sscnet_cr4': 34.1e6, 'sscnet_cr8': 19.2e6, 'sscnet_cr32': 8.07e6, 'sscnet_cr016': 11.9e6}
PIXEL_LATENT = {4: 51, 8: 26, 16: 13, 32: 7}


@pytest.mark.parametrize('name', sorted(EXACT_PARAMS))
def test_parameter_counts_equal_the_tables(name):
    assert count_parameters(build(name)) == EXACT_PARAMS[name]


@pytest.mark.parametrize('name', sorted(ROUNDED_PARAMS))
def test_sscnet_parameter_counts_equal_the_tables(name):
    expected = ROUNDED_PARAMS[name]
    digits = 2 if expected < 1e7 else 1
    assert round(count_parameters(build(name)) / 1e6, digits) == pytest.approx(expected / 1e6)


@pytest.mark.parametrize('name, latent', [('sscnet_cr4', 3232), ('sscnet_cr8', 1616), ('sscnet_cr16', 808),
                                          ('sscnet_cr32', 404), ('sscnet_cr016', 816), ('sscnet_cr128', 101)])
def test_sscnet_latent_width_formula(name, latent):
    net = build(name)
    assert net.latent_channels == latent
    assert net.compression_ratio == pytest.approx(202 / latent * 64)


def _check_bpppc(net, x, y):
    assert net.bpppc == pytest.approx(32 * y.numel() / x.numel(), rel=1e-6)


@pytest.mark.parametrize('cr', [4, 8, 16, 32])
@pytest.mark.parametrize('family', ['cae1d', 'hycot'])
def test_pixel_models_latent_and_output_shapes(family, cr):
    net = build(f'{family}_cr{cr}').eval()
    x = torch.rand(1, 202, 2, 3)  # cae1d_cr32 costs 6 TFLOP per 128x128 patch: keep the input tiny
    with torch.no_grad():
        y = net.compress(x)
        x_hat = net.decompress(y)
    assert tuple(y.shape) == (1, PIXEL_LATENT[cr], 2, 3)
    assert x_hat.shape == x.shape
    assert float(x_hat.min()) >= 0 and float(x_hat.max()) <= 1  # sigmoid output
    _check_bpppc(net, x, y)


@pytest.mark.parametrize('name, dims', [('sscnet_cr32', (404,)), ('sscnet_cr128', (101,)),
                                        ('cae3d_cr4', (64, 51)), ('cae3d_cr32', (8, 51))])
def test_spatial_models_latent_and_output_shapes(name, dims):
    net = build(name).eval()
    x = torch.rand(1, 202, 16, 16)
    with torch.no_grad():
        y = net.compress(x)
        x_hat = net.decompress(y)
    assert tuple(y.shape) == (1, *dims, 2, 2)
    assert x_hat.shape == x.shape
    _check_bpppc(net, x, y)


def _keys(name):
    return set(build(name).state_dict())


def test_cae1d_plain_key_layout():
    expected = {f'{part}.{i}.{p}' for part, idx in (('encoder', (0, 3, 6, 8)), ('decoder', (0, 2, 5, 8)))
                for i in idx for p in ('weight', 'bias')}
    assert _keys('cae1d_cr4') == expected
    assert _keys('cae1d_cr004') == expected


@pytest.mark.parametrize('name, blocks', [('cae1d_cr8', 3), ('cae1d_cr16', 4), ('cae1d_cr32', 5)])
def test_cae1d_multirate_key_layout(name, blocks):
    expected = {f'encoder.0.{i}.0.{p}' for i in range(blocks) for p in ('weight', 'bias')}
    expected |= {f'{k}.{p}' for k in ('encoder.1', 'encoder.3', 'decoder.0', 'decoder.2') for p in ('weight', 'bias')}
    expected |= {f'decoder.5.{i}.0.{p}' for i in range(blocks) for p in ('weight', 'bias')}
    assert _keys(name) == expected


def test_sscnet_key_layout():
    expected = {f'encoder.{i}.{p}' for i in (0, 2, 5, 8, 11) for p in ('weight', 'bias')}
    expected |= {f'encoder.{i}.weight' for i in (1, 3, 6, 9, 12)}
    expected |= {f'decoder.{i}.{p}' for i in (0, 2, 4, 6, 8) for p in ('weight', 'bias')}
    expected |= {f'decoder.{i}.weight' for i in (1, 3, 5, 7)}
    assert _keys('sscnet_cr128') == expected


def test_cae3d_key_layout_has_batchnorm_buffers():
    keys = _keys('cae3d_cr32')
    assert {'encoder.9.weight', 'encoder.10.running_mean', 'encoder.10.num_batches_tracked'} <= keys
    assert {'encoder.6.block.0.weight', 'encoder.6.block.1.running_var', 'encoder.8.block.4.bias'} <= keys
    assert {'decoder.1.weight', 'decoder.2.running_mean', 'decoder.12.weight', 'decoder.13.running_var'} <= keys
    assert build('cae3d_cr32').state_dict()['encoder.9.weight'].shape[0] == 8


def test_hycot_key_layout_includes_unused_skipcat():
    keys = _keys('hycot_cr4')
    assert {'patch_to_embedding.weight', 'comp_token', 'pos_embedding', 'to_latent.0.weight', 'to_latent.2.weight',
            'patch_deembed.0.weight', 'patch_deembed.2.weight'} <= keys
    assert {f'transformer.skipcat.{i}.weight' for i in range(3)} <= keys
    assert 'transformer.layers.4.0.fn.fn.to_qkv.weight' in keys
    assert 'transformer.layers.0.0.fn.fn.to_qkv.bias' not in keys  # qkv without bias
    assert 'transformer.layers.2.1.fn.fn.net.3.weight' in keys and 'transformer.layers.2.0.fn.norm.weight' in keys


def test_registry_builds_every_published_variant_name():
    for name in ('cae1d_cr4', 'cae1d_cr8', 'cae1d_cr16', 'cae1d_cr32', 'cae1d_cr004', 'sscnet_cr4', 'sscnet_cr016',
                 'sscnet_cr128', 'cae3d_cr4', 'cae3d_c5', 'hycot_cr4', 'hycot_cr512'):
        assert name in REGISTRY
    with pytest.raises(KeyError):
        build('nope')
