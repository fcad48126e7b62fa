"""rdnet's latent coder with context modelling (rdnet files after 0.2.0: codec info `latent_coder: "context-v1"`).

PriorLatentCoder gives every latent row one table for the whole tile. Here each symbol's table also depends on what
the decoder already has, which a fixed per-row prior cannot see:

- the block's coarser coefficients: a symbol of Haar level l >= 2 (12 or 48 per component and 8 x 8 block) gets the
  class of the summed magnitude of its component's level l - 1 coefficients in the same block, and a level-1 symbol
  the class of its component's LL gradient across the neighbouring blocks, each measured in units of the rows'
  scales. The table of a symbol is the dead-zone Laplace of scale 2 ** ((row code + delta[level, class]) / 4), the
  row code being the row's prior or override scale in quarter-octaves; the deltas are this module's defaults
  (fitted on the nine training tiles) or, when cheaper, fitted to the tile and sent (24 bytes);
- LL rows may be coded as the difference from the mean of the left and upper blocks' LL (integer DPCM: the same
  reconstruction), with their own scale per row, when the tile is cheaper so (smooth or large scenes);
- blocks without a valid pixel are not coded at all (their pixels are nodata; rdnet's blocks do not overlap).

Symbols are decoded level by level (LL, then levels 1, 2, 3); in each level the symbols sharing a table form one
group of the learned-prior stream (prior.encode_groups), so a tile costs a few hundred table look-ups, not one per
symbol. Determinism: classes come from integer sums and one IEEE multiply by a weight made with math.fsum from
exact powers (prior.byte_scale), compared with fixed thresholds; tables come from prior.LaplaceTable.
"""
import functools
import math

import numpy as np

from .codecheader import LATENT_CONTEXT, LATENT_EXACT, LATENT_PRIOR, LATENT_PRIOR_EXACT
from .errors import FormatError
from .latent import RD_LAMBDA, PriorLatentCoder, laplace_bits, make_latent_coder
from .prior import BYTE_TABLE, CONTEXT_VERSION, FLAG_TABLE, LaplaceTable, byte_scale, decode_groups, encode_groups

LEVELS = 3  # Haar levels of rdnet's 8 x 8 block
LEVEL_SIZES = (1, 3, 12, 48)  # coefficients per component and block: LL, then levels 1 (coarsest) to 3
EDGES = np.array([0.0, 0.35, 0.7, 1.2, 2.0, 3.5])  # class 1: no parent activity; 2..7 by activity
CLASSES = 1 + len(EDGES) + 1  # class 0: no coded parent row (no information)
# quarter-octave scale offsets per (level 1..3, class), fitted on the nine training tiles, all quality levels pooled
# (python -m bench.latent_context --fit)
DEFAULT_DELTAS = np.array([[2, -1, -1, -1, 0, 1, 2, 6], [4, -1, -1, 0, 0, 1, 2, 5], [-24, -2, -2, -1, 0, 1, 3, 6]],
                          np.int64)
_CODES = np.arange(-128, 128)
_BOUNDS = np.sqrt(np.array([byte_scale(c) for c in _CODES[:-1]]) * np.array([byte_scale(c) for c in _CODES[1:]]))
_CANDIDATES = np.arange(-24, 25)
_CANDIDATE_BETAS = np.exp2((_CODES[None, :] + _CANDIDATES[:, None]) / 4.0)  # (candidate, code + 128) scales


def scale_code(beta):
    """The quarter-octave code (-128..127) nearest to each scale, by exact comparisons (no log)."""
    return _CODES[np.searchsorted(_BOUNDS, np.asarray(beta, np.float64))]


@functools.lru_cache(maxsize=1024)
def _table(code, deadzone):
    return LaplaceTable(byte_scale(code), deadzone)


@functools.lru_cache(maxsize=16)
def _bits_saved(deadzone):
    """(2, 256) estimated bits saved by moving a symbol of magnitude 1 (row 0) or above (row 1) one step towards 0,
    under the dead-zone Laplace of each scale code (-128..127): _rdoq's rates, one table look-up a symbol."""
    beta = np.exp2(_CODES / 4.0)
    e0 = np.exp(-(0.5 + deadzone) / beta)
    ratio = np.exp(-1.0 / beta)
    first = -np.log2(np.maximum(0.5 * e0 * (1.0 - ratio), 1e-300)) + np.log2(np.maximum(1.0 - e0, 1e-300))
    return np.stack([first, -np.log2(np.maximum(ratio, 1e-300))])


def _ll_prediction(ll, occupied, residual=None):
    """Integer DPCM of LL rows (K, cells) over the block grid `occupied` (gh, gw), raster order: prediction =
    floor((left + up) / 2), one of them at the edges, 0 at the corner; unoccupied blocks take their prediction.
    Encoding (residual None): returns the residuals of `ll`; decoding: rebuilds LL from `residual`. A block's
    prediction needs only its left and upper neighbours, both on the anti-diagonal before its own: one step per
    anti-diagonal gives the same integers as block by block in raster order; encoding a grid of only occupied
    blocks needs no steps (every prediction is of LL's own values)."""
    height, width = occupied.shape
    if residual is None and occupied.all():
        return ll - _own_prediction(ll.reshape(-1, height, width).astype(np.int64)).reshape(ll.shape)
    k = ll.shape[0] if residual is None else residual.shape[0]
    out = np.zeros((k, height * width + 1), np.int64)  # its last column stays 0: the corner's neighbours
    source = (ll if residual is None else residual).reshape(k, -1).astype(np.int64)
    inside = occupied.reshape(-1)
    for cell, first, second in _anti_diagonals(height, width):
        pred = (out[:, first] + out[:, second]) // 2  # at an edge both are its one neighbour: (n + n) // 2 = n
        own, kept = source[:, cell], inside[cell]
        if residual is None:
            out[:, cell] = np.where(kept, own, pred)
            source[:, cell] = np.where(kept, own - pred, own)
        else:
            out[:, cell] = np.where(kept, pred + own, pred)
    return source if residual is None else out[:, :-1]


def _own_prediction(grid):
    """_ll_prediction's predictions of (K, gh, gw) int64 LL values from those values themselves."""
    pred = np.zeros_like(grid)
    pred[:, 0, 1:] = grid[:, 0, :-1]  # the first row: its left neighbour
    pred[:, 1:, 0] = grid[:, :-1, 0]  # the first column: its upper one
    pred[:, 1:, 1:] = (grid[:, 1:, :-1] + grid[:, :-1, 1:]) // 2
    return pred


def _coded_ll(function, rows, coded):
    """function(rows[coded]) in the coded rows of a (K, cells) int64 array, 0 in the others (the LL DPCM of the
    rows a tile codes; the others are 0 either way)."""
    out = np.zeros(rows.shape, np.int64)
    if coded.any():
        out[coded] = function(rows[coded])
    return out


@functools.lru_cache(maxsize=64)
def _anti_diagonals(height, width):
    """(cells, left, up) of each anti-diagonal i + j = d of a height x width grid, d = 0, 1, ...: flat cells and
    their two neighbours, the one neighbour twice at an edge, and cell height x width (a 0) twice at the corner."""
    i, j = np.divmod(np.arange(height * width), width)
    order = np.argsort(i + j, kind='stable')
    bounds = np.cumsum(np.bincount(i + j))
    cells = np.arange(height * width)
    corner = height * width
    left = np.where(j > 0, cells - 1, np.where(i > 0, cells - width, corner))
    up = np.where(i > 0, cells - width, left)
    return tuple((cells[order][a:b], left[order][a:b], up[order][a:b])
                 for a, b in zip(np.r_[0, bounds[:-1]], bounds))


ANALYSIS_SHARE = 0.6  # of encode_rows, analyse: the quantisation, the LL prediction and the choices (measured)


class ContextLatentCoder(PriorLatentCoder):
    """The learned-prior coder of a block model (rdnet) with context classes, LL prediction and nodata blocks."""

    rdoq = True  # the encoder's choice (bench.latent_context measures it off and on)

    def __init__(self, level, model):
        super().__init__(level, model)
        channels = len(self.betas)
        if channels % 64:
            raise FormatError('the context latent coder needs 64 latent channels per component (8 x 8 blocks)')
        self.components = channels // 64
        self.prior_codes = scale_code(self.betas)
        starts = np.cumsum((0,) + LEVEL_SIZES)
        self.level_rows = [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]

    # --- shared by both sides ----------------------------------------------------------------------------------
    def _row_codes(self, override, own):
        codes = self.prior_codes.copy()
        codes[override] = own
        return codes.reshape(self.components, 64)

    def _weights(self, coded, codes, level):
        """(K,) 1 / (sum of the scales of the coded rows of `level`) per component; 0 where none is coded."""
        rows = self.level_rows[level]
        out = np.zeros(self.components)
        for k in np.flatnonzero(coded[:, rows].any(axis=1)):
            total = math.fsum(byte_scale(c) for c in codes[k, rows][coded[k, rows]])
            out[k] = 1.0 / total
        return out

    def _classes(self, level, sym, coded, codes, grid):
        """(K, cells) context class of the level's symbols from the decoded coarser ones (0: no coded parent)."""
        classes = np.zeros((self.components, sym.shape[2]), np.int64)
        if level == 1:
            ks = np.flatnonzero(coded[:, 0] & coded[:, self.level_rows[1]].any(axis=1))
            ll = sym[ks, 0].reshape(ks.size, *grid).astype(np.int64)
            pad = np.pad(ll, ((0, 0), (1, 1), (1, 1)), mode='edge')
            activity = (np.abs(pad[:, 1:-1, 2:] - pad[:, 1:-1, :-2]) + np.abs(pad[:, 2:, 1:-1] - pad[:, :-2, 1:-1]))
            activity = activity.reshape(ks.size, -1)
            weight = 0.5 * self._weights(coded, codes, 1)[ks]
        else:
            rows = self.level_rows[level - 1]
            ks = np.flatnonzero(coded[:, rows].any(axis=1) & coded[:, self.level_rows[level]].any(axis=1))
            activity = np.abs(sym[ks, rows]).sum(axis=1)
            weight = self._weights(coded, codes, level - 1)[ks]
        classes[ks] = 1 + np.searchsorted(EDGES, activity * weight[:, None], side='left')
        return classes

    def _wave(self, level, coded, codes, occupied, deltas, ll_codes, classes):
        """Flat indices into the symbols (components, 64, cells) of the level's coded symbols and their table
        codes, grouped by code (a stable sort: raster order within a code)."""
        rows = self.level_rows[level]
        ks, js = np.nonzero(coded[:, rows])
        cells = np.flatnonzero(occupied)
        starts = (ks * 64 + js + rows.start) * occupied.size  # of each coded row
        if level == 0:  # one code per row: sort the rows, not their symbols (the same order)
            row_codes = np.clip((codes[:, 0] if ll_codes is None else ll_codes)[ks], -128, 127).astype(np.int16)
            order = np.argsort(row_codes, kind='stable')
            flat = (starts[order][:, None] + cells).ravel()
            return flat, np.repeat(row_codes[order], cells.size)
        # in int16 (codes and deltas are bytes: their sums fit), looked up per (component, cell) before the symbols
        offsets = np.compress(occupied, deltas[level - 1].astype(np.int16)[classes], axis=1)
        table_codes = (codes[ks, js + rows.start].astype(np.int16)[:, None] + offsets[ks]).ravel()
        table_codes = np.clip(table_codes, -128, 127, out=table_codes)
        order = np.argsort(table_codes, kind='stable')  # a radix sort for 16-bit integers
        return (starts[:, None] + cells).ravel()[order], table_codes[order]

    @staticmethod
    def _groups(table_codes):
        """(code, start, count) of each run of equal codes in the sorted `table_codes`."""
        counts = np.bincount(table_codes.astype(np.int64) + 128, minlength=256)
        starts = np.cumsum(counts) - counts
        used = np.flatnonzero(counts)
        return list(zip((used - 128).tolist(), starts[used].tolist(), counts[used].tolist()))

    # --- encoder -----------------------------------------------------------------------------------------------
    def encode(self, latent, geometry, done=None):
        if not latent.shape[1]:
            return np.zeros(latent.shape, np.int32), b''
        symbols, rows, tables = self.encode_rows(latent, geometry, done)
        return symbols, encode_groups(rows, tables, CONTEXT_VERSION)

    def encode_rows(self, latent, geometry, done=None, peaks=None):
        """encode's rows before the stream: (symbols, rows, their tables) of a latent with valid cells (a coder
        that sends rows of its own ahead of these, latent_basis.py, puts both in one stream). done(fraction): a
        progress hook, called once the encoder's choices are made (ANALYSIS_SHARE of the call); peaks: as for
        live_rows."""
        symbols, override, own, ll_residual, ll_codes, context = self.analyse(latent, geometry, peaks)
        if done is not None:
            done(ANALYSIS_SHARE)
        sym, coded, codes, occupied, classes = context
        deltas, custom = self._delta_choice(*context)
        head = [override.astype(np.int32), own[override], np.array([ll_residual is not None, custom], np.int32)]
        tables = [FLAG_TABLE, BYTE_TABLE, FLAG_TABLE]
        if custom:
            head.append(deltas.ravel())
            tables.append(BYTE_TABLE)
        if ll_residual is not None:
            head.append(ll_codes[coded[:, 0]])
            tables.append(BYTE_TABLE)
        rows, row_tables = list(head), list(tables)
        for level in range(LEVELS + 1):
            index, table_codes = self._wave(level, coded, codes, occupied, deltas,
                                            ll_codes if ll_residual is not None else None, classes[level])
            if level == 0 and ll_residual is not None:  # (component, cell) of each LL symbol
                cells = occupied.size
                values = ll_residual.reshape(-1)[index // (64 * cells) * cells + index % cells]
            else:
                values = sym.reshape(-1)[index]
            for code, start, count in self._groups(table_codes):
                rows.append(values[start:start + count].astype(np.int32))
                row_tables.append(_table(int(code), float(self.deadzone)))
        return symbols, rows, row_tables

    def analyse(self, latent, geometry, peaks=None):
        """The encoder's choices before any byte: (symbols, override flags, own codes, LL residuals or None, their
        codes, context = (symbols by component, coded rows, row codes, occupied cells, classes per level))."""
        occupied = _occupied(geometry)
        samples = latent.shape[1]
        live = np.flatnonzero(self.live_rows(latent, peaks))  # the other rows quantise to 0: only these are scaled
        scaled = latent[live]
        scaled *= np.float32(1.0 / self.step)
        quantised = self._quantise(scaled)
        if occupied.all():
            override, own = self._overrides(scaled, quantised, live)
        else:  # (np.compress and a multiply are several times faster than boolean indexing along axis 1)
            quantised *= occupied
            override, own = self._overrides(np.compress(occupied, scaled, axis=1),
                                            np.compress(occupied, quantised, axis=1), live)
        coded_rows = self.is_coded | override
        symbols = np.zeros(latent.shape, np.int32)
        symbols[live[coded_rows[live]]] = quantised[coded_rows[live]]
        scaled = _RowLookup(scaled, live, len(coded_rows))
        codes = self._row_codes(override, own[override])
        coded = coded_rows.reshape(self.components, 64)
        sym = symbols.reshape(self.components, 64, samples)
        grid = geometry.grid.shape
        ll_residual, ll_codes = self._ll_choice(sym[:, 0], coded[:, 0], codes[:, 0], occupied.reshape(grid))
        if ll_residual is not None and not occupied.all():  # unoccupied blocks take their prediction, as decoded
            sym[:, 0] = _coded_ll(lambda r: _ll_prediction(None, occupied.reshape(grid), r), ll_residual,
                                  coded[:, 0])
        classes = [None]
        for level in (1, 2, 3):  # coarse to fine: each level's classes see the coarser level's final symbols
            classes.append(self._classes(level, sym, coded, codes, grid))
            if self.rdoq:
                self._rdoq(level, sym, scaled, coded, codes, classes[level], occupied)
        return symbols, override, own, ll_residual, ll_codes, (sym, coded, codes, occupied, classes)

    def _rdoq(self, level, sym, scaled, coded, codes, classes, occupied):
        """Rate-distortion optimised quantisation of a detail level, in place: a symbol moves one step towards 0
        when its estimated bits under its context table (default deltas) fall by more than lambda times the squared
        error added (lambda = 6 / ln 2 per squared step, the quantiser's own slope). The decoder is unaffected."""
        rows = self.level_rows[level]
        ks, js = np.nonzero(coded[:, rows])
        cells = np.flatnonzero(occupied)
        if not ks.size or not cells.size:
            return
        flat = sym.reshape(-1, sym.shape[2])  # a view: the moves below change `sym`
        channels = ks * 64 + js + rows.start
        q = np.compress(occupied, flat[channels], axis=1)
        pair, cell = np.nonzero(q)  # only nonzero symbols can move
        if not pair.size:
            return
        value = q[pair, cell]
        k, j, n = ks[pair], js[pair] + rows.start, cells[cell]
        size = np.abs(value)
        code = np.clip(codes[k, j] + DEFAULT_DELTAS[level - 1][classes[k, n]], -128, 127)
        saved = _bits_saved(self.deadzone)[np.minimum(size, 2) - 1, code + 128]  # bits(a) - bits(a - 1)
        added = 2.0 * (np.abs(scaled.at(channels[pair], n)) - size) + 1.0  # (|x| - a + 1)^2 - (|x| - a)^2
        move = RD_LAMBDA * added < saved
        flat[channels[pair[move]], n[move]] = value[move] - np.sign(value[move])

    def _ll_choice(self, ll, coded, codes, occupied):
        """(residuals, their row codes) when predicting LL is estimated cheaper than coding it, else (None, None)."""
        if occupied.size < 4 or not coded.any():
            return None, None
        residual = _coded_ll(lambda r: _ll_prediction(r, occupied), ll, coded)
        cells = occupied.reshape(-1)
        plain, predicted = ll[:, cells], residual[:, cells]
        own = scale_code(np.maximum(np.abs(predicted).mean(axis=1), 2.0 ** -30))
        cost_plain = _bits(plain, [byte_scale(c) for c in codes], self.deadzone)[coded].sum()
        cost_predicted = (_bits(predicted, [byte_scale(c) for c in own], self.deadzone) + 8.0)[coded].sum()
        if cost_predicted >= cost_plain - 16.0:
            return None, None
        return residual, own

    def delta_costs(self, sym, coded, codes, occupied, classes):
        """(LEVELS, candidate deltas, CLASSES) estimated bits of the detail symbols under each delta per class."""
        out = np.zeros((LEVELS, _CANDIDATES.size, CLASSES))
        bins = CLASSES * 256
        flat = sym.reshape(-1, sym.shape[2])
        for level in (1, 2, 3):
            rows = self.level_rows[level]
            ks, js = np.nonzero(coded[:, rows])
            # keys class * 256 + code + 128 < 2048 in int16, cells by np.compress: 10x faster than int64 fancy indexing
            size = np.abs(np.compress(occupied, flat[ks * 64 + js + rows.start], axis=1)).ravel()
            row_codes = (codes[ks, js + rows.start] + 128).astype(np.int16)
            key = (np.compress(occupied, classes[level], axis=1).astype(np.int16)[ks] * 256
                   + row_codes[:, None]).ravel()
            counts = np.bincount(key, minlength=bins)
            used = np.flatnonzero(counts)  # the bits of the other (class, code) bins are 0
            nonzero = size > 0
            nonzeros = np.bincount(key[nonzero], minlength=bins)[used]
            excess = np.bincount(key[nonzero], weights=size[nonzero] - 1, minlength=bins)[used]
            bits = np.zeros((_CANDIDATES.size, bins))
            bits[:, used] = laplace_bits(counts[used] - nonzeros, nonzeros, excess, _CANDIDATE_BETAS[:, used % 256],
                                         self.deadzone)
            out[level - 1] = np.nan_to_num(bits).reshape(_CANDIDATES.size, CLASSES, 256).sum(axis=2)
        return out

    def _delta_choice(self, sym, coded, codes, occupied, classes):
        """(deltas (3, CLASSES), sent): the defaults, or the tile's own when estimated cheaper by over 26 bytes."""
        costs = self.delta_costs(sym, coded, codes, occupied, classes)
        best = np.argmin(costs, axis=1)  # (LEVELS, CLASSES)
        picked = np.take_along_axis(costs, best[:, None, :], axis=1).sum()
        default = np.take_along_axis(costs, np.searchsorted(_CANDIDATES, DEFAULT_DELTAS)[:, None, :], axis=1).sum()
        if default - picked > 8.0 * (DEFAULT_DELTAS.size + 2):
            return _CANDIDATES[best], True
        return DEFAULT_DELTAS, False

    # --- decoder -----------------------------------------------------------------------------------------------
    def decode(self, data, geometry):
        symbols, occupied = self._blank(data, geometry)
        if symbols.shape[1]:
            decode_groups(data, self._plan(symbols, geometry.grid.shape, occupied), version=CONTEXT_VERSION)
        return symbols

    @staticmethod
    def _blank(data, geometry):
        """A tile's symbols, all 0 for a decoder to fill, and its occupied cells; a tile without valid pixels must
        carry no latent data."""
        occupied = _occupied(geometry)
        symbols = np.zeros((geometry.channels, geometry.samples), np.int32)
        if not symbols.shape[1] and data:
            raise FormatError('a tile without valid pixels carries latent data')
        return symbols, occupied

    def _plan(self, symbols, grid, occupied, found=None):
        """The decoder's plan (prior.decode_groups) filling `symbols`; `found` (a list) receives the coded rows
        (components, 64), the only ones that may hold a nonzero symbol."""
        channels, samples = symbols.shape

        def plan(rows):
            yield FLAG_TABLE, channels
            override = _flags(rows[0], 'row flags')
            yield BYTE_TABLE, int(override.sum())
            yield FLAG_TABLE, 2
            predict_ll, custom = _flags(rows[2], 'tile options')
            codes = self._row_codes(override, _byte_codes(rows[1]))
            coded = (self.is_coded | override).reshape(self.components, 64)
            if found is not None:
                found.append(coded)
            deltas = DEFAULT_DELTAS
            if custom:
                yield BYTE_TABLE, deltas.size
                deltas = _byte_codes(rows[-1]).reshape(deltas.shape)
            ll_codes = None
            if predict_ll:
                yield BYTE_TABLE, int(coded[:, 0].sum())
                ll_codes = np.zeros(self.components, np.int64)
                ll_codes[coded[:, 0]] = _byte_codes(rows[-1])
            sym = symbols.reshape(self.components, 64, samples)
            for level in range(LEVELS + 1):
                classes = self._classes(level, sym, coded, codes, grid) if level else None
                index, table_codes = self._wave(level, coded, codes, occupied, deltas, ll_codes, classes)
                first = len(rows)
                for code, _start, count in self._groups(table_codes):
                    yield _table(int(code), float(self.deadzone)), count
                if table_codes.size:
                    sym.reshape(-1)[index] = np.concatenate(rows[first:])
                if level == 0 and ll_codes is not None:
                    ll = _coded_ll(lambda r: _ll_prediction(None, occupied.reshape(grid), r), sym[:, 0],
                                   coded[:, 0])
                    if np.abs(ll).max(initial=0) > np.iinfo(np.int32).max:
                        raise FormatError('a context-coded latent stream decodes to values outside the int32 range')
                    sym[:, 0] = ll
        return plan


class _RowLookup:
    """Values of some rows of a (channels, samples) array: `values` holds rows `rows` in that order."""

    def __init__(self, values, rows, channels):
        self.values = values
        self.position = np.full(channels, -1, np.int64)
        self.position[rows] = np.arange(rows.size)

    def at(self, channel, sample):
        return self.values[self.position[channel], sample]


def candidate_deltas():
    return _CANDIDATES.copy()


def _occupied(geometry):
    """Flat (cells,) latent cells holding a valid pixel; all of them when the geometry does not say."""
    grid = np.asarray(geometry.grid, bool)
    return (grid if geometry.occupied is None else np.asarray(geometry.occupied, bool) & grid).reshape(-1)


def _flags(row, what):
    if (row & ~1).any():
        raise FormatError(f'a context-coded latent stream has invalid {what}')
    return row.astype(bool)


def _byte_codes(row):
    if row.size and (row.min() < -128 or row.max() > 127):
        raise FormatError('a context-coded latent stream has a scale code out of range')
    return row.astype(np.int64)


def _bits(values, betas, deadzone):
    """Estimated bits per row of integer rows (K, n) under dead-zone Laplace scales `betas` (K,)."""
    size = np.abs(values)
    nonzeros = np.count_nonzero(size, axis=1).astype(np.float64)
    excess = size.sum(axis=1, dtype=np.float64) - nonzeros
    return laplace_bits(size.shape[1] - nonzeros, nonzeros, excess, np.asarray(betas, np.float64), deadzone)


def suits(meta):
    """Whether a model's latent is rdnet's: a learned prior over 8 x 8 Haar-ordered blocks that do not overlap (so a
    block without a valid pixel need not be coded). The architecture is the exporter's class name (RDNet; rdnet2's
    overlapping wavelet is RDNet2 and keeps the model's coder)."""
    return (meta.entropy_model is not None and meta.kind == 'spatial' and meta.spatial_factor == 8
            and meta.informative.get('architecture') == 'RDNet' and not meta.tile_overlap
            and meta.latent_channels % 64 == 0)


def new_file_scheme(meta, exact=False):
    """The latent coder of a new file (not a lossy rdnet one, latent_basis.choose_coder's): the context coder where
    the model suits it, else the model's own; `exact`: the one reconstructed by the model's exact synthesis."""
    if suits(meta):
        return LATENT_EXACT if exact else LATENT_CONTEXT
    return LATENT_PRIOR_EXACT if exact else LATENT_PRIOR


def choose_latent_coder(meta, level, steps, scheme=None, exact=False):
    """(LatentCoder, its codec-info name) of a file: `scheme` as its header states it, or None for a new file
    (new_file_scheme)."""
    if scheme is None:
        scheme = new_file_scheme(meta, exact)
    if scheme in (LATENT_PRIOR, LATENT_PRIOR_EXACT):
        return make_latent_coder(meta, level, steps), scheme
    if scheme in (LATENT_CONTEXT, LATENT_EXACT) and suits(meta):  # (the same stream; LATENT_EXACT: its synthesis)
        return ContextLatentCoder(level, meta.entropy_model), scheme
    raise FormatError(f'latents coded as "{scheme}" are not supported here for model "{meta.id}"; update '
                      'the plugin')
