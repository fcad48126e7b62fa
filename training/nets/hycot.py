"""HyCoT, the Hyperspectral Compression Transformer (Fuchs et al. 2024; reference-models.md §3.5).

Pixel-wise. Key names as in the authors' module: patch_to_embedding, comp_token, pos_embedding,
transformer.layers.<i>.{0,1}.fn.{norm,fn}..., transformer.skipcat.<i> (unused in 'ViT' mode, kept for strict
loading), to_latent.{0,2}, patch_deembed.{0,2}.
"""
import math

import torch
import torch.nn.functional as f
from torch import nn

from enmap_compress.plugin.core.bands import N_HYSPECNET

from .pixelwise import PixelwiseModel


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, dropout=0.0):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x):
        b, n, _ = x.shape
        qkv = self.to_qkv(x).reshape(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).permute(0, 2, 1, 3).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(out)


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout, num_channel):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([Residual(PreNorm(dim, Attention(dim, heads, dim_head, dropout))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout)))])
            for _ in range(depth)])
        # Present in the authors' module (SpectralFormer 'CAF' mode) but unused in 'ViT' mode.
        self.skipcat = nn.ModuleList([nn.Conv2d(num_channel + 1, num_channel + 1, (1, 2), 1, 0)
                                      for _ in range(depth - 2)])

    def forward(self, x):
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


class HyperspectralCompressionTransformer(PixelwiseModel):
    kind = 'pixel'

    def __init__(self, src_channels=N_HYSPECNET, target_compression_ratio=4, patch_depth=4, hidden_dim=1024, dim=64,
                 depth=5, heads=4, mlp_dim=8, dim_head=16, dropout=0.0, latent_channels=None):
        super().__init__()
        self.src_channels = src_channels
        lat = int(latent_channels) if latent_channels else int(math.ceil(src_channels / target_compression_ratio))
        self.latent_channels = lat
        self.compression_ratio = src_channels / lat
        self.bpppc = 32.0 / self.compression_ratio
        self.pad = int(math.ceil(src_channels / patch_depth)) * patch_depth - src_channels
        self.num_patches = (src_channels + self.pad) // patch_depth
        self.patch_dim = patch_depth
        self.patch_to_embedding = nn.Linear(patch_depth, dim)
        self.comp_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, self.num_patches + 1, dim))
        self.dropout = nn.Dropout(0.0)
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout, self.num_patches)
        self.to_latent = nn.Sequential(nn.Linear(dim, hidden_dim), nn.LeakyReLU(), nn.Linear(hidden_dim, lat),
                                       nn.Sigmoid())
        self.patch_deembed = nn.Sequential(nn.Linear(lat, hidden_dim), nn.LeakyReLU(),
                                           nn.Linear(hidden_dim, src_channels), nn.Sigmoid())

    def encode_pixels(self, x):
        n = x.shape[0]
        x = f.pad(x, (self.pad, 0)).reshape(n, self.num_patches, self.patch_dim)
        x = self.patch_to_embedding(x)
        x = torch.cat((self.comp_token.expand(n, -1, -1), x), dim=1) + self.pos_embedding
        x = self.transformer(self.dropout(x))
        return self.to_latent(x[:, 0])

    def decode_pixels(self, y):
        return self.patch_deembed(y)
