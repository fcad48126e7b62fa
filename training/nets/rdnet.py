"""rdnet: a spatio-spectral transform coder trained end to end for rate + lambda * distortion.

Analysis: a learned spectral matrix (202 -> K channels, initialised with the PCA basis of the training tiles), then a
learned 8 x 8 block transform applied to every channel (64 filters of 8 x 8, stride 8, shared by all channels,
initialised as the three-level Haar wavelet transform of the block: LL, then the coarse to fine detail bands).
Synthesis: by default (tied) the exact inverse of the analysis, so that a fine step reconstructs any input
(a freely learned synthesis, tied=False, capped the reconstruction at ~70 dB on held-out EnMAP tiles and ~59 dB
on unlike data, for about 0.1 dB at low rates).
The latent has K x 64 channels at 1/8 of the resolution: exactly the `spatial` model interface of the codec.
Entropy model: a factorised zero-mean Laplace prior with one learned scale per latent channel; the codec builds fixed
tables from it for each quantiser step, so a file carries no per-tile statistics.
Quantisation in training: additive uniform noise of one step, the step drawn log-uniformly from the quality range,
lambda = 6 / (ln 2 * step^2) (the slope of a uniform quantiser's rate-distortion curve): one model, all qualities.
Every operation is a plain or grouped convolution, which ONNX Runtime runs fast (no reshapes, pads or concats).
"""
import math

import torch
import torch.nn.functional as f
from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET

BLOCK = 8


def haar_block_basis(block=BLOCK):
    """(block^2, block^2) orthonormal matrix of the multi-level 2-D Haar transform of a block (row j: filter j),
    ordered LL first, then the detail bands from the coarsest level to the finest (HL, LH, HH each)."""
    levels = int(math.log2(block))
    eye = torch.eye(block * block).reshape(-1, block, block)
    coeffs = eye.clone()
    order = []
    size = block
    for _level in range(levels):
        low = (coeffs[:, :size, :size:2] + coeffs[:, :size, 1:size:2]) / math.sqrt(2.0)
        high = (coeffs[:, :size, :size:2] - coeffs[:, :size, 1:size:2]) / math.sqrt(2.0)
        rows = torch.cat([low, high], dim=2)
        low = (rows[:, :size:2] + rows[:, 1:size:2]) / math.sqrt(2.0)
        high = (rows[:, :size:2] - rows[:, 1:size:2]) / math.sqrt(2.0)
        coeffs[:, :size, :size] = torch.cat([low, high], dim=1)
        half = size // 2
        order = [(0, half, half, size), (half, size, 0, half), (half, size, half, size)] + order
        size = half
    order = [(0, size, 0, size)] + order
    matrix = coeffs.reshape(block * block, -1).T  # row j: the coefficient at flat position j as a function of x
    index = torch.arange(block * block).reshape(block, block)
    picked = torch.cat([index[r0:r1, c0:c1].reshape(-1) for r0, r1, c0, c1 in order])
    return matrix[picked]


class RDNet(nn.Module):
    kind = 'spatial'

    def __init__(self, src_channels=N_HYSPECNET, latent_channels=N_HYSPECNET, block=BLOCK, basis=None, mean=None,
                 tied=True):
        super().__init__()
        self.tied = tied
        self.src_channels, self.latent_channels, self.block = src_channels, latent_channels, block
        self.spatial_factor = block
        self.latent_dims = [latent_channels, block * block]
        k = latent_channels
        basis = torch.eye(src_channels)[:, :k] if basis is None else torch.as_tensor(basis, dtype=torch.float32)[:, :k]
        mean = torch.zeros(src_channels) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.mean = nn.Parameter(mean.clone())
        self.analysis_matrix = nn.Parameter(basis.T.clone())  # (K, 202)
        self.synthesis_matrix = nn.Parameter(basis.clone())  # (202, K)
        filters = haar_block_basis(block).reshape(block * block, 1, block, block)
        self.analysis_block = nn.Parameter(filters.clone())
        self.synthesis_block = nn.Parameter(filters.clone())
        self.log_scales = nn.Parameter(torch.zeros(k * block * block))

    def grouped(self, filters):
        """The shared block filters repeated for the K channels: weights of a grouped convolution."""
        return filters.repeat(self.latent_channels, 1, 1, 1)

    def analysis_weights(self):
        """The encoder's convolution weights (ONNX export freezes them as constants)."""
        return {'matrix': self.analysis_matrix[:, :, None, None], 'bias': -(self.analysis_matrix @ self.mean),
                'block': self.grouped(self.analysis_block)}

    def synthesis_weights(self):
        if self.tied:  # the exact inverse of the analysis (pseudo-inverse when K < 202)
            matrix = torch.linalg.pinv(self.analysis_matrix)
            block = torch.linalg.inv(self.analysis_block.reshape(self.block ** 2, -1)).T
            return {'matrix': matrix[:, :, None, None], 'bias': self.mean,
                    'block': self.grouped(block.reshape(self.analysis_block.shape))}
        return {'matrix': self.synthesis_matrix[:, :, None, None], 'bias': self.mean,
                'block': self.grouped(self.synthesis_block)}

    def compress(self, x, weights=None):
        """x (B, 202, H, W) on [0, 1], H and W multiples of 8 -> y (B, K * 64, H / 8, W / 8), channel k * 64 + j."""
        w = self.analysis_weights() if weights is None else weights
        y = f.conv2d(x, w['matrix'], w['bias'])
        return f.conv2d(y, w['block'], stride=self.block, groups=self.latent_channels)

    def decompress(self, z, weights=None):
        w = self.synthesis_weights() if weights is None else weights
        y = f.conv_transpose2d(z, w['block'], stride=self.block, groups=self.latent_channels)
        return f.conv2d(y, w['matrix'], w['bias'])

    def forward(self, x):
        return self.decompress(self.compress(x))

    # --- entropy model ----------------------------------------------------------------------------------------
    def scales(self):
        """(K * 64,) Laplace scales of the latent channels, in latent units."""
        return torch.exp(self.log_scales)

    def rate_bits(self, y_noisy, step):
        """Bits per batch item of y_noisy (B, K * 64, h, w, in units of `step`, a (B, 1, 1, 1) tensor) under the
        discretised Laplace prior."""
        scale = self.scales()[None, :, None, None] / step
        v = -torch.abs(y_noisy)  # the prior is symmetric: the lower tail has no cancellation
        mass = _laplace_cdf(v + 0.5, scale) - _laplace_cdf(v - 0.5, scale)
        return -torch.log2(torch.clamp(mass, min=2.0 ** -24)).flatten(1).sum(1)


def _laplace_cdf(v, scale):
    tail = 0.5 * torch.exp(-torch.abs(v) / scale)
    return torch.where(v < 0, tail, 1.0 - tail)
