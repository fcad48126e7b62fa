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

Speed: a band is held in pass order (each pass one contiguous slice), and when every band is exact (lossless
encoding) the restored residuals are the targets, so all bands are predicted at once in whole-tile array
operations (which also let tile worker threads run side by side).
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
# the tile's (row, column) parity grids in pass order: (0, 0) is pass 1, (1, 1) pass 2, (0, 1) and (1, 0) pass 3
_GRIDS = ((0, 0), (1, 1), (0, 1), (1, 0))


class _Layout:
    """A tile's pixels in pass order (each parity grid of _GRIDS row-major, one after the other), so that every
    pass reads and writes one contiguous slice of a band's vector; `grid` is a zero-bordered (h + 2, w + 2)
    buffer through which neighbour sums are taken as shifted strided views (a few additions per band)."""

    def __init__(self, valid):
        height, width = self.shape = valid.shape
        self.pieces, starts = [], [0]
        for r, c in _GRIDS:
            rows, cols = (height - r + 1) // 2, (width - c + 1) // 2
            self.pieces.append((r, c, starts[-1], (rows, cols)))
            starts.append(starts[-1] + rows * cols)
        self.passes = (slice(starts[0], starts[1]), slice(starts[1], starts[2]), slice(starts[2], starts[4]))
        flat = np.arange(valid.size).reshape(valid.shape)
        order = np.concatenate([flat[r::2, c::2].ravel() for r, c in _GRIDS])  # pass position -> pixel
        self.full = bool(valid.all())
        self.keep = valid.ravel()[order]
        self.counts = [int(np.count_nonzero(self.keep[s])) for s in self.passes]
        # one gather each way (a boolean scatter plus strided copies took 3-4x as long): pass position -> its
        # pixel's index among the valid pixels (0 where invalid, zeroed by `keep`), and valid pixel -> pass position
        rank = np.cumsum(valid.ravel()) - 1
        self.source = order if self.full else np.where(self.keep, rank[order], 0)
        self.inverse = np.argsort(order)[valid.ravel()]
        self.grid = np.zeros((height + 2, width + 2), np.int32)
        self._neighbours = {}

    def piece(self, vector, index):
        r, c, start, shape = self.pieces[index]
        return vector[..., start:start + shape[0] * shape[1]].reshape(vector.shape[:-1] + shape)

    def to_passes(self, values):
        """(bands, valid pixels) row-major -> (bands, pixels) int32 in pass order, 0 at invalid pixels."""
        values = np.asarray(values, np.int32)
        if not values.shape[-1]:
            return np.zeros(values.shape[:-1] + self.keep.shape, np.int32)
        out = np.take(values, self.source, axis=-1)
        if not self.full:
            out *= self.keep
        return out

    def from_passes(self, values):
        """The inverse of to_passes (valid pixels only)."""
        return np.take(values, self.inverse, axis=-1)

    def views(self, vector):
        """The parity grids of a pass-order vector as (rows, cols) views (made once per vector: a band's loop
        reuses them)."""
        return [self.piece(vector, index) for index in range(len(self.pieces))]

    def neighbours(self, index, offsets):
        """Views of the grid at the given offsets from the pixels of parity grid `index` (made once)."""
        views = self._neighbours.get((index, offsets))
        if views is None:
            r, c, _, (rows, cols) = self.pieces[index]
            views = [self.grid[1 + r + dy::2, 1 + c + dx::2][:rows, :cols] for dy, dx in offsets]
            self._neighbours[index, offsets] = views
        return views

    def put(self, pieces, indices):
        """Write parity grids (`views` of a pass-order vector) into the grid."""
        for index in indices:
            self.neighbours(index, ((0, 0),))[0][...] = pieces[index]

    def sum_into(self, pieces, indices, offsets):
        """The grid's sums over `offsets` at the pixels of parity grids `indices`, into those `pieces` (`views` of
        a pass-order vector)."""
        for index in indices:
            first, second, *rest = self.neighbours(index, offsets)
            target = pieces[index]
            np.add(first, second, out=target)
            for view in rest:
                target += view

    def grid_sums(self, cross, diagonal, values=None):
        """Cross and diagonal sums at every pixel, in pass order (cross = up + down + left + right, diagonal = the
        left + right pairs of the rows above and below), of the grid, or of `values` (bands, pixels in pass
        order) into cross and diagonal of the same shape."""
        height, width = self.shape
        if values is None:
            grid = self.grid
        else:
            grid = np.zeros(values.shape[:-1] + (height + 2, width + 2), values.dtype)
            for index, (r, c, _, (rows, cols)) in enumerate(self.pieces):
                grid[..., 1 + r::2, 1 + c::2][..., :rows, :cols] = self.piece(values, index)
        pairs = grid[..., :, :-2] + grid[..., :, 2:]
        full = np.empty((2,) + grid.shape[:-2] + self.shape, grid.dtype)
        np.add(grid[..., :-2, 1:-1], grid[..., 2:, 1:-1], out=full[0])
        full[0] += pairs[..., 1:-1, :]
        np.add(pairs[..., :-2, :], pairs[..., 2:, :], out=full[1])
        for index, (r, c, _, _) in enumerate(self.pieces):
            self.piece(cross, index)[...] = full[0, ..., r::2, c::2]
            self.piece(diagonal, index)[...] = full[1, ..., r::2, c::2]


def _predict(columns, weights):
    """floor((columns . weights + 2**(SHIFT-1)) / 2**SHIFT) in int32 (int32 columns): |column| <= FEATURE_LIMIT
    and |weight| <= WEIGHT_LIMIT, so no sum of a few terms comes near 2**31."""
    terms = [(column, np.int32(weight)) for column, weight in zip(columns, weights) if weight]
    if not terms:
        return np.zeros(columns[0].size, np.int32)  # floor(2**(SHIFT-1) / 2**SHIFT)
    total = np.multiply(*terms[0])  # the first product starts the sum: one pass fewer than a filled start
    term = np.empty_like(total)
    for column, weight in terms[1:]:
        total += np.multiply(column, weight, out=term)
    total += 1 << (SHIFT - 1)
    total >>= SHIFT  # an arithmetic shift: floor division
    return total


def _normal_equations(columns, target, count, memory=None, keep=None):
    """(gram, right, count) of a least-squares fit, plus FORGET x those of the bands before (`memory`).
    The new sums are exact (integers below 2**53); the rest is Python float arithmetic in a fixed order.
    Large passes are fitted on every s-th pixel only, s = max(1, pixels // FIT_SAMPLES); `keep`: the pixels'
    valid flags (the columns count 0 elsewhere), None when all are valid."""
    picked = _picked(columns, target, keep)
    # one product for all sums: each is of integers below 2**53, so exact in any order (BLAS, FMA)
    return _remember((picked[:-1] @ picked.T).tolist(), count, memory)


def _stride(pixels):
    return max(1, pixels // FIT_SAMPLES)


def _picked(columns, target, keep):
    """float64 (..., k + 1, samples): the fitted pixels' columns (0 where not kept) and clipped targets; the
    leading axes, if any, are bands."""
    stride = _stride(target.shape[-1])
    picked = np.empty(target.shape[:-1] + (len(columns) + 1, (target.shape[-1] + stride - 1) // stride))
    for i, column in enumerate(columns):
        picked[..., i, :] = column[..., ::stride]
    if keep is not None:
        picked[..., :-1, :] *= keep[::stride]
    np.clip(target[..., ::stride], -FEATURE_LIMIT, FEATURE_LIMIT, out=picked[..., -1, :], casting='unsafe')
    return picked


def _remember(products, count, memory):
    """(gram, right, count) from a fit's products (k rows of k + 1 sums) plus FORGET x `memory`."""
    gram = [row[:-1] for row in products]
    right = [row[-1] for row in products]
    if memory is not None:
        old_gram, old_right, old_count = memory
        gram = [[g + FORGET * o for g, o in zip(row, old_row)] for row, old_row in zip(gram, old_gram)]
        right = [r + FORGET * o for r, o in zip(right, old_right)]
        count += FORGET * old_count
    return gram, right, count


def _left_sum(values):
    """The plain left-to-right sum from 0 that the built-in sum() gives floats up to Python 3.11. Python 3.12
    made sum() of floats compensated (Neumaier), so with it the weights, hence the decoded residuals, would
    depend on the Python version that reads a file."""
    total = 0
    for value in values:
        total += value
    return total


def _solve(gram, right, count):
    """Fixed-point least-squares weights (floats holding integers), computed identically on every machine."""
    k = len(right)
    if count < 4 * k:
        return [0.0] * k
    return [max(-WEIGHT_LIMIT, min(WEIGHT_LIMIT, round(w * (1 << SHIFT)))) for w in _float_weights(gram, right)]


def _float_weights(gram, right):
    """The ridge least-squares solution in Python floats, in a fixed order of operations."""
    k = len(right)
    ridge = 1.0 + _left_sum(gram[i][i] for i in range(k)) * 1e-4 / k
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
        weights[i] = (matrix[i][k] - _left_sum(matrix[i][m] * weights[m] for m in range(i + 1, k))) / matrix[i][i]
    return weights


def _remember_bands(products, count):
    """_remember band after band: (memory (bands, k, k + 1), counts (bands,)) of every band's fit, the same
    float64 operations in the same order."""
    memory, counts = np.empty_like(products), np.empty(len(products))
    memory[0], counts[0] = products[0], count
    for band in range(1, len(products)):
        np.add(products[band], FORGET * memory[band - 1], out=memory[band])
        counts[band] = count + FORGET * counts[band - 1]
    return memory, counts


def _solve_bands(memory, counts):
    """_solve for many bands at once, (bands, k) int32. memory: (bands, k, k + 1) normal equations (gram | right);
    counts: (bands,)."""
    k = memory.shape[1]
    with np.errstate(all='ignore'):  # bands with too few samples get zeros, whatever their arithmetic gives
        fixed = np.clip(np.rint(_float_weights_bands(memory) * (1 << SHIFT)), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    fixed[counts < 4 * k] = 0
    return fixed.astype(np.int32)


def _float_weights_bands(memory):
    """_float_weights of every band: the same IEEE-754 operations in the same order on float64 arrays over the
    bands (numpy's +, -, *, / round as Python's floats do; np.rint above rounds half to even as round() does)."""
    bands, k = memory.shape[:2]
    matrix = memory.copy()
    diagonal = 0.0 + matrix[:, 0, 0]  # _left_sum's order
    for i in range(1, k):
        diagonal = diagonal + matrix[:, i, i]
    ridge = 1.0 + diagonal * 1e-4 / k
    for i in range(k):
        matrix[:, i, i] += ridge
    for i in range(k):
        for j in range(i + 1, k):
            factor = matrix[:, j, i] / matrix[:, i, i]
            matrix[:, j, i:] -= factor[:, None] * matrix[:, i, i:]
    weights = np.zeros((bands, k))
    for i in range(k - 1, -1, -1):
        total = np.zeros(bands)
        for m in range(i + 1, k):
            total = total + matrix[:, i, m] * weights[:, m]
        weights[:, i] = (matrix[:, i, k] - total) / matrix[:, i, i]
    return weights


_CHUNK = 32  # bands predicted at once by the lossless encoder (bounds its int32 temporaries)


def _exact_encode(layout, targets):
    """Symbols (pass order) of a tile whose bands are all exact: the restored residuals are the targets
    themselves, so every band's features, fits and predictions are known at once and are computed for all bands
    together (the same integers, and the band-by-band loop's float solves done for all bands at once)."""
    bands, size = targets.shape
    if not bands:
        return targets
    keep = None if layout.full else layout.keep
    clipped = np.zeros((bands + 1, size), np.int16)  # row b + 1: band b's features; row 0: the band before band 0
    np.clip(targets, -VALUE_LIMIT, VALUE_LIMIT, out=clipped[1:], casting='unsafe')
    cross, diagonal = np.empty_like(clipped), np.empty_like(clipped)
    for start in range(0, bands + 1, _CHUNK):
        rows = slice(start, start + _CHUNK)
        layout.grid_sums(cross[rows], diagonal[rows], clipped[rows])
    previous = slice(0, bands)
    columns = []  # per pass: its columns over all bands, in the order of the weights
    for index, part in enumerate(layout.passes):
        own = [] if not index else [diagonal[1:, part]] if index == 1 else [cross[1:, part]]
        columns.append([clipped[previous, part], cross[previous, part]] + own
                       + ([diagonal[previous, part]] if index == 1 else []))
    weights = []
    for index, part in enumerate(layout.passes):
        sums = []
        for start in range(0, bands, _CHUNK):
            rows = slice(start, start + _CHUNK)
            picked = _picked([c[rows] for c in columns[index]], targets[rows, part],
                             None if keep is None else keep[part])
            sums.append(picked[:, :-1] @ picked.transpose(0, 2, 1))
        # the fit so far predicts the next band; band 0: none fitted yet
        memory, counts = _remember_bands(np.concatenate(sums), layout.counts[index])
        weights.append(np.concatenate([np.zeros((1, len(columns[index])), np.int32),
                                       _solve_bands(memory[:-1], counts[:-1])]))
    for index, (part, w) in enumerate(zip(layout.passes, weights)):
        for start in range(0, bands, _CHUNK):
            rows = slice(start, start + _CHUNK)
            total = None
            for column, weight in zip(columns[index], w[rows].T):
                product = column[rows] * weight[:, None]  # int32
                total = product if total is None else np.add(total, product, out=total)
            total += 1 << (SHIFT - 1)
            total >>= SHIFT
            targets[rows, part] -= total
    return targets


def code(valid, max_errors, residual=None, symbols=None):
    """Run the predictor over a tile's bands; exactly one of residual (encode) and symbols (decode) is given.

    valid: (h, w) mask of the tile (at most MAX_PIXELS); max_errors: (bands,) ints; residual: (bands, N) integer
    d = original - base at the valid pixels (row-major); symbols: (bands, N) int32 coded symbols.
    Returns (symbols, restored residual (bands, N) int32).
    """
    if valid.size > MAX_PIXELS:
        raise ValueError(f'a tile of {valid.size} pixels is too large for predicted residuals')
    encoding = symbols is None
    layout = _Layout(valid)
    bands, size = len(max_errors), valid.size
    # the targets (encoding: replaced by the symbols, pass by pass) or the symbols (decoding), in pass order
    given = layout.to_passes(np.asarray(residual if encoding else symbols, np.int32))
    if encoding and not np.any(max_errors):  # lossless: the restored residuals are the targets
        return layout.from_passes(_exact_encode(layout, given)), np.asarray(residual, np.int32)
    restored = np.empty((bands, size), np.int32)
    keep = None if layout.full else layout.keep
    # the previous band's restored residuals clipped to VALUE_LIMIT, and their cross and diagonal sums
    previous, previous_cross, previous_diagonal = (np.zeros(size, np.int32) for _ in range(3))
    current = np.zeros(size, np.int32)
    local = np.zeros(size, np.int32)  # sums of the current band's neighbours from earlier passes
    previous_views, current_views = layout.views(previous), layout.views(current)
    cross_views, diagonal_views, local_views = (layout.views(v) for v in (previous_cross, previous_diagonal, local))
    weights = [[0] * count for count in (2, 4, 3)]
    memory = [None] * len(layout.passes)
    for band in range(bands):
        bound = int(max_errors[band])
        step = 2 * bound + 1
        fitted = []
        for index, (part, w) in enumerate(zip(layout.passes, weights)):
            # neighbours of the current band lie in earlier passes, all known (invalid pixels hold 0)
            if index == 1:
                layout.put(current_views, (0,))
                layout.sum_into(local_views, (1,), _DIAGONAL)
            elif index == 2:
                layout.put(current_views, (1,))
                layout.sum_into(local_views, (2, 3), _CROSS)
            columns = [previous[part], previous_cross[part]] + ([local[part]] if index else []) + (
                [previous_diagonal[part]] if index == 1 else [])
            prediction = _predict(columns, w)
            q, value = given[band, part], restored[band, part]
            if encoding:  # the symbol: the nearest multiple of the odd step (no ties) to target - prediction
                q -= prediction
                if step > 1:  # floor((d + E) / (2E + 1)) = sign(d) floor((|d| + E) / (2E + 1)) for integer d
                    q += bound
                    q //= step
            if step > 1:
                np.multiply(q, step, out=value)
                value += prediction
            else:
                np.add(prediction, q, out=value)
            if keep is not None:
                value *= keep[part]  # invalid: 0
            value.clip(-VALUE_LIMIT, VALUE_LIMIT, out=current[part])
            fitted.append((columns, value, layout.counts[index]))
        part_keeps = [None] * 3 if keep is None else [keep[part] for part in layout.passes]
        memory = [_normal_equations(*fit, old, part_keep) for fit, old, part_keep in zip(fitted, memory, part_keeps)]
        weights = [_solve(*equations) for equations in memory]  # the fit so far predicts the next band
        layout.put(current_views, (2, 3))
        layout.sum_into(cross_views, range(4), _CROSS)
        layout.sum_into(diagonal_views, (1,), _DIAGONAL)  # only pass 2 reads diagonal sums
        previous, current = current, previous
        previous_views, current_views = current_views, previous_views
    return (layout.from_passes(given) if encoding else symbols), layout.from_passes(restored)
