"""Tiles coded on several threads (tiling.ordered_map): the same bytes and pixels as one thread, progress per tile,
Cancel and errors as before (one message, no output)."""
import os
import threading
import time

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.core.codec import compress, decompress, tile_workers
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import CancelledError, FormatError, InputError
from enmap_compress.plugin.core.tiling import PULSE_S, Progress, Tile, ordered_map
from tools import synthetic


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return synthetic.write_scene(str(tmp_path_factory.mktemp('scene') / 'scene.tif'), width=70, height=52, seed=5)


def _content(path):
    """Everything a .ehc file holds but its creation time and the informative thread count."""
    with EhcReader(path) as reader:
        header = {k: v for k, v in reader.header.items() if k != 'created'}
        header['device'] = dict(header['device'], threads=None)
        return header, reader.footer, [(reader.chunk_meta(i), reader.read_chunk(i)) for i in range(reader.chunk_count)]


def test_ordered_map_keeps_order_overlaps_and_stops_early():
    running, most = set(), []
    lock = threading.Lock()

    def work(item):
        with lock:
            running.add(item)
            most.append(len(running))
        time.sleep(0.02 * (item % 3))  # finish out of order
        with lock:
            running.discard(item)
        return item * item

    assert list(ordered_map(work, range(12), 3)) == [i * i for i in range(12)]
    assert max(most) > 1 and max(most) <= 3
    drawn = []

    def items():
        for i in range(100):
            drawn.append(i)
            yield i

    results = ordered_map(work, items(), 2)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert len(drawn) <= 6  # one item read ahead of the workers, nothing drawn after the caller stopped
    assert list(ordered_map(work, range(4), 1)) == [0, 1, 4, 9]
    assert list(ordered_map(work, range(4), 0)) == [0, 1, 4, 9]


def test_a_workers_progress_shows_in_the_callers_thread_while_it_waits():
    """Stages a tile worker finishes move the bar while the caller's thread waits for the tile (every PULSE_S),
    and the callback is only ever called from the caller's thread; the bar never moves back."""
    calls = []
    steps = Progress(2, lambda percent: calls.append((threading.get_ident(), percent)))

    def work(item):
        for _ in range(4):
            time.sleep(PULSE_S * 1.5)
            steps.advance(0.25)  # from the worker: shown by the caller's next pulse
        return item

    for _ in ordered_map(work, range(2), 1, on_wait=steps.pulse):
        steps.report(0.0)  # an earlier position: ignored
    steps.pulse()  # the last advance came after the last wait
    assert {thread for thread, _ in calls} == {threading.get_ident()}
    percents = [percent for _, percent in calls]
    assert percents == sorted(percents) and len(set(percents)) >= 6 and percents[-1] == 100


def test_large_tiles_are_coded_one_at_a_time_beside_the_io_thread():
    assert tile_workers(1, Tile(0, 0, 128, 128)) == 0
    assert tile_workers(2, Tile(0, 0, 128, 128)) == 2
    assert tile_workers(4, Tile(0, 0, 256, 256)) == 1


def test_ordered_map_raises_the_first_failing_item_in_order():
    def work(item):
        if item in (3, 5):
            raise ValueError(f'item {item}')
        return item

    with pytest.raises(ValueError, match='item 3'):
        list(ordered_map(work, range(8), 3))


@pytest.mark.parametrize('model,max_error', [('rdnet', None), ('rdnet', 0), ('rdnet', 3), ('pca', None)])
def test_threads_write_the_same_file_and_pixels(scene, tmp_path, model, max_error):
    paths = {}
    for threads in (1, 3):
        ehc, tif = str(tmp_path / f'{threads}.ehc'), str(tmp_path / f'{threads}.tif')
        compress(scene, ehc, model, None if max_error is not None else 5, 'cpu', threads, tile_size=16,
                 max_error=max_error)
        decompress(ehc, tif, 'cpu', threads)
        paths[threads] = ehc, tif
    assert _content(paths[1][0]) == _content(paths[3][0])
    one, three = (gdal.Open(paths[t][1]).ReadAsArray() for t in (1, 3))
    assert np.array_equal(one, three)
    if max_error == 0:
        assert np.array_equal(one, gdal.Open(scene).ReadAsArray())


def test_progress_moves_once_per_tile_with_threads(scene, tmp_path):
    ehc = str(tmp_path / 'p.ehc')
    steps = []
    compress(scene, ehc, 'rdnet', 5, 'cpu', 2, tile_size=16, progress=steps.append)
    tiles = 5 * 4
    assert len(steps) >= tiles and steps == sorted(steps) and steps[-1] == pytest.approx(100.0)
    steps.clear()
    decompress(ehc, str(tmp_path / 'p.tif'), 'cpu', 2, progress=steps.append)
    assert len(steps) >= tiles and steps == sorted(steps) and steps[-1] == pytest.approx(100.0)


def test_cancel_with_threads_stops_soon_and_leaves_nothing(scene, tmp_path):
    requested = []

    def cancel_after_three_checks():
        if len(requested) < 4:
            requested.append(time.perf_counter())
        return len(requested) > 3

    with pytest.raises(CancelledError):
        compress(scene, str(tmp_path / 'x.ehc'), 'rdnet', None, 'cpu', 2, tile_size=16, max_error=0,
                 is_cancelled=cancel_after_three_checks)
    assert time.perf_counter() - requested[-1] < 3.0
    assert os.listdir(tmp_path) == []
    ehc = str(tmp_path / 'ok.ehc')
    compress(scene, ehc, 'rdnet', None, 'cpu', 2, tile_size=16, max_error=0)
    requested.clear()
    with pytest.raises(CancelledError):
        decompress(ehc, str(tmp_path / 'y.tif'), 'cpu', 2, is_cancelled=cancel_after_three_checks)
    assert time.perf_counter() - requested[-1] < 3.0
    assert os.listdir(tmp_path) == ['ok.ehc']


def test_a_failing_tile_is_one_message_and_no_output(tmp_path):
    fractional = synthetic.write_scene(str(tmp_path / 'f.tif'), width=40, height=40, seed=2, dtype='float32')
    ds = gdal.Open(fractional, gdal.GA_Update)
    band = ds.GetRasterBand(7)
    data = band.ReadAsArray()
    data[35, 35] += 0.25  # in the last tile: the tiles before it are already coded on other threads
    band.WriteArray(data)
    ds = None
    with pytest.raises(InputError, match='fractional'):
        compress(fractional, str(tmp_path / 'f.ehc'), 'rdnet', None, 'cpu', 2, tile_size=8, max_error=1)
    assert sorted(os.listdir(tmp_path)) == ['f.tif']


def test_a_damaged_chunk_with_threads_names_it_and_writes_nothing(scene, tmp_path):
    ehc = str(tmp_path / 'd.ehc')
    compress(scene, ehc, 'rdnet', 5, 'cpu', 2, tile_size=16)
    with EhcReader(ehc) as reader:
        damaged_chunk = reader.chunk_count - 3  # tiles before and after it are in flight on other threads
        start = reader._chunks[damaged_chunk]['offset']
    data = bytearray(open(ehc, 'rb').read())
    data[start + 20] ^= 0xFF
    bad = tmp_path / 'bad.ehc'
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=f'chunk {damaged_chunk}'):
        decompress(str(bad), str(tmp_path / 'bad.tif'), 'cpu', 2)
    assert sorted(os.listdir(tmp_path)) == ['bad.ehc', 'd.ehc']
