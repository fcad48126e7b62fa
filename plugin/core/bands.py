"""The standard EnMAP L2A band table and band-order helpers.

Canonical order everywhere in the plugin = ascending wavelength, which is the order of the L2A product itself.
Some files (the EnMAP-Box Potsdam example, TorchGeo) store the bands in detector order instead (VNIR 1-91, then
SWIR 92-224); `canonical_order` maps any order to the canonical one.
"""
import csv
import functools
from dataclasses import dataclass

import numpy as np

from ..paths import resource_path
from .errors import InputError

BAND_TABLE_FILE = 'enmap_bands_224.csv'
N_BANDS = 224
# HySpecNet-11k drops these bands (water vapour absorption, 1295-1519 nm and 1739-1968 nm); 1-based.
HYSPECNET_DROPPED_1BASED = tuple(range(127, 142)) + tuple(range(161, 168))
N_HYSPECNET = N_BANDS - len(HYSPECNET_DROPPED_1BASED)  # 202
# The SWIR detector starts near 902 nm, below the last VNIR band (993 nm): a detector-order file restarts here.
_DETECTOR_RESTART_NM = (800.0, 1100.0)


@dataclass(frozen=True)
class BandTable:
    """The 224 EnMAP bands in product (ascending-wavelength) order; arrays are read-only."""

    product_band: np.ndarray  # 1-based band number in the product
    detector: np.ndarray  # 'VNIR' or 'SWIR'
    detector_index: np.ndarray  # 1-based index within the detector
    wavelength_nm: np.ndarray
    fwhm_nm: np.ndarray
    detector_order_band: np.ndarray  # 1-based band number in detector order
    hyspecnet_dropped: np.ndarray  # bool


def _read_rows(path):
    with open(path, newline='', encoding='utf-8') as f:
        lines = [line for line in f if line.strip() and not line.startswith('#')]
    return list(csv.DictReader(lines))


def _frozen(values, dtype):
    arr = np.asarray(values, dtype=dtype)
    arr.setflags(write=False)  # the table is cached and shared: protect it from accidental edits
    return arr


@functools.lru_cache(maxsize=1)
def standard_band_table():
    """The standard band table from resources/enmap_bands_224.csv (read once)."""
    path = resource_path(BAND_TABLE_FILE)
    try:
        rows = _read_rows(path)
        table = BandTable(
            product_band=_frozen([int(r['product_band']) for r in rows], np.int64),
            detector=_frozen([r['detector'] for r in rows], object),
            detector_index=_frozen([int(r['detector_index']) for r in rows], np.int64),
            wavelength_nm=_frozen([float(r['wavelength_nm']) for r in rows], np.float64),
            fwhm_nm=_frozen([float(r['fwhm_nm']) for r in rows], np.float64),
            detector_order_band=_frozen([int(r['detector_order_band']) for r in rows], np.int64),
            hyspecnet_dropped=_frozen([r['hyspecnet_dropped'].strip() == '1' for r in rows], bool),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f'The plugin file {path} is missing or damaged ({exc}); reinstall EnMAP Compress.') from exc
    if len(rows) != N_BANDS:
        raise InputError(f'The plugin file {path} has {len(rows)} bands, expected {N_BANDS}; reinstall EnMAP Compress.')
    return table


def standard_wavelengths():
    """Centre wavelengths (nm) of the 224 standard bands, ascending (a writable copy)."""
    return standard_band_table().wavelength_nm.copy()


def standard_fwhm():
    """FWHM (nm) of the 224 standard bands in canonical order (a writable copy)."""
    return standard_band_table().fwhm_nm.copy()


def hyspecnet_keep_mask():
    """bool[224] in canonical order: True for the 202 bands HySpecNet-11k keeps."""
    keep = np.ones(N_BANDS, dtype=bool)
    keep[np.asarray(HYSPECNET_DROPPED_1BASED) - 1] = False
    return keep


def detector_order_permutation():
    """Canonical indices in detector order: detector-order file band k holds canonical band result[k]."""
    return np.argsort(standard_band_table().detector_order_band, kind='stable')


def canonical_order(wavelengths):
    """Stable argsort by wavelength: canonical position i holds file band result[i] (0-based)."""
    return np.argsort(np.asarray(wavelengths, dtype=np.float64), kind='stable')


def detect_band_order(wavelengths):
    """'wavelength' (non-decreasing), 'detector' (VNIR run then SWIR run restarting near 900 nm) or 'other'."""
    wl = np.asarray(wavelengths, dtype=np.float64)
    steps = np.diff(wl)
    drops = np.flatnonzero(steps < 0)
    if drops.size == 0:
        return 'wavelength'
    if drops.size == 1:
        restart = wl[drops[0] + 1]
        low, high = _DETECTOR_RESTART_NM
        if low <= restart <= high and wl[drops[0]] >= low:
            return 'detector'
    return 'other'


# --- band sets: which canonical bands a model codes, looked up by the id stored in its metadata -----------------

@dataclass(frozen=True)
class BandSet:
    """The canonical bands a model package codes, in canonical order."""

    band_set_id: str
    keep: np.ndarray  # bool[224], read-only

    @property
    def indices(self):
        return np.flatnonzero(self.keep)

    @property
    def count(self):
        return int(self.keep.sum())


HYSPECNET202 = 'hyspecnet202'


@functools.cache
def band_set(band_set_id=HYSPECNET202):
    """The band set of a model package's `band_set` metadata; InputError for an id this version does not know."""
    if band_set_id == HYSPECNET202:
        return BandSet(HYSPECNET202, _frozen(hyspecnet_keep_mask(), bool))
    raise InputError(f'band set "{band_set_id}" is not known to this version of EnMAP Compress '
                     f'(known: {HYSPECNET202})')


# --- the radiometric scale: DN <-> the models' [0, 1] reflectance view ------------------------------------------

DN_PEAK = 10000.0  # reflectance 1 in EnMAP DN; the PSNR peak in the HySpecNet convention
ENMAP_GAIN = 1e-4  # EnMAP L2A: reflectance = DN x 1e-4, offset 0
MIN_GAIN, MAX_GAIN = 1e-30, 1e30  # |gain| beyond these is no radiometry (1e-320 made the DN step infinite)
UNIT_BLOCK_BANDS = 8  # bands per step of Radiometry.native_to_unit: a 256 px tile's 8 bands stay in cache
CLIP_MARGIN = 0.05  # reflectance beyond [0, 1] by more than this is no measurement error but another scale
FAINT = 0.001  # reflectance below which (almost) every sample of an image means a scale far too small


def unusable_gains(gains):
    """Per band: whether |gain| lies outside MIN_GAIN .. MAX_GAIN (NaN too)."""
    magnitude = np.abs(np.asarray(gains, np.float64))
    return ~((MIN_GAIN <= magnitude) & (magnitude <= MAX_GAIN))


def unusable_offsets(offsets):
    """Per band: whether |offset| is beyond MAX_GAIN (NaN too: 1e300 overflowed the float32 DN view)."""
    return ~(np.abs(np.asarray(offsets, np.float64)) <= MAX_GAIN)


def float32_holds(dtype):
    """Whether float32 holds every value of `dtype` exactly: float32 itself and the 8- and 16-bit integers."""
    dtype = np.dtype(dtype)
    return dtype == np.float32 or (dtype.kind in 'iub' and dtype.itemsize <= 2)


@dataclass(frozen=True)
class Radiometry:
    """Per-band gain and offset (reflectance = DN x gain + offset) of a set of bands, in that set's order.

    The models see reflectance clipped to [0, 1]. For EnMAP's own scale (gain 1e-4, offset 0) the conversion is the
    float32 expression every file so far was written with, so those files keep their exact bytes.
    """

    gains: np.ndarray
    offsets: np.ndarray

    @classmethod
    def enmap(cls, count):
        return cls(np.full(count, ENMAP_GAIN), np.zeros(count))

    @classmethod
    def of(cls, gains, offsets):
        gains = np.asarray(gains, np.float64)
        offsets = np.zeros_like(gains) if offsets is None else np.asarray(offsets, np.float64)
        if gains.shape != offsets.shape or not np.all(np.isfinite(gains)) or np.any(gains == 0):
            raise InputError('band gains must be finite, non-zero numbers, one per band (with one offset each)')
        if unusable_gains(gains).any() or unusable_offsets(offsets).any():
            raise InputError(f'band gains must lie from {MIN_GAIN:g} to {MAX_GAIN:g} in magnitude and offsets at most '
                             f'{MAX_GAIN:g} (reflectance = DN x gain + offset), not gains {gains.min():g} .. '
                             f'{gains.max():g} and offsets {offsets.min():g} .. {offsets.max():g}')
        return cls(gains, offsets)

    @functools.cached_property
    def is_enmap(self):  # (asked per block of bands as tiles decode: two allclose took 0.1 s of a full tile)
        return bool(np.allclose(self.gains, ENMAP_GAIN, rtol=1e-6) and np.allclose(self.offsets, 0.0))

    @property
    def dn_per_unit(self):
        """DN per reflectance unit, one number (the median band's): sizes DN steps from model steps."""
        return float(np.median(1.0 / np.abs(self.gains))) if self.gains.size else DN_PEAK

    def scales_natively(self, dtype):
        """Whether native_to_unit takes a cube of this type: integers that can hold DN_PEAK, at EnMAP's gains."""
        dtype = np.dtype(dtype)
        return self.is_enmap and dtype.kind in 'iu' and np.iinfo(dtype).max >= DN_PEAK

    def native_to_unit(self, cube, rows, out=None):
        """to_unit of the rows `rows` of an integer cube (bands, ...) straight from it, a few bands at a time (the
        values of to_unit(cube[rows].astype(float32)): integers clip exactly, and these convert exactly, without
        the tile-sized float copies between); for the cubes scales_natively takes. out: a float32 array of the
        result's shape to make it in."""
        if not self.scales_natively(cube.dtype):
            raise ValueError(f'native_to_unit takes integer cubes at EnMAP\'s gains, not {cube.dtype}')
        unit = np.empty((len(rows), *cube.shape[1:]), np.float32) if out is None else out
        for start in range(0, len(rows), UNIT_BLOCK_BANDS):
            block = np.take(cube, rows[start:start + UNIT_BLOCK_BANDS], axis=0)
            np.clip(block, 0, int(DN_PEAK), out=block)
            np.multiply(block, np.float32(ENMAP_GAIN), out=unit[start:start + len(block)], dtype=np.float32)
        return unit

    def far_outside(self, dn):
        """How many DN of (bands, n) samples in this set's band order lie further than CLIP_MARGIN outside
        reflectance [0, 1], which the lossy models clip to: real reflectance does not, another scale does."""
        low, high = -CLIP_MARGIN, 1.0 + CLIP_MARGIN
        if self.is_enmap:  # the bounds in DN, without a float copy of the samples
            return int(np.count_nonzero((dn < low * DN_PEAK) | (dn > high * DN_PEAK)))
        unit = self._reflectance(dn)
        return int(np.count_nonzero((unit < low) | (unit > high)))

    def lit(self, dn):
        """How many DN of (bands, n) samples in this set's band order lie above FAINT reflectance: a real image's
        most do, one read at a scale far too small (a gain of 1e-30) none."""
        if self.is_enmap:
            return int(np.count_nonzero(dn > FAINT * DN_PEAK))
        return int(np.count_nonzero(self._reflectance(dn) > FAINT))

    def to_unit(self, dn, overwrite=False):
        """(bands, ...) DN -> float32 reflectance clipped to [0, 1]; overwrite: a float32 dn may be overwritten."""
        if self.is_enmap:
            owned = overwrite and isinstance(dn, np.ndarray) and dn.dtype == np.float32
            unit = np.clip(dn, 0.0, DN_PEAK, out=dn if owned else None)
            unit *= np.float32(ENMAP_GAIN)  # in place: the same products, one tile-sized array fewer
            return unit
        return np.clip(self._reflectance(dn), 0.0, 1.0).astype(np.float32)

    def enmap_dn(self, values):
        """(bands, ...) values -> DN at EnMAP's scale (reflectance x 10000, unclipped): what the metrics measure, so
        that a file's PSNR, SA and errors do not depend on how it stores reflectance; the values themselves when the
        set is at EnMAP's scale. float32 for float32 and 8/16-bit integer values (exact enough for a metric),
        float64 otherwise."""
        if self.is_enmap:
            return values
        dtype = np.float32 if float32_holds(values.dtype) else np.float64
        shape = (-1,) + (1,) * (np.ndim(values) - 1)
        out = values.astype(dtype)
        with np.errstate(over='ignore'):  # a nodata of -3.4e38 reflectance is -inf DN: no metric measures it
            out *= (self.gains * DN_PEAK).astype(dtype).reshape(shape)
            out += (self.offsets * DN_PEAK).astype(dtype).reshape(shape)
        return out

    def _reflectance(self, dn):
        """(bands, ...) DN -> float64 reflectance by each band's gain and offset, unclipped."""
        shape = (-1,) + (1,) * (np.ndim(dn) - 1)
        return np.asarray(dn, np.float64) * self.gains.reshape(shape) + self.offsets.reshape(shape)

    def to_dn(self, unit, out=None):
        """(bands, ...) reflectance -> float32 DN; out: a float32 array of its shape for them (may be `unit`)."""
        if self.is_enmap:
            return np.multiply(unit, np.float32(DN_PEAK), out=out)
        shape = (-1,) + (1,) * (np.ndim(unit) - 1)
        dn = (np.asarray(unit, np.float64) - self.offsets.reshape(shape)) / self.gains.reshape(shape)
        if out is None:
            return dn.astype(np.float32)
        out[...] = dn
        return out


def to_hyspecnet(dn_canonical):
    """The 202 HySpecNet bands as float32 reflectance: DN clipped to 0..10000, divided by 10000.

    `dn_canonical` has shape (224, ...) in canonical order; nodata (-32768) becomes 0 through the clipping,
    as in HySpecNet's own preprocessing.
    """
    cube = np.asarray(dn_canonical)
    if cube.ndim < 1 or cube.shape[0] != N_BANDS:
        raise InputError(f'HySpecNet view needs {N_BANDS} bands in canonical order, '
                         f'got an array of shape {cube.shape}.')
    kept = cube[hyspecnet_keep_mask()].astype(np.float32)
    np.nan_to_num(kept, copy=False, nan=0.0)
    np.clip(kept, 0.0, DN_PEAK, out=kept)
    kept /= np.float32(DN_PEAK)
    return kept


def matches_standard(wavelengths, tol_nm=2.0):
    """True for 224 wavelengths (any order) that match the standard table to within tol_nm."""
    wl = np.asarray(wavelengths, dtype=np.float64)
    if wl.shape != (N_BANDS,) or not np.all(np.isfinite(wl)):
        return False
    return bool(np.max(np.abs(np.sort(wl) - standard_band_table().wavelength_nm)) <= tol_nm)
