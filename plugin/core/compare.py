"""One walk over the tiles of an original and its reconstruction: every metric, the error raster and the report's
data from a single read of each image.

Each tile is measured with the SSIM_WINDOW - 1 rows above it and columns left of it, so the SSIM windows that
straddle tile borders count too (each in the tile that holds its bottom-right pixel): the result does not depend on
the tile size (it equals the whole-image value). Those margins are kept from the tiles before (_Margins), so every
pixel is read once and a tile is measured as soon as it comes: evaluate measures the tiles decompress hands over
(StreamedComparison) and never reads the reconstruction back (that read and its ZSTD decoding were 1.3 of the 9 s
of CPU the comparison took on 1000 x 1000). From files (compare), each image is read a row of tiles at a time (a
strip; GDAL's cache is dropped after each), or tile by tile where a strip is too large (STRIP_BYTES); the next
tile is read while one is measured. The band chunks of a tile are shared by a few threads.
"""
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .bands import hyspecnet_keep_mask
from .codec import DEFAULT_TILE
from .enmap import SpectralRaster, open_spectral
from .geotiff import BandInfo, GeoTiffWriter, RasterLayout
from .metrics import SSIM_WINDOW, MetricsAccumulator, tile_errors
from .outputs import atomic_output, check_distinct, check_named
from .report_data import HIST_LIMIT_DN, ReportCollector, ReportData
from .runtime import default_threads
from .tiling import Progress, tile_grid, valid_pixels

ERROR_BANDS = ('rmse_dn', 'spectral_angle_deg', 'max_abs_error_dn')
ERROR_NODATA = -1.0
STRIP_BYTES = 320 * 2 ** 20  # the strips held at once: a row of tiles' rows, all bands, of each image read


@dataclass
class Comparison:
    metrics: dict  # MetricsAccumulator.result()
    report: Optional[ReportData] = None


def _error_layout(raster):
    bands = [BandInfo(name) for name in ERROR_BANDS]
    return RasterLayout(raster.width, raster.height, 'float32', ERROR_NODATA, raster.crs_wkt,
                        tuple(raster.geotransform), bands, gcps=tuple(raster.gcps), gcp_crs_wkt=raster.gcp_crs_wkt,
                        rpc=dict(raster.rpc), pixel_is_point=raster.pixel_is_point)


def _opened(stack, raster):
    """An open SpectralRaster stays open (its owner closes it); a path is opened for this walk."""
    return raster if isinstance(raster, SpectralRaster) else stack.enter_context(open_spectral(raster))


def _error_bands(errors):
    values = np.stack([errors.rmse_dn, errors.angle_deg, errors.max_abs_dn]).astype(np.float32)
    values[:, ~errors.valid] = ERROR_NODATA
    return values


class _Margins:
    """The tiles of one image, arriving in row-major grid order, as windows with the SSIM_WINDOW - 1 rows above and
    columns left of them that the SSIM windows ending in the tile reach, kept from the tiles before: no pixel is
    read twice, and a tile can be measured as soon as it comes."""

    def __init__(self, width):
        self.width = width
        self.above = self.below = None  # the last rows of the row of tiles above, and of this one so far
        self.left = None  # the last columns of the tile before in this row, with the rows above it

    def window(self, tile, cube):
        """(window, the tile's (row, column) slices in it); the window is a new array: `cube` is not kept."""
        margin = SSIM_WINDOW - 1
        if tile.x == 0:
            self.above, self.below = self.below, None
        top, left = min(margin, tile.y), min(margin, tile.x)
        window = np.empty((cube.shape[0], top + tile.height, left + tile.width), cube.dtype)
        window[:, top:, left:] = cube
        if top:
            window[:, :top, left:] = self.above[:, -top:, tile.x:tile.x + tile.width]
        if left:
            window[:, :, :left] = self.left[:, :, -left:]
        self.left = window[:, :, -margin:].copy()
        if self.below is None:
            self.below = np.empty((cube.shape[0], min(margin, window.shape[1]), self.width), cube.dtype)
        self.below[:, :, tile.x:tile.x + tile.width] = window[:, window.shape[1] - self.below.shape[1]:, left:]
        return window, (slice(top, top + tile.height), slice(left, left + tile.width))


class _TileCubes:
    """The tiles of one raster in row-major grid order, canonical band order: read a strip (a row of tiles, all
    bands) at a time, GDAL's cache dropped after each so it does not grow to the whole image, or tile by tile
    where a strip would be too large (its cache then dropped at each new row of tiles)."""

    def __init__(self, raster, by_strips):
        self.raster, self.by_strips, self.strip = raster, by_strips, None

    def cube(self, tile):
        """The tile's (bands, h, w); may be a read-only view."""
        raster = self.raster
        if not self.by_strips:
            if tile.x == 0 and tile.y > 0:
                raster.drop_cache()
            return raster.read_canonical(tile.x, tile.y, tile.width, tile.height, writable=False)
        if tile.x == 0:
            self.strip = None  # one strip at a time
            self.strip = raster.read_canonical(0, tile.y, raster.width, tile.height, writable=False)
            raster.drop_cache()
        return self.strip[:, :, tile.x:tile.x + tile.width]


def _by_strips(rasters, tile_size):
    """Whether a strip of each raster fits in STRIP_BYTES."""
    return sum(raster.width * min(tile_size, raster.height) * raster.band_count * raster.dtype.itemsize
               for raster in rasters) <= STRIP_BYTES


def _windows(rasters, tiles, tile_size):
    """(tile, window of each raster, the tile's slices in the windows), read in one thread: the walk calls it from a
    helper thread so the next tile is read while this one is measured (GDAL reads without the GIL), and never reads
    from two threads at once."""
    by_strips = _by_strips(rasters, tile_size)
    sources = [(_TileCubes(raster, by_strips), _Margins(raster.width)) for raster in rasters]
    for tile in tiles:
        windows = [margins.window(tile, cubes.cube(tile)) for cubes, margins in sources]
        yield (tile, *(window for window, _ in windows), windows[0][1])


class _Measurer:
    """Measures tile windows (tile_errors) into the image-wide metrics, the error raster and the report's data."""

    def __init__(self, stack, raster, dead, error_path, with_report, threads):
        self.nodata, self.dead = raster.nodata, dead
        self.radiometry = raster.canonical_radiometry  # both images are measured in DN at EnMAP's scale
        evaluated = hyspecnet_keep_mask() & ~dead
        self.bands = np.flatnonzero(evaluated)
        self.accumulator = MetricsAccumulator()
        self.collector = ReportCollector(raster.width, raster.height, evaluated) if with_report else None
        self.wavelengths = np.asarray(raster.wavelengths)[raster.canonical_index]
        self.writer = None
        if error_path:
            self.writer = GeoTiffWriter(stack.enter_context(atomic_output(error_path)), _error_layout(raster))
            stack.callback(self.writer.close)  # runs before the atomic move (LIFO)
        self.threads = int(threads or max(2, default_threads()))
        self.pool = stack.enter_context(ThreadPoolExecutor(self.threads, thread_name_prefix='enmap_compress_measure'))

    def measure(self, tile, a, b, kept, progress):
        """a, b: (all bands, h, w) canonical windows of both images; kept: the tile's slices in them; progress: a
        tiling.Progress over the tile (it moves with the bands measured and may cancel)."""
        valid = valid_pixels(a, self.nodata, ~self.dead)
        a, b = self.radiometry.enmap_dn(a), self.radiometry.enmap_dn(b)
        errors = tile_errors(a, b, valid, kept, self.bands,
                             HIST_LIMIT_DN if self.collector is not None else None, progress, pool=self.pool,
                             threads=self.threads)
        self.accumulator.add(errors)
        if self.collector is not None:
            self.collector.update(tile, a[:, kept[0], kept[1]], b[:, kept[0], kept[1]], errors)
        if self.writer is not None:
            self.writer.write(tile.x, tile.y, _error_bands(errors))

    def result(self, max_error):
        """The Comparison; states max_error (and the error reached) in the error raster, which is still open."""
        metrics = self.accumulator.result()
        if self.writer is not None:
            items = {'max_error_bound_dn': 'none' if max_error is None else max_error,
                     'achieved_max_abs_error_dn': metrics['max_abs_error_dn']}
            if not self.radiometry.is_enmap:  # the bound is in the input's own units, the errors are not
                items['error_units'] = 'DN at EnMAP scale (reflectance x 10000); the bound is in the input units'
            self.writer.set_metadata(items)
        return Comparison(metrics, self.collector.result(self.wavelengths) if self.collector is not None else None)


def _prefetched(iterator, executor):
    """The items of `iterator`, each fetched in `executor` while the caller works on the one before."""
    pending = executor.submit(next, iterator, None)
    while True:
        item = pending.result()
        if item is None:
            return
        pending = executor.submit(next, iterator, None)
        yield item


def compare(original, reconstructed, error_path=None, progress=None, is_cancelled=None, tile_size=DEFAULT_TILE,
            max_error=None, with_report=False, dead=None, threads=None):
    """Compare a reconstruction with its original, reading each once, tile by tile; returns a Comparison.

    original, reconstructed: paths or open SpectralRasters. error_path: also write the per-pixel error raster
    (RMSE DN, spectral angle, max abs error DN; max_error is stated in its metadata). with_report: also gather
    the report's data. dead: canonical dead bands when known (saves scanning the original for them). threads:
    how many threads measure a tile (default: as many as the codec uses, at least 2, as the GeoTIFF writer does).
    """
    if error_path:
        check_distinct((error_path,), (original, reconstructed))
        check_named(error_path, 'geotiff')
    with ExitStack() as stack:
        a_raster, b_raster = _opened(stack, original), _opened(stack, reconstructed)
        if error_path:  # (the images a product folder or a METADATA.XML names)
            check_distinct((error_path,), (a_raster, b_raster))
        dead = a_raster.canonical_dead_bands if dead is None else np.asarray(dead, bool)
        tiles = tile_grid(a_raster.width, a_raster.height, tile_size)
        steps = Progress(len(tiles), progress, is_cancelled)
        measurer = _Measurer(stack, a_raster, dead, error_path, with_report, threads)
        reads = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix='enmap_compress_read'))
        windows = _prefetched(_windows((a_raster, b_raster), tiles, tile_size), reads)
        for tile, a, b, kept in steps.each(windows, 'measuring tile {} of {}'):
            measurer.measure(tile, a, b, kept, steps.part(1.0))
        return measurer.result(max_error)


class StreamedComparison:
    """compare() of the tiles of a reconstruction as they are made, against its open original: pass `add` as
    decompress's on_tile, then take result() before the context closes (the error raster is written on a clean
    exit, and left out when an exception, a cancel, leaves the context)."""

    def __init__(self, original, error_path=None, with_report=False, threads=None, progress=None):
        """original: an open SpectralRaster; progress: a tiling.Progress whose label and cancel check are used."""
        self.original, self.progress = original, progress or Progress(1)
        self.error_path, self.with_report, self.threads = error_path, with_report, threads
        self.grid, self.count = None, 0
        self.stack = ExitStack()

    def __enter__(self):
        original = self.original
        with self.stack:  # closes what was opened only if _Measurer fails; pop_all keeps it open otherwise
            self.measurer = _Measurer(self.stack, original, original.canonical_dead_bands, self.error_path,
                                      self.with_report, self.threads)
            self.stack = self.stack.pop_all()
        self.margins = (_Margins(original.width), _Margins(original.width))
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)

    def add(self, tile, cube, progress=None):
        """Measure one tile of the reconstruction: cube, (all bands, h, w) in canonical order (as decompress makes
        it); the tiles must come in the row-major order of a square grid (as compress writes them). progress: a
        tiling.Progress over this tile's measuring (decompress's on_tile gives one), else the one of __init__."""
        if self.grid is None:
            self.grid = _grid_of(tile, self.original.width, self.original.height)
            self.original_tiles = _TileCubes(self.original, _by_strips([self.original], tile.height))
        if self.count >= len(self.grid) or tile != self.grid[self.count]:
            raise ValueError(f'tile {tile} came out of the grid\'s row-major order (streamed comparison)')
        self.count += 1
        self.progress.say(f'measuring tile {self.count} of {len(self.grid)}')
        a, kept = self.margins[0].window(tile, self.original_tiles.cube(tile))
        b, _ = self.margins[1].window(tile, cube)
        self.measurer.measure(tile, a, b, kept, progress or Progress(1, is_cancelled=self.progress.is_cancelled))

    def result(self, max_error=None):
        """The Comparison of every tile (max_error: the bound stated in the error raster)."""
        if self.grid is None or self.count < len(self.grid):
            raise ValueError(f'the streamed comparison got {self.count} of {len(self.grid or ())} tiles')
        return self.measurer.result(max_error)


def _grid_of(first, width, height):
    """The square tile grid whose first tile is `first`."""
    if first.x or first.y:
        raise ValueError(f'tile {first} came first; the streamed comparison needs the tile at 0, 0 first')
    size = first.width if first.width < width else first.height if first.height < height else max(width, height)
    return tile_grid(width, height, size)
