"""Predicted residuals: the error-bound layer codes what is left after predicting each band's residual.

The residual layer restores x = base + d, where d is the band's residual after the transform base. Residuals of
neighbouring bands and pixels are alike, so d is predicted, closed loop, from residuals the decoder already has:
the previous band's restored residual at the pixel and the sum of its four neighbours, and, in three passes over
the tile (pixels with even row and column; odd row and column; the rest), the sum of the current band's restored
residuals around the pixel (diagonal neighbours in pass 2, the four direct ones in pass 3) and, in pass 2, of the
previous band's at the same places. Only the quantised prediction error is coded: q = Q(d - p) with step 2E + 1,
restored d = p + q (2E + 1), so |x - restored| <= E holds exactly as before.

The prediction weights are not sent: for band b they are the least-squares fit of the same predictor on band
b - 1's restored residuals (residual statistics change slowly across wavelength). Everything the decoder computes
is exact: features are clipped integers, the normal equations are sums of integer products below 2**53 (exact in
float64 whatever the summation order or CPU), they are solved with Python floats in a fixed order, and the weights
are rounded to fixed point; the prediction is then a sum of integer products below 2**53. Layout: docs/format.md,
"Predicted residuals".
"""
import numpy as np

SHIFT = 8  # weights in units of 2**-8
VALUE_LIMIT = 2 ** 11  # residuals are clipped here where they serve as features: a feature (a sum of at most 4)
FEATURE_LIMIT = 4 * VALUE_LIMIT  # stays within 2**13, every normal-equation sum below 2**53
MAX_PIXELS = 2 ** 20  # tiles larger than this keep the plain residual layer (the sums would not be exact)
WEIGHT_LIMIT = 2 ** 12
FIT_SAMPLES = 2048  # pixels of a pass enough to fit its few weights
FORGET = 0.5  # in the fit, band b - 2 counts half as much as b - 1, b - 3 a quarter, ...
_DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))
# the three passes: the (row, column) strided pieces of the tile each covers, and which neighbours it may use
_PASSES = ((((0, 0),), ()), (((1, 1),), _DIAGONAL), (((0, 1), (1, 0)), _CROSS))


class _NeighbourSums:
    """grid -> the sum of grid[y + dy, x + dx] over the offsets at every pixel (zero outside the tile), through
    one zero-bordered buffer: a few whole-tile additions, whatever the pass."""

    def __init__(self, shape, dtype):
        self.padded = np.zeros((shape[0] + 2, shape[1] + 2), dtype)
        self.shape = shape

    def __call__(self, grid, offsets):
        self.padded[1:-1, 1:-1] = grid
        height, width = self.shape
        parts = [self.padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width] for dy, dx in offsets]
        out = parts[0] + parts[1]
        for part in parts[2:]:
            out += part
        return out


def _gather(grid, pieces):
    """The pieces' pixels of grid, in pass order."""
    if len(pieces) == 1:
        r, c = pieces[0]
        return grid[r::2, c::2].ravel()
    return np.concatenate([grid[r::2, c::2].ravel() for r, c in pieces])


def _scatter(grid, pieces, values):
    start = 0
    for r, c in pieces:
        view = grid[r::2, c::2]
        view[...] = values[start:start + view.size].reshape(view.shape)
        start += view.size


def _predict(columns, weights):
    """floor((columns . weights + 2**(SHIFT-1)) / 2**SHIFT) in int32: |column| <= FEATURE_LIMIT and
    |weight| <= WEIGHT_LIMIT, so no sum of a few terms comes near 2**31."""
    total = np.full(columns[0].size, 1 << (SHIFT - 1), np.int32)
    for column, weight in zip(columns, weights):
        if weight:
            total += np.multiply(column, np.int32(weight), dtype=np.int32)
    total >>= SHIFT  # an arithmetic shift: floor division
    return total


def _normal_equations(columns, target, count, memory=None):
    """(gram, right, count) of a least-squares fit, plus FORGET x those of the bands before (`memory`).
    The new sums are exact (integers below 2**53); the rest is Python float arithmetic in a fixed order.
    Large passes are fitted on every s-th pixel only, s = max(1, pixels // FIT_SAMPLES)."""
    stride = max(1, target.size // FIT_SAMPLES)
    picked = np.empty((len(columns) + 1, (target.size + stride - 1) // stride), np.float64)
    for row, column in zip(picked, columns):
        row[:] = column[::stride]
    np.clip(target[::stride], -FEATURE_LIMIT, FEATURE_LIMIT, out=picked[-1], casting='unsafe')
    # one product for all sums: each is of integers below 2**53, so exact in any order (BLAS, FMA)
    products = (picked[:-1] @ picked.T).tolist()
    gram = [row[:-1] for row in products]
    right = [row[-1] for row in products]
    if memory is not None:
        old_gram, old_right, old_count = memory
        gram = [[g + FORGET * o for g, o in zip(row, old_row)] for row, old_row in zip(gram, old_gram)]
        right = [r + FORGET * o for r, o in zip(right, old_right)]
        count += FORGET * old_count
    return gram, right, count


def _solve(gram, right, count):
    """Fixed-point least-squares weights (floats holding integers), computed identically on every machine."""
    k = len(right)
    if count < 4 * k:
        return [0.0] * k
    ridge = 1.0 + sum(gram[i][i] for i in range(k)) * 1e-4 / k
    matrix = [row[:] + [right[i]] for i, row in enumerate(gram)]
    for i in range(k):
        matrix[i][i] += ridge  # symmetric positive definite: elimination without pivoting is stable
    for i in range(k):
        for j in range(i + 1, k):
            factor = matrix[j][i] / matrix[i][i]
            for m in range(i, k + 1):
                matrix[j][m] -= factor * matrix[i][m]
    weights = [0.0] * k
    for i in range(k - 1, -1, -1):
        weights[i] = (matrix[i][k] - sum(matrix[i][m] * weights[m] for m in range(i + 1, k))) / matrix[i][i]
    return [max(-WEIGHT_LIMIT, min(WEIGHT_LIMIT, round(w * (1 << SHIFT)))) for w in weights]


class _Tile:
    """Where each pass's pixels are: their valid flags and their place among the tile's valid pixels."""

    def __init__(self, valid):
        order = np.full(valid.shape, -1, np.int64)
        order[valid] = np.arange(int(valid.sum()))
        self.full = bool(valid.all())
        self.keep, self.index = [], []
        for pieces, _ in _PASSES:
            place = _gather(order, pieces)
            self.keep.append(place >= 0)
            self.index.append(place[place >= 0])

    def masked(self, values, keep):
        return values if self.full else values * keep


def code(valid, max_errors, residual=None, symbols=None):
    """Run the predictor over a tile's bands; exactly one of residual (encode) and symbols (decode) is given.

    valid: (h, w) mask of the tile (at most MAX_PIXELS); max_errors: (bands,) ints; residual: (bands, N) integer
    d = original - base at the valid pixels (row-major); symbols: (bands, N) int32 coded symbols.
    Returns (symbols, restored residual (bands, N) int64).
    """
    if valid.size > MAX_PIXELS:
        raise ValueError(f'a tile of {valid.size} pixels is too large for predicted residuals')
    encoding = symbols is None
    tile = _Tile(valid)
    bands, pixels = len(max_errors), int(valid.sum())
    out_symbols = np.zeros((bands, pixels), np.int32) if encoding else symbols
    restored = np.zeros((bands, pixels), np.int32)
    # a full tile's rows are its grid in row-major order: passes read and write them through strided views
    symbol_grids = out_symbols.reshape(bands, *valid.shape) if tile.full else None
    restored_grids = restored.reshape(bands, *valid.shape) if tile.full else None
    previous = np.zeros(valid.shape, np.int16)  # restored residuals of the previous band, clipped to VALUE_LIMIT
    weights = [[0] * size for size in (2, 4, 3)]
    sums = _NeighbourSums(valid.shape, np.int16)
    previous_sums = {offsets: np.zeros(valid.shape, np.int16) for offsets in (_CROSS, _DIAGONAL)}
    memory = [None] * len(_PASSES)
    target = np.zeros(valid.shape, np.int32)
    for band in range(bands):
        bound = int(max_errors[band])
        step = 2 * bound + 1
        current = restored_grids[band] if tile.full else np.zeros(valid.shape, np.int32)
        clipped = np.zeros(valid.shape, np.int16)
        if encoding:
            target[valid] = residual[band]
        fitted = []
        for (pieces, offsets), keep, index, w in zip(_PASSES, tile.keep, tile.index, weights):
            # neighbours in `offsets` lie in earlier passes, all known (invalid pixels hold 0 in both bands)
            columns = [_gather(previous, pieces), _gather(previous_sums[_CROSS], pieces)]
            if offsets:
                columns.append(_gather(sums(clipped, offsets), pieces))
            if offsets == _DIAGONAL:
                columns.append(_gather(previous_sums[_DIAGONAL], pieces))
            prediction = _predict(columns, w)
            if encoding:
                q = _gather(target, pieces) - prediction
                if step > 1:
                    q = np.sign(q) * ((np.abs(q) + bound) // step)
                if tile.full:
                    _scatter(symbol_grids[band], pieces, q)
                else:
                    out_symbols[band, index] = q[keep]
            elif tile.full:
                q = _gather(symbol_grids[band], pieces)
            else:
                q = np.zeros(prediction.size, np.int32)
                q[keep] = out_symbols[band, index]
            value = tile.masked(prediction + q * step if step > 1 else prediction + q, keep)  # invalid: 0
            _scatter(current, pieces, value)
            _scatter(clipped, pieces, np.clip(value, -VALUE_LIMIT, VALUE_LIMIT))
            fitted.append(([tile.masked(c, keep) for c in columns], value, index.size))
        if not tile.full:
            restored[band] = current[valid]
        memory = [_normal_equations(*fit, old) for fit, old in zip(fitted, memory)]
        weights = [_solve(*equations) for equations in memory]  # the fit so far predicts the next band
        previous = clipped
        previous_sums = {offsets: sums(previous, offsets) for offsets in previous_sums}
    return out_symbols, restored
