"""The numcodecs codec `enmap_ehc`: Zarr stores written and read back with zarr, xarray and Dask."""
import json
import os
import pickle
import struct

import dask
import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from osgeo import gdal, osr

from enmap_compress.plugin.core.bands import hyspecnet_keep_mask, standard_wavelengths
from enmap_compress.plugin.core.errors import FormatError, InputError, ModelNotFoundError
from enmap_compress.plugin.core.runtime import find_model
from enmap_compress.plugin.zarr_codec import CODEC_ID, EhcCodec, write_zarr
from tools import synthetic

WIDTH, HEIGHT, CHUNK = 70, 50, 32


@pytest.fixture(scope='module')
def product(tmp_path_factory):
    return synthetic.write_product(str(tmp_path_factory.mktemp('zarr')), WIDTH, HEIGHT, seed=12, make_zip=True)


@pytest.fixture(scope='module')
def original(product):
    return gdal.Open(product.image).ReadAsArray()


def store_of(tmp_path_factory, product, name, **options):
    store = str(tmp_path_factory.mktemp('store') / f'{name}.zarr')
    write_zarr(product.zip, store, chunk=CHUNK, **options)
    return store


@pytest.fixture(scope='module')
def lossy_store(tmp_path_factory, product):
    return store_of(tmp_path_factory, product, 'lossy', model='rdnet', quality=6)


def decoded(store, **dask_options):
    """The whole cube through xarray and Dask (threads: chunks decode in parallel)."""
    with dask.config.set(scheduler='threads', num_workers=2, **dask_options):
        return xr.open_zarr(store, mask_and_scale=False)['reflectance'].data.compute()


def coded_valid(original):
    """Coded (HySpecNet) bands with data, and valid pixels: where lossy and bounded errors are measured."""
    valid = ~(original == -32768).all(axis=0)
    bands = hyspecnet_keep_mask() & ~(original == -32768).all(axis=(1, 2))
    return bands, valid


def test_the_store_opens_in_xarray_with_coordinates_and_its_codec_by_entry_point(lossy_store, original):
    dataset = xr.open_zarr(lossy_store, mask_and_scale=False)
    cube = dataset['reflectance']
    assert cube.dims == ('band', 'y', 'x') and cube.shape == (224, HEIGHT, WIDTH) and cube.dtype == np.int16
    assert cube.data.chunksize == (224, CHUNK, CHUNK)
    assert float(dataset['wavelength'][0]) == pytest.approx(418.2, abs=1) and dataset['wavelength'].size == 224
    assert cube.attrs['crs_wkt'] and len(cube.attrs['geotransform']) == 6
    config = json.load(open(os.path.join(lossy_store, 'reflectance', '.zarray')))['compressor']
    assert config['id'] == CODEC_ID and config['model'] == 'rdnet' and config['quality'] == 6
    assert config['model_sha256'] == find_model('rdnet').decoder_sha256()
    assert len(config['wavelengths']) == 224 and config['nodata'] == -32768
    assert isinstance(numcodecs.get_codec(config), EhcCodec)  # registered by the package's entry point


def test_a_window_reads_like_the_same_window_of_the_whole_cube(lossy_store, original):
    window = xr.open_zarr(lossy_store, mask_and_scale=False)['reflectance'][:, 10:41, 5:66].values
    whole = decoded(lossy_store)
    np.testing.assert_array_equal(window, whole[:, 10:41, 5:66])
    bands, valid = coded_valid(original)
    error = (whole[bands][:, valid].astype(float) - original[bands][:, valid]) / 1e4
    assert 10 * np.log10(1.0 / np.mean(error ** 2)) > 40  # PSNR of a real lossy reconstruction


def test_a_parallel_dask_read_equals_a_sequential_zarr_read(lossy_store):
    sequential = zarr.open(lossy_store, mode='r')['reflectance'][:]
    np.testing.assert_array_equal(decoded(lossy_store), sequential)


def test_lossless_is_bit_exact(tmp_path_factory, product, original):
    store = store_of(tmp_path_factory, product, 'lossless', model='pca', max_error=0)
    np.testing.assert_array_equal(decoded(store), original)
    stored = sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(store) for n in names)
    assert stored < original.nbytes / 2


def test_the_bound_holds_on_every_valid_coded_sample(tmp_path_factory, product, original):
    store = store_of(tmp_path_factory, product, 'bounded', model='pca', max_error=4)
    restored = decoded(store)
    bands, valid = coded_valid(original)
    diff = np.abs(restored[bands][:, valid].astype(int) - original[bands][:, valid])
    assert 0 < diff.max() <= 4


def test_a_relative_bound_holds_on_every_valid_coded_sample(tmp_path_factory, product, original):
    store = store_of(tmp_path_factory, product, 'relative', model='pca', relative_error=0.02, relative_floor=3)
    restored = decoded(store)
    bands, valid = coded_valid(original)
    a, b = original[bands][:, valid].astype(int), restored[bands][:, valid].astype(int)
    assert (np.abs(a - b) <= np.maximum(3, np.floor(0.02 * np.abs(a)))).all()
    assert np.abs(a - b).max() > 3


def test_default_chunks_are_the_tiles_compress_chooses(tmp_path, product):
    """An error-bounded store's chunks are 128 px as an error-bounded file's tiles are: its 256 px chunks took
    1.1 GB to code (a full 1200 x 1200 scene peaked at 1.66 GB, 0.49 GB now) and 0.8 GB to decode."""
    write_zarr(product.zip, str(tmp_path / 'lossy.zarr'), model='pca')
    write_zarr(product.zip, str(tmp_path / 'lossless.zarr'), model='pca', max_error=0)
    write_zarr(product.zip, str(tmp_path / 'relative.zarr'), model='pca', relative_error=0.02)
    chunks = {name: zarr.open_group(str(tmp_path / f'{name}.zarr'), mode='r')['reflectance'].chunks
              for name in ('lossy', 'lossless', 'relative')}
    assert chunks == {'lossy': (224, 256, 256), 'lossless': (224, 128, 128), 'relative': (224, 128, 128)}


def test_write_zarr_keeps_gdal_cache_to_a_row_of_chunks(tmp_path, product, monkeypatch):
    """GDAL's cache of the input is dropped after each row of chunks: it held the whole image (a 1200 x 1200 scene
    peaked at 1.2 GB, 0.7 GB now)."""
    from gdal_cache import cache_growth_at, striped_copy

    from enmap_compress.plugin.core import enmap

    striped = striped_copy(product.image, str(tmp_path / 'striped.tif'))
    growth = cache_growth_at(monkeypatch, enmap.SpectralRaster, 'read')
    write_zarr(striped, str(tmp_path / 's.zarr'), model='pca', chunk=5)
    assert max(growth) < WIDTH * HEIGHT * 224 * 2 / 3  # 10 rows of chunks: a row's blocks, not the image's


def test_xarray_writes_a_cube_with_the_codec_and_reads_it_back(tmp_path, original):
    codec = EhcCodec.for_model(standard_wavelengths(), model='pca', max_error=0)
    cube = xr.DataArray(original, dims=('band', 'y', 'x'), name='reflectance').chunk({'band': 224, 'y': 24, 'x': 24})
    store = str(tmp_path / 'xr.zarr')
    cube.to_dataset().to_zarr(store, encoding={'reflectance': {'compressor': codec, '_FillValue': -32768}})
    np.testing.assert_array_equal(decoded(store), original)


def test_error_bounded_stores_of_rdnet_and_pca_are_reconstructed_exactly(tmp_path_factory, product, original,
                                                                         lossy_store):
    """Format version 6 (2 with checked and tagged chunks): the chunks of an error-bounded store of a model with an
    exact synthesis decode to the same values on every CPU (codec.exact_latent_coder); lossy stores, and other
    models' bounded ones, are version 5 (1 with checked and tagged chunks)."""
    store = store_of(tmp_path_factory, product, 'exact', model='rdnet', max_error=2)
    codec = zarr.open(store, mode='r')['reflectance'].compressor
    assert codec.format_version == 6 and codec._tile_coder()[0].latent_scheme == 'context-v4'
    bands, valid = coded_valid(original)
    restored = decoded(store)
    assert np.abs(restored[bands][:, valid].astype(int) - original[bands][:, valid]).max() <= 2
    assert zarr.open(lossy_store, mode='r')['reflectance'].compressor.format_version == 5
    assert EhcCodec.for_model(standard_wavelengths(), model='pca', max_error=0)._tile_coder()[0].latent_scheme == \
        'model-exact-v1'
    assert EhcCodec.for_model(standard_wavelengths(), model='cae1d', max_error=3).format_version == 5
    config = dict(codec.get_config(), max_error=None, error_bound=None)
    config.pop('id')
    with pytest.raises(ValueError, match='is for error-bounded and lossless stores'):
        EhcCodec(**config)


def test_the_codec_config_and_pickle_round_trip(lossy_store):
    codec = zarr.open(lossy_store, mode='r')['reflectance'].compressor
    config = json.loads(json.dumps(codec.get_config()))
    assert numcodecs.get_codec(config) == codec
    assert pickle.loads(pickle.dumps(codec)).get_config() == codec.get_config()  # as Dask ships it to workers


def test_chunks_must_hold_whole_spectra(tmp_path):
    codec = EhcCodec.for_model(standard_wavelengths(), model='pca')
    array = zarr.open(str(tmp_path / 'bad.zarr'), mode='w', shape=(224, 8, 8), chunks=(100, 8, 8), dtype='int16',
                      compressor=codec)
    with pytest.raises(ValueError, match='whole spectra'):
        array[:] = 1000


def test_a_store_whose_model_is_missing_names_the_model_to_install(tmp_path_factory, product):
    store = store_of(tmp_path_factory, product, 'future', model='pca', quality=3)
    meta_path = os.path.join(store, 'reflectance', '.zarray')
    meta = json.load(open(meta_path))
    meta['compressor'].update(model='sscnet', model_sha256='ab' * 32)  # as written where sscnet is installed
    json.dump(meta, open(meta_path, 'w'))
    os.remove(os.path.join(store, '.zmetadata'))  # no stale consolidated copy
    with pytest.raises(ModelNotFoundError, match='model "sscnet".*not installed'):
        zarr.open(store, mode='r')['reflectance'][:, :8, :8]


def _codec_of_version(version, **bound):
    """The codec of a pca store of this format version (1 and 2: as 0.6 / 0.7.0 wrote them)."""
    config = EhcCodec.for_model(standard_wavelengths(), model='pca', quality=5, **bound).get_config()
    config.pop('id')
    return EhcCodec(**dict(config, format_version=version))


@pytest.mark.parametrize('version', [1, 2, 3, 4, 5, 6])
def test_a_damaged_chunk_is_refused_not_decoded(original, version):
    """Every flipped bit of a checked chunk (3, 4) is refused by its CRC-32, also in the head (its shape and dead-band
    flags: 0.7.0 turned a band into nodata for one flag); truncated chunks and heads stating impossible shapes are
    refused in the unchecked ones too (0.7.0 raised ValueError, or allocated what the head said)."""
    codec = _codec_of_version(version, **({'max_error': 2} if version % 2 == 0 else {}))
    cube = np.ascontiguousarray(original[:, :16, :16])
    chunk = codec.encode(cube)
    assert chunk[:4] == b'EHZ%d' % ((version + 1) // 2)
    if version % 2 == 0:
        bands, _ = coded_valid(cube)
        assert np.abs(codec.decode(chunk)[bands].astype(int) - cube[bands]).max() <= 2
    damaged = [chunk[:n] for n in (0, 3, 15, 16, 20, 43, len(chunk) - 1)]
    for head in (struct.pack('<II', 0xFFFFFFFF, 1), struct.pack('<II', 0, 16), struct.pack('<II', 1 << 16, 1 << 16)):
        damaged.append(chunk[:8] + head + chunk[16:])
    if version >= 3:
        damaged += [bytes(chunk[:i]) + bytes([chunk[i] ^ (1 << bit)]) + chunk[i + 1:]
                    for i in range(len(chunk)) for bit in (0, 7) if i < 48 or i % 97 == 0]
    for data in damaged:
        with pytest.raises(FormatError):
            codec.decode(data)
    with pytest.raises(FormatError, match='does not fit'):
        codec.decode(chunk, out=np.empty((224, 16, 15), np.int16))


def test_chunks_of_new_stores_are_tiles_and_older_stores_keep_their_layout(tmp_path, original):
    """A checked store's chunks are at most MAX_TILE_SIZE a side (write_zarr refuses more before writing); a version
    1 or 2 store (0.7.0) still takes chunks of its own layout, unchecked, and reads them."""
    with pytest.raises(ValueError, match='at most 256 x 256 px'):
        _codec_of_version(3).encode(np.zeros((224, 8, 300), np.int16))
    with pytest.raises(InputError, match='chunk size'):
        write_zarr(str(tmp_path / 'none.tif'), str(tmp_path / 'big.zarr'), chunk=512)
    old = _codec_of_version(1)
    cube = np.ascontiguousarray(original[:, :8, :8])
    chunk = old.encode(cube)
    assert chunk[:4] == b'EHZ1' and len(chunk) < len(_codec_of_version(3).encode(cube))
    new = _codec_of_version(3)  # the same tile payload in the other framing: the same pixels
    np.testing.assert_array_equal(old.decode(chunk), new.decode(new.encode(cube)))
    with pytest.raises(FormatError, match='starts with'):
        _codec_of_version(3).decode(chunk)


def test_an_array_in_fortran_order_is_refused_not_read_scrambled(original):
    """zarr reads a decoded chunk's bytes in the array's order: 0.7.2 wrote order='F' arrays and every read (whole or
    a window) gave the samples shuffled, without an error."""
    codec = _codec_of_version(3, max_error=0)
    array = zarr.open(zarr.MemoryStore(), mode='w', shape=(224, 16, 16), chunks=(224, 8, 8), dtype='int16',
                      compressor=codec, order='F', fill_value=-32768)
    with pytest.raises(ValueError, match='C order'):
        array[:] = original[:, :16, :16]
    cube = np.ascontiguousarray(original[:, :8, :1])  # (C and F order at once when one axis is 1: taken)
    np.testing.assert_array_equal(codec.decode(codec.encode(np.asfortranarray(original[:, :1, :1]))),
                                  original[:, :1, :1])
    assert codec.decode(codec.encode(cube)).shape == cube.shape


@pytest.mark.parametrize('dtype, nodata, message', [('uint16', -32768.0, 'cannot hold the nodata value'),
                                                    ('int16', float('nan'), 'cannot hold the nodata value'),
                                                    ('uint8', 0.5, 'cannot hold the nodata value'),
                                                    ('complex64', None, 'integer and float data'),
                                                    ('object', None, 'integer and float data')])
def test_a_nodata_value_the_dtype_cannot_hold_or_a_dtype_not_coded_is_refused(dtype, nodata, message):
    """for_model(dtype='uint16') with the default nodata -32768: 0.7.2 wrote the bands the store leaves out (and dead
    bands) as 32768, which reads as data; a complex array lost its imaginary part."""
    with pytest.raises(ValueError, match=message):
        EhcCodec.for_model(standard_wavelengths(), model='pca', quality=3, dtype=dtype, nodata=nodata)
    config = dict(_codec_of_version(3).get_config(), dtype=dtype, nodata=nodata)
    config.pop('id')
    codec = EhcCodec(**config)  # (a store's metadata is read as it is: only writing is refused)
    with pytest.raises(ValueError, match=message):
        codec.encode(np.zeros((224, 4, 4), dtype))


def test_a_nan_nodata_is_in_strict_json_and_the_config_round_trips(original):
    """0.7.2 wrote a NaN nodata as the bare token NaN, which is no JSON (other Zarr readers refuse the .zarray), and
    the codec read back from its own config or pickle was not equal to it."""
    codec = EhcCodec.for_model(standard_wavelengths(), model='pca', max_error=0, dtype='float32', nodata=float('nan'))
    config = json.loads(json.dumps(codec.get_config(), allow_nan=False))
    assert config['nodata'] == 'NaN'
    assert numcodecs.get_codec(config) == codec and pickle.loads(pickle.dumps(codec)) == codec
    cube = original[:, :8, :8].astype(np.float32)
    cube[5, 2, 2] = np.nan
    np.testing.assert_array_equal(numcodecs.get_codec(config).decode(codec.encode(cube)), cube)


def test_a_failed_or_interrupted_write_zarr_leaves_the_store_that_was_there(tmp_path, product):
    """0.7.2 emptied the store first and wrote it in place: a stopped rewrite left the chunks written so far, which
    xarray opened with the rest reading as nodata, and the store that was there was gone."""
    store = str(tmp_path / 'scene.zarr')
    write_zarr(product.zip, store, model='pca', quality=3, chunk=16)
    before = decoded(store)
    calls = []

    def stop(percent):
        calls.append(percent)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_zarr(product.zip, store, model='pca', quality=8, chunk=16, progress=stop)
    np.testing.assert_array_equal(decoded(store), before)
    assert os.listdir(tmp_path) == ['scene.zarr']  # (no claim folder left)
    memory = zarr.MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        write_zarr(product.zip, memory, model='pca', quality=3, chunk=16, progress=stop)
    assert not list(memory)  # a store that is not a folder: emptied, not left half written
    write_zarr(product.zip, store, model='pca', quality=8, chunk=16)  # a finished write replaces it
    assert zarr.open(store, mode='r')['reflectance'].compressor.quality == 8 and os.listdir(tmp_path) == ['scene.zarr']


def test_a_damaged_error_bound_in_the_config_is_not_a_missing_model(original):
    """0.7.2 said the model was not installed, and to install it, for a store whose error_bound made no sense."""
    codec = _codec_of_version(4, max_error=2)
    chunk = codec.encode(np.ascontiguousarray(original[:, :8, :8]))
    config = dict(codec.get_config(), max_error=None, error_bound={'kind': 'nonsense'})
    config.pop('id')
    with pytest.raises(FormatError, match='configuration of this store is damaged') as caught:
        EhcCodec(**config).decode(chunk)
    assert not isinstance(caught.value, ModelNotFoundError)


def test_per_band_scales_offsets_gcps_and_rpcs_are_attributes_and_a_rotated_grid_has_no_1d_coordinates(tmp_path):
    """The store stated band 1's scale for every band and no offset, dropped GCPs and RPCs, and gave a rotated
    grid x and y coordinates of its first row and column as if it were north-up."""
    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=10, height=8, seed=3)
    scales, offsets = np.linspace(1e-4, 2e-4, 224), np.linspace(0.0, 0.01, 224)
    ds = gdal.Open(source, gdal.GA_Update)
    for i in range(224):
        ds.GetRasterBand(i + 1).SetScale(float(scales[i]))
        ds.GetRasterBand(i + 1).SetOffset(float(offsets[i]))
    ds.SetGeoTransform((366015.0, 29.5, 3.0, 5809965.0, 2.5, -29.0))
    ds = None
    store = str(tmp_path / 'rotated.zarr')
    write_zarr(source, store, model='pca', quality=3, chunk=8)
    dataset = xr.open_zarr(store, mask_and_scale=False)
    attrs = dataset['reflectance'].attrs
    np.testing.assert_allclose(attrs['scale_factor_reflectance'], scales, rtol=1e-12)
    np.testing.assert_allclose(attrs['add_offset_reflectance'], offsets, rtol=1e-12, atol=0)
    assert attrs['geotransform'] == [366015.0, 29.5, 3.0, 5809965.0, 2.5, -29.0]
    assert 'x' not in dataset.coords and 'y' not in dataset.coords
    assert 'gcps' not in attrs and 'rpc' not in attrs

    ds = gdal.Open(source, gdal.GA_Update)
    ds.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    points = [(0.0, 0.0, 13.25, 52.5, 0.0), (10.0, 0.0, 13.26, 52.5, 4.0), (0.0, 8.0, 13.25, 52.49, 0.0)]
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    ds.SetGCPs([gdal.GCP(x, y, z, pixel, line) for pixel, line, x, y, z in points], srs.ExportToWkt())
    unit = ' '.join(['1'] + ['0'] * 19)
    rpc = {'LINE_OFF': '4', 'SAMP_OFF': '5', 'LAT_OFF': '52.5', 'LONG_OFF': '13.25', 'HEIGHT_OFF': '0',
           'LINE_SCALE': '4', 'SAMP_SCALE': '5', 'LAT_SCALE': '0.1', 'LONG_SCALE': '0.1', 'HEIGHT_SCALE': '100',
           'LINE_NUM_COEFF': unit, 'LINE_DEN_COEFF': unit, 'SAMP_NUM_COEFF': unit, 'SAMP_DEN_COEFF': unit}
    ds.SetMetadata(rpc, 'RPC')
    ds = None
    wanted = gdal.Open(source)
    store = str(tmp_path / 'gcps.zarr')
    write_zarr(source, store, model='pca', quality=3, chunk=8)
    attrs = xr.open_zarr(store, mask_and_scale=False)['reflectance'].attrs
    assert [tuple(p) for p in attrs['gcps']] == points and attrs['gcp_crs_wkt'] == wanted.GetGCPProjection()
    assert attrs['rpc'] == wanted.GetMetadata('RPC')
    np.testing.assert_allclose(attrs['scale_factor_reflectance'], scales, rtol=1e-12)


def test_a_chunk_of_another_store_is_refused_not_decoded(original):
    """Format versions 5 and 6 state a tag of the array's codec configuration in every chunk: a lossy pca chunk of
    quality 3, or of another nodata, copied into a store of quality 5 decoded to other values without an error
    (0.7.3, versions 3 and 4). A chunk of another store of the same configuration still reads."""
    cube = np.ascontiguousarray(original[:, :8, :8])
    store = EhcCodec.for_model(standard_wavelengths(), model='pca', quality=5)
    assert store.format_version == 5 and store.encode(cube)[:4] == b'EHZ3'
    for other in (dict(quality=3), dict(quality=5, nodata=0.0)):
        chunk = EhcCodec.for_model(standard_wavelengths(), model='pca', **other).encode(cube)
        with pytest.raises(FormatError, match='another codec configuration'):
            store.decode(chunk)
    twin = EhcCodec.for_model(standard_wavelengths(), model='pca', quality=5)
    np.testing.assert_array_equal(store.decode(twin.encode(cube)), twin.decode(twin.encode(cube)))
    bounded = EhcCodec.for_model(standard_wavelengths(), model='pca', max_error=2)
    config = dict(bounded.get_config(), model=os.path.join('elsewhere', 'pca'))  # (a package's place is not its tag)
    assert numcodecs.get_codec(config)._tag == bounded._tag


@pytest.mark.parametrize('change, error, message', [
    ({'tile_size': 64}, FormatError, "damaged \\(unknown key 'tile_size'\\)"),
    ({'format_version': 7, 'tile_size': 64}, ValueError, 'not 7; update enmap-compress'),  # (a later version's key)
    ({'quality': 5.5}, FormatError, 'quality must be a whole number, not 5.5'),
    ({'max_error': -1}, FormatError, 'max_error must be None or a whole number from 0, not -1'),
    ({'max_error': 2.7}, FormatError, 'not 2.7'),
    ({'format_version': 'x'}, FormatError, "format_version must be a whole number, not 'x'"),
    ({'dtype': 'foo'}, FormatError, 'damaged'),
    ({'wavelengths': None}, FormatError, 'damaged'),
    ({'error_bound': [1, 2]}, FormatError, 'error_bound must be None or an object'),
])
def test_a_store_configuration_this_version_does_not_read_is_one_clear_error(change, error, message):
    """numcodecs.get_codec (as zarr.open calls it) raised a TypeError of __init__ for a key it did not know, also a
    later version's (whose format_version would have asked for an update), and read a quality of 5.5 as 5 or a
    max_error of -1 as a bound (their chunks then failed their checksums as if changed)."""
    config = dict(_codec_of_version(4, max_error=2).get_config(), **change)
    with pytest.raises(error, match=message):
        numcodecs.get_codec(config)
    config = _codec_of_version(4, max_error=2).get_config()
    config.pop('quality')
    with pytest.raises(FormatError, match="no key 'quality'"):
        numcodecs.get_codec(config)


def test_a_float16_array_keeps_the_error_bound(original):
    """float16 holds whole numbers up to 2048 only: 0.7.3 restored EnMAP DN above it up to 1 DN past a bound of 1
    (the value within the bound rounded off it in the array's type)."""
    codec = EhcCodec.for_model(standard_wavelengths(), model='pca', max_error=1, dtype='float16', nodata=-32768.0)
    cube = np.ascontiguousarray(original[:, 16:24, 24:32]).astype(np.float16)
    bands, valid = coded_valid(original[:, 16:24, 24:32])
    assert (cube[bands][:, valid] > 2048).any()
    restored = codec.decode(codec.encode(cube))
    assert np.abs(restored[bands][:, valid].astype(float) - cube[bands][:, valid]).max() <= 1


def test_a_coordinate_of_0_is_no_fill_value(tmp_path):
    """zarr's default fill value 0 of the coordinate arrays was a _FillValue to xarray: an x or y of 0 (a grid
    centred on the equator or the prime meridian) read as NaN, and the band numbers as floats."""
    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=4, height=3, seed=3)
    ds = gdal.Open(source, gdal.GA_Update)
    ds.SetGeoTransform((-45.0, 30.0, 0.0, 45.0, 0.0, -30.0))
    ds = None
    store = str(tmp_path / 'zero.zarr')
    write_zarr(source, store, model='pca', quality=3, chunk=8)
    dataset = xr.open_zarr(store)
    assert dataset['x'].values.tolist() == [-30.0, 0.0, 30.0, 60.0]
    assert dataset['y'].values.tolist() == [30.0, 0.0, -30.0]
    assert dataset['band'].dtype.kind == 'i' and dataset['band'].values[0] == 1
