"""What a .ehc file holds, read from its header and index only (milliseconds, no model needed): the one summary
behind the Browser panel's item info, the layer names, the spectrum inspector and `enmap-compress info`."""
import dataclasses
import os
from dataclasses import dataclass
from typing import Optional

from .bounds import ErrorBound
from .metrics import rate_metrics
from .validation import open_checked


def coding_mode(bound):
    """'lossy', 'lossless' or 'error-bounded' for a bounds.ErrorBound (None: lossy)."""
    if bound is None:
        return 'lossy'
    return 'lossless' if bound.lossless else 'error-bounded'


@dataclass(frozen=True)
class EhcInfo:
    """The summary of one .ehc file; `to_json` is what `info --json` prints (with the CLI's model state)."""

    path: str  # absolute
    file_bytes: int
    container_version: str
    tiles: int
    model_id: str
    model_sha256: str
    model_kind: Optional[str]
    mode: str  # coding_mode()
    bound: Optional[str]  # the error bound as bounds.ErrorBound.describe() words it; None for a lossy file
    quality: Optional[int]
    max_error: Optional[int]
    tile_size: Optional[int]
    extra_bands: int
    width: int
    height: int
    band_count: int
    dtype: str
    nodata: Optional[float]
    crs: str  # as stored: 'EPSG:n', WKT or ''
    geotransform: list
    band_order: Optional[str]
    wavelength_range_nm: Optional[list]
    dead_bands: int
    product_name: Optional[str]
    valid_pixels: Optional[int]
    bpppb: Optional[float]  # over the HySpecNet band count; None without valid pixels
    compression_ratio: Optional[float]
    created: Optional[str]
    software: dict
    device: dict
    codec: dict  # the header's codec object as stored

    def quality_text(self):
        """'q5', '<= 10 DN', 'per band 0-40 DN', 'lossless' ...: what the user chose."""
        return self.bound if self.bound is not None else f'q{self.quality}'

    def lines(self):
        """The Browser's item info (after the file name)."""
        rate = f'{self.bpppb:.4f} bpppb' if self.bpppb is not None else 'unknown rate'
        return [f'model {self.model_id}, {self.quality_text()}', rate,
                f'{self.width} x {self.height} px, {self.band_count} bands', f'{_human(self.file_bytes)} on disk',
                f'written {self.created}' if self.created else '']

    def to_json(self):
        renamed = {'path': 'file', 'model_id': 'model', 'band_count': 'bands'}
        return {renamed.get(k, k): v for k, v in dataclasses.asdict(self).items()}


def _human(count):
    value = float(count)
    for unit in ('bytes', 'KB', 'MB'):
        if value < 1024:
            return f'{value:.0f} {unit}' if unit == 'bytes' else f'{value:.1f} {unit}'
        value /= 1024.0
    return f'{value:.1f} GB'


def describe(path):
    """EhcInfo of a .ehc file (FormatError when it is not one, or a field is out of range)."""
    reader, checked = open_checked(path)  # hostile fields are one FormatError, not a TypeError in the Browser
    with reader:
        header, footer = reader.header, reader.footer or {}
        version, tiles = '.'.join(map(str, reader.version)), reader.chunk_count
    codec, raster = header['codec'], checked.raster
    size = os.path.getsize(path)
    valid = footer.get('valid_pixels')
    rate = rate_metrics(size, valid) if valid else {}
    bound = ErrorBound.from_codec_info(codec)
    wavelengths = [w for w in raster['wavelengths'] if w is not None]
    return EhcInfo(
        path=os.path.abspath(path), file_bytes=size, container_version=version, tiles=tiles,
        model_id=codec['model_id'], model_sha256=codec['model_sha256'], model_kind=codec.get('model_kind'),
        mode=coding_mode(bound), bound=None if bound is None else bound.describe(), quality=codec.get('quality'),
        max_error=codec.get('max_error'), tile_size=codec.get('tile_size'),
        extra_bands=len(codec.get('extra_bands') or []),
        width=raster['width'], height=raster['height'], band_count=raster['band_count'], dtype=raster['dtype'],
        nodata=raster['nodata'], crs=raster['crs'], geotransform=raster['geotransform'],
        band_order=raster.get('band_order'),
        wavelength_range_nm=[min(wavelengths), max(wavelengths)] if wavelengths else None,
        dead_bands=len(raster['dead_bands']), product_name=raster.get('product_name'), valid_pixels=valid,
        bpppb=rate.get('bpppb'), compression_ratio=rate.get('compression_ratio'), created=header.get('created'),
        software=header.get('software', {}), device=header.get('device', {}), codec=codec)
