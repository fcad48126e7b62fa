"""Error bounds a user can ask for, and the quantisers that guarantee them on every sample.

An `ErrorBound` combines, as CCSDS-123.0-B-2 does:
- an absolute limit per band (MAX_ERROR for all bands, or BAND_MAX_ERRORS: one value per band 1-224 of the image,
  in its own band order, as QGIS numbers them; the header stores them in canonical (wavelength) order),
- a relative limit: |error| <= RELATIVE_ERROR x |value|, never below RELATIVE_FLOOR DN.
When both are given, both hold: the limit of a sample is min(absolute[band], max(floor, floor(r x |value|))).

The residual layer (codec.TileCoder) codes `original - base` per band with a quantiser per band: a uniform one
(`UniformQuantiser`) for a band with an absolute limit only (restored = base + q (2E + 1), the formula of every
MAX_ERROR file), and a fixed grid (`GridQuantiser`) for a band with a relative limit, whose cells are narrow near 0
and wide for large values; there the symbol is the difference of the cell numbers of the original and of the base.
The grid is built from the numbers in the header with exact integer and IEEE-754 operations, so the decoder rebuilds
it identically everywhere.
"""
from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import InputError

BAND_COUNT = 224
MIN_RELATIVE = 1e-4  # below this the grid would have millions of cells, and 1e-4 x 10000 DN is 1 DN anyway
MAX_BOUND_DN = 2 ** 53  # error bounds in DN: integers float64 holds exactly (larger ones overflow the residual layer)
GRID_LIMIT = 2 ** 24  # |DN| the grid covers (error-bounded inputs are within +-2**23, samples.EXACT_LIMIT)
TYPICAL_DN = 1500.0  # a typical EnMAP reflectance DN, to pick the base quality for a relative bound
NO_LIMIT = 2 ** 30  # absolute limit of bands that have only a relative one


@dataclass(frozen=True)
class ErrorBound:
    """A guaranteed error bound. band_max_errors: 224 ints, one per band (None: relative only): in the image's
    band order as the user gives them, in canonical order once `in_canonical_order` has been applied (the header);
    relative_error: r in [1e-4, 1] or None; relative_floor: DN >= 0, the least limit of the relative bound."""

    band_max_errors: tuple | None = None
    relative_error: float | None = None
    relative_floor: int = 0

    # --- what it means ------------------------------------------------------------------------------------
    @property
    def uniform(self):
        """The single MAX_ERROR when the bound is just that (the files of 0.1.0 have only this), else None."""
        if self.relative_error is not None or self.band_max_errors is None:
            return None
        values = set(self.band_max_errors)
        return values.pop() if len(values) == 1 else None

    @property
    def lossless(self):
        return self.band_max_errors is not None and not any(self.band_max_errors)

    def absolute(self, bands):
        """Absolute limit (int64) of each canonical band index in `bands`."""
        if self.band_max_errors is None:
            return np.full(len(bands), NO_LIMIT, np.int64)
        return np.asarray(self.band_max_errors, np.int64)[np.asarray(bands, int)]

    def limits(self, values, bands):
        """Per-sample limit (int64) for `values` (len(bands), N) of canonical `bands`."""
        absolute = self.absolute(bands)[:, None]
        if self.relative_error is None:
            return np.broadcast_to(absolute, values.shape)
        relative = np.floor(self.relative_error * np.abs(values.astype(np.float64))).astype(np.int64)
        return np.minimum(absolute, np.maximum(self.relative_floor, relative))

    def representative_dn(self, bands):
        """One DN figure for choosing the base quality: the median limit of the coded bands at a typical value."""
        limit = self.absolute(bands).astype(np.float64)
        if self.relative_error is not None:
            limit = np.minimum(limit, max(self.relative_floor, self.relative_error * TYPICAL_DN))
        return int(round(float(np.median(limit)))) if len(bands) else 0

    def describe(self):
        """Short text for reports and `info`: '<= 10 DN', 'per band 0-50 DN', '<= 1 % of the value, >= 2 DN'."""
        parts = []
        if self.lossless:
            return 'lossless'
        if self.band_max_errors is not None:
            low, high = min(self.band_max_errors), max(self.band_max_errors)
            parts.append(f'<= {low} DN' if low == high else f'per band {low}-{high} DN')
        if self.relative_error is not None:
            parts.append(f'<= {self.relative_error * 100:g} % of the value, at least {self.relative_floor} DN')
        return ' and '.join(parts)

    def in_canonical_order(self, canonical_index):
        """The same bound with band_max_errors in canonical (wavelength) order: canonical band c is band
        canonical_index[c] of the image (users give limits in the image's own band order)."""
        if self.band_max_errors is None:
            return self
        limits = tuple(self.band_max_errors[int(i)] for i in canonical_index)
        return ErrorBound(limits, self.relative_error, self.relative_floor)

    # --- the header ----------------------------------------------------------------------------------------
    def codec_info(self):
        return {'band_max_errors': list(self.band_max_errors) if self.band_max_errors is not None else None,
                'relative_error': self.relative_error, 'relative_floor': self.relative_floor}

    @classmethod
    def from_codec_info(cls, info):
        """The bound of a file from its header's `codec` object (None: a lossy file); 0.1.0 files have max_error."""
        from .errors import FormatError

        spec = info.get('error_bound')
        if spec is None:
            value = info.get('max_error')
            return None if value is None else uniform_bound(_header_int(value, 'max_error'))
        if not isinstance(spec, dict):
            raise FormatError('the header\'s codec.error_bound is not an object')
        bands = spec.get('band_max_errors')
        if bands is not None:
            if not isinstance(bands, list) or len(bands) != BAND_COUNT:
                raise FormatError(f'the header\'s error bound must list {BAND_COUNT} band limits')
            bands = tuple(_header_int(v, 'band_max_errors') for v in bands)
        relative = spec.get('relative_error')
        if relative is not None and (isinstance(relative, bool) or not isinstance(relative, (int, float))
                                     or not MIN_RELATIVE <= relative <= 1):
            raise FormatError(f'the header\'s relative error bound {relative!r} is out of range')
        if bands is None and relative is None:
            raise FormatError('the header\'s error bound sets no limit')
        return cls(bands, None if relative is None else float(relative),
                   _header_int(spec.get('relative_floor', 0), 'relative_floor'))

    # --- the quantisers ------------------------------------------------------------------------------------
    def quantisers(self, bands):
        """One quantiser (UniformQuantiser or GridQuantiser) per canonical band in `bands`, in that order."""
        absolute = self.absolute(bands)
        if self.relative_error is None:
            return [UniformQuantiser(int(a)) for a in absolute]
        return [_grid(int(a), self.relative_error, self.relative_floor) for a in absolute]

    def symbols(self, original, base, bands):
        """Residual symbols (int32, like original) so that restore(base, symbols) is within the limit."""
        out = np.empty(original.shape, np.int32)
        for rows, quantiser in _groups(self.quantisers(bands)):
            out[rows] = quantiser.symbols(original[rows], base[rows])
        return out

    def restore(self, base, symbols, bands):
        out = np.empty(base.shape, np.float64)
        for rows, quantiser in _groups(self.quantisers(bands)):
            out[rows] = quantiser.restore(base[rows], symbols[rows])
        return out


def _groups(quantisers):
    """(row indices, quantiser) for each distinct quantiser: one vectorised call per group."""
    rows = {}
    for row, quantiser in enumerate(quantisers):
        rows.setdefault(quantiser, []).append(row)
    return [(np.asarray(r), q) for q, r in rows.items()]


def _header_int(value, name):
    from .errors import FormatError

    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f'the header\'s {name} must hold integers >= 0, not {value!r}')
    return value


def integer_residual(original, base):
    """original - base (whole numbers, as floats of any type) in int64, exactly: in float32 a residual beyond 2^24
    (a base near BASE_LIMIT against an input near EXACT_LIMIT) lost its last bit, and the bound check refused the
    tile as an internal error."""
    return np.asarray(original).astype(np.int64) - np.asarray(base).astype(np.int64)


@dataclass(frozen=True)
class UniformQuantiser:
    """|x - restored| <= E with restored = base + q (2E + 1): the residual layer of every MAX_ERROR file."""

    max_error: int

    def symbols(self, original, base):
        residual = integer_residual(original, base)
        step = 2 * self.max_error + 1
        return (np.sign(residual) * ((np.abs(residual) + self.max_error) // step)).astype(np.int32)

    def restore(self, base, symbols):
        return base + symbols.astype(np.float64) * (2 * self.max_error + 1)


@dataclass(frozen=True, eq=False)
class GridQuantiser:
    """A fixed, symmetric grid of cells over the integers: cell k >= 0 holds [start_k, start_k + 2 m_k] and is
    restored as its centre start_k + m_k, where m_k = limit(start_k) and limit(x) = min(A, max(F, floor(r x))) for
    x >= 0 (cell 0 is centred on 0; negative cells mirror the positive ones). limit never decreases, so every x in
    a cell is within limit(|x|) of the centre. Once limit reaches A the cells are uniform (computed, not stored)."""

    starts: np.ndarray  # int64, ascending, starts[0] = 0 stands for cell 0 = [-m_0, m_0]
    centres: np.ndarray  # int64
    tail_start: int  # first value of the uniform tail (cell index len(starts))
    tail_width: int  # 2A + 1 (0 when the grid has no uniform tail)

    def index(self, values):
        x = np.clip(np.rint(np.asarray(values, np.float64)), -GRID_LIMIT, GRID_LIMIT).astype(np.int64)
        magnitude = np.abs(x)
        cell = np.searchsorted(self.starts, magnitude, side='right') - 1
        if self.tail_width:
            tail = magnitude >= self.tail_start
            cell[tail] = len(self.starts) + (magnitude[tail] - self.tail_start) // self.tail_width
        return np.where(x < 0, -cell, cell)

    def centre(self, cells):
        magnitude = np.abs(cells)
        inside = magnitude < len(self.starts)
        out = np.empty(cells.shape, np.int64)
        out[inside] = self.centres[magnitude[inside]]
        if (~inside).any():
            if not self.tail_width:
                from .errors import FormatError

                raise FormatError('a residual symbol points outside the error-bound grid')
            beyond = magnitude[~inside] - len(self.starts)
            out[~inside] = self.tail_start + (self.tail_width // 2) + beyond * self.tail_width
        return np.where(cells < 0, -out, out)

    def symbols(self, original, base):
        return (self.index(original) - self.index(base)).astype(np.int32)

    def restore(self, base, symbols):
        return self.centre(self.index(base) + symbols.astype(np.int64)).astype(np.float64)


@functools.lru_cache(maxsize=256)  # a grid per band of a file (64 rebuilt every band of every tile: seconds a tile)
def _grid(absolute, relative, floor):
    """The GridQuantiser of limit(x) = min(A, max(F, floor(r x))): its cells made a run of equal limits at a time
    (a cell at a time took about 30 ms a grid, seconds a tile for a file with a different bound in every band)."""
    def limit(x):
        return min(absolute, max(floor, math.floor(relative * x)))

    runs = []  # (first start, width 2 m + 1, cells) of each run of cells of one limit m
    start, tail = limit(0) + 1, 0
    while start <= GRID_LIMIT:
        m = limit(start)
        if m == absolute:  # from here on every cell is 2A + 1 wide
            tail = 2 * m + 1
            break
        end = min(_first_above(relative, m, start), GRID_LIMIT + 1)  # the cells that start before it have limit m
        cells = -(-(end - start) // (2 * m + 1))
        runs.append((start, 2 * m + 1, cells))
        start += (2 * m + 1) * cells
    first, width, counts = (np.array([r[i] for r in runs], np.int64) for i in range(3))
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = np.repeat(first, counts) + np.repeat(width, counts) * offsets
    centres = starts + np.repeat(width // 2, counts)
    return GridQuantiser(np.concatenate([[0], starts]), np.concatenate([[0], centres]), start, tail)


def _first_above(relative, m, start):
    """The least integer x >= start with floor(r x) > m, in the float arithmetic limit() uses (limit(x) > m there,
    for F <= m < A)."""
    x = max(start, math.ceil((m + 1) / relative))
    while x > start and math.floor(relative * (x - 1)) > m:
        x -= 1
    while math.floor(relative * x) <= m:
        x += 1
    return x


# --- parsing what the user gave ----------------------------------------------------------------------------------

def uniform_bound(max_error):
    return ErrorBound(band_max_errors=(int(max_error),) * BAND_COUNT)


def error_bound(max_error=None, band_max_errors=None, relative_error=None, relative_floor=None):
    """The ErrorBound a user asked for (None: no bound, lossy coding), or InputError with one clear message.

    max_error: MAX_ERROR, an integer DN >= 0 for every band (0: lossless). band_max_errors: BAND_MAX_ERRORS, 224
    integers >= 0 in the image's band order (a sequence, or a string of numbers separated by commas, semicolons or
    spaces), or the path of a CSV file with rows `band,bound` (band number 1-224 of the image; a header row and `#`
    comments are allowed), one row per band. relative_error: RELATIVE_ERROR, a fraction r (0.01 = 1 %) from 0.0001
    to 1; relative_floor: RELATIVE_FLOOR, an integer DN >= 0 (default 0), the least error allowed however small the
    value.
    MAX_ERROR and BAND_MAX_ERRORS together: each band gets the smaller limit. With a relative bound, every sample
    keeps both its absolute and its relative limit.
    """
    uniform = _dn(max_error, 'MAX_ERROR')
    bands = _band_list(band_max_errors)
    relative = _relative(relative_error)
    floor = _dn(relative_floor, 'RELATIVE_FLOOR')
    if floor is not None and relative is None:
        raise InputError('RELATIVE_FLOOR needs RELATIVE_ERROR (the floor is the least limit of a relative bound)')
    if uniform is not None:
        bands = tuple(min(uniform, b) for b in bands) if bands is not None else (uniform,) * BAND_COUNT
    if bands is None and relative is None:
        return None
    return ErrorBound(bands, relative, floor or 0)


def is_blank(value):
    """Whether an optional parameter was left out: None, or a text of spaces only (as a form leaves it)."""
    return value is None or (isinstance(value, str) and not value.strip())


def whole_number(value):
    """An integer given as one, its text or an integral float; None for anything else (a bool, NaN, ±Inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if not isinstance(value, bool) and number.is_integer() else None


def _bound_dn(value):
    """A bound in DN: an integer from 0 to MAX_BOUND_DN (the largest a file states), as a number or its text;
    None otherwise."""
    number = whole_number(value)
    return number if number is not None and 0 <= number <= MAX_BOUND_DN else None


def _dn(value, name):
    if is_blank(value):
        return None
    number = _bound_dn(value)
    if number is None:
        raise InputError(f'{name} must be an integer number of DN from 0 to 2^53 (or empty), not {value!r}')
    return number


def _relative(value):
    if is_blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float('nan')
    if not (math.isfinite(number) and MIN_RELATIVE <= number <= 1):
        raise InputError(f'RELATIVE_ERROR must be a fraction of the value from {MIN_RELATIVE} to 1 (0.01 = 1 %), '
                         f'not {value!r}')
    return number


def _band_list(value):
    """224 band limits from a sequence, a string of numbers or a CSV path; None when not given."""
    if is_blank(value):
        return None
    if isinstance(value, str):
        text = value.strip()
        if os.path.isfile(text) or text.lower().endswith(('.csv', '.txt')):
            return _band_csv(text)
        if os.path.isdir(text) or any(sep in text for sep in ('/', '\\')):  # (numbers hold no path separator)
            raise InputError(f'BAND_MAX_ERRORS names {text}, which is not a CSV file (band,bound rows)')
        items = [item for item in text.replace(';', ',').replace(',', ' ').split()]
    else:
        try:
            items = list(value)
        except TypeError:
            raise InputError(f'BAND_MAX_ERRORS must be {BAND_COUNT} numbers or a CSV file, not {value!r}') from None
    if len(items) != BAND_COUNT:
        raise InputError(f'BAND_MAX_ERRORS must give {BAND_COUNT} values, one per EnMAP band in band-number order '
                         f'(or name a CSV file with band,bound rows); it gives {len(items)}')
    return tuple(_band_value(item, number) for number, item in enumerate(items, 1))


def _band_value(item, band, where=''):
    number = _bound_dn(item)
    if number is None:
        raise InputError(f'BAND_MAX_ERRORS{where}: the bound of band {band} must be an integer number of DN from 0 '
                         f'to 2^53, not {item!r}')
    return number


MAX_CSV_CHARACTERS = 1 << 20


def _csv_rows(text, dialect, path):
    """(line number, row) of a CSV text; a line the csv module cannot split (a field over its 128 KB limit, a
    stray NUL) is an InputError naming it."""
    lines = text.splitlines()
    reader = csv.reader(lines, dialect)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f'BAND_MAX_ERRORS ({os.path.basename(path)}, line {reader.line_num}): not a CSV row '
                             f'({exc})') from None
        yield reader.line_num, row


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _band_csv(path):
    try:
        # (errors='replace': Excel on Windows saves "CSV" in the ANSI code page, and an "ü" in a header or comment
        # row refused the file; only the numbers count, and a damaged one is refused below)
        with open(path, newline='', encoding='utf-8-sig', errors='replace') as handle:
            text = handle.read(MAX_CSV_CHARACTERS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f'BAND_MAX_ERRORS: cannot read the CSV file {path} ({exc})') from None
    if len(text) > MAX_CSV_CHARACTERS:  # (a 224-row table takes a few KB; a wrong file would be read whole)
        raise InputError(f'BAND_MAX_ERRORS: the CSV file {path} is larger than {MAX_CSV_CHARACTERS // 1024} KB; '
                         f'it should hold one "band,bound" row per band 1-{BAND_COUNT}')
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=',;\t ')
    except csv.Error:
        dialect = csv.excel
    bounds = {}
    for line, row in _csv_rows(text, dialect, path):
        cells = [c.strip() for c in row if c.strip()]
        if not cells or cells[0].startswith('#'):
            continue
        where = f' ({os.path.basename(path)}, line {line})'
        if len(cells) != 2:
            raise InputError(f'BAND_MAX_ERRORS{where}: each row must be "band,bound", not {",".join(cells)!r}')
        try:
            band = int(cells[0])
        except ValueError:
            if not bounds and not _is_number(cells[0]):
                continue  # a header row
            raise InputError(f'BAND_MAX_ERRORS{where}: {cells[0]!r} is not a band number') from None
        if not 1 <= band <= BAND_COUNT:
            raise InputError(f'BAND_MAX_ERRORS{where}: band {band} is not an EnMAP band number (1-{BAND_COUNT})')
        if band in bounds:
            raise InputError(f'BAND_MAX_ERRORS{where}: band {band} is listed twice')
        bounds[band] = _band_value(cells[1], band, where)
    missing = [b for b in range(1, BAND_COUNT + 1) if b not in bounds]
    if missing:
        shown = ', '.join(map(str, missing[:8])) + (f' and {len(missing) - 8} more' if len(missing) > 8 else '')
        raise InputError(f'BAND_MAX_ERRORS: the CSV file {path} must give a bound for every band 1-{BAND_COUNT}; '
                         f'missing: {shown}')
    return tuple(bounds[b] for b in range(1, BAND_COUNT + 1))
