"""1D-CAE (Kuester et al. 2021), the plain class of the HySpecNet-11k baselines (reference-models.md §3.1).

Pixel-wise: each spectrum (202 bands) is zero-padded by 2 bands at the front (204), encoded by 1D convolutions
to 51 latent values and decoded back. state_dict keys: encoder.{0,3,6,8}, decoder.{0,2,5,8}.
"""
import math

from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET

from .pixelwise import PaddedConv1dModel


class ConvolutionalAutoencoder1D(PaddedConv1dModel):
    kind = 'pixel'

    def __init__(self, src_channels=N_HYSPECNET):
        super().__init__()
        self.src_channels = src_channels
        self.pad = 2
        self.latent_channels = int(math.ceil(src_channels / 4))
        self.compression_ratio = src_channels / self.latent_channels
        self.bpppc = 32.0 / self.compression_ratio
        self.encoder = nn.Sequential(
            nn.Conv1d(1, 64, 11, padding='same'), nn.LeakyReLU(), nn.MaxPool1d(2),
            nn.Conv1d(64, 32, 11, padding='same'), nn.LeakyReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 16, 9, padding='same'), nn.LeakyReLU(),
            nn.Conv1d(16, 1, 7, padding='same'), nn.LeakyReLU(),
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding='same'), nn.LeakyReLU(),
            nn.Conv1d(16, 32, 9, padding='same'), nn.LeakyReLU(), nn.Upsample(scale_factor=2),
            nn.Conv1d(32, 64, 11, padding='same'), nn.LeakyReLU(), nn.Upsample(scale_factor=2),
            nn.Conv1d(64, 1, 11, padding='same'), nn.Sigmoid(),
        )
