"""Training data: HySpecNet-11k in its official layout (a fake tree), spectral resampling, the shared sets."""
import os

import numpy as np
import pytest

from training import datasets


def _write_tif(path, cube):
    rasterio = pytest.importorskip('rasterio')
    with rasterio.open(path, 'w', driver='GTiff', width=cube.shape[2], height=cube.shape[1], count=cube.shape[0],
                       dtype='int16') as dst:
        dst.write(cube)


@pytest.fixture
def fake_hyspecnet(tmp_path):
    root = tmp_path / 'hyspecnet-11k'
    rng = np.random.default_rng(0)
    name = 'ENMAP01-____L2A-DT0000004990_20221104T023111Z_010_V010110_20221118T144901Z-Y00440171_X03070434'
    lines = []
    for tile, patch, as_npy in (('tile_001', 1, True), ('tile_001', 2, False), ('tile_002', 1, False)):
        folder = root / 'patches' / tile / f'{tile}-patch_{patch:02d}'
        folder.mkdir(parents=True)
        cube = rng.integers(-200, 12000, (224, 8, 8)).astype(np.int16)
        if as_npy:
            np.save(folder / f'{name}-DATA.npy', datasets.preprocess_hyspecnet(cube))
        else:
            _write_tif(str(folder / f'{name}-SPECTRAL_IMAGE.TIF'), cube)
        lines.append((f'{tile}/{tile}-patch_{patch:02d}/{name}-DATA.npy', cube))
    for mode in ('easy', 'hard'):
        (root / 'splits' / mode).mkdir(parents=True)
        for split, chosen in (('train', lines[:2]), ('val', lines[2:]), ('test', lines[2:])):
            (root / 'splits' / mode / f'{split}.csv').write_text(''.join(f'{p}\n' for p, _ in chosen))
    return str(root), lines


def test_preprocessing_drops_the_22_bands_clips_and_scales():
    cube = np.arange(224, dtype=np.int16)[:, None, None] * 50 - 100
    out = datasets.preprocess_hyspecnet(np.broadcast_to(cube, (224, 2, 2)))
    assert out.shape == (202, 2, 2) and out.dtype == np.float32
    kept = [i for i in range(224) if not (126 <= i <= 140 or 160 <= i <= 166)]
    np.testing.assert_allclose(out[:, 0, 0], np.clip(np.asarray(kept) * 50 - 100, 0, 10000) / 1e4, rtol=1e-6)


def test_hyspecnet_layout_reads_npy_and_falls_back_to_the_tif(fake_hyspecnet):
    root, lines = fake_hyspecnet
    train = datasets.HySpecNet11k(root, 'easy', 'train')
    assert len(train) == 2
    for i in range(2):
        patch = train[i]
        assert patch.shape == (202, 8, 8) and patch.dtype == np.float32
        np.testing.assert_allclose(patch, datasets.preprocess_hyspecnet(lines[i][1]), rtol=1e-6)
    assert len(datasets.HySpecNet11k(root, 'hard', 'test')) == 1
    with pytest.raises(FileNotFoundError):
        datasets.HySpecNet11k(root, 'mini', 'train')


def test_srf_resampling_keeps_a_flat_spectrum_flat():
    if not os.path.isfile(os.path.join(datasets.SHARED_DATA, 'enmap_bands_224.csv')):
        pytest.skip('shared data not found')
    wl = np.linspace(350, 2500, 300)
    out = datasets.resample_to_enmap(np.full((3, 300), 0.3, np.float32), wl)
    assert out.shape == (3, 202)
    np.testing.assert_allclose(out, 0.3, rtol=1e-4)
    ramp = datasets.resample_to_enmap((wl / 2500)[None].astype(np.float32), wl)[0]
    centres, _ = datasets.enmap_bands()
    np.testing.assert_allclose(ramp, centres / 2500, atol=2e-3)


@pytest.fixture
def shared():
    if not os.path.isdir(os.path.join(datasets.SHARED_DATA, 'enmap_potsdam')):
        pytest.skip(f'shared data not found in {datasets.SHARED_DATA}')


def test_generic_pixel_set_from_shared_data(shared):
    spectra = datasets.pixel_training_set(seed=1, real_repeat=1, mixtures=500)
    assert spectra.shape[1] == 202 and spectra.dtype == np.float32 and len(spectra) > 9216 + 500
    assert 0.0 <= spectra.min() and spectra.max() <= 1.0


def test_patch_sampler_never_uses_held_out_tiles(shared):
    from training.shared_data import HELD_OUT_TILES, potsdam_tiles

    assert not any(os.path.basename(p) in HELD_OUT_TILES for p in potsdam_tiles(held_out=False))
    sampler = datasets.PatchSampler(size=16)
    assert len(sampler.real) == 9
    batch = sampler.sample(np.random.default_rng(0), 6)
    assert batch.shape == (6, 202, 16, 16) and np.isfinite(batch).all()
    scene = datasets.synthetic_scene(sampler.library, np.random.default_rng(1), 16)
    assert scene.shape == (202, 16, 16) and scene.std(axis=(1, 2)).mean() > 0
