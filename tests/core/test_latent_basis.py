"""A spectral basis per rdnet tile (plugin/core/latent_basis.py, codec info `latent_coder: "context-v2"`):
the coder's round trip with and without a rotation, the per-tile choice, the real codec's files, a rotated chunk
decoded alone, error-bounded files on the plain coder, a 0.4.0 reader's refusal and hostile basis heads."""
import os
import subprocess
import sys

import numpy as np
import pytest
from blas_kernels import assert_same_pixels_on_every_kernel
from ehc_forge import Chunk, EhcParts, join_payload, split_payload
from osgeo import gdal

from bench.file_basis import tile_rotations
from enmap_compress.plugin.core import latent_basis, prior
from enmap_compress.plugin.core.codec import (
    TileCoder,
    compress,
    decode_tile,
    decoded_tiles,
    decoder_for,
    decompress,
    header_fill,
)
from enmap_compress.plugin.core.codecheader import LATENT_BASIS, LATENT_CONTEXT, LATENT_EXACT, LATENT_FOLDED
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError, InputError
from enmap_compress.plugin.core.evaluate import measure
from enmap_compress.plugin.core.latent import LatentGeometry, row_peaks
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model, list_models
from enmap_compress.plugin.core.tiling import Tile
from enmap_compress.plugin.core.validation import open_checked
from tools import synthetic

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE_0_4_0 = '221d0a1'  # the commit that made 0.4.0 (tests/data/corpus-0.4 was written by it)
RELEASE_0_5_4 = '0b2cbcf'  # the last 0.5 (context-v2 files decoded through the graph)


@pytest.fixture(scope='module')
def rdnet():
    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    return find_model('rdnet')


def _coder(package, quality=5):
    return latent_basis.BasisContextCoder(package.meta.level(quality), package.meta.entropy_model)


def _latent(coder, correlated, cells=(6, 6), seed=0):
    """A latent (components x 64, cells) whose components are independent, or mixed by a dense rotation (what the
    learned basis leaves when a scene is unlike the training tiles), LL the strongest coefficient."""
    rng = np.random.default_rng(seed)
    n, count = coder.components, cells[0] * cells[1]
    spread = np.exp2(-np.arange(n) / 6.0)[:, None, None] * np.exp2(-np.arange(64) / 8.0)[None, :, None]
    z = rng.laplace(size=(n, 64, count)) * spread * 40 * coder.step
    if correlated:
        mixing = np.linalg.qr(rng.normal(size=(n, n)))[0]
        z = np.tensordot(mixing, z, axes=1)
    return z.reshape(n * 64, count).astype(np.float32), LatentGeometry(n * 64, np.ones(cells, bool))


@pytest.mark.parametrize('correlated', [False, True])
def test_a_latent_prepared_ahead_codes_to_the_same_bytes(rdnet, correlated):
    """compress's model worker chooses and applies a tile's basis ahead (prepare, rotating its own latent in
    place); encode then gives what it gives for the latent itself, which it leaves as it is."""
    coder = _coder(rdnet)
    latent, geometry = _latent(coder, correlated)
    kept = latent.copy()
    symbols, stream = coder.encode(latent, geometry)
    assert np.array_equal(latent, kept)
    prepared = coder.prepare(latent, geometry)
    assert (prepared.basis is not None) == correlated and np.array_equal(latent, kept) != correlated
    again, stream_again = coder.encode(prepared, geometry)
    assert stream_again == stream and np.array_equal(again.symbols, symbols.symbols)
    empty = np.zeros((latent.shape[0], 0), np.float32)
    assert coder.prepare(empty, LatentGeometry(latent.shape[0], np.zeros((0, 0), bool))) is empty


@pytest.mark.parametrize('correlated', [False, True])
def test_the_range_check_s_row_peaks_reach_the_coder_only_for_the_latent_they_are_of(rdnet, correlated):
    """compress's range check measures each row's largest |value| (TileCoder.latent_range) and hands the peaks to
    prepare, so that encode need not read the latent again; a rotated latent is another latent: its peaks are left
    to encode. A prepared latent codes to the same bytes either way."""
    coder = _coder(rdnet)
    latent, geometry = _latent(coder, correlated)
    stream = coder.encode(latent.copy(), geometry)[1]
    prepared = coder.prepare(latent.copy(), geometry, row_peaks(latent))
    assert (prepared.basis is not None) == correlated
    assert prepared.peaks is None if correlated else np.array_equal(prepared.peaks, row_peaks(latent))
    assert coder.encode(prepared, geometry)[1] == stream


@pytest.mark.parametrize('correlated', [False, True])
def test_the_coder_round_trips_and_rotates_only_where_it_pays(rdnet, correlated):
    coder = _coder(rdnet)
    latent, geometry = _latent(coder, correlated)
    symbols, stream = coder.encode(latent, geometry)
    assert (symbols.rotation is not None) == correlated  # the estimate's choice
    assert stream[2] == latent_basis.STREAM_VERSION == 3  # "EP", then the version byte
    decoded = coder.decode(stream, geometry)
    assert np.array_equal(decoded.symbols, symbols.symbols)
    if correlated:  # the decoder rebuilds T from the sent integers, bit for bit
        t = decoded.rotation.matrix()
        assert np.array_equal(t, symbols.rotation.matrix())
        assert np.allclose(t.T @ t, np.eye(coder.components), atol=1e-12)
        y = latent.reshape(coder.components, -1)
        assert np.allclose(decoded.rotation.into(latent, coder.components).reshape(y.shape), t.T @ y, atol=1e-4)
    plain = latent_basis.ContextLatentCoder(rdnet.meta.level(5), rdnet.meta.entropy_model)
    plain_symbols, plain_stream = plain.encode(latent, geometry)
    error = _rms(coder.dequantise(decoded) - latent)  # back in rdnet's coordinates
    assert error < 0.5 * coder.step and error < 1.1 * _rms(plain.dequantise(plain_symbols) - latent)
    if correlated:
        assert len(stream) < 0.8 * len(plain_stream)
    else:  # the flag row is all it costs
        assert len(stream) - len(plain_stream) <= 4


def test_always_sends_a_basis_and_the_estimate_saves_its_cost(rdnet, monkeypatch):
    coder = _coder(rdnet)
    latent, geometry = _latent(coder, False)
    unrotated = coder.encode(latent, geometry)[1]
    monkeypatch.setattr(latent_basis.BasisContextCoder, 'always', True)
    symbols, forced = coder.encode(latent, geometry)
    assert symbols.rotation is not None and len(forced) > len(unrotated)
    assert _rms(coder.dequantise(coder.decode(forced, geometry)) - latent) < 0.5 * coder.step


def _rms(error):
    return float(np.sqrt(np.mean(np.square(error, dtype=np.float64))))


def test_the_basis_is_the_learned_axes_when_the_tile_needs_no_rotation():
    axes = np.eye(10)[:, :3] * 2.0 ** -6 * 64
    rotation = latent_basis.TileRotation(axes)
    assert np.allclose(rotation.matrix(), np.eye(10), atol=1e-15) and rotation.pivot == 1.0
    moments = np.diag(np.exp2(-np.arange(10.0)))
    assert latent_basis.fit_basis(moments, 2.0) is None  # no axis above the step
    basis = latent_basis.fit_basis(moments, 2.0 ** -3)
    assert basis.axes == 6 and np.allclose(basis.rotation.matrix(), np.eye(10))  # variances 1 .. 2^-5 above 2^-6
    swapped = latent_basis.TileRotation(np.eye(10)[:, [1]])  # a later learned axis first: still orthonormal
    t = swapped.matrix()
    assert np.allclose(t.T @ t, np.eye(10)) and np.allclose(t[:, 0], np.eye(10)[:, 1])
    dependent = latent_basis.TileRotation(np.eye(10)[:, [1, 1]] + np.eye(10)[:, [0, 2]] * 1e-3)
    assert dependent.pivot < latent_basis.MIN_PIVOT  # nearly equal axes: the encoder would not send them


@pytest.mark.parametrize('axes', [1, 2, 3, 4, 7, 9])
def test_back_at_some_cells_gives_back_s_bits_there(axes):
    """The decoder rotates only the cells its graph decodes (TileRotation.back_at): the same float32 bits, signed
    zeros included, as the whole latent's back, for bases of few and of many axes."""
    rng = np.random.default_rng(axes)
    components, grid = 202, 150  # rdnet's components; 64 x 150 columns: back's blocks and a shorter last one
    rows = np.sort(rng.choice(components * 64, 500, replace=False))
    rows = np.union1d(rows, np.arange(0, components * 64, 64))  # every LL row, as in rdnet's tiles
    values = np.rint(rng.laplace(scale=3.0, size=(rows.size, grid))).astype(np.float32) * np.float32(0.01)
    values[:, ::7] = -0.0
    rotation = latent_basis.TileRotation(rng.integers(-200, 200, size=(components, axes)) * 2.0 ** -8)
    latent = np.zeros((components * 64, grid), np.float32)
    latent[rows] = values
    whole = rotation.back(latent, components)
    for cells in (None, np.arange(1), np.array([3, 149]), np.sort(rng.choice(grid, 37, replace=False)),
                  np.arange(20, 140)):
        made = rotation.back_at(values.copy(), rows, cells)
        expected = whole if cells is None else whole[:, cells]
        assert made.shape == expected.shape and np.array_equal(made.view(np.int32), expected.view(np.int32))


@pytest.fixture(scope='module')
def files(rdnet, tmp_path_factory):
    """(folder, scene, the new lossy file in 4 tiles, its decoded image, the same coded as 0.4.0 did)."""
    folder = tmp_path_factory.mktemp('basis')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), width=64, height=64, seed=0)
    new, old = str(folder / 'new.ehc'), str(folder / 'old.ehc')
    sizes = [compress(scene, path, 'rdnet', 6, 'cpu', tile_size=32, latent_coder=coder).file_bytes
             for path, coder in ((new, None), (old, LATENT_CONTEXT))]
    decompress(new, str(folder / 'new.tif'), 'cpu')
    decompress(old, str(folder / 'old.tif'), 'cpu')
    return folder, scene, new, old, sizes


def _coder_of(path):
    reader, checked = open_checked(path)
    with reader:
        return decoder_for(checked.codec, 'cpu', 1, checked.raster, compact=True)[0], checked.raster


def test_new_lossy_rdnet_files_rotate_unlike_tiles_and_are_smaller_for_the_same_quality(files):
    folder, scene, new, old, (new_bytes, old_bytes) = files
    with EhcReader(new) as reader, EhcReader(old) as before:
        assert reader.header['codec']['latent_coder'] == LATENT_FOLDED
        assert before.header['codec']['latent_coder'] == LATENT_CONTEXT
    assert any(tile_rotations(new)) and not any(tile_rotations(old))
    new_quality, old_quality = measure(scene, str(folder / 'new.tif')), measure(scene, str(folder / 'old.tif'))
    assert new_bytes < 0.85 * old_bytes and new_quality['psnr'] > old_quality['psnr'] - 0.5
    restored, original = gdal.Open(str(folder / 'new.tif')).ReadAsArray(), gdal.Open(scene).ReadAsArray()
    assert np.array_equal(restored[10] == -32768, original[10] == -32768)  # nodata where it was


def test_a_rotated_chunk_decodes_alone(files):
    """A rotated tile's chunk, read on its own, gives the pixels the whole file's decode gives there."""
    _folder, _scene, new, _old, _sizes = files
    index = tile_rotations(new).index(True)
    coder, raster = _coder_of(new)
    with EhcReader(new) as reader:
        whole = dict((i, cube) for i, (_tile, cube) in enumerate(decoded_tiles(reader, coder, raster)))
        tile = Tile.from_dict(reader.chunk_meta(index))
        payload = reader.read_chunk(index)
    dead = np.zeros(raster['band_count'], bool)
    dead[np.asarray(raster['dead_bands'], int)] = True
    alone_coder = _coder_of(new)[0]  # a fresh decoder that has seen no other tile
    alone = decode_tile(alone_coder, payload, tile, alone_coder.transform.window(tile, raster['width'],
                                                                                 raster['height']),
                        raster['dtype'], raster['nodata'], dead[np.asarray(raster['canonical_index'], int)],
                        header_fill(raster))
    assert np.array_equal(alone, whole[index]) and (alone != raster['nodata']).any()


def test_error_bounded_files_keep_the_plain_coder(rdnet, files, tmp_path):
    """No tile basis in an error-bounded file: its stream is context-v1's, decoded by the exact synthesis
    (LATENT_EXACT, since 0.7.0) or, asked for, by the decoder graph as 0.6 wrote them."""
    _folder, scene, _new, _old, _sizes = files
    for bound, coder, written in ((0, None, LATENT_EXACT), (10, None, LATENT_EXACT), (10, LATENT_CONTEXT,
                                                                                       LATENT_CONTEXT)):
        path = str(tmp_path / f'b{bound}.ehc')
        compress(scene, path, 'rdnet', None, 'cpu', max_error=bound, tile_size=32, latent_coder=coder)
        with EhcReader(path) as reader:
            assert reader.header['codec']['latent_coder'] == written
    with pytest.raises(InputError, match='is for lossy files'):
        compress(scene, str(tmp_path / 'x.ehc'), 'rdnet', None, 'cpu', max_error=10, latent_coder=LATENT_BASIS)
    with pytest.raises(InputError, match='is for error-bounded and lossless files'):
        compress(scene, str(tmp_path / 'x.ehc'), 'rdnet', 5, 'cpu', latent_coder=LATENT_EXACT)
    with pytest.raises(InputError, match='latent_coder must be one of'):
        compress(scene, str(tmp_path / 'x.ehc'), 'rdnet', 5, 'cpu', latent_coder='context-v9')
    runner = OnnxRunner(rdnet, 'cpu', 1)
    with pytest.raises(FormatError, match='not supported in an error-bounded or lossless file'):
        TileCoder(rdnet, 5, runner, np.zeros(0, int), max_error=10, latent_scheme=LATENT_BASIS)
    pca = find_model('pca')
    assert TileCoder(pca, 5, OnnxRunner(pca, 'cpu', 1), np.zeros(0, int)).latent_scheme != LATENT_BASIS


@pytest.mark.parametrize('release, version', [(RELEASE_0_4_0, '0.4.0'), (RELEASE_0_5_4, '0.5.4')])
def test_an_earlier_reader_refuses_a_new_file_asking_for_an_update(files, tmp_path, release, version):
    """The real code of an earlier release (its commit, checked out of this repository's history) reading a new
    lossy file: 0.4.0 knew no tile basis, 0.5.4 no folded synthesis."""
    _folder, _scene, new, _old, _sizes = files
    tree = tmp_path / 'release' / 'enmap_compress'
    tree.mkdir(parents=True)
    known = subprocess.run(['git', '-C', PROJECT_ROOT, 'cat-file', '-e', f'{release}^{{commit}}'],
                           capture_output=True)
    if known.returncode:
        pytest.skip(f'{version} is not in this checkout\'s history')
    archive = subprocess.run(['git', '-C', PROJECT_ROOT, 'archive', release, '__init__.py', 'plugin',
                              'resources', 'models/rdnet', 'metadata.txt'], capture_output=True, check=True)
    subprocess.run(['tar', '-x', '-C', str(tree)], input=archive.stdout, check=True)
    script = ('import sys\nsys.path.insert(0, sys.argv[1])\nimport enmap_compress\n'
              'assert enmap_compress.__file__.startswith(sys.argv[1]), enmap_compress.__file__\n'
              'from enmap_compress.plugin import __version__\nfrom enmap_compress.plugin.core.codec import decompress\n'
              'from enmap_compress.plugin.core.errors import FormatError\n'
              'try:\n    decompress(sys.argv[2], sys.argv[3], "cpu")\nexcept FormatError as exc:\n'
              '    print(__version__, exc)\n')
    done = subprocess.run([sys.executable, '-c', script, str(tree.parent), new, str(tmp_path / 'old.tif')],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f'{version} latents coded as "{LATENT_FOLDED}" are not supported here for model ' \
                                  '"rdnet"; update the plugin'
    assert not (tmp_path / 'old.tif').exists()


def _with_head(parts, index, head_rows, head_tables):
    """The file with chunk `index`'s latent stream replaced by one of crafted head rows (the reader checks the head
    before anything after it)."""
    head, sections = split_payload(parts.chunks[index].payload)
    sections[1] = prior.compact_stream(prior.encode_groups(head_rows, head_tables, latent_basis.STREAM_VERSION))
    edited = parts.copy()
    edited.chunks[index] = Chunk(parts.chunks[index].meta, join_payload(head, sections))
    return edited.build()


def _basis_head(flag=1, k=2, exponents=(-6, -6), codes=(8, 8), axes=None, n=202):
    axes = axes if axes is not None else [np.eye(n, dtype=np.int32)[:, i] * 64 for i in range(k)]
    rows = [np.array([flag]), np.array([k]), np.array(exponents), np.array(codes)] + list(axes)
    tables = [prior.FLAG_TABLE, latent_basis.count_table(n), prior.BYTE_TABLE, prior.BYTE_TABLE] + [
        latent_basis.axis_table(8)] * len(axes)
    return [np.asarray(r, np.int32) for r in rows], tables


@pytest.mark.parametrize('name, head, message', [
    ('flag', _basis_head(flag=5)[0][:1], 'invalid flag'),
    ('no axes', _basis_head(k=0, exponents=(), codes=(), axes=[])[0], 'states 0 axes'),
    ('too many axes', _basis_head(k=203, exponents=(), codes=(), axes=[])[0], 'states 203 axes'),
    ('exponent', _basis_head(exponents=(-6, -30))[0], 'exponent outside -14..-2'),
    ('scale code', _basis_head(codes=(8, 300))[0], 'scale code outside -128..127'),
    ('zero axis', _basis_head(axes=[np.eye(202, dtype=np.int32)[:, 0], np.zeros(202, np.int32)])[0],
     'an axis of zeros'),
])
def test_hostile_basis_heads_are_refused_naming_the_part_and_the_tile(files, tmp_path, name, head, message):
    _folder, _scene, new, _old, _sizes = files
    tables = _basis_head()[1][:len(head)]
    tables += [latent_basis.axis_table(8)] * (len(head) - len(tables))
    data = _with_head(EhcParts.read(new), 0, head, tables)
    path, out = str(tmp_path / f'{name}.ehc'), str(tmp_path / f'{name}.tif')
    with open(path, 'wb') as handle:
        handle.write(data)
    with pytest.raises(FormatError, match=rf"chunk 0 \(the tile at 0, 0\): a context-v2 latent stream's basis "
                                          rf"head .*{message}"):
        decompress(path, out, 'cpu')
    assert not os.path.exists(out)


def test_a_rotated_file_is_the_same_with_one_or_two_threads(files, tmp_path, monkeypatch):
    _folder, scene, _new, _old, _sizes = files
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1764547200')
    paths = [str(tmp_path / f't{threads}.ehc') for threads in (1, 2)]
    for path, threads in zip(paths, (1, 2)):
        compress(scene, path, 'rdnet', 6, 'cpu', threads=threads, tile_size=32)
    assert any(tile_rotations(paths[0]))
    assert open(paths[0], 'rb').read() == open(paths[1], 'rb').read()


def test_a_rotated_file_decodes_to_the_same_pixels_on_every_blas_kernel(tmp_path):
    """0.5.0's float32 BLAS sums made a rotated tile's pixels depend on the CPU's BLAS kernels (1 DN apart in
    0.02 % of the samples); the float64 products rounded once do not. OpenBLAS's DYNAMIC_ARCH builds (numpy's
    wheels) take their kernels from OPENBLAS_CORETYPE: AVX2, AVX and SSE ones, whose float32 sums differ."""
    source = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'corpus-0.5', 'rdnet_q10_t16.ehc')
    assert any(tile_rotations(source))
    assert_same_pixels_on_every_kernel(source, str(tmp_path), 'float32')
