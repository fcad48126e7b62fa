"""Predicted residuals (residual.py): exact closed-loop round trips, the bound on every sample, and smaller symbols."""
import hashlib
import os

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import residual
from enmap_compress.plugin.core.codec import compress, decompress
from tools import synthetic

gdal.UseExceptions()


def _correlated(rng, bands, shape):
    """Residual-like data: smooth in space and across bands, plus noise."""
    field = np.zeros((bands,) + shape)
    state = rng.normal(0, 30, shape)
    for band in range(bands):
        state = 0.9 * state + rng.normal(0, 8, shape)
        field[band] = (state + np.roll(state, 1, axis=0) + np.roll(state, 1, axis=1)) / 3
    return np.rint(field + rng.normal(0, 1, field.shape)).astype(np.int64)


@pytest.mark.parametrize('shape, bound', [((40, 33), 0), ((40, 33), 1), ((17, 9), 5), ((1, 1), 0), ((2, 7), 3)])
def test_round_trip_is_exact_and_within_the_bound(shape, bound):
    rng = np.random.default_rng(3)
    valid = np.ones(shape, bool)
    if shape[0] > 4:
        valid[2:5, 3:7] = False
        valid[-1, -1] = False
    data = _correlated(rng, 12, shape)[:, valid]
    data[4, :2] = [60000, -70000][:data.shape[1]]  # far beyond the clipping of the features
    limits = np.full(12, bound)
    limits[7] = 0  # one exact band among bounded ones
    symbols, restored = residual.code(valid, limits, residual=data)
    assert (np.abs(restored - data) <= limits[:, None]).all()
    again = residual.code(valid, limits, symbols=symbols.copy())[1]
    assert np.array_equal(again, restored)


@pytest.mark.parametrize('pixels', [0, 1])
def test_a_tile_with_no_or_one_valid_pixel_round_trips(pixels):
    valid = np.zeros((5, 7), bool)
    valid.flat[17:17 + pixels] = True
    data = np.array([[-9], [4000], [0], [-3]], np.int64)[:, :pixels]
    for limits in (np.zeros(4, int), np.array([0, 3, 1, 0])):
        symbols, restored = residual.code(valid, limits, residual=data)
        assert symbols.shape == (4, pixels) and (np.abs(restored - data) <= limits[:, None]).all()
        assert np.array_equal(residual.code(valid, limits, symbols=symbols)[1], restored)


def test_prediction_shrinks_the_symbols_of_correlated_residuals():
    rng = np.random.default_rng(5)
    valid = np.ones((48, 48), bool)
    data = _correlated(rng, 30, valid.shape).reshape(30, -1)
    symbols, _ = residual.code(valid, np.zeros(30, int), residual=data)
    assert np.abs(symbols[5:]).mean() < 0.6 * np.abs(data[5:]).mean()


def test_the_solver_is_plain_python_arithmetic():
    columns = [np.array([100.0, 200.0, 300.0, 400.0] * 50), np.array([0.0, 100.0, 0.0, 100.0] * 50)]
    target = 3 * columns[0] - 2 * columns[1]
    gram, right, count = residual._normal_equations(columns, target, 200)
    weights = residual._solve(gram, right, count)
    assert abs(weights[0] - 768) <= 2 and abs(weights[1] + 512) <= 2  # 3 and -2 in units of 1/256 (ridge)
    assert all(isinstance(w, int) for w in weights)


def test_the_solver_sums_floats_the_same_on_every_python(monkeypatch):
    """Python 3.12 made the built-in sum() of floats compensated: the solver must not use it, or a file's weights
    would depend on the Python that reads it."""
    assert residual._left_sum([0.1] * 10) == 0.9999999999999999  # a plain left fold (compensated: 1.0)
    assert residual._left_sum([]) == 0

    def no_builtin_sum(*args):
        raise AssertionError('the solver called the built-in sum()')

    monkeypatch.setattr(residual, 'sum', no_builtin_sum, raising=False)
    rng = np.random.default_rng(9)
    columns = [rng.integers(-2000, 2000, 300).astype(np.float64) for _ in range(4)]
    gram, right, count = residual._normal_equations(columns, columns[0] * 0.7 + columns[2] * 0.3, 300)
    assert len(residual._solve(gram, right, count)) == 4


@pytest.mark.parametrize('k', [2, 3, 4])
def test_the_lossless_encoder_solves_all_bands_exactly_as_the_loop_does(k):
    """The lossless encoder fits every band at once (_remember_bands, _solve_bands): the weights must be those of
    the band-by-band loop's Python floats, bit for bit, with samples too few to fit as well."""
    rng = np.random.default_rng(k)
    bands, count = 60, 9 * k
    columns = rng.integers(-8000, 8000, (bands, k + 1, 3 * count)).astype(np.float64)
    columns[:, -1] = columns[:, 0] * rng.normal(0, 1, (bands, 1)) + rng.normal(0, 300, (bands, 3 * count))
    columns[7] = 0  # a silent band
    columns[:, -1] = np.clip(np.rint(columns[:, -1]), -residual.FEATURE_LIMIT, residual.FEATURE_LIMIT)
    products = columns[:, :-1] @ columns.transpose(0, 2, 1)
    for tiny in (count, 4 * k - 1):  # enough samples, and too few (zero weights)
        memory, counts = residual._remember_bands(products, tiny)
        expected, old = [], None
        for band in range(bands):
            old = residual._remember(products[band].tolist(), tiny, old)
            expected.append(residual._solve(*old))
            assert counts[band] == old[2] and memory[band].tolist() == [g + [r] for g, r in zip(old[0], old[1])]
            floats = residual._float_weights_bands(memory[band:band + 1])[0].tolist()
            assert floats == residual._float_weights(old[0], old[1])  # every bit, before the rounding
        assert residual._solve_bands(memory, counts).tolist() == expected


def test_dead_bands_and_lone_nodata_survive_lossless_and_bounded_coding(tmp_path):
    path = synthetic.write_scene(str(tmp_path / 'd.tif'), width=21, height=19, seed=12)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(60).WriteArray(np.full((19, 21), -32768, np.int16))  # a dead band inside the coded set
    data = ds.GetRasterBand(61).ReadAsArray()
    data[4, 4], data[5, 5], data[6, 6] = -32768, 12000, -3
    ds.GetRasterBand(61).WriteArray(data)
    ds = None
    original = gdal.Open(path).ReadAsArray().astype(np.int64)
    for bound in (0, 2):
        ehc, rec = str(tmp_path / f'{bound}.ehc'), str(tmp_path / f'{bound}.tif')
        compress(path, ehc, 'pca', None, 'cpu', max_error=bound, tile_size=8)
        decompress(ehc, rec, 'cpu')
        out = gdal.Open(rec).ReadAsArray().astype(np.int64)
        assert (out[59] == -32768).all()
        if bound == 0:
            assert np.array_equal(out, original)
        else:
            keep = np.setdiff1d(np.arange(224), np.r_[59, 126:141, 160:167])
            assert np.abs(out[keep] - original[keep]).max() <= bound


def test_real_tile_with_the_default_model_lossless_and_per_band(potsdam_tile_paths, tmp_path):
    """A real EnMAP tile with its dead bands: bit-exact in all 224 bands, and every per-band limit held."""
    path = next(p for p in potsdam_tile_paths if os.path.basename(p) == 'enmap_potsdam_tile_96_32.tif')
    original = gdal.Open(path).ReadAsArray().astype(np.int64)
    limits = np.where(np.isin(np.arange(224), np.r_[126:141, 160:167]), 40, 1 + np.arange(224) % 4)  # file order
    for name, kwargs in (('l', {'max_error': 0}), ('b', {'band_max_errors': limits.tolist()})):
        ehc, rec = str(tmp_path / f'{name}.ehc'), str(tmp_path / f'{name}.tif')
        compress(path, ehc, None, None, 'cpu', **kwargs)
        decompress(ehc, rec, 'cpu')
        out = gdal.Open(rec).ReadAsArray().astype(np.int64)
        if name == 'l':
            assert np.array_equal(out, original)
        else:
            assert (np.abs(out - original) <= limits[:, None, None]).all()


def test_the_arithmetic_is_frozen():
    """Files of predicted-v1 and predicted-v2 decode through this very arithmetic: a fixed input must give the same
    symbols and restored residuals in every later version (the hash was computed with 0.2's code)."""
    valid = np.ones((13, 11), bool)
    valid[3:6, 2:5] = False
    valid[-1, -1] = False
    n = int(valid.sum())
    k = np.arange(6 * n, dtype=np.int64).reshape(6, n)
    data = (k * 7919 % 211 - 105) + (k // n) * 40 + np.where(k % 17 == 0, 3000, 0)
    symbols, restored = residual.code(valid, np.array([0, 1, 3, 0, 2, 5]), residual=data)
    digest = hashlib.sha256(symbols.astype('<i4').tobytes() + restored.astype('<i4').tobytes()).hexdigest()
    assert digest == '9757d6851a829cd867206fc4ecc4f8c5610e30e6b10584b1521a9c0b0d938fc1'
