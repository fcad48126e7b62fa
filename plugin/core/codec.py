"""Compress, decompress and evaluate: one pipeline for every model.

read (canonical order) -> tile -> model transform -> quantise -> entropy-code -> .ehc chunk, and back.
Every call streams tile by tile, reports progress, honours cancellation and writes its outputs atomically.
"""
import contextlib
import logging
import os
import platform
import struct
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..paths import MODELS_DIR
from . import bandstream, entropy, residual, samples, spectral
from .bands import DN_PEAK, N_BANDS, N_HYSPECNET, Radiometry, band_set
from .bounds import ErrorBound, UniformQuantiser, error_bound, uniform_bound
from .container import EhcWriter
from .enmap import SpectralRaster, open_spectral
from .errors import EnmapCompressError, FormatError, InputError, ModelNotFoundError, OutputError
from .geotiff import BandInfo, GeoTiffWriter, RasterLayout, output_values
from .latent import make_latent_coder
from .metrics import rate_metrics
from .outputs import atomic_output, check_writable
from .prediction import decode_predicted, encode_predicted
from .rasterheader import pack_raster, unpack_raster
from .runtime import OnnxRunner, default_model_id, find_model, list_models
from .tiling import Progress, Tile, tile_grid
from .transforms import make_transform
from .validation import MAX_TILE_SIZE, check_coder, open_checked

LOG = logging.getLogger('enmap_compress')
FORMAT_NAME = 'ehc'
CODED_BAND_COUNT = N_HYSPECNET
CHUNK_VERSION = 2  # 2: spatially predicted latent and extra-band sections
CHUNK_VERSION_SAMPLES = 3  # 3: as 2, plus a last section of samples restored one by one (samples.py)
CHUNK_VERSION_BOUNDS = 4  # 4: as 3 (the last section may be empty), residuals under codec.error_bound (bounds.py)
DEFAULT_TILE = 256  # pixel models; spatial models bring their own tile size
BOUNDED_TILE = 128  # the default tile size of error-bounded and lossless files
BAND_GAINS = 'band-gains'  # codec info `radiometry`: models saw reflectance = DN x gain + offset of each band
QUALITY_LEVELS = tuple(range(1, 11))
EXTRA_PREDICTED, EXTRA_SPECTRAL = 'predicted', 'spectral-v1'  # codec.extra_coder (absent: predicted)
RESIDUAL_PLAIN, RESIDUAL_PREDICTED = 'plain', 'predicted-v1'  # codec.residual_coder (absent: plain)
STAGE_SHARE = 0.2  # of a compress run, unpacking a deflated ZIP member takes about this much (measured: 15-25 %)


def software_versions():
    from .. import __version__ as plugin_version

    versions = {'enmap_compress': plugin_version, 'python': platform.python_version(), 'numpy': np.__version__,
                'platform': f'{platform.system()} {platform.machine()}'}  # informative: short (every byte counts)
    try:
        import onnxruntime

        versions['onnxruntime'] = onnxruntime.__version__
    except ImportError:
        pass
    return versions


# --- chunk payload: length-prefixed sections --------------------------------------------------------------

def pack_sections(sections, sample_section=None, bounds=False):
    """A tile's payload; tiles with a sample section get version 3, tiles coded under a per-band or relative
    error bound version 4 (sample section last, possibly empty), so older readers refuse them clearly."""
    if bounds:
        version, sections = CHUNK_VERSION_BOUNDS, [*sections, sample_section or b'']
    else:
        version = CHUNK_VERSION if sample_section is None else CHUNK_VERSION_SAMPLES
        sections = list(sections) if sample_section is None else [*sections, sample_section]
    head = struct.pack('<BH', version, len(sections)) + b''.join(struct.pack('<I', len(s)) for s in sections)
    return head + b''.join(sections)


def unpack_sections(payload):
    """(sections, the sample section or None) of a tile payload."""
    try:
        version, count = struct.unpack_from('<BH', payload, 0)
        if version not in (CHUNK_VERSION, CHUNK_VERSION_SAMPLES, CHUNK_VERSION_BOUNDS):
            raise FormatError(f'tile payload version {version} is not supported (expected {CHUNK_VERSION} to '
                              f'{CHUNK_VERSION_BOUNDS}); a newer EnMAP Compress wrote this file')
        lengths = struct.unpack_from(f'<{count}I', payload, 3)
    except struct.error as exc:
        raise FormatError('a tile payload is truncated') from exc
    offset, sections = 3 + 4 * count, []
    for length in lengths:
        sections.append(payload[offset:offset + length])
        offset += length
    if offset != len(payload):
        raise FormatError('a tile payload has an inconsistent length')
    if version in (CHUNK_VERSION_SAMPLES, CHUNK_VERSION_BOUNDS):
        if not sections:
            raise FormatError('a tile payload lacks its sample section')
        return sections[:-1], sections[-1] or None
    return sections, None


def encode_mask(valid):
    if valid.all():
        return b'\x01'
    if not valid.any():
        return b'\x00'
    return b'\x02' + zlib.compress(np.packbits(valid).tobytes(), 9)


def decode_mask(data, height, width):
    if data == b'\x01':
        return np.ones((height, width), bool)
    if data == b'\x00':
        return np.zeros((height, width), bool)
    size = (height * width + 7) // 8
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(data[1:], size + 1) if data[:1] == b'\x02' else b''
    except zlib.error as exc:
        raise FormatError('a tile mask is corrupt') from exc
    if len(packed) != size or not inflater.eof or inflater.unused_data:  # a bomb stops at size + 1 bytes
        raise FormatError(f'a tile mask is corrupt (not {height} x {width} packed bits)')
    return np.unpackbits(np.frombuffer(packed, np.uint8))[:height * width].reshape(height, width).astype(bool)


def check_sections(coder, sections):
    """A tile's sections are the ones its coder reads: mask, latent, [extra bands], [residual, checksum]."""
    expected = 2 + bool(coder.extra.size) + 2 * (coder.bound is not None)
    if len(sections) != expected:
        raise FormatError(f'a tile payload holds {len(sections)} sections; the tiles of this file have {expected}')
    if coder.bound is not None and len(sections[-1]) != 4:
        raise FormatError('a tile\'s checksum section is not 4 bytes long')


# --- the tile coder -----------------------------------------------------------------------------------------

def residual_symbols(residual, max_error):
    """Quantise integer residuals so that |residual - symbol * (2E + 1)| <= E (E = 0: the residual itself)."""
    return UniformQuantiser(int(max_error)).symbols(np.asarray(residual), 0)


@dataclass
class TileCoder:
    """One model package at one quality level, plus the optional extra-band and error-bound layers.

    Sections of a tile: mask, latent, [extra bands], [residual, checksum of the exact reconstruction].
    """

    package: object
    quality: int
    runner: OnnxRunner
    extra: np.ndarray
    max_error: object = None  # a plain MAX_ERROR; `bound` (bounds.ErrorBound) is the general form
    radiometry: Radiometry = None  # of the coded bands; None: EnMAP's scale (and every file before band gains)
    bound: object = None
    extra_coder: str = None  # how extra bands are coded: EXTRA_PREDICTED, or EXTRA_SPECTRAL (lossless, since 0.2)
    residual_coder: str = None  # RESIDUAL_PLAIN, RESIDUAL_PREDICTED (absolute bounds, 0.2) or bandstream.CODER_ID
    coded: np.ndarray = field(init=False)
    step: float = field(init=False)

    def __post_init__(self):
        if self.bound is None and self.max_error is not None:
            self.bound = uniform_bound(self.max_error)
        meta = self.package.meta
        level = meta.level(self.quality)
        self.transform = make_transform(self.runner, meta)
        self.step = level.step
        scale = meta.channel_step_scale or [1.0] * self.transform.channels
        self.steps = (self.step * np.asarray(scale, np.float32))[:, None]
        self.latent_coder = make_latent_coder(meta, self.transform, level, self.steps)
        self.coded = model_band_indices(self.package)
        if self.radiometry is None:
            self.radiometry = Radiometry.enmap(len(self.coded))
        # lossless needs an exact layer for the extra bands; otherwise a coarse one plus the residual layer
        self.extra_step_dn = 1.0 if self.lossless else max(1.0, round(self.step * self.radiometry.dn_per_unit
                                                                            * 2.0))
        if self.extra_coder is None:  # new files: lossless extra bands are predicted from the restored bands
            self.extra_coder = EXTRA_SPECTRAL if self.lossless and self.extra.size else EXTRA_PREDICTED
        if self.extra_coder not in (EXTRA_PREDICTED, EXTRA_SPECTRAL) or (
                self.extra_coder == EXTRA_SPECTRAL and not self.lossless):
            raise FormatError(f'extra bands coded as "{self.extra_coder}" are not supported here; update the plugin')
        if self.residual_coder is None:  # new files: predicted residuals coded band by band (bandstream.py)
            self.residual_coder = bandstream.CODER_ID if self.bound is not None and \
                self.bound.relative_error is None else RESIDUAL_PLAIN
        if self.residual_coder not in (RESIDUAL_PLAIN, RESIDUAL_PREDICTED, bandstream.CODER_ID) or (
                self.residual_coder != RESIDUAL_PLAIN and (self.bound is None or self.bound.relative_error)):
            raise FormatError(f'residuals coded as "{self.residual_coder}" are not supported here; update the plugin')

    @property
    def spectral_extra(self):
        return self.extra_coder == EXTRA_SPECTRAL and self.extra.size > 0

    def _rows(self):
        return {int(band): row for row, band in enumerate(self.bands)}

    def _pack_residual(self, symbols):
        return bandstream.encode(symbols) if self.residual_coder == bandstream.CODER_ID else \
            entropy.encode_channels(symbols)

    def _unpack_residual(self, data, shape):
        return bandstream.decode(data, shape) if self.residual_coder == bandstream.CODER_ID else \
            entropy.decode_channels(data, shape)

    def _residual_layer(self, valid, base, original=None, symbols=None):
        """(symbols, restored values) of the error-bound layer: encoding when `original` is given."""
        if self.residual_coder == RESIDUAL_PLAIN:
            if original is not None:
                symbols = self.bound.symbols(original, base, self.bands)
            return symbols, self.bound.restore(base, symbols, self.bands)
        count = len(self.coded) if self.spectral_extra else len(self.bands)  # spectral extra rows: d = 0
        limits = self.bound.absolute(self.bands)[:count]
        if original is not None:
            rest = self.bound.symbols(original[count:], base[count:], self.bands[count:])
            head, restored = residual.code(valid, limits, residual=(original[:count] - base[:count]).astype(np.int32))
            symbols = np.concatenate([head, rest])
        else:
            restored = residual.code(valid, limits, symbols=symbols[:count])[1]
        values = np.concatenate([base[:count] + restored,
                                 self.bound.restore(base[count:], symbols[count:], self.bands[count:])])
        return symbols, values

    @property
    def lossless(self):
        return self.bound is not None and self.bound.lossless

    @property
    def bands(self):
        """Canonical bands this coder restores: the model's set and the extra bands."""
        return np.concatenate([self.coded, self.extra]).astype(int)

    def _reconstruct(self, symbols, extra_symbols, valid, core):
        values = self.radiometry.to_dn(self.transform.decode(self.latent_coder.dequantise(symbols), valid, core))
        if self.extra.size:
            values = np.concatenate([values, extra_symbols.astype(np.float32) * np.float32(self.extra_step_dn)])
        return np.rint(values) if self.bound is not None else values

    def encode(self, dn, valid, core):
        """dn: (224, window) float DN canonical; valid: window mask; core: slices of the tile in the window."""
        unit = self.radiometry.to_unit(dn[self.coded])
        latent = self.transform.encode(unit, valid, core)
        symbols, latent_bytes = self.latent_coder.encode(latent, valid, core)
        sections = [latent_bytes]
        core_valid = valid[core]
        extra = dn[self.extra][:, core[0], core[1]][:, core_valid]
        if self.spectral_extra:  # the base of an extra band is the band itself; its section follows below
            extra_symbols = extra.astype(np.int64)
        else:
            extra_symbols = np.rint(np.clip(extra, -32767, 32767) / self.extra_step_dn).astype(np.int32)
            if self.extra.size:
                sections.append(encode_predicted(extra_symbols, core_valid))
        if self.bound is not None:
            original = np.concatenate([dn[self.coded][:, core[0], core[1]][:, core_valid], extra])
            if not np.array_equal(original, np.rint(original)):
                raise InputError('an error bound needs integer DN values, but this image holds fractional values')
            if self.spectral_extra:
                sections.append(spectral.encode(original, self._rows(), self.extra, self.coded, core_valid))
            base = self._reconstruct(symbols, extra_symbols, valid, core)
            residual_symbols, restored = self._residual_layer(core_valid, base, original)
            check_bound(self.bound, original, restored, self.bands)
            sections += [self._pack_residual(residual_symbols), struct.pack('<I', checksum(restored))]
        return sections

    def decode(self, sections, valid, core):
        """Returns the restored DN (len(bands), valid pixels of the core)."""
        symbols = self.latent_coder.decode(sections[0], valid, core)
        pixels = int(valid[core].sum())
        extra_symbols = np.zeros((len(self.extra), pixels), np.int32)
        if self.extra.size and not self.spectral_extra:
            extra_symbols = decode_predicted(sections[1], len(self.extra), valid[core])
        values = self._reconstruct(symbols, extra_symbols, valid, core)
        if self.bound is not None:
            residual_symbols = self._unpack_residual(sections[-2], values.shape)
            values = self._residual_layer(valid[core], values, symbols=residual_symbols)[1]
            if self.spectral_extra:  # the model bands are exact now: predict the extra bands from them
                if residual_symbols[len(self.coded):].any():
                    raise FormatError('a lossless tile has residuals in its spectrally predicted extra bands')
                spectral.decode(sections[1], values, self._rows(), self.extra, self.coded, valid[core])
            if struct.unpack('<I', sections[-1])[0] != checksum(values):
                raise FormatError('the error-bounded reconstruction on this machine differs from the encoder\'s '
                                  '(floating-point differences between machines or devices); decode with the '
                                  'same onnxruntime on the CPU')
        return values


def check_bound(bound, original, restored, bands, rows=16):
    """The guarantee, checked on every sample before anything is written (a few bands at a time: no tile-sized
    temporaries)."""
    for start in range(0, len(bands), rows):
        part = slice(start, start + rows)
        excess = np.abs(original[part] - restored[part]) - bound.limits(original[part], bands[part])
        if excess.size and excess.max() > 0:
            row, column = np.unravel_index(int(np.argmax(excess)), excess.shape)
            raise EnmapCompressError(f'internal error: the error bound ({bound.describe()}) would be broken in band '
                                     f'{int(bands[start + row]) + 1} by {float(excess[row, column])} DN; no file '
                                     'was written')


def checksum(values):
    """CRC-32 of the values as little-endian float64, read from the array's buffer (no bytes copy of a tile)."""
    return zlib.crc32(np.ascontiguousarray(values, dtype='<f8')) & 0xFFFFFFFF


def model_band_indices(package):
    """Canonical indices of the bands the package's model codes (its band set, known: modelmeta checked it)."""
    return band_set(package.meta.band_set).indices


def valid_pixels(cube, nodata, live_bands):
    """A pixel is valid unless every live (non-dead) band holds nodata (or NaN)."""
    data = cube[live_bands]
    invalid = ~np.isfinite(data)
    if nodata is not None:
        invalid |= data == nodata
    return ~invalid.all(axis=0)


# --- header -------------------------------------------------------------------------------------------------

def layout_from_header(raster):
    """The output GeoTIFF's layout from an unpacked raster header (file band order)."""
    fwhm = raster.get('fwhm') or [None] * raster['band_count']
    bands = [BandInfo(raster['band_names'][i], raster['wavelengths'][i], fwhm[i], raster['gains'][i],
                      raster['offsets'][i]) for i in range(raster['band_count'])]
    return RasterLayout(raster['width'], raster['height'], raster['dtype'], raster['nodata'], raster['crs_wkt'],
                        tuple(raster['geotransform']), bands, [int(i) for i in raster.get('dead_bands', ())])


# --- results ------------------------------------------------------------------------------------------------

@dataclass
class CompressResult:
    path: str
    file_bytes: int
    valid_pixels: int
    bpppb: float
    compression_ratio: float
    device: str
    provider: str
    seconds: float
    warnings: list
    quality: int = 5
    max_error: object = None
    error_bound: object = None  # bounds.ErrorBound (None: lossy); max_error is its plain MAX_ERROR, if it is one


@dataclass
class DecompressResult:
    path: str
    device: str
    provider: str
    seconds: float


def _check_ehc_path(path):
    if not path.lower().endswith('.ehc'):
        raise OutputError(f'compressed output must end with .ehc: {path}')
    check_writable(path)


def _open_input(source):
    """The input raster for a `with`; an open SpectralRaster (evaluate's) is used as it is and stays open."""
    owned = not isinstance(source, SpectralRaster)
    raster = open_spectral(source) if owned else source
    if not raster.is_standard_enmap:
        if owned:
            raster.close()
        raise InputError(f'{raster.source} has {raster.band_count} bands; the compressors need the 224 EnMAP L2A '
                         'bands (wavelengths 418-2446 nm)')
    return raster if owned else contextlib.nullcontext(raster)


def _prepare_input(raster, progress):
    """Unpack a deflated ZIP member on the first STAGE_SHARE of `progress` when it needs it (SpectralRaster.stage)
    and check the image is not empty; returns the Progress for the rest of the run."""
    share = STAGE_SHARE if raster.needs_staging else 0.0
    raster.stage(progress.sub(1, 0.0, share))
    raster.check_not_empty()
    return progress.sub(1, share, 1.0)


def _quality(value):
    quality = int(value)
    if quality not in QUALITY_LEVELS:
        raise InputError(f'quality must be an integer from 1 to 10, not {value}')
    return quality


def auto_quality(package, max_error):
    """The base quality for an error bound: measured on real EnMAP, the smallest files come from a base step of
    about 1.45 x (2E + 1) DN, and never finer than about 35 DN (the residual then codes the rest more cheaply)."""
    if max_error is None:
        return 5
    target = max(35.0, 1.45 * (2 * max_error + 1))
    best = min(package.meta.quality_levels, key=lambda q: abs(np.log(q.step * DN_PEAK / target)))
    return best.level


def compress(source, output, model=None, quality=5, device='auto', threads=None, code_all_bands=False,
             progress=None, is_cancelled=None, tile_size=None, max_error=None, band_max_errors=None,
             relative_error=None, relative_floor=None):
    """Compress an EnMAP input to a .ehc file; returns CompressResult with the rate measured from the file.

    max_error (DN): guarantee |original - reconstruction| <= max_error on every valid sample of every coded band;
    0 is lossless for all bands. band_max_errors: a limit per EnMAP band (224 values or a CSV path; every band is
    then coded); relative_error, relative_floor: |error| <= max(floor, r x |value|). See bounds.error_bound.
    quality None: chosen from the bound (auto_quality). model None: the default model.
    """
    started = time.perf_counter()
    _check_ehc_path(output)
    bound = error_bound(max_error, band_max_errors, relative_error, relative_floor)
    max_error = bound.uniform if bound is not None else None
    package = find_model(model or default_model_id() or 'pca')
    coded = model_band_indices(package)
    quality = _quality(auto_quality(package, None if bound is None else bound.representative_dn(coded))
                       if quality is None else quality)
    runner = OnnxRunner(package, device, threads)
    with _open_input(source) as raster:
        progress = _prepare_input(raster, Progress(1, progress, is_cancelled))
        if bound is not None:  # limits per band are given in the image's band order
            bound = bound.in_canonical_order(raster.canonical_index)
        dead = raster.canonical_dead_bands
        all_bands = code_all_bands or max_error == 0 or band_max_errors not in (None, '')
        extra = np.array([i for i in range(raster.band_count) if i not in set(coded) and not dead[i]], int) \
            if all_bands else np.zeros(0, int)
        radiometry = Radiometry.of(raster.gains[raster.canonical_index][coded],
                                   raster.offsets[raster.canonical_index][coded])
        coder = TileCoder(package, quality, runner, extra, max_error, radiometry, bound)
        if tile_size is None and bound is not None:  # the bounded layers hold several copies of a tile: keep
            tile_size = min(coder.transform.tile_size, BOUNDED_TILE)  # them small (measured: same rate, 1/3 memory)
        tile_size = int(tile_size or coder.transform.tile_size)
        if not 1 <= tile_size <= MAX_TILE_SIZE:  # decoding a larger tile could need more than 1.5 GB
            raise InputError(f'the tile size must be from 1 to {MAX_TILE_SIZE} px, not {tile_size}')
        if tile_size * tile_size > residual.MAX_PIXELS:  # its sums would not stay exact
            coder.residual_coder = RESIDUAL_PLAIN
        header = {
            'format': FORMAT_NAME,
            'raster': pack_raster(raster, np.asarray(raster.dead_bands)),
            'codec': {'model_id': package.model_id, 'model_sha256': package.decoder_sha256(),
                      'model_kind': coder.transform.kind, 'quality': quality, 'step': coder.step,
                      'tile_size': tile_size, 'band_set': package.meta.band_set,
                      'extra_bands': [int(i) for i in extra], 'extra_step_dn': coder.extra_step_dn,
                      'max_error': max_error, 'entropy_coder': 'constriction-ans-v1'},
            # MAX_ERROR files keep 0.1.0's layout; other bounds are stated here and use tile payload version 4
            'device': {'requested': device, 'used': runner.choice.device, 'provider': runner.provider,
                       'threads': runner.threads},
            'software': software_versions(),
            'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        }
        if raster.nodata is None and raster.dtype.kind == 'f':
            header['raster']['fill'] = samples.fill_value(raster.dtype, None)  # NaN; older files meant 0
        if not radiometry.is_enmap:  # the models see reflectance through these gains (files before: always 1e-4)
            header['codec']['radiometry'] = BAND_GAINS
        if bound is not None and max_error is None:
            header['codec']['error_bound'] = bound.codec_info()
        if coder.extra_coder != EXTRA_PREDICTED:
            header['codec']['extra_coder'] = coder.extra_coder
        if coder.residual_coder != RESIDUAL_PLAIN:
            header['codec']['residual_coder'] = coder.residual_coder
        if package.folder != os.path.join(MODELS_DIR, package.model_id):
            header['codec']['model_path'] = package.folder  # a custom package: where the decoder may find it
        tiles = tile_grid(raster.width, raster.height, tile_size)
        tile_progress = Progress(len(tiles), progress)
        count = 0
        band_numbers, nonfinite = np.asarray(raster.canonical_index) + 1, np.zeros(raster.band_count, np.int64)
        tile_progress.check()
        with EhcWriter(output, header) as writer:
            for tile in tile_progress.each(tiles, 'compressing tile {} of {}'):
                window = coder.transform.window(tile, raster.width, raster.height)
                cube = raster.read_canonical(window.x, window.y, window.width, window.height)
                payload, pixels = encode_tile(coder, cube, raster.nodata, dead, _core(tile, window), band_numbers,
                                              nonfinite)
                writer.add_chunk(payload, tile.as_dict())
                count += pixels
                if tile.x + tile.width >= raster.width:  # a row of tiles done: GDAL need not keep its blocks
                    raster.drop_cache()
            writer.footer_meta = {'valid_pixels': count}
        warnings = list(raster.warnings) + _nonfinite_warning(nonfinite, band_numbers)
    size = os.path.getsize(output)
    rate = rate_metrics(size, count, CODED_BAND_COUNT)
    return CompressResult(output, size, count, rate['bpppb'], rate['compression_ratio'], runner.choice.device,
                          runner.provider, time.perf_counter() - started, warnings, quality, max_error, bound)


def _core(tile, window):
    """Slices of the tile inside its window."""
    return (slice(tile.y - window.y, tile.y - window.y + tile.height),
            slice(tile.x - window.x, tile.x - window.x + tile.width))


def encode_tile(coder, cube, nodata, dead, core, band_numbers=None, nonfinite=None):
    """The chunk payload of one tile and its count of valid pixels.

    cube: the tile's window (224, h, w) of DN in canonical order, in the raster's own dtype (the sample section
    stores values in it); dead: canonical bool per band (restored as nodata); core: slices of the tile in the
    window. NaN and ±Inf never reach the model: they are replaced, and restored from the tile's sample section.
    band_numbers: the 1-based band number of each canonical band, for messages; nonfinite: an int array per band
    that counts the non-finite samples kept at valid pixels.
    """
    valid = valid_pixels(cube, nodata, ~dead)
    native = cube[:, core[0], core[1]]
    restored = np.zeros(len(dead), bool)
    restored[coder.bands] = True
    restored &= ~dead
    if coder.bound is not None:
        samples.check_exact_range(native, restored, valid[core],
                                  np.arange(1, len(dead) + 1) if band_numbers is None else band_numbers)
    sections = [encode_mask(valid[core])] + coder.encode(samples.model_input(cube, valid, dead), valid, core)
    positions, values = samples.overrides(native, restored, valid[core], samples.fill_value(cube.dtype, nodata),
                                          coder.lossless)
    if nonfinite is not None:
        nonfinite += samples.count_nonfinite(native, valid[core]) * restored
    section = samples.pack(positions, values, cube.dtype) if positions.size else None
    extended = (coder.bound is not None and coder.bound.uniform is None) or coder.spectral_extra or \
        coder.residual_coder != RESIDUAL_PLAIN
    return pack_sections(sections, section, extended), int(valid[core].sum())


def _nonfinite_warning(counts, band_numbers):
    if not counts.any():
        return []
    bands = band_numbers[counts > 0]
    message = (f'{int(counts.sum())} NaN or infinite samples inside valid pixels (band{"s" if bands.size > 1 else ""} '
               f'{samples.describe_bands(np.sort(bands))}) were kept out of the model and are restored exactly.')
    LOG.warning(message)
    return [message]


def decode_tile(coder, payload, tile, window, dtype, nodata, dead, fill=None):
    """One tile back from its chunk payload: (len(dead), tile.height, tile.width) in canonical order and `dtype`;
    dead bands, bands the file does not restore and invalid pixels hold `fill` (default samples.fill_value:
    nodata, else NaN for floats and 0 for integers), then the tile's sample section is written back."""
    sections, sample_section = unpack_sections(payload)
    check_sections(coder, sections)
    core = _core(tile, window)
    valid = np.zeros((window.height, window.width), bool)
    valid[core] = decode_mask(sections[0], tile.height, tile.width)
    values = output_values(coder.decode(sections[1:], valid, core), dtype, nodata, coder.bound is not None)
    fill = samples.fill_value(dtype, nodata) if fill is None else fill
    canonical = np.full((len(dead), tile.height, tile.width), fill, values.dtype)
    _scatter(canonical, coder.bands, valid[core], values)
    canonical[dead] = fill
    if sample_section is not None:
        samples.restore(canonical, sample_section)
    return canonical


def header_fill(raster):
    """The fill value of a file's nodata pixels: `raster.fill` (NaN for float rasters without nodata, written
    since 0.2) or, in older files, nodata, else 0."""
    nodata = raster['nodata']
    fill = raster.get('fill', nodata if nodata is not None else 0)
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise FormatError(f'the header\'s raster.fill must be a number, not {fill!r}')
    return fill


def decoded_tiles(reader, coder, raster):
    """(tile, canonical cube) of every chunk of an open EhcReader, in file order; raster: the unpacked header.
    Open the reader with validation.open_checked: its header and index are then known to be consistent."""
    dead = np.zeros(raster['band_count'], bool)
    dead[np.asarray(raster['dead_bands'], int)] = True
    dead = dead[np.asarray(raster['canonical_index'], int)]
    for index in range(reader.chunk_count):
        tile = Tile.from_dict(reader.chunk_meta(index))
        window = coder.transform.window(tile, raster['width'], raster['height'])
        if reader.stored_size(index) > max_chunk_bytes(window):
            raise FormatError(f'{reader.path}: chunk {index} takes {reader.stored_size(index)} bytes, more than a '
                              f'{window.width} x {window.height} px tile can need')
        try:
            yield tile, decode_tile(coder, reader.read_chunk(index), tile, window, raster['dtype'], raster['nodata'],
                                    dead, header_fill(raster))
        except FormatError as exc:
            if reader.path in str(exc):
                raise
            raise FormatError(f'{reader.path}: chunk {index} (the tile at {tile.x}, {tile.y}): {exc}') from exc


def max_chunk_bytes(window):
    """The most bytes a valid chunk of a tile with this context window takes: every one of its samples stored
    raw (32 bits), escaped and listed in the sample section (u32 position and a float64), with room to spare."""
    return 32 * N_BANDS * window.width * window.height + (1 << 20)


def find_package(codec_info):
    """The model package a file's codec info names (its custom package when that is still there), or
    ModelNotFoundError naming the model to install."""
    path = codec_info.get('model_path')
    if path and os.path.isdir(path):  # a custom package (its id may equal a bundled one's): the one that made the file
        custom = find_model(path)
        if custom.decoder_sha256() == codec_info['model_sha256']:
            return custom
    try:
        return find_model(codec_info['model_id'])
    except ModelNotFoundError:
        if path and os.path.isdir(path):
            return find_model(path)
        raise ModelNotFoundError(f'this file needs the model "{codec_info["model_id"]}", which is not installed '
                                 f'(installed: {", ".join(p.model_id for p in list_models()) or "none"})') from None


def decoder_for(header, device, threads):
    """(TileCoder, OnnxRunner) that decode a file with this (validated) header: the entry point of every decoder
    (decompress, cli verify, the Zarr codec)."""
    codec_info = header['codec']
    package = find_package(codec_info)
    if package.decoder_sha256() != codec_info['model_sha256']:
        raise FormatError(f'this file was made with a different version of model "{package.model_id}" than the '
                          'one installed (sha256 differs); install the matching model to decode it')
    runner = OnnxRunner(package, device, threads)
    extra = np.asarray(codec_info['extra_bands'], int)
    radiometry = None
    if codec_info.get('radiometry') == BAND_GAINS:
        raster = unpack_raster(header['raster'])
        order, coded = np.asarray(raster['canonical_index'], int), model_band_indices(package)
        radiometry = Radiometry.of(np.asarray(raster['gains'])[order][coded],
                                   np.asarray(raster['offsets'])[order][coded])
    bound = ErrorBound.from_codec_info(codec_info)
    coder = TileCoder(package, int(codec_info['quality']), runner, extra, bound.uniform if bound else None,
                      radiometry, bound, codec_info.get('extra_coder', EXTRA_PREDICTED),
                      codec_info.get('residual_coder', RESIDUAL_PLAIN))
    return coder, runner


def decompress(source, output, device='auto', threads=None, progress=None, is_cancelled=None):
    """Decompress a .ehc file to a GeoTIFF in the input's band order, dtype, nodata and georeferencing."""
    started = time.perf_counter()
    check_writable(output)
    reader, checked = open_checked(source)
    with reader:
        coder, runner = decoder_for(reader.header, device, threads)
        check_coder(checked, coder, source)
        raster = checked.raster
        canonical_index = np.asarray(raster['canonical_index'], int)
        tile_progress = Progress(reader.chunk_count, progress, is_cancelled)
        tile_progress.check()
        with atomic_output(output) as tmp:
            writer = GeoTiffWriter(tmp, layout_from_header(raster))
            try:
                tiles = decoded_tiles(reader, coder, raster)
                for tile, canonical in tile_progress.each(tiles, 'decoding tile {} of {}'):
                    file_order = np.empty_like(canonical)
                    file_order[canonical_index] = canonical
                    writer.write(tile.x, tile.y, file_order)
                    if _ends_block_row(tile, raster, writer.block_rows):
                        writer.flush()  # at most one row of TIFF blocks waits in memory
                tile_progress.say('writing the last blocks of the GeoTIFF')
            finally:
                writer.close()
    return DecompressResult(output, runner.choice.device, runner.provider, time.perf_counter() - started)


def _ends_block_row(tile, raster, block_rows):
    """Whether a tile completes a row of output blocks (the last tile of a tile row that ends a block row)."""
    bottom = tile.y + tile.height
    return tile.x + tile.width == raster['width'] and (bottom % block_rows == 0 or bottom == raster['height'])


def _scatter(canonical, bands, valid, values):
    for row, band in enumerate(bands):
        canonical[band][valid] = values[row]

