"""rdnet files with the context latent coder (codec info `latent_coder: "context-v1"`) through the real codec."""
import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import context_coder
from enmap_compress.plugin.core.codec import TileCoder, compress, decompress
from enmap_compress.plugin.core.codecheader import LATENT_CONTEXT, LATENT_EXACT, LATENT_FOLDED, LATENT_PRIOR, CodecInfo
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.evaluate import measure
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model, list_models
from tools import synthetic


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    return synthetic.write_scene(str(tmp_path_factory.mktemp('ctx') / 'scene.tif'), width=72, height=64, seed=5)


def _round_trip(scene, folder, name, **options):
    ehc, rec = str(folder / f'{name}.ehc'), str(folder / f'{name}.tif')
    result = compress(scene, ehc, 'rdnet', options.pop('quality', 4), 'cpu', **options)
    with EhcReader(ehc) as reader:
        codec = reader.header['codec']
    decompress(ehc, rec, 'cpu')
    return result, codec, rec


def test_new_rdnet_files_use_the_context_coder_and_are_smaller(scene, tmp_path, monkeypatch):
    new, codec, rec = _round_trip(scene, tmp_path, 'context', latent_coder=LATENT_CONTEXT)  # 0.4.0's lossy files
    assert codec['latent_coder'] == LATENT_CONTEXT
    with monkeypatch.context() as patch:  # what 0.2 wrote: the per-row prior (no latent_coder in the header)
        patch.setattr(context_coder, 'suits', lambda meta: False)
        old, old_codec, old_rec = _round_trip(scene, tmp_path, 'prior')
    assert 'latent_coder' not in old_codec
    assert new.file_bytes < 0.95 * old.file_bytes  # the scene's nodata corners and smooth fields
    quality, old_quality = measure(scene, rec), measure(scene, old_rec)
    # the same quantiser but for RDOQ, which trades a little PSNR at a level for rate (a gain at equal rate)
    assert quality['psnr'] > old_quality['psnr'] - 0.3
    restored, original = gdal.Open(rec).ReadAsArray(), gdal.Open(scene).ReadAsArray()
    assert np.array_equal(restored[10] == -32768, original[10] == -32768)  # a coded band: nodata where it was


def test_lossless_and_bounded_rdnet_files_round_trip(scene, tmp_path):
    for bound in (0, 20):
        _result, codec, rec = _round_trip(scene, tmp_path, f'bound{bound}', max_error=bound, tile_size=32,
                                     code_all_bands=True)
        assert codec['latent_coder'] == LATENT_EXACT  # context-v1's stream, the exact synthesis
        restored = gdal.Open(rec).ReadAsArray().astype(np.int64)
        original = gdal.Open(scene).ReadAsArray().astype(np.int64)
        assert np.abs(restored - original).max() <= bound


def test_unknown_latent_coders_are_refused_and_the_header_field_round_trips(scene):
    package = find_model('rdnet')
    runner = OnnxRunner(package, 'cpu', 1)
    with pytest.raises(FormatError, match='update the plugin'):
        TileCoder(package, 3, runner, np.zeros(0, int), latent_scheme='context-v9')
    pca = find_model('pca')
    with pytest.raises(FormatError, match='not supported'):  # only a block model's latent suits it
        TileCoder(pca, 3, OnnxRunner(pca, 'cpu', 1), np.zeros(0, int), latent_scheme=LATENT_CONTEXT)
    assert TileCoder(pca, 3, OnnxRunner(pca, 'cpu', 1), np.zeros(0, int)).latent_scheme == LATENT_PRIOR
    info = TileCoder(package, 3, runner, np.zeros(0, int)).codec_info(256)
    assert CodecInfo.from_json(info.to_json(), 'test').latent_coder == LATENT_FOLDED  # lossy: latent_basis.py
    assert 'latent_coder' not in TileCoder(package, 3, runner, np.zeros(0, int),
                                           latent_scheme=LATENT_PRIOR).codec_info(256).to_json()


def test_the_latent_bench_measures_both_coders(scene):
    from bench import latent_context
    from enmap_compress.plugin.core.enmap import open_spectral
    from enmap_compress.plugin.core.transforms import make_transform

    package = find_model('rdnet')
    transform = make_transform(OnnxRunner(package, 'cpu', 1), package.meta)
    with open_spectral(scene) as raster:
        cube = np.clip(raster.hyspecnet_view(0, 0, 32, 32), 0, 1).astype(np.float32)
    valid = np.ones((32, 32), bool)
    valid[:, :9] = False  # one column of blocks without a valid pixel
    kept = (slice(0, 32), slice(0, 32))
    items = [(transform.encode(cube, valid, kept), transform.latent_geometry(valid, kept))]
    assert items[0][1].occupied.sum() == 12
    rows = latent_context.measure(package.meta, items, (2, 8))
    assert [r[0] for r in rows] == [2, 8] and all(rdoq <= new < old for _level, old, new, rdoq in rows)
    deltas = latent_context.fit_defaults(package.meta, items, (2,))
    assert deltas.shape == context_coder.DEFAULT_DELTAS.shape


def test_only_rdnet_block_latents_get_the_context_coder(scene):
    import dataclasses

    meta = find_model('rdnet').meta
    assert context_coder.suits(meta)
    wavelet = dataclasses.replace(meta, informative={**meta.informative, 'architecture': 'RDNet2'})
    assert not context_coder.suits(wavelet)  # overlapping supports: a nodata block may matter to its neighbours
    assert not context_coder.suits(dataclasses.replace(meta, tile_overlap=8))
    assert not context_coder.suits(find_model('pca').meta)
