"""3D-CAE (Chong et al. 2021) as in the HySpecNet-11k baselines (reference-models.md §3.4).

Input front-padded 202 -> 204 bands and unsqueezed to (B, 1, 204, H, W); latent (B, C, 51, H/8, W/8).
The output ends in BatchNorm + LeakyReLU (no sigmoid); the 2 padding bands are cropped.
"""
import torch.nn.functional as f
from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET


class _ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.act = nn.LeakyReLU()
        self.block = nn.Sequential(
            nn.Conv3d(channels, channels, 3, 1, 1), nn.BatchNorm3d(channels), self.act,
            nn.Conv3d(channels, channels, 3, 1, 1), nn.BatchNorm3d(channels),
        )

    def forward(self, x):
        return self.act(self.block(x) + x)


def _conv_bn(cin, cout, kernel, stride, padding):
    return [nn.Conv3d(cin, cout, kernel, stride, padding), nn.BatchNorm3d(cout), nn.LeakyReLU()]


class ConvolutionalAutoencoder3D(nn.Module):
    kind = 'spatial'
    spatial_factor = 8

    def __init__(self, src_channels=N_HYSPECNET, latent_channels=16):
        super().__init__()
        self.src_channels = src_channels
        self.pad = 2
        self.channels = int(latent_channels)
        self.depth = (src_channels + self.pad) // 4  # 51
        self.latent_dims = [self.channels, self.depth]
        self.latent_channels = self.channels * self.depth
        self.compression_ratio = src_channels / self.depth * 64 / self.channels
        self.bpppc = 32.0 / self.compression_ratio
        self.encoder = nn.Sequential(
            *_conv_bn(1, 16, (2, 5, 5), (1, 2, 2), (0, 2, 2)),
            *_conv_bn(16, 32, 5, 2, 2),
            _ResBlock(32), _ResBlock(32), _ResBlock(32),
            *_conv_bn(32, self.channels, 5, 2, 2),
        )
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=(2, 4, 4)),
            *_conv_bn(self.channels, 32, 5, 2, 2),
            _ResBlock(32), _ResBlock(32), _ResBlock(32),
            nn.Upsample(scale_factor=(4, 2, 2)),
            *_conv_bn(32, 16, (5, 3, 3), (2, 1, 1), (2, 1, 1)),
            nn.Upsample(scale_factor=(4, 2, 2)),
            *_conv_bn(16, 1, (2, 3, 3), (2, 1, 1), (0, 1, 1)),
        )

    def compress(self, x):
        return self.encoder(f.pad(x, (0, 0, 0, 0, self.pad, 0)).unsqueeze(1))

    def decompress(self, y):
        return self.decoder(y).squeeze(1)[:, self.pad:]

    def forward(self, x):
        return self.decompress(self.compress(x))
