"""Runs the cases of test_process_state.py in one process and prints their outcomes as JSON (not a test itself).

python state_runner.py FOLDER ROUNDS [--exceptions-on] [CASE ...]: FOLDER holds the inputs that the test wrote;
every round runs every case once; --exceptions-on first turns GDAL's exceptions on, as another plugin in a QGIS
session might. An outcome is 'ok ...' with a digest of the result, or the error class and message.
"""
import hashlib
import json
import os
import sys

import numpy as np
from osgeo import gdal

from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.errors import EnmapCompressError
from enmap_compress.plugin.core.evaluate import evaluate


def _digest(path):
    ds = gdal.Open(path)
    data = ds.ReadAsArray()
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]


def _same_as(source, path):
    a, b = gdal.Open(source).ReadAsArray(), gdal.Open(path).ReadAsArray()
    return bool(np.array_equal(a, b, equal_nan=True))


def cases(folder):
    """name -> a call returning the success digest; each writes into FOLDER/out."""
    out = os.path.join(folder, 'out')
    f = lambda name: os.path.join(folder, name)  # noqa: E731
    o = lambda name: os.path.join(out, name)  # noqa: E731

    def compressed(source, **options):
        result = compress(f(source), o('c.ehc'), 'pca', options.pop('quality', 5), 'cpu', **options)
        return f'{result.valid_pixels} px, {len(result.warnings)} warnings'

    def lossless_nan():
        compress(f('nan.tif'), o('n.ehc'), 'pca', None, 'cpu', max_error=0)
        decompress(o('n.ehc'), o('n.tif'), 'cpu')
        return f'exact={_same_as(f("nan.tif"), o("n.tif"))}'

    def decompressed(name):
        decompress(f(name), o('d.tif'), 'cpu')
        return _digest(o('d.tif'))

    def evaluated():
        result = evaluate(f('tiny.tif'), o('e.tif'), 'pca', 5, 'cpu')
        return f'psnr={result.psnr:.6f}'

    return {
        'compress': lambda: compressed('tiny.tif'),
        'decompress': lambda: decompressed('tiny.ehc'),
        'evaluate': evaluated,
        'lossless float with NaN': lossless_nan,
        'truncated GeoTIFF': lambda: compressed('truncated.tif'),
        'duplicate bandID product': lambda: compressed('dup_product'),
        'not a raster': lambda: compressed('text.tif'),
        'ZIP without METADATA.XML': lambda: compressed('empty.zip'),
        'corrupt .ehc': lambda: decompressed('corrupt.ehc'),
        'truncated .ehc': lambda: decompressed('truncated.ehc'),
    }


def outcome(call, folder):
    try:
        return 'ok ' + call()
    except EnmapCompressError as exc:
        return f'{type(exc).__name__}: {exc}'.replace(folder, '<folder>')
    except Exception as exc:  # noqa: BLE001 - the test reports any other exception as a failure
        return f'RAW {type(exc).__name__}: {exc}'.replace(folder, '<folder>')


def main(argv):
    folder, rounds = argv[0], int(argv[1])
    if '--exceptions-on' in argv:
        gdal.UseExceptions()
    wanted = [a for a in argv[2:] if not a.startswith('--')]
    table = cases(folder)
    mode = gdal.GetUseExceptions()
    results = {name: [] for name in (wanted or table)}
    changed = []
    for _ in range(rounds):
        for name in results:
            results[name].append(outcome(table[name], folder))
            if gdal.GetUseExceptions() != mode:
                changed.append(name)
                gdal.UseExceptions() if mode else gdal.DontUseExceptions()
    leftovers = sorted(n for n in os.listdir(os.path.join(folder, 'out')) if n.startswith('.') or 'part' in n)
    print(json.dumps({'results': results, 'mode_changed_by': changed, 'leftovers': leftovers}))


if __name__ == '__main__':
    main(sys.argv[1:])
