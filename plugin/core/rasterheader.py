"""The raster part of a .ehc header, stored compactly.

On a 32 x 32 px tile every kilobyte of header costs 0.04 bpppb, so band tables are stored as integer deltas from
the standard EnMAP table (1/1000 nm), band names as a template when they follow one, the band order only when
it cannot be derived from the wavelengths, and the CRS as an EPSG code when that reproduces the WKT exactly.
Everything still decodes without the original file.
"""
import numpy as np

from .bands import standard_band_table, standard_fwhm, standard_wavelengths

MILLI = 1000.0
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
    if values is None:
        return None
    return [int(v) for v in np.rint((np.asarray(values, float) - reference) * MILLI)]


def _unpack_table(packed, reference):
    if packed is None:
        return None
    return [round(float(r + d / MILLI), 3) for d, r in zip(packed, reference)]


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
    if not wkt:
        return ''
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.ImportFromWkt(wkt) != 0 or srs.AutoIdentifyEPSG() != 0:
        return wkt
    code = srs.GetAuthorityCode(None)
    candidate = osr.SpatialReference()
    if code and candidate.ImportFromEPSG(int(code)) == 0 and candidate.ExportToWkt() == wkt:
        return f'EPSG:{code}'
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
        'wavelengths_milli': _pack_table(raster.wavelengths, wl_ref),
        'fwhm_milli': _pack_table(raster.fwhm, fwhm_ref),
        'band_names': _pack_names(raster.band_names, raster.wavelengths),
        'gains': _uniform(raster.gains), 'offsets': _uniform(raster.offsets),
        'dead_bands': [int(i) for i in np.flatnonzero(dead_bands)],
        'product_name': raster.product_name,
    }


def unpack_raster(packed):
    """The full raster description back: explicit per-band lists, WKT and canonical index."""
    count = packed['band_count']
    canonical = _unpack_order(packed['canonical_index'], count)
    wavelengths = _unpack_table(packed['wavelengths_milli'], _reference(standard_wavelengths(), canonical, count))
    fwhm = _unpack_table(packed['fwhm_milli'], _reference(standard_fwhm(), canonical, count))
    return dict(packed, crs_wkt=_unpack_crs(packed['crs']), canonical_index=[int(i) for i in canonical],
                wavelengths=wavelengths, fwhm=fwhm, band_names=_unpack_names(packed['band_names'], wavelengths),
                gains=_expand(packed['gains'], count), offsets=_expand(packed['offsets'], count))
