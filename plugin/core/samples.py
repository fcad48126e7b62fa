"""Samples that no model ever sees, restored one by one: NaN and ±Inf in float rasters, and in lossless mode
every sample the decoder would not otherwise reproduce bit for bit.

Before a tile is coded its non-finite samples are replaced by a neutral value (the rounded median of the band's
finite samples at the window's valid pixels), so NaN never reaches a model, a quantiser or an entropy coder.
The tile's *sample section* (docs/format.md) lists the positions and original values the decoder writes back
over its output:

- every file: the non-finite samples and the lone nodata samples (lone_nodata; replaced before the model like NaN)
  of restored bands at valid pixels, and in error-bounded files the samples whose value within the bound would
  read as nodata, or that held it (nodata_flips), or that the raster's type would round (unheld);
- lossless (MAX_ERROR = 0) files: those, plus every sample that would otherwise come back as the fill value
  although it differs from it (NaN where the nodata value is numeric, a mix of NaN and nodata in a nodata pixel,
  a NaN of another sign or payload, -0.0, data in a band flagged dead), so the output equals the input bit for
  bit.

Pixels that are nodata or non-finite in every live band are nodata pixels, written as the fill value: the nodata
value, NaN for float rasters that declare none, 0 for integer rasters that declare none.
"""
import struct
import zlib

import numpy as np

from .errors import FormatError, InputError

SECTION_VERSION = 1
_HEAD = struct.Struct('<BI')  # version, sample count; then zlib(u32 position deltas, values in the raster dtype)
EXACT_LIMIT = 2 ** 23  # |DN| of an error-bounded input: float32 model paths hold these integers (their residuals,
# up to 2^23 + BASE_LIMIT, are formed in int64: bounds.integer_residual)


def fill_value(dtype, nodata):
    """What nodata pixels, dead and unrestored bands are written as."""
    if nodata is not None:
        return nodata
    return float('nan') if np.dtype(dtype).kind == 'f' else 0


def _nonfinite(cube):
    return ~np.isfinite(cube) if cube.dtype.kind == 'f' else np.zeros(cube.shape, bool)


def model_input(cube, valid, dead, lone=None):
    """float32 copy of a window (bands, h, w) for the models: non-finite samples and those of `lone` (lone_nodata)
    replaced by a neutral value, dead bands 0, finite values beyond float32's range clipped (they cannot be coded
    exactly anyway)."""
    limit = np.finfo(np.float32).max
    out = np.clip(cube, -limit, limit).astype(np.float32) if cube.dtype == np.float64 else cube.astype(np.float32)
    bad = ~np.isfinite(cube) if cube.dtype.kind == 'f' else None
    if lone is not None:
        bad = lone if bad is None else bad | lone
    if bad is not None:
        for band, value in neutral_values(cube, valid, bad):
            out[band][bad[band]] = value
    out[dead] = 0.0
    return out


def nodata_marker(dtype, nodata):
    """The value of `dtype` a sample equal to nodata holds, to compare arrays of that type with (an integer array
    compared with a float is converted to float64 first: 4-5 times as long), or None when no sample can be
    nodata (none declared, NaN, a fraction or a value out of an integer type's range)."""
    dtype = np.dtype(dtype)
    if nodata is None or np.isnan(nodata):
        return None
    if dtype.kind not in 'iu':
        return nodata
    info = np.iinfo(dtype)
    if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
        return None
    return dtype.type(int(nodata))


def _holds(cube, marker, bands_at_once=8):
    """Whether a (bands, h, w) cube holds `marker`, a few bands at a time into one small mask: most windows hold
    none, and a mask of the whole cube streamed 15 MB a 256 px tile through memory twice (1.4 ms against 2.6)."""
    mask = np.empty((min(bands_at_once, len(cube)),) + cube.shape[1:], bool)
    for start in range(0, len(cube), bands_at_once):
        part = mask[:min(bands_at_once, len(cube) - start)]
        if np.equal(cube[start:start + bands_at_once], marker, out=part).any():
            return True
    return False


def lone_nodata(cube, valid, nodata, bands):
    """Samples equal to nodata at valid pixels of a window (bands, h, w), in the bands `bands` (bool per band: the
    restored ones), or None where there are none. A lossy model would code each as a spike (0 reflectance, bits it
    pays for, blur around it) and give back a model value where the input said no data: compress replaces them
    before the model and restores them exactly."""
    marker = nodata_marker(cube.dtype, nodata)
    if marker is None or not _holds(cube, marker):
        return None
    lone = cube == marker
    lone &= valid
    lone[~bands] = False
    return lone if lone.any() else None


def nodata_flips(native, exact, bands, restored, valid, nodata):
    """Flat positions (in the tile's (bands, h, w) order) of the samples whose decoded value reads as nodata while
    the input's does not, or the other way round, at valid pixels of `restored` bands (bool per band): `exact`
    (len(bands), valid pixels), an error-bounded tile's reconstruction (integer-valued floats) of the canonical
    rows `bands`. A value within the bound can be the nodata value (nodata 0, dark water, MAX_ERROR 2), and a
    nodata sample's value within the bound is not nodata: these are restored exactly."""
    if nodata is None or np.isnan(nodata):
        return np.zeros(0, np.int64)
    found = []
    reads = _reads_nodata(exact, native.dtype, nodata)
    if reads.any():  # (rare: a scan of a bool array costs a fraction of a nonzero())
        found.append(_positions(reads, bands, restored, valid))
    was = lone_nodata(native, valid, nodata, restored)
    if was is not None:
        found.append(np.flatnonzero(was))
    if len(found) < 2:
        return found[0] if found else np.zeros(0, np.int64)
    return np.setxor1d(*found, assume_unique=True)


def unheld(native, exact, bands, restored, valid):
    """Flat positions (as nodata_flips) of the samples whose value within the bound `exact` the raster's type
    rounds: float32 holds integers up to 2^24 only, and a bound over 2^23 DN reaches beyond (written, a value at
    the bound's edge moved one DN past it); float16 (a Zarr array's) holds them up to 2^11 only, below any
    EnMAP reflectance. Integer types clip towards the input's own range, float64 holds every value: none there."""
    kind = native.dtype
    whole = 2 ** (np.finfo(kind).nmant + 1) if kind.kind == 'f' and kind.itemsize < 8 else None  # (every integer
    # up to this is held)
    if whole is None or not exact.size or (exact.min() >= -whole and exact.max() <= whole):
        return np.zeros(0, np.int64)
    return _positions(exact.astype(kind) != exact, bands, restored, valid)


def _positions(found, bands, restored, valid):
    """Flat positions in a tile's (bands, h, w) order of `found` (len(bands), valid pixels) in `restored` bands."""
    bands = np.asarray(bands, np.int64)
    rows, columns = np.nonzero(found)
    kept = restored[bands[rows]]
    return bands[rows[kept]] * valid.size + np.flatnonzero(valid.reshape(-1))[columns[kept]]


def _reads_nodata(exact, dtype, nodata):
    """Where integer-valued float DN read as nodata once written in `dtype` (clipped into an integer type's range,
    as geotiff.output_values does)."""
    if dtype.kind in 'iu':
        info = np.iinfo(dtype)
        if nodata == info.min:
            return exact <= nodata
        if nodata == info.max:
            return exact >= nodata
    return exact == nodata


def neutral_values(cube, valid, bad):
    """(band, value) for each band holding `bad` samples: the rounded median of its other valid samples (0 when
    there are none), what model_input puts in their place."""
    for band in np.flatnonzero(bad.any(axis=(1, 2))):
        good = valid & ~bad[band]
        yield band, np.rint(np.median(cube[band][good])) if good.any() else 0.0


def _same(a, b):
    """Elementwise bit-level sameness as the output shows it: -0.0 differs from 0.0, and a NaN of another sign or
    payload from the fill value's NaN (numpy's 0 / 0 is -NaN on x86: it came back as +NaN from a lossless file)."""
    if a.dtype.kind != 'f':
        return a == b
    bits = np.dtype(f'u{a.dtype.itemsize}')
    return a.view(bits) == np.asarray(b, a.dtype).view(bits)


def overrides(native, restored, valid, fill, lossless, lone=None):
    """Flat positions (in the tile's (bands, h, w) canonical order) and original values the decoder must write
    back. native: the tile's samples as read; restored: bool per band that the file codes (not dead); valid: the
    tile's pixel mask; lone: lone_nodata's samples of the tile, of restored bands at valid pixels (restored in
    every mode)."""
    if native.dtype.kind != 'f' and lone is not None and not lossless:
        positions = np.flatnonzero(lone)
        return positions, native.reshape(-1)[positions]
    if native.dtype.kind == 'f':
        differ = ~np.isfinite(native)
        if lossless:
            differ |= (native == 0) & np.signbit(native)  # -0.0 would come back as 0.0
        if lone is not None:
            differ |= lone
        differ[~restored] = False
        differ[:, ~valid] = False
    elif lossless:
        differ = np.zeros(native.shape, bool) if lone is None else lone.copy()
    else:
        return np.zeros(0, np.int64), native.reshape(-1)[:0]
    if lossless:  # the samples the decoder fills: dead and unrestored bands, nodata pixels
        fill = np.asarray(fill, native.dtype)
        differ[:, ~valid] = ~_same(native[:, ~valid], fill)
        differ[~restored] = ~_same(native[~restored], fill)
    positions = np.flatnonzero(differ)
    return positions, native.reshape(-1)[positions]


def check_exact_range(native, restored, valid, band_numbers, lone=None):
    """Error-bounded coding needs DN that float32 holds exactly: integers within ±EXACT_LIMIT, checked in the
    image's own type (a float64 800.000000001 is 800 in float32: it passed as an integer and came back as 800 from
    a lossless file); raise InputError naming the bands otherwise. lone: lone_nodata's samples of the tile, which
    are no DN (restored exactly, in the sample section)."""
    if native.dtype.itemsize <= 2 and native.dtype.kind in 'iu':
        return
    values = native[restored][:, valid]
    data = True if lone is None else ~lone[restored][:, valid]
    if values.dtype.kind == 'f':
        finite = np.isfinite(values) & data  # (NaN and ±Inf are kept exactly, in the sample section)
        fractional = finite & (values != np.rint(values))
        if fractional.any():
            bands = np.asarray(band_numbers)[restored][fractional.any(axis=1)]
            raise InputError(f'an error bound needs integer DN values, but {int(fractional.sum())} samples in '
                             f'band{"s" if bands.size > 1 else ""} {describe_bands(bands)} hold fractional values; '
                             'compress this image without MAX_ERROR.')
        outside = finite & (np.abs(values) > EXACT_LIMIT)
    else:
        outside = (np.abs(values.astype(np.float64)) > EXACT_LIMIT) & data
    if outside.any():
        per_band = outside.sum(axis=1)
        bands = np.asarray(band_numbers)[restored][per_band > 0]
        raise InputError(f'MAX_ERROR needs DN values within ±{EXACT_LIMIT}, but {int(per_band.sum())} samples in '
                         f'band{"s" if bands.size > 1 else ""} {describe_bands(bands)} lie outside that range; '
                         'compress this image without MAX_ERROR.')


def describe_bands(numbers, shown=8):
    numbers = [int(n) for n in numbers]
    text = ', '.join(str(n) for n in numbers[:shown])
    return text + (f' and {len(numbers) - shown} more' if len(numbers) > shown else '')


def count_nonfinite(native, valid):
    """Non-finite samples per band at valid pixels (for the warning that tells the user they were kept)."""
    if native.dtype.kind != 'f':  # integers are finite: no tile-sized scan (it took 8 % of an rdnet compress)
        return np.zeros(native.shape[0], np.int64)
    return _nonfinite(native)[:, valid].sum(axis=1)


# --- the tile's sample section -------------------------------------------------------------------------------

def pack(positions, values, dtype):
    """The sample section: positions ascending (u32 each, stored as differences), values in the raster dtype."""
    positions = np.asarray(positions, np.int64)
    if positions.size and positions[-1] >= 2 ** 32:
        raise InputError('a tile is too large for its sample positions; choose a smaller tile size')
    deltas = np.diff(positions, prepend=0).astype('<u4')
    body = deltas.tobytes() + np.asarray(values, np.dtype(dtype).newbyteorder('<')).tobytes()
    return _HEAD.pack(SECTION_VERSION, positions.size) + zlib.compress(body, 9)


def unpack(data, shape, dtype):
    """(positions, values) of a sample section, checked against the tile's shape before anything is allocated."""
    dtype = np.dtype(dtype).newbyteorder('<')
    try:
        version, count = _HEAD.unpack_from(data, 0)
    except struct.error as exc:
        raise FormatError('a tile\'s sample section is truncated') from exc
    if version != SECTION_VERSION:
        raise FormatError(f'a tile\'s sample section has version {version} (expected {SECTION_VERSION})')
    total = int(np.prod(shape))
    if count > total:
        raise FormatError(f'a tile\'s sample section lists {count} samples, more than the tile holds ({total})')
    size = count * (4 + dtype.itemsize)
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(bytes(data[_HEAD.size:]), size + 1)
    except zlib.error as exc:
        raise FormatError('a tile\'s sample section is corrupt') from exc
    if len(body) != size or not inflater.eof or inflater.unused_data:
        raise FormatError('a tile\'s sample section has the wrong length')
    positions = np.cumsum(np.frombuffer(body, '<u4', count).astype(np.int64))
    if count and (positions[-1] >= total or (count > 1 and (np.diff(positions) <= 0).any())):
        raise FormatError('a tile\'s sample section lists positions outside the tile or out of order')
    return positions, np.frombuffer(body, dtype, count, offset=4 * count)


def restore(canonical, section):
    """Write a tile's sample section back over its decoded canonical cube (in place)."""
    positions, values = unpack(section, canonical.shape, canonical.dtype)
    canonical.flat[positions] = values
