"""Multi-rate ("modified") 1D-CAE of HyCoT / HyCASS (reference-models.md §3.2).

num_blocks = log2(32 // target_bpppc); the spectrum is front-padded to a multiple of 2**num_blocks.
state_dict keys: encoder.0.<i>.0, encoder.1, encoder.3, decoder.0, decoder.2, decoder.5.<i>.0.
"""
import math

from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET

from .pixelwise import PaddedConv1dModel


class ModifiedConvolutionalAutoencoder1D(PaddedConv1dModel):
    kind = 'pixel'

    def __init__(self, src_channels=N_HYSPECNET, target_bpppc=4):
        super().__init__()
        nb = int(math.log2(32 // target_bpppc))
        self.num_blocks = nb
        self.src_channels = src_channels
        factor = 2 ** nb
        self.pad = int(math.ceil(src_channels / factor)) * factor - src_channels
        self.latent_channels = (src_channels + self.pad) // factor
        self.compression_ratio = src_channels / self.latent_channels
        self.bpppc = 32.0 / self.compression_ratio
        enc_blocks = []
        for i in range(nb):
            cin = 1 if i == 0 else 2 ** (nb + 5 - i)
            enc_blocks.append(nn.Sequential(nn.Conv1d(cin, 2 ** (nb + 4 - i), 11, padding='same'),
                                            nn.LeakyReLU(), nn.MaxPool1d(2)))
        self.encoder = nn.Sequential(
            nn.Sequential(*enc_blocks),
            nn.Conv1d(32, 16, 9, padding='same'), nn.LeakyReLU(),
            nn.Conv1d(16, 1, 7, padding='same'), nn.LeakyReLU(),
        )
        dec_blocks = []
        for i in range(nb):
            last = i == nb - 1
            dec_blocks.append(nn.Sequential(
                nn.Conv1d(2 ** (5 + i), 1 if last else 2 ** (6 + i), 11, padding='same'),
                nn.Sigmoid() if last else nn.LeakyReLU(),
                nn.Identity() if last else nn.Upsample(scale_factor=2)))
        self.decoder = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding='same'), nn.LeakyReLU(),
            nn.Conv1d(16, 32, 9, padding='same'), nn.LeakyReLU(), nn.Upsample(scale_factor=2),
            nn.Sequential(*dec_blocks),
        )
