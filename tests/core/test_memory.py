"""Streaming: a large scene compresses and decompresses tile by tile with bounded peak memory."""
import json
import os
import subprocess
import sys

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
