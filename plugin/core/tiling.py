"""Tile grids, and progress/cancel plumbing shared by every long-running core call."""
from dataclasses import dataclass

from .errors import CancelledError


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    width: int
    height: int

    def as_dict(self):
        return {'x': self.x, 'y': self.y, 'w': self.width, 'h': self.height}

    @classmethod
    def from_dict(cls, meta):
        return cls(int(meta['x']), int(meta['y']), int(meta['w']), int(meta['h']))


def tile_grid(width, height, tile_size):
    """Row-major tiles covering the image; edge tiles are smaller."""
    if width <= 0 or height <= 0 or tile_size <= 0:
        return []
    return [Tile(x, y, min(tile_size, width - x), min(tile_size, height - y))
            for y in range(0, height, tile_size) for x in range(0, width, tile_size)]


class Progress:
    """Reports progress in percent over `total` steps and raises CancelledError when asked to stop.

    `callback(percent)` and `is_cancelled()` are optional; Processing feedback and QgsTask plug in here.
    """

    def __init__(self, total, callback=None, is_cancelled=None, start=0.0, end=100.0):
        self.total = max(1, total)
        self.callback = callback
        self.is_cancelled = is_cancelled
        self.start, self.end = start, end
        self.done = 0

    def check(self):
        if self.is_cancelled is not None and self.is_cancelled():
            raise CancelledError('cancelled by the user; no output was written')

    def step(self, count=1):
        self.done += count
        if self.callback is not None:
            self.callback(self.start + (self.end - self.start) * min(1.0, self.done / self.total))
        self.check()

    def sub(self, total, fraction_start, fraction_end):
        """A child reporter covering [fraction_start, fraction_end] of this one's range."""
        span = self.end - self.start
        return Progress(total, self.callback, self.is_cancelled,
                        self.start + span * fraction_start, self.start + span * fraction_end)
