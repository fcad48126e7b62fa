"""A quick estimate of the compressed size, from a decimated read of a few bands (milliseconds, main thread)."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.cards import estimated_bytes

SAMPLE_SIZE = 256  # the image is read at most at this size per side
CODED_BANDS = 202


@dataclass(frozen=True)
class SizeEstimate:
    width: int
    height: int
    bands: int
    valid_pixels: int
    original_bytes: int  # the coded bands as int16
    compressed_bytes: Optional[int]


def _open(source):
    from osgeo import gdal

    try:
        return gdal.Open(source)
    except RuntimeError:  # gdal.UseExceptions() is on in parts of the core
        return None


def _valid_fraction(band):
    """Share of pixels that are not nodata in one band, from a decimated read."""
    width, height = band.XSize, band.YSize
    data = band.ReadAsArray(buf_xsize=min(width, SAMPLE_SIZE), buf_ysize=min(height, SAMPLE_SIZE))
    if data is None:
        return 0.0
    valid = np.isfinite(data) if data.dtype.kind == 'f' else np.ones(data.shape, bool)
    nodata = band.GetNoDataValue()
    if nodata is not None:
        valid &= data != nodata
    return float(valid.mean())


def valid_pixels(source):
    """(width, height, bands, estimated valid pixels) of a raster, or None when GDAL cannot open it."""
    dataset = _open(source)
    if dataset is None or dataset.RasterCount == 0:
        return None
    count = dataset.RasterCount
    bands = sorted({max(1, count // 4), max(1, count // 2), max(1, 3 * count // 4)})  # a dead band is no proof
    fraction = max(_valid_fraction(dataset.GetRasterBand(b)) for b in bands)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    return width, height, count, int(round(fraction * width * height))


def estimate(source, bpppb=None):
    """SizeEstimate for `source` at an expected rate `bpppb` (None: unknown rate)."""
    found = valid_pixels(source)
    return from_pixels(found, bpppb) if found is not None else None


def from_pixels(found, bpppb=None):
    """SizeEstimate from valid_pixels()'s (width, height, bands, valid) at the rate `bpppb`."""
    width, height, bands, valid = found
    compressed = estimated_bytes(valid, bpppb, CODED_BANDS) if bpppb is not None else None
    return SizeEstimate(width, height, bands, valid, valid * CODED_BANDS * 2, compressed)


def human_bytes(count):
    value = float(count)
    for unit in ('bytes', 'KB', 'MB', 'GB'):
        if value < 1024 or unit == 'GB':
            return f'{value:.0f} {unit}' if unit == 'bytes' else f'{value:.1f} {unit}'
        value /= 1024.0
    return f'{value:.1f} TB'
