"""The learned-prior coder: deterministic tables, exact round trips, escapes, damage detection, rate near ideal."""
import math

import numpy as np
import pytest

from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.modelmeta import EntropyModel, QualityLevel
from enmap_compress.plugin.core.prior import LaplaceTable, decode_groups, encode_groups, exp_neg


@pytest.mark.parametrize('x', [0.0, 1e-7, 0.01, 0.5, 1.0, 3.3, 12.0, 80.0, 650.0])
def test_exp_neg_matches_the_exponential(x):
    assert exp_neg(x) == pytest.approx(math.exp(-x), rel=1e-10)


def test_exp_neg_underflows_to_zero():
    assert exp_neg(1e4) == 0.0


@pytest.mark.parametrize('beta', [0.05, 0.7, 4.0, 300.0])
def test_table_is_the_laplace_interval_mass(beta):
    deadzone = 0.1
    table = LaplaceTable(beta, deadzone)
    p = table.weights[:-1] / table.weights[:-1].sum()
    half = table.half
    expected_zero = 1 - math.exp(-(0.5 + deadzone) / beta)
    assert p[half] == pytest.approx(expected_zero, rel=1e-4)  # the table drops a tail of ~exp(-12)
    if beta >= 0.5:  # tiny scales: the tail sits on the floor that keeps every symbol codable
        ratio = p[half + 2] / p[half + 1]
        assert ratio == pytest.approx(math.exp(-1 / beta), rel=1e-6)
    assert p[:half][::-1] == pytest.approx(p[half + 1:], rel=1e-12)


def test_round_trip_with_escapes_and_empty_rows():
    rng = np.random.default_rng(3)
    betas = [0.06, 0.8, 5.0, 900.0, 2.0]
    rows = [np.rint(rng.laplace(0, b, n)).astype(np.int32) for b, n in zip(betas, (5000, 3000, 0, 700, 1))]
    rows[0][17] = 250  # far outside the table of a tiny scale: escaped
    rows[3][3] = -2 ** 31  # int32 extreme
    tables = [LaplaceTable(b, 0.15) for b in betas]
    data = encode_groups(rows, tables)
    back = decode_groups(data, tables, [len(r) for r in rows])
    assert all(np.array_equal(a, b) for a, b in zip(rows, back))


def test_rate_is_close_to_the_ideal_code_length():
    rng = np.random.default_rng(4)
    beta = 3.0
    row = np.rint(rng.laplace(0, beta, 200000)).astype(np.int32)
    table = LaplaceTable(beta, 0.0)
    p = table.weights / table.weights.sum()
    ideal = -np.log2(p[row + table.half]).sum()
    bits = 8 * len(encode_groups([row], [table]))
    assert ideal < bits < ideal * 1.003 + 200


def test_damage_and_geometry_mismatch_are_format_errors():
    rng = np.random.default_rng(5)
    tables = [LaplaceTable(1.5, 0.1), LaplaceTable(0.3, 0.1)]
    rows = [np.rint(rng.laplace(0, 1.5, 400)).astype(np.int32), np.zeros(400, np.int32)]
    data = bytearray(encode_groups(rows, tables))
    with pytest.raises(FormatError):
        decode_groups(data, tables[:1], [400])
    data[len(data) // 2] ^= 0x40
    with pytest.raises(FormatError):
        decode_groups(bytes(data), tables, [400, 400])
    with pytest.raises(FormatError):
        decode_groups(b'XX' + bytes(30), tables, [400, 400])


def _every_sample(channels, samples):
    """The latent geometry of a tile with every sample valid."""
    from enmap_compress.plugin.core.latent import LatentGeometry

    return LatentGeometry(channels, np.ones(samples, bool))


def test_rows_unlike_the_prior_get_their_own_scale_and_skipped_rows_are_rescued():
    from enmap_compress.plugin.core.latent import PriorLatentCoder

    rng = np.random.default_rng(6)
    scales = np.array([0.5, 0.5, 0.01, 0.01])  # rows 2 and 3 are below skip_below at this step: skipped by the prior
    geometry = _every_sample(4, 4096)
    coder = PriorLatentCoder(QualityLevel(1, 0.1, deadzone=0.1, skip_below=0.3),
                             EntropyModel('laplace', tuple(scales.tolist())))
    latent = np.stack([rng.laplace(0, 0.5, 4096), rng.laplace(0, 5.0, 4096),  # row 1: 10x its prior scale
                       rng.laplace(0, 0.001, 4096), rng.laplace(0, 0.8, 4096)]).astype(np.float32)  # row 3: energy
    symbols, data = coder.encode(latent, geometry)
    np.testing.assert_array_equal(coder.decode(data, geometry), symbols)
    assert not symbols[2].any() and symbols[3].any()  # the tiny row stays skipped, the energetic one is coded
    error = np.abs(coder.dequantise(symbols) - latent).max(axis=1)
    assert error[1] <= 0.1 and error[3] <= 0.1  # within one step where coded
    plain = PriorLatentCoder(QualityLevel(1, 0.1, deadzone=0.1, skip_below=0.0),
                             EntropyModel('laplace', (0.5, 5.0, 0.01, 0.8)))
    assert len(data) < 1.05 * len(plain.encode(latent, geometry)[1])  # about what the right prior would cost


@pytest.mark.parametrize('deadzone', [0.0, 0.1, 0.15, 0.5])
def test_the_dead_zone_quantiser_is_sign_times_floor_of_magnitude_plus_half_minus_d(deadzone):
    from enmap_compress.plugin.core.latent import PriorLatentCoder

    coder = PriorLatentCoder(QualityLevel(1, 1.0, deadzone=deadzone), EntropyModel('laplace', (1.0,)))
    rng = np.random.default_rng(3)
    edges = np.float32([0.0, -0.0, 0.5, -0.5, 0.5 + deadzone, -0.5 - deadzone, 1.5 + deadzone, -1.5 - deadzone])
    scaled = np.concatenate([edges, np.nextafter(edges, np.float32(0)), rng.laplace(0, 3, 10000).astype(np.float32)])
    expected = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5 - deadzone))
    np.testing.assert_array_equal(coder._quantise(scaled), expected.astype(np.int32))
