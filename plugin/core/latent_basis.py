"""A per-tile spectral basis for rdnet's latent (codec info `latent_coder: "context-v2"`, new lossy rdnet files).

rdnet's latent of component k (rows 64 k ... 64 k + 63) is its 8 x 8 block transform of the learned component
y_k = (A (u - m))_k. The block transform is the same for every component, so rotating the components, z = T^T y,
is rotating the latent: each of the 64 coefficients at each cell is a vector over the n components, multiplied by
T^T. The ONNX graphs stay as they are; the decoder multiplies the dequantised latent by T before its graph.

T is fitted per tile from the latent (tiles and Zarr chunks stay independently decodable): the K leading
eigenvectors of the tile's second moments of the components (the LL coefficient centred; rdnet's block transform is
close to orthonormal, so this is the covariance of y per pixel), K = the axes whose variance exceeds the quantiser
step squared, each quantised to the power of two nearest PRECISION x step / its standard deviation (an axis error e
leaks variance e^2 into the others: it need not be finer than the step can see). The integers are sent as head rows
of the learned-prior stream; T is the orthonormal basis that QR makes of [sent axes | the learned axes K..n-1],
column signs those of R's diagonal, so on data like the training tiles T is close to the identity and component k of
z keeps component k's learned prior (overridden per row where the tile is unlike it).

The encoder rotates a tile only when a per-row Laplace estimate of the rotated latent plus the head is below the
unrotated one (else the head is one flag); error-bounded files keep the context coder (codec.TileCoder).
Measured: docs/benchmarks.md, "Per-file spectral basis"; layout: docs/format.md, "Context-coded latent stream with
a tile basis".

Determinism: the symbols never depend on T (no table, class or count is computed from its floats), so every reader
decodes the same integers. T depends only on the sent integers and exponents (the encoder rotates by the T it
rebuilds from them, not by the eigenvectors it fitted), through one float64 Householder QR: its last bits may differ
between LAPACK builds as onnxruntime's do, which moves a lossy reconstruction by far less than a DN. The encoder
sends only well-conditioned bases (every QR pivot at least MIN_PIVOT of its column), so such differences stay small
and no sign is decided by a pivot near 0. Exact reconstructions (MAX_ERROR, lossless) are never rotated.
"""
import functools
from dataclasses import dataclass

import numpy as np

from . import context_coder
from .codecheader import LATENT_BASIS
from .context_coder import ContextLatentCoder, _occupied, choose_latent_coder, scale_code
from .errors import FormatError
from .latent import laplace_bits
from .prior import BYTE_TABLE, FLAG_TABLE, FixedTable, LaplaceTable, byte_scale, decode_groups, encode_groups

STREAM_VERSION = 3  # learned-prior stream version of these tiles: a reader of context-v1 streams refuses them
BLOCK_COEFFICIENTS = 64  # rdnet's 8 x 8 block: latent rows per component
THRESHOLD = 1.0  # an axis is sent when its variance per pixel exceeds THRESHOLD x step^2
PRECISION = 0.02  # an axis' quantum: the power of two nearest PRECISION x step / its standard deviation
EXPONENTS = (-14, -2)  # the quanta 2^-14 .. 2^-2 a stream may state
MIN_PIVOT = 0.05  # the encoder sends no basis whose QR has a pivot below this fraction of its column
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
    rotation: np.ndarray  # T (n, n), float64, orthonormal

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
    rotation: np.ndarray = None


UNROTATED_HEAD = ([np.zeros(1, np.int32)], [FLAG_TABLE])


def rotation_of(integers, exponents):
    """(T, smallest pivot ratio): the orthonormal basis QR makes of [integers x 2^exponents | learned axes K..n-1],
    each column's sign that of its pivot, and the smallest |pivot| / column norm (the encoder's check)."""
    n, k = integers.shape
    columns = np.concatenate([integers * np.exp2(np.asarray(exponents, np.float64)), np.eye(n)[:, k:]], axis=1)
    q, r = np.linalg.qr(columns)
    pivots = np.diag(r)
    ratio = np.abs(pivots) / np.maximum(np.linalg.norm(columns, axis=0), 1e-300)
    return q * np.where(pivots < 0, -1.0, 1.0), float(ratio.min())


def live_columns(latent, components, occupied, dead_zone):
    """(flat indices, values (n, m) float32) of the coefficient vectors of a latent (components x 64, cells) at
    occupied cells that are at least `dead_zone` long. Every other vector quantises to 0 in every basis (|(T^T y)_k|
    <= |y| for an orthonormal T), so only these are rotated and estimated; they are sorted by coefficient (LL first)."""
    flat = latent.reshape(components, -1)
    long_enough = np.einsum('kc,kc->c', flat, flat) >= np.float32(dead_zone) ** 2
    index = np.flatnonzero(long_enough.reshape(BLOCK_COEFFICIENTS, -1) & occupied)
    return index, np.take(flat, index, axis=1)


def scatter_columns(shape, components, index, values):
    """The latent of `shape` (components x 64, cells) holding `values` (n, m) at flat columns `index`, else 0."""
    out = np.zeros((components, int(np.prod(shape)) // components), np.float32)
    out[:, index] = values
    return out.reshape(shape)


def column_moments(values, index, cells, occupied_cells):
    """(n, n) second moments per pixel of the components from a tile's live columns (the LL coefficient centred; the
    other columns are too short to matter), float32 products: the encoder's estimate."""
    ll = int(np.searchsorted(index, cells))  # the LL columns come first
    centred = values.copy()
    if ll:
        centred[:, :ll] -= centred[:, :ll].mean(axis=1, keepdims=True)
    return (centred @ centred.T).astype(np.float64) / max(occupied_cells * BLOCK_COEFFICIENTS, 1)


def fit_basis(moments, step, threshold=THRESHOLD, precision=PRECISION):
    """The TileBasis of a tile's component moments at quantiser step `step`, or None (no axis above the threshold,
    or a basis too ill-conditioned to send)."""
    values, vectors = np.linalg.eigh(moments)
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    k = int(np.count_nonzero(values > threshold * step * step))
    if not k:
        return None
    vectors = vectors[:, :k]
    vectors = vectors * np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(k)])
    exponents = np.clip(np.rint(np.log2(precision * step / np.sqrt(values[:k]))), *EXPONENTS).astype(np.int64)
    integers = np.rint(vectors / np.exp2(exponents)).astype(np.int64)
    rotation, pivot = rotation_of(integers, exponents)
    if pivot < MIN_PIVOT:
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
    return TileBasis(exponents, integers, rotation_of(integers, exponents)[0])


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


class BasisContextCoder(ContextLatentCoder):
    """The context coder of rdnet's latent behind a per-tile rotation of its components (module docstring)."""

    always = False  # the encoder's choice: every fitted basis, not only those estimated to pay (bench.file_basis)

    def encode(self, latent, geometry):
        if not latent.shape[1]:
            return BasisSymbols(np.zeros(latent.shape, np.int32)), b''
        basis, latent = self.choose(latent, geometry)
        symbols, rows, tables = self.encode_rows(latent, geometry)
        head_rows, head_tables = UNROTATED_HEAD if basis is None else basis.head()
        stream = encode_groups(head_rows + rows, head_tables + tables, STREAM_VERSION)
        return BasisSymbols(symbols, None if basis is None else basis.rotation), stream

    def choose(self, latent, geometry):
        """(TileBasis or None, the latent to code): rotated only when the estimated bits of the rotated latent plus
        the head are below those of the latent as it is."""
        occupied = _occupied(geometry)
        cells, count = occupied.size, int(occupied.sum())
        index, values = live_columns(latent, self.components, occupied, self.dead_zone)
        if not index.size:
            return None, latent
        basis = fit_basis(column_moments(values, index, cells, count), self.step)
        if basis is None:
            return None, latent
        rotated = basis.rotation.T.astype(np.float32) @ values
        head_bits = 8.0 * len(encode_groups(*basis.head()))
        if self.always or self.estimated_bits(rotated, index, cells, count) + head_bits < self.estimated_bits(
                values, index, cells, count):
            return basis, scatter_columns(latent.shape, self.components, index, rotated)
        return None, latent

    @property
    def dead_zone(self):
        """The latent magnitude below which a value quantises to 0 (with live_rows' margin for float32 rounding)."""
        return (0.5 + self.deadzone) * (1.0 - 2.0 ** -10) * self.step

    def estimated_bits(self, values, index, cells, count):
        """Bits of a latent's live columns (live_columns) under one fitted Laplace scale per row at the coder's step
        and dead zone, over the `count` occupied cells (the encoder's cheap estimate; the other columns are 0)."""
        symbols = self._quantise(values * np.float32(1.0 / self.step))
        coefficient = index // cells
        starts = np.flatnonzero(np.r_[True, coefficient[1:] != coefficient[:-1]])
        nonzeros = np.add.reduceat(symbols != 0, starts, axis=1, dtype=np.int64).astype(np.float64)
        total = np.add.reduceat(np.abs(symbols), starts, axis=1, dtype=np.int64).astype(np.float64)
        beta = np.maximum(total / count, 2.0 ** -30)
        return float(laplace_bits(count - nonzeros, nonzeros, total - nonzeros, beta, self.deadzone).sum())

    def decode(self, data, geometry):
        occupied = _occupied(geometry)
        symbols = np.zeros((geometry.channels, geometry.samples), np.int32)
        if not symbols.shape[1]:
            if data:
                raise FormatError('a tile without valid pixels carries latent data')
            return BasisSymbols(symbols)
        found = []
        decode_groups(data, self._basis_plan(symbols, geometry.grid.shape, occupied, found), version=STREAM_VERSION)
        return BasisSymbols(symbols, found[0].rotation if found[0] is not None else None)

    def _basis_plan(self, symbols, grid, occupied, found):
        """The head's plan, then the context coder's on the rows after it (found receives the TileBasis)."""
        inner_plan = self._plan(symbols, grid, occupied)

        def plan(rows):
            yield from head_plan(rows, self.components)
            found.append(basis_from_head(rows))
            inner_rows = []
            for item in inner_plan(inner_rows):
                yield item
                inner_rows.append(rows[-1])
        return plan

    def dequantise(self, symbols):
        latent = super().dequantise(symbols.symbols)
        if symbols.rotation is None:
            return latent
        flat = latent.reshape(self.components, -1)
        index = np.flatnonzero((symbols.symbols.reshape(self.components, -1) != 0).any(axis=0))
        return scatter_columns(latent.shape, self.components, index,
                               symbols.rotation.astype(np.float32) @ np.take(flat, index, axis=1))


def choose_coder(meta, level, steps, scheme=None, lossy=False):
    """(LatentCoder, its codec-info name) of a file: `scheme` as its header states it, or None for a new file (a
    lossy rdnet file: the tile basis coder; others as context_coder.choose_latent_coder). The basis coder is refused
    for error-bounded files (their exact reconstruction must not depend on a QR's last bits)."""
    if scheme is None and lossy and context_coder.suits(meta):  # (a module attribute: tests replace it)
        scheme = LATENT_BASIS
    if scheme != LATENT_BASIS:
        return choose_latent_coder(meta, level, steps, scheme)
    if not context_coder.suits(meta):
        raise FormatError(f'latents coded as "{scheme}" are not supported here for model "{meta.id}"')
    if not lossy:
        raise FormatError(f'latents coded as "{scheme}" are not supported in an error-bounded or lossless file')
    return BasisContextCoder(level, meta.entropy_model), scheme
