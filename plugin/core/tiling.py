"""Tile grids, valid pixels, context windows, and progress/cancel plumbing shared by every long-running core
call."""
import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from .errors import CancelledError
from .samples import nodata_marker


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


def valid_pixels(cube, nodata, live_bands):
    """Which pixels of a (bands, h, w) cube are coded: a pixel is valid unless every live (non-dead) band holds
    nodata (or NaN). Band by band, stopping once no pixel can still be invalid: inside a scene that is after the
    first band, so it costs one band rather than the cube (the comparison pass calls it for every tile)."""
    invalid = np.ones(cube.shape[1:], bool)
    marker = nodata_marker(cube.dtype, nodata)
    for band in np.arange(cube.shape[0])[live_bands]:
        values = cube[band]
        missing = ~np.isfinite(values) if values.dtype.kind == 'f' else np.zeros(values.shape, bool)
        if marker is not None:
            missing |= values == marker
        invalid &= missing
        if not invalid.any():
            break
    return ~invalid


def kept_slices(tile, window):
    """(rows, columns) slices of `tile` inside its context `window` (transforms.Transform.window): the pixels a
    tile's chunk codes and restores; the rest of the window is context, decoded and thrown away."""
    return (slice(tile.y - window.y, tile.y - window.y + tile.height),
            slice(tile.x - window.x, tile.x - window.x + tile.width))


def tile_grid(width, height, tile_size):
    """Row-major tiles covering the image; edge tiles are smaller."""
    if width <= 0 or height <= 0 or tile_size <= 0:
        return []
    return [Tile(x, y, min(tile_size, width - x), min(tile_size, height - y))
            for y in range(0, height, tile_size) for x in range(0, width, tile_size)]


def grid_tile(width, height, tile_size, i):
    """Tile i of tile_grid(width, height, tile_size), worked out alone (a hostile header's grid may be too large to
    list), or None when the grid has no tile i."""
    if width <= 0 or height <= 0 or tile_size <= 0 or i < 0:
        return None
    columns = -(-width // tile_size)
    x, y = i % columns * tile_size, i // columns * tile_size
    return Tile(x, y, min(tile_size, width - x), min(tile_size, height - y)) if y < height else None


PULSE_S = 0.05  # how often a thread waiting for a tile worker shows the workers' progress and checks for a cancel


def ordered_map(work, items, workers, ahead=1, on_wait=None):
    """Yield work(item) for every item, in order. With workers > 0 up to `workers` items are worked on at once in a
    thread pool (numpy, onnxruntime and GDAL release the GIL) while the caller's thread draws the next item from
    `items` and consumes the finished results: `ahead` items are read ahead, so reading, working and writing overlap
    (more keep the workers busy through a slow step of the caller's, each holding its result meanwhile).
    workers 0: all in the caller's thread, one item after the other.
    Items are drawn in the caller's thread only (a GDAL dataset is never touched from two threads). When the
    caller stops early (an error, a cancel) the items not started are dropped and the running ones finish first.
    on_wait(): called every PULSE_S while the caller's thread waits for a result (Progress.pulse; may raise)."""
    if workers <= 0:
        for item in items:
            yield work(item)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix='enmap_compress_tile')
    pending = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= workers + ahead:
                yield waited_result(pending.popleft(), on_wait)
        while pending:
            yield waited_result(pending.popleft(), on_wait)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def waited_result(future, on_wait=None):
    """future.result(), calling on_wait() every PULSE_S meanwhile (None: just wait)."""
    if on_wait is None:
        return future.result()
    while True:
        try:
            return future.result(timeout=PULSE_S)
        except FutureTimeout:
            on_wait()


def rest_of(done, start):
    """A done(fraction) hook for what follows `start` (0..1) of `done`'s range: a part's own 0..1 mapped onto
    start..1 (None: None)."""
    return None if done is None else lambda fraction: done(start + (1 - start) * fraction)


class Progress:
    """Reports progress in percent over `total` steps, says what is happening, and raises CancelledError when
    asked to stop.

    `callback(percent)`, `is_cancelled()` and `describe(text)` are optional; Processing feedback and QgsTask plug
    in here. `callback` may also be a parent Progress: this one then fills the parent's range and shares its
    cancel check and label (so a core call run inside a larger one moves the larger one's bar).

    The bar never moves back, and `callback` is only called from the thread that made the reporter: a tile
    worker's advance() is shown when that thread next reports or pulse()s (QGIS feedback expects one thread).
    """

    def __init__(self, total, callback=None, is_cancelled=None, start=0.0, end=100.0, describe=None):
        if isinstance(callback, Progress):
            parent = callback
            callback, describe = parent.callback, describe or parent.describe
            is_cancelled = is_cancelled or parent.is_cancelled
            start, end = parent.position(start / 100.0), parent.position(end / 100.0)
        self.total = max(1, total)
        self.callback = callback
        self.is_cancelled = is_cancelled
        self.describe = describe
        self.start, self.end = start, end
        self.done = 0  # steps done; stages of a step (advance) count fractions of one
        self._owner, self._lock, self._shown = threading.get_ident(), threading.Lock(), None

    def position(self, fraction):
        """The percent that `fraction` (0..1) of this reporter's range stands for."""
        return self.start + (self.end - self.start) * min(1.0, max(0.0, fraction))

    def check(self):
        if self.is_cancelled is not None and self.is_cancelled():
            raise CancelledError('cancelled by the user; no output was written')

    def say(self, text):
        """Show what is happening now ("tile 37 of 64", "writing the report")."""
        if self.describe is not None:
            self.describe(text)

    def step(self, count=1):
        self.advance(count)
        self.check()

    def advance(self, amount):
        """Count `amount` steps as done: a stage of one (the model part of a tile: 0.5). Any thread may call it;
        the bar moves when the reporter's own thread does (now, or at its next report or pulse)."""
        with self._lock:
            done = self.done + amount
            self.done = round(done) if abs(done - round(done)) < 1e-9 else done  # whole steps stay exact: 100 %
        self.report(self.done / self.total)

    def pulse(self):
        """Show what other threads advanced, and honour a cancel (called while this thread waits for them)."""
        self.report(self.done / self.total)
        self.check()

    def each(self, items, label, amount=1.0):
        """Yield `items` (a sequence, or an iterator of `total` items), one step each, saying
        `label.format(number, count)` ("tile {} of {}") before each is fetched; `amount`: what each item adds
        after its turn (less than 1 when its stages advance the rest)."""
        count = len(items) if hasattr(items, '__len__') else self.total
        iterator = iter(items)
        for number in range(1, count + 1):
            self.say(label.format(number, count))
            self.check()
            try:
                item = next(iterator)
            except StopIteration:
                return
            yield item
            self.step(amount)

    def report(self, fraction):
        """Move the bar to `fraction` (0..1) of this reporter's range without counting steps (never back; from
        another thread: nothing, its advance shows at the owner's next report)."""
        if self.callback is None or threading.get_ident() != self._owner:
            return
        percent = self.position(fraction)
        if self._shown is None or percent > self._shown:
            self._shown = percent
            self.callback(percent)

    def part(self, amount, total=1):
        """A child reporter over the next `amount` steps past what is done now: a stage that says how far it is
        (it counts nothing here; advance(amount) when it is done)."""
        return self.sub(total, self.done / self.total, (self.done + amount) / self.total)

    def sub(self, total, fraction_start, fraction_end):
        """A child reporter covering [fraction_start, fraction_end] of this one's range."""
        return Progress(total, self.callback, self.is_cancelled, self.position(fraction_start),
                        self.position(fraction_end), self.describe)
