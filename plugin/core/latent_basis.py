"""A per-tile spectral basis for rdnet's latent (codec info `latent_coder`: "context-v2", lossy rdnet files of 0.5, and
"context-v3", the same stream in new lossy rdnet files, decoded by synthesis.FoldedSynthesis).

rdnet's latent of component k (rows 64 k ... 64 k + 63) is its 8 x 8 block transform of the learned component
y_k = (A (u - m))_k. The block transform is the same for every component, so rotating the components, z = T^T y,
is rotating the latent: each of the 64 coefficients at each cell is a vector over the n components, multiplied by
T^T. The ONNX graphs stay as they are; the decoder multiplies the dequantised latent by T before its graph
(context-v2), or folds T into the spectral map (context-v3: synthesis.py).

T is fitted per tile from the latent (tiles and Zarr chunks stay independently decodable): the K leading
eigenvectors of the tile's second moments of the components (the LL coefficient centred; rdnet's block transform is
close to orthonormal, so this is the covariance of y per pixel), K = the axes whose variance exceeds the quantiser
step squared, each quantised to the power of two nearest PRECISION x step / its standard deviation (an axis error e
leaks variance e^2 into the others: it need not be finer than the step can see). The integers are sent as head rows
of the learned-prior stream; T is the complete Q of the Householder QR of the sent axes B = integers x 2^exponents
(LAPACK's geqrf: T = H_0 ... H_{K-1}, its first K columns spanning B in order, each column's sign that of its R
pivot), so on data like the training tiles T is close to the identity and component k of z keeps component k's
learned prior (overridden per row where the tile is unlike it). T is applied in its compact WY form,
I - V S V^T (V the K Householder vectors, S upper triangular): 2 K n products per coefficient vector, not n^2.

The encoder rotates a tile only when a per-row Laplace estimate of the rotated latent plus the head is below the
unrotated one (else the head is one flag); error-bounded files keep the context coder (codec.TileCoder).
Measured: docs/benchmarks.md, "Per-file spectral basis"; layout: docs/format.md, "Context-coded latent stream with
a tile basis".

Determinism: the symbols never depend on T (no table, class or count is computed from its floats), so every reader
decodes the same integers. T depends only on the sent integers and exponents (the encoder rotates by the T it
rebuilds from them, not by the eigenvectors it fitted), through one float64 Householder QR whose V and S are rounded
to float32; the decoder's products are made in float64 and rounded once (TileRotation.back_at), so the last bits of
a LAPACK's or a BLAS's sums reach the float32 latent only in the rare value within their error of a rounding
boundary (float32 sums moved 0.02 % of the pixels by 1 DN between OpenBLAS's kernels). The encoder sends only
well-conditioned axes (every R pivot at least MIN_PIVOT of its column), so such differences stay small and no sign
is decided by a pivot near 0. Its own rotation (into) keeps float32 products: no decoder repeats it. Exact
reconstructions (MAX_ERROR, lossless) are never rotated.
"""
import functools
from dataclasses import dataclass

import numpy as np

from . import context_coder
from .codecheader import BASIS_CODERS, LATENT_BASIS, LATENT_FOLDED
from .context_coder import ContextLatentCoder, _occupied, choose_latent_coder, scale_code
from .errors import FormatError
from .latent import laplace_bits
from .prior import BYTE_TABLE, FLAG_TABLE, FixedTable, LaplaceTable, byte_scale, decode_groups, encode_groups
from .products import blocked_products, column_blocks, gram, leading_eigenpairs
from .tiling import rest_of

STREAM_VERSION = 3  # learned-prior stream version of these tiles: a reader of context-v1 streams refuses them
BLOCK_COEFFICIENTS = 64  # rdnet's 8 x 8 block: latent rows per component
THRESHOLD = 1.0  # an axis is sent when its variance per pixel exceeds THRESHOLD x step^2
PRECISION = 0.02  # an axis' quantum: the power of two nearest PRECISION x step / its standard deviation
EXPONENTS = (-14, -2)  # the quanta 2^-14 .. 2^-2 a stream may state
SAMPLE_CELLS = 128  # occupied cells the encoder's choice looks at (a regular sample of larger tiles)
MIN_PIVOT = 0.05  # the encoder sends no axes whose QR has a pivot below this fraction of its column
PART = "a context-v2 latent stream's basis head"


@functools.lru_cache(maxsize=64)
def count_table(n):
    """A uniform table over -n..n (the axis count K, 1..n) with an escape entry."""
    return FixedTable([1.0] * (2 * n + 1) + [1.0])


@functools.lru_cache(maxsize=256)
def axis_table(code):
    """The table of one axis' integers: the Laplace of scale 2 ** (code / 4) without a dead zone."""
    return LaplaceTable(byte_scale(code), 0.0)


@dataclass(frozen=True)
class TileBasis:
    """What a rotated tile sends: exponents (K,) and integers (n, K), one column per axis, and the T they give."""

    exponents: np.ndarray
    integers: np.ndarray
    rotation: 'TileRotation'

    @property
    def axes(self):
        return self.integers.shape[1]

    def head(self):
        """(rows, tables) of the stream's head: flag 1, K, the exponents, a scale code per axis, the axes."""
        codes = scale_code(np.maximum(np.abs(self.integers).mean(axis=0), 2.0 ** -30))
        n = self.integers.shape[0]
        rows = [np.ones(1, np.int32), np.array([self.axes], np.int32), self.exponents.astype(np.int32),
                codes.astype(np.int32)] + [self.integers[:, k].astype(np.int32) for k in range(self.axes)]
        tables = [FLAG_TABLE, count_table(n), BYTE_TABLE, BYTE_TABLE] + [axis_table(int(c)) for c in codes]
        return rows, tables


@dataclass(frozen=True)
class BasisSymbols:
    """A tile's symbols (channels, samples) in the rotated coordinates, and T (None: not rotated); what
    BasisContextCoder.dequantise takes."""

    symbols: np.ndarray
    rotation: 'TileRotation' = None
    rows: np.ndarray = None  # the rows that may hold a nonzero symbol (the coded ones); None: any


UNROTATED_HEAD = ([np.zeros(1, np.int32)], [FLAG_TABLE])


@dataclass
class PreparedLatent:
    """A tile's latent with its basis chosen and applied (BasisContextCoder.prepare), as encode takes it."""

    basis: 'TileBasis'  # None: not rotated
    latent: np.ndarray  # rotated by the basis when there is one
    peaks: np.ndarray = None  # row_peaks(latent) where known (not rotated: the model's latent's)


class TileRotation:
    """T = diag(signs) applied after Q = I - V S V^T (Householder vectors V (n, K), S (K, K) upper triangular): the
    complete Q of the QR of the sent axes with its first K columns' signs those of their pivots."""

    def __init__(self, axes):
        """axes: B (n, K) float64, the sent axes."""
        raw, tau = np.linalg.qr(axes, mode='raw')  # LAPACK geqrf: R above the diagonal of raw.T, V below it
        n, k = axes.shape
        packed = raw.T
        self.vectors = np.tril(packed, -1) + np.eye(n, k)
        pivots = np.diagonal(packed).copy()
        self.pivot = float((np.abs(pivots) / np.maximum(np.linalg.norm(axes, axis=0), 1e-300)).min())
        self.signs = np.where(pivots < 0, -1.0, 1.0)  # of the first K columns (the others keep +1)
        gram = self.vectors.T @ self.vectors
        self.factor = np.zeros((k, k))  # S, LAPACK larft's forward columnwise recurrence
        for j in range(k):
            self.factor[:j, j] = -tau[j] * (self.factor[:j, :j] @ gram[:j, j])
            self.factor[j, j] = tau[j]
        self._f32 = (self.vectors.astype(np.float32), self.factor.astype(np.float32),
                     self.signs.astype(np.float32)[:, None])

    def into(self, latent, components, overwrite=False):
        """z = T^T y of a latent (components x 64, cells), float32: s * (y - V S^T V^T y) on each vector; in
        `latent` itself with overwrite (a fresh 53 MB array for a 256 px tile costs some 13k page faults)."""
        v, factor, signs = self._f32
        z = latent.reshape(components, -1) if overwrite else latent.reshape(components, -1).copy()
        self._update(z, factor.T)
        z[:len(signs)] *= signs
        return z.reshape(latent.shape)

    def factors(self):
        """(V (n, K), S (K, K), the K signs) as float32: the factors back_at and the folded synthesis use."""
        v, factor, signs = self._f32
        return v, factor, signs[:, 0]

    def back(self, latent, components, overwrite=False):
        """y = T z of a latent (components x 64, cells), float32 (back_at at every row and cell; `latent` may be
        overwritten when overwrite)."""
        rows = np.arange(components * BLOCK_COEFFICIENTS)
        values = latent.reshape(len(rows), -1)
        return self.back_at(values if overwrite else values.copy(), rows).reshape(latent.shape)

    def back_at(self, values, rows, cells=None, out=None):
        """back's y = T z (channels, cells) float32 at the flat grid cells `cells` (None: all) of a latent z
        (components x 64, grid cells) that is 0 but in its rows `rows`, which hold `values`
        (len(rows), grid cells; overwritten): w - V S V^T w with w = z, its first K components signed, the
        products in float64 (exact products of float32 factors), rounded once to float32, then the difference
        in float32. So the bits do not depend on how a BLAS orders its sums (float32 sums did: 0.5.0's decodes
        differed by 1 DN in 0.02 % of the samples between OpenBLAS's kernels), nor on the cells asked for, with
        every product small enough for BLAS to run it on this thread (BLAS_THREAD_LIMIT). out: a float32
        (channels, cells) array it may be made in."""
        v, factor, signs = self._f32
        components, axes = v.shape
        grid = values.shape[1]
        component, coefficient = np.divmod(rows, BLOCK_COEFFICIENTS)
        signed = np.flatnonzero(component < axes)
        values[signed] *= signs[component[signed]]  # w: z with its first K components signed
        reduced = self._reduced(values, component, coefficient, grid)  # (K, 64, grid) float64
        if cells is not None:
            reduced = reduced[:, :, cells]
        width = grid if cells is None else len(cells)
        out = np.empty((components, BLOCK_COEFFICIENTS * width), np.float32) if out is None else \
            out.reshape(components, -1)
        blocked_products(v.astype(np.float64), reduced.reshape(axes, -1), out)  # V S V^T w, rounded once
        live = (values if cells is None else np.take(values, cells, axis=1)) - out.reshape(-1, width)[rows]
        zeros = np.zeros(components, np.float32)  # w at the other rows: 0, signed as their component
        zeros[:axes] *= signs[:, 0]
        np.subtract(zeros[:, None], out, out=out)
        out = out.reshape(-1, width)
        out[rows] = live
        return out

    def _reduced(self, values, component, coefficient, grid):
        """S V^T w (K, 64, grid) float64 of the latent w that is 0 but at the rows (component, coefficient),
        which hold `values`: for each coefficient, V's rows of its components times its rows of w."""
        v, factor, _signs = self._f32
        axes = v.shape[1]
        order = np.argsort(coefficient, kind='stable')
        bounds = np.searchsorted(coefficient[order], np.arange(BLOCK_COEFFICIENTS + 1))
        reduced = np.zeros((axes, BLOCK_COEFFICIENTS, grid))
        for number in np.flatnonzero(np.diff(bounds)):
            group = order[bounds[number]:bounds[number + 1]]
            blocked_products(v[component[group]].T.astype(np.float64), values[group].astype(np.float64),
                             reduced[:, number])
        flat = reduced.reshape(axes, -1)
        blocked_products(factor.astype(np.float64), flat.copy(), flat)
        return reduced

    def _update(self, flat, factor):
        """flat -= V factor V^T flat, in place, in float32, a block of columns at a time (blocks small enough for
        one BLAS thread, products.column_blocks)."""
        v = self._f32[0]
        vt = np.ascontiguousarray(v.T)
        for start, stop in column_blocks(flat.shape[1], v.size):
            block = flat[:, start:stop]
            block -= v @ (factor @ (vt @ block))

    def matrix(self):
        """T (n, n) float64."""
        n = self.vectors.shape[0]
        t = np.eye(n) - self.vectors @ self.factor @ self.vectors.T
        t[:, :len(self.signs)] *= self.signs
        return t


def component_moments(latent, components):
    """(n, n) second moments per pixel of the components of a latent (components x 64, cells), its LL coefficient
    centred (rdnet's block transform is close to orthonormal), float32 products (products.gram): the encoder's
    estimate."""
    part = latent.reshape(components, BLOCK_COEFFICIENTS, -1).copy()
    part[:, 0] -= part[:, 0].mean(axis=1, keepdims=True)
    flat = part.reshape(components, -1)
    return gram(flat).astype(np.float64) / max(flat.shape[1], 1)


def fit_basis(moments, step, threshold=THRESHOLD, precision=PRECISION):
    """The TileBasis of a tile's component moments at quantiser step `step`, or None (no axis above the threshold,
    or a basis too ill-conditioned to send)."""
    values, vectors = leading_eigenpairs(moments, threshold * step * step)
    k = len(values)
    if not k:
        return None
    vectors = vectors * np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(k)])
    exponents = np.clip(np.rint(np.log2(precision * step / np.sqrt(values[:k]))), *EXPONENTS).astype(np.int64)
    integers = np.rint(vectors / np.exp2(exponents)).astype(np.int64)
    rotation = TileRotation(integers * np.exp2(exponents))
    if rotation.pivot < MIN_PIVOT:
        return None
    return TileBasis(exponents, integers, rotation)


def basis_from_head(rows):
    """The TileBasis (None: not rotated) of a decoded head whose rows head_plan laid out (FormatError naming the
    part when its exponents or axes cannot be a basis)."""
    if not rows[0][0]:
        return None
    exponents = rows[2].astype(np.int64)
    integers = np.stack(rows[4:4 + int(rows[1][0])], axis=1).astype(np.int64)
    if exponents.min() < EXPONENTS[0] or exponents.max() > EXPONENTS[1]:
        raise FormatError(f'{PART} has an exponent outside {EXPONENTS[0]}..{EXPONENTS[1]}')
    if not np.abs(integers).max(axis=0).all():
        raise FormatError(f'{PART} has an axis of zeros')
    return TileBasis(exponents, integers, TileRotation(integers * np.exp2(exponents)))


def head_plan(rows, components):
    """The decoder's (table, length) of the head rows (`rows`: those decoded so far, filled in as it goes)."""
    yield FLAG_TABLE, 1
    if rows[0][0] not in (0, 1):  # FLAG_TABLE's escape
        raise FormatError(f'{PART} has an invalid flag ({int(rows[0][0])})')
    if not rows[0][0]:
        return
    yield count_table(components), 1
    k = int(rows[1][0])
    if not 1 <= k <= components:
        raise FormatError(f'{PART} states {k} axes; the model\'s latent has {components} components')
    yield BYTE_TABLE, k
    yield BYTE_TABLE, k
    codes = rows[3]
    if codes.min() < -128 or codes.max() > 127:
        raise FormatError(f'{PART} has a scale code outside -128..127')
    for code in codes:
        yield axis_table(int(code)), components


CHOICE_SHARE = 0.5  # of a tile's encode, choosing (and applying) its basis: measured about half
FIT_SHARE = 0.3  # of the encode, the basis fitted and both estimates made (before it rotates the latent)


class BasisContextCoder(ContextLatentCoder):
    """The context coder of rdnet's latent behind a per-tile rotation of its components (module docstring)."""

    always = False  # the encoder's choice: every fitted basis, not only those estimated to pay (bench.file_basis)

    def prepare(self, latent, geometry, peaks=None):
        """encode's basis choice and rotation, ahead of the rest (on the model worker, while this coder's thread
        codes the tiles before): about half of an encode (CHOICE_SHARE). The latent is rotated in place."""
        return PreparedLatent(*self.choose(latent, geometry, overwrite=True, peaks=peaks)) if latent.shape[1] \
            else latent

    def encode(self, latent, geometry, done=None):
        prepared = isinstance(latent, PreparedLatent)
        if not prepared and not latent.shape[1]:
            return BasisSymbols(np.zeros(latent.shape, np.int32)), b''
        basis, latent, peaks = (latent.basis, latent.latent, latent.peaks) if prepared else \
            self.choose(latent, geometry, done)
        if done is not None:
            done(CHOICE_SHARE)
        symbols, rows, tables = self.encode_rows(latent, geometry, rest_of(done, CHOICE_SHARE), peaks)
        head_rows, head_tables = UNROTATED_HEAD if basis is None else basis.head()
        stream = encode_groups(head_rows + rows, head_tables + tables, STREAM_VERSION)
        return BasisSymbols(symbols, None if basis is None else basis.rotation), stream

    def choose(self, latent, geometry, done=None, overwrite=False, peaks=None):
        """(TileBasis or None, the latent to code, its row_peaks or None): rotated only when the estimated bits of
        the rotated latent plus the head are below those of the latent as it is. The basis is fitted and both are
        estimated on a regular sample of at most about SAMPLE_CELLS occupied cells (an eighth of a 256 px tile);
        only a chosen basis rotates the whole latent (in place with overwrite). done(fraction): encode's progress
        hook (FIT_SHARE once both are estimated); peaks: row_peaks(latent) where known, returned when it is not
        rotated (None when it is)."""
        cells = np.flatnonzero(_occupied(geometry))
        sample = np.take(latent, cells[::max(1, cells.size // SAMPLE_CELLS)], axis=1)
        basis = fit_basis(component_moments(sample, self.components), self.step)
        if basis is None:
            return None, latent, peaks
        head_bits = 8.0 * len(encode_groups(*basis.head())) * sample.shape[1] / cells.size
        pays = self.always or self.estimated_bits(basis.rotation.into(sample, self.components)) + head_bits < \
            self.estimated_bits(sample)
        if done is not None:
            done(FIT_SHARE)
        if not pays:
            return None, latent, peaks
        # (a rotated latent's peaks are found by encode, on the coder's thread: measured in the rotation, on the
        # model worker, they lengthened the busier thread of a full-tile compress)
        return basis, basis.rotation.into(latent, self.components, overwrite), None

    def estimated_bits(self, latent):
        """Bits of a latent (channels, cells) under one fitted Laplace scale per row at the coder's step and dead
        zone (the encoder's cheap estimate; a row that quantises to 0 costs nothing in it)."""
        live = np.flatnonzero(self.live_rows(latent))
        symbols = self._quantise(latent[live] * np.float32(1.0 / self.step))
        cells = latent.shape[1]
        nonzeros = np.count_nonzero(symbols, axis=1).astype(np.float64)
        total = np.abs(symbols).sum(axis=1, dtype=np.float64)
        beta = np.maximum(total / cells, 2.0 ** -30)
        return float(laplace_bits(cells - nonzeros, nonzeros, total - nonzeros, beta, self.deadzone).sum())

    def decode(self, data, geometry):
        symbols, occupied = self._blank(data, geometry)
        if not symbols.shape[1]:
            return BasisSymbols(symbols)
        found = []
        decode_groups(data, self._basis_plan(symbols, geometry.grid.shape, occupied, found), version=STREAM_VERSION)
        basis, coded = found
        return BasisSymbols(symbols, basis.rotation if basis is not None else None, np.flatnonzero(coded))

    def _basis_plan(self, symbols, grid, occupied, found):
        """The head's plan, then the context coder's on the rows after it (found receives the TileBasis, then the
        coded rows)."""
        inner_plan = self._plan(symbols, grid, occupied, found)

        def plan(rows):
            yield from head_plan(rows, self.components)
            found.append(basis_from_head(rows))
            inner_rows = []
            for item in inner_plan(inner_rows):
                yield item
                inner_rows.append(rows[-1])
        return plan

    def live_latent(self, symbols, cells=None):
        """(components, coefficients, z) of a tile's BasisSymbols for the folded synthesis (synthesis.py): the
        components and block coefficients with a nonzero symbol in the tile (ascending), and the dequantised coded
        latent, not rotated, on that grid: z (components, samples or len(cells), coefficients) float32, 0 at the
        pairs without a symbol. The grid depends on the whole tile only, not on `cells`."""
        rows = np.flatnonzero(symbols.symbols.any(axis=1)) if symbols.rows is None else symbols.rows
        rows = rows[symbols.symbols[rows].any(axis=1)]
        component, coefficient = np.divmod(rows, BLOCK_COEFFICIENTS)
        components, coefficients = np.unique(component), np.unique(coefficient)
        width = symbols.symbols.shape[1] if cells is None else len(cells)
        z = np.zeros((len(components), width, len(coefficients)), np.float32)
        z[np.searchsorted(components, component), :, np.searchsorted(coefficients, coefficient)] = \
            self.row_values(symbols.symbols, rows, cells)
        return components, coefficients, z

    def dequantise(self, symbols, cells=None, out=None):
        rows = np.flatnonzero(symbols.symbols.any(axis=1)) if symbols.rows is None else symbols.rows
        if symbols.rotation is None:
            return self.dequantised_rows(symbols.symbols, rows, cells, out)
        return symbols.rotation.back_at(self.row_values(symbols.symbols, rows), rows, cells, out)


def choose_coder(meta, level, steps, scheme=None, lossy=False, foldable=False, exact=False):
    """(LatentCoder, its codec-info name) of a file: `scheme` as its header states it, or None for a new file (a
    lossy rdnet file: the tile basis coder, LATENT_FOLDED when the model's decoder has the folded synthesis
    (`foldable`), else LATENT_BASIS; others as context_coder.choose_latent_coder, `exact`: an error-bounded one
    reconstructed by the model's exact synthesis). The basis coder is refused for error-bounded files
    (their exact reconstruction must not depend on a QR's last bits)."""
    if scheme is None and lossy and context_coder.suits(meta):  # (a module attribute: tests replace it)
        scheme = LATENT_FOLDED if foldable else LATENT_BASIS
    if scheme not in BASIS_CODERS:
        return choose_latent_coder(meta, level, steps, scheme, exact)
    if not context_coder.suits(meta):
        raise FormatError(f'latents coded as "{scheme}" are not supported here for model "{meta.id}"')
    if not lossy:
        raise FormatError(f'latents coded as "{scheme}" are not supported in an error-bounded or lossless file')
    return BasisContextCoder(level, meta.entropy_model), scheme
