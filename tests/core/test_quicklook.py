"""Quick looks of float inputs whose valid pixels hold NaN or Inf samples (and NaN errors)."""
import warnings

import numpy as np

from enmap_compress.plugin.core.quicklook import QuickLookCollector, error_colours
from enmap_compress.plugin.core.tiling import Tile


def _collected(a, b, error):
    bands, height, width = a.shape
    collector = QuickLookCollector(width, height, size=width, bands=(0, 1, 2))
    collector.update(Tile(0, 0, width, height), a, b, np.ones((height, width), bool), error)
    return collector


def test_nan_and_inf_samples_and_errors_give_a_quick_look_without_warnings():
    rng = np.random.default_rng(0)
    a = rng.uniform(100, 3000, (3, 8, 8)).astype(np.float32)
    b = a + 5
    a[0, 0, 0], a[1, 1, 1], b[2, 2, 2] = np.nan, np.inf, -np.inf
    error = np.full((8, 8), 5.0, np.float32)
    error[3, 3], error[4, 4] = np.nan, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a NaN cast to uint8 warns; so does a percentile over NaN
        look = _collected(a, b, error).result()
    assert look.original_png.startswith(b'\x89PNG') and look.error_png.startswith(b'\x89PNG')
    assert look.error_scale_dn == 5.0  # the finite errors set the scale


def test_a_nan_error_is_drawn_in_the_top_colour():
    top = error_colours(np.array([10.0]), 10.0)[0]
    assert (error_colours(np.array([np.nan]), 10.0)[0] == top).all()
    assert (error_colours(np.array([np.inf]), 10.0)[0] == top).all()
