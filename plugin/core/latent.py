"""How a tile's latent becomes bytes, and back.

AdaptiveLatentCoder (PCA and the seed models): uniform rounding, per-channel spatial prediction and per-tile
statistics (entropy.py). PriorLatentCoder (rdnet): dead-zone rounding and fixed tables from the model's learned
Laplace prior per latent channel (prior.py), so a tile carries no statistics at all.
"""
import functools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import FormatError
from .prediction import decode_predicted, encode_predicted
from .prior import BYTE_TABLE, FLAG_TABLE, LaplaceTable, byte_scale, decode_groups, encode_groups

RD_LAMBDA = 6.0 / math.log(2.0)  # bits per squared quantiser step: -dR/dD of a uniform quantiser


@dataclass(frozen=True)
class LatentGeometry:
    """The shape of one tile's latent, as its Transform lays it out: `channels` rows, one sample per True cell of
    `grid` (the latent grid, row-major; spatial prediction walks it in this order). `occupied` (spatial
    transforms): the cells whose block holds a valid pixel of the tile (the context coder skips the others);
    None: every cell of the grid."""

    channels: int
    grid: np.ndarray
    occupied: np.ndarray = None

    @property
    def samples(self):
        return int(self.grid.sum())


class LatentCoder(Protocol):
    """A tile's latent (channels, samples) -> integers -> bytes, and back; the geometry comes from the Transform.
    Symbols are what the coder's own dequantise takes: an int32 (channels, samples) array, or with them what the
    tile needs to dequantise (latent_basis.BasisSymbols: the tile's spectral basis)."""

    def encode(self, latent: np.ndarray, geometry: LatentGeometry, done=None) -> tuple: ...  # (symbols, bytes)
    # done(fraction): an optional progress hook, called from this thread with the share of the encode done

    def prepare(self, latent: np.ndarray, geometry: LatentGeometry, peaks: np.ndarray = None): ...
    # what encode takes instead of `latent`; peaks: row_peaks(latent) where the caller has them (TileCoder.latent)
    # the part of encode that may run ahead on another thread (the model worker's): the latent itself, or for
    # latent_basis the tile's basis chosen and applied (in the latent: the caller gives up its latent);
    # encode(prepare(latent)) gives the bytes of encode(latent)

    def decode(self, data: bytes, geometry: LatentGeometry) -> np.ndarray: ...  # symbols

    def dequantise(self, symbols: np.ndarray, cells: np.ndarray = None, out: np.ndarray = None) -> np.ndarray: ...
    # cells: some samples only; out: a float32 array of the result's shape it may be made in


def zeroed_latent(shape, out=None):
    """A float32 latent of `shape` holding zeros: `out` (a reused array of that shape) cleared, or a new one."""
    if out is None:
        return np.zeros(shape, np.float32)
    out.fill(0.0)
    return out

class AdaptiveLatentCoder:
    def __init__(self, steps):
        self.steps = steps  # (channels, 1)

    def prepare(self, latent, geometry, peaks=None):
        return latent

    def encode(self, latent, geometry, done=None):
        symbols = np.rint(latent / self.steps).astype(np.int32)
        return symbols, encode_predicted(symbols, geometry.grid)

    def decode(self, data, geometry):
        return decode_predicted(data, geometry.channels, geometry.grid)

    def dequantise(self, symbols, cells=None, out=None):
        return np.multiply((symbols if cells is None else symbols[:, cells]).astype(np.float32), self.steps,
                           out=out)


@functools.lru_cache(maxsize=512)
def _own_table(code, deadzone):
    return LaplaceTable(byte_scale(code), deadzone)


def laplace_bits(zeros, nonzeros, excess, beta, deadzone):
    """Estimated bits of rows under a dead-zone Laplace of scale beta (steps): zeros, nonzeros and the sum of
    (|q| - 1) over the nonzeros per row (encoder-side choice only; the decoder never evaluates it)."""
    beta = np.maximum(beta, 1e-3)
    e0 = np.exp(-(0.5 + deadzone) / beta)
    ratio = np.exp(-1.0 / beta)
    return -(zeros * np.log2(np.maximum(1.0 - e0, 1e-300)) + nonzeros * np.log2(np.maximum(
        0.5 * e0 * (1.0 - ratio), 1e-300)) + excess * np.log2(np.maximum(ratio, 1e-300)))


PEAK_BLOCK_BYTES = 1 << 18  # rows of a latent per step of row_peaks: its max pass leaves them in cache for the min


def row_peaks(latent):
    """The largest |value| of each row of a float latent (channels, samples): its max and its min, a cache-sized
    block of rows at a time (over the whole 53 MB latent of a 256 px tile the min pass read it from memory again)."""
    rows = max(1, PEAK_BLOCK_BYTES // max(1, latent.shape[1] * latent.itemsize))
    peaks = np.empty(latent.shape[0], latent.dtype)
    for start in range(0, latent.shape[0], rows):
        block = latent[start:start + rows]
        np.maximum(block.max(axis=1, initial=-np.inf), -block.min(axis=1, initial=np.inf),
                   out=peaks[start:start + rows])
    return peaks


class PriorLatentCoder:
    """Rows of the latent (channels, samples) coded with fixed tables from the model's per-channel Laplace scales.

    Robustness on data unlike the training tiles: the encoder may give any row its own scale (a flag per row, rare
    and nearly free, plus one byte), when that is cheaper than the prior for a coded row, or, for a row the prior
    would not code, when coding it lowers rate + lambda * distortion (lambda = 6 / (ln 2 step^2)).
    """

    def __init__(self, level, model):
        """level: modelmeta.QualityLevel (its own deadzone / skip_below override the model's); model:
        modelmeta.EntropyModel (a Laplace scale per latent channel, checked against the channels there)."""
        self.step = level.step
        self.deadzone = level.deadzone if level.deadzone is not None else model.deadzone
        self.offset = model.reconstruction_offset
        skip_below = level.skip_below if level.skip_below is not None else model.skip_below
        scales = np.asarray(model.scales, np.float64)
        self.betas = scales / self.step
        self.is_coded = self.betas >= skip_below  # by the prior; an override can code any row
        self.tables = [LaplaceTable(b, self.deadzone) if c else None for b, c in zip(self.betas, self.is_coded)]

    def prepare(self, latent, geometry, peaks=None):
        return latent

    def _quantise(self, scaled):
        """sign(y) floor(|y| + 1/2 - d), computed as trunc(y + sign(y) (1/2 - d)): the same integers (negation is
        exact in IEEE arithmetic), in three passes over the latent instead of five (the encoder's hottest line)."""
        shifted = np.copysign(np.float32(0.5 - self.deadzone), scaled)
        shifted += scaled
        return shifted.astype(np.int32)

    def live_rows(self, latent, peaks=None):
        """Rows of a latent (channels, samples) that may quantise to a nonzero symbol, and every row the prior
        codes: each other row is 0 everywhere (|y| below (1/2 + d)(1 - 2**-10) leaves y + sign(y)(1/2 - d) below 1,
        and a row's largest |y| is its largest |latent| times 1 / step, rounding being monotone), so the encoder
        need not quantise it (at the middle qualities 4 in 5 rows of rdnet's latent). peaks: row_peaks(latent)
        where known (a pass over the latent saved)."""
        peak = (row_peaks(latent) if peaks is None else peaks) * np.float32(1.0 / self.step)
        return self.is_coded | (peak >= (0.5 + self.deadzone) * (1.0 - 2.0 ** -10))

    def _overrides(self, scaled, symbols, rows=None):
        """(override mask, own scale codes) per row, chosen by estimated rate (+ lambda * distortion).
        scaled, symbols: the latent rows `rows` (None: every row); the rows left out are all 0 (live_rows)."""
        channels = len(self.betas)
        rows = np.arange(channels) if rows is None else rows
        size = np.abs(symbols)
        nonzeros, total = np.zeros(channels), np.zeros(channels)
        nonzeros[rows] = np.count_nonzero(size, axis=1)
        total[rows] = size.sum(axis=1, dtype=np.float64)
        zeros, excess = size.shape[1] - nonzeros, total - nonzeros
        own = np.clip(np.rint(4.0 * np.log2(np.maximum(total / size.shape[1], 2.0 ** -30))), -128, 127)
        own_bits = laplace_bits(zeros, nonzeros, excess, np.exp2(own / 4.0), self.deadzone) + 8.0 + 10.0
        prior_bits = laplace_bits(zeros, nonzeros, excess, self.betas, self.deadzone)
        gain = np.zeros(channels)
        skipped = np.flatnonzero(~self.is_coded[rows] & (nonzeros[rows] > 0))  # positions in `rows`
        if skipped.size:
            x = scaled[skipped].astype(np.float64)
            gain[rows[skipped]] = RD_LAMBDA * (x * x - (x - symbols[skipped]) ** 2).sum(axis=1)
        override = np.where(self.is_coded, own_bits < prior_bits, (nonzeros > 0) & (own_bits < gain))
        return override, own.astype(np.int32)

    def _stored_rows(self, override, codes):
        """(channel, table) of every stored row after the flags and codes: the prior's rows, then the overrides."""
        prior = [(c, self.tables[c]) for c in np.flatnonzero(self.is_coded & ~override)]
        return prior + [(c, _own_table(int(code), self.deadzone)) for c, code in zip(np.flatnonzero(override), codes)]

    def encode(self, latent, geometry, done=None):
        """Dead-zone quantisation; rows the prior skips and no override codes stay 0; one learned-prior stream."""
        if not latent.shape[1]:
            return np.zeros(latent.shape, np.int32), b''
        scaled = latent * np.float32(1.0 / self.step)
        symbols = self._quantise(scaled)
        override, own = self._overrides(scaled, symbols)
        symbols[~self.is_coded & ~override] = 0
        codes = own[override]
        stored = self._stored_rows(override, codes)
        rows = [override.astype(np.int32), codes] + [symbols[c] for c, _table in stored]
        tables = [FLAG_TABLE, BYTE_TABLE] + [table for _c, table in stored]
        return symbols, encode_groups(rows, tables)

    def _plan(self, geometry, stored):
        """The decoder's (table, length) sequence; `stored` receives the stored rows' (channel, table) pairs."""
        samples = geometry.samples

        def plan(rows):
            yield FLAG_TABLE, geometry.channels
            if (rows[0] & ~1).any():
                raise FormatError('a learned-prior latent stream has invalid row flags')
            override = rows[0].astype(bool)
            yield BYTE_TABLE, int(override.sum())
            stored.extend(self._stored_rows(override, rows[1]))
            for _c, table in stored:
                yield table, samples
        return plan

    def decode(self, data, geometry):
        symbols = np.zeros((geometry.channels, geometry.samples), np.int32)
        if not symbols.shape[1]:
            if data:
                raise FormatError('a tile without valid pixels carries latent data')
            return symbols
        stored = []
        rows = decode_groups(data, self._plan(geometry, stored))
        for (c, _table), row in zip(stored, rows[2:]):
            symbols[c] = row
        return symbols

    def dequantise(self, symbols, cells=None, out=None):
        """float32 latent of integer symbols (channels, samples), at the samples `cells` only when given (flat
        indices: a decoder that runs on some blocks), in `out` when given; all-zero rows (most of a detail-level
        latent) stay 0 without a pass. Each value depends on its own symbol only: the same values as the whole
        latent's at those samples."""
        return self.dequantised_rows(symbols, np.flatnonzero(symbols.any(axis=1)), cells, out)

    def dequantised_rows(self, symbols, rows, cells=None, out=None):
        """dequantise with the rows that may hold a nonzero symbol given (`rows`; the others are 0)."""
        out = zeroed_latent((symbols.shape[0], symbols.shape[1] if cells is None else len(cells)), out)
        out[rows] = self.row_values(symbols, rows, cells)
        return out

    def row_values(self, symbols, rows, cells=None):
        """The dequantised values (len(rows), samples or len(cells)) of the symbols' rows `rows`."""
        latent = (symbols[rows] if cells is None else symbols[np.ix_(rows, cells)]).astype(np.float32)
        if self.offset:
            latent = np.copysign(np.maximum(np.abs(latent) - np.float32(self.offset), 0.0), latent)
        return latent * np.float32(self.step)


def make_latent_coder(meta, level, steps):
    """meta: modelmeta.ModelMetadata; level: its QualityLevel; steps: (channels, 1) steps of the adaptive coder."""
    if meta.entropy_model is None:
        return AdaptiveLatentCoder(steps)
    return PriorLatentCoder(level, meta.entropy_model)
