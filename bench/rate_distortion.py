"""Rate-distortion of every installed model against the classical anchors (`make bench-rd`).

usage: python -m bench.rate_distortion [--models pca,cae1d] [--levels 1-10] [--datasets potsdam,mosaic,synthetic]
                                       [--synthetic-size 256] [--bounds 0,5,10,25,50,100] [--no-anchors]
                                       [--out-csv docs/benchmarks_rd.csv] [--no-doc] [--merge]

Datasets: `potsdam` = the 3 held-out real 32x32 tiles, each compressed as its own file, rate and PSNR pooled
(total bytes, total squared error); `mosaic` = the same 3 tiles side by side in one 96x32 file (less per-file
overhead); `synthetic` = tools.synthetic.write_scene (default 256x256, seed 0).
Every model of runtime.list_models() is run at every quality level; a model that fails is reported in the CSV
and the table as a failure, never skipped silently. Writes docs/benchmarks_rd.csv, docs/img/rd_*.png and the
generated tables of docs/benchmarks.md. --merge measures only the given models (e.g. a newly bundled one) and keeps
the other rows of the existing CSV, so the tables and plots list every model without re-running the others.
"""
import argparse
import csv
import math
import os
import re
import shutil
import sys
import time
import traceback

import numpy as np

from bench import pca_jpeg2000
from bench.anchors import anchor_runs, delta_zstd_roundtrip, gtiff_roundtrip
from bench.reporting import DOCS_DIR, git_commit, machine, replace_section, scratch_dir
from bench.scenes import CODED, Pool, load_scene, synthetic_scene, write_mosaic
from enmap_compress.plugin.core.bands import DN_PEAK, hyspecnet_keep_mask
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.runtime import list_models
from training.shared_data import potsdam_tiles

ALL_LEVELS = tuple(range(1, 11))
BOUNDS = (0, 5, 10, 25, 50, 100)
PCA_JPEG2000_TARGETS = (0.06, 0.08, 0.10, 0.15, 0.20, 0.30, 0.40, 0.60, 0.80, 1.0)
FIELDS = ('section', 'dataset', 'method', 'setting', 'bands', 'bytes', 'valid_px', 'bpppb', 'psnr', 'sa_deg',
          'max_abs_dn', 'enc_s', 'dec_s', 'published_bpppc', 'published_psnr', 'note')
# /work/shared/docs/reference-models.md section 1: float-latent "bpppc" (= 32 / CR) and PSNR of each variant
PUBLISHED = {
    'cae1d': {'cr32': (1.11, 48.95), 'cr16': (2.06, 52.38), 'cr8': (4.12, 53.90), 'cr4': (8.08, 54.85)},
    'sscnet': {'cr32': (1.00, 43.24), 'cr16': (2.02, 43.60), 'cr12': (2.53, 43.64), 'cr8': (4.00, 43.69),
               'cr5': (6.00, 43.52), 'cr4': (8.08, 43.29)},
    'cae3d': {'cr32': (1.01, 39.06), 'cr16': (2.02, 39.54), 'cr8': (4.04, 39.69), 'cr4': (8.08, 39.94)},
    'hycot': {'cr32': (1.11, 50.26), 'cr16': (2.06, 53.20), 'cr8': (4.12, 55.38), 'cr4': (8.08, 56.29)},
}
_BPPPC_TO_CR = {'1': 'cr32', '2': 'cr16', '2point5': 'cr12', '4': 'cr8', '6': 'cr5', '8': 'cr4'}


def published_variant(package):
    """(variant, bpppc, psnr) the model card names (e.g. `hycot_cr4`, `cae1d_8bpppc`), or None."""
    family = next((f for f in PUBLISHED if package.model_id.startswith(f)), None)
    if family is None:
        return None
    text = package.card() + ' ' + package.model_id
    match = re.search(rf'{family}\w*?[_ -]?(cr\d+)\b', text, re.IGNORECASE)
    variant = match.group(1).lower() if match else None
    if variant is None:
        match = re.search(rf'{family}\w*?_(\d+|2point5)bpppc', text, re.IGNORECASE)
        variant = _BPPPC_TO_CR.get(match.group(1)) if match else None
    if variant is None:  # a card that names the variant without the family prefix ("the cr4 variant"): only if
        named = {m.lower() for m in re.findall(r'\b(cr\d+)\b', text, re.IGNORECASE)}  # exactly one is named
        variant = named.pop() if len(named) == 1 else None
    if variant not in PUBLISHED[family]:
        return None
    bpppc, psnr = PUBLISHED[family][variant]
    return f'{family}_{variant}', bpppc, psnr


def parse_levels(text):
    levels = []
    for part in text.split(','):
        if '-' in part:
            lo, hi = part.split('-')
            levels += list(range(int(lo), int(hi) + 1))
        elif part:
            levels.append(int(part))
    return tuple(levels)


def read_canonical(path):
    with open_spectral(path) as raster:
        return np.asarray(raster.read_canonical(0, 0, raster.width, raster.height))


def datasets(names, synthetic_size, scratch):
    out = {}
    for name in names:
        if name == 'potsdam':
            out[name] = potsdam_tiles(held_out=True)
        elif name == 'mosaic':
            out[name] = [write_mosaic(potsdam_tiles(held_out=True),
                                             os.path.join(scratch, 'potsdam_heldout_mosaic.tif'))]
        elif name == 'synthetic':
            out[name] = [synthetic_scene(synthetic_size, synthetic_size)]
        elif os.path.exists(name):
            out[os.path.basename(name)] = [name]
        else:
            raise SystemExit(f'unknown dataset {name} (potsdam, mosaic, synthetic or a raster path)')
    return out


def row(section, dataset, method, setting, result, **extra):
    out = dict.fromkeys(FIELDS, '')
    out.update({'section': section, 'dataset': dataset, 'method': method, 'setting': setting})
    out.update({k: result[k] for k in ('bands', 'bytes', 'valid_px', 'bpppb', 'psnr', 'sa_deg', 'max_abs_dn',
                                       'enc_s', 'dec_s')})
    out.update(extra)
    return out


def failure(section, dataset, method, setting, exc):
    out = dict.fromkeys(FIELDS, '')
    out.update({'section': section, 'dataset': dataset, 'method': method, 'setting': setting,
                'note': f'FAILED: {type(exc).__name__}: {exc}'.replace('\n', ' ')[:300]})
    print(f'  !! {method} {setting} on {dataset}: {out["note"]}', flush=True)
    traceback.print_exc()
    return out


def run_model(package, rasters, scenes, scratch, quality, max_error=None, bands=CODED, threads=2):
    """Compress and decompress each raster through the real codec; pooled metrics."""
    pool = Pool(bands)
    mask = scenes[0].keep if bands == CODED else np.ones(224, bool)
    levels = []
    for index, (raster, scene) in enumerate(zip(rasters, scenes)):
        ehc, rec = os.path.join(scratch, f'{index}.ehc'), os.path.join(scratch, f'{index}.tif')
        packed = compress(raster, ehc, package.folder, quality, 'cpu', threads, max_error=max_error)
        unpacked = decompress(ehc, rec, 'cpu', threads)
        pool.add(packed.file_bytes, scene, read_canonical(rec), mask, packed.seconds, unpacked.seconds)
        levels.append(packed.quality)
        os.remove(ehc)
        os.remove(rec)
    return pool.result(), levels


def run_anchor(fn, scenes, bands_idx, scratch, bands=CODED):
    pool = Pool(bands)
    mask = np.zeros(224, bool)
    mask[bands_idx] = True
    for scene in scenes:
        size, rec, enc, dec = fn(scene, bands_idx, scratch)
        pool.add(size, scene, rec, mask, enc, dec)
    return pool.result()


def pca_jpeg2000_rows(name, scenes, work):
    """The strongest classical anchor (bench.pca_jpeg2000): best K at each target rate, measured."""
    try:
        mean, basis = pca_jpeg2000.fit_klt(potsdam_tiles(held_out=False))
        best = pca_jpeg2000.best_at_targets(scenes, mean, basis, pca_jpeg2000.DEFAULT_KS, PCA_JPEG2000_TARGETS, work)
    except (Exception, SystemExit) as exc:  # no shared training tiles, no glymur/OpenJPEG: one failed row
        return [failure('rd', name, 'pca_jpeg2000', 'best K', exc)]
    rows = [row('rd', name, 'pca_jpeg2000', f'target {target:g} bpppb, best K={k}', result)
            for target, k, result in best]
    for r in rows:
        log(r)
    return rows


def fmt(value, digits=2):
    if value in ('', None):
        return ''
    value = float(value)
    if math.isinf(value):
        return '∞'
    return f'{value:.{digits}f}'


def log(r):
    if r['note'].startswith('FAILED'):
        return
    print(f"  {r['section']:<3} {r['dataset']:<10} {r['method']:<22} {r['setting']:<40} "
          f"{r['bpppb']:8.4f} bpppb {fmt(r['psnr']):>7} dB  SA {r['sa_deg']:.3f}  max {r['max_abs_dn']:.0f}  "
          f"({r['enc_s']:.1f}+{r['dec_s']:.1f} s)", flush=True)


def run(models=None, levels=ALL_LEVELS, names=('potsdam', 'mosaic', 'synthetic'), synthetic_size=256,
        bounds=BOUNDS, anchors=True, model_datasets=None, threads=2):
    """All rows of the benchmark (list of dicts, FIELDS)."""
    scratch = scratch_dir('rd_')
    rows = []
    try:
        data = datasets(names, synthetic_size, scratch)
        installed = list_models()
        packages = [p for p in installed if models is None or p.model_id in models]
        missing = set(models or ()) - {p.model_id for p in installed}
        if missing:
            raise SystemExit(f'models not installed: {", ".join(sorted(missing))} '
                             f'(installed: {", ".join(p.model_id for p in installed)})')
        print(f'models: {", ".join(p.model_id for p in packages) or "none"}; datasets: '
              f'{", ".join(f"{k} ({len(v)} file(s))" for k, v in data.items())}', flush=True)
        keep = np.flatnonzero(hyspecnet_keep_mask())
        everything = np.arange(224)
        for name, rasters in data.items():
            scenes = [load_scene(p) for p in rasters]
            work = os.path.join(scratch, name)
            os.makedirs(work, exist_ok=True)
            for package in packages:
                if model_datasets is not None and name not in model_datasets:
                    continue
                published = published_variant(package)
                extra = {'published_bpppc': published[1], 'published_psnr': published[2],
                         'note': f'card: {published[0]}'} if published else {}
                for level in levels:
                    try:
                        result, _ = run_model(package, rasters, scenes, work, level, threads=threads)
                        rows.append(row('rd', name, package.model_id, f'quality={level}', result, **extra))
                        log(rows[-1])
                    except Exception as exc:  # report and go on: one broken model must not stop the benchmark
                        rows.append(failure('rd', name, package.model_id, f'quality={level}', exc))
                for bound in bounds:
                    bands = 224 if bound == 0 else CODED
                    try:
                        result, used = run_model(package, rasters, scenes, work, None, bound, bands, threads)
                        rows.append(row('eb', name, package.model_id, f'max_error={bound}', result,
                                        note=f'auto quality {sorted(set(used))}'))
                        log(rows[-1])
                    except Exception as exc:
                        rows.append(failure('eb', name, package.model_id, f'max_error={bound}', exc))
            if not anchors:
                continue
            for method, setting, fn in anchor_runs(CODED):
                try:
                    rows.append(row('rd', name, method, setting, run_anchor(fn, scenes, keep, work)))
                    log(rows[-1])
                except Exception as exc:
                    rows.append(failure('rd', name, method, setting, exc))
            rows += pca_jpeg2000_rows(name, scenes, work)
            eb_anchors = [(f'MAX_Z_ERROR={b}', 224 if b == 0 else CODED,
                           ['COMPRESS=LERC_ZSTD', f'MAX_Z_ERROR={b}', 'INTERLEAVE=PIXEL'], 'gdal_lerc_zstd')
                          for b in bounds]
            eb_anchors.append(('ZSTD PREDICTOR=2 INTERLEAVE=PIXEL (lossless)', 224,
                               ['COMPRESS=ZSTD', 'PREDICTOR=2', 'INTERLEAVE=PIXEL'], 'gdal_zstd_pred2'))
            for setting, bands, opts, method in eb_anchors:
                idx = everything if bands == 224 else keep
                try:
                    result = run_anchor(lambda s, b, f, o=opts: gtiff_roundtrip(s, b, o, f), scenes, idx,
                                        work, bands)
                    rows.append(row('eb', name, method, setting, result))
                    log(rows[-1])
                except Exception as exc:
                    rows.append(failure('eb', name, method, setting, exc))
            if 0 in bounds:
                try:
                    result = run_anchor(lambda s, b, f: delta_zstd_roundtrip(s, b), scenes, everything,
                                        work, 224)
                    rows.append(row('eb', name, 'delta_shuffle_zstd', 'spectral delta + byte shuffle + zstd-9 '
                                    '(lossless)', result))
                    log(rows[-1])
                except Exception as exc:
                    rows.append(failure('eb', name, 'delta_shuffle_zstd', 'lossless', exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def write_csv(rows, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in r.items()})


NUMERIC_FIELDS = ('bytes', 'valid_px', 'bpppb', 'psnr', 'sa_deg', 'max_abs_dn', 'enc_s', 'dec_s')


def read_csv(path):
    with open(path, newline='', encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    for r in rows:
        r.update({k: float(r[k]) for k in NUMERIC_FIELDS if r[k] != ''})
    return rows


def merge_rows(old, new):
    """The old rows of every (dataset, method) not measured now, then the new rows."""
    measured = {(r['dataset'], r['method']) for r in new}
    return [r for r in old if (r['dataset'], r['method']) not in measured] + new


# --- plots and tables -----------------------------------------------------------------------------------------------

STYLE = {'gdal_lerc_zstd': ('tab:red', 's'), 'pca_jpeg2000': ('darkgoldenrod', 'v'),
         'jpeg2k_per_band': ('tab:purple', '^'), 'gdal_zstd_pred2': ('tab:gray', 'x'),
         'delta_shuffle_zstd': ('black', '+')}
MODEL_COLOURS = ('tab:blue', 'tab:green', 'tab:orange', 'tab:cyan', 'tab:olive', 'tab:pink', 'tab:brown')


def _ok(r):
    return not r['note'].startswith('FAILED') and r['psnr'] != '' and math.isfinite(float(r['psnr']))


def plot(rows, dataset, path, title, dashed_dataset=None):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    colours = {}
    for ds, style in ((dataset, '-'), (dashed_dataset, '--')):
        if ds is None:
            continue
        methods = list(dict.fromkeys(r['method'] for r in rows if r['dataset'] == ds and r['section'] == 'rd'))
        for method in methods:
            pts = sorted((float(r['bpppb']), float(r['psnr'])) for r in rows
                         if r['dataset'] == ds and r['section'] == 'rd' and r['method'] == method and _ok(r))
            if not pts:
                continue
            if method not in colours:
                models = sum(m not in STYLE for m in colours)  # the anchors have their own colours
                colours[method] = STYLE.get(method, (MODEL_COLOURS[models % len(MODEL_COLOURS)], 'o'))
            colour, marker = colours[method]
            label = f'{method} ({ds})'
            ax.plot(*zip(*pts), style, color=colour, marker=marker, ms=4, label=label, alpha=1 if style == '-' else 0.6)
        if style == '-':
            models = list(dict.fromkeys(r['method'] for r in rows if r['dataset'] == ds and r['section'] == 'eb'
                                        and r['method'] in colours and r['method'] not in STYLE))
            for method in models:  # the error-bounded mode of each model (202-band rows)
                pts = sorted((float(r['bpppb']), float(r['psnr'])) for r in rows if r['dataset'] == ds
                             and r['section'] == 'eb' and r['method'] == method and _ok(r))
                if pts:
                    ax.plot(*zip(*pts), ':', color=colours[method][0], marker='D', ms=4,
                            label=f'{method} MAX_ERROR 5..100 ({ds})')
            lossless = [r for r in rows if r['dataset'] == ds and r['section'] == 'rd' and r['psnr'] != ''
                        and not r['note'].startswith('FAILED') and math.isinf(float(r['psnr']))]
            for r in lossless:  # lossless anchors: no finite PSNR, shown as their rate
                ax.axvline(float(r['bpppb']), color=STYLE.get(r['method'], ('k', 'o'))[0], ls='-.', lw=0.8,
                           label=f"lossless {r['method']} {float(r['bpppb']):.2f} ({ds})")
            for r in rows:
                if r['dataset'] == ds and r['section'] == 'rd' and _ok(r) and r['published_bpppc'] != '':
                    ax.plot(float(r['published_bpppc']), float(r['published_psnr']), '*', ms=12, mfc='none',
                            color=colours.get(r['method'], ('k', 'o'))[0])
    ax.set_xscale('log')
    ax.set_xlabel(f'bpppb (real bits on disk / (valid pixels x {CODED} bands))')
    ax.set_ylabel(f'PSNR dB (peak {DN_PEAK:.0f} DN, {CODED} bands)')
    ax.set_title(title)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=6, loc='upper left', ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tables(rows, datasets_order):
    lines = []
    for ds in datasets_order:
        sub = [r for r in rows if r['dataset'] == ds]
        if not sub:
            continue
        lines += [f'#### {ds}: rate-distortion', '',
                  '| method | setting | real bpppb | PSNR dB | mean SA ° | max abs err DN | published "bpppc" / PSNR |'
                  ' enc+dec s | note |', '|---|---|---|---|---|---|---|---|---|']
        for r in sub:
            if r['section'] != 'rd':
                continue
            if r['note'].startswith('FAILED'):
                lines.append(f"| {r['method']} | {r['setting']} | | | | | | | {r['note']} |")
                continue
            pub = f"{r['published_bpppc']} / {r['published_psnr']}" if r['published_bpppc'] != '' else ''
            note = r['note'] if not r['note'].startswith('card') else ''
            lines.append(f"| {r['method']} | {r['setting']} | {r['bpppb']:.4f} | {fmt(r['psnr'])} | "
                         f"{r['sa_deg']:.3f} | {r['max_abs_dn']:.0f} | {pub} | "
                         f"{r['enc_s'] + r['dec_s']:.2f} | {note} |")
        eb = [r for r in sub if r['section'] == 'eb']
        if eb:
            lines += ['', f'#### {ds}: error-bounded (MAX_ERROR) and lossless', '',
                      '| method | setting | rate over bands | real bpppb | achieved max err DN | PSNR dB | mean SA ° |'
                      ' note |', '|---|---|---|---|---|---|---|---|']
            for r in eb:
                if r['note'].startswith('FAILED'):
                    lines.append(f"| {r['method']} | {r['setting']} | | | | | | {r['note']} |")
                    continue
                lines.append(f"| {r['method']} | {r['setting']} | {r['bands']} | {r['bpppb']:.4f} | "
                             f"{r['max_abs_dn']:.0f} | {fmt(r['psnr'])} | {r['sa_deg']:.3f} | {r['note']} |")
        lines.append('')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', help='comma-separated model ids (default: every installed model)')
    parser.add_argument('--levels', default='1-10', help='quality levels, e.g. 1-10 or 2,5,9')
    parser.add_argument('--datasets', default='potsdam,mosaic,synthetic')
    parser.add_argument('--model-datasets', help='datasets the models run on (default: all of --datasets)')
    parser.add_argument('--synthetic-size', type=int, default=256)
    parser.add_argument('--bounds', default=','.join(map(str, BOUNDS)), help='MAX_ERROR values (empty: none)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no-anchors', action='store_true')
    parser.add_argument('--out-csv', default=os.path.join(DOCS_DIR, 'benchmarks_rd.csv'))
    parser.add_argument('--img-dir', default=os.path.join(DOCS_DIR, 'img'))
    parser.add_argument('--doc', default=os.path.join(DOCS_DIR, 'benchmarks.md'))
    parser.add_argument('--no-doc', action='store_true', help='do not touch docs/benchmarks.md')
    parser.add_argument('--merge', action='store_true',
                        help='keep the rows of --out-csv that were not measured now (use with --models and '
                             '--no-anchors to add a model to the existing tables and plots)')
    args = parser.parse_args(argv)
    started = time.time()
    names = tuple(n for n in args.datasets.split(',') if n)
    rows = run(models=args.models.split(',') if args.models else None, levels=parse_levels(args.levels),
               names=names, synthetic_size=args.synthetic_size,
               bounds=tuple(int(b) for b in args.bounds.split(',') if b), anchors=not args.no_anchors,
               model_datasets=args.model_datasets.split(',') if args.model_datasets else None, threads=args.threads)
    elapsed = time.time() - started
    merged = ''
    if args.merge and os.path.isfile(args.out_csv):
        measured = ', '.join(dict.fromkeys(r['method'] for r in rows))
        rows = merge_rows(read_csv(args.out_csv), rows)
        names = tuple(dict.fromkeys(r['dataset'] for r in rows))
        merged = f' Measured in this run: {measured}; the other rows are kept from the previous CSV (see git log).'
    write_csv(rows, args.out_csv)
    if 'potsdam' in names:
        plot(rows, 'potsdam', os.path.join(args.img_dir, 'rd_potsdam.png'),
             'Held-out real EnMAP Potsdam tiles (3 x 32x32 files, pooled); dashed: the same as one 96x32 mosaic',
             'mosaic' if 'mosaic' in names else None)
    if 'synthetic' in names:
        plot(rows, 'synthetic', os.path.join(args.img_dir, 'rd_synthetic.png'),
             f'Synthetic scene {args.synthetic_size}x{args.synthetic_size} (tools.synthetic, seed 0)')
    failed = [r for r in rows if r['note'].startswith('FAILED')]
    print(f'{len(rows)} rows, {len(failed)} failed, {elapsed:.0f} s; wrote {args.out_csv}', flush=True)
    if not args.no_doc:
        command = 'python -m bench.rate_distortion ' + ' '.join(argv if argv is not None else sys.argv[1:])
        header = (f'Generated by `{command.strip()}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, '
                  f'commit {git_commit()}, in {elapsed / 60:.1f} min.{merged}\n'
                  f'Machine: {machine()}.\n'
                  f'Models: {", ".join(p.model_id for p in list_models()) or "none"}.\n')
        replace_section(args.doc, 'rd-results', header + '\n' + tables(rows, names))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
