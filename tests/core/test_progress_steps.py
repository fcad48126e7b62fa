"""The bar moves through the slow steps that are not tiles (#16 "no phase holds the bar still for more than a
tenth of the run"): the dead-band scan before the first tile, and each row of GeoTIFF blocks, band by band, while
it is encoded (a 224-band row of 256 px blocks took 9-15 % of a 1000 x 1000 decompress)."""
import numpy as np

from enmap_compress.plugin.core.codec import SCAN_SHARE, compress, decompress
from enmap_compress.plugin.core.tiling import Progress
from tools import synthetic


def _recorded():
    events = []
    return events, Progress(1, lambda percent: events.append(percent), describe=events.append)


def test_compress_moves_the_bar_after_the_band_scan_and_decompress_while_it_writes_block_rows(tmp_path):
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=24, height=300, seed=2)  # two block rows
    events, progress = _recorded()
    compress(scene, str(tmp_path / 'scene.ehc'), 'pca', 5, 'cpu', tile_size=64, progress=progress)
    first = next(index for index, event in enumerate(events) if not isinstance(event, str))
    assert 'finding the bands that hold data' in events[:first]
    assert events[first] == 100 * SCAN_SHARE and events[first + 1] == 'compressing tile 1 of 5'
    events, progress = _recorded()
    decompress(str(tmp_path / 'scene.ehc'), str(tmp_path / 'back.tif'), 'cpu', progress=progress)
    percents = [event for event in events if not isinstance(event, str)]
    assert percents == sorted(percents) and percents[-1] == 100
    rows = [index for index, event in enumerate(events) if event == 'writing a row of GeoTIFF blocks']
    assert len(rows) == 2  # rows 0-255 after tile 4, rows 256-299 after tile 5
    between = [event for event in events[rows[0]:] if not isinstance(event, str)][:224]
    assert len(between) == 224 and np.all(np.diff(between) > 0)  # a step per band while the row is encoded


def test_a_tile_coded_in_the_callers_thread_moves_the_bar_halfway_after_its_model_part(tmp_path):
    """With one thread, and with one tile worker (tiles larger than PARALLEL_TILE_PIXELS), the bar moves half a tile
    step once the model has made a tile's latent and the rest once its chunk is written, so the model and the
    entropy coding never hold it still together."""
    for threads, width, height, tile, count in ((1, 24, 300, 64, 5), (2, 320, 160, 160, 2)):
        scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=width, height=height, seed=2)
        events, progress = _recorded()
        compress(scene, str(tmp_path / 'scene.ehc'), 'rdnet', 5, 'cpu', threads=threads, tile_size=tile,
                 progress=progress)
        percents = [event for event in events if not isinstance(event, str)]
        start = 100 * SCAN_SHARE
        steps = {round((p - start) / (100 - start) * count, 6) for p in percents if p >= start}
        assert percents == sorted(percents)
        assert {k + 0.5 for k in range(count)} <= steps, (threads, sorted(steps))
