"""1D-CAE (Kuester et al. 2021), the plain class of the HySpecNet-11k baselines (reference-models.md §3.1).

Pixel-wise: each spectrum (202 bands) is zero-padded by 2 bands at the front (204), encoded by 1D convolutions
to 51 latent values and decoded back. state_dict keys: encoder.{0,3,6,8}, decoder.{0,2,5,8}.
"""
import math

import torch.nn.functional as f
from torch import nn


class ConvolutionalAutoencoder1D(nn.Module):
    kind = 'pixel'

    def __init__(self, src_channels=202):
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

    # pixel interface: (N, 202) <-> (N, latent)
    def encode_pixels(self, x):
        x = f.pad(x, (self.pad, 0)).unsqueeze(1)
        return self.encoder(x).squeeze(1)

    def decode_pixels(self, y):
        x = self.decoder(y.unsqueeze(1)).squeeze(1)
        return x[:, self.pad:]

    # image interface of the authors: (B, 202, H, W) <-> (B, latent, H, W)
    def compress(self, x):
        b, c, h, w = x.shape
        y = self.encode_pixels(x.permute(0, 2, 3, 1).reshape(-1, c))
        return y.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def decompress(self, y):
        b, c, h, w = y.shape
        x = self.decode_pixels(y.permute(0, 2, 3, 1).reshape(-1, c))
        return x.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def forward(self, x):
        return self.decompress(self.compress(x))
