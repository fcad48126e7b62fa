"""Quality and rate metrics in the HySpecNet-11k convention, accumulated tile by tile.

PSNR: the coded bands (the 202 HySpecNet bands less dead ones), DN clipped to 0..10000 and divided by 10000,
peak 1, over valid pixels. SA: mean per-pixel spectral angle in degrees on the same values. RMSE (of the clipped
values: PSNR's) and maximum absolute error are in DN; the maximum is taken on the unclipped values, so it is an
honest worst case. DN means EnMAP's scale (reflectance x 10000): the callers convert other files first
(bands.Radiometry.enmap_dn)."""
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .bands import DN_PEAK, N_HYSPECNET, float32_holds
from .tiling import waited_result


def to_unit(dn):
    """DN -> the HySpecNet [0, 1] scale (float64 for exact sums)."""
    return np.clip(np.asarray(dn, dtype=np.float64), 0.0, DN_PEAK) / DN_PEAK


def psnr_from_mse(mse, peak=1.0):
    return math.inf if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def spectral_angles_deg(x, y):
    """Per-pixel angle in degrees between spectra (bands on axis 0). Two zero spectra have angle 0."""
    nx, ny = np.linalg.norm(x, axis=0), np.linalg.norm(y, axis=0)
    cos = np.where((nx == 0) & (ny == 0), 1.0, (x * y).sum(axis=0) / np.maximum(nx * ny, 1e-12))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


SSIM_WINDOW = 7
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2  # data range 1
BAND_CHUNK = 8  # bands whose per-pixel sums gather in float32 before the float64 totals; cancel is checked as often


def _window_sums_into(flat, size, win, step, powers, out):
    """out[i] = flat[i] + flat[i + step] + ... + flat[i + (win - 1) step] for every i where that fits in flat[:size];
    returns how many. By doubling: about log2(win) + popcount(win) additions instead of win - 1, and never a running
    sum, so float32 keeps its precision. powers: one scratch array per doubling level; nothing is allocated."""
    length = size - (win - 1) * step
    pieces, offset, power, width, level = [], 0, flat, 1, 0  # power[i]: the sum of `width` elements from i on
    while True:
        if win & width:
            pieces.append(power[offset * step:offset * step + length])
            offset += width
        if width * 2 > win:
            break
        span = size - width * step
        np.add(power[:span], power[width * step:width * step + span], out=powers[level][:span])
        power, size, width, level = powers[level], span, width * 2, level + 1
    target = out[:length]
    if len(pieces) == 1:
        np.copyto(target, pieces[0])
        return length
    np.add(pieces[0], pieces[1], out=target)
    for piece in pieces[2:]:
        target += piece
    return length


class _SsimWorkspace:
    """The SSIM of (h, w) bands, one band at a time, in buffers reused band after band.

    Everything runs on the flattened band, one contiguous loop per step, written into these buffers (out=): they
    stay in the CPU cache and nothing is allocated per band: about twice as fast as the same arithmetic on freshly
    allocated stacks of bands (measured on 262 x 262 tiles). The window sums replace the moments they sum, and the
    SSIM of each window the row sums: fewer buffers, 7 % faster. A window sum at flat index i = r w + c is the
    window whose top-left sample is (r, c); those that wrap into the next row are computed too and never looked at.

    With window sums u, v of x + y and x - y and p, q of their squares (n = win^2 samples a window), the SSIM
    (2 mx my + C1)(2 cov + C2) / ((mx^2 + my^2 + C1)(vx + vy + C2)) times n^4 / 4 on both sides is
    (u^2 - v^2 + 2 n^2 C1)(a - b + 2 n^2 C2) / ((u^2 + v^2 + 2 n^2 C1)(a + b + 2 n^2 C2)), where a = n p - u^2 and
    b = n q - v^2 are n^2 times the variances of x + y and x - y. Those do not depend on a shift of x + y, so with
    the band's mean taken off first they are differences of small numbers, which float32 carries to about 1e-7 of
    the SSIM (the float64 reference agrees).
    """

    def __init__(self, shape, dtype, win=SSIM_WINDOW, peak=1.0):
        self.height, self.width = shape
        self.win = win
        size = self.height * self.width
        self.moments = np.empty((4, size), dtype)  # x + y - shift, x - y, and their squares; then their window sums
        self.powers = np.empty((max(1, win.bit_length() - 1), size), dtype)
        self.rows = np.empty(size, dtype)  # a moment's row sums; then the SSIM of each window
        self.shift = 0.0
        n = float(win * win)
        self.n = n
        self.c1, self.c2 = 2.0 * SSIM_C1 * (n * peak) ** 2, 2.0 * SSIM_C2 * (n * peak) ** 2

    def _box_sums(self, index):
        """Moment `index` replaced by its win x win window sums (the first `count` of them); returns count."""
        size = self.height * self.width
        rows = _window_sums_into(self.moments[index], size, self.win, 1, self.powers, self.rows)
        return _window_sums_into(self.rows, rows, self.win, self.width, self.powers, self.moments[index])

    def load(self, x, y):
        """Take one band pair x, y (h, w); returns their (h, w) (x - y)^2 (the clipped squared error: no second
        pass for it), which the next loaded_sum overwrites."""
        total, error, total_sq, error_sq = self.moments
        np.add(x.reshape(-1), y.reshape(-1), out=total)
        self.shift = float(total[::61].mean())
        total -= self.shift
        np.subtract(x.reshape(-1), y.reshape(-1), out=error)
        np.multiply(total, total, out=total_sq)
        np.multiply(error, error, out=error_sq)
        return error_sq.reshape(self.height, self.width)

    def loaded_sum(self, windows, outside=None):
        """Sum of SSIM over the top-left (rows, columns) = `windows` windows of the loaded band pair, but those
        flagged in `outside` (rows, columns) bool."""
        count = min(self._box_sums(index) for index in range(4))
        n, ratio = self.n, self.rows[:count]
        u, v, p, q = (moment[:count] for moment in self.moments)
        v *= v
        q *= n
        q -= v  # b
        p *= n
        np.multiply(u, u, out=ratio)
        p -= ratio  # a
        u += n * self.shift  # the sums of x + y themselves
        np.multiply(u, u, out=u)
        u += self.c1
        np.subtract(u, v, out=ratio)  # numerator
        u += v  # denominator
        p += self.c2
        np.subtract(p, q, out=v)  # numerator
        p += q  # denominator
        ratio *= v
        u *= p
        ratio /= u
        rows, columns = windows
        ssim = self.rows[:rows * self.width].reshape(rows, self.width)[:, :columns]
        if outside is not None:
            np.copyto(ssim, 0, where=outside)
        return float(np.add.reduce(ssim, axis=1).sum(dtype=np.float64))  # rows in float32: 1e-7, 35 % faster

    def ssim_sum(self, x, y, inside):
        """Sum of SSIM over the windows flagged in `inside` (h - win + 1, w - win + 1) of one band pair x, y (h, w)."""
        self.load(x, y)
        return self.loaded_sum(inside.shape, None if inside.all() else ~inside)


def _inside_windows(valid, win):
    """Windows lying wholly on valid pixels."""
    height, width = valid.shape
    workspace = _SsimWorkspace(valid.shape, np.float32, win)
    workspace.moments[0] = valid.reshape(-1)
    count = workspace._box_sums(0)
    sums = np.zeros(height * width, np.float32)
    sums[:count] = workspace.moments[0][:count]
    return sums[:(height - win + 1) * width].reshape(height - win + 1, width)[:, :width - win + 1] == win * win


def ssim_sum(x, y, win=SSIM_WINDOW, valid=None):
    """Sum and count of SSIM values (uniform win x win window, data range 1) over all bands and windows.

    x, y: (bands, h, w) on the [0, 1] scale; only windows lying wholly on `valid` pixels count.
    Returns (sum, count) so callers can average across tiles.
    """
    if x.shape[1] < win or x.shape[2] < win:
        return 0.0, 0
    valid = np.ones(x.shape[1:], bool) if valid is None else valid
    inside = _inside_windows(valid, win)
    x, y = (np.where(valid, np.asarray(v, np.float64), 0.0) for v in (x, y))
    workspace = _SsimWorkspace(x.shape[1:], np.float64, win)
    return sum(workspace.ssim_sum(a, b, inside) for a, b in zip(x, y)), int(inside.sum()) * x.shape[0]


@dataclass
class TileErrors:
    """What one pass over a tile pair yields: per-pixel maps of the tile (0 on invalid pixels: both images are
    zeroed there, as SSIM needs) and sums over its valid pixels."""

    valid: np.ndarray  # (h, w) bool
    unit_sq: np.ndarray  # (h, w): squared error on the [0, 1] scale, summed over the bands
    dn_sq: np.ndarray  # (h, w): squared error in DN (unclipped), summed over the bands
    max_abs_dn: np.ndarray  # (h, w): largest absolute error in DN (unclipped)
    angle_deg: np.ndarray  # (h, w): spectral angle on the [0, 1] scale
    band_dn_sq: np.ndarray  # (bands,): squared DN error summed over the valid pixels
    histogram: Optional[np.ndarray]  # counts of signed DN errors, 1-DN bins over -limit..limit (clipped), valid only
    ssim_total: float
    ssim_count: int
    bands: int

    @property
    def rmse_dn(self):
        """(h, w) RMSE per pixel in DN, of the errors on the [0, 1] scale (the error layer's first band)."""
        return np.sqrt(self.unit_sq / max(1, self.bands)) * DN_PEAK


def _work_dtype(*arrays):
    """float32 is exact for int16/uint8 DN and for float32 data; anything wider is measured in float64."""
    return np.float32 if all(float32_holds(a.dtype) for a in arrays) else np.float64


def _zero_restored_nonfinite(original, reconstruction):
    """NaN and ±Inf samples that came back as they were carry no error: zero them in both (in place) so that
    they do not turn every metric into NaN; any other mismatch still counts."""
    kept = ~np.isfinite(original) & ((original == reconstruction) | (np.isnan(original) & np.isnan(reconstruction)))
    original[kept] = 0.0
    reconstruction[kept] = 0.0


class _TileSums:
    """Per-pixel and per-band sums of one tile (or of some of its band chunks: merge() adds two up)."""

    def __init__(self, shape, bands, hist_limit):
        self.clipped_sq, self.dn_sq, self.xx, self.yy, self.max_abs = np.zeros((5, *shape), np.float64)
        self.band_dn_sq = np.zeros(bands, np.float64)
        self.hist_limit = hist_limit
        self.histogram = None if hist_limit is None else np.zeros(2 * hist_limit + 1, np.int64)
        self.ssim_total = 0.0

    def merge(self, other):
        for name in ('clipped_sq', 'dn_sq', 'xx', 'yy', 'band_dn_sq'):
            getattr(self, name).__iadd__(getattr(other, name))
        np.maximum(self.max_abs, other.max_abs, out=self.max_abs)
        if self.histogram is not None:
            self.histogram += other.histogram
        self.ssim_total += other.ssim_total
        return self

    @property
    def unit_sq(self):
        return self.clipped_sq / (DN_PEAK * DN_PEAK)

    def angles_deg(self):
        """From |x - y|^2 = (|x| - |y|)^2 + 4 |x| |y| sin^2(angle / 2): accurate for small angles, where arccos of
        the cosine loses most digits. A zero spectrum against a non-zero one is 90 degrees, two zero ones 0."""
        nx, ny = np.sqrt(self.xx), np.sqrt(self.yy)
        product = nx * ny
        half_sine = np.sqrt(np.maximum(self.clipped_sq - (nx - ny) ** 2, 0.0) / np.maximum(4.0 * product, 1e-300))
        angles = np.degrees(2.0 * np.arcsin(np.minimum(half_sine, 1.0)))
        return np.where(product > 0, angles, np.where((nx == 0) & (ny == 0), 0.0, 90.0))


class _BandPass:
    """Measures one band pair after another in buffers reused band after band (they stay in the CPU cache; nothing
    is allocated per band), adding into a _TileSums. The per-pixel sums over bands gather BAND_CHUNK bands in the
    working dtype before they go into the float64 totals (flush()), as summing a chunk at a time did before. They
    run on the whole SSIM region, a contiguous loop each, and only the kept part is taken at flush(): 13 % faster
    than the same steps on the kept part's rows, for the 5 % of margin (262 x 262 tiles)."""

    def __init__(self, tile, sums):
        self.tile, self.sums = tile, sums
        region = (tile.region[0].stop - tile.region[0].start, tile.region[1].stop - tile.region[1].start)
        self.a, self.b, self.diff, self.scratch = np.empty((4, *region), tile.work)
        self.partial = np.zeros((4, *region), tile.work)  # dn_sq, clipped_sq, xx, yy of the bands since flush()
        self.max_abs = np.zeros(region, tile.work)
        # the clip bounds as arrays: np.maximum and np.minimum against a scalar run 2.5 times slower (numpy 1.26)
        self.floor, self.peak = np.zeros(region, tile.work), np.full(region, DN_PEAK, tile.work)
        self.bins = None if sums.histogram is None else np.empty(tile.valid_kept.shape, np.intp)
        fits = tile.inside.size and tile.inside.any()
        self.ssim = _SsimWorkspace(region, tile.work, tile.win, DN_PEAK) if fits else None

    def add(self, row, band):
        """Band `band` of both images, the tile's row-th measured band."""
        tile, a, b = self.tile, self.a, self.b
        for cube, target in ((tile.original, a), (tile.reconstructed, b)):
            np.copyto(target, cube[band][tile.region], casting='unsafe')
        if tile.floats:
            _zero_restored_nonfinite(a, b)
        if tile.invalid is not None:  # SSIM's convention; no other measure looks at those pixels
            np.copyto(a, 0, where=tile.invalid)
            np.copyto(b, 0, where=tile.invalid)
        self._add_dn(row, a, b)
        for values in (a, b):
            np.maximum(values, self.floor, out=values)
            np.minimum(values, self.peak, out=values)
        if self.ssim is None:
            self._add_clipped(a, b)
            return
        self._add_clipped(a, b, self.ssim.load(a, b))
        self.sums.ssim_total += self.ssim.loaded_sum(tile.inside.shape, tile.outside)

    def _add_dn(self, row, a, b):
        """a, b: (h, w) DN of the region, unclipped, zero on invalid pixels."""
        diff, squared, kept = self.diff, self.scratch, self.tile.in_region
        np.subtract(b, a, out=diff)
        np.multiply(diff, diff, out=squared)
        self.partial[0] += squared
        self.sums.band_dn_sq[row] = squared[kept].sum(axis=1).sum(dtype=np.float64)
        np.maximum(self.max_abs, np.abs(diff, out=squared), out=self.max_abs)
        if self.bins is not None:
            self._count_errors(diff[kept])

    def _count_errors(self, diff):
        """diff: (h, w) signed DN errors of the kept part (overwritten)."""
        limit, histogram = self.sums.hist_limit, self.sums.histogram
        if not self.tile.integral:
            np.rint(diff, out=diff)
        if not self.tile.small_errors:  # int32 or float data: an error of 1e9 DN would make bincount allocate 8 GB
            np.clip(diff, -limit - 1, limit + 1, out=diff)  # (and one beyond 2^63 or inf would cast to -2^63)
            if self.tile.floats:
                np.copyto(diff, limit + 1, where=np.isnan(diff))  # not a number: as large as it gets
        bins = self.bins.reshape(-1)
        np.copyto(self.bins, diff, casting='unsafe')  # what bincount counts (it converts anything else)
        bins += limit
        try:  # errors beyond +-limit are rare: bincount finds them (clipping first cost 15 % of the histogram)
            counts = np.bincount(bins, minlength=histogram.size)
        except ValueError:  # some below -limit
            counts = np.bincount(np.maximum(bins, 0, out=bins), minlength=histogram.size)
        counts[limit] -= self.tile.invalid_kept  # the invalid pixels, zeroed in both images, fell into 0 DN
        histogram[:-1] += counts[:histogram.size - 1]
        histogram[-1] += counts[histogram.size - 1:].sum()  # and those above +limit

    def _add_clipped(self, x, y, squared=None):
        """x, y: (h, w) of the region, clipped to 0..DN_PEAK; squared: (x - y)^2 when SSIM has it already."""
        if squared is None:
            np.subtract(x, y, out=self.diff)
            np.multiply(self.diff, self.diff, out=self.scratch)
            squared = self.scratch
        self.partial[1] += squared
        self._add_product(2, x, x)
        self._add_product(3, y, y)

    def _add_product(self, index, first, second):
        np.multiply(first, second, out=self.scratch)
        self.partial[index] += self.scratch

    def flush(self):
        kept = self.tile.in_region
        for total, part in zip((self.sums.dn_sq, self.sums.clipped_sq, self.sums.xx, self.sums.yy), self.partial):
            total += part[kept]
        self.partial[...] = 0
        np.maximum(self.sums.max_abs, self.max_abs[kept], out=self.sums.max_abs)


@dataclass
class _TilePass:
    """One tile's geometry and inputs, shared by the band chunks (which may run in threads)."""

    original: np.ndarray
    reconstructed: np.ndarray
    bands: np.ndarray
    valid: np.ndarray
    kept: tuple
    win: int
    hist_limit: Optional[int]
    progress: object  # a tiling.Progress over the band chunks, or None

    def __post_init__(self):
        kept, win = self.kept, self.win
        self.work = _work_dtype(self.original, self.reconstructed)
        kinds = (self.original.dtype.kind, self.reconstructed.dtype.kind)
        self.floats, self.integral = 'f' in kinds, 'f' not in kinds
        # 8- and 16-bit integers: every error lies within +-65535, which bincount counts without a clip
        self.small_errors = self.integral and self.work == np.float32
        self.valid_kept = self.valid[kept]
        # SSIM: the windows whose bottom-right pixel lies in the kept part: the kept part and win - 1 pixels above
        # and left of it, as far as the window reaches
        self.region = (slice(max(0, kept[0].start - win + 1), kept[0].stop),
                       slice(max(0, kept[1].start - win + 1), kept[1].stop))
        self.in_region = (slice(kept[0].start - self.region[0].start, None),
                          slice(kept[1].start - self.region[1].start, None))
        valid = self.valid[self.region]
        fits = valid.shape[0] >= win and valid.shape[1] >= win
        self.inside = _inside_windows(valid, win) if fits else np.zeros((0, 0), bool)
        self.outside = None if self.inside.all() else ~self.inside
        self.invalid = None if valid.all() else ~valid
        self.invalid_kept = int(self.valid_kept.size - self.valid_kept.sum())

    def sums(self, starts):
        """_TileSums of the band chunks starting at `starts` (one _BandPass per call: the threads sharing a tile
        each have their own buffers)."""
        sums = _TileSums(self.valid_kept.shape, self.bands.size, self.hist_limit)
        measure = _BandPass(self, sums)
        for start in starts:
            if self.progress is not None:
                self.progress.check()
            for row in range(start, min(start + BAND_CHUNK, self.bands.size)):
                measure.add(row, self.bands[row])
            measure.flush()
            if self.progress is not None:
                self.progress.advance(1)
        return sums


def tile_errors(original, reconstructed, valid, kept=None, bands=None, hist_limit=None, progress=None,
                win=SSIM_WINDOW, pool=None, threads=1):
    """Every error measure of one tile pair in one pass over its samples, BAND_CHUNK bands at a time.

    original, reconstructed: (all bands, H, W) DN of a window; valid: (H, W) bool; kept: the tile's (row, column)
    slices in the window, with explicit bounds (default: all of it); bands: the band indices measured (default:
    all). The per-pixel maps and sums cover the kept part; SSIM counts the windows whose bottom-right pixel lies
    in it, so a window that reaches `win - 1` pixels past the kept part above and left of it makes tiled SSIM
    equal whole-image SSIM.
    hist_limit: also count signed DN errors in 1-DN bins over +-hist_limit. progress: a tiling.Progress for the
    tile, or None: it moves as band chunks are done (in whichever thread), shows them and may cancel while this
    thread waits for the pool, and is checked for a cancel between chunks.
    pool, threads: a concurrent.futures executor and how many of its threads share the chunks (numpy runs them
    without the GIL); the sums do not depend on it.
    The clipped values are not scaled to 0..1: SSIM's constants are scaled instead, the sums at the end.
    Only the box around the kept part's valid pixels is measured (nodata corners of a scene cost nothing): every
    measure of a pixel outside it is 0, and no SSIM window counted ends there.
    """
    height, width = valid.shape
    kept = kept if kept is not None else (slice(0, height), slice(0, width))
    bands = np.arange(original.shape[0]) if bands is None else np.asarray(bands)
    box = _valid_box(valid, kept, win)
    if box is None:
        return _nothing_valid(valid[kept], bands.size, hist_limit)
    window, inner, placed = box
    errors = _measured(original[:, window[0], window[1]], reconstructed[:, window[0], window[1]], bands,
                       valid[window], inner, win, hist_limit, progress, pool, threads)
    return errors if errors.valid.shape == valid[kept].shape else _placed(errors, valid[kept], placed)


def _valid_box(valid, kept, win):
    """(window, its kept part, where that lies in `kept`) around the valid pixels of `kept` and the win - 1 pixels
    above and left of them that the SSIM windows ending on them reach; None when `kept` has no valid pixel."""
    in_kept = valid[kept]
    rows, columns = np.flatnonzero(in_kept.any(axis=1)), np.flatnonzero(in_kept.any(axis=0))
    if not rows.size:
        return None
    first_row, first_column = kept[0].indices(valid.shape[0])[0], kept[1].indices(valid.shape[1])[0]
    (top, bottom), (left, right) = ((first_row + rows[0], first_row + rows[-1] + 1),
                                    (first_column + columns[0], first_column + columns[-1] + 1))
    window = (slice(max(0, top - win + 1), bottom), slice(max(0, left - win + 1), right))
    inner = (slice(top - window[0].start, bottom - window[0].start),
             slice(left - window[1].start, right - window[1].start))
    placed = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    return window, inner, placed


def _nothing_valid(valid_kept, bands, hist_limit):
    zeros = np.zeros(valid_kept.shape, np.float64)
    histogram = None if hist_limit is None else np.zeros(2 * hist_limit + 1, np.int64)
    return TileErrors(valid_kept, zeros, zeros, zeros, zeros, np.zeros(bands, np.float64), histogram, 0.0, 0, bands)


def _placed(errors, valid_kept, placed):
    """`errors` of a box inside the kept part, as errors of the whole kept part (0 outside the box)."""
    def grown(values):
        full = np.zeros(valid_kept.shape, values.dtype)
        full[placed] = values
        return full

    return dataclasses.replace(errors, valid=valid_kept, unit_sq=grown(errors.unit_sq), dn_sq=grown(errors.dn_sq),
                               max_abs_dn=grown(errors.max_abs_dn), angle_deg=grown(errors.angle_deg))


def _measured(original, reconstructed, bands, valid, kept, win, hist_limit, progress, pool, threads):
    starts = list(range(0, bands.size, BAND_CHUNK))
    chunks = progress.sub(len(starts), 0.0, 1.0) if progress is not None else None
    tile = _TilePass(original, reconstructed, bands, valid, kept, win, hist_limit, chunks)
    if pool is not None and threads > 1 and len(starts) > 1:
        parts = [pool.submit(tile.sums, starts[i::threads]) for i in range(min(threads, len(starts)))]
        on_wait = chunks.pulse if chunks is not None else None
        sums = waited_result(parts[0], on_wait)
        for part in parts[1:]:
            sums.merge(waited_result(part, on_wait))
    else:
        sums = tile.sums(starts)
    return TileErrors(tile.valid_kept, sums.unit_sq, sums.dn_sq, sums.max_abs, sums.angles_deg(), sums.band_dn_sq,
                      sums.histogram, sums.ssim_total, int(tile.inside.sum()) * bands.size, int(bands.size))


class MetricsAccumulator:
    """Streams tiles of (original, reconstruction) and reports the image-wide metrics."""

    def __init__(self):
        self.sq_err = 0.0
        self.samples = 0
        self.angle_sum = 0.0
        self.pixels = 0
        self.max_abs_dn = 0.0
        self.ssim_total = 0.0
        self.ssim_count = 0

    def update(self, original, reconstructed, valid):
        """original, reconstructed: (bands, h, w) DN of the evaluated bands; valid: (h, w) bool pixel mask."""
        errors = tile_errors(original, reconstructed, valid)
        self.add(errors)
        return errors

    def add(self, errors):
        """Count one tile's TileErrors."""
        valid = errors.valid
        pixels = int(valid.sum())
        if not pixels:
            return
        self.max_abs_dn = max(self.max_abs_dn, float(errors.max_abs_dn[valid].max()) if errors.bands else 0.0)
        self.sq_err += float(errors.unit_sq[valid].sum())
        self.samples += pixels * errors.bands
        self.angle_sum += float(errors.angle_deg[valid].sum())
        self.pixels += pixels
        self.ssim_total += errors.ssim_total
        self.ssim_count += errors.ssim_count

    @property
    def mse(self):
        return self.sq_err / self.samples if self.samples else 0.0

    def result(self):
        """Without a measured sample (no valid pixel, or no evaluated band) PSNR, RMSE, SA and the maximum error are
        NaN (null in JSON, like SSIM): infinity, or a maximum error of 0, would read as a perfect reconstruction of
        what was never measured."""
        mse = self.mse
        return {
            'psnr': psnr_from_mse(mse) if self.samples else math.nan,
            'rmse_dn': math.sqrt(mse) * DN_PEAK if self.samples else math.nan,
            'sa_deg': self.angle_sum / self.pixels if self.samples else math.nan,
            'ssim': self.ssim_total / self.ssim_count if self.ssim_count else float('nan'),
            'max_abs_error_dn': self.max_abs_dn if self.samples else math.nan,
            'valid_pixels': self.pixels,
        }


def rate_metrics(file_bytes, valid_pixels, coded_bands=N_HYSPECNET):
    """Real rate from bytes on disk: bpppb over the coded bands, and the ratio against the same samples as int16."""
    bits = 8.0 * file_bytes
    bpppb = bits / (valid_pixels * coded_bands) if valid_pixels else math.inf
    original_bits = 16.0 * valid_pixels * coded_bands
    return {'bpppb': bpppb, 'compression_ratio': original_bits / bits if bits else math.inf}


def per_pixel_errors(original, reconstructed):
    """Per-pixel error bands for the error layer: RMSE in DN, spectral angle in degrees, max abs error in DN."""
    errors = tile_errors(np.asarray(original), np.asarray(reconstructed), np.ones(np.shape(original)[1:], bool))
    return errors.rmse_dn, errors.angle_deg, errors.max_abs_dn
