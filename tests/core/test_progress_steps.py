"""The bar moves through the slow steps that are not tiles (#16 "no phase holds the bar still for more than a
tenth of the run"): the dead-band scan before the first tile, and each row of GeoTIFF blocks, band by band, while
it is encoded (a 224-band row of 256 px blocks took 9-15 % of a 1000 x 1000 decompress), and every stage of a
tile (a 400 x 400 product is four tiles of 256 px: a tile's model alone held the bar for 10-20 % of the run)."""
import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core import enmap
from enmap_compress.plugin.core.codec import (
    DEQUANTISED_SHARE,
    SCAN_SHARE,
    SYMBOLS_SHARE,
    UNIT_SHARE,
    compress,
    decompress,
)
from enmap_compress.plugin.core.context_coder import ANALYSIS_SHARE
from enmap_compress.plugin.core.evaluate import evaluate
from enmap_compress.plugin.core.geotiff import BandInfo, GeoTiffWriter, RasterLayout
from enmap_compress.plugin.core.latent_basis import CHOICE_SHARE
from enmap_compress.plugin.core.metrics import BAND_CHUNK
from enmap_compress.plugin.core.tiling import Progress
from tools import synthetic


def _recorded():
    events = []
    return events, Progress(1, lambda percent: events.append(percent), describe=events.append)


def test_compress_moves_the_bar_after_the_band_scan_and_decompress_while_it_writes_block_rows(tmp_path):
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=24, height=300, seed=2)  # two block rows
    events, progress = _recorded()
    compress(scene, str(tmp_path / 'scene.ehc'), 'pca', 5, 'cpu', tile_size=60, progress=progress)  # (no TIFF
    # block side: the GeoTIFF has 256 px blocks, not the tiles' size)
    first = next(index for index, event in enumerate(events) if not isinstance(event, str))
    assert 'finding the bands that hold data' in events[:first]
    assert events[first] == 100 * SCAN_SHARE
    assert next(event for event in events[first:] if isinstance(event, str)) == 'compressing tile 1 of 5'
    events, progress = _recorded()
    decompress(str(tmp_path / 'scene.ehc'), str(tmp_path / 'back.tif'), 'cpu', progress=progress)
    percents = [event for event in events if not isinstance(event, str)]
    assert percents == sorted(percents) and percents[-1] == 100
    rows = [index for index, event in enumerate(events) if event == 'writing a row of GeoTIFF blocks']
    assert len(rows) == 1  # both rows of blocks after tile 5 (rows 240-299: it ends the second one)
    between = [event for event in events[rows[0]:] if not isinstance(event, str)][:224]
    assert len(between) == 224 and np.all(np.diff(between) > 0)  # a step per band while the row is encoded



def test_tiles_on_the_block_grid_are_flushed_one_by_one_with_the_same_pixels(tmp_path, monkeypatch):
    """Tiles whose edges are on the 256 px block grid (or the raster's) complete their blocks: each is flushed
    alone, in one call for all bands (GDAL's threads encode them while the next tiles decode), and the GeoTIFF
    holds the pixels of the row-by-row flush."""
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=300, height=280, seed=2)
    compress(scene, str(tmp_path / 'scene.ehc'), 'pca', 5, 'cpu', tile_size=256)
    calls = []
    flush = GeoTiffWriter.flush
    monkeypatch.setattr(GeoTiffWriter, 'flush', lambda self, progress=None: (calls.append(progress is None),
                                                                             flush(self, progress))[1])
    decompress(str(tmp_path / 'scene.ehc'), str(tmp_path / 'tiles.tif'), 'cpu')
    assert calls == [True] * 4  # 2 x 2 tiles
    calls.clear()
    monkeypatch.setattr(GeoTiffWriter, 'completes_blocks', lambda self, *window: False)
    decompress(str(tmp_path / 'scene.ehc'), str(tmp_path / 'rows.tif'), 'cpu')
    assert calls == [False, False]  # a row of blocks after tiles 2 and 4, band by band
    first, second = gdal.Open(str(tmp_path / 'tiles.tif')), gdal.Open(str(tmp_path / 'rows.tif'))
    assert np.array_equal(first.ReadAsArray(), second.ReadAsArray())


def test_a_window_completes_blocks_when_its_edges_are_on_the_block_grid_or_the_rasters(tmp_path):
    layout = RasterLayout(600, 300, 'int16', None, '', (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), [BandInfo()] * 2)
    writer = GeoTiffWriter(str(tmp_path / 'out.tif'), layout)
    try:
        assert writer.completes_blocks(0, 0, 256, 256) and writer.completes_blocks(256, 0, 256, 256)
        assert writer.completes_blocks(512, 0, 88, 256) and writer.completes_blocks(512, 256, 88, 44)
        assert writer.completes_blocks(0, 0, 600, 300)
        assert not writer.completes_blocks(0, 0, 128, 256) and not writer.completes_blocks(64, 0, 256, 256)
        assert not writer.completes_blocks(0, 0, 256, 200) and not writer.completes_blocks(512, 0, 80, 256)
    finally:
        writer.close()

def test_the_band_scan_moves_the_bar_block_by_block(tmp_path, monkeypatch):
    """The dead-band scan reads blocks that double from SCAN_FIRST_BYTES, moving the bar after each: a scene with a
    dead band (read to the end) is scanned in 5 blocks here, and they find the same dead bands as one block."""
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=24, height=300, seed=2)
    ds = gdal.Open(scene, gdal.GA_Update)
    ds.GetRasterBand(7).WriteArray(np.full((300, 24), -32768, np.int16))  # a dead band: the scan reads to the end
    ds = None
    monkeypatch.setattr(enmap, 'SCAN_FIRST_BYTES', 224 * 24 * 2 * 10)  # 10 rows, then 20, 40, 80, 160
    with enmap.open_spectral(scene) as raster:
        events, progress = _recorded()
        raster.find_dead_bands(progress)
        dead = raster.dead_bands
    assert events == [100 * rows / 300 for rows in (10, 30, 70, 150, 300)]
    monkeypatch.setattr(enmap, 'SCAN_FIRST_BYTES', enmap.SCAN_BLOCK_BYTES)
    with enmap.open_spectral(scene) as raster:
        assert np.array_equal(raster.dead_bands, dead) and dead[6] and 10 < np.count_nonzero(~dead) < 224


def _distinct_within(percents, start, count):
    """The distinct bar positions in tile steps of a tile range that starts at `start` percent."""
    return sorted({round((p - start) / (100 - start) * count, 6) for p in percents if p > start})


@pytest.mark.parametrize('threads, width, height, tile, count', [(1, 24, 300, 64, 5), (2, 320, 160, 160, 2)])
def test_a_compress_moves_the_bar_at_every_stage_of_a_tile(tmp_path, threads, width, height, tile, count):
    """One thread, and one tile worker (tiles larger than PARALLEL_TILE_PIXELS): the bar moves after the read, the
    model input, the scaling, the model, the basis, the latent's coding and the write of every tile, so no stage
    holds it still with another (a 400 x 400 compress is 4 tiles)."""
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=width, height=height, seed=2)
    events, progress = _recorded()
    compress(scene, str(tmp_path / 'scene.ehc'), 'rdnet', 5, 'cpu', threads=threads, tile_size=tile,
             progress=progress)
    percents = [event for event in events if not isinstance(event, str)]
    assert percents == sorted(percents) and percents[-1] == 100
    steps = _distinct_within(percents, 100 * SCAN_SHARE, count)
    if threads == 1:  # every stage in this thread: each moves the bar at once
        stages = np.round([k + s for k in range(count) for s in (0.1, 0.2, 0.2 + 0.3 * UNIT_SHARE, 0.5, 0.8, 1.0)], 6)
        assert set(stages) <= set(steps), steps
        coding = [0.5 + 0.3 * CHOICE_SHARE, 0.5 + 0.3 * (CHOICE_SHARE + (1 - CHOICE_SHARE) * ANALYSIS_SHARE)]
        chose = np.round([k + s for k in (1, 2) for s in coding], 6)  # tiles 2 and 3 hold valid pixels
        assert set(chose) <= set(steps), steps
    else:  # the worker's stages show when this thread next reports or waits
        assert len(steps) >= 4 * count and steps[-1] == count, steps


def test_a_decompress_moves_the_bar_within_each_tile_and_evaluate_with_each_band_chunk(tmp_path):
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=24, height=300, seed=2)
    compress(scene, str(tmp_path / 'scene.ehc'), 'rdnet', 5, 'cpu', threads=1, tile_size=64)
    events, progress = _recorded()
    decompress(str(tmp_path / 'scene.ehc'), str(tmp_path / 'back.tif'), 'cpu', threads=1, progress=progress)
    percents = [event for event in events if not isinstance(event, str)]
    steps = _distinct_within(percents, 0.0, 5)
    for k in range(5):  # the symbols, their values in the tile's basis (tiles 2 and 3 hold valid pixels), the
        # model, then the write
        stages = [k + 0.7 * SYMBOLS_SHARE, k + 0.7, k + 1] + ([k + 0.7 * DEQUANTISED_SHARE] if k in (1, 2) else [])
        assert set(np.round(stages, 6)) <= set(steps), steps
    events, progress = _recorded()
    evaluate(scene, str(tmp_path / 'rec.tif'), 'rdnet', 5, 'cpu', threads=1, tile_size=64, progress=progress)
    start = events.index('measuring tile 3 of 5')  # (tiles 1 and 2 hold no valid pixel: nothing to measure)
    end = next(i for i, event in enumerate(events[start:], start) if isinstance(event, str) and 'tile 4' in event)
    measuring = [event for event in events[start:end] if not isinstance(event, str)]
    assert len(set(measuring)) >= 202 // BAND_CHUNK and measuring == sorted(measuring)  # a move per band chunk
