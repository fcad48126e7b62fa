"""`info` and `verify`: what a .ehc file holds, and whether every tile decodes (and matches its original)."""
import os
import time

import numpy as np

from ..core import codec, ehcinfo
from ..core.bands import Radiometry, hyspecnet_keep_mask
from ..core.codecheader import CodecInfo
from ..core.ehcinfo import coding_mode
from ..core.enmap import open_spectral
from ..core.errors import InputError, ModelError
from ..core.metrics import MetricsAccumulator
from ..core.runtime import sha256_of
from ..core.tiling import Progress, valid_pixels
from ..core.validation import check_coder, open_checked


def model_state(codec_info):
    """'installed', 'missing' or 'different version installed' for the model a file needs (codec_info: its
    header's codec object, checked by open_checked)."""
    info = CodecInfo.from_json(codec_info, 'the file')
    try:
        package = codec.find_package(info)
    except ModelError:
        return 'missing'
    return 'installed' if info.made_with(package.decoder_sha256()) else 'different version installed'


def _crs_label(packed):
    if not packed or packed.startswith('EPSG:'):
        return packed or 'none'
    from osgeo import osr

    srs = osr.SpatialReference()
    return srs.GetName() if srs.ImportFromWkt(packed) == 0 and srs.GetName() else 'custom (WKT)'


def describe(path):
    """Everything `info` shows, as a JSON-ready dict: the core's summary (ehcinfo), the CRS by name and whether the
    model the file needs is installed."""
    info = ehcinfo.describe(path)
    return {**info.to_json(), 'crs': _crs_label(info.crs), 'model_state': model_state(info.codec)}


def _tiles(count):
    return f'{count} tile' + ('s' if count != 1 else '')


def describe_text(d):
    from .console import key_values

    bound = {'lossy': f'quality {d["quality"]}', 'lossless': 'lossless (MAX_ERROR 0)',
             'error-bounded': f'error {d["bound"]} (base quality {d["quality"]})'}[d['mode']]
    rate = f'{d["bpppb"]:.4f} bpppb, ratio {d["compression_ratio"]:.1f}:1' if d['bpppb'] is not None else ''
    software = ', '.join(f'{k} {v}' for k, v in d['software'].items())
    wl = d['wavelength_range_nm']
    return key_values([
        ('file', d['file']), ('size', f'{d["file_bytes"]:,} bytes in {_tiles(d["tiles"])} (container '
                                      f'{d["container_version"]})'),
        ('model', f'{d["model"]} ({d["model_kind"]}, {d["model_state"]})'), ('model sha256', d['model_sha256']),
        ('mode', bound), ('image', f'{d["width"]} x {d["height"]} pixels, {d["bands"]} bands, {d["dtype"]}, '
                                   f'nodata {d["nodata"]}'),
        ('wavelengths', f'{wl[0]:.1f}-{wl[1]:.1f} nm, {d["band_order"]} order' if wl else ''),
        ('dead bands', d['dead_bands']), ('crs', d['crs']), ('geotransform', d['geotransform']),
        ('product', d['product_name']), ('rate', rate), ('valid pixels', d['valid_pixels']),
        ('created', d['created']), ('software', software),
    ])


# --- verify -------------------------------------------------------------------------------------------------

def verify(path, against=None, device='auto', threads=None, progress=None):
    """Check every checksum and decode every tile; with `against` (the original in any input form), measure the
    decoded image against it and check the file's promise (the bound, or bit-exactness when lossless).

    Returns a dict with 'ok'; raises FormatError for a damaged file, InputError for an unusable original.
    """
    started = time.perf_counter()
    reader, checked = open_checked(path)  # every header and index field checked first (core/validation.py)
    with reader:
        reader.verify()  # every CRC before any decoding
        coder, _ = codec.decoder_for(checked.codec, device, threads, checked.raster,
                                     reader.version >= codec.COMPACT_SINCE, path)
        check_coder(checked, coder, path)
        raster = checked.raster
        steps = Progress(reader.chunk_count, progress)
        comparison = _Comparison(against, raster, coder) if against else None
        try:
            for tile, canonical in codec.decoded_tiles(reader, coder, raster):
                if comparison is not None:
                    comparison.update(tile, canonical)
                steps.step()
        finally:
            if comparison is not None:
                comparison.close()
        result = {'file': os.path.abspath(path), 'tiles': reader.chunk_count, 'checksums': 'ok', 'decoded': 'ok',
                  'mode': coding_mode(coder.bound), 'max_error': coder.max_error,
                  'bound': coder.bound.describe() if coder.bound else None,
                  'sha256': sha256_of(path), 'ok': True}
    if comparison is not None:
        result.update(comparison.result())
    result['seconds'] = time.perf_counter() - started
    return result


def _bit_equal(a, b):
    """Whether two arrays hold the same values bit for bit (NaN samples included, which == never matches)."""
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.dtype.kind == 'f':
        unsigned = np.dtype(f'u{a.dtype.itemsize}')
        return bool(np.array_equal(a.view(unsigned), b.view(unsigned)))
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == 'f' or b.dtype.kind == 'f'))


class _Comparison:
    """Streams decoded tiles against the original: the metrics of `evaluate`, bit-exactness and the file's bound."""

    def __init__(self, source, raster, coder):
        self.original = open_spectral(source)
        shape = (self.original.width, self.original.height, self.original.band_count)
        expected = (raster['width'], raster['height'], raster['band_count'])
        if shape != expected:
            self.original.close()
            raise InputError(f'{source} is {shape[0]} x {shape[1]} x {shape[2]}, but the file holds an image of '
                             f'{expected[0]} x {expected[1]} x {expected[2]}; is it the original of this file?')
        self.source, self.bound = source, coder.bound
        dead = np.zeros(raster['band_count'], bool)
        dead[np.asarray(raster['dead_bands'], int)] = True
        self.dead = dead[np.asarray(raster['canonical_index'], int)]
        self.evaluated = hyspecnet_keep_mask() & ~self.dead
        restored = np.zeros(raster['band_count'], bool)
        restored[coder.bands] = True
        self.promised = restored & ~self.dead  # the bands whose samples the file's bound covers
        self.nodata = raster['nodata']
        self.metrics = MetricsAccumulator()
        bands = self.original.canonical_radiometry  # measured as evaluate does: in DN at EnMAP's scale
        self.radiometry = Radiometry.of(bands.gains[self.evaluated], bands.offsets[self.evaluated])
        self.exact, self.worst_promised, self.worst_excess = True, 0.0, 0.0

    def update(self, tile, decoded):
        a = self.original.read_canonical(tile.x, tile.y, tile.width, tile.height)
        self.original.done_with(tile)
        self.exact = self.exact and _bit_equal(a, decoded)
        a, b = a.astype(np.float64), decoded.astype(np.float64)
        valid = valid_pixels(a, self.nodata, ~self.dead)
        self.metrics.update(self.radiometry.enmap_dn(a[self.evaluated]), self.radiometry.enmap_dn(b[self.evaluated]),
                            valid)
        if valid.any() and self.bound is not None and self.promised.any():
            original = a[self.promised][:, valid]
            diff = np.abs(original - b[self.promised][:, valid])
            excess = diff - self.bound.limits(original, np.flatnonzero(self.promised))
            self.worst_promised = max(self.worst_promised, float(diff.max()))
            self.worst_excess = max(self.worst_excess, float(excess.max()))

    def close(self):
        self.original.close()

    def result(self):
        metrics = self.metrics.result()
        held = self.worst_excess <= 0
        result = {'against': os.path.abspath(self.source), 'exact': bool(self.exact), 'psnr': metrics['psnr'],
                  'sa_deg': metrics['sa_deg'], 'ssim': metrics['ssim'], 'rmse_dn': metrics['rmse_dn'],
                  'max_abs_error': metrics['max_abs_error_dn'], 'bound_held': held, 'ok': held}
        if not held:
            promise = 'bit-exact' if self.bound.lossless else f'an error {self.bound.describe()}'
            result['error'] = (f'the file promises {promise} but differs from {self.source} by up to '
                               f'{self.worst_promised:g} DN; is it the original of this file?')
        return result


def verify_text(r):
    from .console import key_values

    pairs = [('file', r['file']), ('checksums', f'{_tiles(r["tiles"])}, all ok'), ('decoded', 'every tile'),
             ('mode', r['mode'] + (f' ({r["bound"]})' if r['mode'] == 'error-bounded' else ''))]
    if 'against' in r:
        pairs += [('against', r['against']), ('bit-exact', 'yes' if r['exact'] else 'no'),
                  ('psnr', f'{r["psnr"]:.2f} dB'),
                  # (over the evaluated bands, as evaluate: not the bands a bounded file codes, nor in its units)
                  ('max error', f'{r["max_abs_error"]:g} DN at EnMAP scale ({codec.CODED_BAND_COUNT} HySpecNet bands '
                                'less dead ones)'),
                  ('spectral angle', f'{r["sa_deg"]:.4f} deg')]
    pairs.append(('result', 'OK' if r['ok'] else 'FAILED: ' + r.get('error', '')))
    return key_values(pairs)

