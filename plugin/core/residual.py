"""Predicted residuals: the error-bound layer codes what is left after predicting each band's residual.

The residual layer restores x = base + d, where d is the band's residual after the transform base. Residuals of
neighbouring bands and pixels are alike, so d is predicted, closed loop, from residuals the decoder already has:
the previous band's restored residual at the pixel and its four neighbours, and, in three passes over the tile
(pixels with even row and column; odd row and column; the rest), the current band's restored residuals around
the pixel. Only the quantised prediction error is coded: q = Q(d - p) with step 2E + 1, restored d = p + q (2E + 1),
so |x - restored| <= E holds exactly as before.

The prediction weights are not sent: for band b they are the least-squares fit of the same predictor on band
b - 1's restored residuals (residual statistics change slowly across wavelength). Everything the decoder computes
is exact: features are clipped integers, the normal equations are sums of integer products below 2**53 (exact in
float64 whatever the summation order), they are solved with Python floats in a fixed order, and the weights are
rounded to fixed point; the prediction is integer arithmetic. Layout: docs/format.md, "Predicted residuals".
"""
import numpy as np

SHIFT = 8  # weights in units of 2**-8
FEATURE_LIMIT = 2 ** 13  # |feature| and |target| clipped here: every normal-equation sum stays below 2**53
MAX_PIXELS = 2 ** 20  # tiles larger than this keep the plain residual layer (the sums would not be exact)
WEIGHT_LIMIT = 2 ** 12
_DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def usable(valid):
    return valid.size <= MAX_PIXELS


def _passes(valid):
    rows, cols = np.indices(valid.shape)
    first = (rows % 2 == 0) & (cols % 2 == 0)
    second = (rows % 2 == 1) & (cols % 2 == 1)
    return ((first & valid, ()), (second & valid, _DIAGONAL), (~first & ~second & valid, _CROSS))


def _neighbour_sum(grid, offsets):
    """Sum of grid[y + dy, x + dx] over the offsets, zero outside the tile."""
    out = np.zeros_like(grid)
    height, width = grid.shape
    for dy, dx in offsets:
        out[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)] += \
            grid[max(0, dy):height - max(0, -dy), max(0, dx):width - max(0, -dx)]
    return out


def _features(previous, current, known, where, offsets):
    """(pixels, k) int64 features of the pixels `where`: previous band's residual at the pixel and around it;
    with offsets, the current band's known residuals there and the previous band's at the same places."""
    columns = [previous[where], _neighbour_sum(previous, _CROSS)[where]]
    if offsets:
        columns += [_neighbour_sum(current * known, offsets)[where], _neighbour_sum(previous * known, offsets)[where]]
    return np.clip(np.stack(columns, axis=1), -FEATURE_LIMIT, FEATURE_LIMIT)


def _predict(features, weights):
    if not weights.any():
        return np.zeros(features.shape[0], np.int64)
    return (features @ weights + (1 << (SHIFT - 1))) >> SHIFT


def _solve(features, target):
    """Fixed-point least-squares weights, computed identically on every machine."""
    if features.shape[0] < 4 * features.shape[1]:
        return np.zeros(features.shape[1], np.int64)
    floats = features.astype(np.float64)
    gram = (floats.T @ floats).tolist()  # exact: integer sums below 2**53
    right = (floats.T @ np.clip(target, -FEATURE_LIMIT, FEATURE_LIMIT).astype(np.float64)).tolist()
    k = len(right)
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
    return np.array([max(-WEIGHT_LIMIT, min(WEIGHT_LIMIT, round(w * (1 << SHIFT)))) for w in weights], np.int64)


def code(valid, max_errors, residual=None, symbols=None):
    """Run the predictor over a tile's bands; exactly one of residual (encode) and symbols (decode) is given.

    valid: (h, w) mask of the tile; max_errors: (bands,) ints; residual: (bands, N) integer d = original - base at
    the valid pixels (row-major); symbols: (bands, N) int32 coded symbols. Returns (symbols, restored residual).
    """
    encoding = symbols is None
    bands = len(max_errors)
    pixels = int(valid.sum())
    out_symbols = np.zeros((bands, pixels), np.int32) if encoding else symbols
    restored = np.zeros((bands, pixels), np.int64)
    passes = _passes(valid)
    positions = [np.flatnonzero(where[valid]) for where, _ in passes]
    previous = np.zeros(valid.shape, np.int64)
    weights = [np.zeros(2 + 2 * bool(offsets), np.int64) for _, offsets in passes]
    target_grid = np.zeros(valid.shape, np.int64)
    for band in range(bands):
        step = 2 * int(max_errors[band]) + 1
        current = np.zeros(valid.shape, np.int64)
        known = np.zeros(valid.shape, np.int64)
        fitted = []
        if encoding:
            target_grid[valid] = residual[band]
        for (where, offsets), index, w in zip(passes, positions, weights):
            features = _features(previous, current, known, where, offsets)
            prediction = _predict(features, w)
            if encoding:
                error = target_grid[where] - prediction
                q = np.sign(error) * ((np.abs(error) + int(max_errors[band])) // step)
                out_symbols[band, index] = q
            else:
                q = out_symbols[band, index].astype(np.int64)
            current[where] = prediction + q * step
            known[where] = 1
            fitted.append((features, current[where]))
        restored[band] = current[valid]
        weights = [_solve(f, t) for f, t in fitted]  # this band's fit predicts the next band
        previous = current
    return out_symbols, restored
