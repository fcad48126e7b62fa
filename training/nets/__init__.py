"""Torch implementations of the HySpecNet-11k baseline compressors and HyCoT (training only: never shipped).

REGISTRY maps every published rate variant's name to a factory; build(name) constructs it.
"""
from enmap_compress.plugin.core.bands import N_HYSPECNET

from .cae1d import ConvolutionalAutoencoder1D
from .cae1dm import ModifiedConvolutionalAutoencoder1D
from .cae3d import ConvolutionalAutoencoder3D
from .hycot import HyperspectralCompressionTransformer
from .sscnet import SpectralSignalsCompressorNetwork


def _cae1d(target_bpppc):
    if target_bpppc == 8:  # cr4 is the plain class in HySpecNet-11k / HyCASS (cae1d_cr004)
        return lambda: ConvolutionalAutoencoder1D(N_HYSPECNET)
    return lambda: ModifiedConvolutionalAutoencoder1D(N_HYSPECNET, target_bpppc)


def _sscnet(cr):
    return lambda: SpectralSignalsCompressorNetwork(N_HYSPECNET, target_compression_ratio=cr)


def _cae3d(channels):
    return lambda: ConvolutionalAutoencoder3D(N_HYSPECNET, latent_channels=channels)


def _hycot(cr):
    return lambda: HyperspectralCompressionTransformer(N_HYSPECNET, target_compression_ratio=cr)


REGISTRY = {}
# 1D-CAE: HyCoT names (cr4/8/16/32) and HyCASS names (cr004/008/016/032).
for _cr, _bpppc in ((4, 8), (8, 4), (16, 2), (32, 1)):
    REGISTRY[f'cae1d_cr{_cr}'] = _cae1d(_bpppc)
    REGISTRY[f'cae1d_cr{_cr:03d}'] = _cae1d(_bpppc)
REGISTRY['cae1dm_cr4'] = lambda: ModifiedConvolutionalAutoencoder1D(N_HYSPECNET, 8)  # multi-rate class at 8 bpppc
# SSCNet: HyCoT factories, the HySpecNet-11k README checkpoints' widths, and the HyCASS list.
for _cr in (4, 8, 16, 32):
    REGISTRY[f'sscnet_cr{_cr}'] = _sscnet(_cr)
REGISTRY['sscnet_cr016'] = _sscnet(15.8431372549)
for _cr in (51, 101, 128, 185, 202, 269, 512, 1024):  # compression ratios (202 is a ratio here, not bands)
    REGISTRY[f'sscnet_cr{_cr:03d}'] = _sscnet(_cr)
for _width in (3264, 2424, 1616, 1024, 816, 404):  # widths implied by the 2023 README rates
    REGISTRY[f'sscnet_L{_width}'] = (
        lambda w: lambda: SpectralSignalsCompressorNetwork(N_HYSPECNET, latent_channels=w))(_width)
# 3D-CAE: C = 64/32/16/8 (cr4..cr32) and the HyCASS additions 5, 4, 2, 1.
for _cr, _c in ((4, 64), (8, 32), (16, 16), (32, 8)):
    REGISTRY[f'cae3d_cr{_cr}'] = _cae3d(_c)
for _c in (64, 32, 16, 8, 5, 4, 2, 1):
    REGISTRY[f'cae3d_c{_c}'] = _cae3d(_c)
# HyCoT: cr4..cr32 and the HyCASS additions.
for _cr in (4, 8, 16, 32, 64, 128, 256, 512):
    REGISTRY[f'hycot_cr{_cr}'] = _hycot(_cr)

ARCHITECTURES = ('cae1d', 'cae1dm', 'sscnet', 'cae3d', 'hycot')


def build(name):
    try:
        return REGISTRY[name]()
    except KeyError:
        raise KeyError(f'unknown model variant {name!r}; known: {", ".join(sorted(REGISTRY))}') from None


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


__all__ = ['ARCHITECTURES', 'REGISTRY', 'ConvolutionalAutoencoder1D', 'ConvolutionalAutoencoder3D',
           'HyperspectralCompressionTransformer', 'ModifiedConvolutionalAutoencoder1D',
           'SpectralSignalsCompressorNetwork', 'build', 'count_parameters']
