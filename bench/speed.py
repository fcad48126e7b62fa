"""Throughput and peak memory of every installed model and of the GDAL anchors (`make bench-speed`).

usage: python -m bench.speed [--models pca,hycot] [--size 1200] [--threads 1,2] [--device cpu|cuda]
                             [--quality 5] [--max-errors 0,10] [--anchors lerc_zstd,zstd] [--lerc-error 25]
                             [--latent-coder context-v2,context-v1] [--baseline DIR] [--no-doc]

Input: a synthetic full-size EnMAP tile (default 1200 x 1200 x 224 int16, tools.synthetic.write_scene, seed 0),
written once to build/bench/cache/. Each measurement runs in its own Python subprocess (`--worker`), which times only
the operation (not the interpreter start or imports) and reports its own peak RSS (resource.getrusage(RUSAGE_SELF),
Linux ru_maxrss) and the RSS right before the operation (imports, onnxruntime and GDAL loaded), and the CPU time of
the operation over all its threads (time.process_time; on a shared machine it varies less than the wall time).
GDAL_CACHEMAX=256 is set for every subprocess.

Operations (MB/s = size x size x 224 x 2 bytes of int16 input / seconds, MB = 10^6 bytes):
* model compress: codec.compress(tile.tif -> .ehc) at --quality, on --device, with `threads` onnxruntime threads
  (--latent-coder: codecheader.LATENT_CODERS names for the lossy files, comma-separated, each timed in turn; default
  the codec's choice; a --baseline checkout is asked for the same coders); and once more for each of --max-errors
  (MAX_ERROR = E, 0 = lossless; the base quality is then automatic);
* model decompress: codec.decompress(.ehc -> GeoTIFF) (the plugin writes ZSTD-1 + PREDICTOR=2 tiled output);
* GDAL anchors: gdal.Translate(tile.tif -> GTiff COMPRESS=LERC_ZSTD MAX_Z_ERROR=--lerc-error, or COMPRESS=ZSTD
  PREDICTOR=2, INTERLEAVE=PIXEL, TILED 256, NUM_THREADS=threads) for encode; decode = gdal.Translate back to a GTiff
  with the same creation options the plugin's decompress uses, and `read` = decode into memory only (ReadAsArray);
  the compressed file is opened with NUM_THREADS=threads (GDAL >= 3.6 multi-threaded decoding).
Before / after: `--baseline DIR` runs every model job once more, right before the same job of this checkout, with
`enmap_compress` imported from DIR (a folder holding an earlier checkout as `DIR/enmap_compress`, e.g.
`mkdir -p DIR/enmap_compress && git archive COMMIT | tar -x -C DIR/enmap_compress`); those rows are labelled
`[DIR's name]`. Both versions then share one machine state and one anchor run.
--no-doc: docs/ is left alone (the table is printed, the CSV written to build/bench/ unless --out-csv names one).
GPU: `--device cuda` runs the models through onnxruntime's CUDA provider (needs onnxruntime-gpu); the GDAL anchors
stay on the CPU.
"""
import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BANDS = 224
FIELDS = ('name', 'op', 'device', 'threads', 'size', 'seconds', 'mb_per_s', 'cpu_seconds', 'peak_rss_mb',
          'base_rss_mb', 'output_bytes', 'bpppb_202', 'note')  # bpppb_202: models only (file bits / (valid px x 202))
ANCHORS = {
    'lerc_zstd': lambda e: ['COMPRESS=LERC_ZSTD', f'MAX_Z_ERROR={e}'],
    'zstd': lambda e: ['COMPRESS=ZSTD', 'PREDICTOR=2'],
}


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def worker(job):
    """Run one operation in this (fresh) process; print one JSON line."""
    threads = int(job['threads'])
    os.environ.setdefault('GDAL_CACHEMAX', '256')
    from osgeo import gdal

    from enmap_compress.plugin.core.codec import compress, decompress
    from enmap_compress.plugin.core.geotiff import creation_options
    from enmap_compress.plugin.core.runtime import find_model, onnxruntime

    # no GDAL_NUM_THREADS: GDAL 3.6.2 (Debian 12) segfaults reading a band subset of an uncompressed
    # INTERLEAVE=BAND GeoTIFF with it set (see docs/benchmarks.md); the anchors get NUM_THREADS per dataset instead
    out = {'note': ''}
    if job['kind'] == 'model':
        onnxruntime()
        find_model(job['name']).meta  # noqa: B018  (load the ONNX metadata before timing)
    base = _rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    if job['kind'] == 'model' and job['op'] == 'compress':
        chosen = {'latent_coder': job['latent_coder']} if job.get('latent_coder') else {}
        packed = compress(job['src'], job['dst'], job['name'], job['quality'], job['device'], threads,
                          max_error=job.get('max_error'), **chosen)
        out['note'] = f'quality {packed.quality}, {packed.provider}'
        out['bpppb_202'] = packed.bpppb
    elif job['kind'] == 'model' and job['op'] == 'decompress':
        unpacked = decompress(job['src'], job['dst'], job['device'], threads)
        out['note'] = unpacked.provider
    elif job['op'] == 'compress':
        opts = job['options'] + ['INTERLEAVE=PIXEL', 'TILED=YES', 'BLOCKXSIZE=256', 'BLOCKYSIZE=256',
                                 f'NUM_THREADS={threads}', 'BIGTIFF=IF_SAFER']
        gdal.Translate(job['dst'], job['src'], format='GTiff', creationOptions=opts)
    elif job['op'] == 'decompress':
        opts = [o if not o.startswith('NUM_THREADS') else f'NUM_THREADS={threads}'
                for o in creation_options('int16', BANDS)]
        src = gdal.OpenEx(job['src'], gdal.OF_RASTER, open_options=[f'NUM_THREADS={threads}'])
        gdal.Translate(job['dst'], src, format='GTiff', creationOptions=opts)
        src = None
    elif job['op'] == 'read':
        ds = gdal.OpenEx(job['src'], gdal.OF_RASTER, open_options=[f'NUM_THREADS={threads}'])
        ds.ReadAsArray()
        ds = None
    else:
        raise SystemExit(f'unknown job {job}')
    out['seconds'] = time.perf_counter() - started
    out['cpu_seconds'] = time.process_time() - cpu_started  # every thread of this process (a loaded machine's
    # wall time depends on the share of the CPU each process gets; its CPU time much less)
    out['peak_rss_mb'] = _rss_mb()
    out['base_rss_mb'] = base
    if job.get('dst') and os.path.exists(job['dst']):
        out['output_bytes'] = os.path.getsize(job['dst'])
    print('RESULT ' + json.dumps(out), flush=True)


def measure(job, timeout):
    env = dict(os.environ, GDAL_CACHEMAX='256', PYTHONDONTWRITEBYTECODE='1')
    if job.get('pythonpath'):  # a --baseline job: that checkout's enmap_compress comes first
        env['PYTHONPATH'] = os.pathsep.join([job['pythonpath'], env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    cmd = [sys.executable, '-m', 'bench.speed', '--worker', json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=PROJECT_ROOT,
                              check=False)
    except subprocess.TimeoutExpired:
        return {'note': f'FAILED: timed out after {timeout} s'}
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        why = f'killed by signal {-proc.returncode}' if proc.returncode < 0 else f'exit {proc.returncode}'
        return {'note': f'FAILED ({why}): ' + ' | '.join(tail)[:300]}
    return json.loads(lines[-1][len('RESULT '):])


def jobs(models, anchors, threads_list, device, quality, lerc_error, src, work, max_errors=(), baseline=None,
         latent_coders=(None,)):
    """(name, op, threads, job) in run order; a decompress follows the compress that made its input; with a
    baseline checkout, its pair runs right before this checkout's. latent_coders: the lossy files' coders, each
    timed in turn (None: the codec's choice; a named one is asked of the baseline too)."""
    out = []
    versions = [(None, '')] + ([(baseline, f' [{os.path.basename(os.path.normpath(baseline))}]')] if baseline else [])
    for threads in threads_list:
        for model, bound, coder in [(m, None, c) for m in models for c in latent_coders] + \
                [(m, e, None) for m in models for e in max_errors]:
            for pythonpath, tag in reversed(versions):
                label = (model if bound is None else f'{model} MAX_ERROR={bound}') + (f' {coder}' * bool(coder)) + tag
                ehc = os.path.join(work, f'{model}_{threads}_{bound}_{coder}{"_baseline" if tag else ""}.ehc')
                base = {'kind': 'model', 'name': model, 'label': label, 'threads': threads, 'device': device,
                        'quality': quality if bound is None else None, 'max_error': bound, 'pythonpath': pythonpath,
                        'latent_coder': coder}
                out.append(dict(base, op='compress', src=src, dst=ehc))
                out.append(dict(base, op='decompress', src=ehc, dst=os.path.join(work, f'{model}_{threads}.tif')))
        for anchor in anchors:
            name = f'gdal_{anchor}' + (f' MAX_Z_ERROR={lerc_error}' if anchor == 'lerc_zstd' else ' PREDICTOR=2')
            comp = os.path.join(work, f'{anchor}_{threads}.tif')
            base = {'kind': 'anchor', 'name': name, 'threads': threads, 'device': 'cpu'}
            out.append(dict(base, op='compress', src=src, dst=comp, options=ANCHORS[anchor](lerc_error)))
            out.append(dict(base, op='decompress', src=comp, dst=os.path.join(work, f'{anchor}_{threads}_out.tif')))
            out.append(dict(base, op='read', src=comp))
    return out


def run(models=None, size=1200, threads_list=(1, 2), device='cpu', quality=5, anchors=('lerc_zstd', 'zstd'),
        lerc_error=25, timeout=3600, keep_outputs=False, max_errors=(), baseline=None, latent_coders=(None,)):
    from bench.reporting import scratch_dir
    from bench.scenes import synthetic_scene
    from enmap_compress.plugin.core.runtime import list_models

    installed = [p.model_id for p in list_models()]
    models = installed if models is None else models
    missing = set(models) - set(installed)
    if missing:
        raise SystemExit(f'models not installed: {", ".join(sorted(missing))} (installed: {", ".join(installed)})')
    started = time.perf_counter()
    src = synthetic_scene(size, size)
    print(f'input {src} ({size}x{size}x{BANDS} int16; cached scene written in '
          f'{time.perf_counter() - started:.0f} s)', flush=True)
    with open(src, 'rb') as handle:  # warm the page cache so the first job does not pay the disk
        while handle.read(1 << 24):
            pass
    raw = size * size * BANDS * 2
    work = scratch_dir('speed_')
    rows, digests = [], {}
    try:
        for job in jobs(models, anchors, threads_list, device, quality, lerc_error, src, work, max_errors, baseline,
                        latent_coders):
            result = measure(job, timeout)
            row = dict.fromkeys(FIELDS, '')
            row.update({'name': job.get('label', job['name']), 'op': job['op'], 'device': job['device'],
                        'threads': job['threads'], 'size': f'{size}x{size}'})
            row.update({k: v for k, v in result.items() if k in FIELDS})
            if baseline and job['kind'] == 'model' and 'seconds' in result:
                row['note'] = _compare_with_baseline(job, digests, row['note'])
            if 'seconds' in result:
                row['mb_per_s'] = raw / result['seconds'] / 1e6
            rows.append(row)
            print(f"  {row['name']:<28} {row['op']:<10} {row['device']} t={row['threads']} "
                  + (f"{row['seconds']:7.2f} s {row['mb_per_s']:7.1f} MB/s cpu {row['cpu_seconds']:6.2f} s "
                     f"peak RSS {row['peak_rss_mb']:.0f} MB "
                     f"(base {row['base_rss_mb']:.0f}) {row['note']}" if row['seconds'] != '' else row['note']),
                  flush=True)
            if job['op'] == 'decompress' and job['dst'] and os.path.exists(job['dst']) and not keep_outputs:
                os.remove(job['dst'])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _output_digest(job):
    """sha256 of what a model job wrote: (header but its creation time, chunks) of an .ehc file
    (container.EhcReader), or (the decompressed GeoTIFF's bytes,)."""
    import hashlib

    if job['op'] == 'compress':
        from enmap_compress.plugin.core.container import EhcReader

        header, chunks = hashlib.sha256(), hashlib.sha256()
        with EhcReader(job['dst']) as reader:
            fields = {k: v for k, v in reader.header.items() if k != 'created'}
            header.update(json.dumps([fields, reader.footer], sort_keys=True).encode())
            for index in range(reader.chunk_count):
                chunks.update(json.dumps(reader.chunk_meta(index), sort_keys=True).encode())
                chunks.update(reader.read_chunk(index))
        return header.hexdigest(), chunks.hexdigest()
    digest = hashlib.sha256()
    with open(job['dst'], 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 24), b''):
            digest.update(block)
    return (digest.hexdigest(),)


def _compare_with_baseline(job, digests, note):
    """Remember a baseline job's output digest; for this checkout's job, say whether its output is the same."""
    key = (job['name'], job['threads'], job['max_error'], job.get('latent_coder'), job['op'])
    if job.get('pythonpath'):
        digests[key] = _output_digest(job)
        return note
    if key not in digests:
        return note
    ours, theirs = _output_digest(job), digests[key]
    if ours == theirs:
        what = '.ehc identical to the baseline\'s but its creation time' if job['op'] == 'compress' else \
            'GeoTIFF byte-identical to the baseline\'s'
    elif job['op'] == 'compress' and ours[1] == theirs[1]:
        what = 'chunks identical to the baseline\'s, header differs'
    else:
        what = 'DIFFERENT output from the baseline'
    return f'{note}; {what}'


def table(rows):
    lines = ['| codec | operation | device | threads | size | seconds | MB/s (int16 input) | cpu seconds | '
             'peak RSS MB | RSS before op MB | output file MB | note |', '|---' * 12 + '|']
    for r in rows:
        def f(key, digits, scale=1.0, r=r):
            try:
                return f'{float(r.get(key, "")) * scale:.{digits}f}'
            except (TypeError, ValueError):
                return ''
        note = r['note']
        if r.get('bpppb_202') not in ('', None):
            note = f"{note}; {float(r['bpppb_202']):.3f} bpppb".lstrip('; ')
        lines.append(f"| {r['name']} | {r['op']} | {r['device']} | {r['threads']} | {r['size']} | {f('seconds', 2)} | "
                     f"{f('mb_per_s', 1)} | {f('cpu_seconds', 2)} | {f('peak_rss_mb', 0)} | {f('base_rss_mb', 0)} | "
                     f"{f('output_bytes', 1, 1e-6)} | {note} |")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--models', help='comma-separated model ids (default: every installed model; "" for none)')
    parser.add_argument('--size', type=int, default=1200, help='width = height of the synthetic tile (default 1200)')
    parser.add_argument('--threads', default='1,2')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda', 'auto'))
    parser.add_argument('--quality', type=int, default=5)
    parser.add_argument('--max-errors', default='0,10', help='MAX_ERROR runs of each model ("" for none)')
    parser.add_argument('--anchors', default='lerc_zstd,zstd', help='lerc_zstd,zstd ("" for none)')
    parser.add_argument('--lerc-error', type=int, default=25)
    parser.add_argument('--latent-coder', help='latent coders of the lossy model files, comma-separated, each timed '
                        '(default: the codec\'s choice)')
    parser.add_argument('--timeout', type=int, default=3600, help='seconds per measurement')
    parser.add_argument('--out-csv', default=None, help='default docs/benchmarks_speed[_DEVICE].csv, with --no-doc '
                        'build/bench/benchmarks_speed[_DEVICE].csv')
    parser.add_argument('--doc', default=os.path.join(PROJECT_ROOT, 'docs', 'benchmarks.md'))
    parser.add_argument('--baseline', metavar='DIR', help='also time the models of the checkout DIR/enmap_compress')
    parser.add_argument('--no-doc', action='store_true')
    parser.add_argument('--render', metavar='CSV', help='only rewrite the doc section from an earlier CSV')
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.render:
        with open(args.render, newline='', encoding='utf-8') as handle:
            rows = list(csv.DictReader(handle))
        print(table(rows))
        return 0
    from bench.reporting import git_commit, machine, replace_section

    models = None if args.models is None else [m for m in args.models.split(',') if m]
    anchors = [a for a in args.anchors.split(',') if a]
    unknown = set(anchors) - set(ANCHORS)
    if unknown:
        raise SystemExit(f'unknown anchors {unknown} (known: {", ".join(ANCHORS)})')
    started = time.time()
    rows = run(models, args.size, tuple(int(t) for t in args.threads.split(',')), args.device, args.quality,
               anchors, args.lerc_error, args.timeout,
               max_errors=tuple(int(e) for e in args.max_errors.split(',') if e), baseline=args.baseline,
               latent_coders=tuple(c for c in (args.latent_coder or '').split(',') if c) or (None,))
    elapsed = time.time() - started
    suffix = '' if args.device == 'cpu' else f'_{args.device}'
    folder = os.path.join(PROJECT_ROOT, 'build', 'bench') if args.no_doc else os.path.join(PROJECT_ROOT, 'docs')
    out_csv = args.out_csv or os.path.join(folder, f'benchmarks_speed{suffix}.csv')  # (--no-doc: docs/ untouched)
    os.makedirs(os.path.dirname(os.path.abspath(out_csv)), exist_ok=True)
    with open(out_csv, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f'{v:.4g}' if isinstance(v, float) else v) for k, v in r.items()})
    failed = [r for r in rows if str(r['note']).startswith('FAILED')]
    print(f'{len(rows)} measurements, {len(failed)} failed, {elapsed / 60:.1f} min; wrote {out_csv}', flush=True)
    if not args.no_doc:
        command = 'python -m bench.speed ' + ' '.join(argv if argv is not None else sys.argv[1:])
        text = (f'Generated by `{command.strip()}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, commit '
                f'{git_commit()}, in {elapsed / 60:.1f} min, GDAL_CACHEMAX=256.\n'
                f'Machine: {machine()}.\n\n' + table(rows))
        replace_section(args.doc, f'speed-results{suffix}', text)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
