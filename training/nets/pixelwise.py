"""The authors' image interface for pixel-wise models: (B, 202, H, W) <-> (B, latent, H, W)."""
from torch import nn


class PixelwiseModel(nn.Module):
    """Subclasses define encode_pixels (N, 202) -> (N, L) and decode_pixels (N, L) -> (N, 202)."""

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


class PaddedConv1dModel(PixelwiseModel):
    """1D-CAE family: spectra front-padded by `pad` bands, one channel in, the padding cropped on the way out."""

    def encode_pixels(self, x):
        x = nn.functional.pad(x, (self.pad, 0)).unsqueeze(1)
        return self.encoder(x).squeeze(1)

    def decode_pixels(self, y):
        x = self.decoder(y.unsqueeze(1)).squeeze(1)
        return x[:, self.pad:]
