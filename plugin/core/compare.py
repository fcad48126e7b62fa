"""One walk over the tiles of an original and its reconstruction: every metric, the error raster and the report's
data from a single read of each image.

Each tile is measured with SSIM_WINDOW - 1 extra rows and columns on its bottom and right, so the SSIM windows that
straddle tile borders count too: the result does not depend on the tile size (it equals the whole-image value).
Each image is read once, a row of tiles at a time (a strip); the margin rows below a row of tiles are the first rows
of the next strip, read after it (GDAL keeps those blocks for the next strip; its cache is dropped after each
strip). Reading the margin with each tile decoded the block row under each row of tiles twice after the cache was
dropped (a compressed reconstruction, 1000 x 1000: 2.0 s against 1.3 s CPU). Memory stays at about a strip of each
image and a block row in GDAL's cache; an image too wide for that (STRIP_BYTES) is read tile by tile, as before.
The next tile is read while one is measured, and the band chunks of a tile are shared by a few threads.
"""
import itertools
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
from .outputs import atomic_output
from .report_data import HIST_LIMIT_DN, ReportCollector, ReportData
from .runtime import default_threads
from .tiling import Progress, Tile, tile_grid, valid_pixels

ERROR_BANDS = ('rmse_dn', 'spectral_angle_deg', 'max_abs_error_dn')
ERROR_NODATA = -1.0
STRIP_BYTES = 320 * 2 ** 20  # a strip of both images (a row of tiles' rows, all bands), held at once


@dataclass
class Comparison:
    metrics: dict  # MetricsAccumulator.result()
    report: Optional[ReportData] = None


def _error_layout(raster):
    bands = [BandInfo(name) for name in ERROR_BANDS]
    return RasterLayout(raster.width, raster.height, 'float32', ERROR_NODATA, raster.crs_wkt,
                        tuple(raster.geotransform), bands)


def _opened(stack, raster):
    """An open SpectralRaster stays open (its owner closes it); a path is opened for this walk."""
    return raster if isinstance(raster, SpectralRaster) else stack.enter_context(open_spectral(raster))


def _with_margin(tile, width, height):
    """The tile and the SSIM_WINDOW - 1 pixels below and right of it that its SSIM windows reach."""
    margin = SSIM_WINDOW - 1
    return Tile(tile.x, tile.y, min(width - tile.x, tile.width + margin), min(height - tile.y, tile.height + margin))


def _error_bands(errors):
    values = np.stack([errors.rmse_dn, errors.angle_deg, errors.max_abs_dn]).astype(np.float32)
    values[:, ~errors.valid] = ERROR_NODATA
    return values


def _tile_reader(rasters, tiles):
    """(tile, window of each raster) with the SSIM margin, read tile by tile: the GDAL blocks of the margin rows are
    decoded again for the next row of tiles, as its cache is dropped after each row."""
    width, height = rasters[0].width, rasters[0].height
    for tile in tiles:
        if tile.x == 0 and tile.y > 0:  # a new row of tiles: the blocks of the rows above are not needed again
            for raster in rasters:
                raster.drop_cache()
        window = _with_margin(tile, width, height)
        yield (tile, *(raster.read_canonical(window.x, window.y, window.width, window.height) for raster in rasters))


def _read_rows(raster, y, rows):
    """All bands of `rows` image rows from y, canonical order (read-only: the tiles' windows are copied from it)."""
    return raster.read_canonical(0, y, raster.width, rows, writable=False)


def _strip_reader(rasters, tiles):
    """(tile, window of each raster) with the SSIM margin, from one strip per row of tiles and its margin rows.

    Per row of tiles: its strip is read (the GDAL blocks of its top rows were decoded with the margin above), the
    block cache dropped, then the margin rows below it read, which leaves their blocks, the next strip's, cached."""
    width, height = rasters[0].width, rasters[0].height
    for y, row in itertools.groupby(tiles, key=lambda tile: tile.y):  # tile_grid is row-major
        row = list(row)
        strips = [_read_rows(raster, y, row[0].height) for raster in rasters]
        for raster in rasters:
            raster.drop_cache()
        below = min(height, y + row[0].height + SSIM_WINDOW - 1) - y - row[0].height
        margins = [_read_rows(raster, y + row[0].height, below) if below else None for raster in rasters]
        for tile in row:
            window = _with_margin(tile, width, height)
            columns = slice(window.x, window.x + window.width)
            yield (tile, *(np.concatenate([strip[:, :, columns], margin[:, :, columns]], axis=1)
                           if margin is not None else strip[:, :, columns].copy()
                           for strip, margin in zip(strips, margins)))
        del strips, margins  # before the next strip is read: one strip of each image at a time


def _reader(a_raster, b_raster, tiles, tile_size):
    """Yields (tile, a, b) windows of both images, in one thread: the walk calls it from a helper thread so the next
    tile is read while this one is measured (GDAL reads without the GIL), and never reads from two threads at once."""
    rasters = (a_raster, b_raster)
    strip = sum(raster.width * min(tile_size, raster.height) * raster.band_count * raster.dtype.itemsize
                for raster in rasters)
    return (_strip_reader if strip <= STRIP_BYTES else _tile_reader)(rasters, tiles)


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
    threads = int(threads or max(2, default_threads()))
    with ExitStack() as stack:
        a_raster, b_raster = _opened(stack, original), _opened(stack, reconstructed)
        dead = a_raster.canonical_dead_bands if dead is None else np.asarray(dead, bool)
        evaluated = hyspecnet_keep_mask() & ~dead
        bands = np.flatnonzero(evaluated)
        accumulator = MetricsAccumulator()
        collector = ReportCollector(a_raster.width, a_raster.height, evaluated) if with_report else None
        writer = None
        if error_path:
            writer = GeoTiffWriter(stack.enter_context(atomic_output(error_path)), _error_layout(a_raster))
            stack.callback(writer.close)  # runs before the atomic move (LIFO)
        pool = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix='enmap_compress_measure'))
        reads = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix='enmap_compress_read'))
        tiles = tile_grid(a_raster.width, a_raster.height, tile_size)
        steps = Progress(len(tiles), progress, is_cancelled)
        pairs = _prefetched(_reader(a_raster, b_raster, tiles, tile_size), reads)
        for tile, a, b in steps.each(pairs, 'measuring tile {} of {}'):
            kept = (slice(0, tile.height), slice(0, tile.width))
            errors = tile_errors(a, b, valid_pixels(a, a_raster.nodata, ~dead), kept, bands,
                                 HIST_LIMIT_DN if with_report else None, steps.check, pool=pool, threads=threads)
            accumulator.add(errors)
            if collector is not None:
                collector.update(tile, a[:, kept[0], kept[1]], b[:, kept[0], kept[1]], errors)
            if writer is not None:
                writer.write(tile.x, tile.y, _error_bands(errors))
        metrics = accumulator.result()
        if writer is not None:
            writer.set_metadata({'max_error_bound_dn': 'none' if max_error is None else max_error,
                                 'achieved_max_abs_error_dn': metrics['max_abs_error_dn']})
        wavelengths = np.asarray(a_raster.wavelengths)[a_raster.canonical_index]
    return Comparison(metrics, collector.result(wavelengths) if collector is not None else None)
