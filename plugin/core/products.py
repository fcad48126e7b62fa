"""Matrix products and the eigenpairs of a tile's basis without waking numpy's BLAS threads.

OpenBLAS (numpy's BLAS on every platform QGIS ships) runs a product on the calling thread only when it is small:
a matrix product of at most 65536 x 4 multiply-adds (its builds' default threshold), a symmetric eigensolver of at
most about 56 x 56. A larger one wakes its worker threads, and these spin for about 0.1 s on every other core after
it: with a product per tile that is a core of the machine (measured on 2 cores: 2.5 of a full tile's 7.3 s decode
cpu, about 4 of its 10.4 s compress cpu), more on a machine with more cores, and the plugin may not change BLAS's thread
count inside QGIS (a process-wide switch). So the codec's per-tile linear algebra is made of small products
(blocked_products), the encoder's moment matrix by onnxruntime on one thread (gram), and its leading eigenpairs by
Lanczos on products that stay small (leading_eigenpairs), with LAPACK only where that is not enough.
"""
import functools

import numpy as np

from . import onnxproto

BLAS_THREAD_LIMIT = 65536 * 4  # multiply-adds of a product OpenBLAS runs on the calling thread
MIN_BLOCK_COLUMNS = 64  # (a product with more than about 4000 multiply-adds a column wakes the threads anyway)
LANCZOS_STEPS = 48  # at most: the tridiagonal eigenproblem of this size stays on the calling thread
CONVERGED = 1e-10  # a Ritz pair counts when its residual is below this fraction of the largest eigenvalue


def blocked_products(left, right, out):
    """out = left @ right, in column blocks of at most BLAS_THREAD_LIMIT multiply-adds each (and at least
    MIN_BLOCK_COLUMNS columns), and in row blocks of `left` too where such a column block still exceeds it (a
    block's values are those of the whole product: BLAS sums each entry over the inner axis alone); out may be
    float32: each block is rounded into it once."""
    blocks = column_blocks(right.shape[1], left.shape[0] * left.shape[1])
    width = blocks[0][1] - blocks[0][0] if blocks else 1
    rows = max(1, BLAS_THREAD_LIMIT // max(left.shape[1] * width, 1))
    for start, stop in blocks:
        for first in range(0, left.shape[0], rows):
            out[first:first + rows, start:stop] = left[first:first + rows] @ right[:, start:stop]


def column_blocks(width, per_column):
    """(start, stop) of the column blocks of a product costing per_column multiply-adds a column."""
    columns = max(MIN_BLOCK_COLUMNS, BLAS_THREAD_LIMIT // max(per_column, 1))
    return [(start, min(start + columns, width)) for start in range(0, width, columns)]


# --- the moment matrix: X X^T on one onnxruntime thread -----------------------------------------------------------

def gram_graph():
    """The serialised ONNX model (IR 8, opset 13) of gram = x @ x^T for a float32 x (n, m)."""
    return onnxproto.model('gram', [onnxproto.node('Transpose', ['x'], ['xt']),
                                    onnxproto.node('MatMul', ['x', 'xt'], ['gram'])],
                           [onnxproto.tensor_info('x', ['n', 'm'])], [onnxproto.tensor_info('gram', ['n', 'n'])])


@functools.lru_cache(maxsize=1)
def _gram_session():
    from .runtime import onnxruntime

    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(gram_graph(), options, providers=['CPUExecutionProvider'])


def gram(x):
    """x @ x^T (float32) of a float32 matrix, made by onnxruntime on the calling thread (its session is shared by
    every thread and has no pool of its own)."""
    return _gram_session().run(None, {'x': np.ascontiguousarray(x, np.float32)})[0]


# --- the leading eigenpairs of a symmetric matrix --------------------------------------------------------------------

def leading_eigenpairs(matrix, floor):
    """(values descending, vectors as columns) of the eigenpairs of a symmetric float64 matrix whose values exceed
    `floor`: Lanczos with full reorthogonalisation (its products elementwise, so no BLAS thread wakes), when within
    LANCZOS_STEPS steps every Ritz value above the floor has converged and the next one has too; else LAPACK's
    eigh (all of them)."""
    found = _lanczos(matrix, floor)
    if found is not None:
        return found
    values, vectors = np.linalg.eigh(matrix)
    order = np.argsort(values)[::-1]
    keep = order[values[order] > floor]
    return values[keep], vectors[:, keep]


def _lanczos(matrix, floor):
    n = matrix.shape[0]
    steps = min(LANCZOS_STEPS, n)
    basis = np.zeros((steps, n))
    start = np.linspace(1.0, 2.0, n)  # no eigenvector of a real moment matrix is orthogonal to it but by accident
    basis[0] = start / np.linalg.norm(start)
    alphas, betas = [], []
    for step in range(steps):
        w = (matrix * basis[step]).sum(axis=1)  # elementwise products: numpy's, never BLAS's
        alphas.append(float((w * basis[step]).sum()))
        earlier = basis[:step + 1]
        for _ in range(2):  # twice: full reorthogonalisation against every earlier vector
            w -= ((earlier * w).sum(axis=1)[:, None] * earlier).sum(axis=0)
        beta = float(np.sqrt((w * w).sum()))
        found = _ritz(alphas, betas, beta, basis[:step + 1], matrix, floor)
        if found is not None:
            return found
        if step + 1 == steps or beta <= CONVERGED * max(abs(alphas[0]), 1e-300):
            return None  # out of steps, or an invariant subspace whose outside Lanczos cannot see
        betas.append(beta)
        basis[step + 1] = w / beta
    return None


def _ritz(alphas, betas, beta, basis, matrix, floor):
    """The eigenpairs above `floor` when the Ritz pairs of the steps so far settle them, else None."""
    m = len(alphas)
    tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    values, vectors = np.linalg.eigh(tridiagonal)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    scale = max(abs(values[0]), 1e-300)
    residuals = np.abs(beta * vectors[-1])  # of each Ritz pair: |beta_m s_m|
    above = int(np.count_nonzero(values > floor))
    settled = above + 1 if above < m else above
    if m < 2 or settled > m or not np.all(residuals[:settled] <= CONVERGED * scale):
        return None
    if np.any(np.abs(values[:settled] - floor) <= CONVERGED * scale):
        return None  # a value at the floor within Lanczos's accuracy: which side it is on is LAPACK's to say
    ritz = (vectors[:, :above].T[:, :, None] * basis[None]).sum(axis=1).T  # (n, above): the Ritz vectors
    return values[:above], ritz
