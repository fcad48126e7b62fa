"""Compress and decompress (evaluate.py runs both): one pipeline for every model.

read (canonical order) -> tile -> model transform -> quantise -> entropy-code -> .ehc chunk, and back.
Every call streams tile by tile, reports progress, honours cancellation and writes its outputs atomically.
"""
import contextlib
import functools
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..paths import MODELS_DIR
from . import bandstream, context_coder, entropy, residual, samples, spectral, tilepayload
from .bands import CLIP_MARGIN, DN_PEAK, FAINT, N_BANDS, N_HYSPECNET, Radiometry, band_set
from .bounds import UniformQuantiser, error_bound, integer_residual, is_blank, uniform_bound, whole_number
from .codecheader import (
    BAND_GAINS,
    BASIS_CODERS,
    EXACT_CODERS,
    EXTRA_PREDICTED,
    EXTRA_SPECTRAL,
    FORMAT_NAME,
    LATENT_CODERS,
    LATENT_FOLDED,
    MAX_TILE_SIZE,
    QUALITY_LEVELS,
    RESIDUAL_PLAIN,
    RESIDUAL_PREDICTED,
    CodecInfo,
)
from .container import VERSION as CONTAINER_VERSION
from .container import EhcWriter, to_json_bytes
from .enmap import SpectralRaster, open_spectral
from .errors import EnmapCompressError, FormatError, InputError, ModelError, ModelNotFoundError
from .geotiff import BLOCK, BandInfo, GeoTiffWriter, RasterLayout, block_for, output_values, rounded_values
from .latent import row_peaks
from .latent_basis import choose_coder
from .metrics import rate_metrics
from .outputs import atomic_output, check_distinct, check_named, check_writable
from .prediction import decode_predicted, encode_predicted
from .prior import compact_stream, expand_stream
from .rasterheader import pack_raster
from .runtime import OnnxRunner, default_model_id, find_model, list_models
from .synthesis import EXACT_PROVIDER
from .tilepayload import TileSections, checksum_section, decode_mask, encode_mask, matches_checksum
from .tiling import Progress, Tile, kept_slices, ordered_map, rest_of, tile_grid, valid_pixels
from .transforms import make_transform
from .validation import check_coder, checked_header, open_checked

LOG = logging.getLogger('enmap_compress')
CODED_BAND_COUNT = N_HYSPECNET
DEFAULT_TILE = 256  # pixel models; spatial models bring their own tile size
BOUNDED_TILE = 128  # the default tile size of error-bounded and lossless files
PARALLEL_TILE_PIXELS = 144 * 144  # tiles up to this window are coded on every thread (tile_workers)
DECODE_AHEAD = 3  # tiles decoded ahead of the writing thread (tiling.ordered_map)
SPLIT_AHEAD = 2  # tiles read ahead while one worker runs the model (it then never waits for this thread)
COMPACT_SINCE = (3, 0)  # container versions whose chunk CRC covers compactly framed tiles (TileCoder.compact)
STAGE_SHARE = 0.2  # of a compress run, unpacking a deflated ZIP member takes about this much (measured: 15-25 %)
# A compress tile's step of the bar, by stage (rdnet, 256 px: the model and the coding of its latent take most of
# it); a read waiting for a ZIP member's rows fills READ_STAGE with the bytes it waits for. The rest: packing.
READ_STAGE, INPUT_STAGE, MODEL_STAGE, LATENT_STAGE = 0.1, 0.1, 0.3, 0.3
# A decompress tile's step: the model part (the rest: writing), of which on_tile (evaluate's measuring) takes
# ON_TILE_STAGE when there is one
DECODE_STAGE, ON_TILE_STAGE = 0.7, 0.5
# With at most FINE_TILES tiles (a 400 x 400 product: 4) a tile is over a tenth of a run: its model runs in parts
# (transforms.ENCODE_PARTS, DECODE_PARTS; the same values) so the bar moves inside them too (costs a copy of each)
FINE_TILES = 8
UNIT_SHARE = 0.3  # of TileCoder.latent, scaling the model's bands to the unit range (then the model)
SCAN_SHARE = 0.03  # finding the dead bands (measured: 3-5 % of a 1000 x 1000 compress with nodata rows on top)


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


MAX_SOURCE_DATE_EPOCH = 32503679999  # 2999-12-31T23:59:59Z (Windows' gmtime stops in the year 3000)


def creation_time():
    """The header's UTC time: now, or SOURCE_DATE_EPOCH (seconds) when set, the reproducible-builds convention (the
    same input and settings then give the same file, byte for byte)."""
    epoch = os.environ.get('SOURCE_DATE_EPOCH', '').strip()
    # (plain digits up to the year 2999 only, like any other value that is no time: '²' is a digit int() refuses,
    # and 20 nines beyond time_t raised OverflowError in every compress)
    stated = epoch.isascii() and epoch.isdigit() and int(epoch) <= MAX_SOURCE_DATE_EPOCH
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(int(epoch) if stated else None))


# --- the tile coder -----------------------------------------------------------------------------------------

# How far a tile's decode is after each of its parts (a progress bar's hook; rdnet, 256 px: the latent's symbols,
# their values in the tile's basis, then the model), or a bounded decode's model reconstruction
SYMBOLS_SHARE, DEQUANTISED_SHARE, RECONSTRUCTED_SHARE = 0.2, 0.5, 0.6


def _no_progress(fraction):
    pass


def residual_symbols(residual, max_error):
    """Quantise integer residuals so that |residual - symbol * (2E + 1)| <= E (E = 0: the residual itself)."""
    return UniformQuantiser(int(max_error)).symbols(np.asarray(residual), 0)


@dataclass
class TileCoder:
    """One model package at one quality level, plus the optional extra-band and error-bound layers.

    Sections of a tile (tilepayload.TileSections): mask, latent, [extra bands], [residual, checksum of the exact
    reconstruction], [samples]. `codec_info` states a coder in a file's header, `decoder_for` builds it back.
    """

    package: object
    quality: int
    runner: OnnxRunner
    extra: np.ndarray
    max_error: object = None  # a plain MAX_ERROR; `bound` (bounds.ErrorBound) is the general form
    radiometry: Radiometry = None  # of the coded bands; None: EnMAP's scale (and every file before band gains)
    bound: object = None
    extra_coder: str = None  # how extra bands are coded: EXTRA_PREDICTED, or EXTRA_SPECTRAL (lossless, since 0.2)
    residual_coder: str = None  # RESIDUAL_PLAIN, RESIDUAL_PREDICTED (absolute bounds, 0.2), bandstream.BAND_CODED
    latent_scheme: str = None  # LATENT_PRIOR, LATENT_CONTEXT (rdnet, 0.3+), LATENT_BASIS (lossy, 0.5), LATENT_FOLDED
    compact: bool = False  # tiles framed compactly (tilepayload, prior.compact_stream): only where a CRC covers them
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
        channel_steps = (self.step * np.asarray(scale, np.float32))[:, None]
        self.channel_steps = channel_steps[:, 0].astype(np.float64)  # (latent_range's)
        new_file, spatial = self.latent_scheme is None, self.transform.kind == 'spatial'
        foldable = new_file and self.bound is None and spatial and self.transform.folded() is not None
        exact = new_file and self.bound is not None and self.transform.exact() is not None
        self.latent_coder, self.latent_scheme = choose_coder(meta, level, channel_steps, self.latent_scheme,
                                                             lossy=self.bound is None, foldable=foldable, exact=exact)
        if self.folded and self.transform.folded() is None:
            raise FormatError(f'latents coded as "{self.latent_scheme}" need the folded synthesis of an rdnet '
                              f'decoder, and the decoder of model "{meta.id}" is not one')
        if self.exact and (self.bound is None or self.transform.exact() is None):
            raise FormatError(f'latents coded as "{self.latent_scheme}" need an error bound and the exact synthesis '
                              f'of the model\'s decoder, and the decoder of model "{meta.id}" has none')
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
            raise FormatError(f'extra bands coded as "{self.extra_coder}" ' + (
                'do not go with this file\'s mode (only lossless files code them so)' if self.extra_coder ==
                EXTRA_SPECTRAL else 'are not supported here; update the plugin'))
        if self.residual_coder is None:  # new files: residual symbols coded band by band (bandstream.py)
            self.residual_coder = RESIDUAL_PLAIN if self.bound is None else bandstream.PLAIN_CODER_ID \
                if self.bound.relative_error else bandstream.CODER_ID
        predicted = self.residual_coder in (RESIDUAL_PREDICTED, bandstream.CODER_ID)  # absolute bounds only
        if self.residual_coder not in (RESIDUAL_PLAIN, RESIDUAL_PREDICTED, *bandstream.BAND_CODED) or (
                self.residual_coder != RESIDUAL_PLAIN and self.bound is None) or (
                predicted and self.bound.relative_error):
            known = self.residual_coder in (RESIDUAL_PLAIN, RESIDUAL_PREDICTED, *bandstream.BAND_CODED)
            raise FormatError(f'residuals coded as "{self.residual_coder}" ' + (
                'do not go with this file\'s error bound' if known else 'are not supported here; update the plugin'))

    @property
    def folded(self):
        """Whether the tiles are decoded by the folded synthesis (synthesis.py): LATENT_FOLDED files."""
        return self.latent_scheme == LATENT_FOLDED

    @property
    def exact(self):
        """Whether the tiles are decoded by the model's exact synthesis (synthesis.py): codecheader.EXACT_CODERS."""
        return self.latent_scheme in EXACT_CODERS

    @property
    def spectral_extra(self):
        return self.extra_coder == EXTRA_SPECTRAL and self.extra.size > 0

    @property
    def extended_payload(self):
        """Whether its tiles need payload version 4 (tilepayload.pack): 0.1.0 cannot decode them."""
        return (self.bound is not None and self.bound.uniform is None) or self.spectral_extra or \
            self.residual_coder != RESIDUAL_PLAIN

    def codec_info(self, tile_size):
        """The header's CodecInfo of a file this coder writes in tiles of `tile_size` px."""
        package = self.package
        custom = package.folder != os.path.join(MODELS_DIR, package.model_id)  # where the decoder may find it
        return CodecInfo(package.model_id, package.decoder_sha256(), self.quality, tuple(int(i) for i in self.extra),
                         tile_size, self.transform.kind, self.step, package.meta.band_set, self.extra_step_dn,
                         self.max_error, radiometry=None if self.radiometry.is_enmap else BAND_GAINS,
                         error_bound=self.bound if self.bound is not None and self.max_error is None else None,
                         extra_coder=self.extra_coder, residual_coder=self.residual_coder,
                         model_path=package.folder if custom else None, latent_coder=self.latent_scheme)

    def pack(self, sections):
        if self.compact and self.package.meta.entropy_model is not None:  # a learned-prior stream (prior.py)
            sections = replace(sections, latent=compact_stream(sections.latent))
        return tilepayload.pack(sections, self.extended_payload, self.compact)

    def unpack(self, payload):
        """The TileSections of a payload of this coder's file (FormatError when it holds others); a compactly
        framed one's learned-prior stream expanded to the form the latent coder reads."""
        sections = tilepayload.unpack(payload, self.extra.size > 0, self.bound is not None, self.compact)
        if tilepayload.is_compact(payload) and self.package.meta.entropy_model is not None:
            sections = replace(sections, latent=expand_stream(sections.latent))
        return sections

    def _rows(self):
        return {int(band): row for row, band in enumerate(self.bands)}

    def _pack_residual(self, symbols):
        return bandstream.encode(symbols) if self.residual_coder in bandstream.BAND_CODED else \
            entropy.encode_channels(symbols)

    def _unpack_residual(self, data, shape):
        return bandstream.decode(data, shape) if self.residual_coder in bandstream.BAND_CODED else \
            entropy.decode_channels(data, shape)

    def _residual_layer(self, valid, base, original=None, symbols=None):
        """(symbols, restored values) of the error-bound layer: encoding when `original` is given."""
        if self.residual_coder in (RESIDUAL_PLAIN, bandstream.PLAIN_CODER_ID):
            if original is not None:
                symbols = self.bound.symbols(original, base, self.bands)
            return symbols, self.bound.restore(base, symbols, self.bands)
        count = len(self.coded) if self.spectral_extra else len(self.bands)  # spectral extra rows: d = 0
        limits = self.bound.absolute(self.bands)[:count]
        if original is not None:
            rest = self.bound.symbols(original[count:], base[count:], self.bands[count:])
            head, restored = residual.code(valid, limits, residual=integer_residual(original[:count],
                                                                                 base[:count]).astype(np.int32))
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

    def _reconstruct(self, symbols, extra_symbols, valid, kept):
        if self.folded:
            blocks = self.transform.decode_tile_folded(functools.partial(self.latent_coder.live_latent, symbols),
                                                       symbols.rotation, valid, kept)
            unit = self.transform.valid_columns(blocks, valid, kept)
        elif self.exact:
            unit = self.transform.decode_exact(functools.partial(self.latent_coder.dequantise, symbols), valid, kept)
        else:
            unit = self.transform.decode(self.latent_coder.dequantise(symbols), valid, kept)  # a fresh array
        values = self.radiometry.to_dn(unit, out=unit if unit.flags.writeable else None)
        if self.extra.size:
            values = np.concatenate([values, extra_symbols.astype(np.float32) * np.float32(self.extra_step_dn)])
        return np.rint(values) if self.bound is not None else values

    def encode(self, dn, valid, kept):
        """TileSections (but samples) of a tile. dn: (224, window) float DN canonical; valid: the window's valid
        pixels; kept: the tile's slices in the window (tiling.kept_slices)."""
        return self.encode_latent(self.latent(dn, valid, kept)[0], dn, valid, kept)[0]

    def latent(self, dn, valid, kept, done=_no_progress, in_parts=False, unit=None):
        """encode's first part: (the model's latent of the tile, its row_peaks). done(fraction): called from this
        thread with the share of this part done (a progress bar's hook); in_parts: the model may run in parts to
        call it between them (the same latent; FINE_TILES). unit: the model's input as unit_input makes it (then
        dn is unused)."""
        if unit is None:
            unit = self.radiometry.to_unit(dn[self.coded], overwrite=True)  # a fresh copy
        done(UNIT_SHARE)
        return self.latent_range(self.transform.encode(unit, valid, kept, rest_of(done, UNIT_SHARE) if in_parts
                                                       else None, overwrite=True))

    def latent_range(self, latent):
        """(`latent`, its row_peaks) when each of its rows lies within MAX_LATENT_STEPS quantiser steps of this
        quality (the quantisers' int32 symbols and float32 whole steps hold it), else ModelError: a model whose
        latent or steps are out of all proportion (a step of 1e-300, a latent of 1e30) made files of wrapped-around
        symbols that decoded to noise; NaN and infinite values fail the comparison too."""
        peaks = row_peaks(latent)
        if latent.size and not (peaks <= MAX_LATENT_STEPS * self.channel_steps).all():
            meta = self.package.meta
            raise ModelError(f'model "{meta.id}" gives latent values that are not finite or beyond '
                             f'{MAX_LATENT_STEPS:.0e} quantiser steps '
                             f'of quality {self.quality} (step {self.step:g}): its encoder or its quality_levels / '
                             'channel_step_scale are broken')
        return latent, peaks

    def encode_latent(self, latent, dn, valid, kept, done=None):
        """encode's second part: (TileSections, restored) from the tile's latent (done: as for latent). dn: the
        tile's model input, or None where input_for_coding says it is not read again. restored: an error-bounded
        tile's exact reconstruction (len(bands), valid pixels) as the decoder makes it, else None."""
        symbols, latent_bytes = self.latent_coder.encode(latent, self.transform.latent_geometry(valid, kept),
                                                         done)
        tile_valid = valid[kept]
        sections = TileSections(encode_mask(tile_valid), latent_bytes)
        extra = dn[self.extra][:, kept[0], kept[1]][:, tile_valid] if self.extra.size else \
            np.zeros((0, int(tile_valid.sum())), np.float32)
        if self.spectral_extra:  # the base of an extra band is the band itself; its section follows below
            extra_symbols = extra.astype(np.int64)
        else:
            extra_symbols = np.rint(np.clip(extra, -32767, 32767) / self.extra_step_dn).astype(np.int32)
            if self.extra.size:
                sections = replace(sections, extra=encode_predicted(extra_symbols, tile_valid))
        if self.bound is not None:
            original = np.concatenate([dn[self.coded][:, kept[0], kept[1]][:, tile_valid], extra])
            if not np.array_equal(original, np.rint(original)):
                raise InputError('an error bound needs integer DN values, but this image holds fractional values')
            if self.spectral_extra:
                sections = replace(sections, extra=spectral.encode(original, self._rows(), self.extra, self.coded,
                                                                   tile_valid))
            base = self._reconstruct(symbols, extra_symbols, valid, kept)
            _check_base(base)
            residual_symbols, restored = self._residual_layer(tile_valid, base, original)
            check_bound(self.bound, original, restored, self.bands)
            sections = replace(sections, residual=self._pack_residual(residual_symbols),
                               checksum=checksum_section(restored))
            return sections, restored
        return sections, None

    def input_for_coding(self, dn):
        """What encode_latent reads again of a tile's model input: all of it for error-bounded files and extra
        bands, else nothing (so a tile waiting to be coded does not hold it: 59 MB for a 256 px tile)."""
        return dn if self.reads_model_input else None

    @property
    def reads_model_input(self):
        """Whether encode_latent reads a tile's model input again: for error-bounded files and extra bands."""
        return self.bound is not None or bool(self.extra.size)

    def unit_input(self, cube, valid, dead, lone=None):
        """latent()'s unit straight from a tile's window of integer DN (canonical bands, the raster's dtype): the
        values of to_unit(model_input(...)[coded]) without their tile-sized float copies (0.9 of the model worker's
        2.2 s cpu in a full-tile compress), in this thread's reused input array (transform.input_array: valid until
        its next call). lone: samples.lone_nodata's samples, given the neutral values model_input gives them. None:
        make it from samples.model_input (float rasters, other gains)."""
        if not self.radiometry.scales_natively(cube.dtype):
            return None
        unit = self.radiometry.native_to_unit(cube, self.coded,
                                              self.transform.input_array((len(self.coded), *cube.shape[1:])))
        if lone is not None:
            row_of = dict(zip(self.coded.tolist(), range(len(self.coded))))
            for band, value in samples.neutral_values(cube, valid, lone):
                if band in row_of:
                    unit[row_of[band]][lone[band]] = self.radiometry.to_unit(np.array([value], np.float32))[0]
        unit[dead[self.coded]] = 0.0  # as model_input's dead bands
        return unit

    @property
    def decodes_tiles(self):
        """Whether decode gives a tile's DN as the decoder made it (transforms.TileBlocks: its nodata pixels
        included, which _tile_cube overwrites) rather than the columns of its valid pixels: plain lossy tiles of a
        spatial model, where no layer on top works on columns (tile-sized copies and a scatter fewer)."""
        return self.transform.decodes_tiles and self.bound is None and not self.extra.size

    def decode(self, sections, valid, kept, done=_no_progress, in_parts=False, output=None):
        """The restored DN (len(bands), valid pixels of the tile) from its TileSections; decodes_tiles: the tile's
        DN as transforms.TileBlocks, or None for a tile without valid pixels, rounded for `output` (dtype, nodata)
        when given (TileBlocks.rounded). done, in_parts: as for latent."""
        symbols = self.latent_coder.decode(sections.latent, self.transform.latent_geometry(valid, kept))
        done(SYMBOLS_SHARE)
        if self.decodes_tiles:
            # made at the cells the graph decodes only (the decode_tile calls it)
            parts_done = rest_of(done, DEQUANTISED_SHARE) if in_parts else None
            if self.folded:
                live = functools.partial(self._live_latent, symbols, done)
                blocks = self.transform.decode_tile_folded(live, symbols.rotation, valid, kept, parts_done)
            else:
                latent = functools.partial(self._dequantised, symbols, done)
                blocks = self.transform.decode_tile(latent, valid, kept, parts_done)
            if blocks is not None:
                blocks.values = _dn_of(self.radiometry, blocks.values, output)
                blocks.rounded = output is not None
            return blocks
        tile_valid = valid[kept]
        extra_symbols = np.zeros((len(self.extra), int(tile_valid.sum())), np.int32)
        if self.extra.size and not self.spectral_extra:
            extra_symbols = decode_predicted(sections.extra, len(self.extra), tile_valid)
        values = self._reconstruct(symbols, extra_symbols, valid, kept)
        done(RECONSTRUCTED_SHARE)
        if self.bound is not None:
            residual_symbols = self._unpack_residual(sections.residual, values.shape)
            values = self._residual_layer(tile_valid, values, symbols=residual_symbols)[1]
            if self.spectral_extra:  # the model bands are exact now: predict the extra bands from them
                if residual_symbols[len(self.coded):].any():
                    raise FormatError('a lossless tile has residuals in its spectrally predicted extra bands')
                spectral.decode(sections.extra, values, self._rows(), self.extra, self.coded, tile_valid)
            if not matches_checksum(sections.checksum, values):
                if self.exact:  # made in integer arithmetic: the same on every machine
                    raise FormatError('the error-bounded reconstruction does not match the checksum its encoder '
                                      'stored: the file was changed after it was written')
                raise FormatError('the error-bounded reconstruction on this machine differs from the encoder\'s '
                                  '(floating-point differences between machines or devices: decode with the '
                                  'same onnxruntime on the CPU), or the file was changed after it was written')
        return values

    def _live_latent(self, symbols, done, cells=None):
        """The live latent of a tile's symbols at `cells` (None: all), for decode_tile_folded; done: as for decode."""
        live = self.latent_coder.live_latent(symbols, cells)
        done(DEQUANTISED_SHARE)
        return live

    def _dequantised(self, symbols, done, cells=None, out=None):
        """The latent of a tile's symbols at `cells` (None: all), for decode_tile; done: as for decode."""
        latent = self.latent_coder.dequantise(symbols, cells, out)
        done(DEQUANTISED_SHARE)
        return latent


ROUND_ROWS = 4  # rows of a decoded tile made DN and rounded at once: their 1 MB (256 px) stays in cache through
# the passes (a full-tile decompress: the passes over whole 53 MB tiles took twice as long)


def _dn_of(radiometry, unit, output=None):
    """The DN of decoded values on [0, 1] (bands, ...), in `unit` itself when it is writable; rounded for `output`
    (dtype, nodata: geotiff.rounded_values) when given, ROUND_ROWS bands at a time at EnMAP's scale (every
    operation is per sample: the values of whole-array passes)."""
    dn = unit if unit.flags.writeable else np.empty(unit.shape, np.float32)
    rows = ROUND_ROWS if radiometry.is_enmap else len(unit)  # (other gains are per band: all of them at once)
    for start in range(0, len(unit), max(rows, 1)):
        part = radiometry.to_dn(unit[start:start + rows], out=dn[start:start + rows])
        if output is not None:
            rounded = rounded_values(part, output[0], output[1], overwrite=True)
            if rounded is not part:
                part[...] = rounded
    return dn


MAX_LATENT_STEPS = 2 ** 24  # |latent| / step: whole steps in float32; int32 symbols with room for the basis rotation
BASE_LIMIT = 2 ** 24  # |DN| of an error-bounded file's model base: an exact input stays within 2^23 (EXACT_LIMIT)


def _check_base(base):
    """InputError when the model's reconstruction of an error-bounded tile is far outside any DN the input may hold
    (a band gain of 1e-30 turns the model's smallest error into 1e26 DN): its residuals would not be integers the
    residual layer can code."""
    if base.size and not (np.isfinite(base).all() and np.abs(base).max() <= BASE_LIMIT):
        raise InputError('the model\'s reconstruction of this image lies far outside its DN range, so the error bound '
                         'cannot be kept: check the image\'s scale (band scale factors; reflectance x 10000 for EnMAP '
                         'L2A). No file was written.')


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


def model_band_indices(package):
    """Canonical indices of the bands the package's model codes (its band set, known: modelmeta checked it)."""
    return band_set(package.meta.band_set).indices


# --- header -------------------------------------------------------------------------------------------------

def layout_from_header(raster):
    """The output GeoTIFF's layout from an unpacked raster header (file band order)."""
    fwhm = raster.get('fwhm') or [None] * raster['band_count']
    bands = [BandInfo(raster['band_names'][i], raster['wavelengths'][i], fwhm[i], raster['gains'][i],
                      raster['offsets'][i]) for i in range(raster['band_count'])]
    bad = sorted({int(i) for i in raster.get('dead_bands', ())} | set(raster.get('bad_bands', ())))  # (the
    # input's bbl flags bands that hold data too)
    return RasterLayout(raster['width'], raster['height'], raster['dtype'], raster['nodata'], raster['crs_wkt'],
                        tuple(raster['geotransform']), bands, bad, tuple(raster.get('gcps', ())),
                        raster.get('gcp_crs_wkt', ''), dict(raster.get('rpc', {})),
                        bool(raster.get('pixel_is_point', False)))


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
    model: str = ''  # the id of the model that made the file (the default one when none was asked for)


@dataclass
class DecompressResult:
    path: str
    device: str
    provider: str
    seconds: float


def _check_ehc_path(path):
    check_named(path, 'ehc')
    check_writable(path)


def _open_input(source):
    """The input raster for a `with`; an open SpectralRaster (evaluate's) is used as it is and stays open."""
    owned = not isinstance(source, SpectralRaster)
    raster = open_spectral(source) if owned else source
    if not raster.is_standard_enmap:
        if owned:
            raster.close()
        found = (f'its wavelengths ({raster.wavelengths.min():.6g}-{raster.wavelengths.max():.6g} nm) do not match '
                 'them within 2 nm' if raster.band_count == N_BANDS else f'it has {raster.band_count} bands')
        raise InputError(f'{raster.source}: the compressors need the 224 EnMAP L2A bands (wavelengths 418-2446 nm), '
                         f'and {found}')
    return raster if owned else contextlib.nullcontext(raster)


def _prepare_input(raster, progress):
    """Unpack a deflated ZIP member on the first STAGE_SHARE of `progress` when it needs it (SpectralRaster.stage),
    find the dead bands (the coder needs them; scanned once, moving the next SCAN_SHARE) and check the image is
    not empty; returns the Progress for the rest."""
    share = STAGE_SHARE if raster.needs_staging else 0.0
    raster.stage(progress.sub(1, 0.0, share))
    progress.say('finding the bands that hold data')
    raster.find_dead_bands(progress.sub(1, share, share + SCAN_SHARE))
    raster.check_not_empty()
    return progress.sub(1, share + SCAN_SHARE, 1.0)


def checked_quality(value):
    """A quality level 1..10 given as an integer (or its text, or an integral float); InputError otherwise (5.5
    was read as 5, '5.5' raised a ValueError)."""
    quality = whole_number(value)
    if quality not in QUALITY_LEVELS:
        raise InputError(f'quality must be an integer from 1 to 10, not {value!r}')
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
             relative_error=None, relative_floor=None, latent_coder=None):
    """Compress an EnMAP input to a .ehc file; returns CompressResult with the rate measured from the file.

    max_error (DN): guarantee |original - reconstruction| <= max_error on every valid sample of every coded band;
    0 is lossless for all bands. band_max_errors: a limit per EnMAP band (224 values or a CSV path; every band is
    then coded); relative_error, relative_floor: |error| <= max(floor, r x |value|). See bounds.error_bound.
    quality None: chosen from the bound (auto_quality). model None: the default model. latent_coder: None, the
    model's best for the mode (lossy rdnet: LATENT_FOLDED, a spectral basis per tile where it pays, decoded by the
    folded synthesis), or a codecheader.LATENT_CODERS name (LATENT_BASIS: as 0.5 wrote them, for readers of 0.5;
    LATENT_CONTEXT: rdnet's tiles as 0.4.0 wrote them, for readers of 0.4.0).
    """
    started = time.perf_counter()
    check_distinct((output,), (source,))
    _check_ehc_path(output)
    bound = error_bound(max_error, band_max_errors, relative_error, relative_floor)
    _check_latent_coder(latent_coder, bound)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise InputError(f'model must be a model id or a model package folder, not {model!r}')
    package = find_model(os.fspath(model) if model else default_model_id() or 'pca')
    if quality is None:
        quality = auto_quality(package, None if bound is None else bound.representative_dn(model_band_indices(package)))
    quality, runner = checked_quality(quality), OnnxRunner(package, device, threads)
    with _open_input(source) as raster:
        progress = _prepare_input(raster, Progress(1, progress, is_cancelled))
        tile_size = _tile_size(tile_size, package.meta, bound)
        coder = _encoder(package, quality, runner, raster, bound, tile_size,
                         code_all_bands or not is_blank(band_max_errors), latent_coder)
        header = _file_header(raster, coder.codec_info(tile_size), runner)
        count, tile_warnings = _write_tiles(output, header, raster, coder, tile_size, progress)
        warnings = list(raster.warnings) + _unmarked_fill_warning(raster, coder) + tile_warnings
    size = os.path.getsize(output)
    rate = rate_metrics(size, count, CODED_BAND_COUNT)
    return CompressResult(output, size, count, rate['bpppb'], rate['compression_ratio'], runner.choice.device,
                          runner.provider, time.perf_counter() - started, warnings, quality, coder.max_error,
                          coder.bound, package.model_id)


def _check_latent_coder(name, bound):
    if name is not None and name not in LATENT_CODERS:
        raise InputError(f'latent_coder must be one of {", ".join(LATENT_CODERS)}, not {name!r}')
    if name in BASIS_CODERS and bound is not None:
        raise InputError(f'latent_coder {name} is for lossy files; an error bound keeps the plain coder')
    if name in EXACT_CODERS and bound is None:
        raise InputError(f'latent_coder {name} is for error-bounded and lossless files')


def _tile_size(requested, meta, bound):
    """The tile size of a file: as requested, else the model's (modelmeta.ModelMetadata), at most BOUNDED_TILE
    under an error bound (its layers hold several copies of a tile; measured: the same rate in 1/3 of the memory)."""
    if requested is None and bound is not None:
        requested = min(meta.effective_tile_size, BOUNDED_TILE)
    return checked_tile_size(requested if requested not in (None, 0) else meta.effective_tile_size)


def checked_tile_size(value, what='tile size'):
    """A tile (or Zarr chunk) side from 1 to MAX_TILE_SIZE px, given as a whole number; InputError otherwise."""
    size = whole_number(value)
    if size is None or not 1 <= size <= MAX_TILE_SIZE:  # decoding a larger one could need over 1.5 GB
        raise InputError(f'the {what} must be from 1 to {MAX_TILE_SIZE} px, a whole number, not {value!r}')
    return size


def _encoder(package, quality, runner, raster, bound, tile_size, all_bands, latent_scheme=None):
    """The TileCoder that writes `raster`: the model's bands, and every other live band when `all_bands` or
    lossless (extra bands); band gains and per-band limits in canonical order."""
    if bound is not None:  # limits per band are given in the image's band order
        bound = bound.in_canonical_order(raster.canonical_index)
    max_error = bound.uniform if bound is not None else None
    coded, dead = model_band_indices(package), raster.canonical_dead_bands
    extra = np.array([i for i in range(raster.band_count) if i not in set(coded) and not dead[i]], int) \
        if all_bands or max_error == 0 else np.zeros(0, int)
    radiometry = Radiometry.of(raster.gains[raster.canonical_index][coded],
                               raster.offsets[raster.canonical_index][coded])
    plain = tile_size * tile_size > residual.MAX_PIXELS  # the predicted residual's sums would not stay exact
    return TileCoder(package, quality, runner, extra, max_error, radiometry, bound,
                     residual_coder=RESIDUAL_PLAIN if plain else None, latent_scheme=latent_scheme,
                     compact=CONTAINER_VERSION >= COMPACT_SINCE)


def _file_header(raster, codec_info, runner):
    """A file's header: the raster (rasterheader.pack_raster), the codec info, and the informative device,
    software and time."""
    packed = pack_raster(raster, np.asarray(raster.dead_bands))
    if raster.nodata is None and raster.dtype.kind == 'f':
        packed['fill'] = samples.fill_value(raster.dtype, None)  # NaN; older files meant 0
    header = {'format': FORMAT_NAME, 'raster': packed, 'codec': codec_info.to_json(),
              # no chunk byte depends on threads
              'device': {'used': runner.choice.device, 'provider': runner.provider_of('encoder')},
              'software': software_versions(), 'created': creation_time()}
    _check_readable(header, raster)
    return header


def _check_readable(header, raster):
    """InputError, before any tile is written, when a decoder would refuse this header (the writer must never make
    a file its readers do not accept): the checks every reader runs, on the header as the file will state it."""
    label = 'the new file'
    try:
        checked_header(json.loads(to_json_bytes(header)), label, 1 << 62)
    except FormatError as exc:
        problem = str(exc).removeprefix(f'{label}: ')
        raise InputError(f'{raster.source} cannot be stored as a .ehc file ({problem}); no file was written.') \
            from None


def _write_tiles(output, header, raster, coder, tile_size, progress):
    """Write the .ehc file: `header`, then a chunk per tile; returns (valid pixels, warnings). This thread reads
    the tiles and writes their chunks in order while up to `threads` tiles are coded at once (tiling.ordered_map)."""
    tiles = tile_grid(raster.width, raster.height, tile_size)
    tile_progress = Progress(len(tiles), progress)
    count, dead = 0, raster.canonical_dead_bands
    band_numbers, totals = np.asarray(raster.canonical_index) + 1, InputCounts(np.zeros(raster.band_count, np.int64))

    tile_progress.check()
    workers = tile_workers(coder.runner.threads, coder.transform.window(tiles[0], raster.width, raster.height))
    split = workers <= 1  # one tile worker runs the model while this thread codes the latent it made before (none:
    # this thread does both); this thread also checks each window it reads (the worker is the busier: its checks
    # took 0.6 of its 3.9 s cpu in a full-tile rdnet compress, while this thread waited 1.3 s for it)

    def inputs(cube, kept, counts):
        return _tile_inputs(coder, cube, raster.nodata, dead, kept, band_numbers, counts)

    def windows():
        for tile in tiles:
            window = coder.transform.window(tile, raster.width, raster.height)
            cube = raster.read_canonical(window.x, window.y, window.width, window.height)
            tile_progress.advance(READ_STAGE)
            kept = kept_slices(tile, window)
            counts = InputCounts(np.zeros(raster.band_count, np.int64))  # per tile: threads never add into one
            yield tile, cube, kept, counts, inputs(cube, kept, counts) if split else None
            raster.done_with(tile)

    def code(item):
        tile, cube, kept, counts, checked = item
        if checked is None:  # (several tile workers: each checks its own windows)
            checked = inputs(cube, kept, counts)
        part = _tile_latent(coder, cube, raster.nodata, dead, kept, checked, tile_progress.advance,
                            len(tiles) <= FINE_TILES)
        return tile, counts, part if split else _tile_chunk(coder, part, raster.nodata, tile_progress.advance)

    coded = ordered_map(code, windows(), workers, SPLIT_AHEAD if split else 1, on_wait=tile_progress.pulse)
    with EhcWriter(output, header) as writer, contextlib.closing(coded):
        tile_progress.report(0.0)  # the input is checked and the output open
        raster.report_waits_to(tile_progress, READ_STAGE)  # a read waiting for a ZIP member's rows moves the bar
        try:
            packing = 1.0 - READ_STAGE - INPUT_STAGE - MODEL_STAGE - LATENT_STAGE
            for tile, counts, part in tile_progress.each(coded, 'compressing tile {} of {}', packing):
                payload, pixels = _tile_chunk(coder, part, raster.nodata, tile_progress.advance) if split else part
                writer.add_chunk(payload, tile.as_dict())
                count += pixels
                totals.add(counts)
        finally:
            raster.report_waits_to(None)
        writer.footer_meta = {'valid_pixels': count}
    return count, _nonfinite_warning(totals.nonfinite, band_numbers) + _far_warning(totals)


FAR_ROW_STEP = 8  # compress counts the samples a lossy model clips far on every 8th row of a tile
FAR_SHARE = 0.01  # and says so when more than this share of the valid samples of its bands are


@dataclass
class InputCounts:
    """What compress tells the user about its input, counted tile by tile (each tile its own, added up in order)."""

    nonfinite: np.ndarray  # per canonical band: NaN or ±Inf samples at valid pixels (kept out of the model)
    far: int = 0  # valid samples of the coded bands that a lossy model clips far (Radiometry.far_outside),
    lit: int = 0  # those above FAINT reflectance (Radiometry.lit), and
    sampled: int = 0  # how many were looked at (every FAR_ROW_STEP-th row, nodata samples left out)

    def add(self, other):
        self.nonfinite += other.nonfinite
        self.far += other.far
        self.lit += other.lit
        self.sampled += other.sampled


def tile_workers(threads, window):
    """How many tiles are coded at once (tiling.ordered_map) with `threads` threads: none besides the caller's
    with one thread; else `threads`, but a single one beside the reading and writing thread for tiles whose
    window is larger than PARALLEL_TILE_PIXELS (a 256 px rdnet tile holds some 300 MB while it is coded: two at
    once took a full-tile compress to 1.2 GB)."""
    if threads <= 1:
        return 0
    return threads if window.width * window.height <= PARALLEL_TILE_PIXELS else 1


def encode_tile(coder, cube, nodata, dead, kept, band_numbers=None, counts=None):
    """The chunk payload of one tile and its count of valid pixels.

    cube: the tile's window (224, h, w) of DN in canonical order, in the raster's own dtype (the sample section
    stores values in it); dead: canonical bool per band (restored as nodata); kept: the tile's slices in the
    window (tiling.kept_slices). NaN and ±Inf never reach the model: they are replaced, and restored from the
    tile's sample section. band_numbers: the 1-based band number of each canonical band, for messages; counts:
    an InputCounts the tile's non-finite samples and far clipped samples are added to.
    """
    inputs = _tile_inputs(coder, cube, nodata, dead, kept, band_numbers, counts)
    return _tile_chunk(coder, _tile_latent(coder, cube, nodata, dead, kept, inputs), nodata)


def _tile_inputs(coder, cube, nodata, dead, kept, band_numbers, counts):
    """encode_tile's checks of a tile's window: (valid pixels, restored bands, lone nodata samples of a lossy file:
    samples.lone_nodata), its non-finite and far samples added to `counts` (None: not counted)."""
    valid = valid_pixels(cube, nodata, ~dead)
    tile_valid, native = valid[kept], cube[:, kept[0], kept[1]]
    restored = np.zeros(len(dead), bool)
    restored[coder.bands] = True
    restored &= ~dead
    # in every mode: an error bound kept a lone nodata sample as data, so one of -3.4e38 or -2^31 (outside
    # EXACT_LIMIT) refused the whole image; it is restored exactly from the sample section either way
    lone = samples.lone_nodata(cube, valid, nodata, restored)
    if coder.bound is not None:
        samples.check_exact_range(native, restored, tile_valid,
                                  np.arange(1, len(dead) + 1) if band_numbers is None else band_numbers,
                                  None if lone is None else lone[:, kept[0], kept[1]])
    if counts is not None:
        counts.nonfinite += samples.count_nonfinite(native, tile_valid) * restored
        if coder.bound is None:
            _count_far(coder, native, tile_valid, None if lone is None else lone[:, kept[0], kept[1]], dead, counts)
    return valid, restored, lone


def _tile_latent(coder, cube, nodata, dead, kept, inputs, advance=_no_progress, in_parts=False):
    """encode_tile's model part: (cube, valid pixels, kept, restored bands, model input, latent, lone nodata
    samples) of a tile's window and its _tile_inputs; advance(share): moves the bar by the stage done
    (Progress.advance, from any thread)."""
    valid, restored, lone = inputs
    unit = coder.unit_input(cube, valid, dead, lone)
    dn = samples.model_input(cube, valid, dead, lone) if unit is None or coder.reads_model_input else None
    advance(INPUT_STAGE)
    modelling = _Shares(advance, MODEL_STAGE)
    latent, peaks = coder.latent(dn, valid, kept, modelling, in_parts, unit)
    geometry = coder.transform.latent_geometry(valid, kept)
    latent = coder.latent_coder.prepare(latent, geometry, peaks)  # coding's first half
    modelling.finish()
    return cube, valid, kept, restored, coder.input_for_coding(dn), latent, lone


class _Shares:
    """A stage's done(fraction) hook (its parts say how far they are, 0..1) as the advances of its share."""

    def __init__(self, advance, share):
        self.advance, self.share, self.reached = advance, share, 0.0

    def __call__(self, fraction):
        if fraction > self.reached:
            self.advance(self.share * (fraction - self.reached))
            self.reached = fraction

    def finish(self):
        self(1.0)


def _tile_chunk(coder, part, nodata, advance=_no_progress):
    """encode_tile's coding part: (chunk payload, valid pixels) of a _tile_latent."""
    cube, valid, kept, restored, dn, latent, lone = part
    coding = _Shares(advance, LATENT_STAGE)
    sections, exact = coder.encode_latent(latent, dn, valid, kept, coding)
    coding.finish()
    tile_valid, native = valid[kept], cube[:, kept[0], kept[1]]
    positions, values = samples.overrides(native, restored, tile_valid, samples.fill_value(cube.dtype, nodata),
                                          coder.lossless, None if lone is None else lone[:, kept[0], kept[1]])
    if exact is not None and not coder.lossless:  # a value within the bound may read as nodata, or not as it,
        # or be rounded off it by the raster's type
        flips = np.union1d(samples.nodata_flips(native, exact, coder.bands, restored, tile_valid, nodata),
                           samples.unheld(native, exact, coder.bands, restored, tile_valid))
        if flips.size:
            positions = np.union1d(positions, flips)
            values = native.reshape(-1)[positions]
    if positions.size:
        sections = replace(sections, samples=samples.pack(positions, values, cube.dtype))
    return coder.pack(sections), int(tile_valid.sum())


def _count_far(coder, native, valid, lone, dead, counts):
    """Add to `counts` the valid samples of the coded (live) bands on every FAR_ROW_STEP-th row of a tile that the
    lossy model clips far, and how many were looked at (non-finite samples and the tile's lone nodata samples,
    samples.lone_nodata, left out)."""
    picked = (coder.coded, slice(None, None, FAR_ROW_STEP))
    values = native[picked][:, valid[::FAR_ROW_STEP]]  # (coded bands, sampled pixels)
    kept = np.isfinite(values) if values.dtype.kind == 'f' else np.ones(values.shape, bool)
    if lone is not None:
        kept &= ~lone[picked][:, valid[::FAR_ROW_STEP]]
    kept[dead[coder.coded]] = False
    values = np.where(kept, values, 0)  # 0 DN lies inside and is not lit
    counts.far += coder.radiometry.far_outside(values)
    counts.lit += coder.radiometry.lit(values)
    counts.sampled += int(np.count_nonzero(kept))


def _unmarked_fill_warning(raster, coder):
    """The warning of an integer image without a nodata value whose file leaves bands out: they come back as 0,
    which reads as data (the bands are not restored, as the mode says, but nothing marks them so)."""
    left_out = np.ones(raster.band_count, bool)
    left_out[coder.bands] = False
    left_out &= ~raster.canonical_dead_bands
    fill = samples.fill_value(raster.dtype, raster.nodata)
    if not left_out.any() or fill != 0 or raster.nodata is not None:
        return []
    numbers = np.sort(np.asarray(raster.canonical_index)[left_out] + 1)
    message = (f'The image declares no nodata value, so the {numbers.size} bands this file does not code (band'
               f'{"s" if numbers.size > 1 else ""} {samples.describe_bands(numbers)}) come back as 0, which reads as '
               'data: declare a nodata value (for example -32768), or use CODE_ALL_BANDS to keep them.')
    LOG.warning(message)
    return [message]


def _far_warning(counts):
    """The warning of an image on another scale: many valid samples far outside reflectance 0..1, or almost none
    above FAINT (then the lossy models see next to nothing and return their own noise)."""
    if counts.far > FAR_SHARE * counts.sampled:
        message = (f'About {100 * counts.far / counts.sampled:.1f} % of the valid samples lie more than '
                   f'{100 * CLIP_MARGIN:g} % reflectance outside 0..1, which the lossy models clip to: ')
    elif counts.sampled and counts.lit <= FAR_SHARE * counts.sampled:
        message = (f'{100 * (1 - counts.lit / counts.sampled):.1f} % of the valid samples lie below '
                   f'{100 * FAINT:g} % reflectance at the image\'s scale, where the lossy models see next to nothing: ')
    else:
        return []
    message += ('check the image\'s scale (reflectance x 10000 for EnMAP L2A, or band scale factors), or use MAX_ERROR '
                'to keep every value within a bound.')
    LOG.warning(message)
    return [message]


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
    return _tile_cube(coder, _decoded_tile(coder, payload, tile, window), tile, dtype, nodata, dead, fill)


def _decoded_tile(coder, payload, tile, window, done=_no_progress, in_parts=False, output=None):
    """decode_tile's model part: (TileSections, the tile's valid pixels, restored values (bands, valid pixels));
    done(fraction), output: as for TileCoder.decode."""
    sections = coder.unpack(payload)
    kept = kept_slices(tile, window)
    valid = np.zeros((window.height, window.width), bool)
    valid[kept] = decode_mask(sections.mask, tile.height, tile.width)
    return sections, valid[kept], coder.decode(sections, valid, kept, done, in_parts, output)


def _tile_cube(coder, decoded, tile, dtype, nodata, dead, fill=None, out=None):
    """decode_tile's array part: the canonical cube of a _decoded_tile (in `out`, of its shape and dtype, when
    given)."""
    sections, tile_valid, values = decoded
    fill = samples.fill_value(dtype, nodata) if fill is None else fill
    shape = (len(dead), tile.height, tile.width)
    if coder.decodes_tiles:
        canonical = np.empty(shape, dtype) if out is None else out
        _canonical_of_blocks(canonical, coder.bands, values, tile_valid, nodata, dead, fill)
    else:
        values = output_values(values, dtype, nodata, coder.bound is not None, overwrite=True)
        canonical = np.empty(shape, values.dtype) if out is None else out
        canonical.fill(fill)
        _scatter(canonical, coder.bands, tile_valid, values)
        canonical[dead] = fill
    if sections.samples is not None:
        samples.restore(canonical, sections.samples)
    return canonical


def header_fill(raster):
    """The fill value of a file's nodata pixels: `raster.fill` (NaN for float rasters without nodata, written
    since 0.2) or, in older files, nodata, else 0."""
    nodata = raster['nodata']
    fill = raster.get('fill', nodata if nodata is not None else 0)
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise FormatError(f'the header\'s raster.fill must be a number, not {fill!r}')
    return fill


def decoded_tiles(reader, coder, raster, workers=0, steps=None, share=1.0, reuse=False):
    """(tile, canonical cube) of every chunk of an open EhcReader, in file order; raster: the unpacked header.
    Open the reader with validation.open_checked: its header and index are then known to be consistent.
    workers > 0: that many tiles are decoded at once while this thread reads the next chunk (tiling.ordered_map).
    steps: a tiling.Progress of a step per tile, advanced by `share` of a step as each tile's model part is done.
    reuse: every cube is made in one array, so each is valid only until the next is asked for (for a consumer that
    writes it and lets go: a fresh 29 MB cube per 256 px tile cost some 7k page faults)."""
    dead = np.zeros(raster['band_count'], bool)
    dead[np.asarray(raster['dead_bands'], int)] = True
    dead = dead[np.asarray(raster['canonical_index'], int)]

    def chunks():  # read in this thread only; a bad chunk is refused in its turn, after the tiles before it
        for index in range(reader.chunk_count):
            tile = Tile.from_dict(reader.chunk_meta(index))
            window = coder.transform.window(tile, raster['width'], raster['height'])
            size = reader.stored_size(index)
            try:
                if size > max_chunk_bytes(window):
                    raise FormatError(f'{reader.path}: chunk {index} takes {size} bytes, more than a '
                                      f'{window.width} x {window.height} px tile can need')
                yield index, tile, window, reader.read_chunk(index)
            except FormatError as exc:
                yield index, tile, window, exc

    @contextlib.contextmanager
    def naming(index, tile):
        try:
            yield
        except FormatError as exc:
            if reader.path in str(exc):
                raise
            raise FormatError(f'{reader.path}: chunk {index} (the tile at {tile.x}, {tile.y}): {exc}') from exc

    def decode(item):
        index, tile, window, payload = item
        if isinstance(payload, FormatError):
            raise payload
        decoding = _Shares(steps.advance if steps is not None else _no_progress, share)
        with naming(index, tile):
            decoded = _decoded_tile(coder, payload, tile, window, decoding, reader.chunk_count <= FINE_TILES,
                                    (raster['dtype'], raster['nodata']))  # rounded here: the writing thread is busier
        decoding.finish()
        return index, tile, decoded

    # the model part on the workers, the array part here: this thread would otherwise wait for them; 3 tiles read
    # ahead keep them busy while the GeoTIFF writer encodes blocks (a tile's, or a row of them: _write_geotiff)
    on_wait = steps.pulse if steps is not None else None
    held = np.zeros(0, raster['dtype'])
    for index, tile, decoded in ordered_map(decode, chunks(), workers, DECODE_AHEAD, on_wait):
        out = None
        if reuse:
            size = len(dead) * tile.height * tile.width
            held = held if held.size >= size else np.empty(size, raster['dtype'])
            out = held[:size].reshape(len(dead), tile.height, tile.width)
        with naming(index, tile):
            cube = _tile_cube(coder, decoded, tile, raster['dtype'], raster['nodata'], dead, header_fill(raster), out)
        yield tile, cube


def max_chunk_bytes(window):
    """The most bytes a valid chunk of a tile with this context window takes: every one of its samples stored
    raw (32 bits), escaped and listed in the sample section (u32 position and a float64), with room to spare."""
    return 32 * N_BANDS * window.width * window.height + (1 << 20)


def stated_package_folder(path):
    """The custom package folder a file's header (or a Zarr store's codec) names, when it may be looked at: only a
    folder as writers record it, absolute and on this machine's disks. A relative one is read in whatever folder the
    reader runs in, and a network one (\\\\host\\share, //host/share) has merely decoding a file reach out to a host
    the file names (on Windows with the user's credentials) and run the model it finds there. None otherwise: the
    installed model of the file's id is used."""
    if not path or path.replace('\\', '/').startswith('//') or not os.path.isabs(path):
        return None
    return path if os.path.isdir(path) else None


def find_package(info):
    """The model package a file's CodecInfo names (its custom package when that is still there), or
    ModelNotFoundError naming the model to install."""
    path = stated_package_folder(info.model_path)
    if path is not None:  # a custom package (its id may equal a bundled one's): the one that made the file
        custom = find_model(path)
        if info.made_with(custom.decoder_sha256()):
            return custom
    try:
        return find_model(info.model_id)
    except ModelNotFoundError:
        if path is not None:
            return find_model(path)
        raise ModelNotFoundError(f'this file needs the model "{info.model_id}", which is not installed '
                                 f'(installed: {", ".join(p.model_id for p in list_models()) or "none"})') from None


def exact_latent_coder(package):
    """The latent coder of `package`'s error-bounded tiles reconstructed in exact arithmetic (codecheader.EXACT_CODERS:
    the same values on every CPU), or None when its decoder has no exact synthesis. (No model session is opened.)"""
    transform = make_transform(OnnxRunner(package, 'cpu', 1), package.meta)
    return None if transform.exact() is None else context_coder.new_file_scheme(package.meta, exact=True)


def decoder_for(info, device, threads, raster=None, compact=False, path=None):
    """(TileCoder, OnnxRunner) that decode a file with this checked CodecInfo (TileCoder.codec_info, read back) and
    unpacked raster header: the entry point of every decoder (decompress, cli verify, and the Zarr codec, whose
    chunks have no raster header and EnMAP's scale). compact: the file may frame tiles compactly (COMPACT_SINCE).
    path: the file, named in the errors of a missing or different model and of a coding this version lacks."""
    try:
        return _decoder_for(info, device, threads, raster, compact)
    except (FormatError, ModelNotFoundError) as exc:
        if path is None or os.fspath(path) in str(exc):
            raise
        raise type(exc)(f'{os.fspath(path)}: {exc}') from exc


def _decoder_for(info, device, threads, raster, compact):
    package = find_package(info)
    if not info.made_with(package.decoder_sha256()):
        raise FormatError(f'this file was made with a different version of model "{package.model_id}" than the '
                          'one installed (sha256 differs); install the matching model to decode it')
    runner = OnnxRunner(package, device, threads)
    radiometry = _band_gains(raster, package) if info.radiometry == BAND_GAINS else None
    bound = info.bound
    coder = TileCoder(package, info.quality, runner, np.asarray(info.extra_bands, int),
                      bound.uniform if bound is not None else None, radiometry, bound, info.extra_coder,
                      info.residual_coder, info.latent_coder, compact)
    return coder, runner


def _band_gains(raster, package):
    """The Radiometry of the model's bands by the gains and offsets of an unpacked raster header."""
    order, coded = np.asarray(raster['canonical_index'], int), model_band_indices(package)
    return Radiometry.of(np.asarray(raster['gains'])[order][coded], np.asarray(raster['offsets'])[order][coded])


def decompress(source, output, device='auto', threads=None, progress=None, is_cancelled=None, on_tile=None):
    """Decompress a .ehc file to a GeoTIFF in the input's band order, dtype, nodata and georeferencing.
    on_tile(tile, canonical cube): called with each tile as it is written, in file order (evaluate measures the
    tiles there: the reconstruction is never read back)."""
    started = time.perf_counter()
    check_distinct((output,), (source,))
    check_named(output, 'geotiff')
    check_writable(output)
    reader, checked = open_checked(source)
    with reader:
        coder, runner = decoder_for(checked.codec, device, threads, checked.raster, reader.version >= COMPACT_SINCE,
                                    source)
        check_coder(checked, coder, source)
        tile_progress = Progress(reader.chunk_count, progress, is_cancelled)
        tile_progress.report(0.0)  # the file is checked and its decoder made
        tile_progress.check()
        first = Tile.from_dict(reader.chunk_meta(0)) if reader.chunk_count else Tile(0, 0, 1, 1)
        workers = tile_workers(runner.threads, coder.transform.window(first, checked.raster['width'],
                                                                      checked.raster['height']))
        model_share = DECODE_STAGE * (1.0 - ON_TILE_STAGE if on_tile is not None else 1.0)
        with contextlib.closing(decoded_tiles(reader, coder, checked.raster, workers, tile_progress, model_share,
                                              reuse=on_tile is None)) as tiles:  # (the writer copies each tile)
            _write_geotiff(output, checked.raster, tiles, tile_progress, on_tile, 1.0 - model_share,
                           block_for(checked.codec.tile_size))
    provider = coder.transform.folded().provider if coder.folded else EXACT_PROVIDER if coder.exact else \
        runner.provider  # (no graph opened for them)
    return DecompressResult(output, runner.choice.device, provider, time.perf_counter() - started)


def _write_geotiff(output, raster, tiles, progress, on_tile=None, share=1.0, block=BLOCK):
    """Write (tile, canonical cube) pairs atomically as the GeoTIFF of an unpacked raster header, in its band
    order; at most one row of TIFF blocks waits in memory (none when `block`, the side of its TIFF blocks, is the
    tiles': geotiff.block_for). progress: a step per tile, of which this moves `share` (on_tile ON_TILE_STAGE of
    a step: it gets a tiling.Progress over it as its third argument)."""
    canonical_index = np.asarray(raster['canonical_index'], int)
    in_file_order = np.array_equal(canonical_index, np.arange(canonical_index.size))  # wavelength-ordered files
    with atomic_output(output) as tmp:
        writer = GeoTiffWriter(tmp, layout_from_header(raster), block)
        try:
            writing = share - (ON_TILE_STAGE if on_tile is not None else 0.0)
            for tile, canonical in progress.each(tiles, 'decoding tile {} of {}', writing):
                file_order = canonical
                if not in_file_order:
                    file_order = np.empty_like(canonical)
                    file_order[canonical_index] = canonical
                writer.write(tile.x, tile.y, file_order)
                if on_tile is not None:
                    on_tile(tile, canonical, progress.part(ON_TILE_STAGE))
                    progress.advance(ON_TILE_STAGE)
                if writer.completes_blocks(tile.x, tile.y, tile.width, tile.height):
                    writer.flush()  # its blocks alone (a tenth of a second): encoded while the next tiles decode
                elif writer.ends_block_row(tile.x, tile.y, tile.width, tile.height):  # the bar moves meanwhile
                    progress.say('writing a row of GeoTIFF blocks')
                    encoding = progress.part(writing)
                    writer.flush(encoding.report)
            progress.say('writing the last blocks of the GeoTIFF')
        finally:
            writer.close()


def _canonical_of_blocks(canonical, bands, blocks, valid, nodata, dead, fill):
    """Make `canonical` (bands, h, w) the canonical cube of a decodes_tiles tile: its DN (transforms.TileBlocks) or
    None, rounded in place and cast straight into the rows of `bands` (no tile-sized array between; the same values
    as output_values), `fill` in every other band and at every invalid pixel (TileBlocks leaves no valid one without
    a value)."""
    restored = np.zeros(len(dead), bool)
    if blocks is not None:
        values = blocks.values if blocks.rounded else rounded_values(blocks.values, canonical.dtype, nodata,
                                                                     overwrite=True)
        for start, stop, row in _runs(bands):
            blocks.put(values[row:row + stop - start], canonical[start:stop])
        restored[bands] = True
    canonical[~restored | dead] = fill
    if not valid.all():  # (boolean indexing over the pixel axes took 10 times as long)
        np.copyto(canonical, fill, casting='unsafe', where=~valid)


def _runs(bands):
    """(first band, end band, its row in `bands`) of each run of consecutive band numbers in `bands`."""
    breaks = np.flatnonzero(np.diff(bands) != 1) + 1
    starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(bands)]])
    return [(int(bands[a]), int(bands[b - 1]) + 1, int(a)) for a, b in zip(starts, ends)]


def _scatter(canonical, bands, valid, values):
    if valid.all():  # one assignment: a band at a time through the mask took 9 % of a full-tile rdnet decompress
        canonical[bands] = values.reshape(len(bands), *valid.shape)
        return
    for row, band in enumerate(bands):
        canonical[band][valid] = values[row]

