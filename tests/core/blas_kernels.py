"""Decoding a file under each of OpenBLAS's kernel families, to show its pixels do not depend on them."""
import os
import subprocess
import sys

import pytest

KERNELS = ('Haswell', 'Sandybridge', 'Nehalem')  # AVX2, AVX and SSE kernels (OPENBLAS_CORETYPE)

_CHILD = r'''
import hashlib, sys
import numpy as np
from osgeo import gdal
from enmap_compress.plugin.core.codec import decompress
rng = np.random.default_rng(0)
left, right = rng.standard_normal((4, 202)).astype(sys.argv[3]), rng.standard_normal((202, 4096)).astype(sys.argv[3])
decompress(sys.argv[1], sys.argv[2], 'cpu', 1)
pixels = gdal.Open(sys.argv[2]).ReadAsArray()
print(hashlib.sha256((left @ right).tobytes()).hexdigest(), hashlib.sha256(pixels.tobytes()).hexdigest())
'''


def assert_same_pixels_on_every_kernel(source, folder, dtype):
    """Decode `source` in a child process under each of KERNELS (OpenBLAS's DYNAMIC_ARCH builds, numpy's wheels,
    take their kernels from OPENBLAS_CORETYPE) and assert the same pixels; skip when the BLAS gives the same
    `dtype` ('float32' or 'float64') sums under every name (it ignores the variable: nothing would be shown)."""
    results = {}
    for kernel in KERNELS:
        done = subprocess.run([sys.executable, '-c', _CHILD, source, os.path.join(folder, f'{kernel}.tif'), dtype],
                              env=dict(os.environ, OPENBLAS_CORETYPE=kernel), capture_output=True, text=True,
                              timeout=300)
        if done.returncode < 0:
            continue  # killed by a signal: a kernel this CPU cannot run
        assert done.returncode == 0, done.stderr
        results[kernel] = tuple(done.stdout.split())
    if len({sums for sums, _pixels in results.values()}) <= 1:
        pytest.skip(f'this BLAS ignores OPENBLAS_CORETYPE: its {dtype} sums are the same under every name')
    assert len({pixels for _sums, pixels in results.values()}) == 1, results
