"""The raster part of a .ehc header, stored compactly.

On a 32 x 32 px tile every kilobyte of header costs 0.04 bpppb, so band tables are stored as integer deltas from
the standard EnMAP table (1/1000 nm or finer, as a short "delta string", see _pack_table), band names as a template
when they follow one, the band order only when it cannot be derived from the wavelengths, and the CRS as an EPSG
code when that reproduces the WKT exactly.
Everything still decodes without the original file.
"""
import math
import zlib

import numpy as np

from .bands import standard_band_table, standard_fwhm, standard_wavelengths
from .errors import FormatError

# delta-string digits (JSON-safe): 0-31 end a value, 32-63 continue it
DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
ORDERS = '012'  # deltas, their first differences, first differences packed three to a digit (since 3.0)
PRECISIONS = '3456789s'  # decimals of the deltas; 's' (since 3.0): six significant digits of each reference value
ESCAPE = '_'  # in a packed table: the next value is in plain digits
SIGNIFICANT = 6
NAME_TEMPLATES = (
    lambda i, w: f'band {i + 1} ({float(w)} Nanometers)',
    lambda i, w: f'band {i + 1} ({w:g} Nanometers)',
    lambda i, w: f'band {i + 1} ({w:.1f} Nanometers)',
    lambda i, w: f'band {i + 1} ({w:.2f} Nanometers)',
    lambda i, w: f'band {i + 1} ({w:.3f} Nanometers)',
)


def _known_orders(count):
    """Band orders stored by name: product (ascending wavelength) and detector order of the standard table."""
    if count != 224:
        return {'identity': np.arange(count)}
    return {'identity': np.arange(count), 'detector': np.asarray(standard_band_table().detector_order_band) - 1}


def _pack_order(canonical):
    for name, order in _known_orders(len(canonical)).items():
        if np.array_equal(order, canonical):
            return name
    return [int(i) for i in canonical]


def _unpack_order(packed, count):
    return np.asarray(_known_orders(count)[packed] if isinstance(packed, str) else packed, int)


def _reference(values_standard, canonical_index, count):
    """The standard table in the file's band order (zeros when the input is not a standard EnMAP raster)."""
    if count != len(values_standard):
        return np.zeros(count)
    reference = np.empty(count)
    reference[canonical_index] = values_standard
    return reference


def _pack_table(values, reference):
    """A band table as a delta string: order (ORDERS), precision (PRECISIONS: the fewest decimals from 3 on that
    restore every value exactly, 9 at most, or 's' when six significant digits do), then the deltas from the
    standard table in units of the precision as DIGITS; of these the one that deflates shortest."""
    if values is None:
        return None
    values = np.asarray(values, float)
    for decimals in range(3, 10):
        candidates = _table_strings(values, reference, str(decimals))
        if candidates[0] is not None:
            break
    candidates = [c for c in (*candidates, *_table_strings(values, reference, 's')) if c is not None]
    return min(candidates, key=_deflated_length)  # ties: the fixed precision, the older order


def _table_strings(values, reference, precision):
    """The three orders of a table at one precision ([None] * 3 when it does not restore the values, but for 9
    decimals, the finest there is)."""
    decimals = _band_decimals(precision, reference)
    deltas = [int(v) for v in np.rint((values - reference) * 10.0 ** np.asarray(decimals, float))]
    if _table_values(deltas, reference, decimals) != values.tolist() and precision != '9':
        return [None] * 3
    differences = deltas[:1] + [b - a for a, b in zip(deltas, deltas[1:])]
    return [f'0{precision}' + _digits(deltas), f'1{precision}' + _digits(differences),
            f'2{precision}' + _packed_digits(differences)]


def _band_decimals(precision, reference):
    """Decimals of each band: the precision's, or for 's' those that leave six significant digits of the
    reference value (418.2 nm: 3, 1004.21 nm: 2, 6.99561 nm: 5; integers only, so every platform agrees)."""
    if precision != 's':
        return [int(precision)] * len(reference)
    return [min(9, max(0, SIGNIFICANT - len(str(int(abs(float(r))))))) for r in reference]


def _table_values(deltas, reference, decimals):
    return [round(float(r + d / 10.0 ** e), e) for d, r, e in zip(deltas, reference, decimals)]


def _unpack_table(packed, reference):
    """Band table back from a delta string (since 0.2) or a list of deltas in 1/1000 nm (0.1 files)."""
    if packed is None:
        return None
    if not isinstance(packed, str):
        return _table_values(packed, reference, [3] * len(reference))
    if len(packed) < 2 or packed[0] not in ORDERS or packed[1] not in PRECISIONS:
        raise FormatError(f'it starts with an unknown order or precision {packed[:2]!r}')
    if packed[0] == '2':
        deltas = np.cumsum(_unpacked_digits(packed[2:], len(reference))).tolist()
    else:
        deltas = _undigits(packed[2:])
        if len(deltas) != len(reference):
            raise FormatError(f'it has {len(deltas)} entries, expected {len(reference)}')
        deltas = np.cumsum(deltas).tolist() if packed[0] == '1' else deltas
    return _table_values(deltas, reference, _band_decimals(packed[1], reference))


def _deflated_length(text):
    return len(zlib.compress(text.encode(), 9))


def _digits(values):
    """Signed integers as characters of DIGITS: zigzag, then 5-bit groups, least significant first; the 32
    characters from DIGITS[32] on mark a group that more groups follow. Small values take one character."""
    out = []
    for value in values:
        number = _zigzag(value)
        while number >= 32:
            out.append(DIGITS[32 + (number & 31)])
            number >>= 5
        out.append(DIGITS[number])
    return ''.join(out)


def _undigits(text):
    values, number, shift = [], 0, 0
    for char in text:
        digit = DIGITS.find(char)
        if digit < 0 or shift > 60:
            raise FormatError(f'it is corrupt (the character {char!r})' if digit < 0 else 'it is corrupt')
        number |= (digit & 31) << shift
        shift += 5
        if digit < 32:
            values.append(_unzigzag(number))
            number, shift = 0, 0
    if shift:
        raise FormatError('it is truncated')
    return values


def _zigzag(value):
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(number):
    return number // 2 if number % 2 == 0 else -(number + 1) // 2


def _packed_digits(values):
    """Signed integers, three to a digit (9 a + 3 b + c for zigzag values a, b, c below 3: DIGITS 0-26) while they
    are that small, else ESCAPE and one value as _digits writes it; the last digit is padded with zeros."""
    out, start = [], 0
    while start < len(values):
        group = [_zigzag(v) for v in values[start:start + 3]]
        if max(group) < 3:
            group += [0] * (3 - len(group))
            out.append(DIGITS[9 * group[0] + 3 * group[1] + group[2]])
            start += 3
        else:
            out.append(ESCAPE + _digits(values[start:start + 1]))
            start += 1
    return ''.join(out)


def _unpacked_digits(text, count):
    """`count` integers back from _packed_digits' text: every character used, padding only zeros."""
    values, pos = [], 0
    while len(values) < count:
        if pos >= len(text):
            raise FormatError('it is truncated')
        if text[pos] == ESCAPE:
            end = pos + 1
            while end < len(text) and DIGITS.find(text[end]) >= 32:
                end += 1
            values += _undigits(text[pos + 1:end + 1])
            pos = end + 1
            continue
        digit = DIGITS.find(text[pos])
        if not 0 <= digit < 27:
            raise FormatError(f'it is corrupt (the character {text[pos]!r})')
        values += [_unzigzag(digit // 9), _unzigzag(digit // 3 % 3), _unzigzag(digit % 3)]
        pos += 1
    if pos < len(text) or any(values[count:]):
        raise FormatError('it is corrupt (more values than bands)')
    return values[:count]


def _pack_names(names, wavelengths):
    for number, template in enumerate(NAME_TEMPLATES):
        if all(name == template(i, w) for i, (name, w) in enumerate(zip(names, wavelengths))):
            return number
    return list(names)


def _unpack_names(packed, wavelengths):
    if isinstance(packed, int):
        return [NAME_TEMPLATES[packed](i, w) for i, w in enumerate(wavelengths)]
    return list(packed)


def _pack_crs(wkt):
    """'EPSG:<code>' when that reproduces the WKT exactly, else the WKT (also when OSR cannot tell, in either of
    its exception modes: a CRS without an EPSG code raises when someone turned osr.UseExceptions() on)."""
    if not wkt:
        return ''
    from osgeo import osr

    from .gdalerrors import GdalError, checked

    try:
        with checked():
            srs = osr.SpatialReference()
            if srs.ImportFromWkt(wkt) != 0 or srs.AutoIdentifyEPSG() != 0:
                return wkt
            code = srs.GetAuthorityCode(None)
            candidate = osr.SpatialReference()
            if code and code.isdigit() and candidate.ImportFromEPSG(int(code)) == 0 and candidate.ExportToWkt() == wkt:
                return f'EPSG:{code}'
    except GdalError:
        pass
    return wkt


def _unpack_crs(packed):
    if not packed.startswith('EPSG:'):
        return packed
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(int(packed[5:]))
    return srs.ExportToWkt()


def _short_number(value):
    """An integral float as an int (JSON without '.0'; read back as float), unless it is -0.0 or beyond 2^53."""
    value = float(value)
    if value.is_integer() and abs(value) < 2 ** 53 and (value != 0 or math.copysign(1, value) > 0):
        return int(value)
    return value


def _uniform(values):
    """One number when every band has the same value (gain, offset), else the list."""
    values = [float(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def _expand(value, count):
    return list(value) if isinstance(value, list) else [float(value)] * count


def pack_raster(raster, dead_bands):
    """Header dict of a SpectralRaster (file band order)."""
    count = raster.band_count
    canonical = np.asarray(raster.canonical_index, int)
    wl_ref = _reference(standard_wavelengths(), canonical, count)
    fwhm_ref = _reference(standard_fwhm(), canonical, count)
    return {
        'width': raster.width, 'height': raster.height, 'band_count': count,
        'dtype': np.dtype(raster.dtype).name, 'nodata': raster.nodata, 'crs': _pack_crs(raster.crs_wkt),
        'geotransform': [_short_number(v) for v in raster.geotransform], 'band_order': raster.band_order,
        'canonical_index': _pack_order(canonical),
        'wavelengths_delta': _pack_table(raster.wavelengths, wl_ref),
        'fwhm_delta': _pack_table(raster.fwhm, fwhm_ref),
        'band_names': _pack_names(raster.band_names, raster.wavelengths),
        'gains': _uniform(raster.gains), 'offsets': _uniform(raster.offsets),
        'dead_bands': [int(i) for i in np.flatnonzero(dead_bands)],
        'product_name': raster.product_name,
        **_pack_control(raster),
    }


def _pack_control(raster):
    """Ground control points ([pixel, line, x, y, z] each, with their CRS) and RPC metadata, only when the raster
    has them (since 0.5.4; older readers ignore both); the pixel-is-point flag and the bands an ENVI bad band list
    flags, only when set (since 0.7.4; older readers ignore them too)."""
    packed = {}
    if raster.pixel_is_point:
        packed['pixel_is_point'] = True
    if raster.bad_bands:
        packed['bad_bands'] = sorted(int(i) for i in raster.bad_bands)
    if raster.gcps:
        packed['gcps'] = {'crs': _pack_crs(raster.gcp_crs_wkt),
                          'points': [[_short_number(v) for v in point] for point in raster.gcps]}
    if raster.rpc:
        packed['rpc'] = {str(k): str(v) for k, v in sorted(raster.rpc.items())}
    return packed


def _unpacked_table(packed, name, reference):
    """A band table as stored, `<name>_delta` (a delta string, since 0.2) or `<name>_milli` (a list, 0.1), back as
    values; FormatError naming the field."""
    for key in (f'{name}_delta', f'{name}_milli'):
        if key in packed:
            try:
                return _unpack_table(packed[key], reference)
            except FormatError as exc:
                raise FormatError(f'the header field raster.{key} is not a valid band table: {exc}') from exc
    raise FormatError(f'the header field raster.{name}_delta is missing')


def unpack_raster(packed):
    """The full raster description back: explicit per-band lists, WKT and canonical index."""
    count = packed['band_count']
    canonical = _unpack_order(packed['canonical_index'], count)
    wavelengths = _unpacked_table(packed, 'wavelengths', _reference(standard_wavelengths(), canonical, count))
    fwhm = _unpacked_table(packed, 'fwhm', _reference(standard_fwhm(), canonical, count))
    unpacked = dict(packed, crs_wkt=_unpack_crs(packed['crs']), canonical_index=[int(i) for i in canonical],
                    wavelengths=wavelengths, fwhm=fwhm, band_names=_unpack_names(packed['band_names'], wavelengths),
                    gains=_expand(packed['gains'], count), offsets=_expand(packed['offsets'], count))
    if 'gcps' in packed:
        unpacked['gcps'] = [tuple(float(v) for v in point) for point in packed['gcps']['points']]
        unpacked['gcp_crs_wkt'] = _unpack_crs(packed['gcps']['crs'])
    if 'geotransform' in packed:  # validated files always have one
        unpacked['geotransform'] = [float(v) for v in packed['geotransform']]  # 3.x stores integral ones as ints
    return unpacked
