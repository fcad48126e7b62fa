"""Evaluate: compress, decompress, and measure what the compression did, tile by tile."""
import os
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass

import numpy as np

from .bands import hyspecnet_keep_mask
from .codec import DEFAULT_TILE, compress, decompress, valid_pixels
from .enmap import open_spectral
from .geotiff import BandInfo, GeoTiffWriter, RasterLayout
from .metrics import MetricsAccumulator, per_pixel_errors
from .outputs import atomic_output, check_writable
from .report import write_report
from .tiling import Progress, tile_grid

ERROR_BANDS = ('rmse_dn', 'spectral_angle_deg', 'max_abs_error_dn')
ERROR_NODATA = -1.0


@dataclass
class Evaluation:
    psnr: float
    sa_deg: float
    ssim: float
    rmse_dn: float
    max_abs_error_dn: float
    bpppb: float
    compression_ratio: float
    file_bytes: int
    valid_pixels: int
    model: str
    quality: int
    device: str
    provider: str
    compress_seconds: float
    decompress_seconds: float
    compressed: str
    reconstructed: str
    error: str
    report: str
    max_error: object = None
    error_bound: str = ''  # bounds.ErrorBound.describe() of the guaranteed bound ('' lossy)

    def as_dict(self):
        return asdict(self)


def _error_layout(raster):
    bands = [BandInfo(name) for name in ERROR_BANDS]
    return RasterLayout(raster.width, raster.height, 'float32', ERROR_NODATA, raster.crs_wkt,
                        tuple(raster.geotransform), bands)


def measure(original_path, reconstructed_path, error_path=None, progress=None, is_cancelled=None,
            tile_size=DEFAULT_TILE, max_error=None):
    """Image-wide metrics of a reconstruction against its original, and optionally the per-pixel error raster."""
    keep = hyspecnet_keep_mask()
    accumulator = MetricsAccumulator()
    with open_spectral(original_path) as original, open_spectral(reconstructed_path) as reconstruction:
        dead = original.canonical_dead_bands
        evaluated = keep & ~dead
        tiles = tile_grid(original.width, original.height, tile_size)
        steps = Progress(len(tiles), progress, is_cancelled)
        with ExitStack() as stack:
            writer = None
            if error_path:
                writer = GeoTiffWriter(stack.enter_context(atomic_output(error_path)), _error_layout(original))
                stack.callback(writer.close)  # runs before the atomic move (LIFO)
            for tile in tiles:
                a = original.read_canonical(tile.x, tile.y, tile.width, tile.height).astype(np.float64)
                b = reconstruction.read_canonical(tile.x, tile.y, tile.width, tile.height).astype(np.float64)
                valid = valid_pixels(a, original.nodata, ~dead)
                _zero_restored_nonfinite(a, b)
                accumulator.update(a[evaluated], b[evaluated], valid)
                if writer is not None:
                    errors = np.stack(per_pixel_errors(a[evaluated], b[evaluated])).astype(np.float32)
                    errors[:, ~valid] = ERROR_NODATA
                    writer.write(tile.x, tile.y, errors)
                steps.step()
            if writer is not None:
                writer.set_metadata({'max_error_bound_dn': 'none' if max_error is None else max_error,
                                     'achieved_max_abs_error_dn': accumulator.result()['max_abs_error_dn']})
    return accumulator.result()


def _zero_restored_nonfinite(original, reconstruction):
    """NaN and ±Inf samples that came back as they were carry no error: zero them in both (in place) so that
    they do not turn every metric into NaN; any other mismatch still counts."""
    kept = ~np.isfinite(original) & ((original == reconstruction) | (np.isnan(original) & np.isnan(reconstruction)))
    original[kept] = 0.0
    reconstruction[kept] = 0.0


def _scaled(progress, start, end):
    """Maps a sub-step's 0..100 onto start..end of the caller's progress."""
    if progress is None:
        return None
    return lambda percent: progress(start + percent * (end - start) / 100.0)


def _evaluation(metrics, packed, unpacked, model, compressed, reconstructed, error, report, max_error):
    return Evaluation(
        psnr=metrics['psnr'], sa_deg=metrics['sa_deg'], ssim=metrics['ssim'], rmse_dn=metrics['rmse_dn'],
        max_abs_error_dn=metrics['max_abs_error_dn'], bpppb=packed.bpppb,
        compression_ratio=packed.compression_ratio, file_bytes=packed.file_bytes, valid_pixels=packed.valid_pixels,
        model=str(model), quality=packed.quality, device=packed.device, provider=packed.provider,
        compress_seconds=packed.seconds, decompress_seconds=unpacked.seconds, compressed=compressed,
        reconstructed=reconstructed, error=error or '', report=report or '', max_error=max_error,
        error_bound=packed.error_bound.describe() if packed.error_bound is not None else '')


def evaluate(source, reconstructed, model=None, quality=5, device='auto', threads=None, compressed=None,
             error=None, report=None, progress=None, is_cancelled=None, tile_size=None, max_error=None,
             band_max_errors=None, relative_error=None, relative_floor=None):
    """Compress `source`, decompress it to `reconstructed`, and measure; returns an Evaluation.
    The error-bound arguments are those of codec.compress (bounds.error_bound)."""
    for path in (reconstructed, error, report):
        if path:
            check_writable(path)
    scratch = None
    if not compressed:
        scratch = tempfile.mkdtemp(prefix='enmap_compress_')
        compressed = os.path.join(scratch, 'evaluate.ehc')
    created = []
    last = 100 if not report else 90
    try:
        packed = compress(source, compressed, model, quality, device, threads, progress=_scaled(progress, 0, 40),
                          is_cancelled=is_cancelled, tile_size=tile_size, max_error=max_error,
                          band_max_errors=band_max_errors, relative_error=relative_error,
                          relative_floor=relative_floor)
        created.append(compressed)
        max_error = packed.max_error
        stated = max_error if packed.error_bound is None or max_error is not None else packed.error_bound.describe()
        unpacked = decompress(compressed, reconstructed, device, threads, progress=_scaled(progress, 40, 75),
                              is_cancelled=is_cancelled)
        created.append(reconstructed)
        metrics = measure(source, reconstructed, error, progress=_scaled(progress, 75, last),
                          is_cancelled=is_cancelled, max_error=stated)
        created.append(error)
        result = _evaluation(metrics, packed, unpacked, model, compressed if scratch is None else '',
                             reconstructed, error, report, max_error)
        if report:
            write_report(report, result.as_dict(), source, progress=_scaled(progress, last, 100),
                         is_cancelled=is_cancelled)
    except BaseException:
        for path in created:  # a failed or cancelled evaluation leaves nothing behind
            if path and os.path.exists(path):
                os.remove(path)
        raise
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return result
