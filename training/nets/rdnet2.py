"""rdnet2: a learned spectral matrix followed by a multi-level lifting wavelet, with a per-subband learned prior.

rdnet codes every component image in independent 8 x 8 blocks. rdnet2 keeps its spectral matrix (202 -> K, PCA
initialised) but replaces the blocks by a separable lifting wavelet over the whole window (`levels` levels,
symmetric extension at the borders, so tiles stay independent): the CDF 9/7 of JPEG 2000 as the start, its four
lifting weights and scaling learned (5 parameters, shared by every level, direction and component; a lifting
scheme stays exactly invertible for any weights, so the synthesis is the exact inverse). Each subband is
multiplied by a fixed gain, the norm of its synthesis basis function, so that one quantiser step costs every
coefficient the same squared error. The coefficients are laid out like rdnet's latent: 4^levels channels per
component at 1/2^levels resolution (the coarsest LL, then the detail subbands from coarse to fine, each subband's
polyphase parts in raster order), which is exactly the codec's `spatial` model interface, so rdnet2 runs with the
codec's learned-prior coder unchanged. Entropy model: one Laplace scale per (component, subband), shared by the
polyphase parts of a subband (K x (3 levels + 1) scales instead of K x 4^levels): few parameters for nine tiles.
"""
import torch
import torch.nn.functional as f
from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET
from training.nets.rdnet import RDNet

CDF97 = (-1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971, 1.149604398860241)
LEVELS = 3


def _right(v):
    """v[n + 1], the last entry repeated (whole-sample symmetric extension seen from the other phase)."""
    return torch.cat([v[..., 1:], v[..., -1:]], dim=-1)


def _left(v):
    return torch.cat([v[..., :1], v[..., :-1]], dim=-1)


def lift(x, w):
    """One level of the 1-D lifting wavelet along the last axis (even length): (low, high)."""
    s, d = x[..., 0::2], x[..., 1::2]
    d = d + w[0] * (s + _right(s))
    s = s + w[1] * (_left(d) + d)
    d = d + w[2] * (s + _right(s))
    s = s + w[3] * (_left(d) + d)
    return s * w[4], d / w[4]


def unlift(s, d, w):
    s, d = s / w[4], d * w[4]
    s = s - w[3] * (_left(d) + d)
    d = d - w[2] * (s + _right(s))
    s = s - w[1] * (_left(d) + d)
    d = d - w[0] * (s + _right(s))
    return torch.stack([s, d], dim=-1).flatten(-2)


def dwt2(x, w):
    """(LL, HL, LH, HH) of one 2-D level: along rows (last axis), then columns."""
    low, high = lift(x, w)
    ll, lh = (v.transpose(-1, -2) for v in lift(low.transpose(-1, -2), w))
    hl, hh = (v.transpose(-1, -2) for v in lift(high.transpose(-1, -2), w))
    return ll, hl, lh, hh


def idwt2(ll, hl, lh, hh, w):
    low = unlift(ll.transpose(-1, -2), lh.transpose(-1, -2), w).transpose(-1, -2)
    high = unlift(hl.transpose(-1, -2), hh.transpose(-1, -2), w).transpose(-1, -2)
    return unlift(low, high, w)


def subband_layout(levels=LEVELS):
    """[(level, name, polyphase parts)] in latent order; level 0 is the coarsest LL."""
    layout = [(levels, 'LL', 1)]
    for level in range(levels, 0, -1):
        parts = 4 ** (levels - level)
        layout += [(level, name, parts) for name in ('HL', 'LH', 'HH')]
    return layout


class RDNet2(nn.Module):
    kind = 'spatial'

    def __init__(self, src_channels=N_HYSPECNET, latent_channels=N_HYSPECNET, levels=LEVELS, basis=None, mean=None):
        super().__init__()
        self.tied = True
        self.levels = levels
        self.src_channels, self.latent_channels = src_channels, latent_channels
        self.spatial_factor = 2 ** levels
        self.latent_dims = [latent_channels, 4 ** levels]
        k = latent_channels
        basis = torch.eye(src_channels)[:, :k] if basis is None else torch.as_tensor(basis, dtype=torch.float32)[:, :k]
        mean = torch.zeros(src_channels) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.mean = nn.Parameter(mean.clone())
        self.analysis_matrix = nn.Parameter(basis.T.clone())  # (K, 202)
        self.lifting = nn.Parameter(torch.tensor(CDF97))
        self.layout = subband_layout(levels)
        self.register_buffer('gains', self.synthesis_norms())
        self.log_scales = nn.Parameter(torch.zeros(k, len(self.layout)))

    # --- transform --------------------------------------------------------------------------------------------
    def spectral_parameters(self):
        return [self.mean, self.analysis_matrix]

    def analysis_weights(self):
        return {'matrix': self.analysis_matrix[:, :, None, None], 'bias': -(self.analysis_matrix @ self.mean),
                'lifting': self.lifting, 'gains': self.gains}

    def synthesis_weights(self):
        return {'matrix': torch.linalg.pinv(self.analysis_matrix)[:, :, None, None], 'bias': self.mean,
                'lifting': self.lifting, 'gains': self.gains}

    def wavelet(self, y, lifting, gains):
        """(B, K, H, W) -> (B, K * 4^levels, H / 2^levels, W / 2^levels) in the latent layout."""
        parts, low = [], y
        for _level in range(self.levels):
            low, hl, lh, hh = dwt2(low, lifting)
            parts = [hl, lh, hh] + parts
        parts = [low] + parts
        batch, k = y.shape[0], self.latent_channels
        blocks = []
        for index, ((_level, _name, count), band) in enumerate(zip(self.layout, parts)):
            factor = int(round(count ** 0.5))
            polyphase = f.pixel_unshuffle(band, factor) if factor > 1 else band
            blocks.append((polyphase * gains[index]).reshape(batch, k, count, *polyphase.shape[-2:]))
        z = torch.cat(blocks, dim=2)
        return z.reshape(batch, k * 4 ** self.levels, *z.shape[-2:])

    def inverse_wavelet(self, z, lifting, gains):
        batch, k = z.shape[0], self.latent_channels
        z = z.reshape(batch, k, 4 ** self.levels, *z.shape[-2:])
        bands, start = [], 0
        for index, (_level, _name, count) in enumerate(self.layout):
            part = z[:, :, start:start + count].reshape(batch, k * count, *z.shape[-2:]) / gains[index]
            factor = int(round(count ** 0.5))
            bands.append(f.pixel_shuffle(part, factor) if factor > 1 else part)
            start += count
        low = bands[0]
        for level in range(self.levels):
            hl, lh, hh = bands[1 + 3 * level:4 + 3 * level]
            low = idwt2(low, hl, lh, hh, lifting)
        return low

    def compress(self, x, weights=None):
        """x (B, 202, H, W) on [0, 1], H and W multiples of 2^levels -> latent (B, K * 4^levels, h, w)."""
        w = self.analysis_weights() if weights is None else weights
        return self.wavelet(f.conv2d(x, w['matrix'], w['bias']), w['lifting'], w['gains'])

    def decompress(self, z, weights=None):
        w = self.synthesis_weights() if weights is None else weights
        return f.conv2d(self.inverse_wavelet(z, w['lifting'], w['gains']), w['matrix'], w['bias'])

    def forward(self, x):
        return self.decompress(self.compress(x))

    def synthesis_norms(self):
        """Per subband, the L2 norm of the synthesis basis function of a coefficient far from the borders."""
        size = 8 * 2 ** self.levels
        lifting = torch.tensor(CDF97)
        unit = torch.ones(len(self.layout))
        norms = []
        with torch.no_grad():
            probe = torch.zeros(1, 1, 4 ** self.levels, size // 2 ** self.levels, size // 2 ** self.levels)
            saved, self.latent_channels = getattr(self, 'latent_channels', 1), 1
            start = 0
            for _level, _name, count in self.layout:
                z = probe.clone()
                z[0, 0, start, 4, 4] = 1.0
                norms.append(float(self.inverse_wavelet(z.reshape(1, -1, *z.shape[-2:]), lifting, unit).norm()))
                start += count
            self.latent_channels = saved
        return torch.tensor(norms)

    # --- entropy model ----------------------------------------------------------------------------------------
    def scales(self):
        """(K * 4^levels,) Laplace scales of the latent channels: each subband's scale for its polyphase parts."""
        counts = torch.tensor([count for _level, _name, count in self.layout])
        return torch.exp(torch.repeat_interleave(self.log_scales, counts, dim=1)).reshape(-1)

    rate_bits = RDNet.rate_bits
