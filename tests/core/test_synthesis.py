"""The folded synthesis of context-v3 files (plugin/core/synthesis.py): rdnet's decoder graph read from its ONNX
file, the tile's rotation folded into the spectral map, only the live components run; the same reconstruction as
the graph to float32 rounding, and bits that depend neither on the thread count nor on the blocks decoded; and the
exact synthesis of context-v4 files, whose bits depend on no BLAS kernel."""
import functools

import numpy as np
import pytest
from blas_kernels import assert_same_pixels_on_every_kernel
from osgeo import gdal

from enmap_compress.plugin.core import codec, onnxproto
from enmap_compress.plugin.core.codecheader import LATENT_BASIS, LATENT_FOLDED
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.latent_basis import TileRotation
from enmap_compress.plugin.core.products import gram_graph
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model
from enmap_compress.plugin.core.synthesis import FoldedSynthesis
from enmap_compress.plugin.core.tilepayload import decode_mask
from enmap_compress.plugin.core.tiling import Tile, kept_slices
from enmap_compress.plugin.core.transforms import SpatialTransform
from enmap_compress.plugin.core.validation import open_checked
from tools import synthetic


@pytest.fixture(scope='module')
def rdnet():
    return find_model('rdnet')


@pytest.fixture(scope='module')
def decoder_bytes(rdnet):
    with open(rdnet.decoder_path, 'rb') as handle:
        return handle.read()


def _latent(rng, live_components, cells, channels=202):
    """A sparse latent (channels x 64, cells): some coefficients of some components, like a coded tile's."""
    latent = np.zeros((channels * 64, cells), np.float32)
    components = rng.choice(channels, live_components, replace=False)
    for c in components:
        coefficients = rng.choice(64, rng.integers(1, 12), replace=False)
        latent[c * 64 + coefficients] = np.round(rng.laplace(scale=3.0, size=(coefficients.size, cells))) * 0.01
    latent[components[0] * 64] += 0.3  # an LL row live everywhere
    return latent


def _live(latent):
    rows = np.flatnonzero(latent.any(axis=1))
    component, coefficient = np.divmod(rows, 64)
    components, coefficients = np.unique(component), np.unique(coefficient)
    z = np.zeros((components.size, latent.shape[1], coefficients.size), np.float32)
    z[np.searchsorted(components, component), :, np.searchsorted(coefficients, coefficient)] = latent[rows]
    return components, coefficients, z


def _rotation(rng, axes=6, n=202):
    return TileRotation(np.linalg.qr(rng.standard_normal((n, axes)))[0] + 0.1 * rng.standard_normal((n, axes)))


def test_the_rdnet_decoder_graph_is_read_and_its_weights_make_its_output(rdnet, decoder_bytes):
    folded = FoldedSynthesis.of_decoder(decoder_bytes)
    assert folded is not None and folded.basis.shape == (64, 64) and folded.matrix.shape == (202, 202)
    rng = np.random.default_rng(1)
    rows, columns = 3, 5
    latent = _latent(rng, 40, rows * columns)
    graph = OnnxRunner(rdnet, 'cpu', 1).run('decoder', latent.reshape(1, -1, rows, columns))[0]
    components, coefficients, z = _live(latent)
    ours = folded.run(z, coefficients, folded.spectral_map(components), rows, columns)
    assert ours.shape == graph.shape and np.abs(ours - graph).max() < 2e-6


def test_a_rotation_folded_into_the_spectral_map_gives_the_rotated_latent_s_reconstruction(rdnet, decoder_bytes):
    folded = FoldedSynthesis.of_decoder(decoder_bytes)
    rng = np.random.default_rng(2)
    rows, columns = 4, 4
    latent = _latent(rng, 60, rows * columns)
    rotation = _rotation(rng)
    rotated = rotation.back(latent.copy(), 202)  # y = T z, what a context-v2 decoder feeds the graph
    graph = OnnxRunner(rdnet, 'cpu', 1).run('decoder', rotated.reshape(1, -1, rows, columns))[0]
    components, coefficients, z = _live(latent)
    ours = folded.run(z, coefficients, folded.spectral_map(components, rotation), rows, columns)
    assert np.abs(ours - graph).max() < 1e-5
    exact = folded.matrix64 @ rotation.matrix()
    assert np.abs(folded.spectral_map(components, rotation) - exact[:, components]).max() < 1e-6


def test_bits_depend_neither_on_threads_nor_on_the_blocks_decoded(decoder_bytes):
    rng = np.random.default_rng(3)
    rows, columns = 6, 9
    latent = _latent(rng, 80, rows * columns)
    components, coefficients, z = _live(latent)
    rotation = _rotation(rng)
    runs = {}
    for threads in (1, 2, 3):
        folded = FoldedSynthesis.of_decoder(decoder_bytes, threads)
        matrix = folded.spectral_map(components, rotation)
        runs[threads] = folded.run(z, coefficients, matrix, rows, columns)
        whole = runs[threads].reshape(202, rows, 8, columns, 8)
        for count in (2, 3, 7, 20):  # (one block alone takes onnxruntime's vector path: decodes_alone's minimum)
            cells = np.sort(rng.choice(rows * columns, count, replace=False))
            row = folded.run(np.ascontiguousarray(z[:, cells]), coefficients, matrix, 1, count)
            for at, cell in enumerate(cells):
                r, c = divmod(int(cell), columns)
                assert np.array_equal(row.reshape(202, 8, count, 8)[:, :, at], whole[:, r, :, c])
    assert np.array_equal(runs[1], runs[2]) and np.array_equal(runs[1], runs[3])



@pytest.mark.parametrize('threads', [1, 2])
def test_the_block_product_gives_the_bits_of_0_6_0_s_order(decoder_bytes, threads):
    """Blocks as z (L, cells, J) @ basis (J, 64) against 0.6.0's basis (64, J) @ z (L, J, cells), from 1 to 64
    coefficients and 1 to 300 cells (one cell takes 0.6.0's order itself: MLAS's vector path differs)."""
    from enmap_compress.plugin.core.runtime import onnxruntime

    folded = FoldedSynthesis.of_decoder(decoder_bytes, threads)
    older = onnxproto.model('blocks_0_6_0', [onnxproto.node('MatMul', ['basis', 'z'], ['blocks'])],
                            [onnxproto.tensor_info('z', ['L', 'J', 'cells']),
                             onnxproto.tensor_info('basis', [64, 'J'])],
                            [onnxproto.tensor_info('blocks', ['L', 64, 'cells'])])
    options = onnxruntime().SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime().InferenceSession(older, options, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(6)
    first = np.zeros((202, 3), np.float32)
    first[0, 0] = 1.0  # band 0 is the first live component's blocks plus its bias
    for count in (1, 2, 5, 64):
        coefficients = np.sort(rng.choice(64, count, replace=False))
        for cells in (1, 2, 3, 17, 300):
            z = rng.standard_normal((3, cells, count)).astype(np.float32)
            ours = folded.run(z, coefficients, first, 1, cells)[:1]
            blocks = session.run(None, {'z': np.ascontiguousarray(z.transpose(0, 2, 1)),
                                        'basis': np.ascontiguousarray(folded.basis[coefficients].T)})[0]
            expected = blocks[0].reshape(8, 8, cells).transpose(0, 2, 1).reshape(1, 8, cells * 8) + folded.bias[0]
            assert np.array_equal(ours, expected), (count, cells)

def test_a_tile_without_live_coefficients_is_the_bias_as_the_graph_gives_it(rdnet, decoder_bytes):
    folded = FoldedSynthesis.of_decoder(decoder_bytes)
    graph = OnnxRunner(rdnet, 'cpu', 1).run('decoder', np.zeros((1, 202 * 64, 2, 3), np.float32))[0]
    ours = folded.run(np.zeros((0, 6, 0), np.float32), np.zeros(0, int), np.zeros((202, 0), np.float32), 2, 3)
    assert np.array_equal(ours, graph)


@pytest.mark.parametrize('model', ['pca', 'hycot', 'cae1d', 'sscnet', 'cae3d'])
def test_other_decoders_have_no_folded_synthesis(model):
    with open(find_model(model).decoder_path, 'rb') as handle:
        assert FoldedSynthesis.of_decoder(handle.read()) is None


def test_damaged_or_unlike_graphs_have_none_and_reading_them_never_raises_another_error(decoder_bytes):
    assert FoldedSynthesis.of_decoder(gram_graph()) is None
    assert FoldedSynthesis.of_decoder(b'') is None
    rng = np.random.default_rng(4)
    for cut in rng.integers(1, len(decoder_bytes), 40):
        assert FoldedSynthesis.of_decoder(decoder_bytes[:cut]) is None
        damaged = bytearray(decoder_bytes)
        damaged[int(cut)] ^= 0xFF
        try:
            onnxproto.read_graph(bytes(damaged))
        except FormatError:
            pass
        found = FoldedSynthesis.of_decoder(bytes(damaged))  # None, or weights of the same shapes
        assert found is None or found.matrix.shape == (202, 202)
    # another basis in one group, or another stride: not rdnet's graph
    graph = onnxproto.read_graph(decoder_bytes)
    assert graph.nodes[1].op_type == 'ConvTranspose'
    graph.nodes[1].ints['strides'] = [4, 4]
    from enmap_compress.plugin.core.synthesis import _rdnet_weights
    assert _rdnet_weights(graph) is None


def test_a_tensor_is_read_in_every_form_onnx_writes_it():
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    dims = onnxproto.integer(1, 2) + onnxproto.integer(1, 3)
    raw = dims + onnxproto.integer(2, onnxproto.FLOAT) + onnxproto.text(9, floats.tobytes())
    packed = dims + onnxproto.integer(2, onnxproto.FLOAT) + onnxproto.text(4, floats.tobytes())
    assert np.array_equal(onnxproto.read_tensor(raw, 't'), floats)
    assert np.array_equal(onnxproto.read_tensor(packed, 't'), floats)
    ints = onnxproto.integer(1, 2) + onnxproto.integer(2, onnxproto.INT64) + onnxproto.integer(7, 5) + \
        onnxproto.integer(7, 9)
    assert onnxproto.read_tensor(ints, 't').tolist() == [5, 9]
    with pytest.raises(FormatError, match='holds 8 bytes'):
        onnxproto.read_tensor(dims + onnxproto.integer(2, onnxproto.FLOAT) + onnxproto.text(9, b'\0' * 8), 't')
    with pytest.raises(FormatError, match='type 10'):
        onnxproto.read_tensor(dims + onnxproto.integer(2, 10), 't')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """One scene with nodata holes written as context-v3 (the default) and as context-v2."""
    folder = tmp_path_factory.mktemp('folded')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), 112, 80, seed=9)
    ds = gdal.Open(scene, gdal.GA_Update)
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        cube = band.ReadAsArray()
        cube[0:30, 0:50] = band.GetNoDataValue()
        band.WriteArray(cube)
    ds = None
    paths = {}
    for name, coder in (('v3', None), ('v2', LATENT_BASIS)):
        paths[name] = str(folder / f'{name}.ehc')
        codec.compress(scene, paths[name], 'rdnet', 4, 'cpu', 1, tile_size=48, latent_coder=coder)
        codec.decompress(paths[name], str(folder / f'{name}.tif'), 'cpu', 2)
    return folder, scene, paths


def test_new_lossy_files_name_the_folded_synthesis_and_decode_as_context_v2_within_a_dn(files):
    folder, _scene, paths = files
    with EhcReader(paths['v3']) as new, EhcReader(paths['v2']) as old:
        assert new.header['codec']['latent_coder'] == LATENT_FOLDED
        assert old.header['codec']['latent_coder'] == LATENT_BASIS
        assert [new.read_chunk(i) for i in range(new.chunk_count)] == \
            [old.read_chunk(i) for i in range(old.chunk_count)]  # the same tiles: only the synthesis differs
    v3, v2 = (gdal.Open(str(folder / f'{n}.tif')).ReadAsArray().astype(np.int32) for n in ('v3', 'v2'))
    differ = np.abs(v3 - v2)
    assert differ.max() <= 1 and np.count_nonzero(differ) < 1e-3 * differ.size
    assert np.array_equal(v3 == -32768, v2 == -32768)


def test_a_folded_file_decodes_the_same_with_any_thread_count_and_through_the_column_path(files, monkeypatch):
    folder, _scene, paths = files
    codec.decompress(paths['v3'], str(folder / 'one.tif'), 'cpu', 1)
    monkeypatch.setattr(codec.TileCoder, 'decodes_tiles', property(lambda self: False))
    codec.decompress(paths['v3'], str(folder / 'columns.tif'), 'cpu', 3)
    two, one, columns = (gdal.Open(str(folder / f'{n}.tif')).ReadAsArray() for n in ('v3', 'one', 'columns'))
    assert np.array_equal(two, one) and np.array_equal(two, columns)


def test_blocks_decoded_alone_are_those_of_the_whole_grid(files):
    """decode_tile_folded on a holed tile's blocks only (its spans) against the same tile's whole grid."""
    _folder, _scene, paths = files
    reader, checked = open_checked(paths['v3'])
    sparse = 0
    with reader:
        coder = codec.decoder_for(checked.codec, 'cpu', 2, checked.raster, True)[0]
        transform = coder.transform
        for index in range(reader.chunk_count):
            tile = Tile.from_dict(reader.chunk_meta(index))
            window = transform.window(tile, checked.raster['width'], checked.raster['height'])
            sections = coder.unpack(reader.read_chunk(index))
            kept = kept_slices(tile, window)
            valid = np.zeros((window.height, window.width), bool)
            valid[kept] = decode_mask(sections.mask, tile.height, tile.width)
            geometry = transform.latent_geometry(valid, kept)
            symbols = coder.latent_coder.decode(sections.latent, geometry)
            live = functools.partial(coder.latent_coder.live_latent, symbols)
            blocks = transform.decode_tile_folded(live, symbols.rotation, valid, kept)
            if blocks is None or blocks.spans is None:
                continue
            sparse += 1
            components, coefficients, z = live(None)
            folded = transform.folded()
            rows, columns = geometry.grid.shape
            whole = folded.run(z, coefficients, folded.spectral_map(components, symbols.rotation), rows, columns)
            tile_valid = valid[kept]
            assert np.array_equal(blocks.cube()[:, tile_valid], whole[:, :tile.height, :tile.width][:, tile_valid])
    assert sparse >= 1


def test_a_context_v3_file_needs_a_decoder_with_the_folded_synthesis(rdnet, monkeypatch):
    monkeypatch.setattr(SpatialTransform, 'folded', lambda self: None)
    with pytest.raises(FormatError, match='need the folded synthesis'):
        codec.TileCoder(rdnet, 5, OnnxRunner(rdnet, 'cpu', 1), np.zeros(0, int), latent_scheme=LATENT_FOLDED)
    coder = codec.TileCoder(rdnet, 5, OnnxRunner(rdnet, 'cpu', 1), np.zeros(0, int))
    assert coder.latent_scheme == LATENT_BASIS  # a new file of such a model keeps the graph



def test_a_folded_decode_opens_no_decoder_graph(files, tmp_path, rdnet, monkeypatch):
    _folder, _scene, paths = files
    opened = []
    real = OnnxRunner._open_session
    monkeypatch.setattr(OnnxRunner, '_open_session', lambda self, which: opened.append(which) or real(self, which))
    result = codec.decompress(paths['v3'], str(tmp_path / 'out.tif'), 'cpu', 2)
    assert opened == [] and result.provider == 'CPUExecutionProvider'
    codec.decompress(paths['v2'], str(tmp_path / 'old.tif'), 'cpu', 2)
    assert opened and set(opened) == {'decoder'}


def _exact_in_integers(exact, latent, rows, columns):
    """ExactSynthesis.run's arithmetic in int64 (numpy's integer matmul: no BLAS, no rounding) up to its float64
    scaling, the reference its float64 BLAS products must meet bit for bit."""
    from enmap_compress.plugin.core import synthesis

    y = np.clip(np.rint(latent.astype(np.float64) * 2.0 ** synthesis.EXACT_LATENT_BITS),
                -synthesis.EXACT_LATENT_LIMIT, synthesis.EXACT_LATENT_LIMIT).astype(np.int64)
    channels = latent.shape[0] // 64
    blocks = np.einsum('kjc,jp->kcp', y.reshape(channels, 64, -1), exact.basis.astype(np.int64))
    shift = synthesis.EXACT_LATENT_BITS + synthesis.EXACT_BASIS_BITS - synthesis.EXACT_IMAGE_BITS
    images = np.clip(np.rint(blocks.astype(np.float64) * 2.0 ** -shift), -synthesis.EXACT_IMAGE_LIMIT,
                     synthesis.EXACT_IMAGE_LIMIT).astype(np.int64)  # (exact: |blocks| < 2**53)
    images = images.reshape(channels, rows, columns, 8, 8).transpose(0, 1, 3, 2, 4).reshape(channels, -1)
    unit = (exact.matrix.astype(np.int64) @ images).astype(np.float64) * \
        2.0 ** -(synthesis.EXACT_MAP_BITS + synthesis.EXACT_IMAGE_BITS) + exact.bias
    return unit.astype(np.float32).reshape(-1, rows * 8, columns * 8)


def test_the_exact_synthesis_equals_its_integer_arithmetic_and_the_graph_to_a_hundred_thousandth(rdnet,
                                                                                             decoder_bytes):
    """The float64 BLAS products of ExactSynthesis are exact (the same bits as int64 products), also at the
    limits of its latent and images, and its reconstruction is the decoder graph's within 1e-5 reflectance
    (0.1 DN) on tile-like latents."""
    from enmap_compress.plugin.core.synthesis import ExactSynthesis

    exact = ExactSynthesis.of_decoder(decoder_bytes)
    assert exact is not None, 'rdnet meets the exact synthesis\' weight limits'
    runner = OnnxRunner(rdnet, 'cpu', 2)
    rng = np.random.default_rng(11)
    for live_components, rows, columns in ((1, 1, 1), (40, 3, 5), (202, 4, 4)):
        latent = _latent(rng, live_components, rows * columns)
        got = exact.run(latent, rows, columns)
        assert np.array_equal(got, _exact_in_integers(exact, latent, rows, columns))
        graph = runner.run('decoder', latent.reshape(1, 202 * 64, rows, columns))[0]
        assert np.abs(got - graph).max() < 1e-5
    extreme = np.where(rng.random((202 * 64, 6)) < 0.5, 64.0, -64.0).astype(np.float32)  # every term at its limit
    assert np.array_equal(exact.run(extreme, 2, 3), _exact_in_integers(exact, extreme, 2, 3))
    assert exact.run(np.zeros((202 * 64, 2), np.float32), 1, 2).shape == (202, 8, 16)


def test_a_decoder_beyond_the_exact_limits_has_no_exact_synthesis(rdnet, decoder_bytes, monkeypatch):
    from enmap_compress.plugin.core import synthesis

    assert synthesis.ExactSpectralMap.of_decoder(decoder_bytes) is None  # not y @ matrix + mean
    with open(find_model('cae1d').decoder_path, 'rb') as handle:
        assert synthesis.ExactSpectralMap.of_decoder(handle.read()) is None  # a non-linear decoder
    with open(find_model('pca').decoder_path, 'rb') as handle:
        pca = handle.read()
    monkeypatch.setattr(synthesis, 'EXACT_MAP_LIMIT', 0.5)  # rdnet's and pca's spectral maps reach 0.71
    assert synthesis.ExactSynthesis.of_decoder(decoder_bytes) is None
    assert synthesis.ExactSpectralMap.of_decoder(pca) is None
    assert synthesis.ExactSynthesis.of_decoder(b'not a graph') is None
    assert synthesis.ExactSpectralMap.of_decoder(b'not a graph') is None


def test_pca_s_exact_spectral_map_equals_its_integer_arithmetic_and_the_graph():
    from enmap_compress.plugin.core import synthesis

    pca = find_model('pca')
    with open(pca.decoder_path, 'rb') as handle:
        exact = synthesis.ExactSpectralMap.of_decoder(handle.read())
    assert exact is not None, 'pca\'s decoder is y @ matrix + mean within the limits'
    rng = np.random.default_rng(12)
    latent = (rng.laplace(scale=0.5, size=(202, 500)) * np.exp(-np.arange(202) / 20.0)[:, None]).astype(np.float32)
    latent[0] += 4.0
    latent[:, :3] = np.where(rng.random((202, 3)) < 0.5, 40.0, -40.0)  # clipped at the limit
    y = np.clip(np.rint(latent.astype(np.float64) * 2.0 ** 20), -2 ** 25, 2 ** 25).astype(np.int64)
    integer = ((exact.weights.astype(np.int64) @ y).astype(np.float64) * 2.0 ** -39 + exact.mean).astype(np.float32)
    got = exact.run(latent)
    assert np.array_equal(got, integer)
    graph = OnnxRunner(pca, 'cpu', 1).run('decoder', latent[:, 3:].T).T
    assert np.abs(got[:, 3:] - graph).max() < 2e-5  # (9.5e-6: 0.1 DN)


@pytest.mark.parametrize('model, max_error, coder', [('rdnet', 0, 'context-v4'), ('rdnet', 3, 'context-v4'),
                                                     ('pca', 2, 'model-exact-v1')])
def test_an_exact_file_decodes_to_the_same_pixels_on_every_blas_kernel(tmp_path, model, max_error, coder):
    """An error-bounded rdnet or pca file's reconstruction (codecheader.EXACT_CODERS) is made by float64 BLAS
    products only, exact on any kernel: OpenBLAS's AVX2, AVX and SSE kernels (OPENBLAS_CORETYPE), whose float64 sums
    differ in their last bits, decode it to the same pixels (its checksum would refuse other ones)."""
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=40, height=24, seed=4)
    path = str(tmp_path / 'bounded.ehc')
    codec.compress(scene, path, model, 5, 'cpu', 1, max_error=max_error, tile_size=16)
    with EhcReader(path) as reader:
        assert reader.header['codec']['latent_coder'] == coder
    assert_same_pixels_on_every_kernel(path, str(tmp_path), 'float64')
