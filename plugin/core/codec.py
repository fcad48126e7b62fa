"""Compress, decompress and evaluate: one pipeline for every model.

read (canonical order) -> tile -> model transform -> quantise -> entropy-code -> .ehc chunk, and back.
Every call streams tile by tile, reports progress, honours cancellation and writes its outputs atomically.
"""
import logging
import os
import platform
import struct
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import entropy
from .bands import hyspecnet_keep_mask
from .container import EhcReader, EhcWriter
from .enmap import open_spectral
from .errors import FormatError, InputError, ModelError, OutputError
from .geotiff import BandInfo, GeoTiffWriter, RasterLayout, cast_dn
from .metrics import rate_metrics
from .outputs import atomic_output, check_writable
from .rasterheader import pack_raster, unpack_raster
from .runtime import OnnxRunner, find_model
from .tiling import Progress, Tile, tile_grid

LOG = logging.getLogger('enmap_compress')
FORMAT_NAME = 'ehc'
CODED_BAND_COUNT = 202
CHUNK_VERSION = 1
DEFAULT_TILE = 256
QUALITY_LEVELS = tuple(range(1, 11))


def software_versions():
    from .. import __version__ as plugin_version

    versions = {'enmap_compress': plugin_version, 'python': platform.python_version(), 'numpy': np.__version__,
                'platform': platform.platform(terse=True)}
    try:
        import onnxruntime

        versions['onnxruntime'] = onnxruntime.__version__
    except ImportError:
        pass
    return versions


# --- chunk payload: length-prefixed sections --------------------------------------------------------------

def pack_sections(sections):
    head = struct.pack('<BH', CHUNK_VERSION, len(sections)) + b''.join(struct.pack('<I', len(s)) for s in sections)
    return head + b''.join(sections)


def unpack_sections(payload):
    try:
        version, count = struct.unpack_from('<BH', payload, 0)
        if version != CHUNK_VERSION:
            raise FormatError(f'tile payload version {version} is not supported (expected {CHUNK_VERSION})')
        lengths = struct.unpack_from(f'<{count}I', payload, 3)
    except struct.error as exc:
        raise FormatError('a tile payload is truncated') from exc
    offset, sections = 3 + 4 * count, []
    for length in lengths:
        sections.append(payload[offset:offset + length])
        offset += length
    if offset != len(payload):
        raise FormatError('a tile payload has an inconsistent length')
    return sections


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
    try:
        bits = np.frombuffer(zlib.decompress(data[1:]), np.uint8)
        return np.unpackbits(bits)[:height * width].reshape(height, width).astype(bool)
    except (zlib.error, ValueError) as exc:
        raise FormatError('a tile mask is corrupt') from exc


# --- the model codec ----------------------------------------------------------------------------------------

@dataclass
class ModelCodec:
    """Quantised transform coding with one model package at one quality level (pixel-wise models)."""

    package: object
    quality: int
    runner: OnnxRunner
    code_extra_bands: bool = False
    step: float = field(init=False)
    channel_scale: np.ndarray = field(init=False)

    def __post_init__(self):
        meta = self.package.meta
        if meta.get('kind', 'pixel') != 'pixel':
            raise ModelError(f'model {self.package.model_id} is of kind "{meta.get("kind")}", '
                             'which this version of EnMAP Compress cannot run')
        levels = {int(q['level']): q for q in meta['quality_levels']}
        if self.quality not in levels:
            raise ModelError(f'model {self.package.model_id} has no quality level {self.quality} '
                             f'(levels: {sorted(levels)})')
        self.step = float(levels[self.quality]['step'])
        scale = meta.get('channel_step_scale')
        self.channel_scale = np.asarray(scale if scale else [1.0] * int(meta['latent_channels']), np.float32)
        self.extra_step_dn = max(1.0, round(self.step * 1e4 * 2.0))

    def encode(self, dn, valid, coded, extra):
        """dn: (224, h, w) float DN canonical; returns the tile's sections (latent, extra bands)."""
        x = np.clip(dn[coded][:, valid], 0.0, 1e4).T * np.float32(1e-4)
        latent = self.runner.run('encoder', x) if x.shape[0] else np.zeros((0, self.channel_scale.size), np.float32)
        symbols = np.rint(latent / (self.step * self.channel_scale)).astype(np.int32).T
        sections = [entropy.encode_channels(symbols)]
        if extra.size:
            values = np.clip(dn[extra][:, valid], -32767, 32767) / self.extra_step_dn
            sections.append(entropy.encode_channels(np.rint(values).astype(np.int32)))
        return sections

    def decode(self, sections, valid_count, coded, extra):
        """Returns (coded DN (n_coded, N), extra DN (n_extra, N)) for the N valid pixels of a tile."""
        symbols = entropy.decode_channels(sections[0])
        if symbols.shape != (self.channel_scale.size, valid_count):
            raise FormatError(f'a tile holds {symbols.shape} latent symbols, expected '
                              f'{(self.channel_scale.size, valid_count)}')
        latent = symbols.T.astype(np.float32) * (self.step * self.channel_scale)
        x = self.runner.run('decoder', latent) if valid_count else np.zeros((0, len(coded)), np.float32)
        coded_dn = x.T * np.float32(1e4)
        extra_dn = np.zeros((len(extra), valid_count), np.float32)
        if len(extra) and len(sections) > 1:
            extra_dn = entropy.decode_channels(sections[1]).astype(np.float32) * self.extra_step_dn
        return coded_dn, extra_dn


def model_band_indices(package):
    """Canonical band indices a model codes (the HySpecNet 202-band set for every bundled model)."""
    band_set = package.meta.get('band_set', 'hyspecnet202')
    if band_set != 'hyspecnet202':
        raise ModelError(f'model {package.model_id} uses band set "{band_set}", which is not supported')
    return np.flatnonzero(hyspecnet_keep_mask())


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
                        tuple(raster['geotransform']), bands)


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
    raster = open_spectral(source)
    if not raster.is_standard_enmap:
        raster.close()
        raise InputError(f'{source} has {raster.band_count} bands; the compressors need the 224 EnMAP L2A bands '
                         '(wavelengths 418-2446 nm)')
    raster.check_not_empty()
    return raster


def _quality(value):
    quality = int(value)
    if quality not in QUALITY_LEVELS:
        raise InputError(f'quality must be an integer from 1 to 10, not {value}')
    return quality


def compress(source, output, model='pca', quality=5, device='auto', threads=None, code_all_bands=False,
             progress=None, is_cancelled=None, tile_size=DEFAULT_TILE):
    """Compress an EnMAP input to a .ehc file; returns CompressResult with the rate measured from the file."""
    started = time.perf_counter()
    _check_ehc_path(output)
    package = find_model(model)
    runner = OnnxRunner(package, device, threads)
    codec = ModelCodec(package, _quality(quality), runner, code_all_bands)
    with _open_input(source) as raster:
        dead = raster.to_canonical(np.asarray(raster.dead_bands)[:, None])[:, 0].astype(bool)
        coded = model_band_indices(package)
        extra = np.array([i for i in range(raster.band_count) if i not in set(coded) and not dead[i]], int) \
            if code_all_bands else np.zeros(0, int)
        header = {
            'format': FORMAT_NAME,
            'raster': pack_raster(raster, np.asarray(raster.dead_bands)),
            'codec': {'model_id': package.model_id, 'model_sha256': package.decoder_sha256(),
                      'quality': codec.quality, 'step': codec.step, 'tile_size': tile_size,
                      'band_set': package.meta.get('band_set', 'hyspecnet202'),
                      'extra_bands': [int(i) for i in extra],
                      'extra_step_dn': codec.extra_step_dn, 'entropy_coder': 'constriction-ans-v1'},
            'device': {'requested': device, 'used': runner.choice.device, 'provider': runner.provider,
                       'threads': runner.threads},
            'software': software_versions(),
            'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        }
        tiles = tile_grid(raster.width, raster.height, tile_size)
        steps = Progress(len(tiles), progress, is_cancelled)
        live = ~dead
        coded_live = coded[live[coded]]
        count = 0
        steps.check()
        with EhcWriter(output, header) as writer:
            for tile in tiles:
                cube = raster.read_canonical(tile.x, tile.y, tile.width, tile.height).astype(np.float32)
                valid = valid_pixels(cube, raster.nodata, live)
                if coded_live.size < coded.size:
                    cube[coded[~live[coded]]] = 0.0  # dead bands inside the model's set: neutral input
                sections = [encode_mask(valid)] + codec.encode(cube, valid, coded, extra)
                writer.add_chunk(pack_sections(sections), tile.as_dict())
                count += int(valid.sum())
                steps.step()
            writer.footer_meta = {'valid_pixels': count}
        warnings = list(raster.warnings)
    size = os.path.getsize(output)
    rate = rate_metrics(size, count, CODED_BAND_COUNT)
    return CompressResult(output, size, count, rate['bpppb'], rate['compression_ratio'], runner.choice.device,
                          runner.provider, time.perf_counter() - started, warnings)


def _decoder_for(header, device, threads):
    codec_info = header['codec']
    package = find_model(codec_info['model_id'])
    if package.decoder_sha256() != codec_info['model_sha256']:
        raise FormatError(f'this file was made with a different version of model "{package.model_id}" than the '
                          'one installed (sha256 differs); install the matching model to decode it')
    runner = OnnxRunner(package, device, threads)
    return ModelCodec(package, int(codec_info['quality']), runner), runner


def decompress(source, output, device='auto', threads=None, progress=None, is_cancelled=None):
    """Decompress a .ehc file to a GeoTIFF in the input's band order, dtype, nodata and georeferencing."""
    started = time.perf_counter()
    check_writable(output)
    with EhcReader(source) as reader:
        header = reader.header
        if header.get('format') != FORMAT_NAME:
            raise FormatError(f'{source} is not an EnMAP Compress image file')
        codec, runner = _decoder_for(header, device, threads)
        raster = unpack_raster(header['raster'])
        coded = model_band_indices(codec.package)
        extra = np.asarray(header['codec']['extra_bands'], int)
        canonical_index = np.asarray(raster['canonical_index'], int)
        nodata = raster['nodata']
        fill = np.nan if nodata is not None else 0.0  # NaN marks nodata until the cast to the output type
        steps = Progress(reader.chunk_count, progress, is_cancelled)
        steps.check()
        with atomic_output(output) as tmp:
            writer = GeoTiffWriter(tmp, layout_from_header(raster))
            try:
                for index in range(reader.chunk_count):
                    tile = Tile.from_dict(reader.chunk_meta(index))
                    sections = unpack_sections(reader.read_chunk(index))
                    valid = decode_mask(sections[0], tile.height, tile.width)
                    canonical = np.full((raster['band_count'], tile.height, tile.width), fill, np.float32)
                    coded_dn, extra_dn = codec.decode(sections[1:], int(valid.sum()), coded, extra)
                    _scatter(canonical, coded, valid, coded_dn)
                    _scatter(canonical, extra, valid, extra_dn)
                    canonical[np.asarray(raster['dead_bands'], int)] = fill
                    file_order = np.empty_like(canonical)
                    file_order[canonical_index] = canonical
                    writer.write(tile.x, tile.y, cast_dn(file_order, raster['dtype'], nodata))
                    steps.step()
            finally:
                writer.close()
    return DecompressResult(output, runner.choice.device, runner.provider, time.perf_counter() - started)


def _scatter(canonical, bands, valid, values):
    for row, band in enumerate(bands):
        canonical[band][valid] = values[row]

