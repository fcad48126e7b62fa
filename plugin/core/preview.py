"""What the dialog needs to know about an input before Run, fast: can it be compressed, and how many valid
pixels it has (nodata as the core sees it: from the GDAL band, or from METADATA.XML for a product ZIP).

The valid-pixel count is estimated from a few hundred rows of three bands, so it costs milliseconds to a few
seconds even on a 1000 x 1000 product ZIP; on images with at most SAMPLE_ROWS rows it is exact for those bands.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import EnmapCompressError

SAMPLE_ROWS = 256
_PROBE_FRACTIONS = (0.25, 0.5, 0.75)  # of the canonical band list: a single dead band proves nothing


@dataclass(frozen=True)
class InputSummary:
    source: str
    width: Optional[int]
    height: Optional[int]
    band_count: Optional[int]
    valid_pixels: Optional[int]
    problem: Optional[str]  # why it cannot be compressed (None: it can)

    @property
    def compressible(self):
        return self.problem is None


def _invalid(block, nodata):
    invalid = np.isnan(block) if block.dtype.kind == 'f' else np.zeros(block.shape, bool)
    if nodata is not None and (block.dtype.kind == 'f' or float(nodata).is_integer()):
        invalid |= block == nodata
    return invalid


def _estimate_valid(raster, sample_rows):
    """Valid pixels (valid in any of three probe bands) counted on evenly spaced rows, scaled to the image."""
    canonical = np.asarray(raster.canonical_index)
    bands = sorted({int(canonical[int(f * (canonical.size - 1))]) for f in _PROBE_FRACTIONS})
    rows = np.unique(np.linspace(0, raster.height - 1, min(raster.height, sample_rows)).round().astype(int))
    valid = 0
    for y in rows:
        block = raster.read(0, int(y), raster.width, 1, bands=bands)
        valid += int((~_invalid(block, raster.nodata)).any(axis=0).sum())
    return int(round(valid * raster.height / rows.size))


def summarize(source, sample_rows=SAMPLE_ROWS):
    """InputSummary of `source` (never raises for a bad input: the reason is in `problem`). sample_rows=0 only
    opens it (milliseconds; valid_pixels None): reading rows of a product ZIP can take seconds."""
    try:
        from .enmap import open_spectral  # needs defusedxml: the dialog still opens without it

        raster = open_spectral(source)
    except (EnmapCompressError, ImportError) as exc:
        return InputSummary(str(source), None, None, None, None, str(exc))
    with raster:
        problem = None
        if not raster.is_standard_enmap:
            problem = (f'{raster.band_count} bands that are not the 224 EnMAP L2A bands (418-2446 nm); the '
                       'compressors need an EnMAP L2A image')
        try:
            valid = _estimate_valid(raster, sample_rows) if sample_rows else None
        except (EnmapCompressError, ValueError) as exc:
            valid, problem = None, problem or str(exc)
        return InputSummary(str(source), raster.width, raster.height, raster.band_count, valid, problem)


def wavelengths(source):
    """Wavelengths (nm) in file band order as the core reads them, or None when the file has none."""
    try:
        from .enmap import open_spectral

        with open_spectral(source) as raster:
            return [float(w) for w in raster.wavelengths]
    except (EnmapCompressError, ImportError):
        return None


def spectrum_at(source, x, y):
    """The values of every band at map coordinates (x, y) in the raster's own CRS, in file band order, NaN for
    nodata; None when the point lies outside the image or the file cannot be read. An EnMAP image's values are DN at
    EnMAP's scale (reflectance x 10000), as the metrics measure them, whatever scale it stores (the stored values of
    float reflectance, or of bands with other gains, were shown as DN); any other raster's are its stored values."""
    try:
        from .bands import Radiometry
        from .enmap import open_spectral

        with open_spectral(source) as raster:
            origin_x, pixel_w, _rx, origin_y, _ry, pixel_h = raster.geotransform
            column, row = int(np.floor((x - origin_x) / pixel_w)), int(np.floor((y - origin_y) / pixel_h))
            if not (0 <= column < raster.width and 0 <= row < raster.height):
                return None
            values = raster.read(column, row, 1, 1)[:, 0, 0].astype(np.float64)
            values[_invalid(values, raster.nodata)] = np.nan
            if raster.is_standard_enmap:
                values = Radiometry.of(raster.gains, raster.offsets).enmap_dn(values)
            return [float(v) for v in values]
    except (EnmapCompressError, ImportError):
        return None
