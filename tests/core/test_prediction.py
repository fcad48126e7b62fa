"""Spatial prediction of quantised channels: exact round trips and real savings on smooth data."""
import numpy as np
import pytest

from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.prediction import channel_entropy_bits, decode_predicted, encode_predicted


def _smooth(rng, channels, height, width):
    field = np.cumsum(np.cumsum(rng.integers(-2, 3, (channels, height, width)), axis=1), axis=2)
    return field


def test_round_trip_with_holes_and_all_modes():
    rng = np.random.default_rng(0)
    valid = rng.random((20, 17)) > 0.2
    smooth = _smooth(rng, 3, 20, 17)[:, valid]
    noisy = rng.integers(-3, 4, (2, int(valid.sum())))
    constant = np.zeros((1, int(valid.sum())), int)
    symbols = np.concatenate([smooth, noisy, constant]).astype(np.int32)
    data = encode_predicted(symbols, valid)
    np.testing.assert_array_equal(decode_predicted(data, 6, valid), symbols)


def test_prediction_pays_on_smooth_channels():
    rng = np.random.default_rng(1)
    valid = np.ones((64, 64), bool)
    symbols = _smooth(rng, 4, 64, 64).reshape(4, -1).astype(np.int32)
    predicted = len(encode_predicted(symbols, valid))
    from enmap_compress.plugin.core import entropy

    assert predicted < 0.85 * len(entropy.encode_channels(symbols))


def test_extreme_values_fall_back_to_plain_coding():
    valid = np.ones((1, 4), bool)
    symbols = np.array([[-2 ** 31 + 1, 2 ** 31 - 1, 0, 5]], np.int32)
    np.testing.assert_array_equal(decode_predicted(encode_predicted(symbols, valid), 1, valid), symbols)


def test_empty_tiles_and_corrupt_modes():
    valid = np.zeros((3, 3), bool)
    data = encode_predicted(np.zeros((2, 0), np.int32), valid)
    assert decode_predicted(data, 2, valid).shape == (2, 0)
    with pytest.raises(FormatError):
        decode_predicted(b'\x05\x00abc', 2, valid)
    with pytest.raises(FormatError):
        decode_predicted(data, 3, valid)


def test_channel_entropy_bits_matches_hand_values():
    symbols = np.array([[0, 0, 1, 1], [5, 5, 5, 5], [1, 2, 3, 4]])
    np.testing.assert_allclose(channel_entropy_bits(symbols), [4.0, 0.0, 8.0])


def test_int32_symbols_whose_deltas_span_more_than_int32_round_trip():
    """Symbols under 2^31 apart are predicted in int32: their deltas fit, but the span of the deltas may reach 2^32,
    which the cost estimate must count in int64 (it raised on a negative bincount length)."""
    rng = np.random.default_rng(4)
    valid = np.ones((16, 16), bool)
    symbols = rng.integers(-2 ** 30, 2 ** 30, (3, 256)).astype(np.int32)
    assert (decode_predicted(encode_predicted(symbols, valid), 3, valid) == symbols).all()
    assert np.isinf(channel_entropy_bits(np.diff(symbols, axis=1))).all()
