"""The standard EnMAP band table and the band-order helpers."""
import csv
import os

import numpy as np
import pytest

from enmap_compress.plugin.core import bands
from enmap_compress.plugin.core.errors import InputError
from enmap_compress.plugin.paths import resource_path


def test_table_has_224_ascending_bands():
    table = bands.standard_band_table()
    assert table.wavelength_nm.shape == (224,)
    assert np.all(np.diff(table.wavelength_nm) > 0)
    assert table.wavelength_nm[0] == pytest.approx(418.2, abs=0.1)
    assert table.wavelength_nm[-1] == pytest.approx(2445.53, abs=0.1)
    assert list(table.product_band) == list(range(1, 225))
    assert np.sum(table.detector == 'VNIR') == 91 and np.sum(table.detector == 'SWIR') == 133
    assert sorted(table.detector_order_band) == list(range(1, 225))
    assert np.all(table.fwhm_nm > 4) and np.all(table.fwhm_nm < 15)


def test_table_is_cached_and_read_only():
    table = bands.standard_band_table()
    assert bands.standard_band_table() is table
    with pytest.raises(ValueError):
        table.wavelength_nm[0] = 1.0
    copy = bands.standard_wavelengths()
    copy[0] = 1.0  # a copy: editing it must not touch the table
    assert table.wavelength_nm[0] != 1.0
    assert np.array_equal(bands.standard_fwhm(), table.fwhm_nm)


def test_overlap_region_interleaves_detectors():
    table = bands.standard_band_table()
    overlap = table.detector[79:101]  # product bands 80..101
    assert table.detector[79] == 'SWIR' and table.detector[80] == 'VNIR' and table.detector[100] == 'SWIR'
    assert set(overlap) == {'VNIR', 'SWIR'}
    assert np.array_equal(table.detector_order_band[:79], np.arange(1, 80))
    assert np.array_equal(table.detector_order_band[101:], np.arange(102, 225))


def test_resource_csv_has_comment_header_and_columns():
    with open(resource_path('enmap_bands_224.csv'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert lines[0].startswith('#') and 'DT0000001049' in lines[0]
    header = next(line for line in lines if not line.startswith('#'))
    assert header.split(',') == ['product_band', 'detector', 'detector_index', 'wavelength_nm', 'fwhm_nm',
                                 'detector_order_band', 'hyspecnet_dropped']


def test_resource_matches_shared_band_definition():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared_data = os.environ.get('ENMAP_SHARED_DATA', os.path.join(os.path.dirname(root), 'shared', 'data'))
    shared = os.path.join(shared_data, 'enmap_bands_224.csv')
    if not os.path.isfile(shared):
        pytest.skip(f'shared band table not found at {shared}')
    with open(shared, newline='') as f:
        rows = list(csv.DictReader(f))
    table = bands.standard_band_table()
    assert np.allclose([float(r['wavelength_nm']) for r in rows], table.wavelength_nm)
    assert [int(r['potsdam_detector_order_band']) for r in rows] == list(table.detector_order_band)


def test_hyspecnet_keep_mask():
    keep = bands.hyspecnet_keep_mask()
    assert keep.dtype == bool and keep.shape == (224,) and keep.sum() == 202
    assert len(bands.HYSPECNET_DROPPED_1BASED) == 22
    assert not keep[126] and not keep[140] and keep[141] and not keep[160] and not keep[166] and keep[167]
    assert np.array_equal(~keep, bands.standard_band_table().hyspecnet_dropped)


def test_canonical_order_sorts_detector_order():
    wl = bands.standard_wavelengths()
    detector = wl[bands.detector_order_permutation()]
    order = bands.canonical_order(detector)
    assert np.array_equal(detector[order], wl)


def test_canonical_order_is_stable_for_equal_wavelengths():
    assert list(bands.canonical_order([500.0, 400.0, 500.0, 400.0])) == [1, 3, 0, 2]


def test_detect_band_order():
    wl = bands.standard_wavelengths()
    assert bands.detect_band_order(wl) == 'wavelength'
    assert bands.detect_band_order(wl[bands.detector_order_permutation()]) == 'detector'
    assert bands.detect_band_order(wl[::-1]) == 'other'
    rng = np.random.default_rng(0)
    assert bands.detect_band_order(rng.permutation(wl)) == 'other'
    assert bands.detect_band_order([400, 500, 300, 600]) == 'other'  # one restart, but not near 900 nm


def test_to_hyspecnet_scales_and_clips():
    cube = np.full((224, 2, 3), 5000, dtype=np.int16)
    cube[:, 0, 0] = -32768
    cube[:, 0, 1] = 12000
    cube[:, 0, 2] = -50
    out = bands.to_hyspecnet(cube)
    assert out.shape == (202, 2, 3) and out.dtype == np.float32
    assert np.all(out[:, 1] == np.float32(0.5))
    assert np.all(out[:, 0, 0] == 0) and np.all(out[:, 0, 1] == 1) and np.all(out[:, 0, 2] == 0)


def test_to_hyspecnet_keeps_the_right_bands():
    cube = np.arange(224, dtype=np.float32)[:, None] * 10
    out = bands.to_hyspecnet(cube)
    assert np.allclose(out[:, 0] * 10000, np.flatnonzero(bands.hyspecnet_keep_mask()) * 10)


def test_to_hyspecnet_rejects_other_band_counts():
    with pytest.raises(InputError, match='224 bands'):
        bands.to_hyspecnet(np.zeros((202, 4, 4)))


def test_matches_standard():
    wl = bands.standard_wavelengths()
    assert bands.matches_standard(wl)
    assert bands.matches_standard(wl + 1.0)
    assert not bands.matches_standard(wl + 3.0)
    assert bands.matches_standard(wl[bands.detector_order_permutation()])
    assert not bands.matches_standard(wl[:200])
    assert not bands.matches_standard(np.full(224, np.nan))
