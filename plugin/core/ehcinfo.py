"""What a .ehc file holds, read from its header and index only (milliseconds, no model needed): for the Browser
panel's item info and the spectrum inspector."""
import os
from dataclasses import dataclass
from typing import Optional

from .bounds import ErrorBound
from .metrics import rate_metrics
from .validation import open_checked


@dataclass(frozen=True)
class EhcInfo:
    path: str
    model_id: str
    quality: int
    bound: Optional[str]  # the error bound as bounds.ErrorBound.describe() words it; None for a lossy file
    width: int
    height: int
    band_count: int
    valid_pixels: Optional[int]
    file_bytes: int
    bpppb: Optional[float]
    product_name: str
    created: str

    def quality_text(self):
        """'q5', '<= 10 DN', 'per band 0-40 DN', 'lossless' ...: what the user chose."""
        return self.bound if self.bound is not None else f'q{self.quality}'

    def lines(self):
        rate = f'{self.bpppb:.4f} bpppb' if self.bpppb is not None else 'unknown rate'
        return [f'model {self.model_id}, {self.quality_text()}', rate,
                f'{self.width} x {self.height} px, {self.band_count} bands', f'{_human(self.file_bytes)} on disk',
                f'written {self.created}' if self.created else '']


def _human(count):
    value = float(count)
    for unit in ('bytes', 'KB', 'MB'):
        if value < 1024:
            return f'{value:.0f} {unit}' if unit == 'bytes' else f'{value:.1f} {unit}'
        value /= 1024.0
    return f'{value:.1f} GB'


def describe(path):
    """EhcInfo of a .ehc file (FormatError when it is not one)."""
    reader, _checked = open_checked(path)  # hostile fields are one FormatError, not a TypeError in the Browser
    with reader:
        header, footer = reader.header, reader.footer or {}
    codec, raster = header.get('codec', {}), header.get('raster', {})
    size = os.path.getsize(path)
    valid = footer.get('valid_pixels')
    rate = rate_metrics(size, int(valid))['bpppb'] if valid else None  # over the HySpecNet band count
    bound = ErrorBound.from_codec_info(codec)
    return EhcInfo(os.fspath(path), str(codec.get('model_id', '?')), int(codec.get('quality', 0)),
                   None if bound is None else bound.describe(), int(raster.get('width', 0)),
                   int(raster.get('height', 0)), int(raster.get('band_count', 0)), valid, size, rate,
                   str(raster.get('product_name') or ''), str(header.get('created', '')))
