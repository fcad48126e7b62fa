"""rdnet's context latent coder (core/context_coder.py): round trips, determinism, nodata blocks, damaged streams."""
import hashlib
import os

import numpy as np
import pytest

from enmap_compress.plugin.core.context_coder import ContextLatentCoder, _ll_prediction, scale_code
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.latent import LatentGeometry, PriorLatentCoder
from enmap_compress.plugin.core.modelmeta import EntropyModel, QualityLevel
from enmap_compress.plugin.core.prior import byte_scale

COMPONENTS = 6


def _model():
    scales = np.geomspace(0.4, 0.01, COMPONENTS)[:, None] * np.geomspace(1.0, 0.3, 64)[None, :]
    return EntropyModel('laplace', tuple(float(v) for v in scales.ravel()))


def _level(step=0.01, deadzone=0.1, skip_below=0.2):
    return QualityLevel(1, step, deadzone=deadzone, skip_below=skip_below)


def _latent(seed, height=6, width=5, smooth_ll=False, edge=False):
    """(channels, cells) like rdnet's: Laplace rows at the model's scales, an 'edge' of active blocks."""
    rng = np.random.default_rng(seed)
    scales = np.asarray(_model().scales).reshape(COMPONENTS, 64, 1)
    activity = np.ones((height, width))
    if edge:
        activity[:, width // 2] = 6.0
        activity[:, :width // 2] = 0.1
    latent = rng.laplace(size=(COMPONENTS, 64, height * width)) * scales * activity.reshape(1, 1, -1)
    if smooth_ll:
        ramp = np.add.outer(np.arange(height), np.arange(width)).reshape(-1) * 0.3
        latent[:, 0] = ramp[None, :] * scales[:, 0] * 20.0
    return latent.reshape(COMPONENTS * 64, -1).astype(np.float32)


def _geometry(height=6, width=5, occupied=None):
    grid = np.ones((height, width), bool)
    return LatentGeometry(COMPONENTS * 64, grid, grid if occupied is None else occupied)


@pytest.mark.parametrize('smooth_ll,edge', [(False, False), (True, False), (False, True), (True, True)])
def test_round_trip_and_same_symbols_as_the_prior_coder(smooth_ll, edge):
    coder = ContextLatentCoder(_level(), _model())
    latent, geometry = _latent(1, smooth_ll=smooth_ll, edge=edge), _geometry()
    symbols, data = coder.encode(latent, geometry)
    assert np.array_equal(coder.decode(data, geometry), symbols)
    prior_symbols, _ = PriorLatentCoder(_level(), _model()).encode(latent, geometry)
    assert symbols.dtype == np.int32
    moved = symbols != prior_symbols  # RDOQ moves some detail symbols one step towards 0, never LL or away from 0
    assert moved.any()
    assert not moved.reshape(COMPONENTS, 64, -1)[:, 0].any()
    assert np.all(np.abs(symbols - prior_symbols) <= 1) and np.all(np.abs(symbols) <= np.abs(prior_symbols))
    assert np.all(symbols * prior_symbols >= 0)
    plain = ContextLatentCoder(_level(), _model())
    plain.rdoq = False
    plain_symbols, plain_data = plain.encode(latent, geometry)
    assert np.array_equal(plain_symbols, prior_symbols)  # without RDOQ the quantiser is the prior coder's
    assert np.array_equal(plain.decode(plain_data, geometry), plain_symbols)


def test_the_options_are_taken_where_they_pay():
    coder = ContextLatentCoder(_level(), _model())
    geometry = _geometry()
    plain = coder.analyse(_latent(2), geometry)
    assert plain[3] is None  # white LL: no prediction
    smooth = coder.analyse(_latent(2, smooth_ll=True), geometry)
    assert smooth[3] is not None  # a ramp: predicted from the neighbours
    assert coder._delta_choice(*coder.analyse(_latent(3, height=16, width=16, edge=True),
                                              _geometry(16, 16))[5])[1]  # strongly clustered: own deltas


def test_context_saves_bits_on_clustered_activity():
    geometry = _geometry(16, 16)
    latent = _latent(4, height=16, width=16, edge=True, smooth_ll=True)
    prior = PriorLatentCoder(_level(), _model()).encode(latent, geometry)[1]
    context = ContextLatentCoder(_level(), _model()).encode(latent, geometry)[1]
    assert len(context) < 0.8 * len(prior)


def test_stream_is_deterministic_and_frozen():
    """The same input gives the same bytes in every run and on every platform (this digest is the format)."""
    coder = ContextLatentCoder(_level(), _model())
    latent, geometry = _latent(5, smooth_ll=True, edge=True), _geometry()
    data = coder.encode(latent, geometry)[1]
    assert data == ContextLatentCoder(_level(), _model()).encode(latent.copy(), geometry)[1]
    assert hashlib.sha256(data).hexdigest() == FROZEN_DIGEST


FROZEN_DIGEST = '89c0d146046720345ac1c1b57a0160c36e1f1a83bbe1ddb89eda26debae9f1c9'  # the encoder's output: change it
# only on purpose (the stream format itself is pinned by the decoder's checks and docs/format.md)


FROZEN_STREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'streams',
                             'context_v1_3x4.bin')


def test_a_frozen_context_v1_stream_keeps_decoding_to_the_same_symbols():
    """Written once by this coder (3 x 4 cells, LL predicted, RDOQ): every later version must decode it the same."""
    with open(FROZEN_STREAM, 'rb') as handle:
        data = handle.read()
    symbols = ContextLatentCoder(_level(), _model()).decode(data, _geometry(3, 4))
    assert hashlib.sha256(symbols.astype('<i4').tobytes()).hexdigest() == \
        'd436697bdafae779e07d702a2387c68d603d55a679eab5a1556dd501ce8947d0'


def test_nodata_blocks_cost_nothing_and_decode_to_zero_details():
    occupied = np.ones((6, 5), bool)
    occupied[:, :2] = False
    coder = ContextLatentCoder(_level(), _model())
    latent = _latent(6, smooth_ll=True)
    full = coder.encode(latent, _geometry())[1]
    symbols, data = coder.encode(latent, _geometry(occupied=occupied))
    assert len(data) < len(full)
    back = coder.decode(data, _geometry(occupied=occupied))
    assert np.array_equal(back, symbols)
    cells = occupied.reshape(-1)
    assert not back.reshape(COMPONENTS, 64, -1)[:, 1:, ~cells].any()


def test_empty_tile_and_damaged_streams():
    coder = ContextLatentCoder(_level(), _model())
    empty = LatentGeometry(COMPONENTS * 64, np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    symbols, data = coder.encode(np.zeros((COMPONENTS * 64, 0), np.float32), empty)
    assert data == b'' and coder.decode(b'', empty).shape == (COMPONENTS * 64, 0)
    with pytest.raises(FormatError):
        coder.decode(b'x', empty)
    latent, geometry = _latent(7, edge=True), _geometry()
    data = bytearray(coder.encode(latent, geometry)[1])
    old = PriorLatentCoder(_level(), _model())
    with pytest.raises(FormatError, match='version'):  # a reader of the per-row prior refuses a context stream
        old.decode(bytes(data), geometry)
    with pytest.raises(FormatError, match='version'):
        coder.decode(old.encode(latent, geometry)[1], geometry)
    for position in (len(data) // 2, len(data) - 1, 3):
        damaged = bytearray(data)
        damaged[position] ^= 0x40
        with pytest.raises(FormatError):
            coder.decode(bytes(damaged), geometry)
    with pytest.raises(FormatError):
        coder.decode(bytes(data[:-5]), geometry)


def test_scale_codes_are_the_nearest_quarter_octave():
    for code in (-128, -40, -1, 0, 1, 17, 127):
        beta = byte_scale(code)
        assert scale_code(beta) == code
        assert scale_code(beta * 1.09) == code and scale_code(beta / 1.09) == code


def _ll_prediction_block_by_block(ll, occupied, residual=None):
    """The LL DPCM as docs/format.md states it, one block after the other in raster order."""
    height, width = occupied.shape
    source = (ll if residual is None else residual).reshape(-1, height, width).astype(np.int64)
    out = np.zeros_like(source)
    for i in range(height):
        for j in range(width):
            left, up = out[:, i, j - 1] if j else None, out[:, i - 1, j] if i else None
            pred = (left + up) // 2 if i and j else left if j else up if i else 0
            if not occupied[i, j]:
                out[:, i, j] = pred
            elif residual is None:
                out[:, i, j] = source[:, i, j]
                source[:, i, j] -= pred
            else:
                out[:, i, j] = pred + source[:, i, j]
    return (source if residual is None else out).reshape(len(source), -1)


def test_ll_prediction_by_anti_diagonals_is_the_raster_order_dpcm():
    rng = np.random.default_rng(3)
    for case in range(120):
        height, width = rng.integers(1, 14, 2)
        occupied = rng.random((height, width)) < (rng.random() if case % 4 else 2.0)  # every fourth: all occupied
        ll = rng.integers(-900, 900, (int(rng.integers(1, 5)), height * width)) * occupied.reshape(-1)
        residual = _ll_prediction(ll, occupied)
        assert np.array_equal(residual, _ll_prediction_block_by_block(ll, occupied))
        rebuilt = _ll_prediction(None, occupied, residual)
        assert np.array_equal(rebuilt, _ll_prediction_block_by_block(None, occupied, residual))
        assert np.array_equal(rebuilt * occupied.reshape(-1), ll)


@pytest.mark.parametrize('block_bytes', [64, 1 << 18])
def test_row_peaks_are_each_rows_largest_magnitude(monkeypatch, block_bytes):
    """live_rows' peaks, a cache-sized block of rows at a time: max |value| per row, any block size, no samples."""
    from enmap_compress.plugin.core import latent

    monkeypatch.setattr(latent, 'PEAK_BLOCK_BYTES', block_bytes)
    values = np.random.default_rng(2).normal(size=(37, 19)).astype(np.float32)
    values[3] = -0.0
    values[5, 4] = -50.0
    assert np.array_equal(latent.row_peaks(values), np.abs(values).max(axis=1))
    assert np.all(latent.row_peaks(np.zeros((4, 0), np.float32)) == -np.inf)
