"""The expected compressed size from the core's valid-pixel estimate and the model card's rate."""
from dataclasses import dataclass
from typing import Optional

from ..core.bands import N_HYSPECNET
from ..core.cards import estimated_bytes
from ..core.preview import summarize

CODED_BANDS = N_HYSPECNET


@dataclass(frozen=True)
class SizeEstimate:
    width: int
    height: int
    bands: int
    valid_pixels: int
    original_bytes: int  # the coded bands as int16
    compressed_bytes: Optional[int]


def estimate(source, bpppb=None):
    """SizeEstimate for `source` at an expected rate `bpppb` (None: unknown rate), or None when unreadable."""
    return from_summary(summarize(source), bpppb)


def from_summary(summary, bpppb=None):
    """SizeEstimate from a core InputSummary, or None when it has no pixel count."""
    if summary is None or summary.valid_pixels is None:
        return None
    valid = summary.valid_pixels
    compressed = estimated_bytes(valid, bpppb, CODED_BANDS) if bpppb is not None else None
    return SizeEstimate(summary.width, summary.height, summary.band_count, valid, valid * CODED_BANDS * 2,
                        compressed)


def human_bytes(count):
    value = float(count)
    for unit in ('bytes', 'KB', 'MB', 'GB'):
        if value < 1024 or unit == 'GB':
            return f'{value:.0f} {unit}' if unit == 'bytes' else f'{value:.1f} {unit}'
        value /= 1024.0
    return f'{value:.1f} TB'
