"""Streaming: a large scene compresses and decompresses tile by tile with bounded peak memory."""
import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = r'''
import json, sys, time
def own_peak_kb():  # VmHWM: this process's peak; ru_maxrss of a child starts at its parent's (fork/vfork + exec)
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM'))
from tools import synthetic
from enmap_compress.plugin.core.codec import compress, decompress
folder = sys.argv[1]
scene = synthetic.write_scene(folder + '/big.tif', width=1200, height=800, seed=4)
after_write = own_peak_kb()
t = time.perf_counter()
result = compress(scene, folder + '/big.ehc', 'pca', 5, 'cpu', threads=2)
t_enc = time.perf_counter() - t
t = time.perf_counter()
decompress(folder + '/big.ehc', folder + '/big_rec.tif', 'cpu', threads=2)
t_dec = time.perf_counter() - t
print(json.dumps({'peak_mb': own_peak_kb() / 1024,
                  'after_write_mb': after_write / 1024, 'bpppb': result.bpppb, 'enc_s': t_enc, 'dec_s': t_dec}))
'''


def test_large_scene_streams_with_bounded_memory(tmp_path):
    """1200 x 800 x 224 int16 (430 MB raw): peak RSS stays far below the raw size plus its float copy."""
    env = dict(os.environ, GDAL_CACHEMAX='256')
    proc = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    print(stats)
    assert stats['peak_mb'] < 1000, stats
    assert 0 < stats['bpppb'] < 2


def test_decompress_flushes_each_tile_when_the_tiles_fit_tiff_blocks(tmp_path, monkeypatch):
    """An error-bounded file's 128 px tiles are written in blocks of their own size, each flushed as it is
    complete: in 256 px blocks a whole row of them waited in GDAL's cache (1.0 GB peak RSS decompressing a
    6000 x 256 lossless mosaic, 344 MB now). Here 16 px tiles of a 48 x 40 image (one block before)."""
    from gdal_cache import cache_growth_at
    from osgeo import gdal

    from enmap_compress.plugin.core import geotiff
    from enmap_compress.plugin.core.codec import compress, decompress
    from tools import synthetic

    scene = synthetic.write_scene(str(tmp_path / 's.tif'), width=48, height=40, seed=4)
    compress(scene, str(tmp_path / 's.ehc'), 'pca', device='cpu', max_error=0, tile_size=16)
    growth = cache_growth_at(monkeypatch, geotiff.GeoTiffWriter, 'write')
    decompress(str(tmp_path / 's.ehc'), str(tmp_path / 'r.tif'), 'cpu')
    assert len(growth) == 9 and max(growth) < 48 * 40 * 224 * 2 / 3  # a tile's blocks at most
    assert gdal.Open(str(tmp_path / 'r.tif')).GetRasterBand(1).GetBlockSize() == [16, 16]
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / 'r.tif')).ReadAsArray(), gdal.Open(scene).ReadAsArray())
