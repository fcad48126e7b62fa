"""The codec's linear algebra off numpy's BLAS threads (plugin/core/products.py): blocked products, the moment matrix
by onnxruntime, the leading eigenpairs by Lanczos (LAPACK where Lanczos cannot settle them), and a child process
that compresses and decompresses rotated rdnet tiles without leaving a BLAS thread spinning."""
import os
import subprocess
import sys

import numpy as np
import pytest

from enmap_compress.plugin.core import products


def test_blocked_products_give_the_product_in_blocks_of_few_multiply_adds():
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((202, 4)), rng.standard_normal((4, 5000))
    out = np.empty((202, 5000), np.float32)
    products.blocked_products(left, right, out)
    assert np.array_equal(out, (left @ right).astype(np.float32))
    blocks = products.column_blocks(5000, 808)
    assert blocks[0] == (0, 324) and blocks[-1][1] == 5000 and all(b - a <= 324 for a, b in blocks)
    assert products.column_blocks(100, 10 ** 6) == [(0, 64), (64, 100)]  # at least MIN_BLOCK_COLUMNS


def test_gram_is_x_times_its_transpose():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((202, 3000)).astype(np.float32)
    made = products.gram(x)
    assert made.shape == (202, 202) and made.dtype == np.float32
    exact = x.astype(np.float64) @ x.T.astype(np.float64)
    assert np.allclose(made, exact, rtol=1e-4, atol=1e-2)
    assert np.array_equal(products.gram(x[:3, :5]).shape, (3, 3))


def _eigh_above(matrix, floor):
    values, vectors = np.linalg.eigh(matrix)
    order = np.argsort(values)[::-1]
    keep = order[values[order] > floor]
    return values[keep], vectors[:, keep]


def _same_pairs(found, expected):
    (values, vectors), (exact_values, exact_vectors) = found, expected
    assert values.shape == exact_values.shape and vectors.shape == exact_vectors.shape
    assert np.allclose(values, exact_values, rtol=1e-9, atol=0)
    assert np.allclose(np.abs((vectors * exact_vectors).sum(axis=0)), 1.0, atol=1e-9)


@pytest.mark.parametrize('floor', [1e-3, 1e-1, 10.0, 1e4])
def test_lanczos_finds_the_eigenpairs_above_the_floor_that_lapack_finds(floor):
    rng = np.random.default_rng(2)
    axes, _ = np.linalg.qr(rng.standard_normal((202, 202)))
    spectrum = 1e3 * 0.7 ** np.arange(202)  # a decaying spectrum like a tile's component moments
    matrix = (axes * spectrum) @ axes.T
    found = products._lanczos(matrix, floor)
    assert found is not None  # settled within LANCZOS_STEPS
    _same_pairs(found, _eigh_above(matrix, floor))
    _same_pairs(products.leading_eigenpairs(matrix, floor), _eigh_above(matrix, floor))


def test_lapack_answers_where_lanczos_cannot_settle():
    rng = np.random.default_rng(3)
    axes, _ = np.linalg.qr(rng.standard_normal((120, 120)))
    flat = (axes * np.linspace(2.0, 1.0, 120)) @ axes.T  # 120 values above the floor: more than 48 steps see
    assert products._lanczos(flat, 0.5) is None
    _same_pairs(products.leading_eigenpairs(flat, 0.5), _eigh_above(flat, 0.5))
    identity = np.eye(30) * 4.0  # one Krylov direction only: its 30 equal values
    assert products._lanczos(identity, 1.0) is None and len(products.leading_eigenpairs(identity, 1.0)[0]) == 30
    at_floor = np.diag(np.exp2(-np.arange(10.0)))  # 2^-6 is at the floor, not above it
    assert len(products.leading_eigenpairs(at_floor, 2.0 ** -6)[0]) == 6
    values, vectors = products.leading_eigenpairs(np.zeros((8, 8)), 1e-6)
    assert values.shape == (0,) and vectors.shape == (8, 0)


_SPIN_CHILD = r'''
import os, sys, time
import numpy as np
from enmap_compress.plugin.core.codec import compress, decompress

def spun(action):
    action()
    started = time.process_time()
    time.sleep(0.3)
    return time.process_time() - started  # this process's CPU while it sleeps: BLAS threads spinning

big = np.ones((202, 8192), np.float32)
print('calibration', spun(lambda: big @ big.T))
print('compress', spun(lambda: compress(sys.argv[1], sys.argv[2], 'rdnet', 5, 'cpu', 1)))
print('decompress', spun(lambda: decompress(sys.argv[2], sys.argv[3], 'cpu', 1)))
'''


def test_rdnet_compress_and_decompress_leave_no_blas_thread_spinning(tmp_path):
    """OpenBLAS's worker threads spin for about 0.1 s after a large product; the codec's rotated tiles (the moments,
    the basis fit, the rotation both ways) make only products that stay on the calling thread."""
    from bench.file_basis import tile_rotations
    from tools import synthetic

    if (os.cpu_count() or 1) < 2:
        pytest.skip('one CPU: no BLAS worker thread to spin')
    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), 96, 96, seed=4)
    packed, unpacked = str(tmp_path / 'scene.ehc'), str(tmp_path / 'out.tif')
    env = {k: v for k, v in os.environ.items() if not k.endswith('_NUM_THREADS')}
    done = subprocess.run([sys.executable, '-c', _SPIN_CHILD, source, packed, unpacked], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    spins = {name: float(value) for name, value in (line.split() for line in done.stdout.splitlines())}
    if spins['calibration'] < 0.05:
        pytest.skip(f'this BLAS does not spin after a large product ({spins})')
    assert any(tile_rotations(packed))  # the file's tiles went through the basis
    assert spins['compress'] < 0.03 and spins['decompress'] < 0.03, spins
