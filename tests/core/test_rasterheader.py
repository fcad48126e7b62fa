"""The compact raster header: band tables as delta strings restore every value exactly, 0.1.0 headers still read."""
import numpy as np
import pytest

from enmap_compress.plugin.core import rasterheader
from enmap_compress.plugin.core.bands import standard_fwhm, standard_wavelengths
from enmap_compress.plugin.core.errors import FormatError


def test_digits_round_trip_any_integer():
    values = [0, 1, -1, 15, -16, 16, 31, -32, 1000, -100000, 2 ** 40]
    assert rasterheader._undigits(rasterheader._digits(values)) == values
    assert len(rasterheader._digits(range(-16, 16))) == 32  # small values take one character


@pytest.mark.parametrize('decimals', [2, 3, 5])
def test_a_band_table_is_restored_exactly_at_its_own_precision(decimals):
    reference = standard_wavelengths()
    rng = np.random.default_rng(decimals)
    values = np.round(reference + np.cumsum(rng.normal(0, 0.01, reference.size)), decimals)
    packed = rasterheader._pack_table(values, reference)
    assert isinstance(packed, str) and packed[1] in (str(max(3, decimals)), 's')
    assert rasterheader._unpack_table(packed, reference) == values.tolist()


def test_the_standard_table_costs_a_few_bytes():
    packed = rasterheader._pack_table(standard_fwhm(), standard_fwhm())
    assert set(packed[2:]) == {'A'} and rasterheader._deflated_length(packed) < 20


def test_a_0_1_0_header_with_milli_lists_still_unpacks():
    wavelengths = standard_wavelengths() + 0.05
    old = {'band_count': 224, 'canonical_index': 'identity', 'crs': '', 'gains': 1e-4, 'offsets': 0.0,
           'wavelengths_milli': [50] * 224, 'fwhm_milli': [0] * 224, 'band_names': 0}
    unpacked = rasterheader.unpack_raster(old)
    np.testing.assert_allclose(unpacked['wavelengths'], wavelengths, atol=1e-9)
    assert unpacked['fwhm'] == [round(float(v), 3) for v in standard_fwhm()]


@pytest.mark.parametrize('bad', ['2' + '3AAAA', '1', '13' + 'A' * 10, '13' + '-' * 224])
def test_a_damaged_band_table_is_a_format_error(bad):
    with pytest.raises(FormatError):
        rasterheader._unpack_table(bad, standard_wavelengths())
