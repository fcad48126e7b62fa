"""The shared data of training and benchmarks: where it lives, the held-out Potsdam tiles, loading tiles and spectra."""
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get('ENMAP_SHARED_DATA', os.path.join(os.path.dirname(PROJECT_ROOT), 'shared', 'data'))
POTSDAM_DIR = os.path.join(SHARED_DATA, 'enmap_potsdam')
# Real Potsdam tiles that no model ever trains on: the validation set reported in every model card.
HELD_OUT_TILES = ('enmap_potsdam_tile_128_0.tif', 'enmap_potsdam_tile_64_32.tif', 'enmap_potsdam_tile_96_96.tif')


def potsdam_tiles(held_out):
    """Paths of the shared Potsdam tiles: the held-out ones, or the training ones."""
    if not os.path.isdir(POTSDAM_DIR):
        raise SystemExit(f'shared EnMAP data not found in {POTSDAM_DIR} (set ENMAP_SHARED_DATA)')
    names = sorted(f for f in os.listdir(POTSDAM_DIR) if f.endswith('.tif'))
    return [os.path.join(POTSDAM_DIR, f) for f in names if (f in HELD_OUT_TILES) == held_out]


def load_spectra(paths):
    """Valid pixels of the given rasters in the HySpecNet 202-band [0, 1] view: (N, 202) float32."""
    import numpy as np

    from enmap_compress.plugin.core.enmap import open_spectral
    from enmap_compress.plugin.core.tiling import valid_pixels

    spectra = []
    for path in paths:
        with open_spectral(path) as raster:
            cube = raster.read_canonical(0, 0, raster.width, raster.height).astype(np.float32)
            dead = raster.canonical_dead_bands
            valid = valid_pixels(cube, raster.nodata, ~dead)
            view = raster.hyspecnet_view(0, 0, raster.width, raster.height)
            spectra.append(view[:, valid].T)
    return np.concatenate(spectra, axis=0)


def potsdam_cubes(held_out):
    """The held-out or the training Potsdam tiles as one (N, 202, H, W) float32 array on [0, 1] (HySpecNet view)."""
    import numpy as np

    from enmap_compress.plugin.core.enmap import open_spectral

    cubes = []
    for path in potsdam_tiles(held_out):
        with open_spectral(path) as raster:
            cubes.append(np.clip(raster.hyspecnet_view(0, 0, raster.width, raster.height), 0, 1))
    return np.stack(cubes).astype(np.float32)
