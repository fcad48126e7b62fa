"""The raster part of a .ehc header, stored compactly.

On a 32 x 32 px tile every kilobyte of header costs 0.04 bpppb, so band tables are stored as integer deltas from
the standard EnMAP table (1/1000 nm or finer, as a short "delta string", see _pack_table), band names as a template
when they follow one, the band order only when it cannot be derived from the wavelengths, and the CRS as an EPSG
code when that reproduces the WKT exactly.
Everything still decodes without the original file.
"""
import zlib

import numpy as np

from .bands import standard_band_table, standard_fwhm, standard_wavelengths
from .errors import FormatError

# delta-string digits (JSON-safe): 0-31 end a value, 32-63 continue it
DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
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
    """A band table as a delta string: order ('0' deltas from the standard table, '1' their first differences,
    whichever is shorter), decimals e (the fewest from 3 on that restore every value exactly; 9 at most), then
    the deltas in units of 10^-e nm as DIGITS."""
    if values is None:
        return None
    values = np.asarray(values, float)
    for decimals in range(3, 10):
        deltas = [int(v) for v in np.rint((values - reference) * 10.0 ** decimals)]
        if _table_values(deltas, reference, decimals) == values.tolist():
            break
    first_differences = deltas[:1] + [b - a for a, b in zip(deltas, deltas[1:])]
    return min((f'0{decimals}' + _digits(deltas), f'1{decimals}' + _digits(first_differences)),
               key=_deflated_length)


def _table_values(deltas, reference, decimals):
    return [round(float(r + d / 10.0 ** decimals), decimals) for d, r in zip(deltas, reference)]


def _unpack_table(packed, reference):
    """Band table back from a delta string (since 0.2) or a list of deltas in 1/1000 nm (0.1 files)."""
    if packed is None:
        return None
    if not isinstance(packed, str):
        return _table_values(packed, reference, 3)
    if len(packed) < 2 or packed[0] not in '01' or packed[1] not in '3456789':
        raise FormatError(f'a band table in the header starts with an unknown order or precision {packed[:2]!r}')
    deltas = _undigits(packed[2:])
    if len(deltas) != len(reference):
        raise FormatError(f'a band table in the header has {len(deltas)} entries, expected {len(reference)}')
    return _table_values(np.cumsum(deltas).tolist() if packed[0] == '1' else deltas, reference, int(packed[1]))


def _deflated_length(text):
    return len(zlib.compress(text.encode(), 9))


def _digits(values):
    """Signed integers as characters of DIGITS: zigzag, then 5-bit groups, least significant first; the 32
    characters from DIGITS[32] on mark a group that more groups follow. Small values take one character."""
    out = []
    for value in values:
        number = 2 * value if value >= 0 else -2 * value - 1
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
            raise FormatError('a band table in the header is corrupt')
        number |= (digit & 31) << shift
        shift += 5
        if digit < 32:
            values.append(number // 2 if number % 2 == 0 else -(number + 1) // 2)
            number, shift = 0, 0
    if shift:
        raise FormatError('a band table in the header is truncated')
    return values


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
        'geotransform': [float(v) for v in raster.geotransform], 'band_order': raster.band_order,
        'canonical_index': _pack_order(canonical),
        'wavelengths_delta': _pack_table(raster.wavelengths, wl_ref),
        'fwhm_delta': _pack_table(raster.fwhm, fwhm_ref),
        'band_names': _pack_names(raster.band_names, raster.wavelengths),
        'gains': _uniform(raster.gains), 'offsets': _uniform(raster.offsets),
        'dead_bands': [int(i) for i in np.flatnonzero(dead_bands)],
        'product_name': raster.product_name,
    }


def _table_of(packed, name):
    """A band table as stored: `<name>_delta` (a delta string, since 0.2) or `<name>_milli` (a list, 0.1)."""
    for key in (f'{name}_delta', f'{name}_milli'):
        if key in packed:
            return packed[key]
    raise FormatError(f'the header has no {name} table')


def unpack_raster(packed):
    """The full raster description back: explicit per-band lists, WKT and canonical index."""
    count = packed['band_count']
    canonical = _unpack_order(packed['canonical_index'], count)
    wavelengths = _unpack_table(_table_of(packed, 'wavelengths'), _reference(standard_wavelengths(), canonical, count))
    fwhm = _unpack_table(_table_of(packed, 'fwhm'), _reference(standard_fwhm(), canonical, count))
    return dict(packed, crs_wkt=_unpack_crs(packed['crs']), canonical_index=[int(i) for i in canonical],
                wavelengths=wavelengths, fwhm=fwhm, band_names=_unpack_names(packed['band_names'], wavelengths),
                gains=_expand(packed['gains'], count), offsets=_expand(packed['offsets'], count))
