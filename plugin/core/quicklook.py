"""Quick looks for the report: the original and the reconstruction in true colour (one stretch for both, so they
compare), and the per-pixel error map, each at most SIZE pixels per side, as PNG bytes (pure Python + zlib).

The collector takes every STEP-th pixel of the tiles the evaluation already holds in memory (no extra read);
`from_files` does the same from the files for a report written on its own.
"""
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .bands import standard_wavelengths

SIZE = 320
TRUE_COLOUR_NM = (640.0, 550.0, 460.0)
STRETCH_PERCENT = (2.0, 98.0)
NODATA_RGBA = (0, 0, 0, 0)  # transparent: the page shows through where there is no data
# magma, 9 stops (matplotlib's colormap, sampled): dark is small, bright is large
_MAGMA = np.array([(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122), (229, 80, 100),
                   (251, 135, 97), (254, 194, 135), (252, 253, 191)], np.float64)


@dataclass
class QuickLook:
    original_png: bytes
    reconstructed_png: bytes
    error_png: bytes
    error_scale_dn: float  # the top of the error map's colour scale
    step: int  # one quick-look pixel per step x step image pixels
    bands: tuple  # canonical indices of red, green, blue


def true_colour_bands(wavelengths=None):
    """Canonical indices nearest to 640 / 550 / 460 nm (the standard EnMAP table by default)."""
    wavelengths = np.asarray(standard_wavelengths() if wavelengths is None else wavelengths, np.float64)
    return tuple(int(np.argmin(np.abs(wavelengths - target))) for target in TRUE_COLOUR_NM)


def png_bytes(rgba):
    """PNG of an (h, w, 4) uint8 array."""
    height, width = rgba.shape[:2]
    raw = b''.join(b'\x00' + rgba[row].tobytes() for row in range(height))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack('>IIBBBBB', width, height, 8, 6, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')


def error_colours(values, scale):
    """(..., 3) uint8 magma colours of `values` from 0 to `scale` (beyond: the top colour)."""
    ratio = np.asarray(values, np.float64) / scale
    ratio = np.where(np.isnan(ratio), 1.0, ratio)  # an error that is not a number is drawn as large as it gets
    position = np.clip(ratio, 0.0, 1.0) * (len(_MAGMA) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_MAGMA) - 1)
    weight = (position - low)[..., None]
    return np.rint(_MAGMA[low] * (1 - weight) + _MAGMA[high] * weight).astype(np.uint8)


def scale_stops(scale, count=5):
    """Evenly spaced (position 0..1, colour hex) stops of the error scale, for the report's colour bar."""
    stops = []
    for i in range(count):
        r, g, b = error_colours(scale * i / (count - 1), scale)
        stops.append((i / (count - 1), f'#{r:02x}{g:02x}{b:02x}'))
    return stops


class QuickLookCollector:
    """Fed tile by tile: update(tile, a, b, valid, pixel_rmse) with a, b (bands, h, w) in canonical order."""

    def __init__(self, width, height, size=SIZE, bands=None):
        self.step = max(1, math.ceil(max(width, height) / size))
        shape = (math.ceil(height / self.step), math.ceil(width / self.step))
        self.bands = tuple(bands) if bands is not None else true_colour_bands()
        self.original = np.zeros((3, *shape), np.float32)
        self.reconstructed = np.zeros((3, *shape), np.float32)
        self.error = np.zeros(shape, np.float32)
        self.valid = np.zeros(shape, bool)

    def _picks(self, start, length):
        """Offsets inside a tile (start, length) of the sampled pixels, and their quick-look index."""
        first = (-start) % self.step
        offsets = np.arange(first, length, self.step)
        return offsets, (start + offsets) // self.step

    def update(self, tile, a, b, valid, pixel_rmse):
        rows, out_rows = self._picks(tile.y, tile.height)
        cols, out_cols = self._picks(tile.x, tile.width)
        if rows.size == 0 or cols.size == 0:
            return
        grid = np.ix_(rows, cols)
        target = np.ix_(out_rows, out_cols)
        for channel, band in enumerate(self.bands):
            self.original[channel][target] = a[band][grid]
            self.reconstructed[channel][target] = b[band][grid]
        self.error[target] = pixel_rmse[grid]
        self.valid[target] = valid[grid]

    def result(self):
        valid = self.valid
        lows, highs = [], []
        for channel in self.original:  # a float input may hold NaN / Inf in valid pixels: stretch by the rest
            values = _finite(channel[valid])
            low, high = np.percentile(values, STRETCH_PERCENT) if values.size else (0.0, 1.0)
            lows.append(low)
            highs.append(high if high > low else low + 1.0)
        errors = _finite(self.error[valid])
        scale = float(np.percentile(errors, 99)) if errors.size else 1.0
        scale = _round_scale(max(scale, 1.0))
        error_rgba = _with_alpha(error_colours(self.error, scale), valid)
        return QuickLook(png_bytes(_stretched(self.original, lows, highs, valid)),
                         png_bytes(_stretched(self.reconstructed, lows, highs, valid)), png_bytes(error_rgba),
                         scale, self.step, self.bands)


def _round_scale(value):
    """A round number at or above `value` (1, 2, 2.5, 5 x 10^k), so the colour bar has readable ticks."""
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value)


def _finite(values):
    return values[np.isfinite(values)]


def _stretched(cube, lows, highs, valid):
    unit = [np.nan_to_num((cube[c] - lows[c]) / (highs[c] - lows[c]), nan=0.0, posinf=1.0, neginf=0.0)
            for c in range(3)]
    rgb = np.stack([np.clip(channel, 0, 1) * 255 for channel in unit], axis=-1)
    return _with_alpha(np.rint(rgb).astype(np.uint8), valid)


def _with_alpha(rgb, valid):
    rgba = np.zeros((*rgb.shape[:2], 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = np.where(valid, 255, 0)
    return rgba


def from_files(original_path, reconstructed_path, size=SIZE):
    """A QuickLook read from the two files (every STEP-th row of all bands, for the error of each pixel)."""
    from .bands import hyspecnet_keep_mask
    from .enmap import open_spectral
    from .tiling import Tile, valid_pixels

    with open_spectral(original_path) as original, open_spectral(reconstructed_path) as reconstruction:
        dead = original.canonical_dead_bands
        evaluated = hyspecnet_keep_mask() & ~dead
        wavelengths = np.asarray(original.wavelengths)[original.canonical_index]
        collector = QuickLookCollector(original.width, original.height, size, true_colour_bands(wavelengths))
        for y in range(0, original.height, collector.step):
            a = original.read_canonical(0, y, original.width, 1).astype(np.float32)
            b = reconstruction.read_canonical(0, y, original.width, 1).astype(np.float32)
            valid = valid_pixels(a, original.nodata, ~dead)
            rmse = np.sqrt(((b - a)[evaluated] ** 2).mean(axis=0))
            collector.update(Tile(0, y, original.width, 1), a, b, valid, rmse)
    return collector.result()
