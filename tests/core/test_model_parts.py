"""rdnet's block-local analysis and synthesis run in parts (ENCODE_PARTS row bands, DECODE_PARTS bands of blocks),
so compress and decompress move the bar inside a tile's model run (a 400 x 400 product is four tiles): the latent
and the reconstruction equal one run of the graph bit for bit."""
import numpy as np
import pytest

from enmap_compress.plugin.core.runtime import OnnxRunner, find_model
from enmap_compress.plugin.core.transforms import (
    DECODE_PART_MIN_BLOCKS,
    DECODE_PARTS,
    ENCODE_PART_MIN_ROWS,
    ENCODE_PARTS,
    FILL_SHARE,
    SpatialTransform,
    valid_mean,
)


@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('height, width', [(264, 264), (256, 144), (144, 256), (136, 88), (100, 40), (72, 40)])
def test_the_analysis_in_row_bands_equals_one_run(threads, height, width):
    package = find_model('rdnet')
    transform = SpatialTransform(OnnxRunner(package, 'cpu', threads), package.meta)
    unit = np.random.default_rng(height + width).random((202, height, width), dtype=np.float32)
    valid = np.ones((height, width), bool)
    valid[:5, :7] = False  # a nodata corner: filled with the mean spectrum first
    kept = (slice(0, height), slice(0, width))
    reached = []
    latent = transform.encode(unit, valid, kept, reached.append)
    filled = unit.copy()
    filled[:, ~valid] = valid_mean(unit, valid)[:, None]
    padded = -(-height // 8) * 8, -(-width // 8) * 8
    filled = np.pad(filled, ((0, 0), (0, padded[0] - height), (0, padded[1] - width)), mode='edge')
    whole = transform.runner.run('encoder', filled[None]).reshape(transform.channels, -1)
    assert np.array_equal(latent, whole)
    if padded[0] >= ENCODE_PARTS * ENCODE_PART_MIN_ROWS:
        assert np.allclose(reached, [FILL_SHARE] + [FILL_SHARE + (1 - FILL_SHARE) * (i + 1) / ENCODE_PARTS
                                                     for i in range(ENCODE_PARTS)])
    else:
        assert reached == []


@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('rows, columns, axis', [(33, 33, -2), (18, 32, -2), (32, 18, -2), (1, 700, -1),
                                                 (1, 300, -1), (4, 40, -2)])
def test_the_synthesis_in_parts_equals_one_run(threads, rows, columns, axis):
    """A grid of latent cells (rows of blocks: the whole tile; one row: the blocks of a tile with nodata borders)."""
    package = find_model('rdnet')
    transform = SpatialTransform(OnnxRunner(package, 'cpu', threads), package.meta)
    grid = np.random.default_rng(rows * columns).normal(0.0, 0.05, (1, *transform.dims, rows, columns))
    grid = grid.astype(np.float32)
    reached = []
    parts = transform._decode_parts(grid, axis, reached.append)
    assert np.array_equal(parts, transform.runner.run('decoder', grid)[0])
    split = grid.shape[axis] // DECODE_PARTS * grid.shape[-1 if axis == -2 else -2] >= DECODE_PART_MIN_BLOCKS
    assert reached == ([(i + 1) / DECODE_PARTS for i in range(DECODE_PARTS)] if split else [])


@pytest.mark.parametrize('block', [7, 1024])
def test_the_nodata_fill_is_the_mean_of_the_valid_pixels(monkeypatch, block):
    """valid_mean sums a block of pixels at a time in float64: the float32 mean of the valid pixels, whatever the
    block (a tile-sized gather of them was what it replaced)."""
    from enmap_compress.plugin.core import transforms

    monkeypatch.setattr(transforms, 'MEAN_BLOCK_PIXELS', block)
    rng = np.random.default_rng(block)
    unit = rng.random((6, 40, 50), dtype=np.float32)
    valid = rng.random((40, 50)) < 0.3
    expected = unit[:, valid].astype(np.float64).mean(axis=1).astype(np.float32)
    assert np.array_equal(valid_mean(unit, valid), expected)
