"""EnMAP Compress as a numcodecs codec, so Zarr stores (and xarray / Dask on top) hold EnMAP cubes coded by any
bundled model: lossy, error-bounded or lossless.

    from enmap_compress.plugin.zarr_codec import EhcCodec, write_zarr
    write_zarr('ENMAP01-...Z.ZIP', 'scene.zarr', model='rdnet', quality=6)      # any input the reader accepts
    xarray.open_zarr('scene.zarr')['reflectance']                                # lazily, in parallel with Dask

The codec is registered under the id `enmap_ehc` by the package's `numcodecs.codecs` entry point, so a store
opens anywhere the package is installed, without importing this module first. Arrays are (bands, y, x) with
chunks of whole spectra by a spatial tile: (224, ty, tx). Each chunk is coded on its own by the core's tile coder
(codec.encode_tile / decode_tile, the same bytes as a tile of a .ehc file) behind a small header: its shape and
the bands that are nodata throughout it. The codec's configuration, stored in the array's metadata, carries what
decoding needs: model id and decoder sha256, quality, the bound (MAX_ERROR, or a per-band / relative bound), the
extra bands, nodata, dtype, the wavelengths
and the band order. A store whose model is missing names the model to install.

Format versions: 1, chunks of the model's own latent stream reconstructed by its decoder graph; 2 (since 0.7.0, the
error-bounded and lossless stores of a model with an exact synthesis: rdnet, pca), chunks of the model's exactly
reconstructed coder (codec.exact_latent_coder: the same values on every CPU, which their checksums need). 3 and 4
(written 0.7.1-0.7.3) are 1 and 2 with chunks that end in a CRC-32 of all their bytes (magic EHZ2): the chunk head
(its shape and dead-band flags) had no check of its own, so one flipped flag silently turned a band into nodata.
Readers before 0.7.1 refuse versions 3 and 4 asking for an update; stores of versions 1 and 2 keep their chunks
(EHZ1, also for chunks added to them now). 5 and 6 (written since 0.7.4) are 3 and 4 with chunks that also state a
CRC-32 of the array's codec configuration (magic EHZ3): a lossy chunk copied in from a store of another quality or
nodata decoded to other values without an error. Readers before 0.7.4 refuse them asking for an update; stores of
versions 3 and 4 keep their EHZ2 chunks.

Writing part of a stored chunk codes its other samples again (zarr decodes the chunk, writes into it and encodes it):
in lossy and error-bounded stores their errors add up, so write whole chunks (write_zarr and Dask's to_zarr do).

Only numcodecs is imported with this module; the core (GDAL, onnxruntime) on first use, zarr by write_zarr.
"""
import contextlib
import dataclasses
import json
import struct
import threading
import zlib

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ndarray_copy

CODEC_ID = 'enmap_ehc'
CHUNK_MAGIC = b'EHZ1'  # format versions 1 and 2
CHECKED_CHUNK_MAGIC = b'EHZ2'  # versions 3 and 4: the chunk ends in a CRC-32 of its bytes before it
TAGGED_CHUNK_MAGIC = b'EHZ3'  # versions 5 and 6: as EHZ2, and the head states the array's configuration tag
_CHUNK_HEAD = struct.Struct('<4sIII')  # magic, bands, height, width; then the dead-band bits and the tile payload
_CHUNK_CRC = struct.Struct('<I')
_CHUNK_TAG = struct.Struct('<I')  # after the head in versions 5 and 6: EhcCodec._config_tag
DEFAULT_VARIABLE = 'reflectance'
FORMAT_VERSIONS = (1, 2, 3, 4, 5, 6)
EXACT_VERSIONS = (2, 4, 6)  # error-bounded chunks reconstructed exactly (see the module docstring)
CHECKED_VERSIONS = (3, 4, 5, 6)
TAGGED_VERSIONS = (5, 6)
_REQUIRED_KEYS = ('model', 'model_sha256', 'quality', 'wavelengths', 'canonical_index')
_CONFIG_KEYS = _REQUIRED_KEYS + ('dtype', 'nodata', 'max_error', 'extra_bands', 'error_bound', 'format_version')
MAX_OLD_CHUNK_PIXELS = 1 << 20  # an unchecked EHZ1 chunk's head may state at most this (the writers did not limit
# their chunks; a damaged head must not ask for gigabytes); EHZ2 and EHZ3 chunks are tiles, at most MAX_TILE_SIZE a side


class EhcCodec(Codec):
    """A numcodecs codec for (bands, y, x) chunks of an EnMAP cube. Build one for writing with `for_model`;
    readers get it from the store's metadata (`numcodecs.get_codec(config)`)."""

    codec_id = CODEC_ID

    def __init__(self, model, model_sha256, quality, wavelengths, canonical_index, dtype='int16', nodata=-32768.0,
                 max_error=None, extra_bands=(), error_bound=None, format_version=1):
        from .core.bounds import whole_number

        version = whole_number(format_version)
        if version is None:
            raise ValueError(f'the {CODEC_ID} format_version must be a whole number, not {format_version!r}')
        if version not in FORMAT_VERSIONS:
            raise _unread_version(format_version)
        if version in EXACT_VERSIONS and max_error is None and error_bound is None:
            raise ValueError(f'{CODEC_ID} format version {format_version} is for error-bounded and lossless stores')
        # (whole numbers, not int(): a quality of 5.5 read as 5, a max_error of -1 or 2.7 as a bound, and each
        # decoded to a checksum error saying the chunk was changed)
        stated_quality, bound = whole_number(quality), None if max_error is None else whole_number(max_error)
        if stated_quality is None:
            raise ValueError(f'the {CODEC_ID} quality must be a whole number, not {quality!r}')
        if max_error is not None and (bound is None or bound < 0):
            raise ValueError(f'the {CODEC_ID} max_error must be None or a whole number from 0, not {max_error!r}')
        if error_bound is not None and not isinstance(error_bound, dict):
            raise ValueError(f'the {CODEC_ID} error_bound must be None or an object, not {error_bound!r}')
        self.model = str(model)
        self.model_sha256 = str(model_sha256)
        self.quality = stated_quality
        self.wavelengths = [float(w) for w in wavelengths]
        self.canonical_index = [int(i) for i in canonical_index]
        self.dtype = np.dtype(dtype).name
        self.nodata = None if nodata is None else float(nodata)
        self.max_error = bound
        self.extra_bands = [int(i) for i in extra_bands]
        self.error_bound = None if error_bound is None else dict(error_bound)  # per-band or relative (bounds.py)
        self.format_version = version
        if sorted(self.canonical_index) != list(range(len(self.wavelengths))):
            raise ValueError('canonical_index must be a permutation of the band numbers 0..bands-1')
        self._tag = self._config_tag()
        self._coder = None
        self._lock = threading.Lock()

    # -- construction for writing --------------------------------------------------------------------------------
    @classmethod
    def for_model(cls, wavelengths, model=None, quality=None, max_error=None, code_all_bands=False, dtype='int16',
                  nodata=-32768.0, band_max_errors=None, relative_error=None, relative_floor=None):
        """A codec for writing: resolves the model (default: the default model) and its decoder's sha256, the bound
        (the arguments of codec.compress), the quality (from the bound when None, as `compress` does) and the extra
        bands; wavelengths in array order."""
        from .core import bands, codec, runtime
        from .core.bounds import error_bound
        from .core.errors import InputError

        wavelengths = np.asarray(wavelengths, float)
        if not bands.matches_standard(wavelengths):
            raise InputError(f'the {CODEC_ID} codec needs the 224 EnMAP L2A bands (wavelengths 418-2446 nm); '
                             f'got {wavelengths.size} bands')
        bound = error_bound(max_error, band_max_errors, relative_error, relative_floor)
        package = runtime.find_model(model or runtime.default_model_id() or 'pca')
        coded = codec.model_band_indices(package)
        if quality is None:
            quality = codec.auto_quality(package, None if bound is None else bound.representative_dn(coded))
        all_bands = code_all_bands or (bound is not None and bound.lossless) or band_max_errors not in (None, '')
        extra = [i for i in range(wavelengths.size) if i not in set(coded)] if all_bands else []
        uniform = None if bound is None else bound.uniform
        exact = bound is not None and codec.exact_latent_coder(package) is not None
        made = cls(package.model_id if _is_bundled(package) else package.folder, package.decoder_sha256(),
                   codec.checked_quality(quality), wavelengths, bands.canonical_order(wavelengths), dtype, nodata,
                   uniform, extra, bound.codec_info() if bound is not None and uniform is None else None,
                   6 if exact else 5)
        made._check_writable()
        return made

    @classmethod
    def from_config(cls, config):
        """The codec of a store's metadata (numcodecs.get_codec): a later format version asks for an update (also
        when it brings keys this version does not know), any other configuration that is not one this codec wrote
        (a key unknown or missing, a value of the wrong kind) is a FormatError naming what is wrong, not a
        TypeError of __init__ or a bare int() message."""
        from .core.bounds import whole_number
        from .core.errors import FormatError

        config = dict(config)
        config.pop('id', None)
        version = whole_number(config.get('format_version', 1))
        damaged = f'the {CODEC_ID} codec configuration of this store is damaged'
        if version is not None and version > max(FORMAT_VERSIONS):
            raise _unread_version(version)
        unknown = sorted(set(config) - set(_CONFIG_KEYS), key=str)
        missing = [key for key in _REQUIRED_KEYS if key not in config]
        if unknown or missing:
            raise FormatError(f'{damaged} ({"unknown key" if unknown else "no key"} '
                              f'{", ".join(repr(k) for k in unknown or missing)})')
        try:
            return cls(**config)
        except (TypeError, ValueError) as exc:
            raise FormatError(f'{damaged} ({exc})') from None

    def get_config(self):
        """The store's codec metadata: JSON (a NaN or infinite nodata as its text, which __init__ reads back)."""
        config = super().get_config()
        if self.nodata is not None and not np.isfinite(self.nodata):
            config['nodata'] = str(self.nodata).replace('inf', 'Infinity').replace('nan', 'NaN')
        return config

    # -- pickling (Dask ships codecs to its workers): the configuration only, never the model sessions -----------
    def __getstate__(self):
        return self.get_config()

    def __setstate__(self, config):
        config = dict(config)
        config.pop('id', None)
        self.__init__(**config)

    # -- numcodecs API -------------------------------------------------------------------------------------------
    def encode(self, buf):
        from .core.codec import encode_tile

        chunk = np.asarray(buf)
        self._check_writable()
        self._check_chunk(chunk)
        coder, _ = self._tile_coder()
        canonical = chunk[self.canonical_index]
        dead = self._nodata_mask(canonical).all(axis=(1, 2))
        tile, window, kept = _whole_chunk(coder, chunk.shape)
        payload, _ = encode_tile(coder, canonical, self.nodata, dead, kept)
        head = _CHUNK_HEAD.pack(self._magic, *chunk.shape) + (_CHUNK_TAG.pack(self._tag) if self._tagged else b'')
        data = head + np.packbits(dead).tobytes() + payload
        return data + _CHUNK_CRC.pack(zlib.crc32(data)) if self._checked else data

    def decode(self, buf, out=None):
        from .core.codec import decode_tile
        from .core.errors import FormatError

        data = ensure_bytes(buf)
        coder, _ = self._tile_coder()  # (first: a store whose model is missing says so, whatever its chunks hold)
        count, height, width, dead, payload = self._chunk_parts(data)
        if out is not None and memoryview(out).nbytes != count * height * width * np.dtype(self.dtype).itemsize:
            raise FormatError(f'a {CODEC_ID} chunk of {count} x {height} x {width} samples does not fit the array\'s '
                              f'chunk of {memoryview(out).nbytes} bytes')
        tile, window, _ = _whole_chunk(coder, (count, height, width))
        canonical = decode_tile(coder, payload, tile, window, self.dtype, self.nodata, dead)
        chunk = np.empty_like(canonical)
        chunk[self.canonical_index] = canonical
        return ndarray_copy(chunk, out)

    # -- internals -----------------------------------------------------------------------------------------------
    @property
    def _checked(self):
        return self.format_version in CHECKED_VERSIONS

    @property
    def _tagged(self):
        return self.format_version in TAGGED_VERSIONS

    @property
    def _magic(self):
        if self._tagged:
            return TAGGED_CHUNK_MAGIC
        return CHECKED_CHUNK_MAGIC if self._checked else CHUNK_MAGIC

    def _config_tag(self):
        """CRC-32 of what a chunk decodes by: the configuration but the model's place (a custom package's folder;
        its sha256 counts) and the wavelengths (the band order counts)."""
        config = {key: value for key, value in self.get_config().items() if key not in ('model', 'wavelengths')}
        return zlib.crc32(json.dumps(config, sort_keys=True).encode())

    def _fits(self, height, width):
        """Whether a chunk of this shape may be written and read: a tile's (versions 3 to 6), or a version 1 or 2
        store's of at most MAX_OLD_CHUNK_PIXELS."""
        from .core.modelmeta import MAX_TILE_SIZE

        if self._checked:
            return height <= MAX_TILE_SIZE and width <= MAX_TILE_SIZE
        return height * width <= MAX_OLD_CHUNK_PIXELS

    @property
    def _largest(self):
        from .core.modelmeta import MAX_TILE_SIZE

        return f'{MAX_TILE_SIZE} x {MAX_TILE_SIZE}' if self._checked else f'{MAX_OLD_CHUNK_PIXELS}'

    def _chunk_parts(self, data):
        """(bands, height, width, dead-band flags, tile payload) of a chunk, each checked before it is used: its
        CRC (versions 3 to 6), magic, band count, configuration tag (5 and 6) and a shape the chunk may have."""
        from .core.errors import FormatError

        crc = _CHUNK_CRC.size if self._checked else 0
        if len(data) < _CHUNK_HEAD.size + crc:
            raise FormatError(f'a {CODEC_ID} chunk is truncated ({len(data)} bytes)')
        magic, count, height, width = _CHUNK_HEAD.unpack_from(data, 0)
        if magic != self._magic or count != len(self.wavelengths):
            raise FormatError(f'not a {CODEC_ID} chunk of this array (magic {magic!r}, {count} bands; a format '
                              f'version {self.format_version} chunk starts with {self._magic!r})')
        if crc:
            body, (stored,) = data[:-crc], _CHUNK_CRC.unpack_from(data, len(data) - crc)
            if zlib.crc32(body) != stored:
                raise FormatError(f'a {CODEC_ID} chunk is damaged (its CRC-32 does not match its {len(data)} bytes)')
            data = body
        start = _CHUNK_HEAD.size + (_CHUNK_TAG.size if self._tagged else 0)
        if len(data) < start:
            raise FormatError(f'a {CODEC_ID} chunk is truncated ({len(data)} bytes)')
        if self._tagged and _CHUNK_TAG.unpack_from(data, _CHUNK_HEAD.size)[0] != self._tag:
            raise FormatError(f'a {CODEC_ID} chunk was written with another codec configuration than this array\'s '
                              '(another model, quality, bound, dtype, nodata or band order): a chunk of another store '
                              'copied in?')
        if not (height and width and self._fits(height, width)):
            raise FormatError(f'a {CODEC_ID} chunk states {height} x {width} px, which no chunk of this store has')
        bits = (count + 7) // 8
        if len(data) < start + bits:
            raise FormatError(f'a {CODEC_ID} chunk is truncated ({len(data)} bytes)')
        dead = np.unpackbits(np.frombuffer(data, np.uint8, bits, start))[:count].astype(bool)
        return count, height, width, dead, data[start + bits:]

    def _check_chunk(self, chunk):
        if chunk.ndim != 3 or chunk.shape[0] != len(self.wavelengths):
            raise ValueError(f'the {CODEC_ID} codec codes chunks of whole spectra, (bands={len(self.wavelengths)}, '
                             f'y, x); got a chunk of shape {chunk.shape}: chunk the band axis as one piece')
        if not self._fits(*chunk.shape[1:]):
            raise ValueError(f'the {CODEC_ID} codec codes chunks of at most {self._largest} px (a larger one costs '
                             f'too much memory to decode); got {chunk.shape[1]} x {chunk.shape[2]}: chunk the y and x '
                             'axes in smaller pieces')
        if chunk.dtype != np.dtype(self.dtype):
            raise ValueError(f'this {CODEC_ID} codec was made for {self.dtype} data, not {chunk.dtype}')
        if chunk.flags.f_contiguous and not chunk.flags.c_contiguous:  # (zarr's order='F': it reads the decoded
            # chunk's bytes back in Fortran order, and this codec returns (bands, y, x) in C order)
            raise ValueError(f'the {CODEC_ID} codec needs arrays in C order (zarr order=\'C\', the default); got a '
                             'chunk in Fortran order')

    def _check_writable(self):
        """ValueError for a configuration no chunk should be written with: a dtype the codec does not code, or a
        nodata value that data of the dtype cannot hold (uint16 with the default -32768 read the bands the store
        leaves out as 32768, which is data)."""
        from .core.enmap import representable

        dtype = np.dtype(self.dtype)
        if dtype.kind not in 'biuf' or dtype.itemsize > 8:
            raise ValueError(f'the {CODEC_ID} codec codes integer and float data, not {self.dtype}')
        nodata = self.nodata
        if nodata is None or (dtype.kind == 'f' and np.isnan(nodata)) or (dtype.kind == 'b' and nodata in (0.0, 1.0)):
            return
        if dtype.kind != 'b' and representable(nodata, dtype):
            return
        raise ValueError(f'{self.dtype} data cannot hold the nodata value {nodata:g}: give the nodata value of the '
                         'data (or None)')

    def _nodata_mask(self, cube):
        invalid = ~np.isfinite(cube) if cube.dtype.kind == 'f' else np.zeros(cube.shape, bool)
        if self.nodata is not None:
            invalid |= cube == self.nodata
        return invalid

    def _tile_coder(self):
        """The core's TileCoder for this configuration, built once (thread-safe: Dask decodes chunks in threads)."""
        with self._lock:
            if self._coder is None:
                self._coder = self._build_coder()
            return self._coder

    def _build_coder(self):
        from .core import codec
        from .core.bounds import ErrorBound
        from .core.codecheader import CodecInfo
        from .core.context_coder import new_file_scheme
        from .core.errors import FormatError, ModelNotFoundError

        model_id, model_path = self.model, None
        if '/' in self.model or '\\' in self.model:
            model_id, model_path = self.model.replace('\\', '/').rstrip('/').rsplit('/', 1)[-1], self.model
        try:
            stated = None if self.error_bound is None else ErrorBound.from_codec_info({'error_bound': self.error_bound})
        except FormatError as exc:
            raise FormatError(f'the {CODEC_ID} codec configuration of this store is damaged ({exc})') from None
        try:
            info = CodecInfo(model_id, self.model_sha256, self.quality, tuple(self.extra_bands),
                             max_error=self.max_error, error_bound=stated, model_path=model_path)
            if self.format_version in EXACT_VERSIONS:  # the model's exactly reconstructed coder (the TileCoder
                # refuses a model without an exact synthesis)
                meta = codec.find_package(info).meta
                info = dataclasses.replace(info, latent_coder=new_file_scheme(meta, exact=True))
            return codec.decoder_for(info, 'cpu', 1)
        except (ModelNotFoundError, FormatError) as exc:
            raise ModelNotFoundError(
                f'this Zarr store is coded with the EnMAP Compress model "{model_id}" (decoder sha256 '
                f'{self.model_sha256[:16]}...), which is not installed here ({exc}). Install the enmap-compress '
                'version that wrote the store, or put that model package in a folder listed in '
                'ENMAP_COMPRESS_MODELS.') from None


def _unread_version(version):
    return ValueError(f'this EnMAP Compress reads {CODEC_ID} format versions 1 to {max(FORMAT_VERSIONS)}, not '
                      f'{version}; update enmap-compress to read this store')


def _is_bundled(package):
    import os

    from .paths import MODELS_DIR

    return os.path.abspath(package.folder) == os.path.abspath(os.path.join(MODELS_DIR, package.model_id))


def _whole_chunk(coder, shape):
    """A chunk is one tile that is its own window (chunks are independent: no context across their borders)."""
    from .core.tiling import Tile, kept_slices

    _, height, width = shape
    tile = Tile(0, 0, width, height)
    window = coder.transform.window(tile, width, height)
    return tile, window, kept_slices(tile, window)


# --- writing a product to a Zarr store ---------------------------------------------------------------------

def write_zarr(source, store, model=None, quality=None, max_error=None, code_all_bands=False, chunk=None,
               variable=DEFAULT_VARIABLE, progress=None, **bounds):
    """Write an EnMAP image (any input the reader accepts) to a Zarr store that xarray opens: `variable` (bands,
    y, x) coded by EhcCodec, with wavelength, fwhm, x and y coordinates (the latter two for a grid without rotation)
    and as attributes the CRS, geotransform, scale and offset (one a band where they differ), and ground control
    points and RPCs where the image has them.
    Returns the codec. The band axis keeps the input's band order; chunks are (bands, chunk, chunk), by default
    the tile size compress chooses: DEFAULT_TILE px, BOUNDED_TILE under an error bound (a 256 px error-bounded
    chunk took 1.1 GB to code, 0.8 GB to decode). `bounds`: band_max_errors, relative_error, relative_floor as for
    codec.compress."""
    import zarr

    from .core.codec import BOUNDED_TILE, DEFAULT_TILE, checked_tile_size
    from .core.enmap import open_spectral
    from .core.tiling import Progress, tile_grid

    if chunk is not None:
        chunk = checked_tile_size(chunk, 'chunk size')

    with open_spectral(source) as raster:
        codec = EhcCodec.for_model(raster.wavelengths, model, quality, max_error, code_all_bands,
                                   raster.dtype, raster.nodata, **bounds)
        if chunk is None:
            bounded = codec.max_error is not None or codec.error_bound is not None
            chunk = BOUNDED_TILE if bounded else DEFAULT_TILE
        with _new_store(store) as target:
            root = zarr.open_group(target, mode='w')
            data = root.create_dataset(variable, shape=(raster.band_count, raster.height, raster.width),
                                       chunks=(raster.band_count, chunk, chunk), dtype=raster.dtype,
                                       compressor=codec, fill_value=raster.nodata, write_empty_chunks=False)
            data.attrs.update(_ARRAY_DIMENSIONS=['band', 'y', 'x'], crs_wkt=raster.crs_wkt,
                              geotransform=list(raster.geotransform), nodata=raster.nodata,
                              scale_factor_reflectance=_per_band(raster.gains),
                              add_offset_reflectance=_per_band(raster.offsets), product_name=raster.product_name,
                              **_control_attrs(raster))
            _coordinates(root, raster, data)
            tiles = tile_grid(raster.width, raster.height, chunk)
            steps = Progress(len(tiles), progress)
            for tile in tiles:
                data[:, tile.y:tile.y + tile.height, tile.x:tile.x + tile.width] = raster.read(
                    tile.x, tile.y, tile.width, tile.height)
                raster.done_with(tile)
                steps.step()
            zarr.consolidate_metadata(target)
    return codec


@contextlib.contextmanager
def _new_store(store):
    """Where write_zarr writes `store`: a folder store is written beside it in a claim folder (core.outputs) and
    moved into place only when complete, so a failed or interrupted write leaves the store that was there (a store
    missing chunks reads them as nodata); another store is written in place, and a mapping is emptied when the write
    fails."""
    import os

    import zarr

    from .core.errors import OutputError
    from .core.outputs import scratch_claim

    path = os.fspath(store) if isinstance(store, (str, os.PathLike)) else None
    if path is None or '://' in path or '::' in path or path.endswith(('.zip', '.n5')):  # (what zarr opens as
        # another store than a folder)
        try:
            yield store
        except BaseException:
            if path is None:
                with contextlib.suppress(Exception):
                    zarr.storage.rmdir(store)
            raise
        return
    target = os.path.abspath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise OutputError(f'The Zarr store {target} is a file; a folder store needs its name.')
    claim = scratch_claim(os.path.dirname(target))
    try:
        written = os.path.join(claim.folder, 'store.zarr')
        yield written
        replaced = os.path.join(claim.folder, 'replaced.zarr')
        if os.path.lexists(target):  # (moved aside first: on Windows a folder cannot replace one)
            os.replace(target, replaced)
        try:
            os.replace(written, target)
        except BaseException:
            if os.path.lexists(replaced):  # the old store back, not deleted with the claim
                os.replace(replaced, target)
            raise
    finally:
        claim.abandon()


def _per_band(values):
    """A band attribute (reflectance = DN x scale + offset): one number when every band has it, else one a band
    (band 1's alone misstated the others)."""
    values = [float(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def _control_attrs(raster):
    """Ground control points ([pixel, line, x, y, z] each, in gcp_crs_wkt) and RPC metadata, when the image has
    them (a raster not yet orthorectified: its geotransform is none)."""
    attrs = {}
    if raster.gcps:
        attrs.update(gcps=[[float(v) for v in point] for point in raster.gcps], gcp_crs_wkt=raster.gcp_crs_wkt)
    if raster.rpc:
        attrs['rpc'] = {str(k): str(v) for k, v in raster.rpc.items()}
    return attrs


def _coordinates(root, raster, data):
    x0, dx, rx, y0, ry, dy = raster.geotransform
    values = {'band': np.arange(1, raster.band_count + 1), 'wavelength': raster.wavelengths}
    if rx == 0 and ry == 0:  # (a rotated grid's x and y vary along both axes: its geotransform attribute says it)
        values.update(x=x0 + dx * (np.arange(raster.width) + 0.5), y=y0 + dy * (np.arange(raster.height) + 0.5))
    if raster.fwhm is not None:
        values['fwhm'] = raster.fwhm
    for name, array in values.items():
        dim = name if name in ('band', 'x', 'y') else 'band'
        # (no fill value: zarr's default 0 is a _FillValue to xarray, which read an x or y of 0 as NaN and the
        # band numbers as floats)
        coord = root.create_dataset(name, data=np.asarray(array), chunks=False, fill_value=None)
        coord.attrs['_ARRAY_DIMENSIONS'] = [dim]
        if name in ('wavelength', 'fwhm'):
            coord.attrs['units'] = 'nm'
    data.attrs['coordinates'] = 'wavelength fwhm' if raster.fwhm is not None else 'wavelength'
