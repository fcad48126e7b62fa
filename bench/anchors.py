"""The classical anchors of the benchmarks: GDAL GTiff (LERC, ZSTD), per-band JPEG 2000 and spectral delta + zstd.

Each anchor codes `bands` (canonical indices) of a `bench.scenes.Scene` and returns
(bytes, reconstruction (224, H, W), encode seconds, decode seconds).
"""
import os
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()  # a benchmark script owns its process


def _block(n):
    return int(min(256, max(16, -(-n // 16) * 16)))


def gtiff_roundtrip(scene, bands, options, folder, threads=1):
    """Write the bands with GDAL's GTiff driver (int16, nodata kept) and read them back; rate = file size."""
    data = scene.cube[bands]
    height, width = data.shape[1:]
    path = os.path.join(folder, 'anchor.tif')
    opts = list(options) + ['TILED=YES', f'BLOCKXSIZE={_block(width)}', f'BLOCKYSIZE={_block(height)}',
                            f'NUM_THREADS={threads}']
    started = time.perf_counter()
    ds = gdal.GetDriverByName('GTiff').Create(path, width, height, len(bands), gdal.GDT_Int16, opts)
    for i in range(len(bands)):
        band = ds.GetRasterBand(i + 1)
        if scene.nodata is not None:
            band.SetNoDataValue(float(scene.nodata))
        band.WriteArray(data[i])
    ds = None
    enc = time.perf_counter() - started
    size = os.path.getsize(path)
    started = time.perf_counter()
    ds = gdal.Open(path)
    back = ds.ReadAsArray()
    ds = None
    dec = time.perf_counter() - started
    os.remove(path)
    full = scene.cube.copy()
    full[bands] = back.reshape(len(bands), height, width)
    return size, full, enc, dec


def jpeg2k_roundtrip(scene, bands, level):
    """Each band its own JPEG 2000 codestream (imagecodecs / OpenJPEG; level = target PSNR in dB relative to the
    dtype range, None = reversible lossless). Header bytes of every codestream are counted."""
    import imagecodecs

    full = scene.cube.copy()
    size, enc, dec = 0, 0.0, 0.0
    for b in bands:
        started = time.perf_counter()
        blob = imagecodecs.jpeg2k_encode(np.ascontiguousarray(scene.cube[b]), level=level, codecformat='j2k')
        enc += time.perf_counter() - started
        started = time.perf_counter()
        full[b] = imagecodecs.jpeg2k_decode(blob)
        dec += time.perf_counter() - started
        size += len(blob)
    return size, full, enc, dec


def delta_zstd_roundtrip(scene, bands, level=9):
    """Lossless: spectral delta (band i - band i-1) + byte shuffle + zstd (imagecodecs), one stream per raster."""
    import imagecodecs

    data = scene.cube[bands].astype(np.int16)
    started = time.perf_counter()
    delta = np.diff(data, axis=0, prepend=np.zeros((1,) + data.shape[1:], np.int16)).astype(np.int16)
    shuffled = delta.reshape(-1).view(np.uint8).reshape(-1, 2).T.copy()
    blob = imagecodecs.zstd_encode(shuffled.tobytes(), level=level)
    enc = time.perf_counter() - started
    started = time.perf_counter()
    raw = np.frombuffer(imagecodecs.zstd_decode(blob), np.uint8).reshape(2, -1).T.copy().view(np.int16)
    back = np.cumsum(raw.reshape(data.shape), axis=0, dtype=np.int16)
    dec = time.perf_counter() - started
    full = scene.cube.copy()
    full[bands] = back
    return len(blob), full, enc, dec


LERC_BOUNDS = (0, 1, 2, 5, 10, 25, 50, 100, 200)
JPEG2K_LEVELS = (55, 60, 65, 70, 75, 80, 85, 90, 95, None)


def anchor_runs(bands_count):
    """(method, setting, callable(scene, bands, folder)) of every anchor configuration."""
    runs = []
    for bound in LERC_BOUNDS:
        opts = ['COMPRESS=LERC_ZSTD', f'MAX_Z_ERROR={bound}', 'INTERLEAVE=PIXEL']
        runs.append(('gdal_lerc_zstd', f'MAX_Z_ERROR={bound}',
                     lambda s, b, f, o=opts: gtiff_roundtrip(s, b, o, f)))
    runs.append(('gdal_zstd_pred2', 'ZSTD PREDICTOR=2 INTERLEAVE=PIXEL (lossless)',
                 lambda s, b, f: gtiff_roundtrip(s, b, ['COMPRESS=ZSTD', 'PREDICTOR=2', 'INTERLEAVE=PIXEL'], f)))
    runs.append(('delta_shuffle_zstd', 'spectral delta + byte shuffle + zstd-9 (lossless)',
                 lambda s, b, f: delta_zstd_roundtrip(s, b)))
    for level in JPEG2K_LEVELS:
        runs.append(('jpeg2k_per_band', f'level={level}' if level is not None else 'lossless',
                     lambda s, b, f, lv=level: jpeg2k_roundtrip(s, b, lv)))
    return runs
