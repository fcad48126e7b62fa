"""SSCNet (La Grassa et al. 2022) as in the HySpecNet-11k baselines (reference-models.md §3.3).

Spatial factor 8; latent (B, L, H/8, W/8) with L = int(202 / (target_CR / 64)).
state_dict keys: encoder.{0,2,5,8,11} convs, encoder.{1,3,6,9,12} PReLU, decoder.{0,2,4,6,8} transposed convs,
decoder.{1,3,5,7} PReLU.
"""
from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET


def latent_width(target_compression_ratio, src_channels=N_HYSPECNET):
    return int(src_channels / (target_compression_ratio / 64))


class SpectralSignalsCompressorNetwork(nn.Module):
    kind = 'spatial'
    spatial_factor = 8

    def __init__(self, src_channels=N_HYSPECNET, target_compression_ratio=4, latent_channels=None):
        super().__init__()
        self.src_channels = src_channels
        lat = int(latent_channels) if latent_channels else latent_width(target_compression_ratio, src_channels)
        self.latent_channels = lat
        self.latent_dims = [lat]
        self.compression_ratio = src_channels / lat * 64
        self.bpppc = 32.0 / self.compression_ratio
        self.encoder = nn.Sequential(
            nn.Conv2d(src_channels, 256, 3, padding=1), nn.PReLU(256),
            nn.Conv2d(256, 256, 3, padding=1), nn.PReLU(256), nn.MaxPool2d(2, 2),
            nn.Conv2d(256, 256, 3, padding=1), nn.PReLU(256), nn.MaxPool2d(2, 2),
            nn.Conv2d(256, 512, 3, padding=1), nn.PReLU(512), nn.MaxPool2d(2, 2),
            nn.Conv2d(512, lat, 3, padding=1), nn.PReLU(lat),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(lat, 512, 3, stride=1, padding=1), nn.PReLU(512),
            nn.ConvTranspose2d(512, 256, 2, stride=2), nn.PReLU(256),
            nn.ConvTranspose2d(256, 256, 2, stride=2), nn.PReLU(256),
            nn.ConvTranspose2d(256, 256, 2, stride=2), nn.PReLU(256),
            nn.ConvTranspose2d(256, src_channels, 3, stride=1, padding=1), nn.Sigmoid(),
        )

    def compress(self, x):
        return self.encoder(x)

    def decompress(self, y):
        return self.decoder(y)

    def forward(self, x):
        return self.decompress(self.compress(x))
