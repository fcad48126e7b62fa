"""How a model package's ONNX graphs see a tile.

Pixel models take spectra [n, 202]; spatial models take [1, 202, H, W] windows whose size is a multiple of their
spatial factor, with `tile_overlap` pixels of context around the tile so that tiles join without seams (the context
is decoded and thrown away). Both work on the HySpecNet [0, 1] scale and return latents as (channels, samples).
"""
import math
from typing import Protocol

import numpy as np

from .errors import FormatError
from .latent import LatentGeometry
from .tiling import Tile


class Transform(Protocol):
    """A model's analysis and synthesis on one tile; `unit` is reflectance on [0, 1] of the model's bands, `valid`
    the window's valid pixels and `kept` the tile's slices inside its context window (tiling.kept_slices)."""

    kind: str
    channels: int
    tile_size: int

    def window(self, tile: Tile, width: int, height: int) -> Tile: ...

    def encode(self, unit: np.ndarray, valid: np.ndarray, kept: tuple) -> np.ndarray: ...

    def latent_geometry(self, valid: np.ndarray, kept: tuple) -> LatentGeometry: ...  # what the LatentCoder codes

    def decode(self, latent: np.ndarray, valid: np.ndarray, kept: tuple) -> np.ndarray: ...


class PixelTransform:
    kind = 'pixel'

    def __init__(self, runner, meta):
        self.runner = runner
        self.channels = meta.latent_channels
        self.bands = meta.input_bands
        self.tile_size = meta.effective_tile_size

    def window(self, tile, width, height):
        return tile

    def encode(self, unit, valid, kept):
        """unit: (202, h, w) window on [0, 1]; returns the latent (channels, valid pixels of the tile)."""
        x = unit[:, valid].T
        if not x.shape[0]:
            return np.zeros((self.channels, 0), np.float32)
        return self.runner.run('encoder', x).T

    def latent_geometry(self, valid, kept):
        """A latent sample per valid pixel of the tile, on the tile's own grid."""
        return LatentGeometry(self.channels, valid[kept])

    def decode(self, latent, valid, kept):
        """Returns the reconstruction (202, valid pixels of the tile) on [0, 1]."""
        if not latent.shape[1]:
            return np.zeros((self.bands, 0), np.float32)
        return self.runner.run('decoder', latent.T).T


class SpatialTransform:
    kind = 'spatial'

    def __init__(self, runner, meta):
        self.runner = runner
        self.factor = meta.spatial_factor
        self.dims = list(meta.latent_dims)
        self.channels = meta.latent_channels  # the product of latent_dims (checked by modelmeta)
        self.bands = meta.input_bands
        self.tile_size = meta.effective_tile_size
        self.overlap = meta.tile_overlap

    def window(self, tile, width, height):
        x0, y0 = max(0, tile.x - self.overlap), max(0, tile.y - self.overlap)
        x1 = min(width, tile.x + tile.width + self.overlap)
        y1 = min(height, tile.y + tile.height + self.overlap)
        return Tile(x0, y0, x1 - x0, y1 - y0)

    def _padded(self, shape):
        return tuple(int(math.ceil(s / self.factor) * self.factor) for s in shape)

    def encode(self, unit, valid, kept):
        if not valid[kept].any():
            return np.zeros((self.channels, 0), np.float32)
        filled = unit
        if not valid.all():  # nodata gets a neutral spectrum, not an edge the model must code
            # (boolean indexing lays the pixels out band-minor: the mean's float32 sums depend on that order)
            mean = unit[:, valid].mean(axis=1) if valid.any() else np.zeros(unit.shape[0], np.float32)
            filled = unit.copy()
            filled[:, ~valid] = mean[:, None]
        height, width = self._padded(unit.shape[1:])
        if (height, width) != unit.shape[1:]:
            filled = np.pad(filled, ((0, 0), (0, height - unit.shape[1]), (0, width - unit.shape[2])), mode='edge')
        latent = self.runner.run('encoder', filled[None])
        return latent.reshape(self.channels, -1)

    def latent_geometry(self, valid, kept):
        """The latent grid of the whole padded window (none when the tile has no valid pixel), and its occupied
        cells: those whose factor x factor block of the padded window holds a valid pixel of the tile."""
        height, width = self._padded(valid.shape)
        rows, columns = height // self.factor, width // self.factor
        inside = np.zeros((height, width), bool)
        inside[kept[0], kept[1]] = valid[kept]
        occupied = inside.reshape(rows, self.factor, columns, self.factor).any(axis=(1, 3))
        return LatentGeometry(self.channels, np.full((rows, columns), bool(occupied.any())), occupied)

    def decode(self, latent, valid, kept):
        if not latent.shape[1]:
            return np.zeros((self.bands, 0), np.float32)
        height, width = self._padded(valid.shape)
        shape = [1, *self.dims, height // self.factor, width // self.factor]
        if int(np.prod(shape)) != latent.size:
            raise FormatError('a tile latent does not match the model geometry')
        cube = self.runner.run('decoder', latent.reshape(shape))[0][:, :valid.shape[0], :valid.shape[1]]
        tile_valid = valid[kept]
        if tile_valid.all():  # every pixel: the same values in the same order without a masked copy
            return cube[:, kept[0], kept[1]].reshape(len(cube), -1)
        return _valid_columns(cube[:, kept[0], kept[1]], tile_valid)


def _valid_columns(cube, valid):
    """cube[:, valid] of a (bands, h, w) cube: the same array, several times faster than boolean indexing."""
    return np.compress(valid.reshape(-1), cube.reshape(len(cube), -1), axis=1)


TRANSFORMS = {'pixel': PixelTransform, 'spatial': SpatialTransform}  # by modelmeta.KINDS


def make_transform(runner, meta):
    """The Transform of a package's metadata (modelmeta.ModelMetadata; its kind is one of TRANSFORMS)."""
    return TRANSFORMS[meta.kind](runner, meta)
