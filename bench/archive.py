"""Whole-archive throughput of `enmap-compress archive` on Dask (`python -m bench.archive`).

usage: python -m bench.archive [--products 8] [--size 600] [--model rdnet] [--quality 5] [--workers 1,2]
                               [--form folder|zip] [--tiles 30000] [--cluster 64,256,1024] [--no-doc]

Input: `--products` synthetic L2A products of size x size x 224 int16 (tools.synthetic.write_product, seeds
0..n-1) as product folders or DLR ZIPs, written once to build/bench/archive/. For each worker count a local Dask
cluster (one process per worker, one thread each, onnxruntime threads 1, 4 GiB per worker) is started and warmed
(the core imported in every worker), then `run_archive` (the code path of `enmap-compress archive --workers N`)
compresses the whole folder into a fresh DEST; only that call is timed. Worker count 0 is the in-process path
(no Dask).

Reported: products per hour, MB/s of input (n x size^2 x 224 x 2 bytes of int16 cube / wall seconds, MB = 10^6),
scaling efficiency (throughput / (workers x the 1-worker throughput)), the peak RSS of each worker process (the
largest `peak_rss_mb` its manifest records report: getrusage ru_maxrss), and worker-seconds per product. The
estimate for a full archive scales the 1-worker cost per product by pixel count to a 1200 x 1200 tile and divides
by the cluster size times the best measured efficiency; it leaves out reading the inputs from shared storage.
"""
import argparse
import os
import shutil
import sys
import time

from bench.reporting import BUILD_DIR, DOCS_DIR, git_commit, machine, replace_section
from enmap_compress.plugin.cli.archive import Settings, run_archive
from tools import synthetic

FULL_TILE = 1200
BANDS = 224


def source_folder(products, size, form):
    """The synthetic archive, written once (a marker file says it is complete)."""
    folder = os.path.join(BUILD_DIR, 'archive', f'src_{form}_{size}_{products}')
    marker = os.path.join(folder, '.complete')
    if os.path.exists(marker):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for seed in range(products):
        name = f'ENMAP01-____L2A-DT{seed:010d}_20240101T101010Z_001_V010400_20240102T000000Z'
        if form == 'zip':
            scratch = os.path.join(folder, '.unzipped')
            product = synthetic.write_product(scratch, size, size, seed=seed, make_zip=True, product_name=name)
            os.replace(product.zip, os.path.join(folder, os.path.basename(product.zip)))
            shutil.rmtree(scratch)
        else:
            synthetic.write_product(folder, size, size, seed=seed, product_name=name)
    open(marker, 'w').close()
    return folder


def _warm():
    import enmap_compress.plugin.cli.archive  # noqa: F401 (imports the core, GDAL and onnxruntime)

    return os.getpid()


def measure(workers, src, settings):
    """(wall seconds, records) of one archive run with `workers` Dask workers (0: in this process)."""
    dest = os.path.join(BUILD_DIR, 'archive', f'dest_{workers}')
    shutil.rmtree(dest, ignore_errors=True)
    records = []
    if workers == 0:
        started = time.perf_counter()
        run_archive(src, dest, settings, on_record=records.append)
        return time.perf_counter() - started, records
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit='4GiB',
                      host='127.0.0.1', dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        client.run(_warm)
        started = time.perf_counter()
        run_archive(src, dest, settings, client, on_record=records.append)
        wall = time.perf_counter() - started
    return wall, records


def row(workers, wall, records, size):
    failed = [r for r in records if r['status'] != 'ok']
    if failed:
        raise SystemExit(f'{len(failed)} products failed: {failed[0]["error"]}')
    n = len(records)
    peaks = {}
    for record in records:
        peaks[record['worker']] = max(peaks.get(record['worker'], 0.0), record['peak_rss_mb'] or 0.0)
    return {'workers': workers, 'products': n, 'wall': wall, 'per_hour': n / wall * 3600,
            'mb_s': n * size * size * BANDS * 2 / 1e6 / wall, 'efficiency': None,
            'peak_rss': sorted(peaks.values()), 'worker_seconds': wall * max(workers, 1) / n,
            'task_seconds': sum(r['seconds'] for r in records) / n,
            'bpppb': sum(r['bpppb'] for r in records) / n}


def add_efficiency(rows):
    """Throughput per worker against the 1-worker run's (None for the in-process row or without a 1-worker run)."""
    single = next((r for r in rows if r['workers'] == 1), None)
    for r in rows:
        if single is not None and r['workers'] >= 1:
            r['efficiency'] = r['per_hour'] / (r['workers'] * single['per_hour'])


def table(rows):
    lines = ['| workers | products | wall s | products/hour | MB/s of input | scaling efficiency | '
             'peak RSS per worker MB | worker-s per product | mean task s |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        label = 'in-process' if r['workers'] == 0 else str(r['workers'])
        lines.append(f'| {label} | {r["products"]} | {r["wall"]:.1f} | {r["per_hour"]:.0f} | {r["mb_s"]:.1f} | '
                     f'{"-" if r["efficiency"] is None else format(r["efficiency"], ".2f")} | '
                     f'{", ".join(f"{p:.0f}" for p in r["peak_rss"])} | '
                     f'{r["worker_seconds"]:.2f} | {r["task_seconds"]:.2f} |')
    return '\n'.join(lines)


def estimate(rows, size, tiles, clusters):
    """Hours for `tiles` full tiles on clusters of the given worker counts, from the 1-worker cost per product, at
    the scaling efficiency measured with the most workers and at perfect scaling (independent tasks, one core each)."""
    single = next((r for r in rows if r['workers'] == 1), rows[0])
    per_tile = single['worker_seconds'] * (FULL_TILE / size) ** 2
    widest = max(rows, key=lambda r: r['workers'])
    efficiency = min(1.0, widest['efficiency'] or 1.0)
    lines = [f'Estimate for {tiles:,} tiles of {FULL_TILE} x {FULL_TILE} x 224: {per_tile:.1f} worker-seconds per '
             f'tile (the 1-worker cost per {size} x {size} product x {(FULL_TILE / size) ** 2:.0f}), '
             f'{tiles * per_tile / 3600:,.0f} worker-hours in all.', '',
             f'| cluster (workers, one core each) | hours at the measured efficiency {efficiency:.2f} | '
             'hours at efficiency 1 |', '|---|---|---|']
    hours = tiles * per_tile / 3600
    lines += [f'| {workers} | {hours / (workers * efficiency):,.1f} | {hours / workers:,.1f} |' for workers in clusters]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--products', type=int, default=8)
    parser.add_argument('--size', type=int, default=600)
    parser.add_argument('--model', default='rdnet')
    parser.add_argument('--quality', type=int, default=5)
    parser.add_argument('--workers', default='1,2', help='comma-separated worker counts (0: in-process, no Dask)')
    parser.add_argument('--form', choices=('folder', 'zip'), default='folder')
    parser.add_argument('--tiles', type=int, default=30000)
    parser.add_argument('--cluster', default='64,256,1024')
    parser.add_argument('--no-doc', action='store_true')
    args = parser.parse_args(argv)
    started = time.time()
    src = source_folder(args.products, args.size, args.form)
    settings = Settings({'model': args.model, 'quality': args.quality, 'max_error': None, 'code_all_bands': False},
                        device='cpu', threads=1)
    rows = []
    for workers in (int(w) for w in args.workers.split(',')):
        wall, records = measure(workers, src, settings)
        rows.append(row(workers, wall, records, args.size))
        add_efficiency(rows)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    command = 'python -m bench.archive ' + ' '.join(argv if argv is not None else sys.argv[1:])
    text = '\n'.join([
        f'Generated by `{command.strip()}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, commit '
        f'{git_commit()}, in {(time.time() - started) / 60:.1f} min: {args.products} synthetic {args.form}s of '
        f'{args.size} x {args.size} x 224, {args.model} quality {args.quality}, {rows[0]["bpppb"]:.3f} bpppb.',
        f'Machine: {machine()}.', '', table(rows), '', estimate(rows, args.size, args.tiles,
                                                                  [int(c) for c in args.cluster.split(',')])])
    print('\n' + text)
    if not args.no_doc:
        replace_section(os.path.join(DOCS_DIR, 'benchmarks.md'), 'archive-results', text)


if __name__ == '__main__':
    main()
