"""Smoke tests of the benchmark scripts' functions on a tiny synthetic input (the benchmarks are not run here)."""
import json
import math
import os

import numpy as np
import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from tools.synthetic import write_scene

    return write_scene(str(tmp_path_factory.mktemp('bench') / 'tiny.tif'), 24, 20, seed=3)


def test_pool_identity_and_lossless_anchors(tiny, tmp_path):
    from bench.anchors import delta_zstd_roundtrip, gtiff_roundtrip, jpeg2k_roundtrip
    from bench.scenes import Pool, load_scene
    from enmap_compress.plugin.core.bands import hyspecnet_keep_mask

    scene = load_scene(tiny)
    keep = np.flatnonzero(hyspecnet_keep_mask())
    mask = hyspecnet_keep_mask()
    pool = Pool()
    pool.add(1000, scene, scene.cube, mask)
    result = pool.result()
    assert math.isinf(result['psnr']) and result['max_abs_dn'] == 0
    assert result['bpppb'] == pytest.approx(8000 / (scene.valid_count * 202))
    for fn in (lambda: delta_zstd_roundtrip(scene, keep),
               lambda: gtiff_roundtrip(scene, keep, ['COMPRESS=ZSTD', 'PREDICTOR=2', 'INTERLEAVE=PIXEL'],
                                       str(tmp_path)),
               lambda: jpeg2k_roundtrip(scene, keep[:3], None)):
        size, rec, _, _ = fn()
        assert size > 0
        assert np.array_equal(rec, scene.cube)


def test_lossy_anchor_respects_bound(tiny, tmp_path):
    from bench.anchors import gtiff_roundtrip
    from bench.scenes import load_scene
    from enmap_compress.plugin.core.bands import hyspecnet_keep_mask

    scene = load_scene(tiny)
    keep = np.flatnonzero(hyspecnet_keep_mask())
    size, rec, _, _ = gtiff_roundtrip(scene, keep, ['COMPRESS=LERC_ZSTD', 'MAX_Z_ERROR=10',
                                                           'INTERLEAVE=PIXEL'], str(tmp_path))
    diff = np.abs(rec[keep].astype(int) - scene.cube[keep])[:, scene.valid]
    assert diff.max() <= 10 and size > 0


def test_rate_distortion_run_tables_and_plot(tiny, tmp_path):
    from bench import rate_distortion as rd

    rows = rd.run(models=['pca'], levels=(3,), names=(tiny,), bounds=(10,), anchors=False, threads=1)
    assert [r['section'] for r in rows] == ['rd', 'eb']
    assert not any(r['note'].startswith('FAILED') for r in rows)
    assert rows[0]['bpppb'] > 0 and 20 < rows[0]['psnr'] < 100
    assert rows[1]['max_abs_dn'] <= 10
    csv_path = tmp_path / 'rd.csv'
    rd.write_csv(rows, str(csv_path))
    assert csv_path.read_text().startswith('section,dataset')
    name = rows[0]['dataset']
    rd.plot(rows, name, str(tmp_path / 'rd.png'), 'tiny')
    assert (tmp_path / 'rd.png').stat().st_size > 0
    assert '| pca | quality=3 |' in rd.tables(rows, (name,))
    # --merge: the CSV read back keeps its numbers, and a new model's rows join the old ones without repeating them
    old = rd.read_csv(str(csv_path))
    assert old[0]['bpppb'] == pytest.approx(rows[0]['bpppb'], rel=1e-5) and old[0]['note'] == rows[0]['note']
    renamed = [dict(r, method='other') for r in rows]
    merged = rd.merge_rows(old, renamed)
    assert [r['method'] for r in merged] == ['pca', 'pca', 'other', 'other']
    assert [r['method'] for r in rd.merge_rows(merged, rows)] == ['other', 'other', 'pca', 'pca']
    assert '| other | quality=3 |' in rd.tables(merged, (name,))


def test_published_variant_from_card():
    from bench import rate_distortion as rd

    class Fake:
        def __init__(self, model_id, card):
            self.model_id, self._card = model_id, card

        def card(self):
            return self._card

    assert rd.published_variant(Fake('hycot', 'trained like hycot_cr4 of the paper')) == ('hycot_cr4', 8.08, 56.29)
    assert rd.published_variant(Fake('cae1d', 'the cae1d_1bpppc variant')) == ('cae1d_cr32', 1.11, 48.95)
    assert rd.published_variant(Fake('pca', 'anything')) is None
    assert rd.published_variant(Fake('cae3d', 'no variant named')) is None
    assert rd.published_variant(Fake('cae3d', '3D-CAE, the CR8 variant')) == ('cae3d_cr8', 4.04, 39.69)
    assert rd.published_variant(Fake('cae3d', '3D-CAE: cr4 and cr32 were tried')) is None


def test_speed_worker_measures_an_anchor(tiny, tmp_path):
    from bench import speed

    job = {'kind': 'anchor', 'name': 'gdal_zstd', 'op': 'compress', 'threads': 1, 'device': 'cpu', 'src': tiny,
           'dst': str(tmp_path / 'out.tif'), 'options': speed.ANCHORS['zstd'](0)}
    result = speed.measure(job, timeout=120)
    assert 'seconds' in result, json.dumps(result)
    assert result['peak_rss_mb'] >= result['base_rss_mb'] > 0 and result['output_bytes'] > 0
    assert 0 < result['cpu_seconds'] < result['seconds'] * 64  # all its threads' CPU time
    assert '| gdal_zstd |' in speed.table([dict(dict.fromkeys(speed.FIELDS, ''), name='gdal_zstd', **result)])


def test_pca_jpeg2000_anchor_roundtrip(tiny, tmp_path):
    """The PCA + JPEG 2000 anchor hits its target rate and decodes to a real reconstruction."""
    pytest.importorskip('glymur')
    from bench import pca_jpeg2000
    from bench.scenes import load_scene

    scene = load_scene(tiny)
    mean, basis = pca_jpeg2000.fit_klt([tiny])
    coarse = pca_jpeg2000.measure([scene], mean, basis, 8, 0.3, str(tmp_path))
    fine = pca_jpeg2000.measure([scene], mean, basis, 8, 1.0, str(tmp_path))
    assert 0.15 < coarse['bpppb'] < 0.35 and 0.5 < fine['bpppb'] < 1.05
    assert 25 < coarse['psnr'] < fine['psnr'] < 100
    (target, k, result), = pca_jpeg2000.best_at_targets([scene], mean, basis, (4, 8), (0.5,), str(tmp_path))
    assert k in (4, 8) and result['psnr'] >= max(pca_jpeg2000.measure([scene], mean, basis, kk, 0.5, str(tmp_path))
                                                 ['psnr'] for kk in (4, 8)) - 1e-9
    assert pca_jpeg2000.interpolate([(0.1, 40.0, 1.0), (0.4, 50.0, 0.5)], 0.2) == pytest.approx(
        (45.0, 0.75))


def test_file_basis_measures_the_codec_with_and_without_a_basis(tiny, tmp_path):
    from bench import file_basis as fb

    rows = {name: fb.measure([tiny], name, (4,), str(tmp_path)) for name in ('context', 'basis', 'always')}
    assert all(r[0]['level'] == 4 and r[0]['tiles'] == 1 and 25 < r[0]['psnr'] < 100 for r in rows.values())
    assert rows['context'][0]['rotated'] == 0 and rows['always'][0]['rotated'] == 1
    basis, context = rows['basis'][0], rows['context'][0]
    if not basis['rotated']:  # the same symbols: the same image, a flag row more
        assert basis['psnr'] == context['psnr'] and basis['bpppb'] >= context['bpppb']


def test_speed_jobs_time_each_latent_coder_in_turn_on_lossy_compress_only():
    from bench import speed

    made = speed.jobs(['rdnet'], [], (2,), 'cpu', 5, 25, 'in.tif', 'work', max_errors=(10,), baseline='/b/old',
                      latent_coders=('context-v2', 'context-v1'))
    coders = {(job['label'], job['op']): job.get('latent_coder') for job in made}
    for coder in ('context-v2', 'context-v1'):  # a named coder is asked of the baseline checkout too
        assert coders[(f'rdnet {coder}', 'compress')] == coders[(f'rdnet {coder} [old]', 'compress')] == coder
    assert coders[('rdnet MAX_ERROR=10', 'compress')] is None
    outputs = [job['dst'] for job in made if job['op'] == 'compress']
    assert len(set(outputs)) == len(outputs)  # each coder and checkout writes its own file


def test_anchor_gap_prices_symbols_and_picks_the_best_k():
    from bench import anchor_gap as ag

    rng = np.random.default_rng(1)
    feature = rng.random(20000)
    scale = np.where(feature < 0.5, 0.3, 3.0)  # the second context tells the two scales apart
    size = np.rint(np.abs(rng.laplace(scale=scale))).astype(np.int64)
    key = np.full(size.shape, 1 * 256 + 128)  # class 1, row scale code 0
    one = ag._laplace_bits(key, size, 0.1)
    two = ag._laplace_bits((1 * 2 + (feature >= 0.5)) * 256 + 128, size, 0.1)
    assert two < 0.9 * one and ag._empirical_bits(key, size) < one * 1.05
    dead_zones = [ag._class_bits(key, size, 0.1 + e).min(axis=1).sum() for e in ag.EXTRA_DEADZONES]
    assert min(dead_zones) <= one == dead_zones[ag.EXTRA_DEADZONES.index(0.0)]  # e = 0 is the coder's own table
    curves = [[(0.1, 40.0), (0.2, 44.0)], [(0.15, 45.0), (0.3, 47.0)]]
    assert ag._at(curves[0], 0.1) == 40.0 and math.isnan(ag._at(curves[1], 0.1))
    assert ag._best(curves, 0.1) == 40.0 and ag._best(curves, 0.2) > 45.0
