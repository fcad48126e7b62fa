"""What a QGIS user waits for: compress from the unpacked product and from its ZIP, compress + decompress against
evaluate, the peak memory of each, how long the progress bar stands still, and how fast Cancel acts.

    python -m bench.qgis_timings [--sizes 400 1000] [--model rdnet] [--folder DIR] [--zip-repeats N [--zip-only]]

Every run is a fresh Python process (its own peak RSS from `resource`) on a synthetic EnMAP L2A product
(tools/synthetic.py, with its ZIP as DLR delivers it: deflated members). "stall" is the longest time the
progress callback did not move, as a share of the run (timed from the call, after the imports a QGIS session has
done already); "cancel" asks to stop once evaluate's bar passes 80 % (decoding and measuring) and times how long the
call takes to return. --zip-repeats N then compresses from the unpacked product and from its ZIP N more times,
alternately, and prints each pair's ratio, wall and cpu (on a shared machine one pair says little), with the load
average seen before each run (--zip-only: those pairs alone). Prints a table; a benchmark, not a test. Runs against
older checkouts too (plain callbacks).
"""
import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile

CHILD = r'''
import json, resource, sys, time
args = json.loads(sys.argv[1])
from enmap_compress.plugin.core import codec, evaluate
from enmap_compress.plugin.core.errors import CancelledError
import onnxruntime  # noqa: F401 (loaded once per QGIS session, like the plugin's modules: not part of a run)
trace, state = [], {}
started = time.perf_counter()

def progress(percent):
    now = time.perf_counter() - started
    if not trace or percent != trace[-1][1]:
        trace.append((now, percent))
    if args.get('cancel_at') is not None and percent >= args['cancel_at'] and 'asked' not in state:
        state['asked'] = now

def is_cancelled():
    return 'asked' in state

kind, paths = args['kind'], args['paths']
common = dict(progress=progress, is_cancelled=is_cancelled)
outcome = 'ok'
try:
    if kind == 'compress':
        codec.compress(paths['input'], paths['output'], args['model'], 5, 'cpu', **common)
    elif kind == 'decompress':
        codec.decompress(paths['input'], paths['output'], 'cpu', **common)
    else:
        evaluate.evaluate(paths['input'], paths['output'], args['model'], 5, 'cpu', compressed=paths['ehc'],
                          error=paths['error'], report=paths['report'], **common)
except CancelledError:
    outcome = 'cancelled'
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
points = [0.0] + [t for t, _ in trace] + [wall]
print(json.dumps({'wall': wall, 'cpu': usage.ru_utime + usage.ru_stime, 'peak_mb': usage.ru_maxrss / 1024,
                  'stall': max(b - a for a, b in zip(points, points[1:])) / wall, 'outcome': outcome,
                  'cancel_latency': wall - state['asked'] if 'asked' in state else None}))
'''


LOADS = []  # the 1-minute load average before each run: another process's work inflates both clocks


def note_load():
    if hasattr(os, 'getloadavg'):  # not on Windows
        LOADS.append(os.getloadavg()[0])


def print_load():
    if LOADS:
        print(f'load average (1 min) before each run: {min(LOADS):.1f} to {max(LOADS):.1f}, mean '
              f'{sum(LOADS) / len(LOADS):.1f}, on {os.cpu_count()} CPUs')


def run(kind, paths, model, cancel_at=None, timeout=3600):
    arguments = json.dumps({'kind': kind, 'paths': paths, 'model': model, 'cancel_at': cancel_at})
    note_load()
    proc = subprocess.run([sys.executable, '-c', CHILD, arguments], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'{kind} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


@functools.cache
def product_paths(folder, size):
    """The synthetic product (folder, ZIP) of `size`, written once per run."""
    from tools import synthetic

    product = synthetic.write_product(os.path.join(folder, f'p{size}'), width=size, height=size, seed=3,
                                      make_zip=True)
    return product.folder, product.zip


def measure_size(folder, size, model):
    unpacked, zipped = product_paths(folder, size)
    out = os.path.join(folder, f'p{size}')
    outputs = {name: os.path.join(out, name) for name in
               ('dir.ehc', 'zip.ehc', 'rec.tif', 'eval.ehc', 'eval_rec.tif', 'eval_err.tif', 'eval.html')}

    def evaluation(source, cancel_at=None):
        return run('evaluate', {'input': source, 'output': outputs['eval_rec.tif'], 'ehc': outputs['eval.ehc'],
                                'error': outputs['eval_err.tif'], 'report': outputs['eval.html']}, model, cancel_at)

    rows = {
        'compress (unpacked)': run('compress', {'input': unpacked, 'output': outputs['dir.ehc']}, model),
        'compress (ZIP)': run('compress', {'input': zipped, 'output': outputs['zip.ehc']}, model),
        'decompress': run('decompress', {'input': outputs['dir.ehc'], 'output': outputs['rec.tif']}, model),
        'evaluate (unpacked)': evaluation(unpacked),
        'evaluate (ZIP)': evaluation(zipped),
        'evaluate, cancelled at 80 %': evaluation(unpacked, cancel_at=80.0),
    }
    return rows


def zip_ratios(folder, size, model, repeats):
    """(unpacked run, ZIP run) of `repeats` alternating compress runs."""
    unpacked, zipped = product_paths(folder, size)
    pairs = []
    for index in range(repeats):
        output = os.path.join(folder, f'p{size}', f'repeat{index}.ehc')
        direct = run('compress', {'input': unpacked, 'output': output}, model)
        from_zip = run('compress', {'input': zipped, 'output': output}, model)
        pairs.append((direct, from_zip))
    return pairs


def print_zip_ratios(size, pairs):
    for clock in ('wall', 'cpu'):
        ratios = [zipped[clock] / direct[clock] for direct, zipped in pairs]
        print(f'{size} x {size}: compress from the ZIP / unpacked, {len(pairs)} alternating pairs, {clock}: ' +
              ', '.join(f'{zipped[clock]:.1f}/{direct[clock]:.1f} s = {ratio:.2f}x'
                        for (direct, zipped), ratio in zip(pairs, ratios)) +
              f'; median {sorted(ratios)[len(ratios) // 2]:.2f}x')


def print_table(results):
    print(f'{"size":>5} {"run":28} {"wall s":>7} {"cpu s":>7} {"peak MB":>8} {"stall":>6} {"cancel s":>8}')
    for size, rows in results.items():
        for name, r in rows.items():
            latency = f'{r["cancel_latency"]:.2f}' if r['cancel_latency'] is not None else ''
            print(f'{size:>5} {name:28} {r["wall"]:7.1f} {r["cpu"]:7.1f} {r["peak_mb"]:8.0f} {r["stall"]:6.1%} '
                  f'{latency:>8}')
    print()
    for size, rows in results.items():
        codec_wall = rows['compress (unpacked)']['wall'] + rows['decompress']['wall']
        codec_cpu = rows['compress (unpacked)']['cpu'] + rows['decompress']['cpu']
        print(f'{size} x {size}: compress from the ZIP / unpacked: wall '
              f'{rows["compress (ZIP)"]["wall"] / rows["compress (unpacked)"]["wall"]:.2f}x, cpu '
              f'{rows["compress (ZIP)"]["cpu"] / rows["compress (unpacked)"]["cpu"]:.2f}x; evaluate / (compress + '
              f'decompress): wall {rows["evaluate (unpacked)"]["wall"] / codec_wall:.2f}x, cpu '
              f'{rows["evaluate (unpacked)"]["cpu"] / codec_cpu:.2f}x')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[400, 1000])
    parser.add_argument('--model', default=None, help='model id (default: the default model)')
    parser.add_argument('--folder', default=None, help='work folder (default: a temporary one, removed after)')
    parser.add_argument('--json', default=None, help='also write the measurements to this JSON file')
    parser.add_argument('--zip-repeats', type=int, default=0, help='alternating compress pairs, unpacked and ZIP')
    parser.add_argument('--zip-only', action='store_true', help='only the --zip-repeats pairs (not the table)')
    args = parser.parse_args(argv)
    if args.zip_only and args.zip_repeats < 1:
        parser.error('--zip-only needs --zip-repeats N (N >= 1)')
    folder = args.folder or tempfile.mkdtemp(prefix='enmap_compress_bench_')
    try:
        results = {} if args.zip_only else {size: measure_size(folder, size, args.model) for size in args.sizes}
        repeats = {size: zip_ratios(folder, size, args.model, args.zip_repeats) for size in args.sizes
                   if args.zip_repeats > 0}
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)
    print_load()
    if results:
        print_table(results)
    for size, pairs in repeats.items():
        print_zip_ratios(size, pairs)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump({'runs': results, 'zip_pairs': repeats, 'loads': LOADS}, handle, indent=1)


if __name__ == '__main__':
    main()
